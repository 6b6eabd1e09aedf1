# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ollama_container end to end against the recording fake client (no dockerd)."""

from __future__ import annotations

import socket
from unittest import mock

import pytest

from ansible_collections.ragops.gpu_stack.plugins.modules import ollama_container
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, run_module
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_container import (
    AMD_FACTS,
    NVIDIA_FACTS,
    FakeClient,
)

CPU_FACTS = {'gpu_vendor': 'none', 'gpu_usable': False}


@pytest.fixture
def client():
    fake = FakeClient()
    with mock.patch.object(ollama_container, 'connect', lambda module: fake):
        yield fake


def run(args, **kwargs):
    return run_module(ollama_container, args, **kwargs)


def test_create_idempotent_and_cpu_fallback_is_said(client):
    args = dict(gpu_facts=CPU_FACTS, port=free_port(), num_parallel=2)
    result, warnings = run(args)
    assert result['changed'] and result['actions'] == ['create and start']
    assert result['gpu']['vendor'] == 'none' and 'CPU' in result['gpu']['cpu_fallback_reason']
    assert any('CPU' in w for w in warnings)
    assert result['container']['health'] == 'healthy' and 'diff' not in result
    again, warnings = run(args)
    assert not again['changed'] and again['actions'] == []


def test_check_and_diff_on_env_removal(client):
    port = free_port()
    run(dict(gpu_facts=CPU_FACTS, port=port, num_parallel=2))
    client.calls = []
    result, warnings = run(dict(gpu_facts=CPU_FACTS, port=port), check_mode=True, diff=True)
    assert result['changed'] and result['actions'] == ['recreate: env OLLAMA_NUM_PARALLEL removed']
    assert client.mutating_calls() == []
    assert result['diff']['before']['env'] == {'OLLAMA_NUM_PARALLEL': '2'} and result['diff']['after']['env'] == {}


def test_nvidia_facts_given_as_option(client):
    result, warnings = run(dict(gpu_facts=NVIDIA_FACTS, port=free_port(), gpus=['GPU-bbbb']))
    assert result['gpu'] == dict(requested='auto', vendor='nvidia', mode='runtime', devices=['GPU-bbbb'],
                                 inference='gpu', cpu_fallback_reason=None)
    assert warnings == []
    request = client.containers['ollama']['HostConfig']['DeviceRequests']
    assert request == [{'Driver': 'nvidia', 'Count': 0, 'DeviceIDs': ['GPU-bbbb'], 'Capabilities': [['gpu']], 'Options': {}}]


def test_predicted_cpu_fallback_passes_the_gpu_and_warns(client):
    from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_gpu import collect
    facts, dummy = collect('nvidia_pascal_535_toolkit', 'nvidia_pascal_535_toolkit')
    result, warnings = run(dict(gpu_facts=facts, gpu='nvidia', port=free_port()))
    gpu = result['gpu']
    assert (gpu['vendor'], gpu['devices'], gpu['inference']) == ('nvidia', ['all'], 'cpu')
    assert 'NVIDIA driver 570 or newer' in gpu['cpu_fallback_reason']
    assert warnings == ['gpu: nvidia: %s' % gpu['cpu_fallback_reason']]
    request = client.containers['ollama']['HostConfig']['DeviceRequests']
    assert request == [{'Driver': 'nvidia', 'Count': -1, 'DeviceIDs': None, 'Capabilities': [['gpu']], 'Options': {}}]


def test_amd(client):
    client.images['ollama/ollama:0.33.0-rocm'] = dict(client.images['ollama/ollama:0.33.0'], Id='sha256:rocm')
    result, warnings = run(dict(gpu_facts=AMD_FACTS, port=free_port()))
    info = client.containers['ollama']
    assert info['Config']['Image'] == 'ollama/ollama:0.33.0-rocm'
    assert info['HostConfig']['GroupAdd'] == ['44', '105']
    assert [d['PathOnHost'] for d in info['HostConfig']['Devices']] == ['/dev/kfd', '/dev/dri']


@pytest.mark.parametrize('args, words', [
    (dict(gpu='intel'), ['gpu', 'intel']),
    (dict(gpus=['0']), ['gpus', 'CPU']),
    (dict(kv_cache_type='q4_0'), ['kv_cache_type', 'llama.cpp refuses a quantized V cache without flash attention']),
    (dict(gpu_mode='cdi', gpu_facts=NVIDIA_FACTS), ['gpu_mode: cdi needs Docker 25']),
])
def test_bad_input_fails_before_any_change(client, args, words):
    args.setdefault('gpu_facts', CPU_FACTS)
    result, warnings = run(args)
    assert result['failed']
    for word in words:
        assert word in result['msg']
    assert client.mutating_calls() == []


def test_port_in_use_fails_naming_port(client):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)
    try:
        result, warnings = run(dict(gpu_facts=CPU_FACTS, port=sock.getsockname()[1]))
    finally:
        sock.close()
    assert result['failed'] and result['msg'].startswith('port: 127.0.0.1:')
    assert client.mutating_calls() == []


def test_unpullable_image_carries_registry_error(client):
    result, warnings = run(dict(gpu_facts=CPU_FACTS, port=free_port(), image='ollama/ollama:9.9.9'))
    assert result['failed'] and 'manifest unknown' in result['msg'] and result['msg'].startswith('image: ')


def test_absent_keeps_volume_unless_purge(client):
    port = free_port()
    run(dict(gpu_facts=CPU_FACTS, port=port))
    result, warnings = run(dict(state='absent', gpus=['GPU-x']))
    assert result['actions'] == ['remove'] and 'ollama' in client.volumes
    result, warnings = run(dict(state='absent', purge=True))
    assert result['actions'] == ['remove volume ollama']


def test_missing_docker_sdk():
    with mock.patch.object(ollama_container, 'require_docker',
                           lambda module: module.fail_json(msg='Failed to import the required Python library (docker)')):
        result, warnings = run(dict(gpu_facts=CPU_FACTS))
    assert result['failed'] and 'docker' in result['msg']
