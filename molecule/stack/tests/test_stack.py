"""The stack as site.yml builds it on a CPU host: pgvector and Ollama healthy, on localhost only,
answering through their published ports, the password out of docker inspect."""
from __future__ import annotations

import json

import pytest

PASSWORD = 'stack-test-only-password'


def inspect(host, name):
    return json.loads(host.check_output(f'docker inspect {name}'))[0]


@pytest.mark.parametrize('name', ['pgvector', 'ollama'])
def test_container_is_running_and_healthy(host, name):
    state = inspect(host, name)['State']
    assert state['Running'] is True
    assert state['Health']['Status'] == 'healthy'


@pytest.mark.parametrize('port', [5432, 11434])
def test_port_listens_on_localhost_only(host, port):
    assert host.socket(f'tcp://127.0.0.1:{port}').is_listening
    assert not host.socket(f'tcp://0.0.0.0:{port}').is_listening
    assert not host.socket(f'tcp://:::{port}').is_listening


def test_ollama_answers_api_version_through_its_port(host):
    body = host.check_output(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:11434/api/version', timeout=5).read().decode())\""
    )
    assert json.loads(body) == {'version': '0.33.0'}


def test_ollama_has_the_rag_preset_and_health_check(host):
    config = inspect(host, 'ollama')['Config']
    env = dict(e.split('=', 1) for e in config['Env'])
    assert env['OLLAMA_NUM_PARALLEL'] == '4'
    assert env['OLLAMA_MAX_LOADED_MODELS'] == '2'
    assert env['OLLAMA_KEEP_ALIVE'] == '24h'
    assert 'OLLAMA_FLASH_ATTENTION' not in env
    assert 'OLLAMA_KV_CACHE_TYPE' not in env
    assert config['Healthcheck']['Test'] == ['CMD', 'ollama', 'list']
    assert config['Image'] == 'ollama/ollama:0.33.0'


def test_ollama_runs_with_restart_policy_and_log_rotation(host):
    hc = inspect(host, 'ollama')['HostConfig']
    assert hc['RestartPolicy']['Name'] == 'unless-stopped'
    assert hc['LogConfig']['Config'] == {'max-size': '10m', 'max-file': '3'}


def test_pgvector_answers_a_distance_query_through_its_port(host):
    # A throwaway container on the host network: a client that reaches the published port, the
    # password checked (scram-sha-256), as an application on this host would connect.
    out = host.check_output(
        f"docker run --rm --network host -e PGPASSWORD={PASSWORD} --entrypoint psql pgvector/pgvector:pg17 "
        "-h 127.0.0.1 -p 5432 -U rag -d rag -tAc "
        "\"SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector\""
    )
    assert out.strip().splitlines()[-1] == '1'


def test_pgvector_refuses_a_wrong_password_over_the_network(host):
    bad = host.run(
        "docker exec -e PGPASSWORD=wrong pgvector "
        "sh -c 'psql -h \"$(hostname -i)\" -U rag -d rag -tAc \"SELECT 1\"'"
    )
    assert bad.rc != 0 and 'password authentication failed' in bad.stderr
    ok = host.run(
        f"docker exec -e PGPASSWORD={PASSWORD} pgvector "
        "sh -c 'psql -h \"$(hostname -i)\" -U rag -d rag -tAc \"SELECT 1\"'"
    )
    assert ok.rc == 0 and ok.stdout.strip() == '1', ok.stderr


def test_pgvector_has_the_extension_table_and_hnsw_index(host):
    out = host.check_output(
        "docker exec pgvector psql -U rag -d rag -tAc "
        "\"SELECT extversion FROM pg_extension WHERE extname = 'vector'; "
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'chunks' AND indexdef LIKE '%hnsw%'\""
    )
    lines = out.strip().splitlines()
    assert lines[0] == '0.8.0'
    assert 'vector_cosine_ops' in lines[1]


def test_password_is_absent_from_docker_inspect(host):
    raw = host.check_output('docker inspect pgvector')
    assert PASSWORD not in raw
    env = inspect(host, 'pgvector')['Config']['Env']
    assert 'POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password' in env
    assert not any(e.startswith('POSTGRES_PASSWORD=') for e in env)


def test_pgvector_settings_are_the_rag_preset(host):
    out = host.check_output("docker exec pgvector psql -U rag -d rag -tAc 'SHOW maintenance_work_mem; SHOW shared_buffers'")
    assert out.strip().splitlines() == ['1GB', '1GB']


def test_password_file_is_root_only(host):
    f = host.file('/etc/ragops/pgvector/postgres_password')
    assert f.user == 'root' and f.mode == 0o600


def test_side_effect_recreated_ollama_and_kept_the_volume(host):
    ids = json.loads(host.file('/var/tmp/stack-side-effect.json').content_string)
    assert ids['before'] != ids['after']
    assert inspect(host, 'ollama')['Id'] != ids['before']
    assert host.check_output('docker exec ollama cat /root/.ollama/side-effect-marker') == 'kept'
