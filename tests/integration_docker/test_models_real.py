# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model modules against an Ollama container in the host's real dockerd (the test world's
Ollama double image, NOT Ollama): models pulled into the container's named volume survive a
recreate and are not fetched again, and a model seeded into that volume's files is listed by the
running server at once. The double's upstream counters (GET /_double/stats) prove the network claims.

Containers and volumes are named ragops-ut-models-*, and removed afterwards. Run:
    .venv/bin/python -m pytest tests/integration_docker/test_models_real.py -q
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '.cache', 'collections'))

import docker  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.ragops.gpu_stack.plugins.module_utils import model_store  # noqa: E402
from ansible_collections.ragops.gpu_stack.plugins.modules import ollama_container, ollama_model, ollama_model_import  # noqa: E402
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, run_module  # noqa: E402

OLLAMA_DOUBLE = 'ragops-world/ollama-double:0.33.0'
FAST = dict(interval='1s', timeout='3s', retries=3, start_period='0s')
CPU = {'gpu_vendor': 'none', 'gpu_usable': False}


@pytest.fixture
def engine():
    client = docker.APIClient(version='auto')
    names = []
    yield client, names
    for name in names:
        try:
            client.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
        try:
            client.remove_volume(name, force=True)
        except docker.errors.NotFound:
            pass


def start_ollama(names, name, **extra):
    names.append(name)
    args = dict(name=name, image=OLLAMA_DOUBLE, pull='never', port=free_port(), gpu_facts=CPU, healthcheck=FAST,
                wait_healthy_timeout=60, **extra)
    result, dummy = run_module(ollama_container, args)
    assert result.get('msg') is None and result['container']['health'] == 'healthy', result.get('msg')
    return args, 'http://127.0.0.1:%d' % args['port']


def upstream(url):
    return requests.get(url + '/_double/stats', timeout=10).json()


def listed(url):
    return {m['name']: m['digest'] for m in requests.get(url + '/api/tags', timeout=10).json()['models']}


def test_models_in_the_volume_survive_a_recreate_and_are_not_fetched_again(engine):
    client, names = engine
    args, url = start_ollama(names, 'ragops-ut-models-keep', num_parallel=2)
    pulled, warnings = run_module(ollama_model, dict(models=['all-minilm', 'qwen2.5:0.5b'], api_url=url))
    assert pulled.get('msg') is None and pulled['changed'] and warnings == []
    assert [m['action'] for m in pulled['models']] == ['pulled', 'pulled']
    digests = listed(url)
    assert sorted(digests) == ['all-minilm:latest', 'qwen2.5:0.5b']

    # A changed OLLAMA_* setting recreates the container on the same named volume.
    recreated, dummy = run_module(ollama_container, dict(args, num_parallel=3))
    assert recreated['actions'] == ['recreate: env OLLAMA_NUM_PARALLEL changed']
    # The new server's counters start at zero: any request from here on is the module's.
    assert upstream(url)['manifest_requests'] == 0
    again, warnings = run_module(ollama_model, dict(models=['all-minilm:latest', 'QWEN2.5:0.5b'], api_url=url))
    assert again.get('msg') is None and not again['changed']
    assert [m['action'] for m in again['models']] == ['present', 'present']
    assert listed(url) == digests
    stats = upstream(url)
    assert stats['manifest_requests'] == 0 and stats['bytes_transferred'] == 0


def test_a_model_seeded_into_the_volume_is_listed_without_a_restart_and_pulls_nothing(engine, tmp_path):
    client, names = engine
    dummy, source_url = start_ollama(names, 'ragops-ut-models-source')
    dummy, target_url = start_ollama(names, 'ragops-ut-models-target')
    pulled, dummy = run_module(ollama_model, dict(name='nomic-embed-text', api_url=source_url))
    assert pulled['changed']
    started_at = client.inspect_container('ragops-ut-models-target')['State']['StartedAt']

    # What seeding carries: the source's manifest and the blobs it names, copied into the target's
    # volume (the files, as fetch and copy would move them), then registered by ollama_model_import.
    source = os.path.join(client.inspect_volume('ragops-ut-models-source')['Mountpoint'], 'models')
    target = os.path.join(client.inspect_volume('ragops-ut-models-target')['Mountpoint'], 'models')
    manifest_path = 'manifests/registry.ollama.ai/library/nomic-embed-text/latest'
    with open(os.path.join(source, manifest_path), encoding='utf-8') as handle:
        manifest = handle.read()
    for blob in model_store.manifest_blobs(manifest):
        shutil.copyfile(os.path.join(source, blob['path']), os.path.join(target, blob['path']))

    imported, warnings = run_module(ollama_model_import, dict(
        path=target, models=[dict(name='nomic-embed-text', manifest=manifest)], api_url=target_url))
    assert imported.get('msg') is None and imported['changed'] and warnings == []
    assert listed(target_url) == listed(source_url)
    assert client.inspect_container('ragops-ut-models-target')['State']['StartedAt'] == started_at

    present, dummy = run_module(ollama_model, dict(name='nomic-embed-text', api_url=target_url))
    assert not present['changed'] and present['models'][0]['action'] == 'present'
    stats = upstream(target_url)
    assert stats['manifest_requests'] == 0 and stats['bytes_transferred'] == 0
