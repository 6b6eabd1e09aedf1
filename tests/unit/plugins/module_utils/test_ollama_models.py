# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ollama_model planner without a server: names and options, the plan, results, messages,
the retry loop (against a scripted client) and the progress lines."""

from __future__ import annotations

import json

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import ollama_api
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_api import OllamaError, classify
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_models import (
    InputError,
    ModelTask,
    PullProgress,
    TaskFailed,
    argument_spec,
    converged_result,
    desired_models,
    human_bytes,
    plan,
    processor_text,
)

DIGEST_A = 'a' * 64
DIGEST_B = 'b' * 64


def params(**given):
    """Validated-looking params: every option at its default, then ``given``."""
    values = {key: spec.get('default') for key, spec in argument_spec().items()}
    values.update(given)
    return values


def tag(name, digest=DIGEST_A, size=1000, capabilities=('completion',)):
    return {'name': name, 'model': name, 'digest': digest, 'size': size, 'modified_at': '2026-12-01T10:00:00Z',
            'details': {}, 'capabilities': list(capabilities)}


def ps_entry(name, digest=DIGEST_A, size=1000, size_vram=1000):
    return {'name': name, 'model': name, 'size': size, 'size_vram': size_vram, 'digest': digest,
            'expires_at': '2026-12-01T10:05:00Z', 'context_length': 4096, 'details': {}}


# ------------------------------------------------------------------ names and options

def test_list_form_normalises_and_inherits_defaults():
    desired = desired_models(params(models=['llama3.2', {'name': 'Qwen2.5:0.5b', 'state': 'latest', 'preload': 'yes'},
                                            {'name': 'hf.co/org/repo:Q4_K_M', 'keep_alive': -1}],
                                    state='present', keep_alive='10m'))
    assert [d.name.shortest for d in desired] == ['llama3.2:latest', 'Qwen2.5:0.5b', 'hf.co/org/repo:Q4_K_M']
    assert [d.state for d in desired] == ['present', 'latest', 'present']
    assert [d.preload for d in desired] == [False, True, False]
    assert [d.keep_alive for d in desired] == ['10m', '10m', '-1']
    assert desired[1].requested == 'Qwen2.5:0.5b'


@pytest.mark.parametrize('given, words', [
    (dict(name='hf.co/repo'), ["name: invalid model name 'hf.co/repo'", 'namespace', 'Fix: a model name is',
                               'hf.co/org/repo:Q4_K_M']),
    (dict(models=['llama3', 'ok', 'bad name']), ["models[2]: invalid model name 'bad name'", 'Fix:']),
    (dict(models=['llama3', 'LLAMA3:latest']), ["'llama3' and 'LLAMA3:latest' are one model (LLAMA3:latest)", 'list it once']),
    (dict(models=['registry.ollama.ai/library/x', 'x:latest']), ['are one model', 'list it once']),
    (dict(models=[{'name': 'x', 'tag': 'y'}]), ['models[0]: unknown key(s) tag', 'name, state, preload, keep_alive']),
    (dict(models=[{'state': 'present'}]), ['models[0]: a model needs a name']),
    (dict(models=[3]), ['models[0]: 3 is neither a model name nor a dict']),
    (dict(models=[{'name': 'x', 'state': 'gone'}]), ["state 'gone' is not one of present, latest, absent"]),
    (dict(models=[{'name': 'x', 'state': 'absent', 'preload': True}]), ['x:latest cannot be preloaded and absent']),
    (dict(name='x', keep_alive='ten minutes'), ["keep_alive 'ten minutes' is not a duration", 'Go duration']),
    (dict(name='x', models=['y']), ['either name (one model) or models (a list), not both']),
    (dict(), ['not neither']),
    (dict(models=[], prune=True), ['would remove every installed model']),
    (dict(name='x', timeout=0), ['timeout must be at least 1']),
    (dict(name='x', retries=-1), ['retries must be at least 0']),
    (dict(name='x', api_url='127.0.0.1:11434'), ["api_url '127.0.0.1:11434' is not an http(s) address"]),
])
def test_bad_input_names_the_problem_and_the_fix(given, words):
    with pytest.raises(InputError) as info:
        desired_models(params(**given))
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize('keep_alive', ['-1', '0', '300', '10m', '1h30m', '1.5h', '-1m', '500ms'])
def test_keep_alive_accepts_what_ollama_accepts(keep_alive):
    assert desired_models(params(name='x', keep_alive=keep_alive))[0].keep_alive == keep_alive


def test_keep_alive_sent_as_ollama_reads_it():
    assert ollama_api.keep_alive_value('-1') == -1
    assert ollama_api.keep_alive_value('1.5') == 1.5
    assert ollama_api.keep_alive_value('10m') == '10m'
    assert ollama_api.keep_alive_value(None) is None


# ------------------------------------------------------------------ the plan

def test_plan_matches_installed_models_case_insensitively():
    tags = {'models': [tag('LLaMA3:latest'), tag('old:latest'), tag('hf.co/org/repo:Q4_K_M')]}
    desired = desired_models(params(models=['llama3', {'name': 'new', 'state': 'present'},
                                            {'name': 'HF.CO/org/repo:q4_k_m', 'state': 'latest'},
                                            {'name': 'gone', 'state': 'absent'}, {'name': 'Old', 'state': 'absent'}]))
    steps, prune_names = plan(desired, tags, prune=False)
    assert [(s.desired.name.shortest, s.action) for s in steps] == [
        ('llama3:latest', 'present'), ('new:latest', 'pull'), ('HF.CO/org/repo:q4_k_m', 'pull'),
        ('gone:latest', 'absent'), ('Old:latest', 'remove')]
    assert steps[0].before['name'] == 'LLaMA3:latest' and steps[4].before['name'] == 'old:latest'
    assert prune_names == []


def test_prune_removes_only_what_the_list_does_not_name():
    tags = {'models': [tag('keep:latest'), tag('extra:1b'), tag('also:latest'), tag('Absent:latest')]}
    desired = desired_models(params(models=['KEEP', {'name': 'absent', 'state': 'absent'}], prune=True))
    steps, prune_names = plan(desired, tags, prune=True)
    assert prune_names == ['also:latest', 'extra:1b']
    assert steps[1].action == 'remove'


# ------------------------------------------------------------------ converged_result

def test_converged_result_of_present_models():
    tags = {'models': [tag('llama3.2:latest'), tag('nomic-embed-text:latest', DIGEST_B, 300, ['embedding'])]}
    args = params(models=['llama3.2', 'nomic-embed-text'])
    result = converged_result(args, tags, None, False, False)
    assert result['changed'] is False and result['removed'] == [] and 'diff' not in result
    assert [(m['name'], m['action'], m['digest'], m['loaded'], m['preload'], m['attempts']) for m in result['models']] == [
        ('llama3.2:latest', 'present', DIGEST_A, None, None, 0),
        ('nomic-embed-text:latest', 'present', DIGEST_B, None, None, 0)]
    assert [m['name'] for m in result['installed']] == ['llama3.2:latest', 'nomic-embed-text:latest']
    assert converged_result(args, tags, None, True, False) == result
    diffed = converged_result(args, tags, None, False, True)
    assert diffed['diff']['before'] == diffed['diff']['after'] == {'models': [
        {'name': 'llama3.2:latest', 'digest': DIGEST_A, 'size': 1000},
        {'name': 'nomic-embed-text:latest', 'digest': DIGEST_B, 'size': 300}]}


@pytest.mark.parametrize('args, tags, ps', [
    (dict(name='missing'), [], None),                                       # would pull
    (dict(name='llama3', state='latest'), ['llama3:latest'], None),         # latest always pulls
    (dict(name='llama3', state='absent'), ['llama3:latest'], None),         # would remove
    (dict(name='llama3', prune=True), ['llama3:latest', 'x:latest'], None),  # would prune
    (dict(name='llama3', preload=True), ['llama3:latest'], {'models': []}),  # would load
    (dict(name='llama3', preload=True), ['llama3:latest'], None),           # ps not read
    (dict(name='llama3', preload=True), ['llama3:latest'],                  # an older digest is loaded
     {'models': [ps_entry('llama3:latest', DIGEST_B)]}),
    (dict(name='llama3', preload=True, expect_gpu=True), ['llama3:latest'],  # warns: on the CPU
     {'models': [ps_entry('llama3:latest', size_vram=0)]}),
    (dict(name='bad name'), ['llama3:latest'], None),                       # fails
    (dict(name='llama3'), None, None),                                      # no tags read
])
def test_converged_result_is_none_whenever_the_module_would_act_warn_or_fail(args, tags, ps):
    body = None if tags is None else {'models': [tag(name) for name in tags]}
    for check_mode in (False, True):
        assert converged_result(params(**args), body, ps, check_mode, False) is None


def test_converged_result_with_a_preloaded_model_on_the_gpu():
    result = converged_result(params(name='llama3', preload=True, expect_gpu=True), {'models': [tag('llama3:latest')]},
                              {'models': [ps_entry('llama3:latest', size_vram=1000)]}, False, False)
    (model,) = result['models']
    assert model['preload'] == 'already_loaded' and model['loaded']['processor'] == '100% GPU'
    assert result['changed'] is False


@pytest.mark.parametrize('size, vram, text', [
    (1000, 0, '100% CPU'), (1000, 1000, '100% GPU'), (1000, 250, '75%/25% CPU/GPU'), (1000, 2000, 'Unknown'),
])
def test_processor_text_as_ollama_ps_words_it(size, vram, text):
    assert processor_text(size, vram) == text


# ------------------------------------------------------------------ classification and messages

@pytest.mark.parametrize('message, status, kind', [
    ('pull model manifest: file does not exist', None, 'unknown_model'),
    ("model 'x:latest' not found", 404, 'unknown_model'),
    ('pull model manifest: 412: \n\nThe model you are attempting to pull requires a newer version of Ollama.', None,
     'newer_version'),
    ('pull model manifest: Get "https://registry.ollama.ai/v2/library/x/manifests/latest": dial tcp: lookup '
     'registry.ollama.ai: no such host', None, 'registry_unreachable'),
    ('pull model manifest: Get "https://registry.ollama.ai/v2/x": proxyconnect tcp: connection refused', None,
     'registry_unreachable'),
    ('write /root/.ollama/models/blobs/sha256-ab-partial: no space left on device', None, 'disk_full'),
    ('invalid model name', 400, 'bad_name'),
    ('max retries exceeded: unexpected EOF', None, 'dropped'),
    ('digest mismatch, file must be downloaded again: want sha256:a, got sha256:b', None, 'other'),
])
def test_classify_reads_ollamas_own_words(message, status, kind):
    assert classify(message, status) == kind


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ScriptedClient:
    """Answers tags/ps from lists and plays one scripted pull after another (a list of lines or an exception)."""

    def __init__(self, tags, pulls=(), version='0.33.0'):
        self.tag_answers = list(tags)
        self.pulls = list(pulls)
        self.version_answer = version
        self.calls = []

    def tags(self):
        self.calls.append('tags')
        answer = self.tag_answers.pop(0) if len(self.tag_answers) > 1 else self.tag_answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def ps(self):
        self.calls.append('ps')
        return {'models': []}

    def version(self):
        self.calls.append('version')
        return self.version_answer

    def pull(self, name, insecure=False, stall_timeout=60):
        self.calls.append(('pull', name, stall_timeout))
        script = self.pulls.pop(0)

        def stream():
            for item in script:
                if isinstance(item, Exception):
                    raise item
                if callable(item):
                    item()  # time passing between two lines
                    continue
                yield item
        return stream()


def run_task(client, clock=None, **given):
    args = params(**given)
    slept = []
    task = ModelTask(args, client, sleep=slept.append, **({'clock': clock} if clock else {}))
    return task.run(desired_models(args)), slept


LAYER = 'sha256:' + 'c' * 64


def progress_lines(completed, total=1000):
    return [{'status': 'pulling manifest'}, {'status': 'pulling cccccccccccc', 'digest': LAYER, 'total': total,
                                             'completed': completed}]


def test_drops_are_retried_with_growing_pauses_and_counted():
    dropped = OllamaError('the connection to Ollama dropped', 'dropped')
    stalled = OllamaError('no progress from Ollama for 60 s', 'stalled')
    client = ScriptedClient([{'models': []}, {'models': [tag('x:latest')]}], pulls=[
        progress_lines(100) + [dropped], progress_lines(500) + [stalled], progress_lines(1000) + [{'status': 'success'}]])
    result, slept = run_task(client, name='x')
    assert slept == [1.0, 2.0]
    assert result['models'][0]['action'] == 'pulled' and result['models'][0]['attempts'] == 3
    assert [call for call in client.calls if call[0] == 'pull'] == [('pull', 'x:latest', 60)] * 3


def test_retries_exhausted_say_how_far_each_layer_got():
    dropped = OllamaError('the connection to Ollama dropped during the pull: reset', 'dropped')
    client = ScriptedClient([{'models': []}], pulls=[progress_lines(400) + [dropped]] * 3)
    with pytest.raises(TaskFailed) as info:
        run_task(client, name='x', retries=2)
    assert info.value.result['error_kind'] == 'dropped' and info.value.result['attempts'] == 3
    msg = info.value.msg
    assert msg.startswith('x:latest: the pull was interrupted 3 times')
    assert 'pulling cccccccccccc 40% (400 B of 1.0 KB' in msg and 'raise retries (now 2)' in msg


@pytest.mark.parametrize('error, words', [
    ('pull model manifest: file does not exist', ['x:latest: the registry registry.ollama.ai has no such model or tag',
                                                  'Fix: check the name and tag', 'ollama.com/library']),
    ('pull model manifest: Get "https://registry.ollama.ai/v2/library/x/manifests/latest": dial tcp: lookup '
     'registry.ollama.ai: no such host', ['x:latest: Ollama at http://127.0.0.1:11434 cannot reach the registry',
                                          'HTTPS_PROXY', 'ollama_env', 'ollama_models_seed: true']),
    ('pull model manifest: 412: requires a newer version of Ollama', [
        'x:latest needs a newer Ollama than the server at http://127.0.0.1:11434, which runs version 0.31.0',
        'raise my_ollama_image to a newer ollama/ollama image']),
    ('write /m/blobs/sha256-cc-partial: no space left on device', [
        'x:latest: the disk that holds the Ollama model store is full', 'no space left on device', 'free space',
        'the next run resumes it', 'pulling cccccccccccc 40%']),
])
def test_pull_errors_name_the_model_and_the_fix(error, words):
    client = ScriptedClient([{'models': []}], pulls=[progress_lines(400) + [OllamaError(error, classify(error))]],
                            version='0.31.0')
    with pytest.raises(TaskFailed) as info:
        run_task(client, name='x', image_variable='my_ollama_image')
    for word in words:
        assert word in info.value.msg
    assert info.value.result['changed'] is False
    assert ('version' in client.calls) == ('412' in error)


def test_ollama_down_names_the_address_and_the_models():
    down = OllamaError('no answer from Ollama at http://127.0.0.1:9: Connection refused', 'unreachable_server')
    with pytest.raises(TaskFailed) as info:
        run_task(ScriptedClient([down]), models=['llama3', 'nomic-embed-text'], api_url='http://127.0.0.1:9')
    assert info.value.msg.startswith('Ollama is not answering at http://127.0.0.1:9')
    assert 'llama3:latest, nomic-embed-text:latest cannot be managed' in info.value.msg
    assert "Fix: start Ollama (the ollama role's container, or `ollama serve`) or set api_url" in info.value.msg


def test_overall_timeout_ends_the_pull_with_the_layers_progress():
    clock = FakeClock()

    def later(seconds):
        def advance():
            clock.now += seconds
        return advance

    line = {'status': 'pulling cccccccccccc', 'digest': LAYER, 'total': 1000}
    client = ScriptedClient([{'models': []}], pulls=[
        [dict(line, completed=250), later(6), dict(line, completed=600), later(6), dict(line, completed=700)]])
    with pytest.raises(TaskFailed) as info:
        run_task(client, clock=clock, name='x', timeout=10)
    assert info.value.result['error_kind'] == 'timeout'
    assert info.value.msg.startswith('x:latest: the pull did not finish within timeout=10 s (1 attempt)')
    assert 'pulling cccccccccccc 70% (700 B of 1.0 KB' in info.value.msg and 'raise timeout, or re-run' in info.value.msg


def test_stall_timeout_never_outlasts_the_overall_timeout():
    client = ScriptedClient([{'models': []}, {'models': [tag('x:latest')]}], pulls=[[{'status': 'success'}]])
    run_task(client, name='x', timeout=5, stall_timeout=60)
    (pull,) = [call for call in client.calls if call[0] == 'pull']
    assert pull[2] in (5, 6)  # the read timeout: what is left of timeout, not stall_timeout's 60 s


# ------------------------------------------------------------------ progress

def test_human_bytes_in_decimal_units():
    assert [human_bytes(n) for n in (0, 999, 1000, 820_000_000, 2_000_000_000, 35_200_000)] == [
        '0 B', '999 B', '1.0 KB', '820.0 MB', '2.0 GB', '35.2 MB']


def test_progress_lines_give_percent_bytes_and_rate_per_layer():
    clock = FakeClock()
    tracker = PullProgress(clock=clock)
    big, small = 'sha256:' + 'd' * 64, 'sha256:' + 'e' * 64
    tracker.start('llama3.2:latest', 1, 6)
    tracker.update({'status': 'pulling manifest'})
    assert tracker.lines() == ['llama3.2:latest: pulling manifest']
    tracker.update({'status': 'pulling dddddddddddd', 'digest': big, 'total': 2_000_000_000, 'completed': 100_000_000})
    clock.now += 10
    tracker.update({'status': 'pulling dddddddddddd', 'digest': big, 'total': 2_000_000_000, 'completed': 452_000_000})
    assert tracker.lines() == ['llama3.2:latest: pulling dddddddddddd 22% (452.0 MB of 2.0 GB, 35.2 MB/s)']
    # the big layer never sends a closing 100% line: the next layer starting finishes it
    tracker.update({'status': 'pulling eeeeeeeeeeee', 'digest': small, 'total': 1000})
    assert tracker.lines() == ['llama3.2:latest: pulling dddddddddddd 100% (2.0 GB of 2.0 GB, done)',
                               'llama3.2:latest: pulling eeeeeeeeeeee 0% (0 B of 1.0 KB)']
    tracker.update({'status': 'verifying sha256 digest'})
    assert tracker.lines() == ['llama3.2:latest: pulling eeeeeeeeeeee 100% (1.0 KB of 1.0 KB, done)',
                               'llama3.2:latest: verifying sha256 digest']


def test_cached_layers_and_retries_are_said():
    tracker = PullProgress(clock=FakeClock())
    tracker.start('x:latest', 1, 3)
    tracker.update({'status': 'pulling cccccccccccc', 'digest': LAYER, 'total': 1000, 'completed': 1000})
    assert tracker.lines() == ['x:latest: pulling cccccccccccc 100% (1.0 KB of 1.0 KB, already present)']
    tracker.start('x:latest', 2, 3, 'the connection to Ollama dropped')
    assert tracker.lines()[-1] == 'x:latest: attempt 2 of 3, resuming after: the connection to Ollama dropped'


def test_progress_file_is_rewritten_at_most_once_a_second(tmp_path):
    clock = FakeClock()
    path = tmp_path / 'sub' / 'progress.json'
    tracker = PullProgress(str(path), clock=clock)
    tracker.start('x:latest', 1, 1)
    first = json.loads(path.read_text())
    assert first == {'updated': 1000.0, 'lines': ['x:latest: pulling manifest']}
    for completed in (100, 200, 300):
        clock.now += 0.3
        tracker.update({'status': 'pulling cccccccccccc', 'digest': LAYER, 'total': 1000, 'completed': completed})
    assert json.loads(path.read_text())['updated'] == 1000.0  # 0.9 s later: not yet rewritten
    clock.now += 0.2
    tracker.update({'status': 'pulling cccccccccccc', 'digest': LAYER, 'total': 1000, 'completed': 400})
    written = json.loads(path.read_text())
    assert written['updated'] == pytest.approx(1001.1)
    assert written['lines'] == ['x:latest: pulling cccccccccccc 40% (400 B of 1.0 KB, 375 B/s)']  # 300 B in 0.8 s
    assert [p.name for p in path.parent.iterdir()] == ['progress.json']  # no temporary file left behind


def test_unwritable_progress_file_warns_once_and_the_pull_goes_on(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    warnings = []
    tracker = PullProgress(str(blocker / 'progress.json'), clock=FakeClock(), warn=warnings.append)
    tracker.start('x:latest', 1, 1)
    tracker.update({'status': 'pulling manifest'})
    assert len(warnings) == 1 and warnings[0].startswith('progress_file: ')
