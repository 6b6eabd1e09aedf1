# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import json
import os
import stat
from unittest import mock

import pytest
from ansible.module_utils import basic

from ansible_collections.ragops.gpu_stack.plugins.modules import docker_daemon_config

from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import run_module

NVIDIA = {'path': 'nvidia-container-runtime', 'args': []}


FAKE_DOCKERD = """#!/bin/sh
# A dockerd that knows only what the module asks of it; it logs each call.
echo "$*" >> "{log}"
if [ "$1" = "--help" ]; then
  printf 'Usage:\\tdockerd [OPTIONS]\\n\\nOptions:\\n{help}'
  exit 0
fi
if [ "$1" = "--validate" ]; then
  if [ {rc} -ne 0 ]; then
    echo "unable to configure the Docker daemon with file $3: {message}" >&2
    exit {rc}
  fi
  echo "configuration OK"
  exit 0
fi
exit 2
"""

NEW_HELP = r'      --validate     Validate daemon configuration and exit\n  -v, --version    Print version information and quit\n'
OLD_HELP = r'  -v, --version    Print version information and quit\n'


class Dockerd:
    """A fake dockerd first on PATH, so no test depends on the Docker this machine may have."""

    def __init__(self, bin_dir):
        self.bin_dir = bin_dir
        self.log = bin_dir / 'dockerd.log'

    def install(self, help_text=NEW_HELP, rc=0, message=''):
        script = self.bin_dir / 'dockerd'
        script.write_text(FAKE_DOCKERD.format(log=self.log, help=help_text, rc=rc, message=message), encoding='utf-8')
        script.chmod(0o755)

    @property
    def calls(self):
        if not self.log.exists():
            return []
        return self.log.read_text(encoding='utf-8').splitlines()


@pytest.fixture(autouse=True)
def dockerd(tmp_path, monkeypatch):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    fake = Dockerd(bin_dir)
    fake.install()
    monkeypatch.setenv('PATH', '%s:%s' % (bin_dir, os.environ.get('PATH', '/usr/bin:/bin')))
    return fake


@pytest.fixture
def path(tmp_path):
    return tmp_path / 'etc' / 'docker' / 'daemon.json'


def run(args, check_mode=False, diff=False):
    """Run the module's main(); return its result, which has ``failed`` when it failed."""
    return run_module(docker_daemon_config, args, check_mode=check_mode, diff=diff)[0]


def write(path, data_or_text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data_or_text, bytes):
        path.write_bytes(data_or_text)
    elif isinstance(data_or_text, str):
        path.write_text(data_or_text, encoding='utf-8')
    else:
        path.write_text(json.dumps(data_or_text, indent=2) + '\n', encoding='utf-8')


def read(path):
    return json.loads(path.read_text(encoding='utf-8'))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def only_file(directory):
    return sorted(os.listdir(directory))


# ---------------------------------------------------------------------------------------------
# Writing and idempotence


def test_fresh_file_is_written_with_mode_0644(path, dockerd):
    old = os.umask(0o077)
    try:
        result = run({'path': str(path), 'nvidia_runtime': True, 'default_runtime': 'nvidia'})
    finally:
        os.umask(old)
    assert not result.get('failed'), result
    assert result['changed'] is True and result['restart_required'] is True
    assert result['validated'] is True
    assert read(path) == {'runtimes': {'nvidia': NVIDIA}, 'default-runtime': 'nvidia'}
    assert result['config'] == read(path)
    assert path.read_text(encoding='utf-8').endswith('}\n')
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert only_file(path.parent) == ['daemon.json']
    assert any(call.startswith('--validate --config-file') for call in dockerd.calls)


def test_second_identical_run_changes_nothing(path, dockerd):
    args = {'path': str(path), 'nvidia_runtime': True, 'cdi': True, 'log_opts': {'max-size': '10m'}}
    assert run(args)['changed'] is True
    before = digest(path)
    calls = len(dockerd.calls)
    result = run(args)
    assert result['changed'] is False and result['restart_required'] is False
    assert result['validated'] is None
    assert digest(path) == before
    assert len(dockerd.calls) == calls  # nothing to validate when nothing changes


def test_formatting_only_difference_is_left_alone(path):
    text = '{"features":{"cdi":true},   "runtimes" : {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}'
    write(path, text)
    result = run({'path': str(path), 'nvidia_runtime': True, 'cdi': True}, diff=True)
    assert result['changed'] is False and result['restart_required'] is False
    assert path.read_text(encoding='utf-8') == text
    assert result['diff']['before'] == result['diff']['after'] == text


def test_nvidia_ctk_file_is_already_converged(path):
    # What `nvidia-ctk runtime configure --runtime=docker --set-as-default` writes, four-space indent.
    text = '{\n    "default-runtime": "nvidia",\n    "runtimes": {\n        "nvidia": {\n            "args": [],\n' \
           '            "path": "nvidia-container-runtime"\n        }\n    }\n}'
    write(path, text)
    result = run({'path': str(path), 'nvidia_runtime': True, 'default_runtime': 'nvidia'})
    assert result['changed'] is False
    assert path.read_text(encoding='utf-8') == text


def test_rewrite_keeps_indent_order_and_mode(path):
    write(path, '{\n    "log-driver": "local",\n    "data-root": "/srv/docker"\n}\n')
    path.chmod(0o600)
    result = run({'path': str(path), 'live_restore': True})
    assert result['changed'] is True
    assert path.read_text(encoding='utf-8') == \
        '{\n    "log-driver": "local",\n    "data-root": "/srv/docker",\n    "live-restore": true\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize('args', [
    {'nvidia_runtime': True},
    {'nvidia_runtime': True, 'default_runtime': 'nvidia', 'cdi': True},
    {'log_opts': {'max-file': 3}},
    {'registry_mirrors': ['https://mirror.example'], 'insecure_registries': ['10.0.0.0/8']},
    {'live_restore': False, 'settings': {'features': {'buildkit': True}}},
    {'nvidia_runtime': False, 'default_runtime': 'runc'},
    {'state': 'absent', 'remove': ['runtimes.nvidia', 'features']},
])
def test_foreign_keys_survive_every_run(path, args):
    foreign = {
        'log-driver': 'journald',
        'data-root': '/srv/docker',
        'runtimes': {'crun': {'path': '/usr/bin/crun'}},
        'log-opts': {'tag': '{{.Name}}'},
        'x-site': {'owner': 'ops', 'list': [1, 2]},
    }
    write(path, foreign)
    for attempt in (1, 2):
        result = run(dict(args, path=str(path)))
        assert not result.get('failed'), (attempt, result)
        data = read(path)
        for key in ('log-driver', 'data-root', 'x-site'):
            assert data[key] == foreign[key]
        assert data['runtimes']['crun'] == foreign['runtimes']['crun']
        assert data['log-opts']['tag'] == '{{.Name}}'
    assert result['changed'] is False


def test_missing_file_and_nothing_to_set_writes_nothing(path):
    result = run({'path': str(path)})
    assert result['changed'] is False and result['config'] == {}
    assert not path.exists()


# ---------------------------------------------------------------------------------------------
# Files the module must not damage


def test_invalid_json_fails_and_leaves_file_byte_identical(path):
    content = b'{\n  "live-restore": true,\n  "log-driver": "local",\n}\n'
    write(path, content)
    result = run({'path': str(path), 'live_restore': False, 'backup': True})
    assert result['failed']
    assert str(path) in result['msg']
    assert 'line 4, column 1' in result['msg']
    assert path.read_bytes() == content
    assert only_file(path.parent) == ['daemon.json']


def test_top_level_array_fails(path):
    write(path, b'[]')
    result = run({'path': str(path), 'live_restore': True})
    assert result['failed'] and 'top level' in result['msg']
    assert path.read_bytes() == b'[]'


@pytest.mark.parametrize('content', [b'', b'\n  \n', b'\xef\xbb\xbf'])
def test_empty_file_counts_as_empty_configuration(path, content):
    write(path, content)
    assert run({'path': str(path)})['changed'] is False
    assert path.read_bytes() == content
    assert run({'path': str(path), 'live_restore': True})['changed'] is True
    assert read(path) == {'live-restore': True}


def test_bom_file_kept_when_unchanged_and_dropped_on_rewrite(path):
    write(path, b'\xef\xbb\xbf{"live-restore": true}')
    assert run({'path': str(path), 'live_restore': True})['changed'] is False
    assert path.read_bytes().startswith(b'\xef\xbb\xbf')
    assert run({'path': str(path), 'live_restore': False})['changed'] is True
    assert path.read_bytes() == b'{\n  "live-restore": false\n}\n'


def test_symlink_target_is_written_and_link_kept(tmp_path, path):
    target = tmp_path / 'managed' / 'daemon.json'
    write(target, {'data-root': '/srv/docker'})
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    result = run({'path': str(path), 'cdi': True})
    assert result['changed'] is True
    assert path.is_symlink()
    assert read(target) == {'data-root': '/srv/docker', 'features': {'cdi': True}}


# ---------------------------------------------------------------------------------------------
# Check mode, diff, backup


def test_check_mode_writes_nothing_but_reports(path, dockerd):
    write(path, {'log-driver': 'local'})
    before = digest(path)
    mtime = path.stat().st_mtime_ns
    result = run({'path': str(path), 'nvidia_runtime': True, 'backup': True}, check_mode=True, diff=True)
    assert result['changed'] is True and result['restart_required'] is True
    assert result['config'] == {'log-driver': 'local', 'runtimes': {'nvidia': NVIDIA}}
    assert 'backup_file' not in result
    assert digest(path) == before and path.stat().st_mtime_ns == mtime
    assert only_file(path.parent) == ['daemon.json']
    assert json.loads(result['diff']['after']) == result['config']
    assert json.loads(result['diff']['before']) == {'log-driver': 'local'}


def test_check_mode_does_not_create_the_file(path):
    result = run({'path': str(path), 'live_restore': True}, check_mode=True, diff=True)
    assert result['changed'] is True
    assert not path.exists() and not path.parent.exists()
    assert result['diff']['before'] == ''
    assert result['diff']['before_header'] == '%s (absent)' % path


def test_diff_holds_json_text_and_headers(path):
    write(path, '{"log-driver": "local"}\n')
    result = run({'path': str(path), 'live_restore': True}, diff=True)
    assert result['diff'] == {
        'before': '{"log-driver": "local"}\n',
        'after': '{\n  "log-driver": "local",\n  "live-restore": true\n}\n',
        'before_header': str(path),
        'after_header': str(path),
    }


def test_no_diff_unless_asked(path):
    assert 'diff' not in run({'path': str(path), 'live_restore': True})


def test_backup_file_created(path):
    write(path, b'{"live-restore": false}')
    result = run({'path': str(path), 'live_restore': True, 'backup': True})
    backup = result['backup_file']
    assert os.path.dirname(backup) == str(path.parent) and backup.endswith('~')
    with open(backup, 'rb') as handle:
        assert handle.read() == b'{"live-restore": false}'
    assert read(path) == {'live-restore': True}
    # Unchanged: no new backup.
    assert 'backup_file' not in run({'path': str(path), 'live_restore': True, 'backup': True})
    assert len(os.listdir(path.parent)) == 2


def test_backup_failure_fails_and_leaves_file(path):
    write(path, b'{"live-restore": false}')
    with mock.patch.object(basic.AnsibleModule, 'backup_local', side_effect=Exception('Could not make backup')):
        result = run({'path': str(path), 'live_restore': True, 'backup': True})
    assert result['failed'] and 'could not be backed up: Could not make backup' in result['msg']
    assert path.read_bytes() == b'{"live-restore": false}'
    assert only_file(path.parent) == ['daemon.json']


# ---------------------------------------------------------------------------------------------
# The NVIDIA runtime and the default runtime


def test_nvidia_runtime_add_and_remove(path):
    write(path, {'runtimes': {'crun': {'path': 'crun'}}})
    result = run({'path': str(path), 'nvidia_runtime': True, 'nvidia_runtime_path': '/usr/bin/nvidia-container-runtime'})
    assert result['changed'] is True
    assert read(path)['runtimes'] == {'crun': {'path': 'crun'}, 'nvidia': {'path': '/usr/bin/nvidia-container-runtime', 'args': []}}
    result = run({'path': str(path), 'nvidia_runtime': False})
    assert result['changed'] is True and result['restart_required'] is True
    assert read(path) == {'runtimes': {'crun': {'path': 'crun'}}}
    # The last runtime gone: no empty `runtimes` left behind.
    write(path, {'runtimes': {'nvidia': NVIDIA}, 'live-restore': True})
    run({'path': str(path), 'nvidia_runtime': False})
    assert read(path) == {'live-restore': True}


def test_nvidia_runtime_keeps_extra_keys_of_existing_entry(path):
    write(path, {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime', 'runtimeArgs': ['--debug']}}})
    run({'path': str(path), 'nvidia_runtime': True})
    assert read(path)['runtimes']['nvidia'] == {'path': 'nvidia-container-runtime', 'runtimeArgs': ['--debug'], 'args': []}


@pytest.mark.parametrize('existing', [None, b'{"log-driver": "local"}'])
def test_default_runtime_without_runtime_fails_before_writing(path, existing, dockerd):
    if existing is not None:
        write(path, existing)
    result = run({'path': str(path), 'default_runtime': 'nvidia', 'backup': True})
    assert result['failed']
    assert 'default_runtime' in result['msg'] and 'nvidia_runtime: true' in result['msg']
    assert 'refuse to start' in result['msg']
    if existing is None:
        assert not path.exists()
    else:
        assert path.read_bytes() == existing
        assert only_file(path.parent) == ['daemon.json']
    assert not any('--validate' in call for call in dockerd.calls)


def test_default_runtime_accepts_registered_and_builtin_runtimes(path):
    write(path, {'runtimes': {'nvidia': NVIDIA}})
    assert run({'path': str(path), 'default_runtime': 'nvidia'})['changed'] is True
    assert run({'path': str(path), 'default_runtime': 'runc'})['changed'] is True
    assert run({'path': str(path), 'default_runtime': 'io.containerd.runc.v2'})['changed'] is True
    assert run({'path': str(path), 'default_runtime': 'crun', 'settings': {'runtimes': {'crun': {'path': 'crun'}}}})['changed'] is True


def test_removing_runtime_that_is_the_default_fails(path):
    write(path, {'default-runtime': 'nvidia', 'runtimes': {'nvidia': NVIDIA}})
    before = digest(path)
    result = run({'path': str(path), 'nvidia_runtime': False})
    assert result['failed'] and 'default_runtime: runc' in result['msg']
    assert digest(path) == before
    result = run({'path': str(path), 'nvidia_runtime': False, 'default_runtime': 'runc'})
    assert result['changed'] is True
    assert read(path) == {'default-runtime': 'runc'}


@pytest.mark.parametrize('args', [{'live_restore': True}, {'live_restore': True, 'nvidia_runtime': False}])
def test_preexisting_default_runtime_fault_only_warns(path, args):
    write(path, {'default-runtime': 'nvidia'})
    result, warnings = run_module(docker_daemon_config, dict(args, path=str(path)))
    assert result['changed'] is True
    assert read(path) == {'default-runtime': 'nvidia', 'live-restore': True}
    assert 'already so before this task' in warnings[0]


# ---------------------------------------------------------------------------------------------
# Validation by dockerd


def test_validation_failure_leaves_old_file_untouched(path, dockerd):
    dockerd.install(rc=1, message="the following directives don't match any configuration option: bogus")
    write(path, b'{"live-restore": true}')
    result = run({'path': str(path), 'settings': {'bogus': 1}, 'backup': True})
    assert result['failed']
    assert "don't match any configuration option: bogus" in result['msg']
    assert '<candidate daemon.json>' in result['msg'] and str(path) in result['msg']
    assert path.read_bytes() == b'{"live-restore": true}'
    assert only_file(path.parent) == ['daemon.json']


def test_validation_failure_in_check_mode_fails_too(path, dockerd):
    dockerd.install(rc=1, message='bad')
    result = run({'path': str(path), 'live_restore': True}, check_mode=True)
    assert result['failed'] and not path.exists()


def test_old_dockerd_skips_validation_with_a_note(path, dockerd):
    dockerd.install(help_text=OLD_HELP)
    result = run({'path': str(path), 'live_restore': True})
    assert result['changed'] is True and result['validated'] is None
    assert '--validate' in result['validation_note']
    assert read(path) == {'live-restore': True}
    assert dockerd.calls == ['--help']


def test_no_validation_when_disabled(path, dockerd):
    result = run({'path': str(path), 'live_restore': True, 'validate': False})
    assert result['changed'] is True and result['validated'] is None
    assert 'validation_note' not in result
    assert dockerd.calls == []


def test_no_dockerd_at_all(path, monkeypatch, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    monkeypatch.setenv('PATH', str(empty))
    with mock.patch.object(basic.AnsibleModule, 'get_bin_path', return_value=None):
        result = run({'path': str(path), 'live_restore': True})
    assert result['validated'] is None and 'not found' in result['validation_note']
    assert read(path) == {'live-restore': True}


# ---------------------------------------------------------------------------------------------
# Input checks


def test_log_opts_numbers_become_strings(path):
    result = run({'path': str(path), 'log_driver': 'json-file', 'log_opts': {'max-file': 3, 'max-size': '10m', 'compress': True}})
    assert read(path)['log-opts'] == {'max-file': '3', 'max-size': '10m', 'compress': 'true'}
    assert result['config']['log-opts']['max-file'] == '3'
    run({'path': str(path), 'settings': {'log-opts': {'max-file': 5}}})
    assert read(path)['log-opts']['max-file'] == '5'


@pytest.mark.parametrize('args, words', [
    ({'log_opts': {'labels': ['a']}}, ['log_opts', "'labels'"]),
    ({'registry_mirrors': ['mirror.example']}, ['registry_mirrors', 'https://mirror.example']),
    ({'insecure_registries': ['http://10.0.0.5:5000']}, ['insecure_registries', '10.0.0.5:5000']),
    ({'data_root': 'docker'}, ['data_root', 'absolute']),
    ({'default_runtime': ' '}, ['default_runtime', 'must not be empty']),
    ({'log_driver': ''}, ['log_driver', 'must not be empty']),
    ({'nvidia_runtime': True, 'nvidia_runtime_path': ''}, ['nvidia_runtime_path']),
    ({'live_restore': True, 'settings': {'live-restore': False}}, ['settings.live-restore', 'live_restore', 'one place']),
    ({'nvidia_runtime': True, 'settings': {'runtimes': {'nvidia': {'path': 'x'}}}}, ['settings.runtimes.nvidia.path', 'nvidia_runtime']),
    ({'nvidia_runtime': False, 'settings': {'runtimes': {'nvidia': {'path': 'x'}}}}, ['settings.runtimes.nvidia', 'nvidia_runtime=false']),
    ({'remove': ['a..b']}, ['remove[0]', 'runtimes.nvidia']),
    ({'remove': [3]}, ['remove[0]']),
    ({'state': 'absent', 'remove': ['a'], 'live_restore': True}, ['state=absent', 'live_restore']),
    ({'state': 'absent'}, ['remove']),
])
def test_bad_input_fails_before_writing(path, args, words):
    write(path, b'{"log-driver": "local"}')
    result = run(dict(args, path=str(path), backup=True))
    assert result.get('failed'), result
    for word in words:
        assert word in result['msg']
    assert path.read_bytes() == b'{"log-driver": "local"}'
    assert only_file(path.parent) == ['daemon.json']


def test_same_value_in_settings_and_option_is_fine(path):
    result = run({'path': str(path), 'live_restore': True, 'settings': {'live-restore': True, 'features': {'cdi': True}}, 'cdi': True})
    assert result['changed'] is True
    assert read(path) == {'live-restore': True, 'features': {'cdi': True}}


def test_state_absent_removes_named_paths(path):
    write(path, {'log-opts': {'max-size': '1m', 'max-file': '3'}, 'runtimes': {'my.rt': {'path': 'x'}}, 'live-restore': True})
    result = run({'path': str(path), 'state': 'absent', 'remove': ['log-opts.max-size', ['runtimes', 'my.rt'], 'not-there']})
    assert result['changed'] is True
    assert read(path) == {'log-opts': {'max-file': '3'}, 'live-restore': True}
    assert run({'path': str(path), 'state': 'absent', 'remove': ['log-opts.max-size']})['changed'] is False


def test_remove_then_set_replaces_an_object(path):
    write(path, {'runtimes': {'crun': {'path': 'crun'}, 'nvidia': {'path': 'old'}}})
    args = {'path': str(path), 'remove': ['runtimes'], 'nvidia_runtime': True}
    assert run(args)['changed'] is True
    assert read(path) == {'runtimes': {'nvidia': NVIDIA}}
    assert run(args)['changed'] is False


def test_settings_lists_replace(path):
    write(path, {'default-address-pools': [{'base': '10.0.0.0/8', 'size': 24}]})
    pools = [{'base': '172.30.0.0/16', 'size': 24}]
    run({'path': str(path), 'settings': {'default-address-pools': pools}})
    assert read(path) == {'default-address-pools': pools}


def test_defaults_apply_on_a_fresh_file_and_never_over_someone_elses_log_driver(path):
    defaults = {'log-driver': 'json-file', 'log-opts': {'max-size': '10m', 'max-file': 3}}
    result = run({'path': str(path), 'live_restore': True, 'defaults': defaults})
    assert result['changed'] is True
    assert read(path) == {'live-restore': True, 'log-driver': 'json-file', 'log-opts': {'max-size': '10m', 'max-file': '3'}}
    assert run({'path': str(path), 'live_restore': True, 'defaults': defaults})['changed'] is False

    other = path.parent / 'other.json'
    write(other, {'log-driver': 'journald', 'data-root': '/srv/docker'})
    before = digest(other)
    result = run({'path': str(other), 'defaults': defaults})
    assert result['changed'] is False and result['restart_required'] is False
    assert digest(other) == before


def test_defaults_are_refused_with_state_absent(path):
    write(path, {'live-restore': True})
    result = run({'path': str(path), 'state': 'absent', 'remove': ['live-restore'], 'defaults': {'log-driver': 'local'}})
    assert result['failed'] and 'defaults' in result['msg']
