# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""ollama_model, answered on the controller when every model already is as the task asks; a pull's progress shown there.

The plugin validates the task's arguments with the module's argument spec, reads GET /api/tags
(and GET /api/ps when a model asks for preload) in one process on the host (module_utils/
ollama_read.py, a standard-library script run by the host's Python) and asks the module's own
planner (module_utils/ollama_models.py's converged_result) for the module's result. It answers
by itself only when the planner returns one. Everything else (a model to pull, update, remove,
prune or load, a warning, bad input, a failed read, async, no known interpreter, no pipelining)
runs the module on the host and returns its result untouched.

A module that may pull (not check mode, a model to be present or latest, no ``async`` on the
task) runs under Ansible's async_wrapper with a progress file that the module rewrites; the
plugin reads the job file and that file (one command a poll) and shows its lines on the
controller at least every 10 s until the module ends. A connection or host that cannot run it so runs it plainly.
"""

from __future__ import annotations

import json
import posixpath
import secrets
import shlex
import time

from ansible.utils.display import Display

from ansible_collections.ragops.gpu_stack.plugins.module_utils import ollama_read
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_models import (
    MUTUALLY_EXCLUSIVE,
    REQUIRED_ONE_OF,
    InputError,
    argument_spec,
    converged_result,
    desired_models,
)
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils import host_read
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils.host_read import HostError

display = Display()

MODULE_NAME = 'ragops.gpu_stack.ollama_model'
# Between the job file and the progress file in one poll's output.
SEPARATOR = '--- ragops ollama_model progress ---'

# Seconds between two polls of the job, and about the least time between two reports.
POLL_EVERY = 2
# The first poll comes sooner: a pull of a small model, or a failure the module finds at once
# (an unknown model, Ollama not answering), is over well within a second.
FIRST_POLL = 0.5
# Each report is shown when its poll ends, and polls take their own time: two may end this much
# closer than POLL_EVERY.
POLL_SLACK = 0.5
# The promise: a report at least this often while the module runs ...
REPORT_EVERY = 10
# ... kept with this much to spare, since the next poll may take longer than the last one did.
REPORT_MARGIN = 1
# async_wrapper's limit beyond the module's own ``timeout``: the module ends itself at its timeout
# with a message that says how far it got; the wrapper's kill is only for a module that hangs.
ASYNC_MARGIN = 300
# What async_wrapper and async_status add to the module's result.
ASYNC_KEYS = ('ansible_job_id', 'started', 'finished', 'results_file')


def read_api(run_on_host, request):
    """``(tags, ps)`` as the host's Ollama answered ``request``, checked for their shape; HostError otherwise."""
    script = host_read.host_script(ollama_read.__file__, 'host_read', request)
    answer = host_read.answer_line(*run_on_host(script))
    if set(answer) != {'tags', 'ps'} or not isinstance(answer['tags'], dict) \
            or not isinstance(answer['tags'].get('models'), list):
        raise HostError('the script on the host printed an answer of another shape')
    if request['ps'] and (not isinstance(answer['ps'], dict) or not isinstance(answer['ps'].get('models'), list)):
        raise HostError('the script on the host printed an answer of another shape')
    return answer['tags'], (answer['ps'] if request['ps'] else None)


def job_status(text):
    """The job file's state as async_wrapper left it: None while the module runs, else its result.

    async_wrapper writes ``{"started": 1, "finished": 0, ...}`` when the job starts and replaces
    the file (a write to a temporary file and a rename) with the module's result when it ends,
    so the file is whole whenever it is read. An empty or missing file is a job still starting.
    """
    text = text.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {'failed': True, 'msg': '%s: the job file holds no JSON result' % MODULE_NAME}
    if not isinstance(data, dict):
        return {'failed': True, 'msg': '%s: the job file holds no JSON result' % MODULE_NAME}
    if 'started' in data and not data.get('finished'):
        return None
    return data


def progress_lines(text):
    """The ``lines`` of a progress file's text, or None when it holds none yet (absent, empty, half-read)."""
    try:
        lines = json.loads(text)['lines']
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        return None
    return lines or None


class ProgressReport:
    """What the controller shows of a running module's progress, and when.

    New lines are shown at the end of the first poll that sees them, at most about once every
    POLL_EVERY seconds. When nothing changed, the last lines (before the first, a line that the
    module runs) are shown again with the time elapsed, so that no REPORT_EVERY seconds pass
    without a report: a repeat is due now when waiting for the next poll's end would come too close.
    """

    def __init__(self, host, started):
        self.prefix = 'ollama_model [%s]' % host
        self.started = started
        self.shown = None
        self.shown_at = None

    def update(self, lines, now, next_at=None):
        """The messages to show at ``now`` for ``lines`` (None: none yet); ``next_at``: when the next
        poll is expected to end (POLL_EVERY after ``now`` unless given). Seconds on ``started``'s clock."""
        next_at = now + POLL_EVERY if next_at is None else next_at
        if lines and lines != self.shown and (self.shown_at is None or now - self.shown_at >= POLL_EVERY - POLL_SLACK):
            self.shown, self.shown_at = list(lines), now
            return ['%s: %s' % (self.prefix, line) for line in lines]
        quiet_since = self.started if self.shown_at is None else self.shown_at
        if next_at - quiet_since < REPORT_EVERY - REPORT_MARGIN:
            return []
        self.shown_at = now
        elapsed = int(now - self.started)
        if not self.shown:
            return ['%s: running on the host, no pull progress yet (%d s elapsed)' % (self.prefix, elapsed)]
        return ['%s: %s (no change, %d s elapsed)' % (self.prefix, line, elapsed) for line in self.shown]


class ActionModule(host_read.HostReadAction):

    MODULE_NAME = MODULE_NAME

    def _argument_spec(self):
        return dict(argument_spec=argument_spec(), mutually_exclusive=MUTUALLY_EXCLUSIVE, required_one_of=REQUIRED_ONE_OF)

    def _converged_outcome(self, params, run_on_host):
        """The module's result when every model already is as the task asks, else None."""
        try:
            desired = desired_models(params)
        except InputError as exc:
            return self._leave_to_module('the module reports bad input: %s' % exc)
        # /api/ps only when a model asks for preload, as the module reads it.
        request = {'api_url': params['api_url'], 'ps': any(entry.preload for entry in desired)}
        tags, ps = read_api(run_on_host, request)
        outcome = converged_result(params, tags, ps, self._task.check_mode, self._task.diff)
        if outcome is None:
            return self._leave_to_module('the models are not all as the task asks, or the module has a warning to give')
        display.vvv('every model at %s already is as this task asks; the module was not run' % params['api_url'])
        return outcome

    def _run_module(self, params, task_vars, wrap_async):
        if wrap_async or self._task.async_val:
            return super()._run_module(params, task_vars, wrap_async)  # the user's async: a job, as ever
        try:
            pulls = not self._task.check_mode and any(entry.state != 'absent' for entry in desired_models(params))
        except InputError:
            pulls = False  # the module fails on it at once
        if not pulls:
            return super()._run_module(params, task_vars, wrap_async)
        if self._connection.has_native_async or self._connection.always_pipeline_modules:
            return super()._run_module(params, task_vars, wrap_async)  # not a host async_wrapper runs on
        return self._run_watched(params, task_vars)

    def _run_watched(self, params, task_vars):
        """The module under async_wrapper with a progress file, shown on the controller until it ends."""
        progress_file = '/tmp/ragops-ollama-model-%s.json' % secrets.token_hex(8)
        module_args = dict(self._task.args, progress_file=progress_file)
        limit = params['timeout'] + ASYNC_MARGIN
        tmpdir = self._make_tmp_path()
        async_val = self._task.async_val
        # async_wrapper takes its time limit from the task's async value; a task without one has 0,
        # which the wrapper would enforce within seconds.
        self._task.async_val = limit
        started = time.monotonic()  # the user waits from here: starting the job counts
        try:
            job = self._execute_module(module_name=MODULE_NAME, module_args=module_args, task_vars=task_vars,
                                       wrap_async=True)
        finally:
            self._task.async_val = async_val
        if job.get('failed') or not job.get('ansible_job_id'):
            display.vvv('%s could not start asynchronously (%s); it runs without progress'
                        % (MODULE_NAME, job.get('msg') or 'no job id'))
            self._remove_tmp_path(tmpdir)
            return super()._run_module(params, task_vars, False)

        results_file = job.get('results_file')
        if not (isinstance(results_file, str) and results_file):
            async_dir = self._remote_expand_user(self.get_shell_option('async_dir', default='~/.ansible_async'))
            results_file = posixpath.join(async_dir, job['ansible_job_id'])
        try:
            status = self._watch(job['ansible_job_id'], results_file, progress_file, limit, task_vars, started)
        finally:
            self._low_level_execute_command('rm -f -- %s %s' % (shlex.quote(progress_file), shlex.quote(results_file)),
                                            sudoable=True)
        return status

    def _watch(self, jid, results_file, progress_file, limit, task_vars, started):
        """Read the job file and the progress file every POLL_EVERY seconds until the job ends; its result.

        One command a poll reads both files (async_status would cost a module run each time, and
        the job file is async_wrapper's documented product: the module's result when it ends).
        """
        report = ProgressReport(task_vars.get('inventory_hostname', 'localhost'), started)
        next_poll = started - POLL_EVERY + FIRST_POLL
        read_both = 'cat -- %s 2>/dev/null; echo; echo %s; cat -- %s 2>/dev/null; true' % (
            shlex.quote(results_file), shlex.quote(SEPARATOR), shlex.quote(progress_file))
        while True:
            # Polls on a POLL_EVERY grid, later (never closer) when one takes longer than that.
            next_poll = max(next_poll + POLL_EVERY, time.monotonic())
            time.sleep(max(0.0, next_poll - time.monotonic()))
            began = time.monotonic()
            answer = self._low_level_execute_command(read_both, sudoable=True)
            job_text, found, progress_text = answer.get('stdout', '').partition(SEPARATOR)
            status = job_status(job_text) if answer.get('rc') == 0 and found else None
            if status is not None:
                break
            if time.monotonic() - started > limit + REPORT_EVERY:
                return dict(failed=True, msg='%s did not finish within %d s (its timeout %d s and a %d s margin); job %s'
                            % (MODULE_NAME, limit, limit - ASYNC_MARGIN, ASYNC_MARGIN, jid))
            lines = progress_lines(progress_text) if found else None
            now = time.monotonic()
            # The next poll ends one poll's time after its start on the grid, as far as this one tells.
            for message in report.update(lines, now, max(next_poll + POLL_EVERY, now) + (now - began)):
                display.display(message)
        # As _execute_module's own parse of a module's output marks it.
        result = dict(status, _ansible_parsed=True)
        for key in ASYNC_KEYS:
            result.pop(key, None)
        if not result.get('failed'):
            result.pop('stderr', None)  # what async_wrapper adds of the module's stderr; a plain run drops it
        return result
