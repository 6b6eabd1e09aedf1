"""The ollama role on the faked two-GPU NVIDIA host: three Ollama instances side by side, each
with its own GPU request (all; a count of 1; the second GPU by UUID), its own port and model
volume. Each request must reach the (stand-in) prestart hook as exactly the GPUs asked for, and
each instance must run and answer."""
from __future__ import annotations

import json

import pytest

HOOK_LOG = '/var/log/nvidia-stand-in'
SECOND_UUID = 'GPU-1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9'

# name, port, the device request dockerd stores (Count, DeviceIDs), what the hook must see.
INSTANCES = [
    ('ollama-all', 11434, -1, None, 'all'),
    ('ollama-gpu1', 11435, 1, None, '0'),
    ('ollama-pinned', 11436, 0, [SECOND_UUID], SECOND_UUID),
]


def inspect(host, name):
    return json.loads(host.check_output(f'docker inspect {name}'))[0]


def hook_record(host, container_id):
    record = host.file(f'{HOOK_LOG}/{container_id}.json')
    assert record.exists, f'the prestart hook recorded nothing for {container_id}'
    return json.loads(record.content_string)


def test_the_fake_host_has_two_gpus(host):
    # Else a count of 1 or one UUID would mean the same as all, and prove nothing.
    assert host.check_output('nvidia-smi -L').count('(UUID: GPU-') == 2


@pytest.mark.parametrize(('name', 'port', 'count', 'ids', 'visible'), INSTANCES)
def test_device_request_is_the_one_asked_for(host, name, port, count, ids, visible):
    (request,) = inspect(host, name)['HostConfig']['DeviceRequests']
    assert request['Driver'] == 'nvidia'
    assert request['Count'] == count
    assert request['DeviceIDs'] == ids
    assert request['Capabilities'] == [['gpu']]


@pytest.mark.parametrize(('name', 'port', 'count', 'ids', 'visible'), INSTANCES)
def test_hook_got_exactly_the_gpus_asked_for(host, name, port, count, ids, visible):
    info = inspect(host, name)
    record = hook_record(host, info['Id'])
    assert record['hook'] == 'prestart'
    assert record['id'] == info['Id']
    # The last NVIDIA_VISIBLE_DEVICES in the OCI spec wins (the image sets =all before it).
    assert record['NVIDIA_VISIBLE_DEVICES'] == visible, record['config']['process']['env']
    hooks = [h['path'] for h in record['config']['hooks']['prestart']]
    assert any(p.endswith('nvidia-container-runtime-hook') for p in hooks), hooks


@pytest.mark.parametrize(('name', 'port', 'count', 'ids', 'visible'), INSTANCES)
def test_instance_runs_healthy_with_its_own_port_and_volume(host, name, port, count, ids, visible):
    info = inspect(host, name)
    assert info['Config']['Image'] == 'ollama/ollama:0.33.0'
    assert info['State']['Status'] == 'running'
    assert info['State']['Health']['Status'] == 'healthy'
    assert info['HostConfig']['PortBindings'] == {'11434/tcp': [{'HostIp': '127.0.0.1', 'HostPort': str(port)}]}
    assert [(m['Type'], m['Name'], m['Destination']) for m in info['Mounts']] == [('volume', name, '/root/.ollama')]


@pytest.mark.parametrize('port', [i[1] for i in INSTANCES])
def test_instance_answers_on_its_port(host, port):
    out = host.check_output(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen("
        f"'http://127.0.0.1:{port}/api/version', timeout=5).read().decode())\"")
    assert json.loads(out) == {'version': '0.33.0'}
