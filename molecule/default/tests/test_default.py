"""The harness, end to end: a systemd instance's own Docker engine runs both stand-ins,
pulled through the test world's registry by the names users type."""
from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize('image', ['ollama/ollama:0.33.0', 'pgvector/pgvector:pg17'])
def test_image_came_from_the_registry_under_its_user_facing_name(host, image):
    info = json.loads(host.check_output(f'docker image inspect {image}'))[0]
    repo = image.split(':', 1)[0]
    # A pull records the repository digest; an image loaded by hand would have none.
    assert any(d.startswith(repo + '@sha256:') for d in info['RepoDigests']), info['RepoDigests']


def test_engine_pulls_through_the_registry_mirror(host):
    info = json.loads(host.check_output("docker info --format '{{json .RegistryConfig}}'"))
    assert 'http://registry.local:5000/' in info['Mirrors']


@pytest.mark.parametrize('name', ['harness-ollama', 'harness-pgvector'])
def test_stand_in_is_healthy(host, name):
    assert host.docker(name).is_running
    status = host.check_output(f"docker inspect --format '{{{{.State.Health.Status}}}}' {name}")
    assert status == 'healthy'


def test_ollama_double_answers_api_version(host):
    body = host.check_output(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:11434/api/version', timeout=5).read().decode())\""
    )
    assert json.loads(body) == {'version': '0.33.0'}


def test_ollama_port_is_bound_to_localhost_only(host):
    assert host.socket('tcp://127.0.0.1:11434').is_listening
    assert not host.socket('tcp://0.0.0.0:11434').is_listening


def test_pgvector_answers_a_vector_distance_query(host):
    out = host.check_output(
        "docker exec harness-pgvector psql -U rag -d rag -tAc "
        "\"CREATE EXTENSION IF NOT EXISTS vector; SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector\""
    )
    assert out.strip().splitlines()[-1] == '1'


def test_pgvector_checks_the_password_over_the_network(host):
    # Like the official image, loopback inside the container is trusted; a connection to
    # the container's own network address goes through scram-sha-256.
    def login(password):
        return host.run(
            f"docker exec -e PGPASSWORD={password} harness-pgvector "
            "sh -c 'psql -h \"$(hostname -i)\" -U rag -d rag -tAc \"SELECT 1\"'"
        )

    ok = login('harness-only-password')
    assert ok.rc == 0 and ok.stdout.strip() == '1', ok.stderr
    bad = login('wrong')
    assert bad.rc != 0 and 'password authentication failed' in bad.stderr


def test_fresh_host_got_the_logging_defaults_and_kept_the_registry_wiring(host):
    # daemon.json held only the registry wiring (prepare); site.yml's docker_engine layer
    # added its logging defaults, live-restore, and kept the wiring.
    daemon = json.loads(host.file('/etc/docker/daemon.json').content_string)
    assert daemon['log-driver'] == 'json-file'
    assert daemon['log-opts'] == {'max-size': '10m', 'max-file': '3'}
    assert daemon['live-restore'] is True
    assert daemon['registry-mirrors'] == ['http://registry.local:5000']
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info['LoggingDriver'] == 'json-file' and info['LiveRestoreEnabled'] is True
