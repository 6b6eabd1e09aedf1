"""The stack as site.yml builds it on a CPU host: pgvector and Ollama healthy, on localhost only,
answering through their published ports, the password out of docker inspect; then what
side_effect.yml did to it, from its evidence in /var/tmp/stack-side-effect.json."""
from __future__ import annotations

import json

import pytest

# The converge's password (molecule.yml); side_effect.yml's -vvv run changed it to PASSWORD.
OLD_PASSWORD = 'stack-test-only-password'
PASSWORD = 'stack-test-new-password'
ROWS = 25


def inspect(host, name):
    return json.loads(host.check_output(f'docker inspect {name}'))[0]


@pytest.fixture(scope='module')
def side_effect(host):
    return json.loads(host.file('/var/tmp/stack-side-effect.json').content_string)


def psql_over_network(host, password):
    """psql as an application would connect: over TCP (scram-sha-256), not the trusted local socket."""
    return host.run(
        f"docker exec -e PGPASSWORD={password} pgvector "
        "sh -c 'psql -h \"$(hostname -i)\" -U rag -d rag -tAc \"SELECT 1\"'"
    )


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
    bad = psql_over_network(host, 'wrong')
    assert bad.rc != 0 and 'password authentication failed' in bad.stderr
    ok = psql_over_network(host, PASSWORD)
    assert ok.rc == 0 and ok.stdout.strip() == '1', ok.stderr


def test_pgvector_refuses_the_old_password_after_the_change(host):
    # The image reads POSTGRES_PASSWORD_FILE only when it creates the cluster; the role's
    # ALTER ROLE is what retired the old password.
    old = psql_over_network(host, OLD_PASSWORD)
    assert old.rc != 0 and 'password authentication failed' in old.stderr


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
    assert PASSWORD not in raw and OLD_PASSWORD not in raw
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


def _ids(lines):
    """['/ollama <id> <started>', ...] -> {'ollama': (id, started), ...}"""
    return {name.lstrip('/'): (cid, started) for name, cid, started in (line.split() for line in lines)}


def test_check_mode_reports_the_drift_and_touches_nothing(side_effect):
    check = side_effect['check_mode']
    assert check['ollama'] == {'changed': True, 'actions': ['recreate: env OLLAMA_NUM_PARALLEL changed']}
    assert check['pgvector'] == {'changed': True, 'actions': ['recreate: command changed']}
    before, after = _ids(check['before']), _ids(check['after'])
    assert set(before) == {'ollama', 'pgvector'}
    assert after == before  # same containers, not restarted
    assert check['live'] == ['4', '32MB']  # OLLAMA_NUM_PARALLEL and work_mem as they were


@pytest.mark.parametrize('option, words', [
    ('ollama_gpu', ['ollama_gpu', 'intel', 'must be one of: auto, nvidia, amd, none']),
    ('ollama_gpus', ["gpus: ['0'] selects GPUs but this container runs on the CPU", 'leave gpus at all',
                     '[set by the role variable ollama_gpus]']),
    ('pgvector_port', ['port: 127.0.0.1:11434 is not free on this host', 'choose another port',
                       '[set by the role variable pgvector_port]']),
    ('ollama_image', ['image: cannot pull registry.local:5000/ollama/ollama:0.0.0-missing: ',
                      'manifest unknown',  # the registry's own words
                      'check the image name and tag', '[set by the role variable ollama_image]']),
])
def test_bad_input_fails_naming_the_option_and_the_fix(side_effect, option, words):
    message = side_effect['bad_input']['messages'][option]
    for word in words:
        assert word in message


def test_bad_input_left_the_running_containers_alone(side_effect):
    bad = side_effect['bad_input']
    assert set(bad['messages']) == {'ollama_gpu', 'ollama_gpus', 'pgvector_port', 'ollama_image'}
    assert _ids(bad['after']) == _ids(bad['before'])
    assert set(_ids(bad['before'])) == {'ollama', 'pgvector'}


def test_unknown_gpu_stack_gpu_vendor_fails_site_yml_in_preflight(side_effect):
    vendor = side_effect['gpu_vendor']
    assert vendor['rc'] == 2
    assert any("gpu_stack_gpu_vendor is 'intel'; use auto (detect), nvidia, amd or none" in line
               for line in vendor['message'])
    # site.yml stopped in its preflight, after the read-only fact gathering: no Docker layer, no role
    assert [t.split(']')[0] for t in vendor['tasks']] == [
        "TASK [Read the host's GPUs and the few facts the report and the Docker layer need",
        'TASK [Refuse hosts this collection does not support, and an unknown GPU vendor']
    assert len(vendor['recap']) == 1 and 'changed=0' in vendor['recap'][0] and 'failed=1' in vendor['recap'][0]


def test_vvv_run_shows_the_pgvector_tasks_and_never_a_password(side_effect):
    vvv = side_effect['vvv']
    # the capture is the real thing: -vvv output of both pgvector modules, in a run that changed them
    assert vvv['rc'] == 0
    assert vvv['modules_run'] == ['pgvector_container.py', 'pgvector_database.py']
    assert any('Run the pgvector container' in t for t in vvv['pgvector_tasks'])
    assert any('Ensure the database' in t for t in vvv['pgvector_tasks'])
    assert len(vvv['recap']) == 1 and 'changed=2' in vvv['recap'][0] and 'failed=0' in vvv['recap'][0]
    assert vvv['password_lines'] == []


def test_changed_setting_recreated_pgvector_and_kept_the_rows(host, side_effect):
    change = side_effect['pgvector_change']
    rows_before, id_before = change['before']
    rows_after, id_after, work_mem = change['after']
    assert rows_before == rows_after == str(ROWS)
    assert id_after != id_before
    assert work_mem == '64MB'
    assert inspect(host, 'pgvector')['Id'] == id_after
    out = host.check_output("docker exec pgvector psql -U rag -d rag -tAc 'SHOW work_mem; SELECT count(*) FROM chunks'")
    assert out.strip().splitlines() == ['64MB', str(ROWS)]
