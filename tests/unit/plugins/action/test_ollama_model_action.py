# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The ollama_model action plugin, built as ansible-playbook builds it (a Task, a PlayContext, the
local connection with pipelining), against a real Ollama double process.

The host is this machine: the plugin's read script really runs, with this Python, through the
local connection, and reaches the double over HTTP as it would reach Ollama. ``_execute_module``
runs the real module in-process against the same double (host_read_harness.AsyncModuleOnTheHost:
plainly, or for an async run in a forked process that writes a job file as async_wrapper does)
and returns its real output, so "the module's result" below is what the module printed.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

import pytest

from ansible_collections.ragops.gpu_stack.plugins.action import ollama_model as action_plugin
from ansible_collections.ragops.gpu_stack.plugins.modules import ollama_model

from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, printed_result
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.action import host_read_harness as harness
from ansible_collections.ragops.gpu_stack.tests.unit.world.conftest import spawn_double

MODULE_NAME = 'ragops.gpu_stack.ollama_model'
HOST = 'gpu-1'
TASK_VARS = {'inventory_hostname': HOST, 'ansible_python_interpreter': sys.executable}
THREE = ['nomic-embed-text', 'all-minilm:latest', 'qwen2.5:0.5b']
PROGRESS_LINE = re.compile(r'^ollama_model \[gpu-1\]: all-minilm:latest: pulling [0-9a-f]{12} \d+% \(.+ of .+\)')


class Host:
    """The host: records each low-level command and runs it for real through the local connection,
    or, in mode ``garbled``, answers the read with what no script prints."""

    def __init__(self, action, fake, directory, monkeypatch):  # pylint: disable=unused-argument
        self.real = action._low_level_execute_command
        self.mode = 'ok'
        self.calls = []

    def __call__(self, cmd, sudoable=True, in_data=None, **kwargs):
        self.calls.append(dict(cmd=cmd, sudoable=sudoable, in_data=in_data))
        if self.mode == 'garbled' and in_data:
            return dict(rc=0, stdout='Welcome to gpu-1\n{"tags": [', stderr='')
        if self.mode == 'other-shape' and in_data:
            return dict(rc=0, stdout='{"tags": {"models": "none"}, "ps": null}\n', stderr='')
        return self.real(cmd, sudoable=sudoable, in_data=in_data, **kwargs)

    def reads(self):
        return [call for call in self.calls if call['in_data']]


def module_output(double, args, check_mode=False, diff=False):
    """What the module prints for ``args`` against the double, parsed (module_runner.printed_result)."""
    return printed_result(ollama_model, dict(args, api_url=args.get('api_url', double.url)), check_mode=check_mode,
                          diff=diff)


@pytest.fixture(name='double')
def fixture_double(tmp_path):
    """A double with nomic-embed-text and all-minilm installed; the counters zeroed after."""
    running = spawn_double(tmp_path / 'models', tmp_path / 'double.log')
    running.pull('nomic-embed-text')
    running.pull('all-minilm')
    running.post('/_double/reset')
    yield running
    running.stop()


@pytest.fixture(name='shown')
def fixture_shown(monkeypatch):
    """What the plugin displays on the controller: ``(monotonic time, message)`` in order."""
    lines = []
    monkeypatch.setattr(action_plugin.display, 'display', lambda msg, *args, **kwargs: lines.append((time.monotonic(), msg)))
    return lines


@pytest.fixture(name='said')
def fixture_said(monkeypatch):
    return harness.vvv_lines(monkeypatch, action_plugin.display)


@pytest.fixture(name='make_action')
def fixture_make_action(tmp_path, monkeypatch, double, said, shown):  # pylint: disable=unused-argument
    """``make(args, ...)`` -> ``(action, module, host)``, the task's api_url the double's."""
    jobs = tmp_path / 'jobs'
    jobs.mkdir()
    made = []

    def make(args, check_mode=False, diff=False, async_val=0):
        args = dict(args, api_url=args.get('api_url', double.url))
        action, task = harness.build_action(action_plugin, MODULE_NAME, args, TASK_VARS, check_mode=check_mode, diff=diff,
                                            async_val=async_val)
        module = harness.AsyncModuleOnTheHost(task, lambda module_args, **kw: module_output(double, module_args, **kw), jobs)
        action._execute_module = module
        host = Host(action, double, tmp_path, monkeypatch)
        action._low_level_execute_command = host
        made.append(module)
        return action, module, host

    yield make
    for module in made:
        module.reap()


def with_url(double, args):
    return dict(args, api_url=args.get('api_url', double.url))


def load(double, name, keep_alive='1h'):
    """Load an embedding model as the module's preload does: /api/embed with an empty input."""
    response = double.post('/api/embed', {'model': name, 'input': [], 'keep_alive': keep_alive})
    assert response.status_code == 200, response.text


def upstream_requests(double):
    stats = double.stats()
    return stats['manifest_requests'] + stats['blob_requests']


# ---------------------------------------------------------------------------------------------
# A converged host: answered on the controller, exactly as the module answers

CONVERGED = {
    'one model, as given': dict(name='nomic-embed-text'),
    'one model, full name in another case': dict(name='registry.ollama.ai/library/All-MiniLM:latest'),
    'two models, one absent and not installed': dict(models=['nomic-embed-text', dict(name='llama3.2', state='absent')]),
    'prune, the list is what is installed': dict(models=['nomic-embed-text', 'all-minilm'], prune=True),
    'absent, not installed': dict(name='qwen2.5:0.5b', state='absent'),
}


@pytest.mark.parametrize('diff', [False, True], ids=['plain', 'diff'])
@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('args', list(CONVERGED.values()), ids=list(CONVERGED))
def test_converged_host_is_answered_without_the_module(make_action, double, said, args, check_mode, diff):
    action, module, host = make_action(args, check_mode=check_mode, diff=diff)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == []
    assert [call['cmd'] for call in host.calls] == ['%s -' % sys.executable]
    assert host.calls[0]['in_data'].decode().rstrip().splitlines()[-1].startswith('host_read(json.loads(')
    # The module's own answer for the same arguments and the same server.
    assert result == module_output(double, with_url(double, args), check_mode=check_mode, diff=diff)
    assert result['changed'] is False
    assert ('diff' in result) is diff
    assert upstream_requests(double) == 0
    assert said[-1] == 'every model at %s already is as this task asks; the module was not run' % double.url


def test_a_preloaded_model_that_is_loaded_is_answered(make_action, double):
    load(double, 'nomic-embed-text')
    args = dict(models=[dict(name='nomic-embed-text', preload=True, keep_alive='1h'), 'all-minilm'])
    action, module, _host = make_action(args)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == []
    assert result == module_output(double, with_url(double, args))
    assert result['changed'] is False


def test_three_models_converged_cost_one_read(make_action, double):
    double.pull('qwen2.5:0.5b')
    action, module, host = make_action(dict(models=THREE))

    started = time.perf_counter()
    result = action.run(task_vars=TASK_VARS)
    elapsed = time.perf_counter() - started

    assert module.calls == [] and len(host.calls) == 1
    assert result['changed'] is False and len(result['models']) == 3
    print('converged fast path, three models: %.3f s' % elapsed)


# ---------------------------------------------------------------------------------------------
# Anything else runs the module on the host, and its result comes back untouched

NOT_CONVERGED = {
    'a missing model': dict(name='qwen2.5:0.5b'),
    'latest, which only a pull can tell': dict(name='nomic-embed-text', state='latest'),
    'an installed model to remove': dict(name='all-minilm', state='absent'),
    'prune with an extra model installed': dict(models=['nomic-embed-text'], prune=True),
    'a preload not loaded': dict(name='nomic-embed-text', preload=True),
}


def reasons(said):
    """What the plugin itself said at -vvv (the local connection says more there)."""
    return [line for line in said if line.startswith(MODULE_NAME)]


def module_result(module):
    """The one result the module printed, in whichever way the plugin ran it."""
    if module.results:
        (only,) = module.results.values()
        return dict(only, _ansible_parsed=True)  # as ActionBase._execute_module parses async_status's output
    (only,) = module.returned
    return only


@pytest.mark.parametrize('args', list(NOT_CONVERGED.values()), ids=list(NOT_CONVERGED))
def test_check_mode_runs_the_module_for_a_host_not_converged(make_action, double, args):
    action, module, host = make_action(args, check_mode=True)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == harness.module_call(MODULE_NAME, with_url(double, args))
    assert len(host.reads()) == 1
    assert result == module_result(module)
    assert result['changed'] is True


@pytest.mark.parametrize('args', list(NOT_CONVERGED.values()), ids=list(NOT_CONVERGED))
def test_a_host_not_converged_runs_the_module(make_action, double, args):
    action, module, _host = make_action(args)

    result = action.run(task_vars=TASK_VARS)

    (call,) = module.calls
    assert call['module_name'] == MODULE_NAME
    if args.get('state') == 'absent':  # nothing can be pulled: a plain run
        assert call == harness.module_call(MODULE_NAME, with_url(double, args))[0]
    else:
        assert call['wrap_async'] is True
        assert call['module_args'] == dict(with_url(double, args), progress_file=call['module_args']['progress_file'])
    assert result == module_result(module)
    if args.get('state') == 'latest':
        # Only the pull can tell: it asked the registry, and the digest did not move.
        assert double.stats()['manifest_requests'] == 1 and result['changed'] is False
        return
    assert result['changed'] is True
    # The module's own run converged the host: the next run is answered on the controller.
    again, module_again, _host = make_action(args)
    assert again.run(task_vars=TASK_VARS)['changed'] is False
    assert module_again.calls == []


@pytest.mark.parametrize('mode', ['garbled', 'other-shape'])
def test_a_read_that_proves_nothing_runs_the_module(make_action, double, said, mode):
    args = dict(name='nomic-embed-text')
    action, module, host = make_action(args, check_mode=True)
    host.mode = mode

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == harness.module_call(MODULE_NAME, with_url(double, args))
    assert result == module_result(module) and result['changed'] is False
    assert reasons(said) == ['%s runs on the host: the script on the host printed %s' % (
        MODULE_NAME, 'no JSON answer' if mode == 'garbled' else 'an answer of another shape')]


def test_ollama_not_answering_runs_the_module_which_reports_it(make_action, said):
    args = dict(name='nomic-embed-text', api_url='http://127.0.0.1:%d' % free_port())
    action, module, _host = make_action(args, check_mode=True)

    result = action.run(task_vars=TASK_VARS)

    assert module.calls == harness.module_call(MODULE_NAME, args)
    assert result == module_result(module) and result['failed'] is True
    (reason,) = reasons(said)
    assert reason.startswith('%s runs on the host: on the host: URLError: ' % MODULE_NAME), reason


def test_bad_input_fails_before_the_host_is_asked(make_action):
    action, module, host = make_action(dict(name='nomic-embed-text', state='newest'))

    with pytest.raises(Exception, match='state'):
        action.run(task_vars=TASK_VARS)
    assert module.calls == [] and host.calls == []


def test_an_async_task_runs_the_module_as_a_job(make_action, double):
    args = dict(name='qwen2.5:0.5b')
    action, module, host = make_action(args, async_val=600)

    result = action.run(task_vars=TASK_VARS)

    # The user's async: the job is the caller's to poll; no read, no progress file.
    assert module.calls == harness.module_call(MODULE_NAME, with_url(double, args), wrap_async=True)
    assert result['ansible_job_id'] and result['started'] is True
    assert host.calls == []


def test_a_host_that_cannot_start_a_job_runs_the_module_plainly(make_action, double, said, monkeypatch):
    args = dict(name='qwen2.5:0.5b')
    action, module, _host = make_action(args)
    real = module.__call__

    def no_async(module_name=None, module_args=None, task_vars=None, wrap_async=False):
        if wrap_async:
            module.calls.append(dict(module_name=module_name, module_args=module_args, wrap_async=True))
            return {'failed': True, 'msg': 'could not create directory: /nonexistent/.ansible_async'}
        return real(module_name, module_args, task_vars, wrap_async)
    monkeypatch.setattr(action, '_execute_module', no_async)

    result = action.run(task_vars=TASK_VARS)

    assert [call['wrap_async'] for call in module.calls] == [True, False]
    assert module.calls[1]['module_args'] == with_url(double, args)
    assert result == module_result(module) and result['changed'] is True
    assert any('could not start asynchronously (could not create directory' in line for line in said)


# ---------------------------------------------------------------------------------------------
# A long pull: the module runs as a job, its progress shown on the controller

def test_a_slow_pull_shows_progress_at_least_every_10_s(make_action, double, shown, tmp_path):
    double.delete('all-minilm')
    # all-minilm is about 300 kB: some 13 s at 23 kB/s.
    double.faults(rate=23_000)
    args = dict(name='all-minilm')
    action, module, host = make_action(args)

    started = time.monotonic()
    result = action.run(task_vars=TASK_VARS)
    ended = time.monotonic()

    assert ended - started > 12
    assert result == module_result(module)
    assert result['changed'] is True and result['models'][0]['action'] == 'pulled'
    assert not set(result) & {'ansible_job_id', 'started', 'finished', 'results_file'}
    # Reports: the first within 10 s of the start, then no 10 s without one, and none much closer
    # than 2 s to the one before (each is shown after its poll, which takes its own time; one
    # report may be several lines at once).
    times = sorted({round(at, 3) for at, _message in shown})
    assert times, shown
    gaps = [later - earlier for earlier, later in zip([started] + times, times + [ended])]
    assert max(gaps) <= 10, gaps
    assert min(later - earlier for earlier, later in zip(times, times[1:])) >= 2 - action_plugin.POLL_SLACK, times
    messages = [message for _at, message in shown]
    print('\n'.join('%5.1f s  %s' % (at - started, message) for at, message in shown))
    assert any(PROGRESS_LINE.match(message) for message in messages), messages
    # Polls every 2 s or so, each one command that reads the job file and the progress file; no
    # async_status module run.
    cats = [call['cmd'] for call in host.calls if call['cmd'].startswith('cat -- ')]
    assert len(cats) >= 4 and module.polls == []
    progress_file = module.calls[0]['module_args']['progress_file']
    assert progress_file.startswith('/tmp/') and all(cmd.endswith('cat -- %s 2>/dev/null; true' % progress_file) for cmd in cats)
    # The job file and the progress file are gone.
    assert not os.path.exists(progress_file)
    assert not os.listdir(tmp_path / 'jobs')


def test_a_pull_without_news_repeats_its_last_lines_and_returns_the_module_failure(make_action, double, shown):
    # 20 bytes a second: the manifest itself crawls, so "pulling manifest" is all there is to show
    # until the module's own timeout ends the task.
    double.faults(rate=20)
    args = dict(name='llama3.2:1b', timeout=12)
    action, module, _host = make_action(args)

    started = time.monotonic()
    result = action.run(task_vars=TASK_VARS)
    ended = time.monotonic()

    assert result == module_result(module)
    assert result['failed'] is True and 'did not finish within timeout=12 s' in result['msg']
    times = [at for at, _message in shown]
    assert max(later - earlier for earlier, later in zip([started] + times, times + [ended])) <= 10, shown
    messages = [message for _at, message in shown]
    assert messages[0] == 'ollama_model [gpu-1]: llama3.2:1b: pulling manifest', messages
    assert re.match(r'^ollama_model \[gpu-1\]: llama3.2:1b: pulling manifest \(no change, \d+ s elapsed\)$', messages[1])


# ---------------------------------------------------------------------------------------------
# When a report is due: ProgressReport against a clock the test moves

def lines_at(report, *steps):
    return [report.update(lines, now) for now, lines in steps]


def test_new_lines_are_shown_at_once_but_at_most_every_2_s():
    report = action_plugin.ProgressReport('h', 100.0)
    a, b, c = ['m: pulling aaa 1% (1 B of 9 B)'], ['m: pulling aaa 5% (5 B of 9 B)'], ['m: pulling aaa 9% (9 B of 9 B)']

    assert lines_at(report, (100.5, a), (101.0, b), (102.3, b), (103.7, c), (103.9, c)) == [
        ['ollama_model [h]: m: pulling aaa 1% (1 B of 9 B)'],
        [],  # new, but only 0.5 s after the last report
        ['ollama_model [h]: m: pulling aaa 5% (5 B of 9 B)'],  # 1.8 s after it: this poll took less than the last
        [],  # 1.4 s
        ['ollama_model [h]: m: pulling aaa 9% (9 B of 9 B)'],
    ]


def test_unchanged_lines_are_repeated_with_the_time_elapsed():
    report = action_plugin.ProgressReport('h', 100.0)
    a = ['m: pulling aaa 1% (1 B of 9 B)', 'm: pulling bbb 100% (2 B of 2 B)']

    # With polls 2 s apart, a repeat is due 7 s after a report: the next poll ends 9 s after it.
    shown = lines_at(report, (101.0, a), (103.0, a), (107.9, a), (108.0, a), (114.9, None), (115.0, a))

    assert shown == [
        ['ollama_model [h]: %s' % line for line in a], [], [],
        ['ollama_model [h]: %s (no change, 8 s elapsed)' % line for line in a], [],
        ['ollama_model [h]: %s (no change, 15 s elapsed)' % line for line in a],
    ]


def test_a_repeat_comes_earlier_when_polls_are_slow():
    report = action_plugin.ProgressReport('h', 100.0)
    a = ['m: pulling aaa 1% (1 B of 9 B)']
    assert report.update(a, 101.0) == ['ollama_model [h]: m: pulling aaa 1% (1 B of 9 B)']

    # Polls that take 3 s: the one ending at 106 s would leave the next to end at 110.5 s.
    assert report.update(a, 103.5, next_at=107.5) == []
    assert report.update(a, 106.0, next_at=110.5) == ['ollama_model [h]: m: pulling aaa 1% (1 B of 9 B) (no change, 6 s elapsed)']


def test_before_any_progress_the_report_says_the_module_runs():
    report = action_plugin.ProgressReport('h', 100.0)

    assert lines_at(report, (102.0, None), (106.9, None), (107.0, None), (113.9, None), (114.0, None)) == [
        [], [], ['ollama_model [h]: running on the host, no pull progress yet (7 s elapsed)'], [],
        ['ollama_model [h]: running on the host, no pull progress yet (14 s elapsed)'],
    ]


@pytest.mark.parametrize('text', ['', 'not json', '{"updated": 1}', '{"lines": "m: pulling"}', '{"lines": [1]}',
                                  '{"updated": 1, "lines": []}'])
def test_a_progress_file_without_lines_shows_none(text):
    assert action_plugin.progress_lines(text) is None


def test_a_progress_file_gives_its_lines():
    text = json.dumps({'updated': 1.5, 'lines': ['m: pulling aaa 1% (1 B of 9 B)']})
    assert action_plugin.progress_lines(text) == ['m: pulling aaa 1% (1 B of 9 B)']
