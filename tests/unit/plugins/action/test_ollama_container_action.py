# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The ollama_container action plugin, built as ansible-playbook builds it (a Task, a PlayContext,
the local connection with pipelining).

The host is this machine: the plugin's script really runs, with this Python, through the local
connection. Only the Docker Engine is a stand-in: a ``sitecustomize`` on the script's PYTHONPATH
replaces ``docker.APIClient`` with one that answers inspect calls from the state of the module
tests' FakeClient, written to a file before each command. ``_execute_module`` runs the module
in-process against the same FakeClient and returns what its exit_json prints."""

from __future__ import annotations

import copy
import json
import sys
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.ragops.gpu_stack.plugins.action import ollama_container as action_plugin
from ansible_collections.ragops.gpu_stack.plugins.modules import ollama_container
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils import host_read
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.action import host_read_harness as harness
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, printed_result
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_container import FakeClient, NVIDIA_FACTS
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.modules.test_ollama_container import CPU_FACTS

MODULE_NAME = 'ragops.gpu_stack.ollama_container'
TASK_VARS = {'inventory_hostname': 'gpu-host', 'ansible_python_interpreter': sys.executable}
PORT = free_port()
ARGS = dict(gpu_facts=CPU_FACTS, port=PORT, num_parallel=2, wait_healthy_timeout=1)
CPU_WARNING = 'gpu: auto: no GPU found on this host (gpu_vendor none): running Ollama on the CPU'


def module_output(fake, args, check_mode=False, diff=False):
    return printed_result(ollama_container, args, check_mode=check_mode, diff=diff,
                          patches=[mock.patch.object(ollama_container, 'connect', lambda module: fake)])


def shown(result):
    """A result as the task executor shows it: a warning is its message, whether a string (this
    plugin's) or the module's serialized WarningSummary."""
    result = copy.deepcopy(result)
    if 'warnings' in result:
        result['warnings'] = [w if isinstance(w, str) else w['event']['msg'] for w in result['warnings']]
    return result


@pytest.fixture(name='fake')
def fixture_fake():
    """An engine on which the module has created the container of ARGS, healthy."""
    fake = FakeClient()
    result = module_output(fake, ARGS)
    assert result['actions'] == ['create and start'], result
    fake.calls = []
    return fake


@pytest.fixture(name='said')
def fixture_said(monkeypatch):
    return harness.vvv_lines(monkeypatch, host_read.display)


@pytest.fixture(name='make_action')
def fixture_make_action(tmp_path, monkeypatch, fake, said):  # pylint: disable=unused-argument
    return harness.action_maker(action_plugin, MODULE_NAME, TASK_VARS, module_output, fake, harness.InspectHost, tmp_path, monkeypatch)


def module_call(args, wrap_async=False):
    return harness.module_call(MODULE_NAME, args, wrap_async)


# ---------------------------------------------------------------------------------------------
# A converged container: answered on the controller, exactly as the module answers


@pytest.mark.parametrize('diff', [False, True], ids=['plain', 'diff'])
@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
def test_converged_container_is_answered_without_the_module(make_action, fake, check_mode, diff):
    action, module, host = make_action(ARGS, check_mode=check_mode, diff=diff)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == []
    assert len(host.calls) == 1 and host.calls[0]['cmd'] == '%s -' % sys.executable and host.calls[0]['sudoable']
    expected = module_output(fake, ARGS, check_mode=check_mode, diff=diff)
    assert shown(result) == shown(expected)
    assert result['changed'] is False and result['warnings'] == [CPU_WARNING] and ('diff' in result) is diff
    assert result['container']['health'] == 'healthy'
    # One snapshot: the container, the image it runs, the spec's image; no network (the default bridge).
    assert [call[0] for call in host.engine_calls()] == ['client', 'inspect_container', 'inspect_image', 'inspect_image']


def test_converged_on_a_user_network_and_stopped_and_absent(make_action, fake):
    networked = dict(ARGS, network='ragops')
    module_output(fake, networked)
    action, module, host = make_action(networked)
    assert shown(action.run(task_vars=TASK_VARS)) == shown(module_output(fake, networked))
    assert module.calls == [] and ['networks', ['ragops']] in host.engine_calls()

    stopped = dict(ARGS, state='stopped')
    module_output(fake, stopped)
    action, module, host = make_action(stopped)
    assert shown(action.run(task_vars=TASK_VARS)) == shown(module_output(fake, stopped)) and module.calls == []

    gone = dict(ARGS, state='absent')
    module_output(fake, gone)
    action, module, host = make_action(gone)
    result = action.run(task_vars=TASK_VARS)
    assert module.calls == [] and result == module_output(fake, gone) and result['container'] is None


# ---------------------------------------------------------------------------------------------
# Anything else: the module's, with the task's raw arguments, returned as it is


def _stopped(fake):
    fake.containers['ollama']['State'] = {'Status': 'exited', 'Running': False, 'ExitCode': 0}


def _health(status):
    def change(fake):
        fake.containers['ollama']['State']['Health']['Status'] = status
    return change


def _new_image(fake):
    fake.images['ollama/ollama:0.33.0']['Id'] = 'sha256:newer'


DRIFT = {
    'env changed': (dict(ARGS, num_parallel=3), None),
    'env removed': ({k: v for k, v in ARGS.items() if k != 'num_parallel'}, None),
    'port changed': (dict(ARGS, port=free_port()), None),
    'image id changed': (ARGS, _new_image),
    'container stopped': (ARGS, _stopped),
    'container unhealthy': (ARGS, _health('unhealthy')),
    'container starting': (ARGS, _health('starting')),
    'container missing': (ARGS, lambda fake: fake.containers.clear()),
    'network missing': (dict(ARGS, network='ragops'), None),
    'gpu_mode cdi': (dict(ARGS, gpu_facts=NVIDIA_FACTS, gpu_mode='cdi'), None),
    'pull always': (dict(ARGS, pull='always'), None),
    'absent with a container': (dict(ARGS, state='absent'), None),
    'bad input the module reports': (dict(ARGS, kv_cache_type='q4_0'), None),
}


@pytest.mark.parametrize('args, change', list(DRIFT.values()), ids=list(DRIFT))
def test_anything_but_a_converged_container_runs_the_module(make_action, fake, args, change):
    args = {key: value for key, value in args.items() if value is not None}
    if change:
        change(fake)
    # Check mode: the module reports what it would do without waiting on a health check.
    action, module, host = make_action(args, check_mode=True, diff=True)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == module_call(args)
    assert result == module.returned[0]
    assert len(host.calls) <= 1


def test_gpu_facts_not_given_asks_the_host_nothing(make_action, said):
    args = dict(ARGS, gpu_facts=None)
    del args['gpu_facts']
    action, module, host = make_action(args, check_mode=True)
    with mock.patch.object(ollama_container, 'host_gpu_facts', lambda module: CPU_FACTS):
        action.run(task_vars=TASK_VARS)
    assert host.calls == [] and module.calls == module_call(args)
    assert 'reads the host\'s GPUs' in said[-1]


ERRORS = {
    'no-sdk': "ImportError: No module named 'docker'",
    'unreachable': 'DockerException: Error while fetching server API version: connection refused',
}


@pytest.mark.parametrize('mode', list(ERRORS))
def test_an_error_on_the_host_runs_the_module(make_action, said, mode):
    action, module, host = make_action(ARGS)
    host.mode = mode
    result = action.run(task_vars=TASK_VARS)
    assert len(host.calls) == 1 and module.calls == module_call(ARGS) and result == module.returned[0]
    assert said[-1] == '%s runs on the host: on the host: %s' % (MODULE_NAME, ERRORS[mode])


GOOD = json.dumps(dict(container=None, container_image=None, image=None, networks=None, files={}, euid=0))
UNUSABLE = {
    'nothing': (0, ''),
    'a traceback': (1, 'Traceback (most recent call last):\nNameError: x\n'),
    'a clean answer, but the script failed': (1, GOOD),
    'a key missing': (0, GOOD.replace('"euid": 0', '"uid": 0')),
    'a container that is a list': (0, GOOD.replace('"container": null', '"container": []')),
    'something after the answer': (0, GOOD + '\nbye\n'),
}


@pytest.mark.parametrize('rc, stdout', list(UNUSABLE.values()), ids=list(UNUSABLE))
def test_an_answer_that_is_not_a_clean_read_runs_the_module(make_action, rc, stdout):
    action, module, _host = make_action(ARGS)
    action._low_level_execute_command = mock.Mock(return_value=dict(rc=rc, stdout=stdout, stderr=''))
    result = action.run(task_vars=TASK_VARS)
    assert action._low_level_execute_command.call_count == 1
    assert module.calls == module_call(ARGS) and result == module.returned[0]


def test_no_known_interpreter_no_pipelining_and_async_run_the_module(make_action):
    action, module, host = make_action(ARGS)
    action.run(task_vars={'inventory_hostname': 'gpu-host'})
    assert host.calls == [] and module.calls == module_call(ARGS)
    action, module, host = make_action(ARGS, pipelining=False)
    action.run(task_vars=TASK_VARS)
    assert host.calls == [] and module.calls == module_call(ARGS)
    action, module, host = make_action(ARGS, async_val=30)
    action.run(task_vars=TASK_VARS)
    assert host.calls == [] and module.calls == module_call(ARGS, wrap_async=True)


@pytest.mark.parametrize('args, words', [
    ({'bogus': 1}, ['Unsupported parameters', MODULE_NAME, 'bogus']),
    ({'gpu': 'intel'}, ['gpu', 'auto, nvidia, amd, none']),
    ({'port': 'high'}, ['port', 'int']),
    ({'healthcheck': {'retries': 'many'}}, ['retries', 'int']),
])
def test_bad_arguments_fail_before_the_host_is_asked(make_action, args, words):
    action, module, host = make_action(dict(ARGS, **args))
    with pytest.raises(AnsibleActionFail) as err:
        action.run(task_vars=TASK_VARS)
    for word in words:
        assert word in str(err.value)
    assert module.calls == [] and host.calls == []
