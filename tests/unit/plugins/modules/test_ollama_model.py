# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ollama_model's main() against the Ollama double, run as a real server process (one for this
file, on a free port, with a temporary model store emptied before each test). Its upstream
counters (/_double/stats) prove the network claims, its access log the local ones."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import threading
import time

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_models import (
    MUTUALLY_EXCLUSIVE,
    REQUIRED_ONE_OF,
    argument_spec,
    converged_result,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils import ollama_api
from ansible_collections.ragops.gpu_stack.plugins.modules import ollama_model
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, run_module
from ansible_collections.ragops.gpu_stack.tests.unit.world.conftest import spawn_double


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp('ollama_model')
    running = spawn_double(root / 'models', root / 'double.log')
    yield running
    running.stop()


@pytest.fixture
def double(server):
    """The module's double with no model, no fault, zeroed counters and an access log read from here on."""
    assert server.post('/_double/reset').status_code == 200
    for part in ('manifests', 'blobs'):
        for child in (server.models / part).iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    server.log_mark = len(server.log().splitlines())
    return server


def requests_since_mark(double):
    """The API requests the double logged since the test began, as 'METHOD /path' (control requests left out)."""
    lines = double.log().splitlines()[double.log_mark:]
    found = [re.search(r'\| (\w+) +"([^"]+)"', line) for line in lines if line.startswith('[GIN]')]
    return ['%s %s' % (m.group(1), m.group(2)) for m in found if m and not m.group(2).startswith('/_double/')]


def mark(double):
    double.log_mark = len(double.log().splitlines())


def run(double, check_mode=False, diff=False, **args):
    args.setdefault('api_url', double.url)
    return run_module(ollama_model, args, check_mode=check_mode, diff=diff)


def tags(double):
    return {m['name']: m['digest'] for m in double.get('/api/tags').json()['models']}


def manifest(double, model, tag='latest'):
    return json.loads((double.models / 'manifests' / 'registry.ollama.ai' / 'library' / model / tag).read_bytes())


def blob_sizes(doc):
    return {layer['digest']: layer['size'] for layer in doc['layers'] + [doc['config']]}


def store_tree(double):
    """Every file of the model store with its size and modification time."""
    return {str(p.relative_to(double.models)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(double.models.rglob('*')) if p.is_file()}


def validated(args):
    result = ArgumentSpecValidator(argument_spec(), mutually_exclusive=MUTUALLY_EXCLUSIVE,
                                   required_one_of=REQUIRED_ONE_OF).validate(args)
    assert not result.error_messages
    return result.validated_parameters


# ------------------------------------------------------------------ present, idempotence, names

def test_first_run_pulls_each_model_once_and_the_second_sends_one_local_request(double):
    result, warnings = run(double, models=['llama3.2', 'nomic-embed-text'])
    assert result['changed'] and warnings == []
    assert [(m['name'], m['action'], m['attempts']) for m in result['models']] == [
        ('llama3.2:latest', 'pulled', 1), ('nomic-embed-text:latest', 'pulled', 1)]
    stats = double.stats()
    assert stats['bytes_transferred'] == sum(m['size'] for m in result['models'])  # upstream bytes = model sizes
    assert stats['models']['llama3.2:latest']['manifest_requests'] == 1
    assert {m['name']: m['digest'] for m in result['installed']} == tags(double)

    mark(double)
    again, warnings = run(double, models=['llama3.2', 'nomic-embed-text'])
    assert not again['changed'] and [m['action'] for m in again['models']] == ['present', 'present']
    assert double.stats() == stats  # zero upstream requests
    assert requests_since_mark(double) == ['GET /api/tags']
    assert [m['digest'] for m in again['models']] == [m['digest'] for m in result['models']]


@pytest.mark.parametrize('variant', ['llama3.2:latest', 'LLAMA3.2', 'LLaMA3.2:Latest',
                                     'registry.ollama.ai/library/llama3.2:latest'])
def test_name_variants_match_the_installed_model(double, variant):
    run(double, name='llama3.2')
    stats = double.stats()
    result, warnings = run(double, name=variant)
    assert not result['changed'] and result['models'][0]['action'] == 'present'
    assert result['models'][0]['name'] == 'llama3.2:latest' and result['models'][0]['requested'] == variant
    assert double.stats() == stats


def test_invalid_name_fails_before_any_request(double):
    result, warnings = run(double, models=['llama3.2', 'hf.co/repo'])
    assert result['failed'] and "models[1]: invalid model name 'hf.co/repo'" in result['msg']
    assert 'hf.co/org/repo:Q4_K_M' in result['msg']  # the fix: the form that works
    assert requests_since_mark(double) == [] and double.stats()['pulls'] == 0


def test_two_names_for_one_model_are_refused(double):
    result, warnings = run(double, models=['llama3', 'LLAMA3:latest'])
    assert result['failed'] and 'are one model' in result['msg'] and requests_since_mark(double) == []


# ------------------------------------------------------------------ latest

def test_latest_reports_a_change_only_when_the_digest_moved(double):
    run(double, name='qwen2.5:0.5b')
    old = manifest(double, 'qwen2.5', '0.5b')
    stats = double.stats()
    same, warnings = run(double, name='qwen2.5:0.5b', state='latest')
    assert not same['changed'] and same['models'][0]['action'] == 'unchanged'
    after_same = double.stats()
    assert after_same['manifest_requests'] == stats['manifest_requests'] + 1  # latest asks the registry
    assert after_same['bytes_transferred'] == stats['bytes_transferred']

    assert double.post('/_double/upstream', {'model': 'qwen2.5:0.5b', 'revision': 2}).status_code == 200
    updated, warnings = run(double, name='qwen2.5:0.5b', state='latest')
    new = manifest(double, 'qwen2.5', '0.5b')
    assert updated['changed'] and updated['models'][0]['action'] == 'updated'
    assert updated['models'][0]['digest'] == tags(double)['qwen2.5:0.5b'] != same['models'][0]['digest']
    new_blobs = {d: s for d, s in blob_sizes(new).items() if d not in blob_sizes(old)}
    assert new_blobs and double.stats()['bytes_transferred'] - after_same['bytes_transferred'] == sum(new_blobs.values())

    again, warnings = run(double, name='qwen2.5:0.5b', state='latest')
    assert not again['changed'] and again['models'][0]['action'] == 'unchanged'


# ------------------------------------------------------------------ drops and failures

def test_a_connection_dropped_mid_blob_is_retried_and_resumes(double):
    double.faults(drop_after_bytes=500_000)
    result, warnings = run(double, name='llama3.2')
    (model,) = result['models']
    assert result['changed'] and model['action'] == 'pulled' and model['attempts'] == 2
    stats = double.stats()
    assert stats['pulls'] == 2
    model_blob = manifest(double, 'llama3.2')['layers'][0]['size']
    refetched = stats['bytes_transferred'] - model['size']
    assert 0 <= refetched <= model_blob // 20  # the second request resumed the partial blob
    assert not list((double.models / 'blobs').glob('*partial*'))


FAILURES = [
    ('unknown', dict(unknown=['qwen2.5:0.5b']), 'unknown_model',
     ['qwen2.5:0.5b: the registry registry.ollama.ai has no such model or tag', 'Fix: check the name and tag']),
    ('unreachable', dict(unreachable=True), 'registry_unreachable',
     ['qwen2.5:0.5b: Ollama at http://127.0.0.1:', 'cannot reach the registry registry.ollama.ai',
      'no such host', 'HTTPS_PROXY', 'ollama_models_seed']),
    ('412', dict(newer_version=['qwen2.5:0.5b']), 'newer_version',
     ['qwen2.5:0.5b needs a newer Ollama than the server at', 'runs version 0.33.0', 'raise site_ollama_image']),
    ('disk full', dict(disk_full_after_bytes=200_000, rate=1_000_000), 'disk_full',
     ['qwen2.5:0.5b: the disk that holds the Ollama model store is full', '-partial: no space left on device',
      'the next run resumes it', 'KB of 600.0 KB']),
]


@pytest.mark.parametrize('label, faults, kind, words', FAILURES, ids=[f[0] for f in FAILURES])
def test_pull_failures_are_clear_and_leave_installed_models_alone(double, label, faults, kind, words):
    run(double, name='all-minilm')
    installed = tags(double)
    double.faults(**faults)
    result, warnings = run(double, models=['all-minilm', 'qwen2.5:0.5b'], image_variable='site_ollama_image')
    assert result['failed'] and result['error_kind'] == kind and result['model'] == 'qwen2.5:0.5b'
    for word in words:
        assert word in result['msg']
    assert not result['changed'] and tags(double) == installed


def test_ollama_down_is_a_clear_failure(double):
    address = 'http://127.0.0.1:%d' % free_port()
    result, warnings = run(double, name='llama3.2', api_url=address)
    assert result['failed'] and result['error_kind'] == 'unreachable_server'
    assert result['msg'].startswith('Ollama is not answering at %s' % address)
    assert 'llama3.2:latest cannot be managed' in result['msg'] and 'set api_url' in result['msg']


# ------------------------------------------------------------------ absent, prune, check mode, diff

def test_absent_removes_and_then_is_no_change(double):
    run(double, models=['all-minilm', 'nomic-embed-text'])
    # the licence text is one blob both models use: Ollama keeps it
    blobs = set(blob_sizes(manifest(double, 'all-minilm'))) - set(blob_sizes(manifest(double, 'nomic-embed-text')))
    result, warnings = run(double, name='ALL-MINILM', state='absent')
    assert result['changed'] and result['models'][0]['action'] == 'removed' and result['models'][0]['digest'] is None
    assert list(tags(double)) == ['nomic-embed-text:latest']
    assert blobs and not any((double.models / 'blobs' / d.replace(':', '-')).exists() for d in blobs)
    again, warnings = run(double, name='all-minilm', state='absent')
    assert not again['changed'] and again['models'][0]['action'] == 'absent'


def test_prune_removes_the_models_not_listed(double):
    run(double, models=['all-minilm', 'nomic-embed-text', 'qwen2.5:0.5b'])
    result, warnings = run(double, models=['nomic-embed-text'], prune=True)
    assert result['changed'] and result['removed'] == ['all-minilm:latest', 'qwen2.5:0.5b']
    assert list(tags(double)) == ['nomic-embed-text:latest']
    again, warnings = run(double, models=['nomic-embed-text'], prune=True)
    assert not again['changed'] and again['removed'] == []


def test_a_stalled_pull_is_issued_again_and_keeps_what_was_fetched(double):
    # The double goes silent for 4 s after 100 kB; the module waits 1 s for a line, then issues the
    # pull again, which waits for the stalled download of that blob and takes it over (as Ollama's
    # two pulls of one digest share one download): nothing is fetched twice.
    double.faults(stall_after_bytes=100_000, stall_seconds=4)
    started = time.monotonic()
    result, warnings = run(double, name='qwen2.5:0.5b', stall_timeout=1, retries=6)
    (model,) = result['models']
    assert result.get('msg') is None and model['action'] == 'pulled' and warnings == []
    assert model['attempts'] >= 2 and time.monotonic() - started >= 4
    size = sum(blob_sizes(manifest(double, 'qwen2.5', '0.5b')).values())
    assert double.stats()['bytes_transferred'] == size
    assert double.stats()['manifest_requests'] == model['attempts']


def test_a_failure_after_a_finished_pull_still_reports_the_change(double):
    double.faults(unknown=['mxbai-embed-large'])
    result, warnings = run(double, models=['all-minilm', 'mxbai-embed-large'])
    assert result['failed'] and 'mxbai-embed-large' in result['msg']
    assert result['changed']  # all-minilm was pulled before the second model failed
    assert list(tags(double)) == ['all-minilm:latest']


def test_a_model_gone_between_the_read_and_the_delete_is_no_change(double, monkeypatch):
    run(double, models=['all-minilm', 'qwen2.5:0.5b'])
    real_delete = ollama_api.OllamaClient.delete

    def delete_twice(client, name):
        real_delete(client, name)  # someone else removed it first
        return real_delete(client, name)

    monkeypatch.setattr(ollama_api.OllamaClient, 'delete', delete_twice)
    pruned, warnings = run(double, models=['all-minilm'], prune=True)
    assert pruned.get('msg') is None and pruned['removed'] == [] and not pruned['changed']
    run(double, models=['qwen2.5:0.5b'])
    absent, warnings = run(double, models=['all-minilm', {'name': 'qwen2.5:0.5b', 'state': 'absent'}])
    assert absent.get('msg') is None and not absent['changed']
    assert [m['action'] for m in absent['models']] == ['present', 'absent']


def test_check_mode_predicts_and_changes_nothing_on_disk(double):
    run(double, models=['all-minilm', 'nomic-embed-text'])
    before_tree = store_tree(double)
    stats = double.stats()
    mark(double)
    result, warnings = run(double, check_mode=True, diff=True, prune=True,
                           models=['qwen2.5:0.5b', {'name': 'all-minilm', 'state': 'absent'},
                                   {'name': 'mxbai-embed-large', 'state': 'absent'}])
    assert result['changed']
    assert [m['action'] for m in result['models']] == ['would_pull', 'would_remove', 'absent']
    assert result['removed'] == ['nomic-embed-text:latest']
    assert result['diff']['after'] == {'models': [{'name': 'qwen2.5:0.5b', 'digest': None, 'size': None}]}
    assert [m['name'] for m in result['diff']['before']['models']] == ['all-minilm:latest', 'nomic-embed-text:latest']
    assert store_tree(double) == before_tree and double.stats() == stats
    assert requests_since_mark(double) == ['GET /api/tags']

    latest, warnings = run(double, check_mode=True, name='all-minilm', state='latest')
    assert latest['changed'] and latest['models'][0]['action'] == 'would_update'
    assert store_tree(double) == before_tree and double.stats() == stats


def test_diff_shows_installed_models_before_and_after(double):
    run(double, name='all-minilm')
    result, warnings = run(double, diff=True, models=['nomic-embed-text', {'name': 'all-minilm', 'state': 'absent'}])
    digests = tags(double)
    assert result['diff']['before']['models'][0]['name'] == 'all-minilm:latest'
    assert result['diff']['after'] == {'models': [{'name': 'nomic-embed-text:latest',
                                                   'digest': digests['nomic-embed-text:latest'],
                                                   'size': result['models'][0]['size']}]}
    quiet, warnings = run(double, models=['nomic-embed-text'])
    assert 'diff' not in quiet


# ------------------------------------------------------------------ progress

PROGRESS_LINE = re.compile(r'^qwen2\.5:0\.5b: pulling [0-9a-f]{12} \d{1,3}% \(\d+(\.\d)? [KMG]?B of \d+(\.\d)? [KMG]?B'
                           r'(, (\d+(\.\d)? [KMG]?B/s|done|already present))?\)$')


def test_progress_file_is_written_during_a_throttled_pull(double, tmp_path):
    double.faults(rate=250_000, final_progress=False)  # 600 KB: about 2.4 s, and no closing 100% lines
    path = tmp_path / 'progress.json'
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                text = path.read_text()
            except OSError:
                text = None
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result, warnings = run(double, name='qwen2.5:0.5b', progress_file=str(path))
    finally:
        stop.set()
        watcher.join()
    assert result['changed'] and warnings == []
    snapshots = [json.loads(text) for text in seen]  # never a torn file: each one parses
    assert len(snapshots) >= 2
    times = [snapshot['updated'] for snapshot in snapshots]
    assert all(later - earlier >= 0.99 for earlier, later in zip(times, times[1:]))
    layer_lines = [line for snapshot in snapshots for line in snapshot['lines'] if ': pulling ' in line
                   and 'manifest' not in line]
    assert layer_lines and all(PROGRESS_LINE.match(line) for line in layer_lines), layer_lines
    assert any(re.search(r' ([1-9]\d?)% \(.*B/s\)$', line) for line in layer_lines)  # mid-layer, with a rate


# ------------------------------------------------------------------ preload and residency

def test_preload_on_the_gpu_stays_resident_with_keep_alive(double):
    double.faults(gpu='cuda')
    result, warnings = run(double, name='nomic-embed-text', preload=True, keep_alive='10m', expect_gpu=True)
    (model,) = result['models']
    assert result['changed'] and model['preload'] == 'loaded' and warnings == []
    assert 'POST /api/embed' in requests_since_mark(double)  # an embedding-only model refuses /api/generate
    (loaded,) = double.get('/api/ps').json()['models']
    assert loaded['name'] == 'nomic-embed-text:latest' and loaded['size_vram'] == loaded['size'] > 0
    assert model['loaded']['size_vram'] == loaded['size_vram'] and model['loaded']['processor'] == '100% GPU'
    expires = datetime.datetime.fromisoformat(re.sub(r'\.\d+', '', loaded['expires_at']).replace('Z', '+00:00'))
    # keep_alive 10m, not the server's 5m default nor 24h (the margin allows a loaded machine)
    assert 480 < expires.timestamp() - time.time() <= 600

    mark(double)
    again, warnings = run(double, name='nomic-embed-text', preload=True, keep_alive='10m', expect_gpu=True)
    assert not again['changed'] and again['models'][0]['preload'] == 'already_loaded'
    assert requests_since_mark(double) == ['GET /api/tags', 'GET /api/ps']


def test_preload_on_the_cpu_warns_only_where_a_gpu_is_expected(double):
    result, warnings = run(double, name='qwen2.5:0.5b', preload=True)
    (model,) = result['models']
    assert model['preload'] == 'loaded' and model['loaded']['size_vram'] == 0
    assert model['loaded']['processor'] == '100% CPU' and warnings == []
    assert 'POST /api/generate' in requests_since_mark(double)
    again, warnings = run(double, name='qwen2.5:0.5b', preload=True, expect_gpu=True)
    assert not again['changed'] and len(warnings) == 1
    assert warnings[0].startswith('qwen2.5:0.5b is loaded entirely on the CPU (size_vram 0 of')
    for cause in ('daemon-reload', 'driver older', 'CUDA_VISIBLE_DEVICES=-1', 'HSA_OVERRIDE_GFX_VERSION', 'VRAM'):
        assert cause in warnings[0]


# ------------------------------------------------------------------ the controller's converged answer

def reads(double):
    return double.get('/api/tags').json(), double.get('/api/ps').json()


@pytest.mark.parametrize('check_mode, diff', [(False, False), (True, False), (False, True), (True, True)])
def test_converged_result_is_the_modules_own_result(double, check_mode, diff):
    double.faults(gpu='cuda')
    args = dict(api_url=double.url, models=['llama3.2', {'name': 'nomic-embed-text', 'preload': True, 'keep_alive': '-1'},
                                            {'name': 'qwen2.5:0.5b', 'state': 'absent'}], expect_gpu=True)
    run(double, **args)
    tags_body, ps_body = reads(double)
    expected = converged_result(validated(args), tags_body, ps_body, check_mode, diff)
    result, warnings = run(double, check_mode=check_mode, diff=diff, **args)
    assert expected is not None and warnings == []
    assert result == expected

    single = dict(api_url=double.url, name='LLAMA3.2')
    expected = converged_result(validated(single), tags_body, None, check_mode, diff)
    assert run(double, check_mode=check_mode, diff=diff, **single)[0] == expected


def test_converged_result_is_none_when_the_module_acts_or_warns(double):
    run(double, name='qwen2.5:0.5b', preload=True)
    tags_body, ps_body = reads(double)
    cases = [
        dict(name='llama3.2'),                                                 # would pull
        dict(name='qwen2.5:0.5b', state='latest'),                             # pulls to compare digests
        dict(name='qwen2.5:0.5b', state='absent'),                             # would remove
        dict(models=['all-minilm'], prune=True),                               # would pull and prune
        dict(name='qwen2.5:0.5b', preload=True, expect_gpu=True),              # warns: on the CPU
    ]
    for case in cases:
        args = dict(api_url=double.url, **case)
        assert converged_result(validated(args), tags_body, ps_body, False, False) is None, case
    result, warnings = run(double, name='qwen2.5:0.5b', preload=True, expect_gpu=True)
    assert not result['changed'] and warnings  # not a change, but a warning the controller must not swallow
    assert run(double, name='llama3.2')[0]['changed']
