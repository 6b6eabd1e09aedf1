# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ollama_models role's seeding, run by ansible-playbook on two inventory hosts of this
machine (local connection), each with its own Ollama double (NOT Ollama) and model store: a
blob damaged in the controller's cache itself is found by the host that receives it, removed
from the cache too, and fetched again from the seed host on the next run; nothing is registered
from it. The Molecule ``models`` scenario covers the rest of seeding on real hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.ragops.gpu_stack.tests.unit.world.conftest import spawn_double

REPO = Path(__file__).resolve().parents[3]
MANIFEST = 'manifests/registry.ollama.ai/library/all-minilm/latest'


@pytest.fixture
def fleet(tmp_path):
    doubles = [spawn_double(tmp_path / ('h%d' % index) / 'models', tmp_path / ('h%d.log' % index)) for index in range(2)]
    yield tmp_path, doubles
    for double in doubles:
        double.stop()


def play(tmp_path, doubles):
    hosts = {'h%d' % index: {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                             'ollama_models_api_url': double.url, 'ollama_models_store': str(double.models)}
             for index, double in enumerate(doubles)}
    inventory = {'all': {'hosts': hosts, 'vars': {
        'ollama_models_list': ['all-minilm'], 'ollama_models_seed': True, 'ollama_models_seed_host': 'h0',
        'ollama_models_seed_cache': str(tmp_path / 'cache')}}}
    (tmp_path / 'hosts.json').write_text(json.dumps(inventory), encoding='utf-8')
    (tmp_path / 'play.yml').write_text(
        '- hosts: all\n  gather_facts: false\n  roles: [ragops.gpu_stack.ollama_models]\n', encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH=str(REPO / '.cache' / 'collections'))
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i',
                           str(tmp_path / 'hosts.json'), str(tmp_path / 'play.yml')],
                          env=env, capture_output=True, text=True, check=False, cwd=str(tmp_path))


def listed(double):
    return {m['name']: m['digest'] for m in double.get('/api/tags').json()['models']}


def test_a_blob_damaged_in_the_cache_is_removed_there_and_fetched_again(fleet):
    tmp_path, (seed, other) = fleet
    first = play(tmp_path, [seed, other])
    assert first.returncode == 0, first.stdout[-3000:]
    assert listed(other) == listed(seed) and 'all-minilm:latest' in listed(other)

    # The model layer's copy in the cache keeps its size but not its bytes; the other host loses the model.
    layer = json.loads((tmp_path / 'cache' / MANIFEST).read_text(encoding='utf-8'))['layers'][0]['digest']
    cached = tmp_path / 'cache' / 'blobs' / layer.replace(':', '-')
    data = bytearray(cached.read_bytes())
    data[100] ^= 0xFF
    cached.write_bytes(bytes(data))
    assert other.delete('all-minilm').status_code == 200
    upstream_before = seed.stats()['manifest_requests']

    refused = play(tmp_path, [seed, other])
    assert refused.returncode != 0
    assert 'The cache held the same damaged bytes, so its copies were removed too: blobs/%s' % layer.replace(':', '-') \
        in refused.stdout, refused.stdout[-3000:]
    assert 'all-minilm:latest' not in listed(other)  # never registered from the damaged blob
    assert not cached.exists()

    repaired = play(tmp_path, [seed, other])
    assert repaired.returncode == 0, repaired.stdout[-3000:]
    assert listed(other) == listed(seed)
    assert cached.exists() and cached.read_bytes() != bytes(data)
    assert seed.stats()['manifest_requests'] == upstream_before  # fetched from the seed host, not the internet
