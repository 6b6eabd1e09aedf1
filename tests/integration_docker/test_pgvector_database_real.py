# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgvector_database against a real PostgreSQL: the test world's pgvector image on the host's dockerd.

The module's main() runs in-process; so does its action plugin, whose script runs with this
Python through the local connection (the last tests). Password checks log in over TCP to the container's own
bridge address, where the image asks for scram-sha-256 (the local socket is trusted). Containers
are named ragops-ut-pgdb-* and removed afterwards. Run:
    .venv/bin/python -m pytest tests/integration_docker/test_pgvector_database_real.py -q
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import sys
import time
import uuid
from unittest import mock

import pytest
from ansible.module_utils import _internal as module_internal
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar

from ansible_collections.ragops.gpu_stack.plugins.action import pgvector_database as action_plugin
from ansible_collections.ragops.gpu_stack.plugins.module_utils import pg
from ansible_collections.ragops.gpu_stack.plugins.modules import pgvector_database

from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import run_module

docker = pytest.importorskip('docker')

IMAGE = 'ragops-world/pgvector:pg17'
PREFIX = 'ragops-ut-pgdb-'


@pytest.fixture(name='client', scope='module')
def fixture_client():
    try:
        client = docker.from_env()
        client.ping()
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip('%s is not built (tests/world/world.sh images pgvector)' % IMAGE)
    except docker.errors.DockerException as exc:
        pytest.skip('no Docker engine: %s' % exc)
    return client


class Server:
    """One pgvector container: exec helpers that never put a password on a command line."""

    def __init__(self, container):
        self.container = container
        self.name = container.name
        self.container.reload()
        self.address = next(iter(container.attrs['NetworkSettings']['Networks'].values()))['IPAddress']

    def exec(self, argv, env=None):
        code, (out, err) = self.container.exec_run(argv, environment=env or {}, demux=True)
        return code, (out or b'').decode(), (err or b'').decode()

    def wait_ready(self, timeout=90):
        deadline = time.monotonic() + timeout
        while True:
            # TCP: the entrypoint's socket-only init server must not count as ready.
            if self.exec(['pg_isready', '-h', '127.0.0.1', '-p', '5432'])[0] == 0:
                return
            if time.monotonic() > deadline:
                pytest.fail('%s not ready after %ss:\n%s' % (self.name, timeout, self.container.logs().decode()))
            time.sleep(0.3)

    def sql(self, sql, database='postgres'):
        """Superuser SQL over the trusted local socket (a connection string, so any name stays a name)."""
        code, out, err = self.exec(['psql', '-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-d', pg.connection_string(database, 'postgres'),
                                    '-c', sql])
        assert code == 0, err
        return out.strip()

    def login(self, user, password, database):
        """A scram-sha-256 login over TCP to the container's own address; True when it works."""
        code, _out, err = self.exec(
            ['psql', '-X', '-qAt', '-h', self.address, '-U', user, '-d', database, '-c', 'select 1'],
            env={'PGPASSWORD': password})
        if code != 0:
            assert 'password authentication failed' in err, err
        return code == 0


@pytest.fixture(name='server', scope='module')
def fixture_server(client):
    name = PREFIX + uuid.uuid4().hex[:8]
    container = client.containers.run(IMAGE, detach=True, name=name, environment={'POSTGRES_PASSWORD': 'initial-superuser'})
    try:
        server = Server(container)
        server.wait_ready()
        yield server
    finally:
        container.remove(force=True, v=True)


def run(args, check_mode=False, diff=False):
    result, warnings = run_module(pgvector_database, args, check_mode=check_mode, diff=diff)
    assert not result.get('failed'), result
    return result, warnings


def test_database_role_extension_table_index_lifecycle(server):
    args = dict(container=server.name, database='rag', role='rag', password='first-Pässword',
                table=dict(name='chunks', dimensions=3), index=dict(distance='cosine', m=8, ef_construction=32))

    predicted, _warnings = run(args, check_mode=True, diff=True)
    assert predicted['changed'] is True
    assert server.sql("SELECT count(*) FROM pg_database WHERE datname = 'rag'") == '0'
    assert server.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'rag'") == '0'

    first, warnings = run(args, diff=True)
    assert first['changed'] is True and warnings == []
    assert first['actions'] == predicted['actions']
    assert first['diff']['after'] == predicted['diff']['after']
    assert first['extension_version'] == '0.8.0'
    assert first['database'] == {'name': 'rag', 'owner': 'rag'}
    assert first['table']['columns'] == {'id': 'bigint', 'content': 'text', 'metadata': 'jsonb', 'embedding': 'vector(3)'}
    assert first['index'] == {'name': 'chunks_embedding_hnsw_idx', 'table': 'chunks', 'method': 'hnsw', 'column': 'embedding',
                              'distance': 'cosine', 'opclass': 'vector_cosine_ops', 'm': 8, 'ef_construction': 32}
    assert 'first-Pässword' not in repr(first)
    assert server.sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'", 'rag') == '0.8.0'
    assert 'USING hnsw (embedding vector_cosine_ops)' in server.sql(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw_idx'", 'rag')
    assert server.login('rag', 'first-Pässword', 'rag')

    # The application role owns its table and can use it.
    code, out, err = server.exec(
        ['psql', '-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-h', server.address, '-U', 'rag', '-d', 'rag', '-c',
         "INSERT INTO chunks (content, embedding) VALUES ('a', '[1,0,0]'), ('b', '[0,1,0]'), ('c', '[0,0,1]');"
         "SELECT content FROM chunks ORDER BY embedding <=> '[0.9,0.1,0]' LIMIT 1"],
        env={'PGPASSWORD': 'first-Pässword'})
    assert code == 0, err
    assert out.strip() == 'a'

    second, _warnings = run(args, diff=True)
    assert second['changed'] is False and second['actions'] == []
    assert second['diff']['before'] == second['diff']['after']
    assert server.sql('SELECT count(*) FROM chunks', 'rag') == '3'

    # A new password: check mode predicts the change and leaves the old password working.
    rotated = dict(args, password='second-password')
    checked, _warnings = run(rotated, check_mode=True, diff=True)
    assert checked['changed'] is True
    assert checked['actions'] == ['set the password of role rag']
    assert checked['role']['password_changed'] is True
    assert server.login('rag', 'first-Pässword', 'rag')
    assert not server.login('rag', 'second-password', 'rag')

    applied, _warnings = run(rotated)
    assert applied['changed'] is True and applied['actions'] == ['set the password of role rag']
    assert server.login('rag', 'second-password', 'rag')
    assert not server.login('rag', 'first-Pässword', 'rag')
    again, _warnings = run(rotated)
    assert again['changed'] is False
    assert server.sql('SELECT count(*) FROM chunks', 'rag') == '3'

    # Different index settings rebuild the index and keep the rows.
    rebuilt, _warnings = run(dict(rotated, index=dict(distance='l2')))
    assert rebuilt['changed'] is True
    assert rebuilt['actions'] == ['rebuild index public.chunks_embedding_hnsw_idx '
                                  '(distance cosine -> l2, opclass vector_cosine_ops -> vector_l2_ops, m 8 -> 16, '
                                  'ef_construction 32 -> 64)']
    assert rebuilt['index']['opclass'] == 'vector_l2_ops'
    assert server.sql('SELECT count(*) FROM chunks', 'rag') == '3'

    # Another vector length is refused, not rewritten.
    result, _warnings = run_module(pgvector_database, dict(rotated, table=dict(name='chunks', dimensions=4), index=None))
    assert result['failed'] is True
    assert 'vector(3)' in result['msg'] and 'vector(4)' in result['msg']

    # A table with rows is not dropped without force; the index alone can go.
    refused, _warnings = run_module(pgvector_database, dict(container=server.name, database='rag',
                                                            table=dict(name='chunks'), state='absent'))
    assert refused['failed'] is True and 'holds rows' in refused['msg']
    dropped, _warnings = run(dict(container=server.name, database='rag', table=dict(name='chunks'), index=dict(), state='absent'))
    assert dropped['actions'] == ['drop index public.chunks_embedding_hnsw_idx'] and dropped['index'] is None
    assert server.sql('SELECT count(*) FROM chunks', 'rag') == '3'


def test_verifier_recorded_from_postgres_matches(server):
    """The fixture in the unit tests came from this image; compute one here too, both ways."""
    server.sql("SET password_encryption = 'scram-sha-256'; CREATE ROLE fixture_check PASSWORD 'pw'")
    stored = server.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'fixture_check'")
    iterations, salt, _stored_key, _server_key = pg.parse_scram_verifier(stored)
    assert pg.scram_verifier('pw', salt, iterations) == stored
    assert pg.password_matches('pw', stored) and not pg.password_matches('pW', stored)


def test_quoted_names_and_absent_database(server):
    args = dict(container=server.name, database='My "Data"', owner='postgres', extension=True,
                table=dict(name='Docs', schema='Store', dimensions=2000, content_column='', id_type='uuid'),
                index=dict(name='docs ip', distance='ip'))
    first, _warnings = run(args)
    assert first['changed'] is True
    assert first['table']['columns'] == {'id': 'uuid', 'metadata': 'jsonb', 'embedding': 'vector(2000)'}
    assert first['index']['distance'] == 'ip'
    assert run(args)[0]['changed'] is False

    refused, _warnings = run_module(pgvector_database, dict(container=server.name, database='My "Data"', state='absent'))
    assert refused['failed'] is True and 'Store.Docs' in refused['msg']
    gone, _warnings = run(dict(container=server.name, database='My "Data"', state='absent', force=True), diff=True)
    assert gone['changed'] is True and gone['database'] is None
    assert server.sql("SELECT count(*) FROM pg_database WHERE datname = 'My \"Data\"'") == '0'
    assert run(dict(container=server.name, database='My "Data"', state='absent'))[0]['changed'] is False


def test_missing_container_fails_cleanly(client):
    result, _warnings = run_module(pgvector_database, dict(container=PREFIX + 'does-not-exist', database='x'))
    assert result['failed'] is True and 'does not exist' in result['msg']


# psql's own syntax in a database name: quotes of both kinds, a space, backslashes, colons (psql
# variables), a conninfo key and a URI: the name must stay a name, in SQL and for \connect.
AWKWARD_NAMES = ['rag\'s "db" \\x: host=evil :ragops_target', 'postgresql://h/db \\! touch /tmp/pwned', '-']


@pytest.mark.parametrize('name', AWKWARD_NAMES)
def test_awkward_database_name_in_one_session(server, name):
    args = dict(container=server.name, database=name, owner='postgres',
                table=dict(name='chunks', dimensions=3), index=dict(distance='l2'))
    first, _warnings = run(args, diff=True)
    assert first['changed'] is True and first['database'] == {'name': name, 'owner': 'postgres'}
    literal = pg.quote_literal(name)
    assert server.sql('SELECT datname FROM pg_database WHERE datname = %s' % literal) == name
    assert server.sql("SELECT count(*) FROM pg_class WHERE relname = 'chunks_embedding_hnsw_idx'", name) == '1'

    # Converged: one docker exec, whose session \connects to the database by its name.
    execs = []
    original = docker.APIClient.exec_create

    def counted(api, container, cmd, **kwargs):
        execs.append(cmd)
        return original(api, container, cmd, **kwargs)
    with mock.patch.object(docker.APIClient, 'exec_create', counted):
        again, _warnings = run(args, diff=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after']
    assert again['table']['columns'] == {'id': 'bigint', 'content': 'text', 'metadata': 'jsonb', 'embedding': 'vector(3)'}
    assert again['index']['distance'] == 'l2'
    assert len(execs) == 1

    # has_rows is read after \connect too.
    server.sql("INSERT INTO chunks (embedding) VALUES ('[1,2,3]')", name)
    refused, _warnings = run_module(pgvector_database, dict(container=server.name, database=name,
                                                            table=dict(name='chunks'), state='absent'))
    assert refused['failed'] is True and 'holds rows' in refused['msg']
    gone, _warnings = run(dict(container=server.name, database=name, state='absent', force=True))
    assert gone['changed'] is True and gone['database'] is None
    assert server.sql('SELECT count(*) FROM pg_database WHERE datname = %s' % literal) == '0'
    assert server.exec(['ls', '/tmp'])[1].strip() == ''


def test_session_after_connect_is_read_only(server):
    """A write appended to the read script fails in the target database: the session there is read-only."""
    run(dict(container=server.name, database='readonly check', owner='postgres', extension=False))
    spec = pg.build_spec(dict(database='readonly check', db_user='postgres', extension=False))
    script = pg.read_script(spec)
    assert script.endswith('\\endif\n')
    probe = script[:-len('\\endif\n')] + 'CREATE TABLE ragops_probe ();\n\\endif\n'
    psql = pg.DockerPsql(docker.APIClient(), server.name, 'postgres')
    target = {pg.TARGET_VARIABLE: pg.connection_string('readonly check', 'postgres')}
    with pytest.raises(pg.PgError, match='read-only transaction'):
        psql.query(pg.MAINTENANCE_DB, probe, target)
    answers = pg.parse_answers(psql.query(pg.MAINTENANCE_DB, script, target))
    assert answers['cluster']['database'] == {'name': 'readonly check', 'owner': 'postgres'}
    assert answers['database']['user_tables'] == []


# ---------------------------------------------------------------------------------------------
# The action plugin against this server: the local connection, this Python (which has the docker
# SDK) as the host's, the script really run. Only _execute_module is a stand-in: it records the
# call and runs the module in-process, printing what its exit_json prints.


def module_output(args, check_mode=False, diff=False):
    """The module's real output for ``args`` (exit_json's JSON line, parsed)."""
    stdout = io.StringIO()
    module_args = dict(copy.deepcopy(args), _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(module_args), mock.patch.object(module_internal, 'is_controller', False), \
            mock.patch.dict(module_warnings._global_warnings, clear=True), \
            contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
        pgvector_database.main()
    return json.loads(stdout.getvalue().strip().splitlines()[-1])


def make_action(args, check_mode=False, diff=False):
    task = Task()
    task.args = copy.deepcopy(args)
    task.check_mode = check_mode
    task.diff = diff
    play_context = PlayContext()
    connection = connection_loader.get('local', play_context, None)
    connection.set_options(direct={'pipelining': True})
    loader = DataLoader()
    action = action_plugin.ActionModule(task, connection, play_context, loader=loader,
                                        templar=Templar(loader=loader), shared_loader_obj=None)
    action._load_name = 'ragops.gpu_stack.pgvector_database'
    calls = []

    def execute_module(module_name=None, module_args=None, task_vars=None, wrap_async=False):
        calls.append(dict(module_name=module_name, module_args=copy.deepcopy(module_args)))
        return module_output(module_args, check_mode=check_mode, diff=diff)
    action._execute_module = execute_module
    action._low_level_execute_command = mock.Mock(wraps=action._low_level_execute_command)
    return action, calls


ACTION_TASK_VARS = {'inventory_hostname': 'localhost', 'ansible_python_interpreter': sys.executable}


@pytest.mark.parametrize('check_mode, diff', [(False, False), (True, True)], ids=['run', 'check-diff'])
def test_action_plugin_answers_a_converged_server_and_runs_the_module_on_drift(server, check_mode, diff):
    args = dict(container=server.name, database='fast', role='fast', password='fast-Pässword',
                table=dict(name='chunks', dimensions=3), index=dict(distance='cosine'))
    run(args)

    action, calls = make_action(args, check_mode=check_mode, diff=diff)
    result = action.run(task_vars=ACTION_TASK_VARS)
    assert calls == []
    assert action._low_level_execute_command.call_count == 1
    assert result == module_output(args, check_mode=check_mode, diff=diff)
    assert result['changed'] is False and result['invocation']['module_args']['password'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert 'fast-Pässword' not in json.dumps(result) and 'SCRAM-SHA-256$' not in json.dumps(result)
    command = action._low_level_execute_command.call_args
    assert 'fast-Pässword' not in command.args[0] and 'fast-Pässword'.encode() not in command.kwargs['in_data']

    server.sql('DROP TABLE chunks', 'fast')
    action, calls = make_action(args, check_mode=check_mode, diff=diff)
    result = action.run(task_vars=ACTION_TASK_VARS)
    assert calls == [dict(module_name='ragops.gpu_stack.pgvector_database', module_args=args)]
    assert result['changed'] is True and 'create table public.chunks with embedding vector(3)' in result['actions']
    run(args)  # converged again for the next parameter


def test_action_plugin_leaves_a_stopped_container_to_the_module(client):
    name = PREFIX + uuid.uuid4().hex[:8]
    container = client.containers.create(IMAGE, name=name, environment={'POSTGRES_PASSWORD': 'x'})
    try:
        args = dict(container=name, database='rag')
        action, calls = make_action(args)
        result = action.run(task_vars=ACTION_TASK_VARS)
        assert len(calls) == 1 and action._low_level_execute_command.call_count == 1
        assert result['failed'] is True and 'is not running' in result['msg']
    finally:
        container.remove(force=True, v=True)
