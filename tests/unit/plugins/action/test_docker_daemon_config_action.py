# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The docker_daemon_config action plugin, built as ansible-playbook builds it (a Task, a PlayContext,
the local connection), reading real files on this machine. ``_execute_module`` is the only stand-in:
it runs the module in-process here, as the host would run it, and records each call."""

from __future__ import annotations

import copy
import json
import subprocess
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail
from ansible.module_utils import basic
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import become_loader, connection_loader

from ansible_collections.ragops.gpu_stack.plugins.action import docker_daemon_config as action_plugin
from ansible_collections.ragops.gpu_stack.plugins.modules import docker_daemon_config

from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import run_module
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.modules.test_docker_daemon_config import write

MODULE_NAME = 'ragops.gpu_stack.docker_daemon_config'
NVIDIA = {'path': 'nvidia-container-runtime', 'args': []}
TASK_VARS = {'inventory_hostname': 'gpu-host'}

# A dockerd without --validate, so that a change never depends on the Docker of this machine.
FAKE_DOCKERD = '#!/bin/sh\nexit 2\n'

# sudo for the become test: it logs its arguments, drops its options and runs the command as this user.
FAKE_SUDO = r'''#!/bin/sh
printf '%s\n' "$*" >> "$(dirname "$0")/sudo.log"
while [ $# -gt 0 ]; do
  case $1 in
    -u) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
exec "$@"
'''


@pytest.fixture(autouse=True)
def bin_dir(tmp_path, monkeypatch):
    directory = tmp_path / 'bin'
    directory.mkdir()
    for name, script in (('dockerd', FAKE_DOCKERD), ('sudo', FAKE_SUDO)):
        (directory / name).write_text(script, encoding='utf-8')
        (directory / name).chmod(0o755)
    monkeypatch.setenv('PATH', '%s:/usr/sbin:/usr/bin:/sbin:/bin' % directory)
    return directory


@pytest.fixture
def path(tmp_path):
    return tmp_path / 'etc' / 'docker' / 'daemon.json'


def run_the_module(args, check_mode=False, diff=False):
    """The module's own result for ``args`` on this machine, with what AnsibleModule adds on exit
    (``invocation``, ``warnings``) and run_module leaves out."""
    modules = []

    class RecordedModule(basic.AnsibleModule):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            modules.append(self)

    with mock.patch.object(docker_daemon_config, 'AnsibleModule', RecordedModule):
        result, warnings = run_module(docker_daemon_config, args, check_mode=check_mode, diff=diff)
    result['invocation'] = {'module_args': modules[0].params}
    if warnings:
        result['warnings'] = warnings
    return result


class ModuleOnTheHost:
    """Stands in for ActionBase._execute_module: records the call and runs the module here."""

    def __init__(self, task):
        self.task = task
        self.calls = []
        self.returned = []

    def __call__(self, module_name=None, module_args=None, task_vars=None, wrap_async=False):
        self.calls.append(dict(module_name=module_name, module_args=copy.deepcopy(module_args),
                               task_vars=task_vars, wrap_async=wrap_async))
        result = run_the_module(module_args, check_mode=self.task.check_mode, diff=self.task.diff)
        self.returned.append(copy.deepcopy(result))
        return result


class ModuleNotRun(ModuleOnTheHost):
    """For tasks whose module must not touch this machine (a path under ~, a relative path): records only."""

    def __call__(self, module_name=None, module_args=None, task_vars=None, wrap_async=False):
        self.calls.append(dict(module_name=module_name, module_args=copy.deepcopy(module_args),
                               task_vars=task_vars, wrap_async=wrap_async))
        self.returned.append({'changed': True, 'stood_in': True})
        return dict(self.returned[-1])


def make_action(args, check_mode=False, diff=False, async_val=0, become_user=None, host_class=ModuleOnTheHost):
    task = Task()
    task.args = copy.deepcopy(args)
    task.check_mode = check_mode
    task.diff = diff
    task.async_val = async_val
    play_context = PlayContext()
    connection = connection_loader.get('local', play_context, None)
    if become_user:
        become = become_loader.get('sudo')
        become.set_options(direct={'become_user': become_user})
        connection.set_become_plugin(become)
    action = action_plugin.ActionModule(task, connection, play_context, loader=DataLoader(), templar=None, shared_loader_obj=None)
    action._load_name = MODULE_NAME  # what the plugin loader sets
    host = host_class(task)
    action._execute_module = host
    action._low_level_execute_command = mock.Mock(wraps=action._low_level_execute_command)
    return action, host


# ---------------------------------------------------------------------------------------------
# A converged host: answered on the controller, exactly as the module answers

NVIDIA_CTK_TEXT = ('{\n    "default-runtime": "nvidia",\n    "runtimes": {\n        "nvidia": {\n            "args": [],\n'
                   '            "path": "nvidia-container-runtime"\n        }\n    }\n}')

CONVERGED = {
    'nvidia-ctk file': (NVIDIA_CTK_TEXT, {'nvidia_runtime': True, 'default_runtime': 'nvidia'}),
    'formatting only': ('{"features":{"cdi":true},   "runtimes" : {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}',
                        {'nvidia_runtime': True, 'cdi': True}),
    'BOM and CRLF': (b'\xef\xbb\xbf{\r\n  "live-restore": true\r\n}\r\n', {'live_restore': True}),
    'non-ASCII, no final newline': ('{"data-root": "/srv/d\u00f6cker", "log-opts": {"max-file": "3"}}',
                                    {'data_root': '/srv/d\u00f6cker', 'log_opts': {'max-file': 3}}),
    'empty file, nothing asked': (b'', {}),
    'someone else\'s log driver': ({'log-driver': 'journald', 'live-restore': True},
                                   {'live_restore': True, 'defaults': {'log-driver': 'json-file', 'log-opts': {'max-size': '10m'}}}),
    'state=absent, nothing left to remove': ({'live-restore': True}, {'state': 'absent', 'remove': ['runtimes.nvidia', 'log-opts.max-size']}),
    'settings and lists': ({'registry-mirrors': ['https://mirror.example'], 'insecure-registries': ['10.0.0.0/8'],
                            'default-address-pools': [{'base': '10.200.0.0/16', 'size': 24}], 'x-site': {'owner': 'ops'}},
                           {'registry_mirrors': ['https://mirror.example'], 'insecure_registries': ['10.0.0.0/8'],
                            'settings': {'default-address-pools': [{'base': '10.200.0.0/16', 'size': 24}]}, 'backup': True}),
}


@pytest.mark.parametrize('diff', [False, True], ids=['plain', 'diff'])
@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('content, args', list(CONVERGED.values()), ids=list(CONVERGED))
def test_converged_host_is_answered_without_the_module(path, content, args, check_mode, diff):
    write(path, content)
    before = path.read_bytes()
    args = dict(args, path=str(path))
    action, host = make_action(args, check_mode=check_mode, diff=diff)

    result = action.run(task_vars=TASK_VARS)

    assert host.calls == []
    assert action._low_level_execute_command.call_count == 1
    assert action._low_level_execute_command.call_args.kwargs['sudoable'] is True
    # The module's own answer for the same file and arguments, invocation included.
    assert result == run_the_module(args, check_mode=check_mode, diff=diff)
    assert result['changed'] is False and result['restart_required'] is False and result['validated'] is None
    assert ('diff' in result) is diff
    assert path.read_bytes() == before


def test_a_change_runs_the_module_and_the_next_run_does_not(path):
    write(path, {'live-restore': False, 'log-driver': 'local'})
    args = {'path': str(path), 'live_restore': True, 'nvidia_runtime': True}
    action, host = make_action(args, diff=True)

    result = action.run(task_vars=TASK_VARS)

    assert host.calls == [dict(module_name=MODULE_NAME, module_args=args, task_vars=TASK_VARS, wrap_async=False)]
    assert result == host.returned[0]
    assert result['changed'] is True and result['restart_required'] is True
    assert json.loads(path.read_text(encoding='utf-8')) == {'live-restore': True, 'log-driver': 'local', 'runtimes': {'nvidia': NVIDIA}}

    action, host = make_action(args, diff=True)
    result = action.run(task_vars=TASK_VARS)
    assert host.calls == []
    assert result == run_the_module(args, diff=True)
    assert result['changed'] is False


def test_check_mode_change_is_reported_by_the_module_and_written_by_nobody(path):
    write(path, {'live-restore': False})
    before = path.read_bytes()
    args = {'path': str(path), 'live_restore': True}
    action, host = make_action(args, check_mode=True, diff=True)
    result = action.run(task_vars=TASK_VARS)
    assert len(host.calls) == 1
    assert result['changed'] is True
    assert json.loads(result['diff']['after']) == {'live-restore': True}
    assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# Everything else is the module's: its result is returned as it is

MODULE_CASES = {
    'absent file': (None, {'live_restore': True}, lambda r: r['changed'] is True),
    'absent file, nothing asked': (None, {}, lambda r: r['changed'] is False and r['config'] == {}),
    'invalid JSON': (b'{"live-restore": true,}', {'live_restore': True}, lambda r: r['failed'] and 'line 1, column 23' in r['msg']),
    'not UTF-8': (b'{"data-root": "/v\xe4r"}', {}, lambda r: r['failed'] and 'not UTF-8' in r['msg']),
    'top-level array': (b'[]', {}, lambda r: r['failed'] and 'top level' in r['msg']),
    'bad input': ({}, {'registry_mirrors': ['mirror.example']}, lambda r: r['failed'] and 'registry_mirrors' in r['msg']),
    'default runtime not registered': ({}, {'default_runtime': 'nvidia'}, lambda r: r['failed'] and 'nvidia_runtime: true' in r['msg']),
    'default-runtime warning, nothing to change': ({'default-runtime': 'nvidia', 'live-restore': True}, {'live_restore': True},
                                                   lambda r: r['changed'] is False and 'already so before this task' in r['warnings'][0]),
    'a removal': ({'runtimes': {'nvidia': NVIDIA}}, {'nvidia_runtime': False}, lambda r: r['changed'] is True and r['config'] == {}),
    'defaults on a fresh file': ({}, {'defaults': {'log-driver': 'local'}}, lambda r: r['changed'] is True),
}


@pytest.mark.parametrize('content, args, check', list(MODULE_CASES.values()), ids=list(MODULE_CASES))
def test_anything_but_a_converged_file_runs_the_module(path, content, args, check):
    if content is not None:
        write(path, content)
    args = dict(args, path=str(path))
    action, host = make_action(args)

    result = action.run(task_vars=TASK_VARS)

    assert host.calls == [dict(module_name=MODULE_NAME, module_args=args, task_vars=TASK_VARS, wrap_async=False)]
    assert result == host.returned[0]
    assert check(result), result


def test_a_directory_at_path_runs_the_module(tmp_path):
    args = {'path': str(tmp_path), 'live_restore': True}
    action, host = make_action(args)
    result = action.run(task_vars=TASK_VARS)
    assert len(host.calls) == 1
    assert result['failed'] and 'is a directory' in result['msg']


@pytest.mark.parametrize('args', [
    {'path': '~/daemon.json'},
    {'path': '$HOME/daemon.json'},
    {'path': '/etc/${DOCKER_DIR}/daemon.json'},
    {'path': 'daemon.json'},
    {'path': '/etc/docker/daemon.json', 'data_root': '~/docker'},
    {'path': '/etc/docker/daemon.json', 'data_root': '$DOCKER_DATA'},
])
def test_paths_only_the_host_can_resolve_run_the_module(args):
    action, host = make_action(args, host_class=ModuleNotRun)
    result = action.run(task_vars=TASK_VARS)
    assert host.calls == [dict(module_name=MODULE_NAME, module_args=args, task_vars=TASK_VARS, wrap_async=False)]
    assert result == host.returned[0]
    action._low_level_execute_command.assert_not_called()


@pytest.mark.parametrize('rc, stdout', [
    (1, '%s\n' % action_plugin.BEGIN_LINE),  # base64 could not read the file
    (127, '%s\n' % action_plugin.BEGIN_LINE),  # no base64 on the host
    (1, '%s\n' % action_plugin.ABSENT_LINE),
    (0, ''),
    (0, '%s\ne30K\n' % action_plugin.BEGIN_LINE),  # no end line
    (0, '%s\ne30K\n%s\n' % (action_plugin.END_LINE, action_plugin.BEGIN_LINE)),
    (0, '%s\ne30K!\n%s\n' % (action_plugin.BEGIN_LINE, action_plugin.END_LINE)),  # not base64
    (0, '%s\ne30\n%s\n' % (action_plugin.BEGIN_LINE, action_plugin.END_LINE)),  # truncated base64
    (0, 'Welcome to the host\n%s\n' % action_plugin.ABSENT_LINE),
])
def test_an_answer_that_is_not_a_clean_read_runs_the_module(path, rc, stdout):
    write(path, {})  # the task asks for nothing: only the read decides
    args = {'path': str(path)}
    action, host = make_action(args, host_class=ModuleNotRun)
    action._low_level_execute_command = mock.Mock(return_value=dict(rc=rc, stdout=stdout, stderr='', stdout_lines=[], stderr_lines=[]))
    result = action.run(task_vars=TASK_VARS)
    assert len(host.calls) == 1
    assert result == host.returned[0]


def test_a_key_that_is_not_a_string_runs_the_module(path):
    # YAML reads `on:` as True; the module gets "true" where the controller would plan "True".
    write(path, {'x-site': {'True': 'yes'}})
    args = {'path': str(path), 'settings': {'x-site': {True: 'yes'}}}
    action, host = make_action(args, host_class=ModuleNotRun)
    action.run(task_vars=TASK_VARS)
    assert len(host.calls) == 1


def test_async_runs_the_module_as_a_job(path):
    write(path, {'live-restore': True})
    args = {'path': str(path), 'live_restore': True}
    action, host = make_action(args, async_val=30, host_class=ModuleNotRun)
    action.run(task_vars=TASK_VARS)
    assert host.calls == [dict(module_name=MODULE_NAME, module_args=args, task_vars=TASK_VARS, wrap_async=True)]
    action._low_level_execute_command.assert_not_called()


# ---------------------------------------------------------------------------------------------
# Bad arguments fail on the controller, naming the option


@pytest.mark.parametrize('args, words', [
    ({'bogus': 1}, ['Unsupported parameters', MODULE_NAME, 'bogus']),
    ({'live_restore': 'maybe'}, ['live_restore', 'bool']),
    ({'registry_mirrors': {'a': 1}}, ['registry_mirrors', 'list']),
    ({'state': 'gone'}, ['state', 'present, absent']),
    ({'state': 'absent'}, ['state is absent', 'remove']),
])
def test_bad_arguments_fail_before_the_host_is_asked(path, args, words):
    action, host = make_action(dict(args, path=str(path)))
    with pytest.raises(AnsibleActionFail) as err:
        action.run(task_vars=TASK_VARS)
    for word in words:
        assert word in str(err.value)
    assert host.calls == []
    action._low_level_execute_command.assert_not_called()


# ---------------------------------------------------------------------------------------------
# Reading the file on the host


def test_become_wraps_the_read_and_the_path_stays_one_word(tmp_path, bin_dir):
    directory = tmp_path / 'it\'s a "dir"; touch pwned'
    path = directory / 'daemon.json'
    write(path, {'live-restore': True})
    args = {'path': str(path), 'live_restore': True}
    action, host = make_action(args, become_user='ragops-test')

    result = action.run(task_vars=TASK_VARS)

    assert host.calls == []
    assert result['changed'] is False and result['config'] == {'live-restore': True}
    sudo_calls = (bin_dir / 'sudo.log').read_text(encoding='utf-8').splitlines()
    assert len(sudo_calls) == 1 and '-u ragops-test' in sudo_calls[0]
    assert action_plugin.read_command(str(path)) in sudo_calls[0]
    assert not (tmp_path / 'pwned').exists() and not (directory / 'pwned').exists()


def sh(command):
    completed = subprocess.run(['/bin/sh', '-c', command], capture_output=True, text=True, check=False)
    return completed.returncode, completed.stdout


def test_read_command_tells_absent_ok_and_error_apart(tmp_path):
    present = tmp_path / 'daemon.json'
    present.write_bytes(b'\xef\xbb\xbf{"a": "\xc3\xb6"}\r\n' + b'x' * 200)  # more than one base64 line
    dangling = tmp_path / 'dangling.json'
    dangling.symlink_to(tmp_path / 'nowhere.json')

    assert action_plugin.read_outcome(*sh(action_plugin.read_command(str(present)))) == ('ok', present.read_bytes())
    assert action_plugin.read_outcome(*sh(action_plugin.read_command(str(tmp_path / 'none.json')))) == ('absent', None)
    assert action_plugin.read_outcome(*sh(action_plugin.read_command(str(dangling)))) == ('absent', None)
    status, why = action_plugin.read_outcome(*sh(action_plugin.read_command(str(tmp_path))))
    assert status == 'error' and 'exited with' in why


def test_read_of_an_empty_file_is_empty_bytes(tmp_path):
    empty = tmp_path / 'daemon.json'
    empty.write_bytes(b'')
    assert action_plugin.read_outcome(*sh(action_plugin.read_command(str(empty)))) == ('ok', b'')
