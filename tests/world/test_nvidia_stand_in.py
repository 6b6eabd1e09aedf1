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
  it (``nvidia-container-runtime-hook prestart``, the OCI state on stdin);
- it gives the container /dev/nvidiactl, /dev/nvidia<N> per visible GPU and the host's
  nvidia-smi (the GPUs being the host's ``nvidia-smi -L``), the stand-in runtime adds the hook
  for ``--runtime nvidia``, and ``nvidia-ctk cdi generate`` describes the same devices;
- end to end, Docker 20.10 in a throwaway systemd host with the fake nvidia-smi Molecule hosts
  have: a container with a GPU request sees its GPUs, one without sees none, and the Ollama
  double logs ``library=CUDA`` for the GPU it was given (``library=cpu`` without).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
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
               env=dict(env or os.environ, NVIDIA_STAND_IN_LOG_DIR=str(tmp_path / 'log'),
                        NVIDIA_STAND_IN_NVIDIA_SMI=(env or {}).get('NVIDIA_STAND_IN_NVIDIA_SMI', str(tmp_path / 'no-smi'))))


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


def test_nvidia_ctk_cdi_generate_without_nvidia_smi(tmp_path) -> None:
    """Without an nvidia-smi, cdi generate writes devices 0 and all whose edits only set variables."""
    out = tmp_path / 'etc' / 'cdi' / 'nvidia.yaml'
    result = run('sh', NVIDIA_CTK, 'cdi', 'generate', '--output=%s' % out, check=False,
                 env=dict(os.environ, NVIDIA_STAND_IN_NVIDIA_SMI=str(tmp_path / 'absent')))
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(out.read_text(encoding='utf-8'))
    assert spec['kind'] == 'nvidia.com/gpu'
    assert spec['cdiVersion'] == '0.5.0'
    assert [d['name'] for d in spec['devices']] == ['0', 'all']
    for device in spec['devices']:
        assert list(device['containerEdits']) == ['env']
    assert list(spec['containerEdits']) == ['env']
    as_json = json.loads(run('sh', NVIDIA_CTK, 'cdi', 'generate', '--format', 'json',
                             env=dict(os.environ, NVIDIA_STAND_IN_NVIDIA_SMI=str(tmp_path / 'absent'))).stdout)
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


# ---------------------------------------------------------------------------------------------
# Giving a container its GPUs (contract C2): /dev/nvidiactl, /dev/nvidia<N> per visible GPU and
# the host's nvidia-smi at /usr/bin/nvidia-smi, the GPUs being the host's `nvidia-smi -L`.

RUNTIME = os.path.join(SOURCES, 'nvidia-container-toolkit-base', 'usr', 'bin', 'nvidia-container-runtime')
SECOND_UUID = 'GPU-1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9'
# The same answers as molecule/nvidia/prepare.yml's fake: two RTX 4090s on driver 550.
FAKE_SMI = r'''#!/bin/sh
# TEST FAKE nvidia-smi (tests/world/test_nvidia_stand_in.py), shaped like molecule/nvidia/prepare.yml's.
case "$*" in
  *--query-gpu=driver_version*) printf '550.54.14\n550.54.14\n' ;;
  *--query-gpu=*)
    echo '0, GPU-5e1f4a5b-9c2f-3d1e-8a7b-6c5d4e3f2a10, NVIDIA GeForce RTX 4090, 24564, 8.9, 00000000:01:00.0, [N/A]'
    echo '1, GPU-1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9, NVIDIA GeForce RTX 4090, 24564, 8.9, 00000000:02:00.0, [N/A]'
    ;;
  -L)
    echo 'GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-5e1f4a5b-9c2f-3d1e-8a7b-6c5d4e3f2a10)'
    echo 'GPU 1: NVIDIA GeForce RTX 4090 (UUID: GPU-1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9)'
    ;;
  *) echo 'nvidia-smi (TEST FAKE)' ;;
esac
'''


@pytest.fixture(name='fake_smi')
def fixture_fake_smi(tmp_path) -> str:
    path = tmp_path / 'host-bin' / 'nvidia-smi'
    path.parent.mkdir()
    path.write_text(FAKE_SMI, encoding='utf-8')
    path.chmod(0o755)
    return str(path)


def rootfs_bundle(tmp_path, env: list[str]) -> str:
    """A bundle whose root file system (relative path, as runc allows) has an empty /dev."""
    path = bundle(tmp_path, env)
    os.makedirs(os.path.join(path, 'rootfs', 'dev'), exist_ok=True)
    return path


@pytest.mark.parametrize(('visible', 'nodes'), [
    ('all', ['nvidia0', 'nvidia1', 'nvidiactl']),
    ('1', ['nvidia1', 'nvidiactl']),
    (SECOND_UUID, ['nvidia1', 'nvidiactl']),
    ('GPU-5e1f', ['nvidia0', 'nvidiactl']),
    ('none', ['nvidiactl']),
])
def test_hook_gives_the_visible_gpus(tmp_path, fake_smi, visible, nodes) -> None:
    """The hook enters the process's mount namespace (here the test's own) and makes the nodes and nvidia-smi."""
    if os.geteuid() != 0:
        pytest.skip('nsenter and mknod need root')
    path = rootfs_bundle(tmp_path, ['NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_VISIBLE_DEVICES=%s' % visible])
    state = {'ociVersion': '1.0.2', 'id': 'gpus', 'status': 'creating', 'pid': os.getpid(), 'bundle': path}
    result = hook(tmp_path, state, 'prestart', env=dict(os.environ, NVIDIA_STAND_IN_NVIDIA_SMI=fake_smi))
    assert result.returncode == 0, result.stderr
    dev = os.path.join(path, 'rootfs', 'dev')
    assert sorted(os.listdir(dev)) == nodes
    for node in nodes:
        info = os.stat(os.path.join(dev, node))
        assert stat.S_ISCHR(info.st_mode)
        assert (os.major(info.st_rdev), os.minor(info.st_rdev)) == (195, 255 if node == 'nvidiactl' else int(node[6:]))
    with open(os.path.join(path, 'rootfs', 'usr', 'bin', 'nvidia-smi'), encoding='utf-8') as handle:
        assert handle.read() == FAKE_SMI
    with open(tmp_path / 'log' / 'gpus.json', encoding='utf-8') as handle:
        record = json.load(handle)
    assert record['devices'] == ['/dev/' + n for n in ['nvidiactl'] + nodes[:-1]]
    assert record['nvidia_smi'] == '/usr/bin/nvidia-smi'
    assert record['nodes'] == 'mknod'
    assert record['error'] is None


def test_hook_refuses_a_gpu_the_host_lacks(tmp_path, fake_smi) -> None:
    """As the real hook: an unknown index or UUID fails the container's start, and says which."""
    path = rootfs_bundle(tmp_path, ['NVIDIA_VISIBLE_DEVICES=0,2'])
    state = {'id': 'bad', 'pid': os.getpid(), 'bundle': path}
    result = hook(tmp_path, state, 'prestart', env=dict(os.environ, NVIDIA_STAND_IN_NVIDIA_SMI=fake_smi))
    assert result.returncode == 1
    assert 'device error: 2: unknown device' in result.stderr
    assert os.listdir(os.path.join(path, 'rootfs', 'dev')) == []
    with open(tmp_path / 'log' / 'bad.json', encoding='utf-8') as handle:
        assert json.load(handle)['devices'] == []


def test_hook_without_nvidia_smi_gives_nothing_and_says_why(tmp_path) -> None:
    path = rootfs_bundle(tmp_path, ['NVIDIA_VISIBLE_DEVICES=all'])
    result = hook(tmp_path, {'id': 'nosmi', 'pid': os.getpid(), 'bundle': path}, 'prestart')
    assert result.returncode == 0, result.stderr
    assert os.listdir(os.path.join(path, 'rootfs', 'dev')) == []
    with open(tmp_path / 'log' / 'nosmi.json', encoding='utf-8') as handle:
        record = json.load(handle)
    assert record['devices'] == [] and record['nvidia_smi'] is None
    assert 'no nvidia-smi on the host' in record['error']


def runtime_create(tmp_path, config: dict | str) -> dict:
    """Run the stand-in runtime as containerd's shim would for `create`, with a runc that does nothing."""
    path = tmp_path / 'rt-bundle'
    path.mkdir(exist_ok=True)
    (path / 'config.json').write_text(config if isinstance(config, str) else json.dumps(config), encoding='utf-8')
    fake = tmp_path / 'rt-bin'
    fake.mkdir(exist_ok=True)
    (fake / 'runc').write_text('#!/bin/sh\necho "runc $*"\n', encoding='utf-8')
    (fake / 'runc').chmod(0o755)
    # The runtime puts the standard folders first: a copy of it finds the fake runc by a changed PATH line.
    script = tmp_path / 'nvidia-container-runtime'
    with open(RUNTIME, encoding='utf-8') as handle:
        script.write_text(handle.read().replace('PATH=/usr/local/sbin', 'PATH=%s:/usr/local/sbin' % fake, 1), encoding='utf-8')
    result = run('sh', str(script), '--root', '/run/containerd/runc/moby', '--log', '/dev/null', 'create', '--bundle',
                 str(path), '--pid-file', '/dev/null', 'cid')
    assert result.stdout.startswith('runc --root /run/containerd/runc/moby --log /dev/null create --bundle ')
    return json.loads((path / 'config.json').read_text(encoding='utf-8'))


@pytest.mark.parametrize('hooks', [None, {}, {'prestart': []}, {'prestart': [{'path': '/proc/1/exe', 'args': ['libnetwork-setkey']}]},
                                   {'poststop': [{'path': '/bin/true'}]}])
def test_runtime_adds_the_hook_for_nvidia_visible_devices(tmp_path, hooks) -> None:
    """--runtime nvidia: an image's NVIDIA_VISIBLE_DEVICES gets the prestart hook first, the others kept."""
    config = {'ociVersion': '1.0.2-dev', 'process': {'env': ['NVIDIA_VISIBLE_DEVICES=all']}, 'root': {'path': 'rootfs'}}
    if hooks is not None:
        config['hooks'] = hooks
    edited = runtime_create(tmp_path, json.dumps(config, indent=2 if hooks == {} else None))
    prestart = edited['hooks']['prestart']
    assert prestart[0]['args'] == ['nvidia-container-runtime-hook', 'prestart']
    assert prestart[0]['path'].endswith('/nvidia-container-runtime-hook')
    assert prestart[1:] == (hooks or {}).get('prestart', [])
    assert {k: v for k, v in edited['hooks'].items() if k != 'prestart'} == {k: v for k, v in (hooks or {}).items() if k != 'prestart'}
    assert {k: v for k, v in edited.items() if k != 'hooks'} == {k: v for k, v in config.items() if k != 'hooks'}


@pytest.mark.parametrize('env', [['PATH=/bin'], ['NVIDIA_VISIBLE_DEVICES=void'], ['NVIDIA_VISIBLE_DEVICES=']])
def test_runtime_leaves_other_containers_alone(tmp_path, env) -> None:
    config = {'process': {'env': env}}
    assert runtime_create(tmp_path, config) == config


def test_runtime_does_not_add_a_second_hook(tmp_path) -> None:
    """dockerd added the hook itself (--gpus): the spec stays as it is."""
    config = {'process': {'env': ['NVIDIA_VISIBLE_DEVICES=0']},
              'hooks': {'prestart': [{'path': '/usr/bin/nvidia-container-runtime-hook', 'args': ['nvidia-container-runtime-hook', 'prestart']}]}}
    assert runtime_create(tmp_path, config) == config


@pytest.mark.parametrize(('strategy', 'names'), [('index', ['0', '1', 'all']), ('uuid', ['GPU-5e1f4a5b-9c2f-3d1e-8a7b-6c5d4e3f2a10', SECOND_UUID, 'all'])])
def test_nvidia_ctk_cdi_generate_for_the_hosts_gpus(tmp_path, fake_smi, strategy, names) -> None:
    """A spec as NVIDIA's: per GPU its /dev/nvidia<N>, for all /dev/nvidiactl and nvidia-smi mounted at /usr/bin."""
    env = dict(os.environ, NVIDIA_STAND_IN_NVIDIA_SMI=fake_smi)
    out = tmp_path / 'nvidia.yaml'
    run('sh', NVIDIA_CTK, 'cdi', 'generate', '--output=%s' % out, '--device-name-strategy=%s' % strategy, env=env)
    spec = yaml.safe_load(out.read_text(encoding='utf-8'))
    assert spec['kind'] == 'nvidia.com/gpu' and spec['cdiVersion'] == '0.5.0'
    assert [d['name'] for d in spec['devices']] == names
    nodes = [[(n['path'], n['type'], n['major'], n['minor']) for n in d['containerEdits']['deviceNodes']] for d in spec['devices']]
    assert nodes == [[('/dev/nvidia0', 'c', 195, 0)], [('/dev/nvidia1', 'c', 195, 1)],
                     [('/dev/nvidia0', 'c', 195, 0), ('/dev/nvidia1', 'c', 195, 1)]]
    common = spec['containerEdits']
    assert common['deviceNodes'] == [{'path': '/dev/nvidiactl', 'type': 'c', 'major': 195, 'minor': 255}]
    assert common['mounts'] == [{'hostPath': fake_smi, 'containerPath': '/usr/bin/nvidia-smi', 'options': ['ro', 'nosuid', 'nodev', 'bind']}]
    assert 'NVIDIA_VISIBLE_DEVICES=void' in common['env']
    as_json = json.loads(run('sh', NVIDIA_CTK, 'cdi', 'generate', '--format=json', '--device-name-strategy', strategy, env=env).stdout)
    assert as_json == spec
    listed = run('sh', NVIDIA_CTK, 'cdi', 'list', env=env)
    assert listed.returncode == 0


# ---------------------------------------------------------------------------------------------
# End to end: Docker 20.10 (Debian 12's docker.io) in a throwaway systemd host, the stand-in
# toolkit from the repository, the fake nvidia-smi on PATH as the Molecule hosts have it.

HOST_SETUP = APT_PRELUDE + r'''
curl -fsSL "$base/gpgkey" | gpg --dearmor -o %(keyring)s
# Quiet unless it fails; the mirror is the internet's, so one retry.
log=/var/tmp/host-setup.log
systemctl is-system-running --wait >/dev/null 2>&1 || true
apt-get update -q >$log 2>&1 || { sleep 5; apt-get update -q >>$log 2>&1; } || { cat $log; exit 1; }
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io nvidia-container-toolkit=%(version)s >>$log 2>&1 ||
  { cat $log; exit 1; }
cat >/usr/local/bin/nvidia-smi <<'SMI'
%(smi)sSMI
chmod 0755 /usr/local/bin/nvidia-smi
cat >/etc/docker/daemon.json <<'JSON'
{"registry-mirrors": ["http://registry.local:5000"], "insecure-registries": ["registry.local:5000"],
 "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
JSON
# dockerd registers --gpus only when it finds the hook on PATH at start.
systemctl restart docker
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker pull -q ollama/ollama:0.33.0 >/dev/null
echo ready
'''

SHOW = "ls /dev | grep -E '^nvidia' | sort | tr '\\n' ' '; echo; if [ -e /usr/bin/nvidia-smi ]; then nvidia-smi -L; else echo no-smi; fi"


@pytest.fixture(name='gpu_host', scope='module')
def fixture_gpu_host(repo: Repo, image: str):
    """A booted Debian 12 host (Molecule's platform flags) with Docker, the stand-in toolkit and the fake nvidia-smi."""
    assert repo.fingerprint
    name = 'ragops-world-nvidia-stand-in-%d' % os.getpid()
    run('docker', 'rm', '-f', name, check=False)
    run('docker', 'run', '-d', '--name', name, '--cap-add', 'SYS_ADMIN', '--cap-add', 'NET_ADMIN', '--cap-add', 'SYS_PTRACE',
        '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined', '--cgroupns', 'host',
        '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw', '-v', '/var/lib/docker', '--tmpfs', '/run', '--tmpfs', '/run/lock',
        '-e', 'container=docker', '--add-host', 'registry.local:host-gateway', image, '/lib/systemd/systemd')
    try:
        params = {'port': PORT, 'keyring': KEYRING, 'version': VERSION, 'smi': FAKE_SMI}
        result = run('docker', 'exec', name, 'bash', '-c', HOST_SETUP % params, check=False, timeout=600)
        assert result.stdout.strip().endswith('ready'), result.stdout + result.stderr
        yield name
    finally:
        run('docker', 'rm', '-f', '-v', name, check=False)


def in_gpu_host(host: str, script: str, timeout: float = 120) -> str:
    result = run('docker', 'exec', host, 'bash', '-c', script, check=False, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize(('options', 'nodes', 'smi'), [
    ("--gpus all", 'nvidia0 nvidia1 nvidiactl', 2),
    ("--gpus '\"device=%s\"'" % SECOND_UUID, 'nvidia1 nvidiactl', 2),
    ("--gpus 1", 'nvidia0 nvidiactl', 2),
    # The image sets NVIDIA_VISIBLE_DEVICES=all: the nvidia runtime gives it every GPU unasked.
    ("--runtime nvidia", 'nvidia0 nvidia1 nvidiactl', 2),
    ("", '', 0),
])
def test_a_container_sees_the_gpus_it_was_given(gpu_host, options, nodes, smi) -> None:
    out = in_gpu_host(gpu_host, "docker run --rm %s --entrypoint /bin/sh ollama/ollama:0.33.0 -c \"%s\"" % (options, SHOW))
    listed, rest = out.split('\n', 1)
    assert listed.strip() == nodes, out
    if smi:
        assert rest.count('(UUID: GPU-') == smi, out
    else:
        assert rest.strip() == 'no-smi', out


def test_the_ollama_double_runs_on_the_gpu_it_was_given(gpu_host) -> None:
    """docker logs shows v0.33's inference compute line for the one GPU asked for; without a request, the CPU."""
    script = r'''
    docker rm -f gpu cpu >/dev/null 2>&1 || true
    docker run -d --name gpu --gpus '"device=1"' ollama/ollama:0.33.0 >/dev/null
    docker run -d --name cpu ollama/ollama:0.33.0 >/dev/null
    for c in gpu cpu; do
      for _ in $(seq 50); do docker exec $c ollama list >/dev/null 2>&1 && break; sleep 0.2; done
      docker exec $c ollama pull qwen2.5:0.5b >/dev/null
      docker exec $c python3 -c "import json, urllib.request as u; \
        u.urlopen(u.Request('http://127.0.0.1:11434/api/generate', data=json.dumps({'model': 'qwen2.5:0.5b'}).encode())).read(); \
        print('ps', json.dumps(json.load(u.urlopen('http://127.0.0.1:11434/api/ps'))['models'][0]))"
      docker logs $c 2>&1 | grep 'inference compute'
    done
    docker rm -f gpu cpu >/dev/null
    '''
    out = in_gpu_host(gpu_host, script, timeout=180)
    ps = [json.loads(line[3:]) for line in out.splitlines() if line.startswith('ps ')]
    compute = [line.split(' source=', 1)[1] for line in out.splitlines() if 'inference compute' in line]
    assert compute == [
        'types.go:60 msg="inference compute" id=0 filter_id=0 library=CUDA compute=8.9 name=CUDA0 '
        'description="NVIDIA GeForce RTX 4090" libdirs=ollama,cuda_v12 driver=12.4 pci_id=0000:02:00.0 type=discrete '
        'total="24.0 GiB" available="23.5 GiB"',
        'types.go:60 msg="inference compute" id=cpu library=cpu compute="" name=cpu description=cpu libdirs=ollama '
        'driver="" pci_id="" type="" total="15.6 GiB" available="14.9 GiB"',
    ], out
    assert ps[0]['size_vram'] == ps[0]['size'] > 0
    assert ps[1]['size_vram'] == 0
