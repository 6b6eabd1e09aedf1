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
    """Plays psql for the module: answers the state queries from canned JSON and follows a read
    script's ``\\echo``, ``\\gset``, ``\\if`` and ``\\connect`` as psql does.

    ``calls`` records every psql session (one ``docker exec`` each) with its kind; ``connects``
    every ``\\connect``'s connection string. A query outside a read-only session, or in the
    wrong database, fails the test.
    """

    def __init__(self, cluster, db=None, has_rows=False, db_user='postgres'):
        self.cluster = cluster
        self.db = db
        self.has_rows = has_rows
        self.db_user = db_user
        self.calls = []
        self.connects = []

    def check_running(self):
        self.calls.append(('check_running', None, None))

    def query(self, database, sql, variables=None):
        self.calls.append(('read', database, sql))
        # DockerPsql.query starts the session read-only (READ_ONLY_PREAMBLE), then runs sql.
        return self._play(database, sql, dict(variables or {}))

    def run(self, database, sql):
        self.calls.append(('write', database, sql))
        return ''

    @property
    def writes(self):
        return [call for call in self.calls if call[0] == 'write']

    @property
    def reads(self):
        return [call for call in self.calls if call[0] == 'read']

    def _target(self):
        return (self.cluster.get('database') or {}).get('name')

    def _play(self, database, script, variables):
        session = {'database': database, 'read_only': True}
        printed = []
        active = []  # one entry per open \if: whether its branch runs
        statement = []
        for line in script.splitlines():
            command = line.split()[0] if line.startswith('\\') else None
            if command == '\\if':
                active.append(all(active) and self._flag(variables, line.split()[1]))
            elif command == '\\endif':
                active.pop()
            elif not all(active):
                continue  # psql skips everything in a false \if branch
            elif command == '\\echo':
                printed.append(line[len('\\echo '):])
            elif command == '\\connect':
                assert line == '\\connect :"%s"' % pg.TARGET_VARIABLE, line
                conninfo = variables[pg.TARGET_VARIABLE]
                self.connects.append(conninfo)
                # A new session: the server's defaults again, so not read-only until it says so.
                session = {'database': conninfo, 'read_only': False}
            elif command:
                raise AssertionError('psql meta-command the fake does not know: %s' % line)
            else:
                statement.append(line)
                if line.rstrip().endswith(';') or line.rstrip().endswith('\\gset'):
                    printed.extend(self._execute('\n'.join(statement), session, variables))
                    statement = []
        assert not active and not ''.join(statement).strip(), 'unterminated script: %r' % script
        return ''.join(line + '\n' for line in printed)

    @staticmethod
    def _flag(variables, reference):
        assert reference.startswith(':'), reference
        value = variables[reference[1:]]
        assert value in ('t', 'f'), value  # what \gset stores for a boolean
        return value == 't'

    def _execute(self, sql, session, variables):
        if sql.startswith('SET '):
            if 'default_transaction_read_only = on' in sql:
                session['read_only'] = True
            return []
        assert session['read_only'], 'a read outside a read-only session: %s' % sql
        target = pg.connection_string(self._target() or '', self.db_user)
        gset = sql.endswith('\\gset')
        if gset and 'AS ragops_database_exists' in sql:
            assert session['database'] == pg.MAINTENANCE_DB
            variables['ragops_database_exists'] = 't' if self._target() else 'f'
            return []
        if gset and 'AS ragops_table_exists' in sql:
            assert session['database'] in (target, self._target())
            variables['ragops_table_exists'] = 't' if (self.db or {}).get('table') else 'f'
            return []
        assert not gset, sql
        if "'server_version'" in sql:
            assert session['database'] == pg.MAINTENANCE_DB
            return [json.dumps(self.cluster)]
        # A separate session names the database; after \connect it is the connection string.
        assert session['database'] in (target, self._target()), session
        if 'to_json(EXISTS' in sql:
            return [json.dumps(self.has_rows)]
        if "'schema_exists'" in sql:
            return [json.dumps(self.db)]
        raise AssertionError('a query the fake does not know: %s' % sql)


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
    def broken(database, sql, variables=None):
        raise pg.PgError('psql in container pg (database postgres) exited with 2: could not connect')
    fake.query = broken
    result, _warnings = run_module(pgvector_database, ARGS)
    assert result['failed'] is True and 'could not connect' in result['msg']


def test_docker_psql_builds_a_safe_command():
    psql = pg.DockerPsql(api=None, container='pg', db_user='postgres')
    assert psql.command("host=evil'") == ['psql', '-v', 'ON_ERROR_STOP=1', '-X', '-q', '-A', '-t', '-d',
                                          "dbname='host=evil\\'' user='postgres'"]


def test_docker_psql_passes_variables_as_arguments_of_their_own():
    psql = pg.DockerPsql(api=None, container='pg', db_user='postgres')
    target = pg.connection_string('a \'b\' \\c: "d" host=e', 'postgres')
    assert psql.command('postgres', {pg.TARGET_VARIABLE: target}) == [
        'psql', '-v', 'ON_ERROR_STOP=1', '-v', 'ragops_target=' + target, '-X', '-q', '-A', '-t', '-d',
        "dbname='postgres' user='postgres'"]


def test_docker_psql_reads_in_read_only_sessions():
    psql = pg.DockerPsql(api=None, container='pg', db_user='postgres')
    with mock.patch.object(psql, 'run', return_value='{}') as run:
        psql.query('rag', 'SELECT 1;', {'name': 'value'})
    run.assert_called_once_with('rag', pg.READ_ONLY_PREAMBLE + 'SELECT 1;', {'name': 'value'})
    assert 'default_transaction_read_only = on' in pg.READ_ONLY_PREAMBLE


# ---------------------------------------------------------------------------------------------
# The one-session read against the reader it replaced: the same state, in fewer psql sessions.


def two_session_read_state(psql, spec):
    """The read as it was before it became one session: the maintenance database, then a session
    of its own in the target database (and a third for has_rows), each parsed on its own."""
    cluster = pg.parse_state(psql.query(pg.MAINTENANCE_DB, pg.cluster_state_sql(spec)))
    db = dict(pg.EMPTY_DATABASE_STATE)
    has_rows = None
    if cluster.get('database'):
        db = pg.parse_state(psql.query(spec['database'], pg.database_state_sql(spec)))
        if spec['state'] == 'absent' and spec['table'] and not spec['index'] and db.get('table'):
            has_rows = pg.parse_state(psql.query(spec['database'], pg.table_has_rows_sql(spec['table'])))
    return cluster, db, has_rows


RAG = {'name': 'rag', 'owner': 'rag'}
RAG_ROLE = {'name': 'rag', 'login': True, 'password': pg.scram_verifier(PASSWORD)}
CHUNKS = {'owner': 'rag', 'columns': {'id': 'bigint', 'content': 'text', 'metadata': 'jsonb', 'embedding': 'vector(768)'}}
CHUNKS_INDEX = {'table': 'chunks', 'method': 'hnsw', 'column': 'embedding', 'columns': 1, 'opclass': 'vector_cosine_ops',
                'options': None}
CONVERGED_DB = dict(pg.EMPTY_DATABASE_STATE, extension='0.8.0', schema_exists=True, table=CHUNKS, relation_kind='r',
                    index=CHUNKS_INDEX, index_name_kind='i', user_tables=['public.chunks'])
CONVERGED_CLUSTER = dict(EMPTY_CLUSTER, role=RAG_ROLE, owner_exists=True, database=RAG)
ABSENT_TABLE = dict(container='pg', database='rag', table=dict(name='chunks'), state='absent')

# (name, module arguments, cluster state, database state, has_rows, psql sessions the two-session reader took)
SCENARIOS = [
    ('database absent', ARGS, EMPTY_CLUSTER, None, False, 1),
    ('database without the extension', ARGS, CONVERGED_CLUSTER, dict(pg.EMPTY_DATABASE_STATE, schema_exists=True), False, 2),
    ('extension, no table', ARGS, CONVERGED_CLUSTER, dict(pg.EMPTY_DATABASE_STATE, extension='0.8.0', schema_exists=True),
     False, 2),
    ('table, no index', ARGS, CONVERGED_CLUSTER, dict(CONVERGED_DB, index=None, index_name_kind=None), False, 2),
    ('converged', ARGS, CONVERGED_CLUSTER, CONVERGED_DB, False, 2),
    ('converged, other index settings', dict(ARGS, index=dict(distance='l2', m=8, ef_construction=32)), CONVERGED_CLUSTER,
     CONVERGED_DB, False, 2),
    ('absent table with rows', ABSENT_TABLE, CONVERGED_CLUSTER, CONVERGED_DB, True, 3),
    ('absent table with rows, force', dict(ABSENT_TABLE, force=True), CONVERGED_CLUSTER, CONVERGED_DB, True, 3),
    ('absent table without rows', ABSENT_TABLE, CONVERGED_CLUSTER, CONVERGED_DB, False, 3),
    ('absent table that is a view', ABSENT_TABLE, CONVERGED_CLUSTER,
     dict(CONVERGED_DB, table=None, relation_kind='v', user_tables=[]), True, 2),
    ('absent table, database absent', ABSENT_TABLE, EMPTY_CLUSTER, None, True, 1),
    ('absent index', dict(ABSENT_TABLE, index=dict()), CONVERGED_CLUSTER, CONVERGED_DB, True, 2),
    ('absent database with tables', dict(container='pg', database='rag', state='absent'), CONVERGED_CLUSTER, CONVERGED_DB,
     True, 2),
]


def run_counting_reads(fake, args, check_mode, read_state):
    """The module's result with ``read_state`` as the reader, how often it read, and its psql sessions."""
    del fake.calls[:]
    reads_of_state = []

    def counted(psql, spec):
        reads_of_state.append(spec)
        return read_state(psql, spec)
    with mock.patch.object(pg, 'read_state', counted):
        result, warnings = run_module(pgvector_database, args, check_mode=check_mode, diff=True)
    return result, warnings, len(reads_of_state), list(fake.calls)


@pytest.mark.parametrize('args,cluster,db,has_rows,two_session_count',
                         [scenario[1:] for scenario in SCENARIOS], ids=[scenario[0] for scenario in SCENARIOS])
@pytest.mark.parametrize('check_mode', [True, False], ids=['check', 'apply'])
def test_one_session_read_gives_the_results_of_the_two_session_read(
        fake, args, cluster, db, has_rows, two_session_count, check_mode):
    fake.cluster, fake.db, fake.has_rows = cluster, db, has_rows
    result, warnings, reads, calls = run_counting_reads(fake, args, check_mode, pg.read_state)
    want, want_warnings, want_reads, want_calls = run_counting_reads(fake, args, check_mode, two_session_read_state)
    assert (result, warnings) == (want, want_warnings)
    assert reads == want_reads  # 2 when writes ran (the state is read again after them), else 1
    sessions = [call for call in calls if call[0] == 'read']
    assert len(sessions) == reads
    assert len([call for call in want_calls if call[0] == 'read']) == two_session_count * reads
    # The same scripts, but for the random salt of a new password's verifier.
    writes = [(database, pg.scrub(sql)) for kind, database, sql in calls if kind == 'write']
    assert writes == [(database, pg.scrub(sql)) for kind, database, sql in want_calls if kind == 'write']


def test_converged_read_is_one_psql_session_in_the_maintenance_database(fake):
    fake.cluster, fake.db = CONVERGED_CLUSTER, CONVERGED_DB
    result, warnings = run_module(pgvector_database, ARGS, diff=True)
    assert result['changed'] is False and result['actions'] == [] and warnings == []
    assert [(kind, database) for kind, database, _sql in fake.calls] == [('check_running', None), ('read', 'postgres')]
    assert fake.connects == [pg.connection_string('rag', 'postgres')]
    assert result['diff']['before'] == result['diff']['after']
    assert result['database'] == RAG and result['extension_version'] == '0.8.0'
    assert result['role'] == {'name': 'rag', 'login': True, 'password': 'scram-sha-256'}
    assert result['table'] == {'schema': 'public', 'name': 'chunks', 'owner': 'rag', 'columns': CHUNKS['columns']}
    assert result['index'] == {'name': 'chunks_embedding_hnsw_idx', 'table': 'chunks', 'method': 'hnsw',
                               'column': 'embedding', 'distance': 'cosine', 'opclass': 'vector_cosine_ops', 'm': 16,
                               'ef_construction': 64}


def test_absent_database_is_read_without_connecting_to_it(fake):
    result, _warnings = run_module(pgvector_database, ARGS, check_mode=True)
    assert result['changed'] is True
    assert len(fake.reads) == 1 and fake.connects == []


def test_rows_of_the_table_to_drop_are_read_in_the_same_session(fake):
    fake.cluster, fake.db, fake.has_rows = CONVERGED_CLUSTER, CONVERGED_DB, True
    result, _warnings = run_module(pgvector_database, ABSENT_TABLE)
    assert result['failed'] is True and 'holds rows' in result['msg']
    assert len(fake.reads) == 1 and fake.connects == [pg.connection_string('rag', 'postgres')] and fake.writes == []
    fake.has_rows = False
    result, _warnings = run_module(pgvector_database, ABSENT_TABLE, check_mode=True)
    assert result['changed'] is True and result['actions'] == ['drop table public.chunks']


def test_fake_refuses_a_read_outside_a_read_only_session(fake):
    """The fake must notice a script that forgets the read-only preamble after \\connect."""
    fake.cluster, fake.db = CONVERGED_CLUSTER, CONVERGED_DB
    spec = pg.build_spec(dict(ARGS, db_user='postgres'))
    script = pg.read_script(spec).replace('\\connect :"ragops_target"\n' + pg.READ_ONLY_PREAMBLE,
                                          '\\connect :"ragops_target"\n')
    assert script != pg.read_script(spec)
    with pytest.raises(AssertionError, match='outside a read-only session'):
        fake.query(pg.MAINTENANCE_DB, script, {pg.TARGET_VARIABLE: pg.connection_string('rag', 'postgres')})
