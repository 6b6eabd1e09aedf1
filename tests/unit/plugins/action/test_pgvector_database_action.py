# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The pgvector_database action plugin, built as ansible-playbook builds it (a Task, a PlayContext,
the local connection with pipelining).

The host is this machine: the plugin's script really runs, with this Python, through the local
connection. Only the Docker Engine is a stand-in: a ``sitecustomize`` on the script's PYTHONPATH
replaces ``docker.APIClient`` with one whose exec streams back, in Docker's own frame format,
what the module tests' FakePsql answers to the request. ``_execute_module`` runs the module
in-process against the same FakePsql and returns its real output (what exit_json prints)."""

from __future__ import annotations

import ast
import base64
import json
import sys
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.ragops.gpu_stack.plugins.action import pgvector_database as action_plugin
from ansible_collections.ragops.gpu_stack.plugins.module_utils import pg
from ansible_collections.ragops.gpu_stack.plugins.modules import pgvector_database

from ansible_collections.ragops.gpu_stack.tests.unit.plugins.action import host_read_harness as harness
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import printed_result
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.modules.test_pgvector_database import (
    CHUNKS,
    CONVERGED_CLUSTER,
    CONVERGED_DB,
    EMPTY_CLUSTER,
    PASSWORD,
    RAG_ROLE,
    FakePsql,
)

MODULE_NAME = 'ragops.gpu_stack.pgvector_database'
TASK_VARS = {'inventory_hostname': 'db-host', 'ansible_python_interpreter': sys.executable}

ARGS = dict(container='pg', database='rag', role='rag', password=PASSWORD, table=dict(name='chunks', dimensions=768),
            index=dict(distance='cosine'))

# Replaces docker.APIClient in the host's Python. Its behaviour comes from the JSON file named by
# RAGOPS_FAKE_DOCKER ({"mode": ..., "answer": {exit_code, stdout, stderr}}); each exec appends
# what it was given to the file named by RAGOPS_FAKE_DOCKER_LOG.
FAKE_DOCKER = r'''
import importlib.abc
import json
import os
import socket
import struct
import sys
import threading

with open(os.environ['RAGOPS_FAKE_DOCKER'], encoding='utf-8') as handle:
    CONFIG = json.load(handle)


def log(entry):
    with open(os.environ['RAGOPS_FAKE_DOCKER_LOG'], 'a', encoding='utf-8') as handle:
        handle.write(json.dumps(entry) + '\n')


class NoDocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'docker' or name.startswith('docker.'):
            raise ImportError('No module named %r' % name)
        return None


if CONFIG['mode'] == 'no-sdk':
    sys.meta_path.insert(0, NoDocker())
else:
    import base64
    import docker

    class FakeAPIClient:
        def __init__(self, version=None, timeout=None, **kwargs):
            if CONFIG['mode'] == 'unreachable':
                raise docker.errors.DockerException('Error while fetching server API version: connection refused')
            self.client = {'version': version, 'timeout': timeout, 'base_url': kwargs.get('base_url')}
            self.entry = None
            self.thread = None

        def exec_create(self, container, cmd, **kwargs):
            if CONFIG['mode'] == 'not-found':
                raise docker.errors.NotFound('No such container: %s' % container)
            self.entry = dict(self.client, container=container, argv=cmd, options=kwargs)
            return {'Id': 'exec-1'}

        def exec_start(self, exec_id, socket=False):
            assert socket is True and exec_id == 'exec-1'
            ours, theirs = _socketpair()
            self.thread = threading.Thread(target=self._serve, args=(theirs,))
            self.thread.start()
            return ours

        def _serve(self, sock):
            stdin = b''
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                stdin += chunk
            self.entry['stdin'] = stdin.decode('utf-8')
            answer = CONFIG['answer']
            for stream, key in ((1, 'stdout'), (2, 'stderr')):
                data = base64.b64decode(answer[key])
                # Docker's multiplexed stream: 8-byte header (stream, 0, 0, 0, big-endian length), then the data.
                for start in range(0, len(data), 1000):
                    part = data[start:start + 1000]
                    sock.sendall(struct.pack('>BxxxL', stream, len(part)) + part)
            sock.close()

        def exec_inspect(self, exec_id):
            self.thread.join()
            log(self.entry)
            return {'ExitCode': CONFIG['answer']['exit_code'], 'Running': False}

    _socketpair = socket.socketpair
    docker.APIClient = FakeAPIClient
'''


def request_of(in_data):
    """The request the plugin appended to docker_exec.py's source: ``host_main(json.loads(<literal>))``."""
    last = in_data.decode('utf-8').rstrip('\n').splitlines()[-1]
    assert last.startswith('host_main(json.loads(') and last.endswith('))'), last
    return json.loads(ast.literal_eval(last[len('host_main(json.loads('):-2]))


def b64(data):
    return base64.b64encode(data).decode('ascii')


class Host:
    """The host: records each low-level command, prepares the Docker stand-in's answer to its
    request from the FakePsql, then runs the command for real through the local connection."""

    def __init__(self, action, fake, directory, monkeypatch):
        self.real = action._low_level_execute_command
        self.fake = fake
        self.config = directory / 'fake-docker.json'
        self.log = directory / 'fake-docker.log'
        self.mode = 'ok'
        self.psql_exit = None  # (exit_code, stderr) to play a failing psql
        self.calls = []
        self.answers = []
        harness.install_stand_in(directory, monkeypatch, FAKE_DOCKER)

    def __call__(self, cmd, sudoable=True, in_data=None, **kwargs):
        self.calls.append(dict(cmd=cmd, sudoable=sudoable, in_data=in_data))
        answer = self.answer(request_of(in_data))
        self.answers.append(answer)
        self.config.write_text(json.dumps({'mode': self.mode, 'answer': answer}), encoding='utf-8')
        return self.real(cmd, sudoable=sudoable, in_data=in_data, **kwargs)

    def answer(self, request):
        if self.psql_exit:
            return {'exit_code': self.psql_exit[0], 'stdout': '', 'stderr': b64(self.psql_exit[1].encode())}
        argv = request['argv']
        assert argv[:3] == ['psql', '-v', 'ON_ERROR_STOP=1'] and argv[-6:-1] == ['-X', '-q', '-A', '-t', '-d'], argv
        # psql's own session: the maintenance database as a connection string, the -v variables.
        assert argv[-1] == pg.connection_string(pg.MAINTENANCE_DB, self.fake.db_user), argv
        variables = dict(value.split('=', 1) for option, value in zip(argv[3:-6:2], argv[4:-6:2]) if option == '-v')
        stdin = base64.b64decode(request['stdin']).decode('utf-8')
        # DockerPsql.query starts with the read-only preamble; FakePsql.query adds it itself.
        assert stdin.startswith(pg.READ_ONLY_PREAMBLE), stdin
        out = self.fake.query(pg.MAINTENANCE_DB, stdin[len(pg.READ_ONLY_PREAMBLE):], variables)
        return {'exit_code': 0, 'stdout': b64(out.encode('utf-8')), 'stderr': ''}

    def execs(self):
        """What the Docker stand-in was asked to exec, in order."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding='utf-8').splitlines()]


def module_output(fake, args, check_mode=False, diff=False):
    """What the module prints for ``args`` against ``fake``, parsed (module_runner.printed_result)."""
    return printed_result(pgvector_database, args, check_mode=check_mode, diff=diff,
                          patches=[mock.patch.object(pgvector_database, 'open_psql', lambda module: fake)])


@pytest.fixture(name='fake')
def fixture_fake():
    return FakePsql(dict(CONVERGED_CLUSTER), dict(CONVERGED_DB))


@pytest.fixture(name='said')
def fixture_said(monkeypatch):
    """What the plugin says at -vvv, in order."""
    return harness.vvv_lines(monkeypatch, action_plugin.display)


@pytest.fixture(name='make_action')
def fixture_make_action(tmp_path, monkeypatch, fake, said):  # pylint: disable=unused-argument
    return harness.action_maker(action_plugin, MODULE_NAME, TASK_VARS, module_output, fake, Host, tmp_path, monkeypatch)


def module_call(args, wrap_async=False):
    return harness.module_call(MODULE_NAME, args, wrap_async)


# ---------------------------------------------------------------------------------------------
# A converged server: answered on the controller, exactly as the module answers

RAG_ROLE_PASSWORD_RAG = dict(RAG_ROLE, password=pg.scram_verifier('rag'))
NO_TABLE_DB = dict(CONVERGED_DB, table=None, relation_kind=None, index=None, index_name_kind=None, user_tables=[])

# (module arguments, cluster state, database state)
CONVERGED = {
    'database, role, table, index': (ARGS, CONVERGED_CLUSTER, CONVERGED_DB),
    'database and role only': (dict(container='pg', database='rag', role='rag', password=PASSWORD), CONVERGED_CLUSTER,
                               CONVERGED_DB),
    'database only, another db_user': (dict(container='pg', database='rag', db_user='admin'), CONVERGED_CLUSTER, CONVERGED_DB),
    'no password': (dict(ARGS, password=None), CONVERGED_CLUSTER, CONVERGED_DB),
    'index by name, defaults spelled out': (dict(ARGS, index=dict(name='chunks_embedding_hnsw_idx', m=16, ef_construction=64)),
                                            CONVERGED_CLUSTER, CONVERGED_DB),
    'state=absent, table already gone': (dict(container='pg', database='rag', table=dict(name='chunks'), state='absent'),
                                         CONVERGED_CLUSTER, NO_TABLE_DB),
    'state=absent, database already gone': (dict(container='pg', database='rag', state='absent'), EMPTY_CLUSTER, None),
    # AnsibleModule masks a no_log value wherever it appears in the result, names included.
    'a password that is also a name in the result': (dict(container='pg', database='rag', role='rag', password='rag'),
                                                     dict(CONVERGED_CLUSTER, role=RAG_ROLE_PASSWORD_RAG), CONVERGED_DB),
}


@pytest.mark.parametrize('diff', [False, True], ids=['plain', 'diff'])
@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('args, cluster, db', list(CONVERGED.values()), ids=list(CONVERGED))
def test_converged_server_is_answered_without_the_module(make_action, fake, args, cluster, db, check_mode, diff):
    fake.cluster, fake.db, fake.db_user = cluster, db, args.get('db_user', 'postgres')
    action, module, host = make_action(args, check_mode=check_mode, diff=diff)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == []
    assert len(host.calls) == 1 and host.calls[0]['sudoable'] is True
    assert host.calls[0]['cmd'] == '%s -' % sys.executable
    assert [kind for kind, _db, _sql in fake.calls] == ['read']
    # The module's own answer (what its exit_json prints) for the same arguments and server.
    assert result == module_output(fake, args, check_mode=check_mode, diff=diff)
    assert result['changed'] is False and result['actions'] == []
    assert ('diff' in result) is diff
    if args.get('password'):
        assert result['invocation']['module_args']['password'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


def test_the_script_asks_docker_for_exactly_one_read_only_psql(make_action, fake):
    action, _module, host = make_action(dict(ARGS, docker_host='tcp://10.0.0.5:2376', docker_timeout=7))
    action.run(task_vars=TASK_VARS)
    [executed] = host.execs()
    spec = pg.build_spec(dict(ARGS, db_user='postgres'))
    target = pg.connection_string('rag', 'postgres')
    assert executed['container'] == 'pg'
    assert executed['base_url'] == 'tcp://10.0.0.5:2376' and executed['timeout'] == 7 and executed['version'] == 'auto'
    assert executed['argv'] == pg.DockerPsql(None, 'pg', 'postgres').command(pg.MAINTENANCE_DB, {pg.TARGET_VARIABLE: target})
    assert executed['stdin'] == pg.READ_ONLY_PREAMBLE + pg.read_script(spec)
    assert executed['options'] == dict(stdin=True, stdout=True, stderr=True, tty=False, environment=pg.PSQL_ENVIRONMENT)


def test_the_tasks_environment_reaches_the_script(make_action, said):
    action, module, host = make_action(ARGS, environment=[{'DOCKER_HOST': 'unix:///run/other/docker.sock'}])
    action.run(task_vars=TASK_VARS)
    assert module.calls == []
    assert host.calls[0]['cmd'].startswith('DOCKER_HOST=')
    assert host.execs()[0]['base_url'] == 'unix:///run/other/docker.sock'


def test_the_discovered_interpreter_is_used_when_none_is_set(make_action):
    action, module, host = make_action(ARGS)
    action.run(task_vars={'inventory_hostname': 'db-host', 'ansible_facts': {'discovered_interpreter_python': sys.executable}})
    assert module.calls == [] and host.calls[0]['cmd'] == '%s -' % sys.executable


def test_the_password_reaches_no_command_and_no_result(make_action, said):
    action, _module, host = make_action(ARGS, diff=True)
    result = action.run(task_vars=TASK_VARS)
    assert result['changed'] is False
    for call in host.calls:
        assert PASSWORD not in call['cmd'] and PASSWORD.encode() not in call['in_data']
    assert PASSWORD not in json.dumps(host.execs())
    # The verifier came back to the controller to be checked; it goes no further.
    stored_key = RAG_ROLE['password'].split('$')[2].split(':')[0]
    [answer] = host.answers
    assert stored_key in base64.b64decode(answer['stdout']).decode()
    for text in (json.dumps(result), '\n'.join(said)):
        assert PASSWORD not in text and stored_key not in text and 'SCRAM-SHA-256$' not in text
        assert answer['stdout'] not in text  # nor the host's answer as it came back


# ---------------------------------------------------------------------------------------------
# A change, a warning or an answer that is not certain: the module's, returned as it is

RAG_DB = dict(CONVERGED_DB)
DRIFT = {
    'no extension': (ARGS, CONVERGED_CLUSTER, dict(RAG_DB, extension=None)),
    'no table': (ARGS, CONVERGED_CLUSTER, dict(RAG_DB, table=None, relation_kind=None, index=None, index_name_kind=None)),
    'no index': (ARGS, CONVERGED_CLUSTER, dict(RAG_DB, index=None, index_name_kind=None)),
    'other index settings': (dict(ARGS, index=dict(m=8, ef_construction=32)), CONVERGED_CLUSTER, RAG_DB),
    'another password': (dict(ARGS, password='another'), CONVERGED_CLUSTER, RAG_DB),
    'an md5 password': (ARGS, dict(CONVERGED_CLUSTER, role=dict(RAG_ROLE, password='md5' + '0' * 32)), RAG_DB),
    'role cannot log in': (ARGS, dict(CONVERGED_CLUSTER, role=dict(RAG_ROLE, login=False)), RAG_DB),
    'another owner': (dict(ARGS, owner='postgres'), CONVERGED_CLUSTER, RAG_DB),
    'no database': (ARGS, EMPTY_CLUSTER, None),
    'state=absent, table with rows': (dict(container='pg', database='rag', table=dict(name='chunks'), state='absent'),
                                      CONVERGED_CLUSTER, RAG_DB),
    'state=absent, index': (dict(container='pg', database='rag', table=dict(name='chunks'), index=dict(), state='absent'),
                            CONVERGED_CLUSTER, RAG_DB),
    'a warning only': (ARGS, CONVERGED_CLUSTER,
                       dict(RAG_DB, table=dict(CHUNKS, columns=dict(CHUNKS['columns'], content='varchar(10)')))),
    'the module reports bad input': (dict(ARGS, table=dict(name='chunks', dimensions=3000)), CONVERGED_CLUSTER, RAG_DB),
    'not a superuser': (ARGS, dict(CONVERGED_CLUSTER, superuser=False), RAG_DB),
}


@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('args, cluster, db', list(DRIFT.values()), ids=list(DRIFT))
def test_anything_but_a_converged_server_runs_the_module(make_action, fake, args, cluster, db, check_mode):
    fake.cluster, fake.db, fake.has_rows = cluster, db, True
    action, module, host = make_action(args, check_mode=check_mode, diff=True)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == module_call(args)
    assert result == module.returned[0]
    assert result.get('changed') or result.get('failed') or result.get('warnings'), result
    assert len(host.calls) <= 1
    assert fake.writes == [] or not check_mode


@pytest.mark.parametrize('psql_exit', [(2, 'psql: error: connection to server failed'), (3, 'ERROR:  permission denied')])
def test_a_failing_psql_runs_the_module(make_action, psql_exit):
    action, module, host = make_action(ARGS)
    host.psql_exit = psql_exit
    result = action.run(task_vars=TASK_VARS)
    assert len(host.calls) == 1 and module.calls == module_call(ARGS)
    assert result == module.returned[0]


ERRORS = {
    'no-sdk': "ImportError: No module named 'docker'",
    'unreachable': 'DockerException: Error while fetching server API version: connection refused',
    'not-found': 'NotFound: No such container: pg',
}


@pytest.mark.parametrize('mode', list(ERRORS))
def test_an_error_on_the_host_runs_the_module(make_action, said, mode):
    action, module, host = make_action(ARGS)
    host.mode = mode
    result = action.run(task_vars=TASK_VARS)
    assert len(host.calls) == 1 and module.calls == module_call(ARGS)
    assert result == module.returned[0]
    # The script itself said why, in its error line (not a crash read as garbage).
    assert said[-1] == '%s runs on the host: on the host: %s' % (MODULE_NAME, ERRORS[mode])


# A complete, valid answer: psql printed ``{}`` and exited with 0.
CLEAN = '{"exit_code": 0, "stdout": "e30K", "stderr": ""}\n'
UNUSABLE = {
    'nothing': (0, ''),
    'a banner only': (0, 'Welcome to the host\n'),
    'a clean answer, but the script failed': (1, CLEAN),
    'no python': (127, '/usr/bin/python3: not found\n'),
    'a traceback': (0, 'Traceback (most recent call last):\n  File "<stdin>", line 1\nSyntaxError: invalid syntax\n'),
    'something after the answer': (0, CLEAN + 'something after the answer\n'),
    'not base64': (0, '{"exit_code": 0, "stdout": "e30K!", "stderr": ""}\n'),
    'a boolean exit code': (0, '{"exit_code": true, "stdout": "e30K", "stderr": ""}\n'),
    'no exit code': (0, '{"stdout": "e30K", "stderr": ""}\n'),
    'a key too many': (0, '{"exit_code": 0, "stdout": "e30K", "stderr": "", "extra": 1}\n'),
    'a list': (0, '["exit_code", 0]\n'),
    'an error and output': (0, '{"error": "x", "exit_code": 0, "stdout": "e30K", "stderr": ""}\n'),
}


@pytest.mark.parametrize('rc, stdout', list(UNUSABLE.values()), ids=list(UNUSABLE))
def test_an_answer_that_is_not_a_clean_read_is_refused(rc, stdout):
    with pytest.raises(action_plugin.HostError):
        action_plugin.host_answer(rc, stdout)


def test_a_clean_answer_is_read_after_any_banner():
    assert action_plugin.host_answer(0, 'Welcome\n' + CLEAN) == (0, b'{}\n', b'')
    assert action_plugin.host_answer(0, '{"exit_code": 2, "stdout": "", "stderr": "ZXJy"}') == (2, b'', b'err')


@pytest.mark.parametrize('rc, stdout', list(UNUSABLE.values()), ids=list(UNUSABLE))
def test_an_answer_that_is_not_a_clean_read_runs_the_module(make_action, rc, stdout):
    action, module, _host = make_action(ARGS)
    action._low_level_execute_command = mock.Mock(
        return_value=dict(rc=rc, stdout=stdout, stderr='', stdout_lines=stdout.splitlines(), stderr_lines=[]))
    result = action.run(task_vars=TASK_VARS)
    assert action._low_level_execute_command.call_count == 1
    assert module.calls == module_call(ARGS) and result == module.returned[0]


def test_a_garbled_psql_answer_runs_the_module(make_action, fake):
    action, module, host = make_action(ARGS)
    host.answer = lambda request: {'exit_code': 0, 'stdout': b64(b'ragops-answer cluster\nnot json\n'), 'stderr': ''}
    result = action.run(task_vars=TASK_VARS)
    assert len(host.calls) == 1 and module.calls == module_call(ARGS) and result == module.returned[0]


@pytest.mark.parametrize('task_vars', [
    {'inventory_hostname': 'db-host'},
    {'inventory_hostname': 'db-host', 'ansible_python_interpreter': 'auto_silent'},
    {'inventory_hostname': 'db-host', 'ansible_python_interpreter': '{{ undefined_variable }}'},
], ids=['nothing', 'auto, not discovered yet', 'a template that does not render'])
def test_no_known_interpreter_runs_the_module(make_action, task_vars):
    action, module, host = make_action(ARGS)
    action.run(task_vars=task_vars)
    assert host.calls == [] and module.calls == module_call(ARGS)


def test_without_pipelining_the_module_runs(make_action):
    action, module, host = make_action(ARGS, pipelining=False)
    action.run(task_vars=TASK_VARS)
    assert host.calls == [] and module.calls == module_call(ARGS)


def test_async_runs_the_module_as_a_job(make_action):
    action, module, host = make_action(ARGS, async_val=30)
    action.run(task_vars=TASK_VARS)
    assert host.calls == [] and module.calls == module_call(ARGS, wrap_async=True)


def test_a_validation_warning_runs_the_module(make_action, said):
    """A deprecated alias warns while validating; that warning is the module's to give."""
    action, module, host = make_action(ARGS)
    renamed = dict(action_plugin.argument_spec(), container=dict(
        type='str', required=True, aliases=['name'],
        deprecated_aliases=[dict(name='name', version='9.0.0', collection_name='ragops.gpu_stack')]))
    args = dict(ARGS)
    args['name'] = args.pop('container')
    action._task.args = args
    with mock.patch.object(action_plugin, 'argument_spec', lambda: renamed):
        action.run(task_vars=TASK_VARS)
    assert host.calls == [] and len(module.calls) == 1
    assert 'a warning' in said[-1]


# ---------------------------------------------------------------------------------------------
# Bad arguments fail on the controller, naming the option


@pytest.mark.parametrize('args, words', [
    ({'bogus': 1}, ['Unsupported parameters', MODULE_NAME, 'bogus']),
    ({'container': None, 'database': None}, ['missing required arguments', 'container', 'database']),
    ({'extension': 'maybe'}, ['extension', 'bool']),
    ({'table': {'name': 'chunks', 'dimensions': 'many'}}, ['dimensions', 'int']),
    ({'index': {'distance': 'manhattan'}}, ['distance', 'cosine, l2, ip']),
    ({'state': 'gone'}, ['state', 'present, absent']),
])
def test_bad_arguments_fail_before_the_host_is_asked(make_action, args, words):
    args = {key: value for key, value in dict(ARGS, **args).items() if value is not None}
    action, module, host = make_action(args)
    with pytest.raises(AnsibleActionFail) as err:
        action.run(task_vars=TASK_VARS)
    for word in words:
        assert word in str(err.value)
    assert module.calls == [] and host.calls == []
    assert PASSWORD not in str(err.value)


# ---------------------------------------------------------------------------------------------
# The script by itself


def test_host_script_is_docker_exec_and_the_request_as_a_literal():
    request = {'argv': ['psql', "it's \"quoted\"\n"], 'stdin': '', 'container': 'pg'}
    script = action_plugin.host_script(request)
    assert script.startswith(open(action_plugin.docker_exec.__file__, encoding='utf-8').read())
    assert request_of(script.encode()) == request
    assert 'import ansible' not in script and 'from ansible' not in script
