# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import http.server
import json
import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import package_repo
from ansible_collections.ragops.gpu_stack.plugins.modules import nvidia_container_toolkit
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import run_module

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'package_repo'
TEST_FPR = (FIXTURES / 'test-key.fingerprints').read_text(encoding='utf-8').split()[0]
OTHER_FPR = (FIXTURES / 'other-key.fingerprints').read_text(encoding='utf-8').strip()
TEST_ASC = (FIXTURES / 'test-key.asc').read_text(encoding='utf-8')
TEST_GPG = (FIXTURES / 'test-key.gpg').read_bytes()
OTHER_ASC = (FIXTURES / 'other-key.asc').read_text(encoding='utf-8')

PACKAGES = list(package_repo.NVIDIA_PACKAGES)
VERSION = '1.17.8-1'


# ---------------------------------------------------------------------------------------------
# A fake package world: apt-get, dpkg-query, dnf, yum, zypper and rpm on PATH, sharing one
# package database and one repository of available versions, and logging every call.

FAKE_TOOL = r'''#!{python}
import json, os, sys
state = os.environ['FAKE_PM_STATE']
tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]
with open(os.path.join(state, 'calls.log'), 'a', encoding='utf-8') as log:
    log.write(json.dumps([tool] + args) + '\n')
def load(name):
    with open(os.path.join(state, name), encoding='utf-8') as handle:
        return json.load(handle)
def save(name, data):
    with open(os.path.join(state, name), 'w', encoding='utf-8') as handle:
        json.dump(data, handle)
db, repo, fail = load('db.json'), load('repo.json'), load('fail.json')
if tool in fail:
    sys.stderr.write(fail[tool] + '\n')
    sys.exit(100)
def split(spec, sep):
    if sep is not None:
        return spec.split(sep, 1) if sep in spec else (spec, None)
    # dnf's name-version-release: the version starts after the name's last part.
    for name in repo:
        if spec.startswith(name + '-') and spec[len(name) + 1:len(name) + 2].isdigit():
            return name, spec[len(name) + 1:]
    return spec, None
def install(specs, sep, downgrade_flag):
    for spec in specs:
        name, version = split(spec, sep)
        available = repo.get(name, [])
        if version is None:
            version = available[-1] if available else None
        elif '-' not in version:
            version = next((v for v in available if v.split('-')[0] == version), None)
        if version not in available:
            sys.stderr.write('E: Version %r for %r was not found\n' % (version, name))
            sys.exit(100)
        if downgrade_flag is not None and db.get(name) and available.index(db[name]) > available.index(version) \
                and downgrade_flag not in args:
            sys.stderr.write('E: Packages were downgraded and -y was used without %s.\n' % downgrade_flag)
            sys.exit(100)
        db[name] = version
    save('db.json', db)
words = [a for i, a in enumerate(args) if not a.startswith('-') and (i == 0 or args[i - 1] != '-o')]
pkgs = [a for a in words if a not in ('install', 'remove', 'upgrade', 'update', 'makecache', 'refresh')]
if tool == 'dpkg-query':
    names = args[3:]
    missing = [n for n in names if n not in db]
    for n in names:
        if n in db:
            print('%s\t%s\tii ' % (n, db[n]))
    for n in missing:
        sys.stderr.write('dpkg-query: no packages found matching %s\n' % n)
    sys.exit(1 if missing else 0)
if tool == 'rpm' and args[0] == '-q':
    names = args[3:]
    for n in names:
        print('%s\t%s' % (n, db[n]) if n in db else 'package %s is not installed' % n)
    sys.exit(sum(1 for n in names if n not in db))
if tool == 'apt-get' and 'install' in args:
    install(pkgs, '=', '--allow-downgrades')
elif tool == 'zypper' and 'install' in args:
    install(pkgs, '=', '--oldpackage')
elif tool in ('dnf', 'yum') and ('install' in args or 'upgrade' in args):
    install(pkgs, None, None)
elif 'remove' in args:
    for n in pkgs:
        db.pop(n, None)
    save('db.json', db)
'''


class PackageWorld:
    def __init__(self, root):
        self.root = root
        self.bin = root / 'bin'
        self.state = root / 'state'
        self.bin.mkdir(parents=True)
        self.state.mkdir()
        self.set_db({})
        self.set_repo({name: ['1.17.7-1', '1.17.8-1', '1.18.0-1'] for name in PACKAGES})
        self.set_failures({})

    def install_tools(self, *tools):
        for tool in tools:
            path = self.bin / tool
            path.write_text(FAKE_TOOL.replace('{python}', sys.executable), encoding='utf-8')
            path.chmod(0o755)

    def _save(self, name, data):
        (self.state / name).write_text(json.dumps(data), encoding='utf-8')

    def set_db(self, db):
        self._save('db.json', db)

    def set_repo(self, repo):
        self._save('repo.json', repo)

    def set_failures(self, failures):
        self._save('fail.json', failures)

    @property
    def db(self):
        return json.loads((self.state / 'db.json').read_text(encoding='utf-8'))

    @property
    def calls(self):
        log = self.state / 'calls.log'
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text(encoding='utf-8').splitlines()]

    def changing_calls(self):
        """Calls other than the read-only package queries."""
        return [call for call in self.calls if call[0] != 'dpkg-query' and call[:2] != ['rpm', '-q']]

    def clear_calls(self):
        (self.state / 'calls.log').unlink(missing_ok=True)


@pytest.fixture
def world(tmp_path, monkeypatch):
    fake = PackageWorld(tmp_path / 'world')
    fake.install_tools('apt-get', 'dpkg-query')
    # Only the fakes: the real apt-get of the machine running the tests must never be reached.
    monkeypatch.setenv('PATH', str(fake.bin))
    monkeypatch.setenv('FAKE_PM_STATE', str(fake.state))
    monkeypatch.setattr(nvidia_container_toolkit, 'machine', lambda: 'x86_64')
    return fake


@pytest.fixture
def host(tmp_path):
    root = tmp_path / 'host'
    return root


def paths(host, manager='apt', fmt='deb822'):
    repo = {'apt': 'etc/apt/sources.list.d/nvidia-container-toolkit.%s' % ('sources' if fmt == 'deb822' else 'list'),
            'dnf': 'etc/yum.repos.d/nvidia-container-toolkit.repo',
            'yum': 'etc/yum.repos.d/nvidia-container-toolkit.repo',
            'zypper': 'etc/zypp/repos.d/nvidia-container-toolkit.repo'}[manager]
    keyring = 'usr/share/keyrings/nvidia-container-toolkit-keyring.gpg' if manager == 'apt' else 'etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia'
    return host / repo, host / keyring


def args_for(host, manager='apt', fmt='deb822', **extra):
    repo, keyring = paths(host, manager, fmt)
    args = dict(key_content=TEST_ASC, key_fingerprint=TEST_FPR, repo_path=str(repo), keyring_path=str(keyring),
                package_manager=manager, repo_format=fmt)
    args.update(extra)
    return args


def run(args, check_mode=False, diff=False):
    """Run the module's main(); return its result, which has ``failed`` when it failed."""
    return run_module(nvidia_container_toolkit, args, check_mode=check_mode, diff=diff)[0]


def files_under(root):
    if not root.exists():
        return []
    return sorted(str(path.relative_to(root)) for path in root.rglob('*') if path.is_file())


APT_SOURCES = """\
Types: deb
URIs: https://nvidia.github.io/libnvidia-container/stable/deb/amd64
Suites: /
Architectures: amd64
Signed-By: {keyring}
"""

# ---------------------------------------------------------------------------------------------
# apt: the whole path, then idempotence


def test_apt_fresh_host_gets_key_repo_and_pinned_packages(world, host):
    old = os.umask(0o077)
    try:
        result = run(args_for(host))
    finally:
        os.umask(old)
    assert not result.get('failed'), result
    repo, keyring = paths(host)
    assert result['changed'] is True
    assert keyring.read_bytes() == TEST_GPG  # the binary keyring gpg --dearmor would write
    assert repo.read_text(encoding='utf-8') == APT_SOURCES.format(keyring=keyring)
    for path in (repo, keyring):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert result['key_fingerprint'] == TEST_FPR
    assert result['repo_file'] == str(repo) and result['keyring'] == str(keyring)
    assert result['packages'] == {name: {'before': None, 'after': VERSION} for name in PACKAGES}
    assert world.db == {name: VERSION for name in PACKAGES}
    assert world.changing_calls() == [
        ['apt-get', 'update', '-o', 'Dir::Etc::sourcelist=%s' % repo, '-o', 'Dir::Etc::sourceparts=-',
         '-o', 'APT::Get::List-Cleanup=0'],
        ['apt-get', 'install', '-y', '--no-install-recommends',
         '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold']
        + ['%s=%s' % (name, VERSION) for name in PACKAGES],
    ]
    assert result['actions'] == ['wrote %s' % keyring, 'wrote %s' % repo,
                                 'refreshed the nvidia-container-toolkit repository',
                                 'installed ' + ', '.join('%s=%s' % (name, VERSION) for name in PACKAGES)]


def test_second_run_changes_nothing_and_runs_no_package_manager(world, host):
    assert run(args_for(host))['changed'] is True
    world.clear_calls()
    repo, keyring = paths(host)
    before = {path: path.stat().st_mtime_ns for path in (repo, keyring)}
    result = run(args_for(host), diff=True)
    assert result['changed'] is False, result
    assert result['actions'] == [] and result['diff'] == []
    assert world.changing_calls() == []
    assert {path: path.stat().st_mtime_ns for path in (repo, keyring)} == before
    assert result['packages'] == {name: {'before': VERSION, 'after': VERSION} for name in PACKAGES}


def test_only_packages_at_another_version_are_installed(world, host):
    run(args_for(host))
    world.set_db(dict(world.db, **{'libnvidia-container1': '1.17.7-1'}))
    world.clear_calls()
    result = run(args_for(host))
    assert result['changed'] is True
    install = world.changing_calls()[-1]
    assert install[0:2] == ['apt-get', 'install'] and install[-1] == 'libnvidia-container1=%s' % VERSION
    assert [arg for arg in install if '=' in arg and not arg.startswith('Dpkg')] == ['libnvidia-container1=%s' % VERSION]
    assert result['packages']['libnvidia-container1'] == {'before': '1.17.7-1', 'after': VERSION}
    # The repository files were already right: only the metadata refresh an install needs.
    assert not any(action.startswith('wrote') for action in result['actions'])


def test_downgrade_needs_allow_downgrade(world, host):
    world.set_db({name: '1.18.0-1' for name in PACKAGES})
    result = run(args_for(host))
    assert result['failed'] and 'without --allow-downgrades' in result['msg']
    result = run(args_for(host, allow_downgrade=True))
    assert not result.get('failed'), result
    assert '--allow-downgrades' in world.changing_calls()[-1]
    assert world.db == {name: VERSION for name in PACKAGES}


def test_latest_installs_the_newest_and_then_stays_unchanged(world, host):
    result = run(args_for(host, version='latest'))
    assert result['changed'] is True
    assert world.db == {name: '1.18.0-1' for name in PACKAGES}
    assert world.changing_calls()[-1][-4:] == PACKAGES
    result = run(args_for(host, version='latest'))
    assert result['changed'] is False, result


def test_version_not_in_the_repository_fails_with_apt_message(world, host):
    result = run(args_for(host, version='9.9.9-1'))
    assert result['failed'] and "Version '9.9.9-1'" in result['msg'] and 'rc=100' in result['msg']


def test_install_packages_false_only_adds_the_repository(world, host):
    result = run(args_for(host, install_packages=False))
    assert result['changed'] is True
    assert [call[:2] for call in world.calls] == [['apt-get', 'update']]
    assert result['packages'] == {}
    assert run(args_for(host, install_packages=False))['changed'] is False


def test_list_format(world, host):
    result = run(args_for(host, fmt='list'))
    repo, keyring = paths(host, fmt='list')
    assert repo.read_text(encoding='utf-8') == (
        'deb [arch=amd64 signed-by=%s] https://nvidia.github.io/libnvidia-container/stable/deb/amd64 /\n' % keyring)
    assert result['changed'] is True


def test_default_paths_remove_the_other_form(world, host, monkeypatch):
    # NVIDIA's instructions write nvidia-container-toolkit.list; with the deb822 file beside it apt sees the repo twice.
    repo, keyring = paths(host)
    stale = host / 'etc/apt/sources.list.d/nvidia-container-toolkit.list'
    monkeypatch.setitem(package_repo.DEFAULT_PATHS, 'apt', {'keyring': str(keyring), 'deb822': str(repo), 'list': str(stale)})
    stale.parent.mkdir(parents=True)
    stale.write_text('deb [signed-by=/elsewhere.gpg] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /\n',
                     encoding='utf-8')
    args = args_for(host)
    del args['repo_path'], args['keyring_path']
    result = run(args)
    assert not result.get('failed'), result
    assert not stale.exists() and repo.exists()
    assert 'removed %s' % stale in result['actions']


# ---------------------------------------------------------------------------------------------
# The key: checked before anything is written


def test_wrong_key_fails_with_both_fingerprints_and_writes_nothing(world, host):
    result = run(args_for(host, key_content=OTHER_ASC))
    assert result['failed']
    assert TEST_FPR in result['msg'] and OTHER_FPR in result['msg'] and 'nothing was written' in result['msg']
    assert files_under(host) == []
    assert world.calls == []


def test_wrong_key_on_an_installed_host_leaves_it_as_it_was(world, host):
    run(args_for(host))
    repo, keyring = paths(host)
    before = (repo.read_bytes(), keyring.read_bytes())
    world.clear_calls()
    result = run(args_for(host, key_content=OTHER_ASC, key_fingerprint=TEST_FPR))
    assert result['failed']
    assert (repo.read_bytes(), keyring.read_bytes()) == before
    assert world.calls == []


def test_fingerprint_spelling_does_not_matter(world, host):
    spaced = ' '.join(TEST_FPR[i:i + 4] for i in range(0, 40, 4)).lower()
    result = run(args_for(host, key_fingerprint=spaced))
    assert not result.get('failed'), result
    assert result['key_fingerprint'] == TEST_FPR


def test_key_id_instead_of_fingerprint_is_refused(world, host):
    result = run(args_for(host, key_fingerprint=TEST_FPR[-16:]))
    assert result['failed'] and result['msg'].startswith('key_fingerprint:') and 'forge' in result['msg']
    assert files_under(host) == []


def test_armoured_key_content_with_crlf_line_ends(world, host):
    result = run(args_for(host, key_content=TEST_ASC.replace('\n', '\r\n')))
    assert not result.get('failed'), result
    assert paths(host)[1].read_bytes() == TEST_GPG


class _KeyServer:
    """A local HTTP server standing in for nvidia.github.io, so fetch_url runs for real."""

    def __init__(self, body, status=200):
        outer = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.requests.append(self.path)
                self.send_response(status)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_key_is_downloaded_from_base_url_gpgkey(world, host, monkeypatch):
    for name in ('http_proxy', 'HTTP_PROXY', 'no_proxy'):
        monkeypatch.delenv(name, raising=False)
    with _KeyServer(TEST_ASC.encode('ascii')) as server:
        args = args_for(host, base_url=server.url + '/mirror/libnvidia-container/')
        del args['key_content']
        result = run(args)
    assert not result.get('failed'), result
    assert server.requests == ['/mirror/libnvidia-container/gpgkey']
    assert paths(host)[1].read_bytes() == TEST_GPG
    assert 'URIs: %s/mirror/libnvidia-container/stable/deb/amd64\n' % server.url in paths(host)[0].read_text(encoding='utf-8')


def test_downloaded_wrong_key_writes_nothing(world, host, monkeypatch):
    monkeypatch.delenv('http_proxy', raising=False)
    with _KeyServer(OTHER_ASC.encode('ascii')) as server:
        args = args_for(host, key_url=server.url + '/gpgkey')
        del args['key_content']
        result = run(args)
    assert result['failed'] and OTHER_FPR in result['msg'] and server.url + '/gpgkey' in result['msg']
    assert files_under(host) == []


def test_download_failure_fails_clearly(world, host, monkeypatch):
    monkeypatch.delenv('http_proxy', raising=False)
    with _KeyServer(b'not found', status=404) as server:
        args = args_for(host, key_url=server.url + '/gpgkey')
        del args['key_content']
        result = run(args)
    assert result['failed'] and 'could not download the signing key' in result['msg'] and '404' in result['msg']
    assert files_under(host) == []


# ---------------------------------------------------------------------------------------------
# Check mode and diff


def test_check_mode_on_a_fresh_host_writes_and_installs_nothing(world, host):
    result = run(args_for(host), check_mode=True, diff=True)
    assert result['changed'] is True
    assert files_under(host) == []
    assert world.changing_calls() == []
    assert result['packages'] == {name: {'before': None, 'after': VERSION} for name in PACKAGES}
    repo, keyring = paths(host)
    key_diff, repo_diff = result['diff']
    assert key_diff['before'] == '' and key_diff['after'].startswith('fingerprint: %s\n' % TEST_FPR)
    assert key_diff['before_header'] == '%s (absent)' % keyring
    assert repo_diff['after'] == APT_SOURCES.format(keyring=keyring)
    assert result['actions'][-1].startswith('installed nvidia-container-toolkit=%s' % VERSION)


def test_check_mode_agrees_with_the_real_run_afterwards(world, host):
    run(args_for(host))
    assert run(args_for(host), check_mode=True)['changed'] is False
    world.set_db(dict(world.db, **{'nvidia-container-toolkit': '1.17.7-1'}))
    result = run(args_for(host), check_mode=True)
    assert result['changed'] is True
    assert result['packages']['nvidia-container-toolkit'] == {'before': '1.17.7-1', 'after': VERSION}
    assert world.db['nvidia-container-toolkit'] == '1.17.7-1'


def test_diff_shows_the_key_change_as_fingerprints(world, host):
    repo, keyring = paths(host)
    keyring.parent.mkdir(parents=True)
    keyring.write_bytes(package_repo.dearmor(OTHER_ASC))
    result = run(args_for(host, install_packages=False), check_mode=True, diff=True)
    key_diff = result['diff'][0]
    assert key_diff['before'].startswith('fingerprint: %s' % OTHER_FPR)
    assert key_diff['after'].startswith('fingerprint: %s' % TEST_FPR)
    assert keyring.read_bytes() == package_repo.dearmor(OTHER_ASC)


# ---------------------------------------------------------------------------------------------
# dnf, yum, zypper, auto-detection


RPM_REPO = """\
[nvidia-container-toolkit]
name=nvidia-container-toolkit
baseurl=https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch
repo_gpgcheck=1
gpgcheck=0
enabled=1
gpgkey=file://{keyring}
"""


@pytest.mark.parametrize('manager', ['dnf', 'yum'])
def test_dnf_and_yum(world, host, manager):
    world.install_tools(manager, 'rpm')
    result = run(args_for(host, manager))
    assert not result.get('failed'), result
    repo, keyring = paths(host, manager)
    assert keyring.read_text(encoding='ascii') == TEST_ASC  # rpm wants the armoured key
    assert repo.read_text(encoding='utf-8') == RPM_REPO.format(keyring=keyring) + (
        'sslverify=1\nsslcacert=/etc/pki/tls/certs/ca-bundle.crt\n')
    assert world.changing_calls() == [
        [manager, '-y', 'makecache', '--disablerepo=*', '--enablerepo=nvidia-container-toolkit'],
        [manager, 'install', '-y'] + ['%s-%s' % (name, VERSION) for name in PACKAGES],
    ]
    assert world.db == {name: VERSION for name in PACKAGES}
    world.clear_calls()
    assert run(args_for(host, manager))['changed'] is False
    assert world.changing_calls() == []


def test_zypper(world, host):
    world.install_tools('zypper', 'rpm')
    result = run(args_for(host, 'zypper', version='1.17.8'))
    assert not result.get('failed'), result
    repo, keyring = paths(host, 'zypper')
    assert repo.read_text(encoding='utf-8') == RPM_REPO.format(keyring=keyring) + 'autorefresh=1\ntype=rpm-md\n'
    assert world.changing_calls() == [
        ['rpm', '--import', str(keyring)],
        ['zypper', '--non-interactive', 'refresh', 'nvidia-container-toolkit'],
        ['zypper', '--non-interactive', 'install'] + ['%s=1.17.8' % name for name in PACKAGES],
    ]
    # 1.17.8 without a release matches the installed 1.17.8-1: nothing to do the second time.
    assert run(args_for(host, 'zypper', version='1.17.8'))['changed'] is False


def test_auto_detects_zypper_when_apt_get_is_absent(world, host):
    for tool in ('apt-get', 'dpkg-query'):
        (world.bin / tool).unlink()
    world.install_tools('zypper', 'rpm')
    args = args_for(host, 'zypper', package_manager='auto', install_packages=False)
    result = run(args)
    assert result['package_manager'] == 'zypper'


def test_auto_without_any_package_manager_fails(world, host):
    for tool in ('apt-get', 'dpkg-query'):
        (world.bin / tool).unlink()
    result = run(args_for(host, package_manager='auto'))
    assert result['failed'] and 'no supported package manager' in result['msg']


def test_failed_refresh_fails_the_task_with_its_message(world, host):
    world.set_failures({'apt-get': 'E: The repository is not signed.'})
    result = run(args_for(host))
    assert result['failed'] and 'The repository is not signed' in result['msg']


def test_unsupported_architecture_writes_nothing(world, host, monkeypatch):
    monkeypatch.setattr(nvidia_container_toolkit, 'machine', lambda: 'ppc64le')
    result = run(args_for(host))
    assert result['failed'] and "'ppc64le'" in result['msg']
    assert files_under(host) == []


# ---------------------------------------------------------------------------------------------
# state=absent


def test_absent_removes_repo_and_key_and_keeps_packages_by_default(world, host):
    run(args_for(host))
    world.clear_calls()
    result = run(args_for(host, state='absent'), check_mode=True)
    assert result['changed'] is True and len(files_under(host)) == 2
    result = run(args_for(host, state='absent'))
    assert result['changed'] is True
    assert files_under(host) == []
    assert world.db == {name: VERSION for name in PACKAGES}
    assert world.changing_calls() == []
    assert run(args_for(host, state='absent'))['changed'] is False


def test_absent_with_remove_packages(world, host):
    run(args_for(host))
    result = run(args_for(host, state='absent', remove_packages=True), check_mode=True)
    assert result['packages']['libnvidia-container1'] == {'before': VERSION, 'after': None}
    assert world.db == {name: VERSION for name in PACKAGES}
    world.clear_calls()
    result = run(args_for(host, state='absent', remove_packages=True))
    assert world.changing_calls() == [['apt-get', 'remove', '-y'] + PACKAGES]
    assert world.db == {}
    assert result['packages']['nvidia-container-toolkit'] == {'before': VERSION, 'after': None}
    assert run(args_for(host, state='absent', remove_packages=True))['changed'] is False


def test_key_url_and_key_content_are_exclusive(world, host):
    result = run(args_for(host, key_url='https://example/gpgkey'))
    assert result['failed'] and 'mutually exclusive' in result['msg']
