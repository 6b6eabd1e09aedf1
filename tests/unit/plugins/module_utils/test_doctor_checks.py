# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doctor's decisions, from evidence to ok / warn / fail with cause and fix (no host, no Docker)."""

from __future__ import annotations

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import doctor_checks_gpu as g
from ansible_collections.ragops.gpu_stack.plugins.module_utils import doctor_checks_stack as s
from ansible_collections.ragops.gpu_stack.plugins.module_utils import ollama_models
from ansible_collections.ragops.gpu_stack.plugins.module_utils.doctor_record import make_check, report_line, worst

PASCAL_535 = {
    'gpu_vendor': 'nvidia', 'gpu_usable': True, 'gpu_count': 1,
    'nvidia': {'driver_version': '535.104.05', 'gpus': [{'index': 0, 'name': 'Tesla P100', 'compute_capability': '6.0'}],
               'pci_devices': [{}]},
    'ollama_outlook': {'vendor': 'nvidia', 'inference': 'cpu', 'causes': ['nvidia_driver_too_old_for_compute_capability'],
                       'cpu_fallback_reason': 'GPU 0 (Tesla P100, compute capability 6.0) needs NVIDIA driver 570 or newer '
                                              '(found 535.104.05): Ollama will fall back to the CPU'},
}
ADA_580 = {'gpu_vendor': 'nvidia', 'gpu_usable': True, 'gpu_count': 1,
           'nvidia': {'driver_version': '580.65.06',
                      'gpus': [{'index': 0, 'name': 'RTX 4090', 'compute_capability': '8.9', 'memory_total_mib': 24564}]}}
CUDA_LINE = ('time=2026-12-01T10:00:00.000Z level=INFO source=types.go:60 msg="inference compute" id=0 filter_id=0 '
             'library=CUDA compute=8.9 name=CUDA0 description="NVIDIA GeForce RTX 4090" libdirs=ollama,cuda_v13 '
             'driver=13.0 pci_id=0000:01:00.0 type=discrete total="24.0 GiB" available="23.5 GiB"')
CPU_LINE = ('time=2026-12-01T10:05:00.000Z level=INFO source=types.go:60 msg="inference compute" id=cpu library=cpu '
            'compute="" name=cpu description=cpu libdirs=ollama driver="" pci_id="" type="" total="15.6 GiB" available="14.9 GiB"')


def test_a_check_is_ok_warn_or_fail_and_its_line_carries_cause_and_fix():
    failed = make_check('x', 'fail', 'broken', cause='because', fix='mend it')
    assert report_line(failed) == 'FAIL x: broken; cause: because; fix: mend it'
    assert report_line(make_check('y', 'ok', 'fine', cause='ignored')) == 'ok y: fine'
    assert worst([make_check('a', 'ok', ''), make_check('b', 'warn', '')]) == 'warn' and worst([]) == 'ok'
    with pytest.raises(ValueError):
        make_check('z', 'bad', '')


@pytest.mark.parametrize('expected, facts, vendor', [
    ('auto', {'gpu_vendor': 'nvidia', 'gpu_usable': False}, 'nvidia'),
    ('auto', {'gpu_vendor': 'none'}, 'none'),
    ('auto', {}, 'none'),
    ('amd', {'gpu_vendor': 'none'}, 'amd'),
])
def test_the_expected_vendor_is_the_inventorys_else_the_gpu_found_usable_or_not(expected, facts, vendor):
    assert g.expected_vendor(expected, facts) == vendor


def test_an_unusable_gpu_fails_with_the_facts_reason():
    reason = 'NVIDIA kernel module 535.104.05 is loaded and /dev/nvidia0 exists, but nvidia-smi is missing'
    check = g.check_gpu('nvidia', {'gpu_vendor': 'nvidia', 'gpu_usable': False, 'gpu_unusable_reason': reason})
    assert check['status'] == 'fail' and check['cause'] == reason
    assert g.check_gpu('amd', {'gpu_vendor': 'none'})['status'] == 'fail'


@pytest.mark.parametrize('driver, cuda', [('580.65.06', '13.0'), ('570.124.06', '12.8'), ('535.104.05', '12.2'),
                                          ('450.80.02', '11.0'), ('418.87', None), (None, None)])
def test_the_cuda_table(driver, cuda):
    assert g.cuda_for_driver(driver) == cuda


def test_the_driver_check_fails_below_ollamas_floor_with_the_outlooks_reason():
    check = g.check_nvidia_driver(PASCAL_535)
    assert check['status'] == 'fail' and 'CUDA up to 12.2' in check['message']
    assert check['cause'] == PASCAL_535['ollama_outlook']['cpu_fallback_reason']
    assert 'driver 570 or newer' in check['fix']
    assert g.check_nvidia_driver(ADA_580) == {'id': 'nvidia_driver', 'status': 'ok', 'cause': None, 'fix': None,
                                              'message': 'driver 580.65.06, CUDA up to 13.0; RTX 4090 (CC 8.9)'}


def test_without_an_outlook_the_floors_come_from_gpu_py():
    facts = dict(PASCAL_535)
    del facts['ollama_outlook']
    check = g.check_nvidia_driver(facts)
    assert check['status'] == 'fail' and check['cause'].startswith('NVIDIA driver 535.104.05 is older than 550')


RUNTIME_REQUEST = {'DeviceRequests': [{'Driver': 'nvidia', 'Count': -1, 'Capabilities': [['gpu']]}]}
NVIDIA_RUNTIME = {'nvidia': {'path': 'nvidia-container-runtime'}}


def test_the_nvidia_runtime_must_be_in_daemon_json_and_in_dockerd():
    kind = g.nvidia_request_kind(RUNTIME_REQUEST)
    assert kind == 'runtime'
    assert g.check_nvidia_runtime(NVIDIA_RUNTIME, {'runtimes': NVIDIA_RUNTIME}, [], kind)['status'] == 'ok'
    # The planted fault: the runtime removed from daemon.json while dockerd still runs with it.
    removed = g.check_nvidia_runtime(NVIDIA_RUNTIME, {'log-driver': 'json-file'}, [], kind)
    assert removed['status'] == 'fail' and 'daemon.json no longer registers it' in removed['message']
    assert 'next restart of Docker drops it' in removed['cause']
    # ... and after a restart of Docker: neither has it.
    gone = g.check_nvidia_runtime({'runc': {}}, {}, [], kind)
    assert gone['status'] == 'fail' and '--tags gpu' in gone['fix']
    assert g.check_nvidia_runtime({}, {'runtimes': NVIDIA_RUNTIME}, [], kind)['cause'] == \
        'Docker was not restarted after daemon.json changed'


def test_a_cdi_container_needs_the_cdi_spec_not_the_runtime():
    kind = g.nvidia_request_kind({'DeviceRequests': [{'Driver': 'cdi', 'DeviceIDs': ['nvidia.com/gpu=all']}]})
    assert kind == 'cdi'
    assert g.check_nvidia_runtime({}, {}, ['nvidia.com/gpu=0', 'nvidia.com/gpu=all'], kind)['status'] == 'ok'
    assert g.check_nvidia_runtime(NVIDIA_RUNTIME, {'runtimes': NVIDIA_RUNTIME}, [], kind)['status'] == 'fail'


def test_the_probe_must_see_a_gpu_node():
    assert g.probe_nodes('/dev/nvidia-uvm\n/dev/nvidia0\n/dev/nvidiactl\n') == ['/dev/nvidia-uvm', '/dev/nvidia0', '/dev/nvidiactl']
    ok = g.check_gpu_probe({'ran': True, 'nodes': ['/dev/nvidia0', '/dev/nvidiactl'], 'request': '--gpus all', 'expected_count': 1}, {})
    assert ok['status'] == 'ok' and ok['message'] == 'a probe container with --gpus all got /dev/nvidia0'
    none = g.check_gpu_probe({'ran': True, 'nodes': ['/dev/nvidiactl'], 'request': '--gpus all'}, {})
    assert none['status'] == 'fail' and 'passed no GPU' in none['cause']
    refused = g.check_gpu_probe({'error': 'could not select device driver "nvidia"', 'request': '--gpus all'}, {})
    assert refused['status'] == 'fail' and 'could not select device driver' in refused['message']
    fewer = g.check_gpu_probe({'ran': True, 'nodes': ['/dev/nvidia0'], 'request': '--gpus all', 'expected_count': 2}, {})
    assert fewer['status'] == 'warn'


def test_amd_nodes_inside_must_carry_the_hosts_gids_and_the_containers_groups():
    listing = {'nodes': {'/dev/kfd': 109, '/dev/dri/renderD128': 109}, 'groups': [0, 109]}
    host = {'/dev/kfd': {'exists': True, 'gid': 109, 'group': 'render'},
            '/dev/dri/renderD128': {'exists': True, 'gid': 109, 'group': 'render'}}
    assert g.check_gpu_devices('amd', 'ollama', listing, host, ['109'])['status'] == 'ok'
    # The planted fault: the render node's group changed on the host after the container was created.
    changed = dict(host, **{'/dev/dri/renderD128': {'exists': True, 'gid': 44, 'group': 'video'}})
    check = g.check_gpu_devices('amd', 'ollama', listing, changed, ['109'])
    assert check['status'] == 'fail'
    assert check['message'] == '/dev/dri/renderD128 is group video (gid 44) on the host but gid 109 inside ollama'
    assert 'group changed on the host' in check['cause'] and '--tags gpu,services' in check['fix']
    # Same gid on both sides, but the container does not hold that group.
    lost = g.check_gpu_devices('amd', 'ollama', {'nodes': listing['nodes'], 'groups': [0]}, host, [])
    assert lost['status'] == 'fail' and 'GroupAdd' in lost['cause']
    missing = g.check_gpu_devices('amd', 'ollama', {'nodes': {'/dev/kfd': 109}, 'groups': []}, host, [])
    assert missing['status'] == 'fail' and missing['message'] == 'ollama has no render node'


def test_nvidia_nodes_inside_the_ollama_container():
    assert g.parse_node_listing('node /dev/nvidia0 0\nnode /dev/nvidiactl 0\ngroups 0 44\n') == \
        ({'/dev/nvidia0': 0, '/dev/nvidiactl': 0}, [0, 44])
    assert g.check_gpu_devices('nvidia', 'ollama', {'nodes': {'/dev/nvidia0': 0, '/dev/nvidiactl': 0}}, {}, [])['status'] == 'ok'
    assert g.check_gpu_devices('nvidia', 'ollama', {'nodes': {}}, {}, [])['status'] == 'fail'


def test_the_latest_inference_compute_lines_and_their_library():
    log = '\n'.join(['time=... msg="listening"', CUDA_LINE, 'id=GPU-1 library=cpu but no msg', CPU_LINE])
    lines = g.inference_compute(log)
    assert g.libraries(lines) == ['cpu']
    assert g.libraries(g.inference_compute(CUDA_LINE)) == ['cuda']
    assert g.parse_logfmt(CUDA_LINE)['description'] == 'NVIDIA GeForce RTX 4090'
    assert g.parse_size('23.5 GiB') == int(23.5 * 1024 ** 3) and g.parse_size('n/a') is None


PS_GPU = [{'name': 'nomic-embed-text:latest', 'size': 1000, 'size_vram': 1000}]
PS_CPU = [{'name': 'nomic-embed-text:latest', 'size': 1000, 'size_vram': 0}]


def test_a_gpu_host_whose_model_sits_on_the_cpu_fails_naming_the_evidenced_causes():
    causes = g.cpu_fallback_causes({'expected': 'nvidia', 'facts': PASCAL_535, 'container': {'HostConfig': RUNTIME_REQUEST},
                                    'probe': {'ran': True, 'nodes': ['/dev/nvidia0']}, 'log_hints': []})
    check = g.check_gpu_inference('nvidia', PS_CPU, causes)
    assert check['status'] == 'fail' and check['message'] == \
        'nomic-embed-text:latest 100% CPU: an NVIDIA host whose model sits on the CPU'
    assert check['cause'] == PASCAL_535['ollama_outlook']['cpu_fallback_reason']
    assert 'driver 570' in check['fix']
    library = g.check_compute_library('nvidia', g.inference_compute(CPU_LINE), causes)
    assert library['status'] == 'fail' and library['cause'] == check['cause']
    assert g.check_gpu_inference('nvidia', PS_GPU, [])['status'] == 'ok'
    assert g.check_compute_library('nvidia', g.inference_compute(CUDA_LINE), [])['status'] == 'ok'
    partial = g.check_gpu_inference('nvidia', [{'name': 'm', 'size': 1000, 'size_vram': 400}], [])
    assert partial['status'] == 'warn' and partial['message'] == 'm 40% GPU: part of the model runs on the CPU'


def test_the_cgroup_driver_case_needs_a_probe_that_works_and_a_container_that_lost_its_devices():
    devices = g.check_gpu_devices('nvidia', 'ollama', {'nodes': {}}, {}, [])
    evidence = {'expected': 'nvidia', 'facts': ADA_580, 'container': {'HostConfig': RUNTIME_REQUEST},
                'probe': {'ran': True, 'nodes': ['/dev/nvidia0']}, 'devices_check': devices, 'cgroup_driver': 'systemd'}
    (cause, fix), = g.cpu_fallback_causes(evidence)
    assert 'cgroup-driver case' in cause and 'native.cgroupdriver=cgroupfs' in fix
    evidence['cgroup_driver'] = 'cgroupfs'
    (cause, fix), = g.cpu_fallback_causes(evidence)
    assert 'cgroup-driver case' in cause and fix == g.SERVICES_FIX


def test_other_causes_from_the_evidence():
    no_request = g.cpu_fallback_causes({'expected': 'nvidia', 'facts': ADA_580,
                                        'container': {'HostConfig': {}, 'Config': {'Labels': {'org.ragops.gpu_stack.gpu': 'none'}}}})
    assert no_request[0][0] == 'the Ollama container was created without a GPU request (gpu none)'
    hidden = g.cpu_fallback_causes({'expected': 'nvidia', 'facts': ADA_580,
                                    'container': {'HostConfig': RUNTIME_REQUEST, 'Config': {'Env': ['CUDA_VISIBLE_DEVICES=-1']}}})
    assert hidden[0][0] == 'CUDA_VISIBLE_DEVICES=-1 in the container forces the CPU'
    amd = {'gpu_vendor': 'amd', 'gpu_usable': True,
           'amd': {'gpus': [{'gfx_target': 'gfx1031', 'supported': False, 'hsa_override_gfx_version': '10.3.0'}]}}
    gfx = g.cpu_fallback_causes({'expected': 'amd', 'facts': amd, 'container': {'HostConfig': {'Devices': [{}]}}})
    assert gfx == [('gfx1031 is not one of Ollama\'s ROCm targets and the container sets no HSA_OVERRIDE_GFX_VERSION',
                    'set ollama_hsa_override_gfx_version to 10.3.0')]
    unknown = g.cpu_fallback_causes({'expected': 'nvidia', 'facts': ADA_580, 'container': {'HostConfig': RUNTIME_REQUEST}})
    assert unknown[0][0] == 'no cause is visible from outside the container'


def test_a_cpu_host_on_the_cpu_is_fine():
    assert g.check_gpu_inference('none', PS_CPU, [])['status'] == 'ok'
    assert g.check_compute_library('none', g.inference_compute(CPU_LINE), [])['status'] == 'ok'
    assert g.check_compute_library('none', [], [])['status'] == 'warn'


def test_vram_against_the_models_to_hold():
    lines = g.inference_compute(CUDA_LINE)
    assert g.check_vram('nvidia', lines, ADA_580, [('m', 4 * 1024 ** 3)])['status'] == 'ok'
    big = g.check_vram('nvidia', lines, ADA_580, [('a', 20 * 1024 ** 3), ('b', 8 * 1024 ** 3)])
    assert big['status'] == 'warn' and big['message'] == 'a 20.0 GiB, b 8.0 GiB need 28.0 GiB but 23.5 GiB of VRAM is free when Ollama started'
    # No log line: the GPUs' total memory, said so.
    assert 'free VRAM unknown' in g.check_vram('nvidia', [], ADA_580, [('m', 1)])['message']
    assert g.check_vram('none', [], {'host': {'memory_total_mib': 1}}, [('m', 2 * 1024 ** 2)])['status'] == 'warn'


def inspect(status='running', restarts=0, health='healthy', exit_code=0, oom=False, ports=None, network='bridge'):
    return {'State': {'Status': status, 'Running': status == 'running', 'Restarting': status == 'restarting',
                      'ExitCode': exit_code, 'OOMKilled': oom, 'StartedAt': '2026-12-01T10:00:00.123456789Z',
                      'FinishedAt': '2026-12-01T11:00:00Z', 'Health': {'Status': health, 'Log': [{'Output': 'no answer'}]}},
            'RestartCount': restarts, 'HostConfig': {'NetworkMode': network},
            'NetworkSettings': {'Ports': ports or {}, 'Networks': {'bridge': {'IPAddress': '172.17.0.5'}}}}


def test_container_states():
    assert s.check_container('c', 'pg', inspect(), [], 'x')['status'] == 'ok'
    stopped = s.check_container('c', 'pg', inspect('exited'), [], 'extension, table and RAG round trip')
    assert stopped['status'] == 'fail'
    assert stopped['message'].startswith('pg is exited (exit code 0, finished 2026-12-01T11:00:00Z); extension, table')
    assert 'stopped cleanly' in stopped['cause'] and stopped['fix'].startswith('docker start pg')
    oom = s.check_container('c', 'ollama', inspect('exited', exit_code=137, oom=True), ['killed'], 'x')
    assert oom['status'] == 'fail' and 'OOM' in oom['message'] and 'OLLAMA_MAX_LOADED_MODELS=1' in oom['fix']
    assert s.check_container('c', 'o', inspect('restarting', restarts=5, exit_code=1), [], 'x')['status'] == 'fail'
    assert s.check_container('c', 'o', inspect(restarts=2), [], 'x')['status'] == 'warn'
    assert s.check_container('c', 'o', inspect(health='unhealthy'), [], 'x')['status'] == 'fail'
    assert s.check_container('c', 'o', None, [], 'x')['fix'] == s.SERVICES_FIX
    assert s.started_epoch(inspect()) == 1796119200
    assert s.check_not_serving('c', 'o', None, 'absent')['status'] == 'ok'
    assert s.check_not_serving('c', 'o', inspect(), 'stopped')['status'] == 'fail'


def test_exposure_beyond_loopback_that_the_inventory_did_not_ask_for():
    loop = inspect(ports={'11434/tcp': [{'HostIp': '127.0.0.1', 'HostPort': '11434'}]})
    wide = inspect(ports={'5432/tcp': [{'HostIp': '0.0.0.0', 'HostPort': '5432'}, {'HostIp': '::', 'HostPort': '5432'}]})
    ollama = dict(name='ollama', inspect=loop, publish=True, bind_address='127.0.0.1', port=11434, variable='ollama')
    pgv = dict(name='pgvector', inspect=wide, publish=True, bind_address='127.0.0.1', port=5432, variable='pgvector')
    assert s.check_exposure([ollama])['status'] == 'ok'
    check = s.check_exposure([ollama, pgv])
    assert check['status'] == 'fail' and check['message'].startswith(
        'pgvector publishes 5432/tcp on 0.0.0.0:5432 (all interfaces), which the inventory did not ask for '
        '(pgvector_bind_address 127.0.0.1, pgvector_publish true)')
    assert s.check_exposure([dict(pgv, bind_address='0.0.0.0')])['status'] == 'ok'
    assert s.check_exposure([dict(ollama, inspect=inspect(network='host'))])['status'] == 'fail'
    # A loopback binding is never an exposure, asked for or not.
    assert s.check_exposure([dict(ollama, publish=False)])['status'] == 'ok'


def test_the_api_url():
    assert s.api_url_for({'api_url': 'http://h:1/'}, None) == 'http://h:1'
    assert s.api_url_for({'publish': True, 'bind_address': '0.0.0.0', 'port': 5}, None) == 'http://127.0.0.1:5'
    assert s.api_url_for({'publish': True, 'bind_address': '::', 'port': 5}, None) == 'http://[::1]:5'
    assert s.api_url_for({'publish': False}, inspect()) == 'http://172.17.0.5:11434'


def test_models_and_the_embedding_model():
    desired = ollama_models.desired_models({'models': ['llama3.2', {'name': 'nomic-embed-text', 'preload': True}]})
    installed = ollama_models.installed_index({'models': [{'name': 'nomic-embed-text:latest'}]})
    check = s.check_models(desired, installed)
    assert check['status'] == 'fail' and check['message'] == 'not installed: llama3.2:latest'
    assert s.embedding_candidates(desired, None) == ['nomic-embed-text:latest', 'llama3.2:latest']
    assert s.embedding_candidates(desired, 'all-minilm') == ['all-minilm:latest']
    show = {'capabilities': ['embedding'], 'model_info': {'nomic-bert.embedding_length': 768, 'general.architecture': 'nomic-bert'}}
    assert s.is_embedding_model(show) and s.embedding_length(show) == 768
    assert s.check_embedding_model(None, None, None, None)['status'] == 'fail'


def test_pgvector_extension_and_dimension():
    assert s.check_pgvector_extension({'extension': '0.8.0', 'available': '0.8.0'}, None, 'rag')['status'] == 'ok'
    assert s.check_pgvector_extension({'extension': None, 'available': '0.8.0'}, None, 'rag')['status'] == 'fail'
    assert s.check_pgvector_extension({'extension': '0.7.0', 'available': '0.8.0'}, None, 'rag')['status'] == 'warn'
    assert s.check_pgvector_extension({}, 'database "rag" does not exist', 'rag')['status'] == 'fail'
    table = {'name': 'chunks'}
    assert s.check_pgvector_dimension(table, {'embedding': 'vector(768)'}, 'm', 768)['status'] == 'ok'
    wrong = s.check_pgvector_dimension(table, {'embedding': 'vector(768)'}, 'm', 384)
    assert wrong['status'] == 'fail' and 'pgvector_table.dimensions: 384' in wrong['fix']
    assert s.check_pgvector_dimension(table, None, 'm', 768)['message'] == 'table public.chunks does not exist'


def test_the_round_trip_runs_in_one_rolled_back_transaction_on_a_temp_table():
    vectors = [[float(i == j) for j in range(4)] for i in range(4)]
    sql = s.session_sql({'name': 'chunks'}, vectors)
    assert sql.index('BEGIN;') < sql.index('CREATE TEMP TABLE ragops_doctor_round_trip') < sql.index('ROLLBACK;')
    assert 'ON COMMIT DROP' in sql and 'COMMIT;' not in sql.replace('ON COMMIT DROP', '')
    assert 'chunks' not in sql.split('ROLLBACK', maxsplit=1)[0].split('BEGIN;')[1]
    assert 'BEGIN' not in s.session_sql(None, None)
    ranked = [{'id': 2, 'distance': 0.0}, {'id': 0, 'distance': 0.8}, {'id': 1, 'distance': 0.9}, {'id': 3, 'distance': 1.0}]
    ok = s.check_round_trip('m', vectors, None, {'round_trip': ranked}, None, 'rag')
    assert ok['status'] == 'ok' and 'nearest is sentence 3 (cosine distance 0.0000, next 0.8000)' in ok['message']
    tie = [{'id': 2, 'distance': 0.5}, {'id': 0, 'distance': 0.5}] + ranked[2:]
    assert s.check_round_trip('m', vectors, None, {'round_trip': tie}, None, 'rag')['status'] == 'fail'
    assert s.check_round_trip('m', vectors, None, {'round_trip': ranked[1:2] + ranked[:1] + ranked[2:]}, None, 'rag')['status'] == 'fail'
    assert s.check_round_trip('m', None, 'model "m" not found', {}, None, 'rag')['status'] == 'fail'
    assert s.check_round_trip('m', vectors, None, {}, None, 'rag')['cause'] == 'see pgvector_extension'


def test_daemon_json_and_docker():
    assert s.check_daemon_json('/etc/docker/daemon.json', None, None, None)['status'] == 'ok'
    bad = s.check_daemon_json('/etc/docker/daemon.json', '/etc/docker/daemon.json is not valid JSON at line 1', None, None)
    assert bad['status'] == 'fail' and 'json.tool' in bad['fix']
    assert s.check_daemon_json('p', None, {'default-runtime': 'nvidia'}, 'default-runtime is nvidia but ...')['status'] == 'fail'
    assert s.check_docker('connection refused', {})['status'] == 'fail'


def test_a_fallback_without_a_floor_is_no_driver_finding():
    """The runtime removed on a driver that passes the floors: the fix is the runtime, not a driver upgrade."""
    facts = {'ollama_outlook': {'vendor': 'none', 'inference': 'cpu', 'causes': ['no_gpu_runtime'],
                                'cpu_fallback_reason': 'Docker has no nvidia runtime; running Ollama on the CPU'}}
    assert g.floor_findings(facts) == []


def test_a_floor_named_by_the_outlook_is_a_driver_finding():
    reason = 'GPU 0 (GTX 1080, compute capability 6.1) needs NVIDIA driver 570 or newer'
    facts = {'ollama_outlook': {'vendor': 'nvidia', 'inference': 'cpu', 'cpu_fallback_reason': reason,
                                'causes': ['nvidia_driver_too_old_for_compute_capability', 'nvidia_driver_too_old']}}
    assert g.floor_findings(facts) == [('nvidia_driver_too_old_for_compute_capability', reason)]
