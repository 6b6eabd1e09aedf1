# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""stack_doctor end to end with fakes: a Docker API, Ollama and psql answering as the real ones do for
a Pascal-on-535 host, a host whose daemon.json lost the nvidia runtime, an AMD host whose render node
changed group, a stopped pgvector and a Docker that does not answer. The real engine, the double and
PostgreSQL are tests/integration_docker/test_doctor_real.py's."""

from __future__ import annotations

import copy
import json
import os
from unittest import mock

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import doctor, gpu, pg
from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_client import DockerException, NotFound
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_api import OllamaError
from ansible_collections.ragops.gpu_stack.plugins.modules import stack_doctor
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import run_module

CUDA = ('time=2026-12-01T10:00:00.000Z level=INFO source=types.go:60 msg="inference compute" id=0 library=CUDA '
        'compute=8.9 name=CUDA0 description="NVIDIA RTX 4090" total="24.0 GiB" available="23.5 GiB"\n')
CPU = ('time=2026-12-01T10:00:00.000Z level=WARN source=gpu.go:1 msg="NVIDIA driver too old" driver=535.104.05\n'
       'time=2026-12-01T10:00:00.000Z level=INFO source=types.go:60 msg="inference compute" id=cpu library=cpu name=cpu '
       'total="15.6 GiB" available="14.9 GiB"\n')
ROCM = ('time=2026-12-01T10:00:00.000Z level=INFO source=types.go:60 msg="inference compute" id=0 library=ROCm '
        'compute=gfx1100 total="24.0 GiB" available="23.5 GiB"\n')
RUNTIME_REQUEST = [{'Driver': 'nvidia', 'Count': -1, 'DeviceIDs': None, 'Capabilities': [['gpu']], 'Options': {}}]
NVIDIA_FACTS = {'gpu_vendor': 'nvidia', 'gpu_usable': True, 'gpu_count': 1,
                'nvidia': {'driver_version': '580.65.06', 'gpus': [{'index': 0, 'name': 'RTX 4090', 'compute_capability': '8.9'}]}}
PASCAL_FACTS = {'gpu_vendor': 'nvidia', 'gpu_usable': True, 'gpu_count': 1,
                'nvidia': {'driver_version': '535.104.05', 'gpus': [{'index': 0, 'name': 'Tesla P100', 'compute_capability': '6.0'}]},
                'ollama_outlook': {'vendor': 'nvidia', 'inference': 'cpu',
                                   'causes': ['nvidia_driver_too_old_for_compute_capability'],
                                   'cpu_fallback_reason': 'GPU 0 (Tesla P100, compute capability 6.0) needs NVIDIA driver '
                                                          '570 or newer (found 535.104.05)'}}
AMD_FACTS = {'gpu_vendor': 'amd', 'gpu_usable': True, 'gpu_count': 1,
             'amd': {'gpus': [{'gfx_target': 'gfx1100', 'supported': True}]}}


def container(name, running=True, labels=None, host_config=None, ports=None, env=None):
    return {
        'Id': name + '-id', 'Name': '/' + name, 'Image': 'sha256:ollamaimage', 'RestartCount': 0,
        'State': {'Status': 'running' if running else 'exited', 'Running': running, 'ExitCode': 0, 'OOMKilled': False,
                  'StartedAt': '2026-12-01T10:00:00.1Z', 'FinishedAt': '2026-12-01T11:00:00Z',
                  'Health': {'Status': 'healthy' if running else 'unhealthy'}},
        'Config': {'Labels': labels or {}, 'Env': env or []},
        'HostConfig': dict({'NetworkMode': 'bridge'}, **(host_config or {})),
        'NetworkSettings': {'Ports': ports or {}, 'Networks': {'bridge': {'IPAddress': '172.17.0.9'}}},
    }


class FakeAPI:
    """The docker.APIClient calls the doctor makes, answered from a dict of containers."""

    def __init__(self, containers, runtimes=None, log=CPU, probe_output='/dev/nvidia0\n/dev/nvidiactl\n'):
        self.containers_by_name = containers
        self.runtimes = runtimes if runtimes is not None else {'runc': {}}
        self.log = log
        self.probe_output = probe_output
        self.created, self.removed = [], []
        self.stale = []

    def info(self):
        return {'ServerVersion': '26.1.5', 'Driver': 'overlay2', 'CgroupDriver': 'systemd', 'Runtimes': self.runtimes}

    def inspect_container(self, name):
        if name not in self.containers_by_name:
            raise NotFound('no such container')
        return copy.deepcopy(self.containers_by_name[name])

    def logs(self, name, **kwargs):
        if name.startswith(doctor.PROBE_PREFIX):
            return self.probe_output.encode()
        return self.log.encode()

    def containers(self, all=False, filters=None):  # pylint: disable=redefined-builtin
        return [{'Id': c} for c in self.stale]

    def create_container(self, **kwargs):
        self.created.append(kwargs)
        return {'Id': kwargs['name']}

    def start(self, container_id):
        pass

    def wait(self, container_id, timeout=None):
        return {'StatusCode': 0}

    def remove_container(self, container_id, force=False):
        self.removed.append(container_id)


class FakeOllama:
    def __init__(self, size_vram):
        self.size_vram = size_vram
        self.embedded = []

    def version(self):
        return '0.33.0'

    def tags(self):
        return {'models': [{'name': 'nomic-embed-text:latest', 'size': 274302450}]}

    def show(self, name):
        if name != 'nomic-embed-text:latest':
            raise OllamaError("model '%s' not found" % name, status=404)
        return {'capabilities': ['embedding'], 'model_info': {'nomic-bert.embedding_length': 4}}

    def embed(self, name, texts, timeout=None):
        self.embedded.append((name, list(texts)))
        return [[float(i == j) for j in range(4)] for i in range(len(texts))]

    def ps(self):
        if not self.embedded:
            return {'models': []}
        return {'models': [{'name': 'nomic-embed-text:latest', 'size': 280000000, 'size_vram': self.size_vram}]}


def psql_answer(columns=None):
    state = {'extension': '0.8.0', 'available': '0.8.0', 'server_version': '17.2',
             'columns': columns if columns is not None else {'id': 'bigint', 'embedding': 'vector(4)'}}
    ranked = [{'id': 2, 'distance': 0.0}, {'id': 0, 'distance': 1.0}, {'id': 1, 'distance': 1.0}, {'id': 3, 'distance': 1.0}]
    return '%sstate\n%s\n%sround_trip\n%s\n' % (pg.ANSWER_MARKER, json.dumps(state), pg.ANSWER_MARKER, json.dumps(ranked))


@pytest.fixture(name='root')
def fixture_root(tmp_path):
    (tmp_path / 'etc' / 'docker').mkdir(parents=True)
    (tmp_path / 'etc' / 'group').write_text('root:x:0:\nvideo:x:44:\nrender:x:109:\n', encoding='utf-8')
    return tmp_path


def write_daemon_json(root, data):
    (root / 'etc' / 'docker' / 'daemon.json').write_text(json.dumps(data), encoding='utf-8')


def run(root, api, ollama, facts, nodes_output='', psql=None, check_mode=False, **extra):
    """The module with ``api`` as dockerd, ``ollama`` as Ollama; returns (result, calls made into containers)."""
    calls = []

    def fake_exec(api_, container_, argv, stdin_bytes, environment):
        calls.append((container_, argv[0], stdin_bytes.decode()))
        if argv[0] == 'psql':
            return 0, (psql or psql_answer()).encode(), b''
        return 0, nodes_output.encode(), b''

    args = dict(facts_root=str(root), gpu_facts=facts, ollama=dict(name='ollama'),
                pgvector=dict(name='pgvector', table=dict(name='chunks')),
                models=[dict(name='nomic-embed-text', preload=True)])
    args.update(extra)
    with mock.patch.object(stack_doctor, 'get_api_client', return_value=api), \
            mock.patch.object(stack_doctor, 'OllamaClient', return_value=ollama), \
            mock.patch.object(doctor, 'exec_in_container', fake_exec), \
            mock.patch.object(pg, 'exec_in_container', fake_exec), \
            mock.patch.object(gpu, 'query_nvidia_ctk', return_value={'path': '/usr/bin/nvidia-ctk', 'version': '1.17.8'}):
        result, warnings = run_module(stack_doctor, args, check_mode=check_mode)
    assert warnings == []
    return result, calls


def statuses(result):
    return {c['id']: c['status'] for c in result['checks']}


NVIDIA_NODES = 'node /dev/nvidia0 0\nnode /dev/nvidiactl 0\ngroups 0\n'


def nvidia_containers(**ollama):
    return {'ollama': container('ollama', labels={'org.ragops.gpu_stack.gpu': 'nvidia'},
                                host_config={'DeviceRequests': RUNTIME_REQUEST}, env=['NVIDIA_VISIBLE_DEVICES=all'], **ollama),
            'pgvector': container('pgvector')}


def test_a_pascal_host_on_driver_535_fails_naming_the_driver_floor(root):
    write_daemon_json(root, {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime'}}})
    api = FakeAPI(nvidia_containers(), runtimes={'runc': {}, 'nvidia': {}}, log=CPU)
    api.stale = ['ragops-doctor-probe-old']
    ollama = FakeOllama(size_vram=0)
    result, calls = run(root, api, ollama, PASCAL_FACTS, NVIDIA_NODES, check_mode=True)
    assert result['changed'] is False and result['status'] == 'fail'
    assert result['host']['failed'] == ['nvidia_driver', 'gpu_inference', 'compute_library']
    checks = {c['id']: c for c in result['checks']}
    reason = PASCAL_FACTS['ollama_outlook']['cpu_fallback_reason']
    assert checks['nvidia_driver']['cause'] == reason
    assert checks['gpu_inference']['message'] == 'nomic-embed-text:latest 100% CPU: an NVIDIA host whose model sits on the CPU'
    assert checks['gpu_inference']['cause'].startswith(reason + '; Ollama\'s log says: ')
    assert 'NVIDIA driver too old' in checks['gpu_inference']['cause']
    assert 'install NVIDIA driver 570 or newer' in checks['compute_library']['fix']
    assert statuses(result)['gpu_probe'] == 'ok' and statuses(result)['rag_round_trip'] == 'ok'
    # The probe: the Ollama container's image and GPU request, no network, removed; a stale probe removed first.
    (probe,) = api.created
    assert probe['image'] == 'sha256:ollamaimage' and probe['entrypoint'] == ['/bin/sh']
    assert probe['host_config']['DeviceRequests'] == RUNTIME_REQUEST and probe['host_config']['NetworkMode'] == 'none'
    assert probe['name'].startswith('ragops-doctor-probe-') and probe['environment'] == ['NVIDIA_VISIBLE_DEVICES=all']
    assert api.removed == ['ragops-doctor-probe-old', probe['name']]
    # The embedding model was loaded by embedding the round trip's sentences; one psql session did the rest.
    assert ollama.embedded and ollama.embedded[0][0] == 'nomic-embed-text:latest'
    (psql,) = [c for c in calls if c[1] == 'psql']
    assert 'CREATE TEMP TABLE' in psql[2] and psql[2].rstrip().endswith('ROLLBACK;\n\\endif')
    assert result['report'][0] == 'ok docker: Docker 26.1.5 answers (storage overlay2, cgroup driver systemd)'


def test_an_nvidia_host_that_lost_its_runtime_in_daemon_json_fails_that_check_alone(root):
    write_daemon_json(root, {'log-driver': 'json-file'})
    api = FakeAPI(nvidia_containers(), runtimes={'runc': {}, 'nvidia': {}}, log=CUDA)
    result, dummy = run(root, api, FakeOllama(size_vram=280000000), NVIDIA_FACTS, NVIDIA_NODES)
    assert result['host']['failed'] == ['nvidia_runtime'], result['report']
    assert result['host']['inference'] == 'gpu' and result['host']['libraries'] == ['cuda']
    line = [r for r in result['report'] if r.startswith('FAIL')][0]
    assert line.startswith('FAIL nvidia_runtime: dockerd runs with the nvidia runtime but daemon.json no longer registers it; '
                           'cause: daemon.json was edited or replaced')


def test_a_model_on_the_cpu_with_a_probe_that_gets_the_gpu_points_at_the_cgroup_driver_case(root):
    write_daemon_json(root, {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime'}}})
    api = FakeAPI(nvidia_containers(), runtimes={'runc': {}, 'nvidia': {}}, log=CPU.splitlines()[1] + '\n')
    result, dummy = run(root, api, FakeOllama(size_vram=0), NVIDIA_FACTS, 'groups 0\n')
    checks = {c['id']: c for c in result['checks']}
    assert checks['gpu_probe']['status'] == 'ok' and checks['gpu_devices']['status'] == 'fail'
    assert 'cgroup-driver case' in checks['gpu_inference']['cause']


def test_an_amd_host_whose_render_node_changed_group_fails_with_the_cause(root):
    write_daemon_json(root, {})
    dev = root / 'dev' / 'dri'
    dev.mkdir(parents=True)
    for path in (root / 'dev' / 'kfd', dev / 'renderD128'):
        path.write_text('', encoding='utf-8')
        os.chown(str(path), -1, 109)
    os.chown(str(dev / 'renderD128'), -1, 44)
    containers = {'ollama': container('ollama', labels={'org.ragops.gpu_stack.gpu': 'amd'},
                                      host_config={'Devices': [{'PathOnHost': '/dev/kfd'}], 'GroupAdd': ['109']}),
                  'pgvector': container('pgvector')}
    api = FakeAPI(containers, log=ROCM)
    nodes = 'node /dev/kfd 109\nnode /dev/dri/renderD128 109\ngroups 0 109\n'
    result, calls = run(root, api, FakeOllama(size_vram=280000000), AMD_FACTS, nodes)
    assert result['host']['failed'] == ['gpu_devices'], result['report']
    check = [c for c in result['checks'] if c['id'] == 'gpu_devices'][0]
    assert check['message'] == '/dev/dri/renderD128 is group video (gid 44) on the host but gid 109 inside ollama'
    assert api.created == []
    assert [c[1] for c in calls] == ['/bin/sh', 'psql']


def test_a_stopped_pgvector_fails_and_no_psql_runs(root):
    write_daemon_json(root, {})
    containers = {'ollama': container('ollama'), 'pgvector': container('pgvector', running=False)}
    result, calls = run(root, FakeAPI(containers), FakeOllama(size_vram=0), {'gpu_vendor': 'none'}, expected_gpu='none')
    assert result['host']['failed'] == ['pgvector_container'], result['report']
    assert not [c for c in calls if c[1] == 'psql']
    ids = [c['id'] for c in result['checks']]
    assert 'rag_round_trip' not in ids and 'pgvector_extension' not in ids and 'gpu_probe' not in ids


def test_docker_not_answering_is_a_failed_check_not_a_module_failure(root):
    write_daemon_json(root, {})
    with mock.patch.object(stack_doctor, 'get_api_client', side_effect=DockerException('connection refused')):
        result, dummy = run_module(stack_doctor, dict(facts_root=str(root), gpu_facts={'gpu_vendor': 'none'}))
    assert 'failed' not in result and result['status'] == 'fail'
    assert [c['id'] for c in result['checks']] == ['docker', 'daemon_json', 'gpu']


def test_bad_models_fail_the_module(root):
    result, dummy = run_module(stack_doctor, dict(facts_root=str(root), gpu_facts={}, models=['bad name!']))
    assert result['failed'] and result['msg'].startswith('models: models[0]: invalid model name')
