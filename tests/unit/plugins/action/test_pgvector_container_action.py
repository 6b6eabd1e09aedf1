# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The pgvector_container action plugin, built as ansible-playbook builds it (a Task, a PlayContext,
the local connection with pipelining).

The host is this machine: the plugin's script really runs, with this Python, through the local
connection, and reads a real password file under the test's tmp_path. Only the Docker Engine is
a stand-in: a ``sitecustomize`` on the script's PYTHONPATH replaces ``docker.APIClient`` with one
that answers inspect calls from the state of the module tests' FakeClient, written to a file
before each command. ``_execute_module`` runs the module in-process against the same FakeClient
and the same password file and returns what its exit_json prints."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.ragops.gpu_stack.plugins.action import pgvector_container as action_plugin
from ansible_collections.ragops.gpu_stack.plugins.modules import pgvector_container
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils import host_read
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils.host_read import HostError
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.action import host_read_harness as harness
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, printed_result
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_container import FakeClient
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.modules.test_pgvector_container import PG_IMAGE

MODULE_NAME = 'ragops.gpu_stack.pgvector_container'
TASK_VARS = {'inventory_hostname': 'db-host', 'ansible_python_interpreter': sys.executable}
PORT = free_port()
PASSWORD = 'pgc-s3cret-Zq7'
MASKED = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


def module_output(fake, args, check_mode=False, diff=False):
    return printed_result(pgvector_container, args, check_mode=check_mode, diff=diff,
                          patches=[mock.patch.object(pgvector_container, 'connect', lambda module: fake)])


@pytest.fixture(name='args')
def fixture_args(tmp_path):
    return dict(password=PASSWORD, password_file=str(tmp_path / 'secrets' / 'pw'), port=PORT, user='rag',
                database='rag', shared_buffers='64MB', wait_healthy_timeout=1)


@pytest.fixture(name='fake')
def fixture_fake(args):
    """An engine on which the module has created the container of ``args``, healthy, and written the file."""
    fake = FakeClient(images=PG_IMAGE)
    result = module_output(fake, args)
    assert result['actions'] == ['write password file %s' % args['password_file'], 'create and start'], result
    fake.calls = []
    return fake


@pytest.fixture(name='said')
def fixture_said(monkeypatch):
    """What the plugin says at -vvv, in order."""
    return harness.vvv_lines(monkeypatch, host_read.display)


@pytest.fixture(name='make_action')
def fixture_make_action(tmp_path, monkeypatch, fake, said):  # pylint: disable=unused-argument
    return harness.action_maker(action_plugin, MODULE_NAME, TASK_VARS, module_output, fake, harness.InspectHost, tmp_path, monkeypatch)


def module_call(args, wrap_async=False):
    return harness.module_call(MODULE_NAME, args, wrap_async)


def request_of(in_data):
    """The request the plugin appended to docker_exec.py's source: ``host_inspect(json.loads(<literal>))``."""
    last = in_data.decode('utf-8').rstrip('\n').splitlines()[-1]
    assert last.startswith('host_inspect(json.loads(') and last.endswith('))'), last
    return json.loads(ast.literal_eval(last[len('host_inspect(json.loads('):-2]))


# ---------------------------------------------------------------------------------------------
# A converged container with its password file: answered on the controller, exactly as the module answers


@pytest.mark.parametrize('diff', [False, True], ids=['plain', 'diff'])
@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
def test_converged_container_is_answered_without_the_module(make_action, fake, args, check_mode, diff):
    action, module, host = make_action(args, check_mode=check_mode, diff=diff)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == []
    assert len(host.calls) == 1 and host.calls[0]['cmd'] == '%s -' % sys.executable and host.calls[0]['sudoable']
    expected = module_output(fake, args, check_mode=check_mode, diff=diff)
    assert result == expected
    assert result['changed'] is False and result['actions'] == [] and ('diff' in result) is diff
    assert result['password_file'] == args['password_file'] and result['container']['health'] == 'healthy'
    assert result['invocation']['module_args']['password'] == MASKED
    # One snapshot: the container, the image it runs, the spec's image; no network (the default bridge).
    assert [call[0] for call in host.engine_calls()] == ['client', 'inspect_container', 'inspect_image', 'inspect_image']
    assert request_of(host.calls[0]['in_data'])['files'] == [args['password_file']]


def _unset_password(args, _fake):
    return dict(args, password=None)


def _trailing_newlines(args, _fake):
    with open(args['password_file'], 'w', encoding='utf-8') as handle:
        handle.write(PASSWORD + '\n\n')
    return args


def _networked(args, fake):
    networked = dict(args, network='ragops')
    module_output(fake, networked)
    return networked


def _stopped_as_asked(args, fake):
    stopped = dict(args, state='stopped')
    module_output(fake, stopped)
    return stopped


def _absent(args, fake):
    gone = dict(args, state='absent')
    module_output(fake, gone)
    os.unlink(args['password_file'])  # absent never looks at the file
    return gone


CONVERGED = {
    'password unset, the file there': _unset_password,
    'the file with trailing newlines': _trailing_newlines,
    'on a user network': _networked,
    'stopped as asked': _stopped_as_asked,
    'absent as asked': _absent,
}


@pytest.mark.parametrize('prepare', list(CONVERGED.values()), ids=list(CONVERGED))
def test_other_converged_cases_are_answered_without_the_module(make_action, fake, args, prepare):
    args = {key: value for key, value in prepare(args, fake).items() if value is not None}
    action, module, host = make_action(args)
    result = action.run(task_vars=TASK_VARS)
    assert module.calls == [] and len(host.calls) == 1
    assert result == module_output(fake, args) and result['changed'] is False


# ---------------------------------------------------------------------------------------------
# Anything else: the module's, with the task's raw arguments, returned as it is


def _chmod(mode):
    def change(args, _fake):
        os.chmod(args['password_file'], mode)
    return change


def _chown(uid, gid):
    def change(args, _fake):
        os.chown(args['password_file'], uid, gid)
    return change


def _remove_file(args, _fake):
    os.unlink(args['password_file'])


def _stopped(_args, fake):
    fake.containers['pgvector']['State'] = {'Status': 'exited', 'Running': False, 'ExitCode': 0}


def _health(status):
    def change(_args, fake):
        fake.containers['pgvector']['State']['Health']['Status'] = status
    return change


def _new_image(_args, fake):
    fake.images['pgvector/pgvector:pg17']['Id'] = 'sha256:newer'


# (arguments from the fixture's, a change to the host)
DRIFT = {
    'password changed': (dict(password='another-one'), None),
    'password file mode 0644': ({}, _chmod(0o644)),
    'password file mode 0640': ({}, _chmod(0o640)),
    'password file owner not root': ({}, _chown(1000, 0)),
    'password file group not root': ({}, _chown(0, 1000)),
    'password file missing': ({}, _remove_file),
    'password file missing, password unset': (dict(password=None), _remove_file),
    'password of two lines': (dict(password=PASSWORD + '\nmore'), None),
    'setting changed': (dict(shared_buffers='128MB'), None),
    'env added': (dict(env={'TZ': 'UTC'}), None),
    'port changed': (dict(port=free_port()), None),
    'image id changed': ({}, _new_image),
    'container stopped': ({}, _stopped),
    'container unhealthy': ({}, _health('unhealthy')),
    'container starting': ({}, _health('starting')),
    'container missing': ({}, lambda _args, fake: fake.containers.clear()),
    'network missing': (dict(network='ragops'), None),
    'pull always': (dict(pull='always'), None),
    'absent with a container': (dict(state='absent'), None),
    'bad input the module reports': (dict(user='no-dashes'), None),
}


@pytest.mark.parametrize('overrides, change', list(DRIFT.values()), ids=list(DRIFT))
def test_anything_but_a_converged_container_runs_the_module(make_action, fake, args, overrides, change):
    args = {key: value for key, value in dict(args, **overrides).items() if value is not None}
    if change:
        change(args, fake)
    # Check mode: the module reports what it would do without writing or waiting on a health check.
    action, module, host = make_action(args, check_mode=True, diff=True)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == module_call(args)
    assert result == module.returned[0]
    assert len(host.calls) <= 1


def test_a_password_file_path_the_host_expands_asks_the_host_nothing(make_action, args, said):
    args = dict(args, password_file='/etc/ragops/$NAME/pw')
    action, module, host = make_action(args, check_mode=True)
    action.run(task_vars=TASK_VARS)
    assert host.calls == [] and module.calls == module_call(args)
    assert 'expands it on the host' in said[-1]


def test_the_password_reaches_no_command_no_result_and_no_message(make_action, fake, args, said):
    action, module, host = make_action(args, diff=True)
    converged = action.run(task_vars=TASK_VARS)
    assert module.calls == []
    salt = request_of(host.calls[0]['in_data'])['salt']
    digest = hashlib.sha256((salt + PASSWORD).encode('utf-8')).hexdigest()
    assert salt and len(salt) >= 32

    # The module's message for a bad user quotes the value, here the password: -vvv shows it masked.
    changed = dict(args, password=PASSWORD, user=PASSWORD)
    action, module, host2 = make_action(changed, check_mode=True)
    drifted = action.run(task_vars=TASK_VARS)
    assert module.calls == module_call(changed)

    for call in host.calls + host2.calls:
        assert PASSWORD not in call['cmd'] and PASSWORD.encode() not in call['in_data']
    for shown in (repr(converged), repr(said)):
        assert PASSWORD not in shown and digest not in shown and salt not in shown
    assert said and all(PASSWORD not in line for line in said) and '********' in said[-1]
    assert drifted == module.returned[0]


def test_each_read_has_its_own_salt(make_action, args):
    salts = []
    for _read in range(2):
        action, _module, host = make_action(args)
        action.run(task_vars=TASK_VARS)
        salts.append(request_of(host.calls[0]['in_data'])['salt'])
    assert salts[0] != salts[1]


ERRORS = {
    'no-sdk': "ImportError: No module named 'docker'",
    'unreachable': 'DockerException: Error while fetching server API version: connection refused',
}


@pytest.mark.parametrize('mode', list(ERRORS))
def test_an_error_on_the_host_runs_the_module(make_action, args, said, mode):
    action, module, host = make_action(args)
    host.mode = mode
    result = action.run(task_vars=TASK_VARS)
    assert len(host.calls) == 1 and module.calls == module_call(args) and result == module.returned[0]
    assert said[-1] == '%s runs on the host: on the host: %s' % (MODULE_NAME, ERRORS[mode])


def _answer(path, facts, euid=0):
    return json.dumps(dict(container=None, container_image=None, image=None, networks=None, files={path: facts},
                           euid=euid))


UNUSABLE = {
    'nothing': lambda path: (0, ''),
    'a traceback': lambda path: (1, 'Traceback (most recent call last):\nNameError: x\n'),
    'a clean answer, but the script failed': lambda path: (1, _answer(path, None)),
    'another file': lambda path: (0, _answer(path + '.other', None)),
    'no files': lambda path: (0, _answer(path, None).replace('"files"', '"file"')),
    'a mode that is text': lambda path: (0, _answer(path, dict(mode='0600', uid=0, gid=0, digest='x'))),
    'facts that are a list': lambda path: (0, _answer(path, [0o100600, 0, 0])),
    'an euid that is text': lambda path: (0, _answer(path, dict(mode=0o100600, uid=0, gid=0, digest='x'), euid='0')),
    'something after the answer': lambda path: (0, _answer(path, None) + '\nbye\n'),
}


@pytest.mark.parametrize('answer', list(UNUSABLE.values()), ids=list(UNUSABLE))
def test_an_answer_that_is_not_a_clean_read_runs_the_module(make_action, args, answer):
    action, module, _host = make_action(args)
    rc, stdout = answer(args['password_file'])
    action._low_level_execute_command = mock.Mock(return_value=dict(rc=rc, stdout=stdout, stderr=''))
    result = action.run(task_vars=TASK_VARS)
    assert action._low_level_execute_command.call_count == 1
    assert module.calls == module_call(args) and result == module.returned[0]


PLAN = {
    'as the module leaves it': (dict(mode=0o100600, uid=0, gid=0), PASSWORD, 0, []),
    'password unset': (dict(mode=0o100600, uid=0, gid=0), None, 0, []),
    'another text': (dict(mode=0o100600, uid=0, gid=0, text='x'), PASSWORD, 0, ['write password file /pw']),
    'not UTF-8': (dict(mode=0o100600, uid=0, gid=0, digest=None), PASSWORD, 0, ['write password file /pw']),
    'not UTF-8, password unset': (dict(mode=0o100600, uid=0, gid=0, digest=None), None, 0, []),
    'group readable': (dict(mode=0o100640, uid=0, gid=0), PASSWORD, 0, ['password file /pw mode 0600']),
    'owned by 1000, read as root': (dict(mode=0o100600, uid=1000, gid=0), PASSWORD, 0, ['password file /pw owner root']),
    'owned by 1000, read as 1000': (dict(mode=0o100600, uid=1000, gid=1000), PASSWORD, 1000, []),
    'everything': (dict(mode=0o100666, uid=5, gid=5, text='x'), PASSWORD, 0,
                   ['write password file /pw', 'password file /pw mode 0600', 'password file /pw owner root']),
}


@pytest.mark.parametrize('facts, password, euid, actions', list(PLAN.values()), ids=list(PLAN))
def test_password_file_plan_is_the_modules_rules(facts, password, euid, actions):
    facts = dict(facts)
    text = facts.pop('text', PASSWORD)
    facts.setdefault('digest', action_plugin.salted_digest('salt', text))
    assert action_plugin.password_file_plan('/pw', facts, password, 'salt', euid) == actions


def test_password_file_plan_refuses_facts_of_another_shape():
    with pytest.raises(HostError):
        action_plugin.password_file_plan('/pw', dict(mode=True, uid=0, gid=0, digest='x'), PASSWORD, 'salt', 0)


def test_no_known_interpreter_no_pipelining_and_async_run_the_module(make_action, args):
    action, module, host = make_action(args)
    action.run(task_vars={'inventory_hostname': 'db-host'})
    assert host.calls == [] and module.calls == module_call(args)
    action, module, host = make_action(args, pipelining=False)
    action.run(task_vars=TASK_VARS)
    assert host.calls == [] and module.calls == module_call(args)
    action, module, host = make_action(args, async_val=30)
    action.run(task_vars=TASK_VARS)
    assert host.calls == [] and module.calls == module_call(args, wrap_async=True)


@pytest.mark.parametrize('overrides, words', [
    ({'bogus': 1}, ['Unsupported parameters', MODULE_NAME, 'bogus']),
    ({'pull': 'sometimes'}, ['pull', 'missing, always, never']),
    ({'port': 'high'}, ['port', 'int']),
    ({'healthcheck': {'retries': 'many'}}, ['retries', 'int']),
])
def test_bad_arguments_fail_before_the_host_is_asked(make_action, args, overrides, words):
    action, module, host = make_action(dict(args, **overrides))
    with pytest.raises(AnsibleActionFail) as err:
        action.run(task_vars=TASK_VARS)
    for word in words:
        assert word in str(err.value)
    assert module.calls == [] and host.calls == []
    assert PASSWORD not in str(err.value)
