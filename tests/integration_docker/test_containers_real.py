# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two container modules against the host's real dockerd, with the test world's local images.

Containers and volumes are named ragops-ut-*, and removed afterwards. Run:
    .venv/bin/python -m pytest tests/integration_docker -q
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from unittest import mock

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '.cache', 'collections'))

import docker  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.ragops.gpu_stack.plugins.action import ollama_container as ollama_action  # noqa: E402
from ansible_collections.ragops.gpu_stack.plugins.action import pgvector_container as pgvector_action  # noqa: E402
from ansible_collections.ragops.gpu_stack.plugins.module_utils import container  # noqa: E402
from ansible_collections.ragops.gpu_stack.plugins.modules import ollama_container, pgvector_container  # noqa: E402
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, printed_result, run_module  # noqa: E402

OLLAMA_DOUBLE = 'ragops-world/ollama-double:0.33.0'
PGVECTOR = 'ragops-world/pgvector:pg17'
FAST = dict(interval='1s', timeout='3s', retries=3, start_period='0s')
CPU = {'gpu_vendor': 'none', 'gpu_usable': False}


@pytest.fixture
def api():
    client = docker.APIClient(version='auto')
    created = []
    yield client, created
    for name in created:
        try:
            client.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
    for volume in client.volumes(filters={'name': 'ragops-ut-'}).get('Volumes') or []:
        if volume['Name'].startswith('ragops-ut-'):
            client.remove_volume(volume['Name'], force=True)


def test_ollama_create_idempotent_recreate_keeps_volume_absent(api):
    client, created = api
    name = 'ragops-ut-ollama'
    created.append(name)
    args = dict(name=name, image=OLLAMA_DOUBLE, pull='never', port=free_port(), gpu_facts=CPU, num_parallel=2,
                healthcheck=FAST, wait_healthy_timeout=60)
    result, warnings = run_module(ollama_container, args)
    assert result.get('msg') is None and result['changed'] and result['container']['health'] == 'healthy'
    assert result['gpu']['cpu_fallback_reason']
    first_id = result['container']['id']
    subprocess.run(['docker', 'exec', name, 'sh', '-c', 'echo kept > /root/.ollama/marker'], check=True)

    again, warnings = run_module(ollama_container, args)
    assert not again['changed'] and again['container']['id'] == first_id

    args.pop('num_parallel')
    check, warnings = run_module(ollama_container, args, check_mode=True, diff=True)
    assert check['actions'] == ['recreate: env OLLAMA_NUM_PARALLEL removed']
    assert check['diff']['before']['env'] == {'OLLAMA_NUM_PARALLEL': '2'} and check['diff']['after']['env'] == {}
    assert client.inspect_container(name)['Id'] == first_id

    recreated, warnings = run_module(ollama_container, args)
    assert recreated['actions'] == ['recreate: env OLLAMA_NUM_PARALLEL removed']
    assert recreated['container']['id'] != first_id and recreated['container']['health'] == 'healthy'
    env = client.inspect_container(name)['Config']['Env']
    assert not [e for e in env if e.startswith('OLLAMA_NUM_PARALLEL=')]
    out = subprocess.run(['docker', 'exec', name, 'cat', '/root/.ollama/marker'], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'kept'
    binding = client.inspect_container(name)['HostConfig']['PortBindings']['11434/tcp'][0]
    assert binding == {'HostIp': '127.0.0.1', 'HostPort': str(args['port'])}

    gone, warnings = run_module(ollama_container, dict(args, state='absent'))
    assert gone['actions'] == ['remove']
    assert client.inspect_volume(name)['Name'] == name
    purged, warnings = run_module(ollama_container, dict(args, state='absent', purge=True))
    assert purged['actions'] == ['remove volume %s' % name]


def test_ollama_health_timeout_error_and_port_in_use(api):
    client, created = api
    name = 'ragops-ut-ollama-sick'
    created.append(name)
    # the reconciler itself, with a health check that cannot pass: the error must carry its output and the logs
    spec, gpu = container.ollama_spec(dict(name=name, image=OLLAMA_DOUBLE, publish=False, healthcheck=FAST), CPU)
    spec['healthcheck']['test'] = ['CMD-SHELL', 'echo model store not ready >&2; exit 1']
    with pytest.raises(container.ContainerError) as err:
        container.reconcile(client, spec, pull_policy='never', wait_healthy_timeout=6)
    msg = str(err.value)
    assert 'did not become healthy within 6s' in msg
    assert 'last health check (exit 1): model store not ready' in msg
    assert err.value.details['health_output'] == 'model store not ready'
    assert err.value.details['logs'] and 'last log lines: ' in msg
    args = dict(image=OLLAMA_DOUBLE, pull='never', gpu_facts=CPU, healthcheck=FAST)

    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)
    try:
        busy, warnings = run_module(ollama_container, dict(args, name='ragops-ut-ollama-busy', publish=True,
                                                           port=sock.getsockname()[1]))
    finally:
        sock.close()
    assert busy['failed'] and busy['msg'].startswith('port: 127.0.0.1:')
    with pytest.raises(docker.errors.NotFound):
        client.inspect_container('ragops-ut-ollama-busy')


def test_unpullable_image_has_registry_error(api):
    result, warnings = run_module(ollama_container, dict(name='ragops-ut-nopull', image='127.0.0.1:5000/ragops-ut/none:1',
                                                         gpu_facts=CPU, port=free_port()))
    assert result['failed'] and result['msg'].startswith('image: cannot pull 127.0.0.1:5000/ragops-ut/none:1: ')
    assert 'unknown' in result['msg'] or 'not found' in result['msg']


def test_pgvector_password_hidden_setting_recreates_data_kept(api, tmp_path):
    client, created = api
    name = 'ragops-ut-pgvector'
    created.append(name)
    secret = 'ut-s3cret-%d' % os.getpid()
    args = dict(name=name, image=PGVECTOR, pull='never', port=free_port(), user='rag', database='ragdb',
                password=secret, password_file=str(tmp_path / 'pw'), shared_buffers='64MB', healthcheck=FAST,
                wait_healthy_timeout=120)
    result, warnings = run_module(pgvector_container, args)
    assert result.get('msg') is None and result['container']['health'] == 'healthy'
    assert oct(os.stat(args['password_file']).st_mode & 0o777) == '0o600'
    subprocess.run(['docker', 'exec', name, 'psql', '-U', 'rag', '-d', 'ragdb', '-c', 'CREATE TABLE kept (id int)'],
                   check=True, capture_output=True)
    assert secret not in repr(client.inspect_container(name))
    assert secret not in client.logs(name).decode('utf-8', 'replace')

    again, warnings = run_module(pgvector_container, args)
    assert not again['changed']

    changed, warnings = run_module(pgvector_container, dict(args, work_mem='8MB'))
    assert changed['actions'] == ['recreate: command changed'] and changed['container']['health'] == 'healthy'
    out = subprocess.run(['docker', 'exec', name, 'psql', '-U', 'rag', '-d', 'ragdb', '-Atc', "SELECT to_regclass('kept')"],
                         check=True, capture_output=True, text=True)
    assert out.stdout.strip() == 'kept'
    assert 'work_mem=8MB' in client.inspect_container(name)['Config']['Cmd']
    run_module(pgvector_container, dict(args, state='absent', purge=True))


def test_both_services_on_a_shared_network_without_published_ports(api, tmp_path):
    """README's "shared network" example: publish false + network; an application container on
    that network reaches both services by name, and the host has no port for either."""
    client, created = api
    network = 'ragops-ut-rag-%d' % os.getpid()
    secret = 'ut-net-%d' % os.getpid()
    pg, ollama = 'ragops-ut-pg-net', 'ragops-ut-ollama-net'
    created.extend([pg, ollama])
    try:
        pg_result, warnings = run_module(pgvector_container, dict(
            name=pg, image=PGVECTOR, pull='never', publish=False, network=network, user='rag', database='ragdb',
            password=secret, password_file=str(tmp_path / 'pw'), healthcheck=FAST, wait_healthy_timeout=120))
        assert pg_result.get('msg') is None and 'create network %s' % network in pg_result['actions']
        ol_result, warnings = run_module(ollama_container, dict(
            name=ollama, image=OLLAMA_DOUBLE, pull='never', publish=False, network=network, gpu_facts=CPU,
            healthcheck=FAST, wait_healthy_timeout=60))
        assert ol_result.get('msg') is None and ol_result['container']['health'] == 'healthy'
        for name in (pg, ollama):
            info = client.inspect_container(name)
            assert not info['HostConfig']['PortBindings'] and not any(info['NetworkSettings']['Ports'].values())
            assert list(info['NetworkSettings']['Networks']) == [network]
        app = subprocess.run(
            ['docker', 'run', '--rm', '--network', network, '-e', 'PGPASSWORD=' + secret, '--entrypoint', 'bash', PGVECTOR, '-c',
             'psql -h %s -U rag -d ragdb -tAc "SELECT 1" && exec 3<>/dev/tcp/%s/11434 && '
             'printf "GET /api/version HTTP/1.0\\r\\nHost: ollama\\r\\n\\r\\n" >&3 && cat <&3' % (pg, ollama)],
            capture_output=True, text=True, timeout=120, check=False)  # the return code is asserted below, with stderr
        assert app.returncode == 0, app.stderr
        assert app.stdout.splitlines()[0] == '1' and '"version":"0.33.0"' in app.stdout.replace(' ', '')
    finally:
        # Before the api fixture's teardown: a network with containers attached cannot be removed.
        for name in (pg, ollama):
            try:
                client.remove_container(name, force=True)
            except docker.errors.NotFound:
                pass
        client.remove_network(network)


# ---------------------------------------------------------------------------------------------
# The ollama_container action plugin against this engine: the local connection, this Python (which
# has the docker SDK) as the host's, its script really run. Only _execute_module is a stand-in: it
# records the call and runs the module in-process, printing what its exit_json prints.


def make_action(plugin, module, args, check_mode=False, diff=False):
    task = Task()
    task.args = copy.deepcopy(args)
    task.check_mode = check_mode
    task.diff = diff
    play_context = PlayContext()
    connection = connection_loader.get('local', play_context, None)
    connection.set_options(direct={'pipelining': True})
    loader = DataLoader()
    action = plugin.ActionModule(task, connection, play_context, loader=loader,
                                 templar=Templar(loader=loader), shared_loader_obj=None)
    action._load_name = plugin.MODULE_NAME
    calls = []

    def execute_module(module_name=None, module_args=None, task_vars=None, wrap_async=False):
        calls.append(dict(module_name=module_name, module_args=copy.deepcopy(module_args)))
        return printed_result(module, module_args, check_mode=check_mode, diff=diff)
    action._execute_module = execute_module
    action._low_level_execute_command = mock.Mock(wraps=action._low_level_execute_command)
    return action, calls


def warning_texts(result):
    return [w if isinstance(w, str) else w['event']['msg'] for w in result.get('warnings') or []]


@pytest.mark.parametrize('check_mode, diff', [(False, False), (True, True)], ids=['run', 'check-diff'])
def test_ollama_action_plugin_answers_a_converged_container_and_runs_the_module_on_drift(api, check_mode, diff):
    client, created = api
    name = 'ragops-ut-ollama-fast'
    created.append(name)
    args = dict(name=name, image=OLLAMA_DOUBLE, pull='never', port=free_port(), gpu_facts=CPU, num_parallel=2,
                healthcheck=FAST, wait_healthy_timeout=60)
    first = printed_result(ollama_container, args)
    assert first['changed'] and first['container']['health'] == 'healthy', first

    action, calls = make_action(ollama_action, ollama_container, args, check_mode=check_mode, diff=diff)
    started = time.monotonic()
    result = action.run(task_vars=ACTION_TASK_VARS)
    print('ollama_container action run() on a converged container: %.3f s' % (time.monotonic() - started))
    assert calls == [] and action._low_level_execute_command.call_count == 1
    expected = printed_result(ollama_container, args, check_mode=check_mode, diff=diff)
    assert {k: v for k, v in result.items() if k != 'warnings'} == {k: v for k, v in expected.items() if k != 'warnings'}
    assert warning_texts(result) == warning_texts(expected) and warning_texts(result)[0].startswith('gpu: auto: ')

    changed = dict(args, num_parallel=3)
    action, calls = make_action(ollama_action, ollama_container, changed, check_mode=check_mode, diff=diff)
    result = action.run(task_vars=ACTION_TASK_VARS)
    assert calls == [dict(module_name='ragops.gpu_stack.ollama_container', module_args=changed)]
    assert result['changed'] and result['actions'] == ['recreate: env OLLAMA_NUM_PARALLEL changed']


ACTION_TASK_VARS = {'inventory_hostname': 'localhost', 'ansible_python_interpreter': sys.executable}


@pytest.mark.parametrize('check_mode, diff', [(False, False), (True, True)], ids=['run', 'check-diff'])
def test_pgvector_action_plugin_answers_a_converged_container_and_runs_the_module_on_drift(api, tmp_path, check_mode, diff):
    client, created = api
    name = 'ragops-ut-pgvector-fast'
    created.append(name)
    secret = 'ut-fast-%d' % os.getpid()
    args = dict(name=name, image=PGVECTOR, pull='never', port=free_port(), user='rag', database='ragdb',
                password=secret, password_file=str(tmp_path / 'secrets' / 'pw'), shared_buffers='64MB',
                healthcheck=FAST, wait_healthy_timeout=120)
    first = printed_result(pgvector_container, args)
    assert first['changed'] and first['container']['health'] == 'healthy', first

    action, calls = make_action(pgvector_action, pgvector_container, args, check_mode=check_mode, diff=diff)
    started = time.monotonic()
    result = action.run(task_vars=ACTION_TASK_VARS)
    print('pgvector_container action run() on a converged container: %.3f s' % (time.monotonic() - started))
    assert calls == [] and action._low_level_execute_command.call_count == 1
    assert result == printed_result(pgvector_container, args, check_mode=check_mode, diff=diff)
    assert result['changed'] is False and secret not in repr(result)
    in_data = action._low_level_execute_command.call_args.kwargs['in_data']
    assert secret.encode() not in in_data

    changed = dict(args, password=secret + '-new')
    action, calls = make_action(pgvector_action, pgvector_container, changed, check_mode=check_mode, diff=diff)
    result = action.run(task_vars=ACTION_TASK_VARS)
    assert calls == [dict(module_name='ragops.gpu_stack.pgvector_container', module_args=changed)]
    assert result['changed'] and result['actions'] == ['write password file %s' % args['password_file']]
