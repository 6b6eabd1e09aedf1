# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgvector_database with a recording psql in place of the container: no Docker needed."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import pg
from ansible_collections.ragops.gpu_stack.plugins.modules import pgvector_database

from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import run_module

PASSWORD = 'S3cret-pw'


class FakePsql:
    """Answers the state queries from canned JSON and records every script with its session kind."""

    def __init__(self, cluster, db=None, has_rows=False):
        self.cluster = cluster
        self.db = db
        self.has_rows = has_rows
        self.calls = []

    def check_running(self):
        self.calls.append(('check_running', None, None))

    def query(self, database, sql):
        self.calls.append(('read', database, sql))
        if 'to_json(EXISTS' in sql:
            return json.dumps(self.has_rows) + '\n'
        if "'server_version'" in sql:
            return json.dumps(self.cluster) + '\n'
        return json.dumps(self.db) + '\n'

    def run(self, database, sql):
        self.calls.append(('write', database, sql))
        return ''

    @property
    def writes(self):
        return [call for call in self.calls if call[0] == 'write']


EMPTY_CLUSTER = {'server_version': '17.2', 'superuser': True, 'role': None, 'owner_exists': False, 'database': None,
                 'extension_available': '0.8.0'}


@pytest.fixture(name='fake')
def fixture_fake():
    fake = FakePsql(dict(EMPTY_CLUSTER), dict(pg.EMPTY_DATABASE_STATE))
    with mock.patch.object(pgvector_database, 'open_psql', lambda module: fake):
        yield fake


ARGS = dict(container='pg', database='rag', role='rag', password=PASSWORD, table=dict(name='chunks', dimensions=768),
            index=dict(distance='cosine'))


def test_check_mode_reads_only(fake):
    result, warnings = run_module(pgvector_database, ARGS, check_mode=True, diff=True)
    assert result['changed'] is True and warnings == []
    assert fake.writes == []
    assert [kind for kind, _db, _sql in fake.calls] == ['check_running', 'read']  # no database yet: one read
    assert result['actions'][:2] == ['create role rag', 'create database rag owned by rag']
    assert result['extension_version'] == '0.8.0'
    assert result['diff']['before'] == {'database': None, 'extension': None, 'role': None, 'table': None, 'index': None}
    assert result['diff']['after']['table']['columns']['embedding'] == 'vector(768)'


def test_real_run_writes_cluster_then_database_and_hides_the_password(fake):
    result, _warnings = run_module(pgvector_database, ARGS, diff=False)
    assert result['changed'] is True and 'diff' not in result
    assert [(db, sql.count('BEGIN;')) for _kind, db, sql in fake.writes] == [('postgres', 0), ('rag', 1)]
    cluster_sql = fake.writes[0][2]
    assert PASSWORD not in cluster_sql and "PASSWORD 'SCRAM-SHA-256$4096:" in cluster_sql
    assert "SET log_statement = 'none'" in cluster_sql
    assert PASSWORD not in json.dumps(result)
    assert 'SCRAM-SHA-256$' not in json.dumps(result)


def test_password_unchanged_is_not_rewritten(fake):
    fake.cluster = dict(EMPTY_CLUSTER, role={'name': 'rag', 'login': True, 'password': pg.scram_verifier(PASSWORD)},
                        database={'name': 'rag', 'owner': 'rag'}, owner_exists=True)
    fake.db = dict(pg.EMPTY_DATABASE_STATE, extension='0.8.0')
    result, _warnings = run_module(pgvector_database, dict(container='pg', database='rag', role='rag', password=PASSWORD), diff=True)
    assert result['changed'] is False and fake.writes == []
    assert result['diff']['before'] == result['diff']['after']
    assert result['role'] == {'name': 'rag', 'login': True, 'password': 'scram-sha-256'}
    assert 'table' not in result and 'index' not in result

    result, _warnings = run_module(pgvector_database, dict(container='pg', database='rag', role='rag', password='other'),
                                   check_mode=True, diff=True)
    assert result['changed'] is True and result['actions'] == ['set the password of role rag'] and fake.writes == []
    assert result['diff']['after']['role']['password_changed'] is True
    assert 'password_changed' not in result['diff']['before']['role']


def test_bad_input_fails_before_any_call(fake):
    result, _warnings = run_module(pgvector_database, dict(ARGS, table=dict(name='chunks', dimensions=3000)))
    assert result['failed'] is True and 'up to 2000 dimensions' in result['msg']
    assert fake.calls == []
    result, _warnings = run_module(pgvector_database, dict(ARGS, database='x' * 64))
    assert result['failed'] is True and 'longer than 63 bytes' in result['msg'] and fake.calls == []


def test_absent_table_with_rows_needs_force(fake):
    fake.cluster = dict(EMPTY_CLUSTER, database={'name': 'rag', 'owner': 'rag'})
    fake.db = dict(pg.EMPTY_DATABASE_STATE, extension='0.8.0', table={'owner': 'rag', 'columns': {'id': 'bigint'}},
                   relation_kind='r', user_tables=['public.chunks'])
    fake.has_rows = True
    args = dict(container='pg', database='rag', table=dict(name='chunks'), state='absent')
    result, _warnings = run_module(pgvector_database, args)
    assert result['failed'] is True and 'force: true' in result['msg'] and fake.writes == []
    result, _warnings = run_module(pgvector_database, dict(args, force=True), check_mode=True, diff=True)
    assert result['changed'] is True and result['actions'] == ['drop table public.chunks'] and fake.writes == []
    assert result['diff']['after']['table'] is None


def test_psql_failure_is_reported(fake):
    def broken(database, sql):
        raise pg.PgError('psql in container pg (database postgres) exited with 2: could not connect')
    fake.query = broken
    result, _warnings = run_module(pgvector_database, ARGS)
    assert result['failed'] is True and 'could not connect' in result['msg']


def test_docker_psql_builds_a_safe_command():
    psql = pg.DockerPsql(api=None, container='pg', db_user='postgres')
    assert psql.command("host=evil'") == ['psql', '-v', 'ON_ERROR_STOP=1', '-X', '-q', '-A', '-t', '-d',
                                          "dbname='host=evil\\'' user='postgres'"]


def test_docker_psql_reads_in_read_only_sessions():
    psql = pg.DockerPsql(api=None, container='pg', db_user='postgres')
    with mock.patch.object(psql, 'run', return_value='{}') as run:
        psql.query('rag', 'SELECT 1;')
    run.assert_called_once_with('rag', pg.READ_ONLY_PREAMBLE + 'SELECT 1;')
    assert 'default_transaction_read_only = on' in pg.READ_ONLY_PREAMBLE
