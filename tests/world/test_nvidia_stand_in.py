"""Tests of the test world's NVIDIA Container Toolkit stand-in (tests/world/nvidia_stand_in).

NVIDIA's apt repository is unreachable here, so ``world.sh nvidia-repo`` builds stand-in
packages under the real names and versions into a flat repository laid out like
https://nvidia.github.io/libnvidia-container, signs it with a throwaway key and serves it on
:5080. These tests prove what product code relies on:

- the repository's signatures verify with ``gpgv`` against the exported ``gpgkey``, and the
  key is the one whose fingerprint world.sh records;
- apt in a Debian 12 container, through the product's own source line
  (``deb [signed-by=...] http://registry.local:5080/libnvidia-container/stable/deb/ARCH /``),
  installs ``nvidia-container-toolkit=1.17.8-1`` with its dependencies, and refuses the
  repository when the keyring holds another key;
- the stand-in hook records the OCI spec it is given, as Docker's ``--gpus`` makes runc run
  it (``nvidia-container-runtime-hook prestart``, the OCI state on stdin).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import urllib.request

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
WORLD = os.path.join(HERE, 'world.sh')
SOURCES = os.path.join(HERE, 'nvidia_stand_in')
STATE = os.environ.get('RAGOPS_WORLD_STATE', '/var/lib/ragops-world')
PORT = int(os.environ.get('RAGOPS_WORLD_NVIDIA_REPO_PORT', '5080'))
IMAGE = 'ragops-world/debian12-systemd:latest'
VERSION = '1.17.8-1'
PACKAGES = ('nvidia-container-toolkit', 'nvidia-container-toolkit-base', 'libnvidia-container-tools', 'libnvidia-container1')
KEYRING = '/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg'
HOOK = os.path.join(SOURCES, 'nvidia-container-toolkit', 'usr', 'bin', 'nvidia-container-runtime-hook')
NVIDIA_CTK = os.path.join(SOURCES, 'nvidia-container-toolkit-base', 'usr', 'bin', 'nvidia-ctk')
NVIDIA_CLI = os.path.join(SOURCES, 'libnvidia-container-tools', 'usr', 'bin', 'nvidia-container-cli')


def run(*args: str, check: bool = True, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; output is captured as text."""
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout, **kwargs)


def arch() -> str:
    """Debian's name for this machine's architecture (the repository's folder)."""
    return run('dpkg', '--print-architecture').stdout.strip()


class Repo:
    """The built repository as world.sh serves it."""

    def __init__(self) -> None:
        self.base = os.path.join(STATE, 'nvidia-apt', 'www', 'libnvidia-container')
        self.dist = os.path.join(self.base, 'stable', 'deb', arch())
        self.gpgkey = os.path.join(self.base, 'gpgkey')
        with open(os.path.join(STATE, 'nvidia-apt', 'fingerprint'), encoding='ascii') as handle:
            self.fingerprint = handle.read().strip()


@pytest.fixture(name='repo', scope='module')
def fixture_repo() -> Repo:
    """The repository, current with its sources and served (world.sh builds it when it is not)."""
    if os.geteuid() != 0:
        pytest.skip('world.sh nvidia-repo needs root')
    subprocess.run([WORLD, 'nvidia-repo'], check=True, timeout=300)
    return Repo()


@pytest.fixture(name='keyring', scope='module')
def fixture_keyring(repo: Repo, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The exported key, dearmoured into a binary keyring (what apt's signed-by takes)."""
    home = tmp_path_factory.mktemp('gnupg')
    path = str(home / 'keyring.gpg')
    run('gpg', '--batch', '--homedir', str(home), '--dearmor', '--output', path, repo.gpgkey)
    return path


@pytest.fixture(name='image', scope='module')
def fixture_image() -> str:
    """The Debian 12 host image (world.sh builds it when absent)."""
    if run('docker', 'image', 'inspect', IMAGE, check=False, timeout=30).returncode != 0:
        subprocess.run([WORLD, 'images', 'debian12-systemd'], check=True, timeout=1200)
    return IMAGE


def key_fingerprints(keyring: str) -> list[str]:
    """Fingerprints (primary first, then subkeys) of the keys in a keyring the keyring fixture made."""
    out = run('gpg', '--batch', '--homedir', os.path.dirname(keyring), '--show-keys', '--with-colons',
              '--with-subkey-fingerprints', keyring).stdout
    return [line.split(':')[9] for line in out.splitlines() if line.startswith('fpr:')]


# ---------------------------------------------------------------------------------------------
# The repository on disk and over HTTP


def test_layout_is_nvidias(repo: Repo) -> None:
    """The files NVIDIA's flat repository serves, and every package in two versions."""
    for name in ('Packages', 'Packages.gz', 'Release', 'InRelease', 'Release.gpg'):
        assert os.path.getsize(os.path.join(repo.dist, name)) > 0, name
    with open(os.path.join(repo.dist, 'Packages'), encoding='utf-8') as handle:
        stanzas = [dict(line.split(': ', 1) for line in block.splitlines() if not line.startswith(' '))
                   for block in handle.read().strip().split('\n\n')]
    found = {(s['Package'], s['Version']) for s in stanzas}
    assert found == {(p, v) for p in PACKAGES for v in (VERSION, '1.17.7-1')}
    for stanza in stanzas:
        assert "TEST STAND-IN, not NVIDIA's package" in stanza['Description']
        assert stanza['Filename'] == './%s_%s_%s.deb' % (stanza['Package'], stanza['Version'], arch())
        assert stanza['Architecture'] == arch()
    toolkit = next(s for s in stanzas if s['Package'] == 'nvidia-container-toolkit' and s['Version'] == VERSION)
    assert toolkit['Depends'] == ('nvidia-container-toolkit-base (= 1.17.8-1), libnvidia-container-tools (= 1.17.8-1), '
                                  'libnvidia-container1 (= 1.17.8-1)')
    with open(os.path.join(repo.base, 'stable', 'deb', 'nvidia-container-toolkit.list'), encoding='utf-8') as handle:
        assert handle.read() == 'deb http://registry.local:%d/libnvidia-container/stable/deb/$(ARCH) /\n' % PORT


def test_release_hashes_the_indexes(repo: Repo) -> None:
    """Release's SHA256 lines match Packages and Packages.gz (what apt checks after the signature)."""
    with open(os.path.join(repo.dist, 'Release'), encoding='utf-8') as handle:
        release = handle.read()
    sha256 = release.split('SHA256:\n', 1)[1].split('\n')
    listed = {}
    for line in sha256:
        if not line.startswith(' '):
            break
        digest, size, name = line.split()
        listed[name] = (digest, int(size))
    for name in ('Packages', 'Packages.gz'):
        with open(os.path.join(repo.dist, name), 'rb') as handle:
            data = handle.read()
        assert listed[name] == (hashlib.sha256(data).hexdigest(), len(data))


def test_signatures_verify_with_gpgv(repo: Repo, keyring: str, tmp_path) -> None:
    """InRelease and Release.gpg verify against the exported key; a changed byte does not."""
    inrelease = os.path.join(repo.dist, 'InRelease')
    assert run('gpgv', '--keyring', keyring, inrelease, check=False).returncode == 0
    assert run('gpgv', '--keyring', keyring, os.path.join(repo.dist, 'Release.gpg'), os.path.join(repo.dist, 'Release'),
               check=False).returncode == 0
    with open(inrelease, encoding='utf-8') as handle:
        text = handle.read()
    assert text.startswith('-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n')
    tampered = tmp_path / 'InRelease'
    tampered.write_text(text.replace('Packages.gz', 'Packages.xz', 1), encoding='utf-8')
    result = run('gpgv', '--keyring', keyring, str(tampered), check=False)
    assert result.returncode != 0
    assert 'BAD signature' in result.stderr


def test_fingerprint_file_names_the_exported_key(repo: Repo, keyring: str) -> None:
    """The recorded fingerprint is the primary key's; a signing subkey signs, as with NVIDIA's key."""
    fingerprints = key_fingerprints(keyring)
    assert len(fingerprints) == 2
    assert fingerprints[0] == repo.fingerprint
    assert len(repo.fingerprint) == 40
    with open(os.path.join(repo.base, 'gpgkey.fingerprint'), encoding='ascii') as handle:
        assert handle.read().strip() == repo.fingerprint
    with open(repo.gpgkey, encoding='ascii') as handle:
        armour = handle.read()
    assert armour.startswith('-----BEGIN PGP PUBLIC KEY BLOCK-----')
    # The armour's body is the binary keyring (what `gpg --dearmor` and the product write).
    body = ''.join(line for line in armour.split('\n\n', 1)[1].splitlines() if line and not line.startswith(('=', '-----')))
    with open(keyring, 'rb') as handle:
        assert base64.b64decode(body) == handle.read()


def test_served_over_http(repo: Repo) -> None:
    """The server on :5080 serves the repository's files."""
    for rel in ('gpgkey', 'stable/deb/%s/InRelease' % arch()):
        with urllib.request.urlopen('http://127.0.0.1:%d/libnvidia-container/%s' % (PORT, rel), timeout=10) as response:
            with open(os.path.join(repo.base, rel), 'rb') as handle:
                assert response.read() == handle.read()


# ---------------------------------------------------------------------------------------------
# apt in a Debian 12 container, through registry.local as Molecule instances reach the host

APT_PRELUDE = r'''
set -eu
base=http://registry.local:%(port)d/libnvidia-container
echo "deb [signed-by=%(keyring)s] $base/stable/deb/$(dpkg --print-architecture) /" >/etc/apt/sources.list.d/nvidia-container-toolkit.list
# Only this repository: the image's Debian source would add a slow download unrelated to the test.
update() {
  apt-get update -o Dir::Etc::SourceList=/etc/apt/sources.list.d/nvidia-container-toolkit.list -o Dir::Etc::SourceParts=- 2>&1
}
'''

APT_INSTALL = APT_PRELUDE + r'''
curl -fsSL "$base/gpgkey" | gpg --dearmor -o %(keyring)s
update
echo "== policy"; apt-cache policy nvidia-container-toolkit
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nvidia-container-toolkit=%(version)s >/dev/null
echo "== versions"; dpkg-query -W -f '${Package} ${Version} ${Status}\n' %(packages)s
echo "== nvidia-ctk"; nvidia-ctk --version
echo "== cli"; nvidia-container-cli --version | head -n 1
echo "== cli info"; nvidia-container-cli info 2>&1 && exit 1 || true
echo "== paths"; command -v nvidia-container-runtime-hook nvidia-container-runtime nvidia-ctk nvidia-container-cli
mkdir -p /tmp/bundle
echo '{"process":{"env":["PATH=/usr/bin","NVIDIA_VISIBLE_DEVICES=all"]}}' >/tmp/bundle/config.json
echo '{"ociVersion":"1.0.2-dev","id":"c0ffee","status":"creating","pid":1,"bundle":"/tmp/bundle"}' | nvidia-container-runtime-hook prestart
echo "== record"; cat /var/log/nvidia-stand-in/c0ffee.json
'''

APT_WRONG_KEY = APT_PRELUDE + r'''
# A real OpenPGP key, but not the repository's: Debian's archive key.
cp /usr/share/keyrings/debian-archive-keyring.gpg %(keyring)s
rc=0; update || rc=$?
echo "== update rc $rc"
rc=0; DEBIAN_FRONTEND=noninteractive apt-get install -y -q nvidia-container-toolkit=%(version)s 2>&1 || rc=$?
echo "== install rc $rc"
'''


def in_container(image: str, script: str) -> subprocess.CompletedProcess:
    """Run a bash script in a throwaway container of IMAGE that reaches the host as registry.local."""
    params = {'port': PORT, 'keyring': KEYRING, 'version': VERSION, 'packages': ' '.join(PACKAGES)}
    return run('docker', 'run', '--rm', '--add-host', 'registry.local:host-gateway', image, 'bash', '-c', script % params,
               check=False, timeout=180)


def sections(out: str) -> dict[str, str]:
    """The script's output split at its '== name' lines."""
    parts: dict[str, str] = {}
    name = ''
    for line in out.splitlines():
        if line.startswith('== '):
            name = line[3:]
            parts[name] = ''
        else:
            parts[name] = parts.get(name, '') + line + '\n'
    return parts


def test_apt_installs_through_signed_by(repo: Repo, image: str) -> None:
    """The product's source line and keyring: apt verifies InRelease and installs 1.17.8-1 with its dependencies."""
    result = in_container(image, APT_INSTALL)
    assert result.returncode == 0, result.stdout + result.stderr
    out = sections(result.stdout)
    assert 'Candidate: %s' % VERSION in out['policy']
    assert '1.17.7-1' in out['policy']
    assert sorted(out['versions'].splitlines()) == sorted('%s %s install ok installed' % (p, VERSION) for p in PACKAGES)
    assert out['nvidia-ctk'].splitlines()[0] == 'NVIDIA Container Toolkit CLI version 1.17.8'
    assert out['nvidia-ctk'].splitlines()[1].startswith('commit: ')
    assert out['cli'].strip() == 'cli-version: 1.17.8'
    assert 'no NVIDIA driver (test stand-in)' in out['cli info']
    assert out['paths'].split() == ['/usr/bin/nvidia-container-runtime-hook', '/usr/bin/nvidia-container-runtime',
                                    '/usr/bin/nvidia-ctk', '/usr/bin/nvidia-container-cli']
    record = json.loads(out['record'])
    assert record['id'] == 'c0ffee'
    assert record['NVIDIA_VISIBLE_DEVICES'] == 'all'
    assert record['stand_in'].startswith('nvidia-container-runtime-hook 1.17.8 ')


def test_apt_refuses_the_wrong_key(repo: Repo, keyring: str, image: str) -> None:
    """With another key in the keyring apt reports NO_PUBKEY for the signing subkey and installs nothing."""
    assert repo.fingerprint
    result = in_container(image, APT_WRONG_KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    out = sections(result.stdout)
    assert 'update rc 100' in out, result.stdout
    subkey = key_fingerprints(keyring)[1]
    assert 'NO_PUBKEY %s' % subkey[-16:] in out['']
    assert 'is not signed' in out['']
    assert 'install rc 100' in out, result.stdout
    assert 'Setting up nvidia-container-toolkit' not in result.stdout


# ---------------------------------------------------------------------------------------------
# The stand-in programs, run from their sources on this machine


def hook(tmp_path, state: dict | str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the hook's source as runc would, the OCI state on stdin; records go under tmp_path/log."""
    stdin = state if isinstance(state, str) else json.dumps(state)
    return run('sh', HOOK, *args, input=stdin, check=False, timeout=30,
               env=dict(env or os.environ, NVIDIA_STAND_IN_LOG_DIR=str(tmp_path / 'log')))


def bundle(tmp_path, env: list[str]) -> str:
    """A bundle folder with a config.json whose process has ENV, as dockerd writes it for runc."""
    path = tmp_path / 'bundle'
    path.mkdir(exist_ok=True)
    config = {'ociVersion': '1.0.2-dev', 'process': {'args': ['sh'], 'env': env, 'cwd': '/'}, 'root': {'path': 'rootfs'},
              'hooks': {'prestart': [{'path': '/usr/bin/nvidia-container-runtime-hook', 'args': ['nvidia-container-runtime-hook', 'prestart']}]}}
    (path / 'config.json').write_text(json.dumps(config, indent=2), encoding='utf-8')
    return str(path)


def test_hook_records_what_docker_gpus_sets(tmp_path) -> None:
    """What dockerd 20.10 adds for --gpus '"device=0,1"' with capabilities compute,utility reaches the record."""
    env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=abc',
           'NVIDIA_VISIBLE_DEVICES=0,1', 'NVIDIA_DRIVER_CAPABILITIES=compute,utility']
    cid = 'f' * 64
    # runc's state, compact as Go writes it.
    state = '{"ociVersion":"1.0.2-dev","id":"%s","status":"creating","pid":4242,"bundle":"%s"}' % (cid, bundle(tmp_path, env))
    result = hook(tmp_path, state, 'prestart')
    assert result.returncode == 0, result.stderr
    with open(tmp_path / 'log' / ('%s.json' % cid), encoding='utf-8') as handle:
        record = json.load(handle)
    assert record['hook'] == 'prestart'
    assert record['id'] == cid
    assert record['bundle'] == str(tmp_path / 'bundle')
    assert record['NVIDIA_VISIBLE_DEVICES'] == '0,1'
    assert record['NVIDIA_DRIVER_CAPABILITIES'] == 'compute,utility'
    assert record['config']['process']['env'] == env
    assert record['state']['pid'] == 4242
    assert 'TEST STAND-IN' in record['stand_in']
    assert os.listdir(tmp_path / 'log') == ['%s.json' % cid]


def test_hook_takes_the_last_value_like_the_real_hook(tmp_path) -> None:
    """The ollama/ollama image sets NVIDIA_VISIBLE_DEVICES=all; dockerd appends the --gpus value after it."""
    env = ['NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_DRIVER_CAPABILITIES=compute,utility', 'NVIDIA_VISIBLE_DEVICES=0']
    cid = 'e' * 64
    state = json.dumps({'ociVersion': '1.0.2-dev', 'id': cid, 'status': 'creating', 'pid': 1, 'bundle': bundle(tmp_path, env)})
    result = hook(tmp_path, state, 'prestart')
    assert result.returncode == 0, result.stderr
    with open(tmp_path / 'log' / ('%s.json' % cid), encoding='utf-8') as handle:
        assert json.load(handle)['NVIDIA_VISIBLE_DEVICES'] == '0'


def test_hook_without_gpu_variables_and_pretty_state(tmp_path) -> None:
    """Absent variables are null; an indented state and runc-style flags before the command are read too."""
    state = {'ociVersion': '1.0.2', 'id': 'plain', 'status': 'creating', 'pid': 1, 'bundle': bundle(tmp_path, ['PATH=/bin'])}
    result = hook(tmp_path, json.dumps(state, indent=4), '-debug', '/dev/null', 'prestart')
    assert result.returncode == 0, result.stderr
    with open(tmp_path / 'log' / 'plain.json', encoding='utf-8') as handle:
        record = json.load(handle)
    assert record['NVIDIA_VISIBLE_DEVICES'] is None
    assert record['NVIDIA_DRIVER_CAPABILITIES'] is None


def test_hook_other_stages_and_errors(tmp_path) -> None:
    """poststart/poststop do nothing; a missing bundle, a bad id and no command fail."""
    for stage in ('poststart', 'poststop'):
        assert hook(tmp_path, {'id': 'x', 'bundle': '/nonexistent'}, stage).returncode == 0
    assert not (tmp_path / 'log').exists()
    missing = hook(tmp_path, {'id': 'x', 'bundle': str(tmp_path / 'nonexistent')}, 'prestart')
    assert missing.returncode == 1 and 'cannot read' in missing.stderr
    bad_id = hook(tmp_path, {'id': '../escape', 'bundle': bundle(tmp_path, [])}, 'prestart')
    assert bad_id.returncode == 1 and 'unusable container id' in bad_id.stderr
    assert hook(tmp_path, '{}').returncode == 2
    assert hook(tmp_path, '', '-version').stdout.startswith('NVIDIA Container Runtime Hook version ')


def test_nvidia_ctk_cdi_generate(tmp_path) -> None:
    """cdi generate writes a CDI spec for nvidia.com/gpu devices 0 and all whose edits only set variables."""
    out = tmp_path / 'etc' / 'cdi' / 'nvidia.yaml'
    result = run('sh', NVIDIA_CTK, 'cdi', 'generate', '--output=%s' % out, check=False)
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(out.read_text(encoding='utf-8'))
    assert spec['kind'] == 'nvidia.com/gpu'
    assert spec['cdiVersion'] == '0.5.0'
    assert [d['name'] for d in spec['devices']] == ['0', 'all']
    for device in spec['devices']:
        assert list(device['containerEdits']) == ['env']
    assert list(spec['containerEdits']) == ['env']
    as_json = json.loads(run('sh', NVIDIA_CTK, 'cdi', 'generate', '--format', 'json').stdout)
    assert as_json == spec
    refused = run('sh', NVIDIA_CTK, 'runtime', 'configure', '--runtime=docker', check=False)
    assert refused.returncode == 1 and 'docker_daemon_config' in refused.stderr


def test_nvidia_container_cli_has_no_driver() -> None:
    """Every driver operation fails clearly; --version answers."""
    for command in ('info', 'list'):
        result = run('sh', NVIDIA_CLI, command, check=False)
        assert result.returncode == 1
        assert 'no NVIDIA driver (test stand-in)' in result.stderr
    assert run('sh', NVIDIA_CLI, '--version').stdout.startswith('cli-version: ')
