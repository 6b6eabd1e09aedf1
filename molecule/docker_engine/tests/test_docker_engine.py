"""The docker_engine role on a fresh Debian 12 host: Debian's docker.io installed and running
the merged daemon.json (someone else's keys kept), a user in the docker group, the Python SDK,
images pulled through the test world's registry by the names users type, and no dockerd
restart when the role runs again."""
from __future__ import annotations

import json

import pytest

IMAGE = 'ollama/ollama:0.33.0'
MIRROR = 'http://registry.local:5000/'
REGISTRY = 'registry.local:5000'
RUNS = '/var/tmp/ragops-docker-engine-runs'


def as_user(command):
    return f"runuser -u someuser -- {command}"


@pytest.fixture(scope='module')
def docker_info(host):
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


@pytest.fixture(scope='module')
def daemon_json(host):
    return json.loads(host.file('/etc/docker/daemon.json').content_string)


@pytest.fixture(scope='module')
def image(host):
    """The stand-in, pulled by its user-facing name as the user the role let in."""
    host.check_output(as_user(f'docker pull {IMAGE}'))
    return IMAGE


def test_docker_service_is_running_and_enabled(host):
    docker = host.service('docker')
    assert docker.is_running
    assert docker.is_enabled


def test_engine_is_debians_docker_io(host):
    assert host.package('docker.io').is_installed


def test_running_daemon_has_live_restore(docker_info):
    assert docker_info['LiveRestoreEnabled'] is True


def test_running_daemon_keeps_the_log_driver_someone_else_chose(docker_info):
    assert docker_info['LoggingDriver'] == 'local'


def test_running_daemon_pulls_through_the_registry_mirror(docker_info):
    registry = docker_info['RegistryConfig']
    assert registry['Mirrors'] == [MIRROR]
    assert registry['IndexConfigs'][REGISTRY]['Secure'] is False


def test_daemon_json_keeps_keys_the_role_does_not_manage(daemon_json):
    assert daemon_json['log-level'] == 'warn'
    # The role's logging defaults (json-file with rotation) are a group it applies only where
    # the file has no log driver: someone else's choice is kept whole, with no json-file options.
    assert daemon_json['log-driver'] == 'local'
    assert 'log-opts' not in daemon_json
    assert daemon_json['live-restore'] is True
    assert daemon_json['registry-mirrors'] == ['http://registry.local:5000']
    assert daemon_json['insecure-registries'] == [REGISTRY]
    assert 'data-root' not in daemon_json


def test_user_is_in_the_docker_group_and_keeps_its_other_groups(host):
    groups = host.user('someuser').groups
    assert 'docker' in groups
    assert 'users' in groups


def test_user_can_talk_to_the_engine(host):
    out = host.check_output(as_user("docker version --format '{{.Server.Version}}'"))
    assert out.startswith('20.10.')


def test_python_docker_sdk_talks_to_the_engine(host):
    out = host.check_output("python3 -c 'import docker, requests; print(docker.from_env().ping())'")
    assert out == 'True'


def test_image_came_from_the_registry_under_its_user_facing_name(host, image):
    info = json.loads(host.check_output(f'docker image inspect {image}'))[0]
    # A pull records the repository digest; an image loaded by hand would have none.
    assert any(d.startswith('ollama/ollama@sha256:') for d in info['RepoDigests']), info['RepoDigests']


def test_user_runs_a_container_pulled_through_the_registry(host, image):
    out = host.check_output(as_user(f'docker run --rm {image} --version'))
    # Without a server to ask, ollama (and its stand-in) reports the client's version only.
    assert 'client version is 0.33.0' in out


def test_new_containers_get_the_log_driver_someone_else_chose(host, image):
    # The running daemon reads the kept log driver: containers created now use it.
    name = 'docker-engine-logconfig'
    host.run(f'docker rm -f {name}')
    host.check_output(f'docker create --name {name} {image}')
    try:
        log_config = json.loads(host.check_output(f"docker inspect --format '{{{{json .HostConfig.LogConfig}}}}' {name}"))
    finally:
        host.run(f'docker rm -f {name}')
    assert log_config == {'Type': 'local', 'Config': {}}


def test_second_converge_did_not_restart_dockerd(dockerd_not_restarted):
    dockerd_not_restarted(RUNS)


def test_containers_keep_running_while_dockerd_restarts(host, image):
    # What live-restore is for. Last in this file: it restarts dockerd.
    name = 'docker-engine-live-restore'
    host.run(f'docker rm -f {name}')
    host.check_output(f'docker run -d --name {name} {image}')
    try:
        before = host.check_output(f"docker inspect --format '{{{{.State.Pid}}}} {{{{.State.StartedAt}}}}' {name}")
        host.check_output('systemctl restart docker')
        assert host.service('docker').is_running
        after = host.check_output(f"docker inspect --format '{{{{.State.Running}}}} {{{{.State.Pid}}}} {{{{.State.StartedAt}}}}' {name}")
        assert after == 'true ' + before
    finally:
        host.run(f'docker rm -f {name}')


def test_check_mode_on_the_fresh_host_reported_changes_and_wrote_nothing(host):
    report = json.loads(host.file('/var/tmp/ragops-check-mode-report.json').content_string)
    # daemon.json, the package database and the group file were byte-identical afterwards...
    assert report['before'] == report['after']
    assert all(report['before'])
    # ...while the run said what a real one would change.
    assert report['packages_would_install'] is True
    assert report['daemon_json_would_change'] is True
    would_be = report['daemon_json_would_be']
    assert would_be['live-restore'] is True
    assert would_be['registry-mirrors'] == ['http://registry.local:5000']
    assert would_be['log-level'] == 'warn'  # the foreign key, kept in the plan too
