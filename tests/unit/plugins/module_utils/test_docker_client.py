# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""connect(): one round trip to dockerd, and a clear failure when it does not answer."""

from __future__ import annotations

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import docker_client

docker = pytest.importorskip('docker')


class Failed(Exception):
    """fail_json was called; args[0] is its keyword arguments."""


class Module:
    def __init__(self, **params):
        self.params = dict(dict(docker_host=None, docker_timeout=60), **params)

    def fail_json(self, **kwargs):
        raise Failed(kwargs)


class RecordingAPIClient:
    """Stands in for docker.APIClient: records its construction and every call made on it."""

    calls = []

    def __init__(self, **kwargs):
        # The real client asks GET /version here when version='auto'.
        RecordingAPIClient.calls.append(('construct', kwargs.get('version'), kwargs.get('base_url')))

    def __getattr__(self, name):
        def record(*args, **kwargs):
            RecordingAPIClient.calls.append((name, args, kwargs))
        return record


def test_connect_makes_no_call_beyond_the_version_negotiation(monkeypatch):
    RecordingAPIClient.calls = []
    monkeypatch.setattr(docker, 'APIClient', RecordingAPIClient)
    monkeypatch.delenv('DOCKER_HOST', raising=False)
    client = docker_client.connect(Module(docker_host='unix:///run/other.sock'))
    assert isinstance(client, RecordingAPIClient)
    assert RecordingAPIClient.calls == [('construct', 'auto', 'unix:///run/other.sock')]


def test_connect_fails_clearly_when_dockerd_does_not_answer(tmp_path):
    """A real client on a socket nobody listens on: the version negotiation is what notices."""
    with pytest.raises(Failed) as failed:
        docker_client.connect(Module(docker_host='unix://%s' % (tmp_path / 'no-dockerd.sock'), docker_timeout=5))
    msg = failed.value.args[0]['msg']
    assert msg.startswith('docker_host: cannot reach dockerd at unix://') and 'no-dockerd.sock' in msg
    assert 'API version' in msg
