# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from unittest import mock

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import model_store
from ansible_collections.ragops.gpu_stack.plugins.module_utils.model_name import parse
from ansible_collections.ragops.gpu_stack.tests.unit.ollama_store import empty_store, pulled_store

MINILM = parse('all-minilm')


@pytest.fixture(scope='module')
def pulled(tmp_path_factory):
    return pulled_store(tmp_path_factory.mktemp('pulled'))


@pytest.fixture
def store(pulled, tmp_path):
    """A copy of the pulled store that a test may change."""
    copy = tmp_path / 'store'
    shutil.copytree(pulled, copy)
    return copy


def raw_manifest(store, name=MINILM):
    return (store / name.manifest_path).read_bytes()


# ------------------------------------------------------------------------------ the store

def test_a_store_pulled_by_ollama_is_accepted(store):
    model_store.check_store(str(store))


@pytest.mark.parametrize('make, expected', [
    (lambda p: None, 'does not exist'),
    (lambda p: p.write_text('x'), 'is not a directory'),
    (lambda p: p.mkdir(), 'has no blobs/ directory'),
])
def test_a_path_that_is_not_a_store_is_refused_naming_the_fix(tmp_path, make, expected):
    path = tmp_path / 'models'
    make(path)
    with pytest.raises(model_store.ModelStoreError) as info:
        model_store.check_store(str(path))
    assert expected in str(info.value)
    assert 'OLLAMA_MODELS' in str(info.value)


# ------------------------------------------------------------------------------ manifests

def test_text_is_kept_byte_for_byte_so_the_digest_is_the_one_ollama_lists(store):
    raw = raw_manifest(store)
    text_with_newline = raw.decode('utf-8') + '\n'
    assert model_store.parse_manifest(raw.decode('utf-8'))[0] == raw
    assert model_store.parse_manifest(text_with_newline)[0] == text_with_newline.encode('utf-8')
    assert model_store.manifest_digest(raw) == hashlib.sha256(raw).hexdigest()


def test_a_dict_is_written_as_ollama_wrote_the_manifest(store):
    """Templating on ansible-core < 2.19 turns the manifest's JSON text into a dict; the bytes must still match."""
    raw = raw_manifest(store)
    assert model_store.parse_manifest(json.loads(raw))[0] == raw


def test_go_escapes_html_characters_in_a_dict_manifest():
    data = {'config': {'digest': 'sha256:' + 'a' * 64, 'size': 1, 'from': '<a&b>'},
            'layers': [{'digest': 'sha256:' + 'b' * 64, 'size': 2}]}
    assert b'"from":"\\u003ca\\u0026b\\u003e"' in model_store.manifest_bytes(data)


@pytest.mark.parametrize('manifest, expected', [
    ('{"config": ', 'not JSON'),
    ('[]', 'not a JSON object'),
    ('{"layers": [{"digest": "sha256:%s", "size": 1}]}' % ('a' * 64), 'no "config"'),
    ('{"config": {"digest": "sha256:%s", "size": 1}, "layers": []}' % ('a' * 64), 'no "layers"'),
    ('{"config": {"digest": "sha256:%s", "size": 1}, "layers": [{"digest": "sha256:ABC", "size": 1}]}' % ('a' * 64),
     "layers[0]: 'sha256:ABC' is not a blob digest"),
    ('{"config": {"digest": "sha256:%s", "size": true}, "layers": [{"digest": "sha256:%s", "size": 1}]}' % ('a' * 64, 'b' * 64),
     'config has no size'),
    ('{"config": {"digest": "sha256:%s", "size": 1}, "layers": [{"digest": "sha256:%s"}]}' % ('a' * 64, 'b' * 64),
     'layers[0] has no size'),
    (42, 'JSON text or a dict'),
])
def test_a_manifest_ollama_could_not_use_is_refused_saying_why(manifest, expected):
    with pytest.raises(model_store.ModelStoreError) as info:
        model_store.parse_manifest(manifest)
    assert expected in str(info.value)


def test_the_blobs_of_a_manifest_are_the_files_ollama_pulled(store):
    blobs = model_store.manifest_blobs(raw_manifest(store))
    data = json.loads(raw_manifest(store))
    assert blobs[0]['digest'] == data['config']['digest']
    assert [b['digest'] for b in blobs[1:]] == [layer['digest'] for layer in data['layers']]
    assert sorted(b['path'] for b in blobs) == sorted('blobs/' + n for n in os.listdir(store / 'blobs')
                                                      if n in {b['path'][6:] for b in blobs})
    for blob in blobs:
        assert (store / blob['path']).stat().st_size == blob['size']
    assert model_store.manifest_size(data) == sum(b['size'] for b in blobs)


def test_a_blob_named_twice_is_listed_once():
    layer = {'digest': 'sha256:' + 'b' * 64, 'size': 2}
    blobs = model_store.manifest_blobs({'config': {'digest': 'sha256:' + 'a' * 64, 'size': 1}, 'layers': [layer, layer]})
    assert [b['digest'] for b in blobs] == ['sha256:' + 'a' * 64, 'sha256:' + 'b' * 64]


def test_an_installed_model_is_found_whatever_the_case_of_its_path(store):
    upper = store / 'manifests' / 'registry.ollama.ai' / 'library' / 'All-MiniLM'
    (store / 'manifests' / 'registry.ollama.ai' / 'library' / 'all-minilm').rename(upper)
    assert model_store.manifest_file(str(store), MINILM) == str(upper / 'latest')
    assert model_store.manifest_file(str(store), parse('qwen2.5:0.5b')) == str(store / parse('qwen2.5:0.5b').manifest_path)


# ------------------------------------------------------------------------------ blobs

def model_blob(store):
    blobs = model_store.manifest_blobs(raw_manifest(store))
    return max(blobs, key=lambda b: b['size'])


def test_a_whole_blob_has_no_problem(store):
    assert model_store.blob_problem(str(store), model_blob(store)) is None


def test_a_missing_blob_is_missing(store):
    blob = model_blob(store)
    (store / blob['path']).unlink()
    assert model_store.blob_problem(str(store), blob) == ('missing', 'missing')


def test_a_truncated_blob_is_found_by_its_size_without_reading_it(store):
    blob = model_blob(store)
    with open(store / blob['path'], 'r+b') as handle:
        handle.truncate(1000)
    with mock.patch.object(model_store, 'sha256_file', wraps=model_store.sha256_file) as hashed:
        assert model_store.blob_problem(str(store), blob) == ('size', '1000 bytes, the manifest says %d' % blob['size'])
    hashed.assert_not_called()


def test_a_corrupt_blob_of_the_right_size_is_found_by_its_sha256(store):
    blob = model_blob(store)
    path = store / blob['path']
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    kind, text = model_store.blob_problem(str(store), blob)
    assert kind == 'sha256'
    assert hashlib.sha256(bytes(data)).hexdigest() in text


def test_without_verify_a_blob_of_the_right_size_is_not_read(store):
    blob = model_blob(store)
    (store / blob['path']).write_bytes(b'x' * blob['size'])
    with mock.patch.object(model_store, 'sha256_file') as hashed:
        assert model_store.blob_problem(str(store), blob, verify=False) is None
    hashed.assert_not_called()


def test_hashing_reads_in_one_mib_chunks(tmp_path):
    path = tmp_path / 'blob'
    path.write_bytes(b'a' * (3 * model_store.HASH_CHUNK + 5))
    reads = []
    real_open = open

    def recording_open(*args, **kwargs):
        handle = real_open(*args, **kwargs)
        real_read = handle.read
        handle.read = lambda size=-1: reads.append(size) or real_read(size)
        return handle

    with mock.patch('builtins.open', recording_open):
        digest = model_store.sha256_file(str(path))
    assert digest == hashlib.sha256(b'a' * (3 * model_store.HASH_CHUNK + 5)).hexdigest()
    assert set(reads) == {model_store.HASH_CHUNK}


def test_remove_blob_removes_only_that_blob(store):
    blob = model_blob(store)
    before = set(os.listdir(store / 'blobs'))
    assert model_store.remove_blob(str(store), blob['digest']) is True
    assert set(os.listdir(store / 'blobs')) == before - {blob['path'][6:]}
    assert model_store.remove_blob(str(store), blob['digest']) is False


# ------------------------------------------------------------------------------ registering

def test_register_writes_the_manifest_bytes_and_freshens_its_blobs(pulled, tmp_path):
    target = empty_store(tmp_path / 'target')
    raw = raw_manifest(pulled)
    blobs = model_store.manifest_blobs(raw)
    old = time.time() - 7200
    for blob in blobs:
        shutil.copyfile(pulled / blob['path'], target / blob['path'])
        os.utime(target / blob['path'], (old, old))
    path = model_store.manifest_file(str(target), MINILM)

    model_store.register(str(target), path, raw, blobs)

    assert (target / MINILM.manifest_path).read_bytes() == raw
    assert oct((target / MINILM.manifest_path).stat().st_mode & 0o777) == '0o644'
    for blob in blobs:
        # Ollama's start-up prune would delete an unreferenced blob older than an hour.
        assert (target / blob['path']).stat().st_mtime > time.time() - 60
    # No temporary file left for Ollama to list or a later run to trip over.
    assert os.listdir(target / MINILM.manifest_path.rsplit('/', 1)[0]) == ['latest']


def test_register_replaces_a_manifest_atomically_through_the_shared_helper(store):
    raw = raw_manifest(store)
    new = raw + b'\n'
    path = model_store.manifest_file(str(store), MINILM)
    with mock.patch.object(model_store, 'write_atomic', wraps=model_store.write_atomic) as written:
        model_store.register(str(store), path, new, model_store.manifest_blobs(raw))
    written.assert_called_once_with(path, new.decode('utf-8'), mode=0o644)
    assert (store / MINILM.manifest_path).read_bytes() == new


def test_a_manifest_that_cannot_be_written_is_a_store_error(store):
    raw = raw_manifest(store)
    blocked = store / 'manifests' / 'registry.ollama.ai' / 'library' / 'qwen2.5'
    blocked.write_text('a file where a directory must be')
    with pytest.raises(model_store.ModelStoreError) as info:
        model_store.register(str(store), str(blocked / '0.5b'), raw, model_store.manifest_blobs(raw))
    assert str(info.value).startswith(str(blocked / '0.5b'))
    assert 'Not a directory' in str(info.value)
