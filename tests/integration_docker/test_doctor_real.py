# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doctor against the host's real dockerd: the test world's pgvector image (real PostgreSQL and
pgvector) and its Ollama double (NOT Ollama; it embeds with hashed words, deterministically), as
a CPU host. The doctor is green with the RAG round trip and leaves no trace (the user's rows and
tables as they were, no probe container); a wrong embeddings table and a stopped pgvector fail it
with their cause; playbooks/verify.yml reports, writes one JSON file per run and fails the host.

Containers and volumes are named ragops-ut-doctor-*, and removed afterwards. Needs
`tests/world/world.sh up`. Run:
    .venv/bin/python -m pytest tests/integration_docker/test_doctor_real.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.ragops.gpu_stack.plugins.modules import (
    ollama_container,
    ollama_model,
    pgvector_container,
    pgvector_database,
    stack_doctor,
)
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, run_module

docker = pytest.importorskip('docker')

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
OLLAMA_DOUBLE = 'ragops-world/ollama-double:0.33.0'
PGVECTOR = 'ragops-world/pgvector:pg17'
FAST = dict(interval='1s', timeout='3s', retries=3, start_period='0s')
CPU = {'gpu_vendor': 'none', 'gpu_usable': False, 'gpu_count': 0, 'host': {'memory_total_mib': 16384}}
PREFIX = 'ragops-ut-doctor-'


def psql(client, name, sql):
    code, (out, err) = client.containers.get(name).exec_run(['psql', '-U', 'rag', '-d', 'rag', '-qAtc', sql], demux=True)
    assert code == 0, err
    return (out or b'').decode().strip()


@pytest.fixture(name='stack', scope='module')
def fixture_stack(tmp_path_factory):
    """pgvector with a 768-dimension embeddings table holding one user row, and the Ollama double with
    nomic-embed-text (768) and all-minilm (384)."""
    try:
        client = docker.from_env()
        client.ping()
        for image in (OLLAMA_DOUBLE, PGVECTOR):
            client.images.get(image)
    except docker.errors.DockerException as exc:
        pytest.skip('the test world is not up (tests/world/world.sh up): %s' % exc)
    tmp = tmp_path_factory.mktemp('doctor')
    names = {'ollama': PREFIX + 'ollama', 'pgvector': PREFIX + 'pgvector'}
    ports = {'ollama': free_port(), 'pgvector': free_port()}
    try:
        result, dummy = run_module(pgvector_container, dict(
            name=names['pgvector'], image=PGVECTOR, pull='never', port=ports['pgvector'], user='rag', database='rag',
            password='ut-doctor', password_file=str(tmp / 'pw'), healthcheck=FAST, wait_healthy_timeout=120))
        assert result.get('msg') is None, result.get('msg')
        result, dummy = run_module(pgvector_database, dict(
            container=names['pgvector'], db_user='rag', database='rag', table=dict(name='chunks', dimensions=768)))
        assert result.get('msg') is None, result.get('msg')
        psql(client, names['pgvector'], "INSERT INTO chunks (content, embedding) SELECT 'user row', array_fill(0.5, ARRAY[768])::vector")
        result, dummy = run_module(ollama_container, dict(
            name=names['ollama'], image=OLLAMA_DOUBLE, pull='never', port=ports['ollama'], gpu_facts=CPU, healthcheck=FAST,
            wait_healthy_timeout=60))
        assert result.get('msg') is None, result.get('msg')
        url = 'http://127.0.0.1:%d' % ports['ollama']
        result, dummy = run_module(ollama_model, dict(models=['nomic-embed-text', 'all-minilm'], api_url=url))
        assert result.get('msg') is None, result.get('msg')
        yield dict(client=client, names=names, ports=ports, url=url, tmp=tmp)
    finally:
        api = docker.APIClient(version='auto')
        for name in names.values():
            try:
                api.remove_container(name, force=True, v=True)
            except docker.errors.NotFound:
                pass
        for volume in api.volumes(filters={'name': PREFIX}).get('Volumes') or []:
            if volume['Name'].startswith(PREFIX):
                api.remove_volume(volume['Name'], force=True)


def doctor_args(stack, **extra):
    args = dict(
        gpu_facts=CPU, expected_gpu='auto',
        ollama=dict(name=stack['names']['ollama'], port=stack['ports']['ollama']),
        pgvector=dict(name=stack['names']['pgvector'], database='rag', user='rag', port=stack['ports']['pgvector'],
                      table=dict(name='chunks')),
        models=[dict(name='nomic-embed-text', preload=True), 'all-minilm'])
    args.update(extra)
    return args


def by_id(result):
    return {check['id']: check for check in result['checks']}


def test_a_cpu_host_is_green_with_a_rag_round_trip_that_leaves_no_trace(stack):
    client, pg_name = stack['client'], stack['names']['pgvector']
    tables_before = psql(client, pg_name, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'r'")
    result, warnings = run_module(stack_doctor, doctor_args(stack), check_mode=True)
    assert result.get('msg') is None and result['changed'] is False and warnings == []
    checks = by_id(result)
    assert [c['id'] for c in result['checks']] == [
        'docker', 'daemon_json', 'gpu', 'ollama_container', 'ollama_api', 'ollama_models', 'embedding_model', 'vram',
        'gpu_inference', 'compute_library', 'pgvector_container', 'pgvector_extension', 'pgvector_dimension',
        'rag_round_trip', 'exposure']
    assert result['status'] == 'ok', result['report']
    assert all(c['cause'] is None and c['fix'] is None for c in result['checks'])
    # The double logs `inference compute ... library=cpu` and reports size_vram 0, as Ollama on a CPU.
    assert 'library=cpu' in checks['compute_library']['message']
    assert checks['gpu_inference']['message'] == 'nomic-embed-text:latest 100% CPU'
    assert checks['embedding_model']['message'].startswith('nomic-embed-text:latest (768 dimensions')
    assert checks['pgvector_extension']['message'].startswith('vector 0.8')
    assert 'nearest is sentence 3 (cosine distance 0.0000' in checks['rag_round_trip']['message']
    assert result['host']['inference'] == 'cpu' and result['host']['embedding_dimensions'] == 768
    assert result['report'][0].startswith('ok docker: Docker ')
    # Nothing persists: the user's row is the only one, no table was added, no probe container is left.
    assert psql(client, pg_name, 'SELECT count(*) FROM chunks') == '1'
    assert psql(client, pg_name, "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'r'") == tables_before
    assert not client.containers.list(all=True, filters={'name': 'ragops-doctor-probe-'})


def test_a_table_made_for_another_model_fails_with_its_cause(stack):
    result, dummy = run_module(stack_doctor, doctor_args(
        stack, embedding_model='all-minilm', ollama=dict(name=stack['names']['ollama'], port=stack['ports']['ollama'],
                                                         bind_address='127.0.0.1', publish=True),
        pgvector=dict(name=stack['names']['pgvector'], port=stack['ports']['pgvector'], table=dict(name='chunks'))))
    checks = by_id(result)
    assert result['status'] == 'fail' and result['host']['failed'] == ['pgvector_dimension']
    assert checks['pgvector_dimension']['message'] == \
        'public.chunks.embedding is vector(768) but all-minilm:latest makes 384-dimensional embeddings'
    assert checks['pgvector_dimension']['cause'] == 'the table was made for another embedding model'
    # The round trip itself needs no table of the user's: it passes with the 384-dimension model.
    assert checks['rag_round_trip']['status'] == 'ok' and '(384 dimensions)' in checks['rag_round_trip']['message']


def play(stack, tmp, check=False):
    hosts = {'doctor-host': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
        'gpu_stack_gpu_vendor': 'none', 'gpu_stack_verify_report_dir': str(tmp / 'reports'),
        'ollama_name': stack['names']['ollama'], 'ollama_port': stack['ports']['ollama'],
        'pgvector_name': stack['names']['pgvector'], 'pgvector_port': stack['ports']['pgvector'],
        'pgvector_table': {'name': 'chunks', 'dimensions': 768},
    }}
    (tmp / 'hosts.json').write_text(json.dumps({'all': {'hosts': hosts}}), encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, '.cache', 'collections'))
    argv = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(tmp / 'hosts.json'),
            os.path.join(REPO, 'playbooks', 'verify.yml')] + (['--check'] if check else [])
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd=str(tmp))


def reports(tmp):
    folder = tmp / 'reports'
    return sorted(folder.iterdir()) if folder.exists() else []


def test_verify_playbook_reports_writes_one_json_per_run_and_fails_a_host_with_pgvector_stopped(stack, tmp_path):
    green = play(stack, tmp_path)
    assert green.returncode == 0, green.stdout[-4000:]
    assert 'doctor-host: OK' in green.stdout and 'ok rag_round_trip: 4 sentences embedded' in green.stdout
    (first,) = reports(tmp_path)
    assert first.name.startswith('doctor-') and first.name.endswith('Z.json')
    document = json.loads(first.read_text(encoding='utf-8'))
    assert set(document) == {'timestamp', 'check_mode', 'hosts'} and document['check_mode'] is False
    assert document['hosts']['doctor-host']['status'] == 'ok'
    assert 'rag_round_trip' in [c['id'] for c in document['hosts']['doctor-host']['checks']]

    stack['client'].containers.get(stack['names']['pgvector']).stop(timeout=10)
    try:
        # Check mode reports the failure and fails no host.
        checked = play(stack, tmp_path, check=True)
        assert checked.returncode == 0, checked.stdout[-4000:]
        assert 'FAIL pgvector_container: %s is exited (exit code 0' % stack['names']['pgvector'] in checked.stdout
        failed = play(stack, tmp_path)
        assert failed.returncode == 2, failed.stdout[-4000:]
        assert 'doctor-host is not what the inventory says: pgvector_container: %s is exited' % stack['names']['pgvector'] \
            in failed.stdout.replace('\n', ' ')
        assert 'docker start %s' % stack['names']['pgvector'] in failed.stdout
        third = json.loads(reports(tmp_path)[-1].read_text(encoding='utf-8'))
        assert len(reports(tmp_path)) == 3 and third['hosts']['doctor-host']['status'] == 'fail'
        assert third['hosts']['doctor-host']['host']['failed'] == ['pgvector_container']
    finally:
        container = stack['client'].containers.get(stack['names']['pgvector'])
        container.start()
