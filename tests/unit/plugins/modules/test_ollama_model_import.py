# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import json
import os
from unittest import mock

import pytest
import requests
import yaml

from ansible_collections.ragops.gpu_stack.plugins.module_utils import model_store
from ansible_collections.ragops.gpu_stack.plugins.module_utils.model_name import parse
from ansible_collections.ragops.gpu_stack.plugins.modules import ollama_model_import
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, run_module
from ansible_collections.ragops.gpu_stack.tests.unit.ollama_store import copy_blobs, empty_store, pulled_store
from ansible_collections.ragops.gpu_stack.tests.unit.world.conftest import spawn_double

MINILM = parse('all-minilm')
NOMIC = parse('nomic-embed-text')


@pytest.fixture(scope='module')
def seed(tmp_path_factory):
    """The store of a host that pulled the models: where the seed's cache gets its files."""
    return pulled_store(tmp_path_factory.mktemp('seed'))


@pytest.fixture
def target(tmp_path):
    """A running Ollama (the double) on an empty store: a host the seed has not reached yet."""
    store = empty_store(tmp_path / 'target')
    double = spawn_double(store, tmp_path / 'target.log')
    yield store, double
    double.stop()


def manifest(seed, name):
    return (seed / name.manifest_path).read_text(encoding='utf-8')


def blobs(seed, name):
    return model_store.manifest_blobs(manifest(seed, name))


def run(store, models, check_mode=False, diff=False, **options):
    args = dict(path=str(store), models=models, **options)
    return run_module(ollama_model_import, args, check_mode=check_mode, diff=diff)[0]


def listed(double):
    return {m['name']: m['digest'] for m in requests.get(double.url + '/api/tags', timeout=10).json()['models']}


def files(store):
    return sorted(os.path.relpath(os.path.join(d, f), store) for d, _dirs, names in os.walk(store) for f in names)


def seeded(seed, store, *names):
    for name in names:
        copy_blobs(seed, store, blobs(seed, name))


def model_blob(seed, name):
    return max(blobs(seed, name), key=lambda b: b['size'])


# ------------------------------------------------------------------------------ registering

def test_imported_models_are_listed_at_once_with_the_manifests_digest(seed, target):
    store, double = target
    seeded(seed, store, MINILM, NOMIC)
    assert listed(double) == {}

    result = run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)},
                         {'name': 'nomic-embed-text:latest', 'manifest': manifest(seed, NOMIC)}], api_url=double.url)

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert [(m['name'], m['action']) for m in result['models']] == [
        ('all-minilm:latest', 'registered'), ('nomic-embed-text:latest', 'registered')]
    expected = {name.shortest: hashlib.sha256((seed / name.manifest_path).read_bytes()).hexdigest() for name in (MINILM, NOMIC)}
    # The same digest as on the host the files came from, with no restart of the server.
    assert listed(double) == expected
    assert {m['name']: m['digest'] for m in result['models']} == expected
    assert (store / MINILM.manifest_path).read_bytes() == (seed / MINILM.manifest_path).read_bytes()
    # Ollama can use it: the double loads it for an embedding.
    embed = requests.post(double.url + '/api/embed', json={'model': 'all-minilm', 'input': 'x'}, timeout=10)
    assert embed.status_code == 200, embed.text


def test_a_registered_model_is_unchanged_and_no_blob_is_read(seed, target):
    store, double = target
    seeded(seed, store, MINILM)
    models = [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)}]
    assert run(store, models)['changed'] is True

    with mock.patch.object(model_store, 'sha256_file') as hashed:
        result = run(store, models, api_url=double.url)

    hashed.assert_not_called()
    assert result['changed'] is False
    assert result['models'][0]['action'] == 'unchanged'


def test_another_manifest_under_the_name_is_updated(seed, target):
    store, double = target
    seeded(seed, store, MINILM, NOMIC)
    # The name first holds nomic-embed-text's manifest (as a stale cache would have left it).
    run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, NOMIC)}])
    before = listed(double)['all-minilm:latest']

    result = run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)}], api_url=double.url)

    assert result['changed'] is True
    assert result['models'][0]['action'] == 'updated'
    assert result['models'][0]['previous_digest'] == before
    assert listed(double)['all-minilm:latest'] == result['models'][0]['digest'] != before


def test_a_dict_manifest_gets_the_same_digest_as_the_text(seed, target):
    store, double = target
    seeded(seed, store, MINILM)
    result = run(store, [{'name': 'all-minilm', 'manifest': json.loads(manifest(seed, MINILM))}], api_url=double.url)
    assert listed(double)['all-minilm:latest'] == hashlib.sha256((seed / MINILM.manifest_path).read_bytes()).hexdigest()
    assert result['changed'] is True


# ------------------------------------------------------------------------------ bad blobs

def damage(path, how):
    if how == 'truncated':
        with open(path, 'r+b') as handle:
            handle.truncate(path.stat().st_size // 3)
    else:
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x01
        path.write_bytes(bytes(data))


@pytest.mark.parametrize('how, why', [('truncated', 'bytes, the manifest says'), ('corrupt', 'its content has sha256')])
def test_a_damaged_blob_is_removed_and_the_model_never_registered(seed, target, how, why):
    store, double = target
    seeded(seed, store, MINILM)
    blob = model_blob(seed, MINILM)
    damage(store / blob['path'], how)

    result = run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)}], api_url=double.url)

    assert result['failed'] is True
    assert blob['digest'] in result['msg'] and why in result['msg'] and 'all-minilm:latest' in result['msg']
    assert result['models'][0]['action'] == 'failed'
    assert result['removed_blobs'] == [blob['path']]
    assert result['changed'] is True  # a file was removed
    assert not (store / blob['path']).exists()
    assert not (store / MINILM.manifest_path).exists()
    assert listed(double) == {}

    # The next copy replaces it and the import then succeeds.
    seeded(seed, store, MINILM)
    again = run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)}], api_url=double.url)
    assert again['models'][0]['action'] == 'registered'
    assert 'all-minilm:latest' in listed(double)


def test_a_missing_blob_fails_the_model_but_the_whole_ones_are_registered(seed, target):
    store, double = target
    seeded(seed, store, MINILM, NOMIC)
    blob = model_blob(seed, NOMIC)
    (store / blob['path']).unlink()

    result = run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)},
                         {'name': 'nomic-embed-text', 'manifest': manifest(seed, NOMIC)}])

    assert result['failed'] is True
    assert '%s: missing' % blob['digest'] in result['msg']
    assert [m['action'] for m in result['models']] == ['registered', 'failed']
    assert result['removed_blobs'] == []
    assert list(listed(double)) == ['all-minilm:latest']


# ------------------------------------------------------------------------------ check mode and diff

def test_check_mode_writes_removes_and_hashes_nothing(seed, target):
    store, double = target
    seeded(seed, store, MINILM, NOMIC)
    damage(store / model_blob(seed, NOMIC)['path'], 'truncated')
    before = {path: (store / path).read_bytes() for path in files(store)}

    with mock.patch.object(model_store, 'sha256_file') as hashed:
        result = run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)},
                             {'name': 'nomic-embed-text', 'manifest': manifest(seed, NOMIC)}], check_mode=True, diff=True)

    hashed.assert_not_called()
    assert not result.get('failed'), result
    assert result['changed'] is True
    assert [m['action'] for m in result['models']] == ['would_register', 'would_register']
    assert result['models'][0]['bad_blobs'] == []
    assert 'bytes, the manifest says' in result['models'][1]['bad_blobs'][0]
    assert {path: (store / path).read_bytes() for path in files(store)} == before
    assert result['diff']['before'] == {'models': []}
    assert [m['name'] for m in result['diff']['after']['models']] == ['all-minilm:latest', 'nomic-embed-text:latest']
    assert listed(double) == {}


def test_diff_shows_the_registered_models_before_and_after(seed, target):
    store, _double = target
    seeded(seed, store, MINILM, NOMIC)
    run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)}])
    minilm = hashlib.sha256((seed / MINILM.manifest_path).read_bytes()).hexdigest()
    nomic = hashlib.sha256((seed / NOMIC.manifest_path).read_bytes()).hexdigest()

    result = run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)},
                         {'name': 'nomic-embed-text', 'manifest': manifest(seed, NOMIC)}], diff=True)

    assert result['diff'] == {
        'before': {'models': [{'name': 'all-minilm:latest', 'digest': minilm}]},
        'after': {'models': [{'name': 'all-minilm:latest', 'digest': minilm}, {'name': 'nomic-embed-text:latest', 'digest': nomic}]},
    }


# ------------------------------------------------------------------------------ bad input and a wrong server

@pytest.mark.parametrize('make, expected', [
    (lambda p: p.write_text('x'), 'is not a directory'),
    (lambda p: p.mkdir(), 'is not an Ollama model store'),
])
def test_a_path_that_is_not_a_model_store_is_refused(seed, tmp_path, make, expected):
    path = tmp_path / 'models'
    make(path)
    result = run(path, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)}])
    assert result['failed'] is True
    assert expected in result['msg']


@pytest.mark.parametrize('models, expected', [
    ([{'name': 'hf.co/repo', 'manifest': '{}'}], 'models[0]: invalid model name'),
    ([{'name': 'all-minilm', 'manifest': '{"config": {}}'}], 'models[0] (all-minilm:latest): the manifest'),
    ([{'name': 'all-minilm', 'manifest': 'MANIFEST'}, {'name': 'All-MiniLM:latest', 'manifest': 'MANIFEST'}],
     'models[1]: All-MiniLM:latest is models[0] again'),
])
def test_bad_input_fails_before_anything_changes(seed, target, models, expected):
    store, _double = target
    seeded(seed, store, MINILM)
    models = [dict(m, manifest=manifest(seed, MINILM) if m['manifest'] == 'MANIFEST' else m['manifest']) for m in models]
    before = files(store)
    result = run(store, models)
    assert result['failed'] is True
    assert expected in result['msg']
    assert files(store) == before


def test_a_store_that_is_not_the_servers_fails_the_confirmation(seed, target, tmp_path):
    store, double = target
    other = empty_store(tmp_path / 'other')
    seeded(seed, other, MINILM)
    result = run(other, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)}], api_url=double.url)
    assert result['failed'] is True
    assert 'all-minilm:latest (not listed)' in result['msg'] and 'model store of that server' in result['msg']


def test_a_server_that_does_not_answer_is_a_clear_failure(seed, target):
    store, _double = target
    seeded(seed, store, MINILM)
    url = 'http://127.0.0.1:%d' % free_port()
    result = run(store, [{'name': 'all-minilm', 'manifest': manifest(seed, MINILM)}], api_url=url, timeout=5)
    assert result['failed'] is True
    assert 'GET /api/tags failed: no answer from Ollama at %s' % url in result['msg']
    assert result['models'][0]['action'] == 'registered'


def test_the_module_is_in_the_action_group():
    runtime = os.path.join(os.path.dirname(ollama_model_import.__file__), '..', '..', 'meta', 'runtime.yml')
    with open(runtime, encoding='utf-8') as handle:
        assert 'ollama_model_import' in yaml.safe_load(handle)['action_groups']['gpu_stack']
