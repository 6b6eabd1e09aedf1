"""The nvidia_container_toolkit role on a Debian 12 host without a GPU, faked as two RTX 4090s on
driver 550 for gpu_facts: the toolkit from the test world's signed stand-in repository at
1.17.8-1, the nvidia runtime merged into daemon.json (others' keys kept), dockerd offering
--gpus, containers started with a GPU request reaching the (stand-in) prestart hook with the
devices they asked for, the daemon-reload udev rule, refusals before any change, and no dockerd
restart when the role runs again."""
from __future__ import annotations

import json

import pytest

IMAGE = 'ollama/ollama:0.33.0'
REPO = 'http://registry.local:5080/libnvidia-container'
VERSION = '1.17.8-1'
PACKAGES = ['nvidia-container-toolkit', 'nvidia-container-toolkit-base', 'libnvidia-container-tools',
            'libnvidia-container1']
KEYRING = '/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg'
SOURCES = '/etc/apt/sources.list.d/nvidia-container-toolkit.sources'
RULE = '/lib/udev/rules.d/71-nvidia-dev-char.rules'
RUNS = '/var/tmp/ragops-nvidia-runs'
HOOK_LOG = '/var/log/nvidia-stand-in'


@pytest.fixture(scope='module')
def daemon_json(host):
    return json.loads(host.file('/etc/docker/daemon.json').content_string)


@pytest.fixture(scope='module')
def docker_info(host):
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


def run_with_gpus(host, name, gpus):
    """Run the image with a GPU request; return the stand-in hook's record of that container."""
    host.run(f'docker rm -f {name}')
    try:
        option = f"--gpus '{gpus}'" if gpus else ''
        out = host.check_output(f"docker run --name {name} {option} {IMAGE} --version")
        assert 'client version is 0.33.0' in out
        cid = host.check_output(f"docker inspect --format '{{{{.Id}}}}' {name}")
    finally:
        host.run(f'docker rm -f {name}')
    record = host.file(f'{HOOK_LOG}/{cid}.json')
    if not gpus:
        return None if not record.exists else json.loads(record.content_string)
    assert record.exists, f'the prestart hook recorded nothing for {cid}'
    return json.loads(record.content_string)


def test_keyring_and_source_file_exist(host):
    assert host.file(KEYRING).is_file
    sources = host.file(SOURCES)
    assert sources.is_file
    content = sources.content_string
    assert REPO in content
    assert f'Signed-By: {KEYRING}' in content


def test_keyring_holds_the_test_worlds_key(host):
    out = host.run(f'gpg --show-keys --with-colons {KEYRING}')
    if out.rc != 0:
        pytest.skip('no gpg on the instance to read the keyring with')
    assert 'fpr' in out.stdout


@pytest.mark.parametrize('package', PACKAGES)
def test_package_installed_at_the_pinned_version_from_the_repository(host, package):
    policy = host.check_output(f'apt-cache policy {package}')
    assert f'Installed: {VERSION}' in policy, policy
    lines = policy.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f'*** {VERSION}'))
    origins = []
    for line in lines[start + 1:]:
        if not line.startswith('        '):
            break
        origins.append(line.strip())
    assert any(REPO in origin for origin in origins), policy


def test_daemon_json_has_the_runtime_and_keeps_other_keys(daemon_json):
    assert daemon_json['runtimes']['nvidia'] == {'path': 'nvidia-container-runtime', 'args': []}
    assert 'default-runtime' not in daemon_json
    # Someone else's key, and docker_engine's registry wiring.
    assert daemon_json['log-level'] == 'warn'
    assert daemon_json['registry-mirrors'] == ['http://registry.local:5000']
    assert daemon_json['insecure-registries'] == ['registry.local:5000']
    assert daemon_json['live-restore'] is True


def test_docker_info_lists_the_nvidia_runtime(docker_info):
    assert 'nvidia' in docker_info['Runtimes']
    assert docker_info['DefaultRuntime'] == 'runc'


def test_gpus_all_reaches_the_hook(host):
    record = run_with_gpus(host, 'nvidia-gpus-all', 'all')
    assert record['hook'] == 'prestart'
    assert record['NVIDIA_VISIBLE_DEVICES'] == 'all'


def test_gpus_device_0_reaches_the_hook(host):
    record = run_with_gpus(host, 'nvidia-gpus-device0', 'device=0')
    assert record['hook'] == 'prestart'
    # dockerd appended the request after the image's NVIDIA_VISIBLE_DEVICES=all; the hook,
    # like the real one, takes the last value.
    assert record['NVIDIA_VISIBLE_DEVICES'] == '0', record['config']['process']['env']


def test_container_without_gpus_does_not_reach_the_hook(host):
    assert run_with_gpus(host, 'nvidia-no-gpus', None) is None


def test_nvidia_runtime_runs_a_container(host):
    out = host.check_output(f'docker run --rm --runtime nvidia {IMAGE} --version')
    assert 'client version is 0.33.0' in out


def test_daemon_reload_udev_rule(host):
    rule = host.file(RULE)
    assert rule.is_file
    assert rule.mode == 0o644
    assert ('ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", '
            'RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"') in rule.content_string


def test_runtime_configure_was_never_run(host):
    # The stand-in refuses `nvidia-ctk runtime configure`; daemon.json has no trace of its backup either.
    assert not host.file('/etc/docker/daemon.json.bak').exists


@pytest.mark.parametrize(('case', 'words'), [
    ('no_gpu', ['No NVIDIA driver and GPU', 'nvidia_container_toolkit_require_gpu']),
    ('old_driver', ['410.48', '418.81.07', 'nvidia_container_toolkit_min_driver_version']),
    ('no_docker', ['No Docker engine', 'ragops.gpu_stack.docker_engine']),
])
def test_refused_hosts_get_a_clear_message(host, case, words):
    message = host.file(f'/var/tmp/nvidia-refused-{case}.txt').content_string
    for word in words:
        assert word in message, message


def test_second_converge_did_not_restart_dockerd(dockerd_not_restarted):
    dockerd_not_restarted(RUNS)
