"""The ollama role on the faked two-GPU AMD host, after the rocm role: the -rocm image, /dev/kfd and
the render nodes passed as devices (both GPUs, or the second alone), the nodes' host gids as the
Ollama process's extra groups, HSA_OVERRIDE_GFX_VERSION from the facts, and a running server."""
from __future__ import annotations

import json

import pytest

KFD, RENDER0, RENDER1 = '/dev/kfd', '/dev/dri/renderD128', '/dev/dri/renderD129'
# name, port, the device nodes it must get, the GPU selection env it must get.
INSTANCES = [
    ('ollama-amd', 11434, [KFD, RENDER0, RENDER1], {}),
    ('ollama-amd-gpu1', 11435, [KFD, RENDER1], {'ROCR_VISIBLE_DEVICES': '0', 'HIP_VISIBLE_DEVICES': '0'}),
]
NAMES = [i[0] for i in INSTANCES]
# prepare.yml's nodes: major:minor as stat's %t:%T (hex) prints them.
NUMBERS = {KFD: 'ee:0', RENDER0: 'e2:80', RENDER1: 'e2:81'}


def inspect(host, name):
    return json.loads(host.check_output(f'docker inspect {name}'))[0]


def in_container(host, name, command):
    return host.check_output(f'docker exec {name} {command}')


def pid1_env(host, name):
    # The server's own environment (PID 1 of the container), one variable a line.
    raw = in_container(host, name, "sh -c 'tr \\\\0 \\\\n </proc/1/environ'")
    return dict(line.split('=', 1) for line in raw.splitlines() if '=' in line)


@pytest.mark.parametrize('name', NAMES)
def test_runs_the_rocm_image_and_is_healthy(host, name):
    info = inspect(host, name)
    assert info['Config']['Image'] == 'ollama/ollama:0.33.0-rocm'
    assert info['State']['Status'] == 'running'
    assert info['State']['Health']['Status'] == 'healthy'
    assert info['HostConfig']['DeviceRequests'] in (None, [])


@pytest.mark.parametrize(('name', 'port', 'nodes', 'selection'), INSTANCES)
def test_inspect_shows_kfd_and_the_render_nodes(host, name, port, nodes, selection):
    devices = inspect(host, name)['HostConfig']['Devices']
    assert [(d['PathOnHost'], d['PathInContainer'], d['CgroupPermissions']) for d in devices] == [
        (node, node, 'rwm') for node in nodes]


@pytest.mark.parametrize(('name', 'port', 'nodes', 'selection'), INSTANCES)
def test_container_has_those_nodes_and_no_others(host, name, port, nodes, selection):
    for node in nodes:
        assert in_container(host, name, f"stat -c '%F %t:%T' {node}") == f'character special file {NUMBERS[node]}'
    listed = in_container(host, name, 'ls /dev/dri').split()
    assert sorted('/dev/dri/' + n for n in listed) == [n for n in nodes if n != KFD]


@pytest.mark.parametrize('name', NAMES)
def test_extra_groups_are_the_hosts_device_gids(host, name):
    expected = sorted({host.file(p).gid for p in (KFD, RENDER0, RENDER1)})
    assert expected == [44, 993]
    assert sorted(int(g) for g in inspect(host, name)['HostConfig']['GroupAdd']) == expected
    # The Ollama server itself (PID 1) holds them.
    status = in_container(host, name, 'cat /proc/1/status')
    groups = next(line for line in status.splitlines() if line.startswith('Groups:')).split()[1:]
    assert set(expected) <= {int(g) for g in groups}, status


@pytest.mark.parametrize(('name', 'port', 'nodes', 'selection'), INSTANCES)
def test_server_gets_the_override_the_facts_suggest_and_the_selection(host, name, port, nodes, selection):
    facts = json.loads(host.file('/var/tmp/rocm-facts.json').content_string)
    # gfx1030 and gfx1034 both run as 10.3.0: gpu_facts and the rocm role agree on one override.
    assert facts['gpu_facts_hsa_override_env'] == {'HSA_OVERRIDE_GFX_VERSION': '10.3.0'}
    env = pid1_env(host, name)
    assert env['HSA_OVERRIDE_GFX_VERSION'] == '10.3.0'
    for key in ('ROCR_VISIBLE_DEVICES', 'HIP_VISIBLE_DEVICES'):
        assert env.get(key) == selection.get(key)


@pytest.mark.parametrize(('name', 'port', 'nodes', 'selection'), INSTANCES)
def test_server_answers_on_its_port(host, name, port, nodes, selection):
    out = host.check_output(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen("
        f"'http://127.0.0.1:{port}/api/version', timeout=5).read().decode())\"")
    assert json.loads(out) == {'version': '0.33.0'}
