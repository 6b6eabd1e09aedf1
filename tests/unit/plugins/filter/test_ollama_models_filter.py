# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.filter import ollama_models
from ansible_collections.ragops.gpu_stack.tests.unit.ollama_store import pulled_store

FILTERS = ollama_models.FilterModule().filters()
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))


@pytest.fixture(scope='module')
def pulled(tmp_path_factory):
    return pulled_store(tmp_path_factory.mktemp('pulled'), models=('all-minilm',))


MANIFEST = 'manifests/registry.ollama.ai/library/all-minilm/latest'


@pytest.mark.parametrize('name, path', [
    ('all-minilm', 'manifests/registry.ollama.ai/library/all-minilm/latest'),
    ('llama3.2:3b', 'manifests/registry.ollama.ai/library/llama3.2/3b'),
    ('mattw/pygmalion', 'manifests/registry.ollama.ai/mattw/pygmalion/latest'),
    ('hf.co/org/repo:Q4_K_M', 'manifests/hf.co/org/repo/Q4_K_M'),
])
def test_manifest_path_is_where_ollama_keeps_the_manifest(name, path):
    assert FILTERS['ollama_manifest_path'](name) == path


def test_manifest_path_of_a_pulled_model_exists_in_its_store(pulled):
    assert (pulled / FILTERS['ollama_manifest_path']('all-minilm')).is_file()


def test_an_invalid_name_is_a_filter_error_saying_why():
    with pytest.raises(AnsibleFilterError, match='ollama_manifest_path: invalid model name .*hf.co/repo'):
        FILTERS['ollama_manifest_path']('hf.co/repo')


def test_manifest_blobs_are_the_files_of_the_pulled_model(pulled):
    text = (pulled / MANIFEST).read_text(encoding='utf-8')
    blobs = FILTERS['ollama_manifest_blobs'](text)
    assert blobs == FILTERS['ollama_manifest_blobs'](json.loads(text))
    assert blobs[0]['digest'] == json.loads(text)['config']['digest']
    assert len(blobs) == 1 + len(json.loads(text)['layers'])
    for blob in blobs:
        assert blob['path'] == 'blobs/' + blob['digest'].replace(':', '-')
        assert (pulled / blob['path']).stat().st_size == blob['size']


def test_a_bad_manifest_is_a_filter_error_saying_why():
    with pytest.raises(AnsibleFilterError, match='ollama_manifest_blobs: the manifest is not JSON'):
        FILTERS['ollama_manifest_blobs']('{"config"')


def test_missing_blobs_are_those_absent_or_of_another_size(pulled, tmp_path):
    cache = tmp_path / 'cache'
    shutil.copytree(pulled, cache)
    blobs = FILTERS['ollama_manifest_blobs']((cache / MANIFEST).read_text(encoding='utf-8'))
    assert FILTERS['ollama_missing_blobs'](blobs, str(cache)) == []
    (cache / blobs[0]['path']).unlink()
    with open(cache / blobs[1]['path'], 'r+b') as handle:  # what an interrupted fetch leaves
        handle.truncate(blobs[1]['size'] - 1)
    assert FILTERS['ollama_missing_blobs'](blobs, str(cache)) == blobs[:2]


def test_missing_blobs_refuses_what_is_not_a_blob_list(tmp_path):
    with pytest.raises(AnsibleFilterError, match='is not a blob of ollama_manifest_blobs'):
        FILTERS['ollama_missing_blobs'](['blobs/sha256-x'], str(tmp_path))


def test_the_filters_work_in_a_playbook_and_have_docs(pulled, tmp_path):
    """As the role uses them: through Ansible's templating, by their FQCN, reading the cache with lookup('file')."""
    playbook = tmp_path / 'play.yml'
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "{{ blobs | ragops.gpu_stack.ollama_missing_blobs(cache) | length }} {{ blobs | map(attribute='size') | sum }}"
      vars:
        cache: %s
        blobs: "{{ lookup('ansible.builtin.file', cache ~ '/' ~ ('all-minilm' | ragops.gpu_stack.ollama_manifest_path), rstrip=false)
                   | ragops.gpu_stack.ollama_manifest_blobs }}"
""" % pulled, encoding='utf-8')
    # The output's shape is this test's own, whatever ansible.cfg the suite exports.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, '.cache', 'collections'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_CALLBACK_RESULT_FORMAT='json')
    bin_dir = os.path.dirname(sys.executable)
    out = subprocess.run([os.path.join(bin_dir, 'ansible-playbook'), str(playbook)], env=env, capture_output=True,
                         text=True, check=False, cwd=str(tmp_path))
    size = sum(b['size'] for b in FILTERS['ollama_manifest_blobs']((pulled / MANIFEST).read_text(encoding='utf-8')))
    assert '"msg": "0 %d"' % size in out.stdout, out.stdout + out.stderr
    for name in FILTERS:
        doc = subprocess.run([os.path.join(bin_dir, 'ansible-doc'), '-t', 'filter', 'ragops.gpu_stack.' + name],
                             env=env, capture_output=True, text=True, check=False)
        assert doc.returncode == 0 and 'EXAMPLES' in doc.stdout, doc.stderr
