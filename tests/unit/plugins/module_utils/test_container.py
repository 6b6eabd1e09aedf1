# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reconciler against a recording fake of docker's low-level API client (no dockerd needed)."""

from __future__ import annotations

import copy
import json
import os
import shutil

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import container as c
from ansible_collections.ragops.gpu_stack.plugins.module_utils import gpu
from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_client import APIError, NotFound

OLLAMA_IMAGE_CONFIG = {
    'Env': ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'OLLAMA_HOST=0.0.0.0:11434',
            'NVIDIA_VISIBLE_DEVICES=all', 'NVIDIA_DRIVER_CAPABILITIES=compute,utility'],
    'Cmd': ['serve'], 'Entrypoint': ['/bin/ollama'],
}
MUTATING = ('pull', 'create_container_from_config', 'start', 'stop', 'remove_container', 'remove_volume', 'create_network')


class FakeClient:
    """Just enough of docker.APIClient: images, containers, volumes and networks in dicts; every call recorded."""

    def __init__(self, images=None, registry=None, health='healthy', engine_version='20.10.24'):
        self.images = copy.deepcopy(images if images is not None else {
            'ollama/ollama:0.33.0': {'Id': 'sha256:aaa', 'Config': OLLAMA_IMAGE_CONFIG}})
        self.registry = registry or {}
        self.containers = {}
        self.volumes = set()
        self.networks_ = set()
        self.calls = []
        self.health = health
        self.health_log = [{'ExitCode': 1, 'Output': 'Error: could not connect to ollama app, is it running?'}]
        self.log_text = b'time=... level=INFO msg="starting"\nError: listen tcp: bind: address already in use\n'
        self.engine_version = engine_version

    def _call(self, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))

    def mutating_calls(self):
        return [call for call in self.calls if call[0] in MUTATING]

    def version(self):
        return {'Version': self.engine_version, 'ApiVersion': '1.41'}

    def inspect_image(self, ref):
        self._call('inspect_image', ref)
        for name, info in self.images.items():
            if ref in (name, info['Id']):
                return copy.deepcopy(info)
        raise NotFound('No such image: %s' % ref)

    def pull(self, repo, tag=None, stream=False, decode=False):
        self._call('pull', repo, tag=tag)
        ref = '%s:%s' % (repo, tag)
        if ref not in self.registry:
            raise APIError('404 Client Error', explanation='manifest for %s not found: manifest unknown: manifest unknown' % ref)
        self.images[ref] = copy.deepcopy(self.registry[ref])
        return iter([{'status': 'Pulling from %s' % repo}, {'status': 'Downloaded newer image for %s' % ref}])

    def inspect_container(self, name):
        self._call('inspect_container', name)
        if name not in self.containers:
            raise NotFound('No such container: %s' % name)
        return copy.deepcopy(self.containers[name])

    def create_container_from_config(self, config, name=None):
        self._call('create_container_from_config', config, name=name)
        image = self.inspect_image(config['Image'])
        env = c.env_dict(image['Config'].get('Env'))
        env.update(c.env_dict(config['Env']))
        host = copy.deepcopy(config['HostConfig'])
        host.setdefault('ShmSize', 67108864)
        for mount in host.get('Mounts') or []:
            if mount['Type'] == 'volume':
                self.volumes.add(mount['Source'])
        self.containers[name] = {
            'Id': 'id-%s-%d' % (name, len(self.calls)), 'Name': '/' + name, 'Image': image['Id'],
            'Config': {'Image': config['Image'], 'Env': ['%s=%s' % kv for kv in env.items()],
                       'Cmd': config['Cmd'] or image['Config'].get('Cmd'), 'Labels': dict(config['Labels']),
                       'Healthcheck': config['Healthcheck']},
            'HostConfig': host,
            'State': {'Status': 'created', 'Running': False},
        }
        return {'Id': self.containers[name]['Id']}

    def _find(self, ref):
        for name, info in self.containers.items():
            if ref in (name, info['Id']):
                return info
        raise NotFound('No such container: %s' % ref)

    def start(self, ref):
        self._call('start', ref)
        self._find(ref)['State'] = {'Status': 'running', 'Running': True,
                                    'Health': {'Status': self.health, 'Log': self.health_log}}

    def stop(self, ref, timeout=None):
        self._call('stop', ref, timeout=timeout)
        self._find(ref)['State'] = {'Status': 'exited', 'Running': False, 'ExitCode': 0}

    def remove_container(self, ref, v=False, force=False):
        self._call('remove_container', ref, v=v, force=force)
        del self.containers[self._find(ref)['Name'].lstrip('/')]

    def logs(self, ref, stdout=True, stderr=True, tail='all'):
        self._call('logs', ref, tail=tail)
        return self.log_text

    def inspect_volume(self, name):
        self._call('inspect_volume', name)
        if name not in self.volumes:
            raise NotFound('No such volume: %s' % name)
        return {'Name': name}

    def remove_volume(self, name):
        self._call('remove_volume', name)
        self.volumes.discard(name)

    def networks(self, names=None):
        self._call('networks', names=names)
        return [{'Name': n} for n in self.networks_ if not names or n in names]

    def create_network(self, name, driver=None, labels=None):
        self._call('create_network', name, driver=driver)
        self.networks_.add(name)


def free(host, port, proto):
    return None


def reconcile(client, spec, **kwargs):
    kwargs.setdefault('bind_test', free)
    kwargs.setdefault('wait_healthy_timeout', 5)
    kwargs.setdefault('sleep', lambda s: None)
    return c.reconcile(client, spec, **kwargs)


def spec_of(**params):
    spec, gpu = c.ollama_spec(params, {'gpu_vendor': 'none'})
    return spec


NVIDIA_FACTS = {
    'gpu_vendor': 'nvidia', 'gpu_usable': True,
    'nvidia': {'gpus': [{'index': 0, 'uuid': 'GPU-aaaa', 'mig_devices': []}, {'index': 1, 'uuid': 'GPU-bbbb'}],
               'pci_devices': [{}]},
    'amd': {'kfd': {'exists': False}, 'render_nodes': [], 'gpus': [], 'group_ids': []},
    'container': {'daemon_json': {'runtimes': {'nvidia': 'nvidia-container-runtime'}}, 'nvidia_ctk': {'path': None},
                  'cdi': {'devices': []}},
}
AMD_FACTS = {
    'gpu_vendor': 'amd', 'gpu_usable': True,
    'nvidia': {'gpus': [], 'pci_devices': []},
    'amd': {'kfd': {'path': '/dev/kfd', 'exists': True, 'gid': 105},
            'render_nodes': [{'path': '/dev/dri/renderD128', 'exists': True, 'gid': 44},
                             {'path': '/dev/dri/renderD129', 'exists': True, 'gid': 44}],
            'group_ids': [44, 105],
            'gpus': [{'index': 0, 'render_node': '/dev/dri/renderD128'}, {'index': 1, 'render_node': '/dev/dri/renderD129'}],
            'hsa_override_env': {'HSA_OVERRIDE_GFX_VERSION': '10.3.0'}},
    'container': {'daemon_json': {'runtimes': {}}, 'nvidia_ctk': {'path': None}, 'cdi': {'devices': []}},
}


# --------------------------------------------------------------------------- spec building

def test_ollama_defaults_pinned_localhost_volume_healthcheck():
    spec = spec_of()
    assert spec['image'] == 'ollama/ollama:0.33.0'
    assert spec['ports'] == [dict(host_ip='127.0.0.1', host_port=11434, container_port=11434, protocol='tcp')]
    assert spec['mounts'] == [dict(type='volume', source='ollama', target='/root/.ollama', read_only=False)]
    assert spec['healthcheck']['test'] == ['CMD', 'ollama', 'list']
    assert spec['restart_policy']['name'] == 'unless-stopped'
    assert spec['log_config'] == dict(type='json-file', config={})
    assert spec['env'] == {}


def test_typed_options_become_env():
    spec = spec_of(num_parallel=4, max_loaded_models=2, max_queue=100, keep_alive='-1', flash_attention=True,
                   kv_cache_type='q8_0', context_length=8192, gpu_overhead='512m', sched_spread=True,
                   origins=['http://a', 'app://*'], debug=1, noprune=True, env={'HTTPS_PROXY': 'http://proxy:3128'})
    assert spec['env'] == {
        'OLLAMA_NUM_PARALLEL': '4', 'OLLAMA_MAX_LOADED_MODELS': '2', 'OLLAMA_MAX_QUEUE': '100',
        'OLLAMA_KEEP_ALIVE': '-1', 'OLLAMA_FLASH_ATTENTION': '1', 'OLLAMA_KV_CACHE_TYPE': 'q8_0',
        'OLLAMA_CONTEXT_LENGTH': '8192', 'OLLAMA_GPU_OVERHEAD': str(512 * 1024 * 1024), 'OLLAMA_SCHED_SPREAD': '1',
        'OLLAMA_ORIGINS': 'http://a,app://*', 'OLLAMA_DEBUG': '1', 'OLLAMA_NOPRUNE': '1',
        'HTTPS_PROXY': 'http://proxy:3128'}


@pytest.mark.parametrize('params, words', [
    (dict(kv_cache_type='q8_0'), ['kv_cache_type', 'llama.cpp refuses a quantized V cache without flash attention']),
    (dict(kv_cache_type='q4_0', flash_attention=False), ['kv_cache_type', 'flash_attention: true']),
    (dict(keep_alive='forever'), ['keep_alive']),
    (dict(num_parallel=0), ['num_parallel']),
    (dict(gpus=['0']), ['gpus', 'CPU', 'leave gpus at all']),
    (dict(gpus=2), ['gpus', 'CPU', 'leave gpus at all']),
    (dict(gpu='intel'), ['gpu', 'intel']),
    (dict(image='ollama/ollama'), ['image', 'no tag']),
    (dict(env={'OLLAMA_NUM_PARALLEL': '3'}, num_parallel=2), ['env.OLLAMA_NUM_PARALLEL', 'one place']),
    (dict(memory='lots'), ['memory']),
    (dict(port=70000), ['port']),
    (dict(bind_address='localhost:1'), ['bind_address']),
    (dict(healthcheck={'interval': 'soon'}), ['healthcheck.interval']),
    (dict(hsa_override_gfx_version='10.3.0'), ['hsa_override_gfx_version']),
    (dict(name='bad name'), ['name']),
])
def test_bad_ollama_input_names_the_option(params, words):
    with pytest.raises(c.InputError) as err:
        spec_of(**params)
    for word in words:
        assert word in str(err.value)


def test_auto_without_gpu_falls_back_and_says_so():
    spec, gpu = c.ollama_spec({}, {'gpu_vendor': 'none', 'gpu_usable': False})
    assert gpu['vendor'] == 'none' and 'CPU' in gpu['cpu_fallback_reason']
    assert spec['device_requests'] == [] and spec['devices'] == []


def test_auto_nvidia_without_runtime_falls_back():
    facts = copy.deepcopy(NVIDIA_FACTS)
    facts['container']['daemon_json']['runtimes'] = {}
    spec, gpu = c.ollama_spec({}, facts)
    assert gpu['vendor'] == 'none' and 'NVIDIA Container Toolkit' in gpu['cpu_fallback_reason']


@pytest.mark.parametrize('gpus, request_', [
    ('all', dict(driver='nvidia', count=-1, device_ids=[], capabilities=[['gpu']], options={})),
    (2, dict(driver='nvidia', count=2, device_ids=[], capabilities=[['gpu']], options={})),
    (['GPU-bbbb', 0], dict(driver='nvidia', count=0, device_ids=['GPU-bbbb', '0'], capabilities=[['gpu']], options={})),
])
def test_nvidia_device_requests(gpus, request_):
    spec, gpu = c.ollama_spec({'gpus': gpus}, NVIDIA_FACTS)
    assert gpu['vendor'] == 'nvidia' and gpu['cpu_fallback_reason'] is None
    assert spec['device_requests'] == [request_]
    body = c.create_config(spec)['HostConfig']['DeviceRequests'][0]
    assert body['Driver'] == 'nvidia' and body['Capabilities'] == [['gpu']]


def test_nvidia_unknown_id_and_too_many_fail():
    with pytest.raises(c.InputError, match='gpus: GPU-zzzz not among'):
        c.ollama_spec({'gpus': ['GPU-zzzz']}, NVIDIA_FACTS)
    with pytest.raises(c.InputError, match='3 GPUs asked for but this host has 2'):
        c.ollama_spec({'gpus': 3}, NVIDIA_FACTS)


def test_cdi_rejected_on_old_engine_and_named_on_new():
    with pytest.raises(c.InputError, match='gpu_mode: cdi needs Docker 25 or later; this engine is 20.10.24'):
        c.ollama_spec({'gpu_mode': 'cdi'}, NVIDIA_FACTS, '20.10.24+dfsg1')
    spec, gpu = c.ollama_spec({'gpu_mode': 'cdi', 'gpus': ['GPU-aaaa']}, NVIDIA_FACTS, '27.3.1')
    assert spec['device_requests'][0]['driver'] == 'cdi'
    assert spec['device_requests'][0]['device_ids'] == ['nvidia.com/gpu=GPU-aaaa']


def test_amd_devices_groups_rocm_image_and_hsa():
    spec, gpu = c.ollama_spec({'gpu': 'amd'}, AMD_FACTS)
    assert spec['image'] == 'ollama/ollama:0.33.0-rocm'
    assert [d['path_on_host'] for d in spec['devices']] == ['/dev/kfd', '/dev/dri']
    assert spec['group_add'] == ['44', '105']
    assert spec['env']['HSA_OVERRIDE_GFX_VERSION'] == '10.3.0'
    spec, gpu = c.ollama_spec({'gpu': 'auto', 'gpus': ['1'], 'hsa_override_gfx_version': 'none'}, AMD_FACTS)
    assert [d['path_on_host'] for d in spec['devices']] == ['/dev/kfd', '/dev/dri/renderD129']
    assert 'HSA_OVERRIDE_GFX_VERSION' not in spec['env']
    assert gpu['devices'] == ['/dev/kfd', '/dev/dri/renderD129']


def test_forced_vendor_without_such_gpu_fails():
    with pytest.raises(c.InputError, match='gpu: nvidia'):
        c.ollama_spec({'gpu': 'nvidia'}, AMD_FACTS)
    with pytest.raises(c.InputError, match='gpu: amd'):
        c.ollama_spec({'gpu': 'amd'}, NVIDIA_FACTS)


def test_rocm_image_variants():
    assert c.rocm_image('ollama/ollama:0.33.0') == 'ollama/ollama:0.33.0-rocm'
    assert c.rocm_image('ollama/ollama:latest') == 'ollama/ollama:rocm'
    assert c.rocm_image('ollama/ollama:rocm') == 'ollama/ollama:rocm'
    assert c.rocm_image('reg:5000/ollama/ollama:0.33.0') == 'reg:5000/ollama/ollama:0.33.0-rocm'


def test_pgvector_spec_password_by_file_settings_as_args():
    spec = c.pgvector_spec(dict(user='rag', database='ragdb', password_file='/etc/ragops/pw', shared_buffers='1GB',
                                max_connections=200, settings={'jit': False, 'work_mem': '64MB'}))
    assert spec['image'] == 'pgvector/pgvector:pg17'
    assert spec['command'] == ['postgres', '-c', 'jit=off', '-c', 'max_connections=200', '-c', 'shared_buffers=1GB',
                               '-c', 'work_mem=64MB']
    assert spec['env'] == {'POSTGRES_USER': 'rag', 'POSTGRES_DB': 'ragdb',
                           'POSTGRES_PASSWORD_FILE': '/run/secrets/postgres_password'}
    assert dict(type='bind', source='/etc/ragops/pw', target='/run/secrets/postgres_password', read_only=True) in spec['mounts']
    assert spec['ports'][0]['host_port'] == 5432 and spec['ports'][0]['host_ip'] == '127.0.0.1'
    assert spec['healthcheck']['test'] == ['CMD', 'pg_isready', '-h', '127.0.0.1', '-U', 'rag', '-d', 'ragdb']
    assert spec['shm_size'] == 256 * 1024 * 1024


@pytest.mark.parametrize('params, word', [
    (dict(user='bad user'), 'user'),
    (dict(shared_buffers='lots'), 'shared_buffers'),
    (dict(settings={'Bad-Key': 1}), 'settings'),
    (dict(shared_buffers='1GB', settings={'shared_buffers': '2GB'}), 'settings.shared_buffers'),
    (dict(password_file='relative/pw'), 'password_file'),
    (dict(shm_size='huge'), 'shm_size'),
])
def test_bad_pgvector_input(params, word):
    params.setdefault('password_file', '/etc/pw')
    with pytest.raises(c.InputError) as err:
        c.pgvector_spec(params)
    assert str(err.value).startswith(word)


def test_durations_and_sizes():
    assert c.duration_ns('x', '1m30s') == 90 * c.NS
    assert c.duration_ns('x', '500ms') == c.NS // 2
    assert c.duration_ns('x', 7) == 7 * c.NS
    assert c.size_bytes('x', '16g') == 16 * 1024 ** 3
    assert c.split_image('reg:5000/a/b:1') == ('reg:5000/a/b', '1')
    assert c.split_image('reg:5000/a/b') == ('reg:5000/a/b', None)


# --------------------------------------------------------------------------- reconcile

def test_create_then_idempotent():
    client = FakeClient()
    spec = spec_of(num_parallel=2)
    result = reconcile(client, spec)
    assert result['changed'] and result['actions'] == ['create and start']
    assert result['container']['health'] == 'healthy'
    body = [call for call in client.calls if call[0] == 'create_container_from_config'][0][1][0]
    assert body['Env'] == ['OLLAMA_NUM_PARALLEL=2']
    assert body['HostConfig']['PortBindings'] == {'11434/tcp': [{'HostIp': '127.0.0.1', 'HostPort': '11434'}]}
    client.calls = []
    again = reconcile(client, spec)
    assert not again['changed'] and again['actions'] == [] and again['differences'] == []
    assert client.mutating_calls() == []


def test_removing_an_env_var_recreates_with_same_volume():
    client = FakeClient()
    reconcile(client, spec_of(num_parallel=2))
    client.calls = []
    result = reconcile(client, spec_of())
    assert result['actions'] == ['recreate: env OLLAMA_NUM_PARALLEL removed']
    assert [call[0] for call in client.mutating_calls()] == ['stop', 'remove_container', 'create_container_from_config', 'start']
    assert client.containers['ollama']['HostConfig']['Mounts'][0]['Source'] == 'ollama'
    assert not any(call[0] == 'remove_container' and call[2].get('v') for call in client.calls)


def test_changed_env_value_reports_the_variable():
    client = FakeClient()
    reconcile(client, spec_of(num_parallel=2))
    result = reconcile(client, spec_of(num_parallel=3))
    assert result['actions'] == ['recreate: env OLLAMA_NUM_PARALLEL changed']


def test_image_env_is_ignored_unless_we_set_it():
    client = FakeClient()
    reconcile(client, spec_of())
    # the image's OLLAMA_HOST / PATH / NVIDIA_* are in the container's env, yet nothing differs
    assert 'OLLAMA_HOST=0.0.0.0:11434' in client.containers['ollama']['Config']['Env']
    assert not reconcile(client, spec_of())['changed']
    # setting one of them to another value is ours to manage
    result = reconcile(client, spec_of(env={'OLLAMA_HOST': '0.0.0.0:11500'}))
    assert result['differences'] == ['env OLLAMA_HOST changed']


def test_foreign_env_var_added_by_someone_else_recreates():
    client = FakeClient()
    reconcile(client, spec_of())
    client.containers['ollama']['Config']['Env'].append('OLLAMA_DEBUG=1')
    assert reconcile(client, spec_of())['differences'] == ['env OLLAMA_DEBUG removed']


def test_unmanaged_fields_are_ignored():
    client = FakeClient()
    reconcile(client, spec_of())
    info = client.containers['ollama']
    info['Config']['Hostname'] = 'whatever'
    info['Config']['Labels']['com.example.other'] = 'x'
    info['HostConfig']['Privileged'] = True
    info['HostConfig']['ShmSize'] = 1
    assert not reconcile(client, spec_of())['changed']


@pytest.mark.parametrize('change, reason', [
    (dict(port=11500), 'ports changed'),
    (dict(memory='8g'), 'memory changed'),
    (dict(cpus=2), 'nano_cpus changed'),
    (dict(restart_policy='always'), 'restart_policy changed'),
    (dict(log_max_size='50m'), 'log_config changed'),
    (dict(volume='models'), 'mounts changed'),
    (dict(healthcheck={'interval': '30s'}), 'healthcheck changed'),
    (dict(network='ragops'), 'network changed'),
    (dict(image='ollama/ollama:0.34.0'), 'image ollama/ollama:0.33.0 -> ollama/ollama:0.34.0'),
])
def test_each_managed_field_recreates(change, reason):
    client = FakeClient()
    client.images['ollama/ollama:0.34.0'] = {'Id': 'sha256:bbb', 'Config': OLLAMA_IMAGE_CONFIG}
    reconcile(client, spec_of())
    result = reconcile(client, spec_of(**change))
    assert reason in result['differences']
    assert result['actions'][-1].startswith('recreate: ')


def test_gpu_request_change_recreates():
    client = FakeClient()
    spec, gpu = c.ollama_spec({'gpus': 'all'}, NVIDIA_FACTS)
    reconcile(client, spec)
    spec2, gpu = c.ollama_spec({'gpus': ['GPU-aaaa']}, NVIDIA_FACTS)
    assert reconcile(client, spec2)['differences'] == ['device_requests changed']
    assert not reconcile(client, spec2)['changed']


def test_check_mode_touches_nothing_and_reports():
    client = FakeClient(images={}, registry={'ollama/ollama:0.33.0': {'Id': 'sha256:aaa', 'Config': OLLAMA_IMAGE_CONFIG}})
    result = reconcile(client, spec_of(), check_mode=True)
    assert result['changed'] and result['actions'] == ['pull', 'create and start']
    assert client.mutating_calls() == []
    assert result['diff']['before'] == {} and result['diff']['after']['image'] == 'ollama/ollama:0.33.0'


def test_check_mode_on_drift_and_diff_has_managed_fields_only():
    client = FakeClient()
    reconcile(client, spec_of(num_parallel=2))
    client.calls = []
    result = reconcile(client, spec_of(num_parallel=3), check_mode=True)
    assert result['actions'] == ['recreate: env OLLAMA_NUM_PARALLEL changed']
    assert client.mutating_calls() == []
    assert result['diff']['before']['env'] == {'OLLAMA_NUM_PARALLEL': '2'}
    assert result['diff']['after']['env'] == {'OLLAMA_NUM_PARALLEL': '3'}
    assert set(result['diff']['before']) == set(result['diff']['after'])
    assert 'Hostname' not in result['diff']['before'] and 'PATH' not in result['diff']['before']['env']


def test_pull_policies():
    registry = {'ollama/ollama:0.33.0': {'Id': 'sha256:new', 'Config': OLLAMA_IMAGE_CONFIG}}
    client = FakeClient(images={}, registry=registry)
    assert reconcile(client, spec_of())['actions'] == ['pull', 'create and start']
    # missing: present -> no pull
    client.calls = []
    reconcile(client, spec_of())
    assert not [call for call in client.calls if call[0] == 'pull']
    # always: same id -> pulled but not changed
    result = reconcile(client, spec_of(), pull_policy='always')
    assert not result['changed'] and [call for call in client.calls if call[0] == 'pull']
    # always: the tag now points elsewhere -> recreate
    client.registry['ollama/ollama:0.33.0'] = {'Id': 'sha256:newer', 'Config': OLLAMA_IMAGE_CONFIG}
    result = reconcile(client, spec_of(), pull_policy='always')
    assert result['actions'] == ['pull', 'recreate: image ollama/ollama:0.33.0 now points at sha256:newer']


def test_pull_never_and_registry_error():
    client = FakeClient(images={})
    with pytest.raises(c.ContainerError, match='image: ollama/ollama:0.33.0 is not on this host and pull is never'):
        reconcile(client, spec_of(), pull_policy='never')
    with pytest.raises(c.ContainerError) as err:
        reconcile(client, spec_of())
    assert 'image: cannot pull ollama/ollama:0.33.0: manifest for ollama/ollama:0.33.0 not found' in str(err.value)
    assert str(err.value).endswith('check the image name and tag, and that this host reaches the registry (docker login '
                                   'where it needs one); or load the image (docker load) and set pull: never')
    assert client.mutating_calls() == [call for call in client.calls if call[0] == 'pull']


def test_registry_error_in_the_pull_stream_is_quoted_with_the_fix():
    class StreamErrorClient(FakeClient):
        def pull(self, repo, tag=None, stream=False, decode=False):
            self._call('pull', repo, tag=tag)
            return iter([{'status': 'Pulling from %s' % repo},
                         {'error': 'unauthorized: authentication required'}])

    client = StreamErrorClient(images={})
    with pytest.raises(c.ContainerError) as err:
        reconcile(client, spec_of())
    assert str(err.value) == ('image: cannot pull ollama/ollama:0.33.0: unauthorized: authentication required; '
                              + c.PULL_FIX)
    assert client.mutating_calls() == [call for call in client.calls if call[0] == 'pull']


def test_port_in_use_fails_before_anything_is_touched():
    client = FakeClient()
    with pytest.raises(c.ContainerError, match=r'port: 127.0.0.1:11434 is not free .*Address already in use'):
        reconcile(client, spec_of(), bind_test=lambda h, p, proto: 'Address already in use')
    assert client.mutating_calls() == []


def test_port_held_by_our_running_container_is_fine():
    client = FakeClient()
    reconcile(client, spec_of())
    result = reconcile(client, spec_of(num_parallel=5), bind_test=lambda h, p, proto: 'Address already in use')
    assert result['actions'][0].startswith('recreate')


def test_real_bind_test_detects_a_listener():
    import socket
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)
    try:
        assert c.port_problem('127.0.0.1', sock.getsockname()[1])
    finally:
        sock.close()


def test_stopped_started_absent_and_purge():
    client = FakeClient()
    assert reconcile(client, spec_of(), state='stopped')['actions'] == ['create']
    assert client.containers['ollama']['State']['Running'] is False
    assert reconcile(client, spec_of())['actions'] == ['start']
    assert reconcile(client, spec_of(), state='stopped')['actions'] == ['stop']
    assert not reconcile(client, spec_of(), state='stopped')['changed']
    result = reconcile(client, spec_of(), state='absent')
    assert result['actions'] == ['remove'] and 'ollama' in client.volumes
    assert not reconcile(client, spec_of(), state='absent')['changed']
    result = reconcile(client, spec_of(), state='absent', purge=True)
    assert result['actions'] == ['remove volume ollama'] and 'ollama' not in client.volumes


def test_absent_check_mode():
    client = FakeClient()
    reconcile(client, spec_of())
    client.calls = []
    result = reconcile(client, spec_of(), state='absent', purge=True, check_mode=True)
    assert result['actions'] == ['remove', 'remove volume ollama'] and client.mutating_calls() == []


def test_network_created_when_missing():
    client = FakeClient()
    result = reconcile(client, spec_of(network='ragops', publish=False))
    assert result['actions'] == ['create network ragops', 'create and start']
    assert client.containers['ollama']['HostConfig']['PortBindings'] == {}
    assert not reconcile(client, spec_of(network='ragops', publish=False))['changed']


def test_health_timeout_carries_health_output_and_logs():
    client = FakeClient(health='starting')
    ticks = iter(range(0, 1000))
    with pytest.raises(c.ContainerError) as err:
        reconcile(client, spec_of(), wait_healthy_timeout=3, clock=lambda: next(ticks))
    msg = str(err.value)
    assert 'did not become healthy within 3s' in msg
    assert 'could not connect to ollama app' in msg
    assert 'address already in use' in msg
    assert err.value.details['health_output'].startswith('Error: could not connect')
    assert err.value.details['logs'][-1].startswith('Error: listen tcp')


def test_prepare_runs_after_checks_before_changes():
    client = FakeClient()
    seen = []

    def prepare():
        seen.append([call[0] for call in client.mutating_calls()])
        return ['write password file /x']
    result = reconcile(client, spec_of(), prepare=prepare)
    assert seen == [[]] and result['actions'] == ['write password file /x', 'create and start']
    with pytest.raises(c.ContainerError):
        reconcile(FakeClient(), spec_of(), prepare=prepare, bind_test=lambda h, p, proto: 'in use')
    assert len(seen) == 1


def test_engine_error_is_reported():
    client = FakeClient()

    def refuse(config, name=None):
        raise APIError('500', explanation='could not select device driver "nvidia" with capabilities: [[gpu]]')
    client.create_container_from_config = refuse
    with pytest.raises(c.ContainerError, match='create ollama: could not select device driver'):
        reconcile(client, spec_of())


# ----------------------------------------------------------------------------------------------
# The GPU choice on facts read from a real H100 host (tests/unit/fixtures/gpu/nvidia_h100_open_580,
# captured by tests/unit/fixtures/gpu/capture.sh on a lent machine without Docker).

def _h100_facts(tmp_path, daemon_json=None):
    fixtures = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'gpu')
    root = tmp_path / 'root'
    shutil.copytree(os.path.join(fixtures, 'nvidia_h100_open_580'), str(root))
    if daemon_json is not None:
        (root / 'etc' / 'docker').mkdir(parents=True)
        (root / 'etc' / 'docker' / 'daemon.json').write_text(json.dumps(daemon_json))
    tools = os.path.join(fixtures, 'tools', 'nvidia_h100_open_580')

    def run(argv):
        key = {'-L': 'list'}.get(argv[1], 'driver' if 'driver_version' in argv[1] else 'query')
        with open(os.path.join(tools, 'nvidia-smi.%s.stdout' % key), encoding='utf-8') as handle:
            return 0, handle.read(), ''
    return gpu.collect(str(root), run, lambda name: '/usr/local/nvidia/bin/nvidia-smi' if name == 'nvidia-smi' else None)


H100_UUID = 'GPU-3c15737e-0676-dd38-2b5d-7dc502112aab'


def test_h100_without_the_toolkit_falls_back_to_the_cpu_and_says_why(tmp_path):
    facts = _h100_facts(tmp_path)
    spec, report = c.ollama_spec({}, facts)
    assert report['vendor'] == 'none' and spec['device_requests'] == []
    assert 'NVIDIA GPU(s) found but Docker has no GPU runtime' in report['cpu_fallback_reason']
    assert 'install the NVIDIA Container Toolkit' in report['cpu_fallback_reason']


@pytest.mark.parametrize('gpus, device_request', [
    ('all', dict(driver='nvidia', count=-1, device_ids=[], capabilities=[['gpu']], options={})),
    (1, dict(driver='nvidia', count=1, device_ids=[], capabilities=[['gpu']], options={})),
    ([H100_UUID], dict(driver='nvidia', count=0, device_ids=[H100_UUID], capabilities=[['gpu']], options={})),
    (['0'], dict(driver='nvidia', count=0, device_ids=['0'], capabilities=[['gpu']], options={})),
])
def test_h100_with_the_nvidia_runtime_gets_exactly_the_gpus_asked_for(tmp_path, gpus, device_request):
    facts = _h100_facts(tmp_path, {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime', 'args': []}}})
    spec, report = c.ollama_spec({'gpus': gpus}, facts)
    assert report['vendor'] == 'nvidia' and report['cpu_fallback_reason'] is None
    assert spec['device_requests'] == [device_request]


@pytest.mark.parametrize('gpus, message', [
    (2, 'gpus: 2 GPUs asked for but this host has 1'),
    (['GPU-00000000-0000-0000-0000-000000000000'], "not among this host's NVIDIA GPUs (indexes and UUIDs: 0, " + H100_UUID),
])
def test_h100_refuses_gpus_it_does_not_have(tmp_path, gpus, message):
    facts = _h100_facts(tmp_path, {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime'}}})
    with pytest.raises(c.InputError, match=message.replace('(', r'\(').replace(')', r'\)')):
        c.ollama_spec({'gpus': gpus}, facts)


@pytest.mark.parametrize('option, value, message', [
    ('num_parallel', 0, 'num_parallel: 0 must be at least 1'),
    ('max_queue', 0, 'max_queue: 0 must be at least 1'),
    ('max_loaded_models', -1, 'max_loaded_models: -1 must not be negative'),
    ('context_length', -1, 'context_length: -1 must not be negative'),
])
def test_ollama_counts_out_of_range_are_refused(option, value, message):
    with pytest.raises(c.InputError, match=message):
        c.ollama_env({option: value}, 'none')


def test_ollama_counts_at_their_bound_are_kept():
    env = c.ollama_env({'num_parallel': 1, 'max_queue': 1, 'max_loaded_models': 0, 'context_length': 0}, 'none')
    assert (env['OLLAMA_NUM_PARALLEL'], env['OLLAMA_MAX_QUEUE'], env['OLLAMA_MAX_LOADED_MODELS'], env['OLLAMA_CONTEXT_LENGTH']) == \
        ('1', '1', '0', '0')


# ----------------------------------------------------------------------------------------------
# The predicted CPU fallback (gpu.py's ollama_outlook): the GPU is still passed, the report says cpu and why.

def _tree_facts(name, case):
    from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_gpu import collect
    facts, dummy = collect(name, case)
    return facts


ALL_GPUS = dict(driver='nvidia', count=-1, device_ids=[], capabilities=[['gpu']], options={})


@pytest.mark.parametrize('requested', ['auto', 'nvidia'])
def test_pascal_on_535_gets_its_gpu_but_the_report_says_cpu_and_why(requested):
    facts = _tree_facts('nvidia_pascal_535_toolkit', 'nvidia_pascal_535_toolkit')
    spec, report = c.ollama_spec({'gpu': requested}, facts)
    assert spec['device_requests'] == [ALL_GPUS]
    assert report == dict(requested=requested, vendor='nvidia', mode='runtime', devices=['all'], inference='cpu',
                          cpu_fallback_reason=facts['ollama_outlook']['cpu_fallback_reason'])
    assert 'NVIDIA driver 570 or newer' in report['cpu_fallback_reason']


def test_the_molecule_style_pascal_fake_gives_inference_cpu_naming_570(tmp_path):
    from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_gpu import faked_pascal_host
    facts = faked_pascal_host(tmp_path, proc_version=False)
    spec, report = c.ollama_spec({'gpu': 'nvidia'}, facts)
    assert (report['vendor'], report['inference'], spec['device_requests']) == ('nvidia', 'cpu', [ALL_GPUS])
    assert 'driver 570' in report['cpu_fallback_reason'] and '535.183.01' in report['cpu_fallback_reason']


TWO_GPUS = {
    'gpu_vendor': 'nvidia', 'gpu_usable': True,
    'nvidia': {'driver_version': '550.54.14', 'pci_devices': [{}, {}], 'gpus': [
        {'index': 0, 'uuid': 'GPU-4090', 'name': 'NVIDIA GeForce RTX 4090', 'compute_capability': '8.9', 'mig_devices': []},
        {'index': 1, 'uuid': 'GPU-1080', 'name': 'NVIDIA GeForce GTX 1080', 'compute_capability': '6.1', 'mig_devices': []}]},
    'container': {'daemon_json': {'runtimes': {'nvidia': 'nvidia-container-runtime'}}, 'cdi': {'devices': []}},
}


@pytest.mark.parametrize('gpus, inference', [
    ('all', 'gpu'), (1, 'gpu'), (2, 'gpu'), (['GPU-1080'], 'cpu'), (['1'], 'cpu'), (['0', '1'], 'gpu'),
])
def test_the_prediction_follows_the_gpus_the_container_gets(gpus, inference):
    spec, report = c.ollama_spec({'gpus': gpus}, TWO_GPUS)
    assert report['vendor'] == 'nvidia' and report['inference'] == inference
    assert (report['cpu_fallback_reason'] is None) == (inference == 'gpu')


def test_cuda_visible_devices_minus_one_is_predicted_as_cpu():
    spec, report = c.ollama_spec({'env': {'CUDA_VISIBLE_DEVICES': '-1'}}, TWO_GPUS)
    assert report['inference'] == 'cpu' and 'CUDA_VISIBLE_DEVICES=-1' in report['cpu_fallback_reason']


def test_nvidia_ctk_without_runtime_or_cdi_spec_is_no_runtime():
    facts = copy.deepcopy(NVIDIA_FACTS)
    facts['container']['daemon_json']['runtimes'] = {}
    facts['container']['nvidia_ctk'] = {'path': '/usr/bin/nvidia-ctk', 'version': '1.17.8'}
    spec, report = c.ollama_spec({}, facts)
    assert report['vendor'] == 'none' and spec['device_requests'] == []
    assert 'nvidia-ctk alone is not enough' in report['cpu_fallback_reason']
    facts['container']['cdi']['devices'] = ['nvidia.com/gpu=all']
    spec, report = c.ollama_spec({}, facts)
    assert (report['vendor'], report['inference']) == ('nvidia', 'gpu')


def test_amd_without_the_override_its_gpus_need_is_predicted_as_cpu():
    facts = _tree_facts('amd_rdna2', 'docker_only')
    spec, report = c.ollama_spec({'gpus': ['1'], 'hsa_override_gfx_version': 'none'}, facts)  # the gfx1034 alone
    assert [d['path_on_host'] for d in spec['devices']] == ['/dev/kfd', '/dev/dri/renderD129']
    assert report['inference'] == 'cpu' and 'HSA_OVERRIDE_GFX_VERSION' in report['cpu_fallback_reason']
    spec, report = c.ollama_spec({'gpus': ['1']}, facts)  # auto: the facts' override is set
    assert spec['env']['HSA_OVERRIDE_GFX_VERSION'] == '10.3.0' and report['inference'] == 'gpu'


@pytest.mark.parametrize('params, facts, reason', [
    ({}, {'gpu_vendor': 'none', 'gpu_usable': False}, 'no GPU found'),
    ({'gpu': 'none'}, NVIDIA_FACTS, None),
])
def test_cpu_containers_say_cpu(params, facts, reason):
    spec, report = c.ollama_spec(params, facts)
    assert (report['vendor'], report['inference']) == ('none', 'cpu')
    if reason is None:
        assert report['cpu_fallback_reason'] is None  # gpu: none asked for: nothing fell back
    else:
        assert reason in report['cpu_fallback_reason']


def test_a_jetson_like_host_runs_on_the_cpu_with_the_facts_reason():
    facts = _tree_facts('nvidia_jetson_orin', 'docker_only')
    spec, report = c.ollama_spec({}, facts)
    assert report['vendor'] == 'none' and spec['device_requests'] == []
    assert report['cpu_fallback_reason'] == facts['ollama_outlook']['cpu_fallback_reason']
    assert 'nvidia-smi is missing' in report['cpu_fallback_reason']
