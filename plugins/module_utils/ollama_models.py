# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ollama_model task: its options, the models it is asked for, the plan against
``/api/tags``, the pulls (retried, resumed, with progress), preload and residency, the result.

The module and its action plugin share this file: ``argument_spec()`` is what the controller
validates with, and ``converged_result()`` is the module's own result for a host where there
is nothing to do, built by the same code the module uses, so that the two cannot drift.
Planning and result building use the standard library only; requests is needed only by the
client that ModelTask is given.
"""

from __future__ import annotations

import json
import re
import time

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.ragops.gpu_stack.plugins.module_utils import model_name
from ansible_collections.ragops.gpu_stack.plugins.module_utils.daemon_json import DaemonJsonError, write_atomic
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_api import (
    BAD_NAME,
    DEFAULT_API_URL,
    DISK_FULL,
    NEWER_VERSION,
    REGISTRY_UNREACHABLE,
    RETRYABLE,
    STALLED,
    UNKNOWN_MODEL,
    UNREACHABLE_SERVER,
    OllamaError,
)

STATES = ('present', 'latest', 'absent')
MODEL_KEYS = ('name', 'state', 'preload', 'keep_alive')
MUTUALLY_EXCLUSIVE = [('name', 'models')]
REQUIRED_ONE_OF = [('name', 'models')]

NAME_RULE = ('a model name is [host/][namespace/]model[:tag], for example llama3.2, llama3.2:1b, '
             'mattw/pygmalion or hf.co/org/repo:Q4_K_M')

# Actions that change the host (or would, in check mode).
CHANGING_ACTIONS = ('pulled', 'updated', 'removed', 'would_pull', 'would_update', 'would_remove')
CHANGING_PRELOADS = ('loaded', 'would_load')

PROGRESS_INTERVAL = 1.0  # seconds between two rewrites of progress_file, at most
RATE_WINDOW = 5.0  # seconds of samples a layer's rate is measured over
BACKOFF_MAX = 30.0

# Go's time.ParseDuration syntax, which Ollama's keep_alive accepts, or a number of seconds.
_DURATION = re.compile(r'^[+-]?((\d+(\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+$|^[+-]?0$')
_NUMBER = re.compile(r'^[+-]?(\d+(\.\d*)?|\.\d+)$')

CPU_WARNING_CAUSES = (
    'the container was started without the GPU (no device request or CDI device; after a '
    '`systemctl daemon-reload` a running container can lose it: restart the container), '
    'a driver older than Ollama needs (NVIDIA 550 or newer, 570 for compute capability 5.0-6.2; '
    'ROCm v7 for AMD), CUDA_VISIBLE_DEVICES=-1 or HIP_VISIBLE_DEVICES hiding the device, an AMD '
    'gfx target without HSA_OVERRIDE_GFX_VERSION, or too little free VRAM for the model; the '
    "server log's `inference compute` line says which device Ollama found")


class InputError(ValueError):
    """The task's arguments cannot be right; the message names the problem and the fix."""


class TaskFailed(Exception):
    """The task failed after it started; ``result`` holds what the failure result carries besides msg."""

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


def argument_spec():
    return dict(
        name=dict(type='str'),
        models=dict(type='list', elements='raw'),
        state=dict(type='str', choices=list(STATES), default='present'),
        prune=dict(type='bool', default=False),
        preload=dict(type='bool', default=False),
        keep_alive=dict(type='str'),
        api_url=dict(type='str', default=DEFAULT_API_URL),
        insecure=dict(type='bool', default=False),
        timeout=dict(type='int', default=3600),
        stall_timeout=dict(type='int', default=60),
        retries=dict(type='int', default=5),
        expect_gpu=dict(type='bool', default=False),
        image_variable=dict(type='str', default='ollama_image'),
        progress_file=dict(type='path'),
    )


# ---------------------------------------------------------------------------------------------
# What is asked for


class Desired:
    """One model the task is asked about: its parsed name, as given, and what to do with it."""

    __slots__ = ('name', 'requested', 'state', 'preload', 'keep_alive')

    def __init__(self, name, requested, state, preload, keep_alive):
        self.name = name
        self.requested = requested
        self.state = state
        self.preload = preload
        self.keep_alive = keep_alive

    def pull_name(self):
        """What /api/pull is sent: the normalised name, with its scheme when one was given (insecure registries)."""
        return ('%s://' % self.name.scheme if self.name.scheme else '') + self.name.shortest


def _check_keep_alive(value, where):
    if value is None:
        return None
    text = str(value).strip()
    if not (_DURATION.match(text) or _NUMBER.match(text)):
        raise InputError('%s: keep_alive %r is not a duration. Fix: give seconds (300, -1 = stay loaded) or a '
                         'Go duration such as 10m, 1h30m or 24h.' % (where, value))
    return text


def _one_model(item, index, params):
    where = 'models[%d]' % index
    if isinstance(item, str):
        item = {'name': item}
    if not isinstance(item, dict):
        raise InputError('%s: %r is neither a model name nor a dict. Fix: give a name (llama3.2) or '
                         '{name: llama3.2, state: present, preload: true, keep_alive: 10m}.' % (where, item))
    unknown = sorted(set(item) - set(MODEL_KEYS))
    if unknown:
        raise InputError('%s: unknown key(s) %s. Fix: use only %s.' % (where, ', '.join(unknown), ', '.join(MODEL_KEYS)))
    text = item.get('name')
    if not isinstance(text, str) or not text.strip():
        raise InputError('%s: a model needs a name. Fix: add name: (%s).' % (where, NAME_RULE))
    state = item.get('state', params.get('state') or 'present')
    if state not in STATES:
        raise InputError('%s (%s): state %r is not one of %s.' % (where, text, state, ', '.join(STATES)))
    try:
        preload = boolean(item.get('preload', params.get('preload') or False), strict=True)
    except TypeError:
        raise InputError('%s (%s): preload %r is not a boolean.' % (where, text, item.get('preload'))) from None
    keep_alive = _check_keep_alive(item.get('keep_alive', params.get('keep_alive')), '%s (%s)' % (where, text))
    return _desired(text, state, preload, keep_alive, where)


def _desired(text, state, preload, keep_alive, where):
    try:
        name = model_name.parse(text)
    except model_name.InvalidModelName as exc:
        raise InputError('%s: %s. Fix: %s.' % (where, exc, NAME_RULE)) from None
    if preload and state == 'absent':
        raise InputError('%s: %s cannot be preloaded and absent. Fix: drop preload or the state absent.'
                         % (where, name.shortest))
    return Desired(name, text, state, preload, keep_alive)


def desired_models(params):
    """The models the task's params ask about, each name parsed, in the given order.

    Raises InputError, before anything is sent anywhere, for an invalid name, two entries that
    are one model, and any option that cannot be right.
    """
    if (params.get('name') is None) == (params.get('models') is None):
        raise InputError('give either name (one model) or models (a list), not %s.'
                         % ('both' if params.get('name') is not None else 'neither'))
    for option, least in (('timeout', 1), ('stall_timeout', 1), ('retries', 0)):
        if params.get(option) is not None and params[option] < least:
            raise InputError('%s must be at least %d, not %d.' % (option, least, params[option]))
    api_url = params.get('api_url') or DEFAULT_API_URL
    if not re.match(r'^https?://[^/]+', api_url):
        raise InputError('api_url %r is not an http(s) address. Fix: give one like %s.' % (api_url, DEFAULT_API_URL))
    if params.get('name') is not None:
        keep_alive = _check_keep_alive(params.get('keep_alive'), 'name (%s)' % params['name'])
        desired = [_desired(params['name'], params.get('state') or 'present', bool(params.get('preload')),
                            keep_alive, 'name')]
    else:
        if not params['models'] and params.get('prune'):
            raise InputError('models is empty and prune is true, which would remove every installed model. '
                             'Fix: list the models to keep, or remove models by name with state: absent.')
        desired = [_one_model(item, index, params) for index, item in enumerate(params['models'])]
    seen = {}
    for entry in desired:
        first = seen.setdefault(entry.name.key, entry)
        if first is not entry:
            raise InputError('models: %r and %r are one model (%s). Fix: list it once.'
                             % (first.requested, entry.requested, entry.name.shortest))
    return desired


# ---------------------------------------------------------------------------------------------
# What is installed, and the plan


def installed_index(tags):
    """{ModelName.key: /api/tags entry} of the installed models (names Ollama lists but this parser refuses are left out)."""
    index = {}
    for entry in (tags or {}).get('models') or []:
        try:
            key = model_name.parse(entry.get('name') or entry.get('model') or '').key
        except model_name.InvalidModelName:
            continue
        index[key] = entry
    return index


def _brief(entry):
    return {'name': entry.get('name'), 'digest': entry.get('digest'), 'size': entry.get('size')}


def _installed_view(entry):
    return {'name': entry.get('name'), 'digest': entry.get('digest'), 'size': entry.get('size'),
            'modified_at': entry.get('modified_at')}


class Step:
    """What the plan does with one requested model."""

    __slots__ = ('desired', 'before', 'action')

    def __init__(self, desired, before, action):
        self.desired = desired
        self.before = before  # its /api/tags entry before the task, or None
        self.action = action  # pull | present | remove | absent (planned; the result words come later)


def plan(desired, tags, prune):
    """``(steps, prune_names)``: one Step per requested model in order, and the installed names prune removes."""
    index = installed_index(tags)
    steps = []
    for entry in desired:
        before = index.get(entry.name.key)
        if entry.state == 'absent':
            action = 'remove' if before else 'absent'
        elif entry.state == 'latest' or not before:
            action = 'pull'
        else:
            action = 'present'
        steps.append(Step(entry, before, action))
    prune_names = []
    if prune:
        wanted = set(entry.name.key for entry in desired)
        prune_names = sorted(tags_entry['name'] for key, tags_entry in index.items() if key not in wanted)
    return steps, prune_names


def planned_action(step, check_mode):
    """The result's ``action`` for a step in check mode, or for a step that needs no request."""
    if step.action == 'present':
        return 'present'
    if step.action == 'absent':
        return 'absent'
    if step.action == 'remove':
        return 'would_remove' if check_mode else None
    if check_mode:
        # Only a pull can tell whether the registry has a newer digest: reported as a change,
        # as docker_image_pull does for pull=always.
        return 'would_update' if step.before else 'would_pull'
    return None


# ---------------------------------------------------------------------------------------------
# Residency


def processor_text(size, size_vram):
    """Where a loaded model sits, worded as `ollama ps` words it."""
    size = int(size or 0)
    size_vram = int(size_vram or 0)
    if size_vram == 0:
        return '100% CPU'
    if size_vram == size:
        return '100% GPU'
    if size_vram > size or size == 0:
        return 'Unknown'
    cpu = int(round((size - size_vram) * 100.0 / size))
    return '%d%%/%d%% CPU/GPU' % (cpu, 100 - cpu)


def loaded_entry(ps, name):
    """The /api/ps entry of ``name`` (a ModelName) with its processor text, or None."""
    for entry in (ps or {}).get('models') or []:
        try:
            key = model_name.parse(entry.get('name') or entry.get('model') or '').key
        except model_name.InvalidModelName:
            continue
        if key == name.key:
            return {'name': entry.get('name'), 'size': entry.get('size'), 'size_vram': entry.get('size_vram'),
                    'processor': processor_text(entry.get('size'), entry.get('size_vram')),
                    'digest': entry.get('digest'), 'expires_at': entry.get('expires_at'),
                    'context_length': entry.get('context_length')}
    return None


def is_loaded(loaded, installed):
    """The loaded copy is the installed model (a pull that changed the digest needs a new load)."""
    return bool(loaded and installed and loaded.get('digest') in (None, installed.get('digest')))


def residency_warning(name, loaded):
    return ('%s is loaded entirely on the CPU (size_vram 0 of %s bytes, %s) although this host has a GPU '
            '(expect_gpu). Likely causes: %s.' % (name, loaded.get('size'), loaded.get('processor'), CPU_WARNING_CAUSES))


def residency_warnings(entries, expect_gpu):
    if not expect_gpu:
        return []
    return [residency_warning(entry['name'], entry['loaded']) for entry in entries
            if entry['preload'] in ('loaded', 'already_loaded') and entry['loaded']
            and not int(entry['loaded'].get('size_vram') or 0)]


# ---------------------------------------------------------------------------------------------
# The result


def model_entry(step, action, after, ps, preload, attempts=0):
    """One element of the result's ``models``: the model as it is after the task (predicted in check mode)."""
    desired = step.desired
    return {
        'name': (after or {}).get('name') or desired.name.shortest,
        'requested': desired.requested,
        'state': desired.state,
        'action': action,
        'digest': (after or {}).get('digest'),
        'size': (after or {}).get('size'),
        'modified_at': (after or {}).get('modified_at'),
        'loaded': loaded_entry(ps, desired.name) if ps is not None else None,
        'preload': preload,
        'attempts': attempts,
    }


def assemble_result(entries, removed, tags_before, installed_after, diff_mode):
    """The task's result from its model entries, the pruned names and the installed models after."""
    changed = bool(removed) or any(entry['action'] in CHANGING_ACTIONS or entry['preload'] in CHANGING_PRELOADS
                                   for entry in entries)
    installed = sorted(installed_after, key=lambda item: str(item.get('name')))
    result = {'changed': changed, 'models': entries, 'removed': list(removed), 'installed': installed}
    if diff_mode:
        before = sorted((_brief(entry) for entry in (tags_before or {}).get('models') or []),
                        key=lambda item: str(item['name']))
        result['diff'] = {'before': {'models': before}, 'after': {'models': [_brief(entry) for entry in installed]}}
    return result


def check_mode_result(steps, prune_names, tags, ps):
    """``(entries, installed)`` of check mode: what would be done, predicted from /api/tags (and /api/ps)."""
    entries = []
    index = installed_index(tags)
    gone = set(model_name.parse(name).key for name in prune_names)
    added = []
    for step in steps:
        action = planned_action(step, check_mode=True)
        after = None if action in ('would_remove', 'absent') else step.before
        if action == 'would_remove':
            gone.add(step.desired.name.key)
        if action == 'would_pull':
            added.append({'name': step.desired.name.shortest, 'digest': None, 'size': None, 'modified_at': None})
        preload = None
        if step.desired.preload:
            loaded = loaded_entry(ps, step.desired.name)
            preload = 'already_loaded' if action in ('present', 'would_update') and is_loaded(loaded, step.before) \
                else 'would_load'
        entries.append(model_entry(step, action, after, ps, preload))
    installed = [_installed_view(entry) for key, entry in index.items() if key not in gone] + added
    return entries, installed


def converged_result(params, tags, ps, check_mode, diff_mode):
    """The module's exact result when it would send nothing but its reads and warn nothing; else None.

    ``params`` are validated module params, ``tags`` and ``ps`` the parsed bodies of GET
    /api/tags and GET /api/ps (``ps`` may be None when no model asks for preload). None also
    when the params are bad (the module fails) or a read the module needs is missing. A host
    with nothing to do gets the same answer with or without ``check_mode``: the reads are all
    either mode sends.
    """
    try:
        desired = desired_models(params)
    except InputError:
        return None
    needs_ps = any(entry.preload for entry in desired)
    if tags is None or (needs_ps and ps is None):
        return None
    steps, prune_names = plan(desired, tags, params.get('prune'))
    if prune_names or any(step.action in ('pull', 'remove') for step in steps):
        return None
    entries, installed = check_mode_result(steps, prune_names, tags, ps if needs_ps else None)
    if any(entry['preload'] == 'would_load' for entry in entries):
        return None
    if residency_warnings(entries, params.get('expect_gpu')):
        return None
    return assemble_result(entries, [], tags, installed, diff_mode)


# ---------------------------------------------------------------------------------------------
# Progress


def human_bytes(size):
    """Decimal units with one decimal, as Ollama's progress bars count (2.0 GB = 2,000,000,000 bytes)."""
    size = float(size or 0)
    for limit, unit in ((1e12, 'TB'), (1e9, 'GB'), (1e6, 'MB'), (1e3, 'KB')):
        if size >= limit:
            return '%.1f %s' % (size / limit, unit)
    return '%d B' % size


class Layer:
    """What the pull stream said about one blob."""

    __slots__ = ('digest', 'total', 'completed', 'done', 'cached', 'samples')

    def __init__(self, digest):
        self.digest = digest
        self.total = 0
        self.completed = 0
        self.done = False
        self.cached = False
        self.samples = []

    @property
    def short(self):
        return self.digest.split(':', 1)[-1][:12]

    def rate(self):
        if len(self.samples) < 2:
            return None
        (first_time, first_bytes), (last_time, last_bytes) = self.samples[0], self.samples[-1]
        if last_time <= first_time:
            return None
        return max(0.0, (last_bytes - first_bytes) / (last_time - first_time))

    def describe(self):
        """``pulling dde5aa3fc5ff 41% (820.0 MB of 2.0 GB, 35.2 MB/s)``."""
        completed = self.total if self.done and self.total else self.completed
        if not self.total:
            return 'pulling %s' % self.short
        percent = int(completed * 100 // self.total)
        if self.cached:
            tail = 'already present'
        elif self.done:
            tail = 'done'
        else:
            rate = self.rate()
            tail = '%s/s' % human_bytes(rate) if rate is not None else None
        sizes = '%s of %s' % (human_bytes(completed), human_bytes(self.total))
        return 'pulling %s %d%% (%s)' % (self.short, percent, sizes + (', ' + tail if tail else ''))


class PullProgress:
    """Follows the pull stream of one model after another and, when given a path, rewrites it
    atomically, at most once a second, with {"updated": epoch, "lines": [...]}.

    Ollama may never send a layer's closing 100% line: a layer counts as done when the next
    one starts (Ollama fetches layers one after another) or when verification begins.
    """

    def __init__(self, path=None, clock=time.time, warn=None):
        self.path = path
        self.clock = clock
        self.warn = warn
        self.model = None
        self.layers = {}
        self.order = []
        self.phase = None
        self.note = None
        self.last_write = None

    def start(self, model, attempt, attempts, reason=None):
        """A pull request for ``model`` begins (attempt numbers from 1); a retry keeps the layers seen."""
        if model != self.model:
            self.model = model
            self.layers = {}
            self.order = []
        for layer in self.layers.values():
            layer.samples = []
        self.phase = 'pulling manifest'  # what Ollama does first, before its first line arrives
        self.note = ('attempt %d of %d, resuming after: %s' % (attempt, attempts, reason)) if attempt > 1 else None
        self.maybe_write()

    def update(self, line):
        now = self.clock()
        digest = line.get('digest')
        status = line.get('status') or ''
        if digest:
            layer = self.layers.get(digest)
            if layer is None:
                layer = self.layers[digest] = Layer(digest)
                self.order.append(digest)
                for other in self.layers.values():
                    if other is not layer:
                        other.done = True
                fresh = True
            else:
                fresh = False
            layer.total = int(line.get('total') or layer.total or 0)
            completed = int(line.get('completed') or 0)
            if fresh and layer.total and completed == layer.total:
                layer.cached = True  # only an already-present blob prints one line at completed == total
            layer.completed = max(layer.completed, completed)
            if layer.total and layer.completed >= layer.total:
                layer.done = True
            layer.samples.append((now, layer.completed))
            while len(layer.samples) > 2 and now - layer.samples[0][0] > RATE_WINDOW:
                layer.samples.pop(0)
            self.phase = None
        elif status:
            if not status.startswith('pulling'):
                for layer in self.layers.values():
                    layer.done = True
            self.phase = status
        self.maybe_write(now)

    def lines(self):
        """One line per layer in flight and for the last one finished, then the phase after the layers."""
        if self.model is None:
            return []
        layers = [self.layers[digest] for digest in self.order]
        finished = [layer for layer in layers if layer.done]
        shown = [layer for layer in layers if not layer.done or (finished and layer is finished[-1])]
        lines = ['%s: %s' % (self.model, layer.describe()) for layer in shown]
        if self.phase and (self.phase != 'success'):
            lines.append('%s: %s' % (self.model, self.phase))
        if self.note:
            lines.append('%s: %s' % (self.model, self.note))
        return lines

    def how_far(self):
        """Every layer seen, for a message that says how far a pull got."""
        if not self.order:
            return 'no layer progress reported yet (last status: %s)' % (self.phase or 'none')
        return '; '.join(self.layers[digest].describe() for digest in self.order)

    def maybe_write(self, now=None):
        if not self.path:
            return
        now = self.clock() if now is None else now
        if self.last_write is not None and now - self.last_write < PROGRESS_INTERVAL:
            return
        self.last_write = now
        try:
            write_atomic(self.path, json.dumps({'updated': now, 'lines': self.lines()}) + '\n', mode=0o644)
        except DaemonJsonError as exc:
            if self.warn:
                self.warn('progress_file: %s %s; progress is not shown while pulling' % (exc.path, exc))
            self.path = None


# ---------------------------------------------------------------------------------------------
# Messages


def server_down_message(api_url, desired, exc):
    names = ', '.join(entry.name.shortest for entry in desired) or 'the installed models'
    if exc.kind == UNREACHABLE_SERVER:
        return ('Ollama is not answering at %s (%s), so %s cannot be managed. Fix: start Ollama (the ollama role\'s '
                'container, or `ollama serve`) or set api_url to the address it listens on.' % (api_url, exc.message, names))
    return 'Ollama at %s did not list its models (%s), so %s cannot be managed.' % (api_url, exc.message, names)


def pull_failure_message(desired, exc, params, server_version, how_far):
    """The message for a pull that failed: the model, what Ollama said and the fix."""
    name = desired.name.shortest
    host = desired.name.host
    kind = exc.kind
    if kind == UNKNOWN_MODEL:
        where = 'https://ollama.com/library' if host == model_name.DEFAULT_HOST else host
        return ('%s: the registry %s has no such model or tag (Ollama: %s). Fix: check the name and tag (%s), '
                'e.g. at %s.' % (name, host, exc.message, NAME_RULE, where))
    if kind == REGISTRY_UNREACHABLE:
        return ('%s: Ollama at %s cannot reach the registry %s (Ollama: %s). Fix: give the Ollama host HTTPS access to '
                '%s (behind a proxy, set HTTPS_PROXY in the container through the ollama role\'s ollama_env), or seed the '
                'model from a cache with ollama_models_seed: true.' % (name, params['api_url'], host, exc.message, host))
    if kind == NEWER_VERSION:
        return ('%s needs a newer Ollama than the server at %s, which runs version %s (the registry answered 412). Fix: '
                'raise %s to a newer ollama/ollama image and re-run.'
                % (name, params['api_url'], server_version or 'unknown', params.get('image_variable') or 'ollama_image'))
    if kind == DISK_FULL:
        return ('%s: the disk that holds the Ollama model store is full (Ollama: %s). Fix: free space there (remove '
                'models with state: absent or prune: true) or move the model store to a larger disk; the partial download '
                'is kept and the next run resumes it. Progress: %s.' % (name, exc.message, how_far))
    if kind == BAD_NAME:
        return '%s: Ollama refused the name (%s). Fix: %s.' % (name, exc.message, NAME_RULE)
    if kind in RETRYABLE:
        return ('%s: the pull was interrupted %d times, the last time: %s. Progress: %s. Fix: check the network '
                'between Ollama and the registry, or raise retries (now %d) or stall_timeout (now %d s); a re-run '
                'resumes the partial download.'
                % (name, params['retries'] + 1, exc.message, how_far, params['retries'], params['stall_timeout']))
    if kind == UNREACHABLE_SERVER:
        return ('%s: Ollama stopped answering at %s during the pull (%s). Progress: %s. Fix: check that the Ollama '
                'server runs (its log, its container), then re-run: the partial download is kept.'
                % (name, params['api_url'], exc.message, how_far))
    return '%s: the pull failed (Ollama: %s). Progress: %s.' % (name, exc.message, how_far)


def timeout_message(desired, params, attempts, how_far):
    return ('%s: the pull did not finish within timeout=%d s (%d attempt%s). Progress: %s. The partial download is '
            'kept: raise timeout, or re-run to resume.'
            % (desired.name.shortest, params['timeout'], attempts, '' if attempts == 1 else 's', how_far))


# ---------------------------------------------------------------------------------------------
# The task


class PullTimeout(Exception):
    """The task's overall timeout ran out during a pull."""


class ModelTask:
    """Runs the task against an OllamaClient: read, plan, apply (unless check mode), report."""

    def __init__(self, params, client, check_mode=False, diff_mode=False, warn=None,
                 clock=time.monotonic, sleep=time.sleep):
        self.params = params
        self.client = client
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.warn = warn or (lambda message: None)
        self.clock = clock
        self.sleep = sleep
        self.deadline = clock() + params['timeout']
        self.progress = PullProgress(params.get('progress_file'), warn=self.warn)
        self.changed = False
        # Steps whose pull finished: a later failure must still report the change they made.
        self.pulled = []

    def fail(self, msg, **extra):
        raise TaskFailed(msg, changed=self.changed or self._pulls_changed_something(), **extra)

    def _pulls_changed_something(self):
        """Whether a finished pull added a model or moved its digest, for a task that fails later on."""
        if any(not step.before for step in self.pulled):
            return True
        if not self.pulled:
            return False
        try:
            index = installed_index(self.client.tags())
        except OllamaError:
            return True  # cannot tell: a pull that finished may have changed the model, say so
        return any((index.get(step.desired.name.key) or {}).get('digest') != step.before.get('digest')
                   for step in self.pulled)

    def run(self, desired):
        """The result dict; raises TaskFailed with the message and the failure's details."""
        try:
            tags_before = self.client.tags()
        except OllamaError as exc:
            self.fail(server_down_message(self.params['api_url'], desired, exc), error_kind=exc.kind)
        needs_ps = any(entry.preload for entry in desired)
        ps_before = self._read_ps() if needs_ps else None
        steps, prune_names = plan(desired, tags_before, self.params['prune'])
        if self.check_mode:
            entries, installed = check_mode_result(steps, prune_names, tags_before, ps_before)
        else:
            entries, installed, prune_names = self._apply(steps, prune_names, tags_before, ps_before)
        for warning in residency_warnings(entries, self.params['expect_gpu']):
            self.warn(warning)
        return assemble_result(entries, prune_names, tags_before, installed, self.diff_mode)

    def _read_ps(self):
        try:
            return self.client.ps()
        except OllamaError as exc:
            self.fail('GET %s/api/ps failed: %s' % (self.params['api_url'], exc.message), error_kind=exc.kind)

    def _delete(self, name):
        try:
            self.client.delete(name)
        except OllamaError as exc:
            if exc.kind == UNKNOWN_MODEL:
                return False  # gone since /api/tags was read
            self.fail('%s: could not be removed (Ollama: %s).' % (name, exc.message), error_kind=exc.kind, model=name)
        self.changed = True
        return True

    def _apply(self, steps, prune_names, tags_before, ps_before):
        attempts = {}
        acted = False
        gone_already = set()
        for step in steps:
            if step.action == 'remove':
                if self._delete(step.before['name']):
                    acted = True
                else:
                    gone_already.add(id(step))
        for step in steps:
            if step.action == 'pull':
                attempts[id(step)] = self._pull(step)
                self.pulled.append(step)
                acted = True
        # Only what was really deleted: a model gone since /api/tags was read is no change of ours.
        pruned = [name for name in prune_names if self._delete(name)]
        acted = acted or bool(pruned)
        tags_after = self._tags_after() if acted else tags_before
        after_index = installed_index(tags_after)
        rows = []
        loads = []
        for step in steps:
            after = after_index.get(step.desired.name.key)
            action = 'absent' if id(step) in gone_already else self._outcome(step, after)
            preload = None
            if step.desired.preload:
                if not after:
                    self.fail('%s: cannot be preloaded: Ollama does not list it after the pull.'
                              % step.desired.name.shortest, model=step.desired.name.shortest)
                if is_loaded(loaded_entry(ps_before, step.desired.name), after):
                    preload = 'already_loaded'
                else:
                    loads.append((step.desired, after))
                    preload = 'loaded'
            rows.append((step, action, after, preload, attempts.get(id(step), 0)))
        for desired, after in loads:
            self._load(desired, after)
        ps_after = self._read_ps() if loads else ps_before
        entries = [model_entry(step, action, after, ps_after, preload, count)
                   for step, action, after, preload, count in rows]
        installed = [_installed_view(entry) for entry in after_index.values()]
        return entries, installed, pruned

    def _outcome(self, step, after):
        """The result's action for a step that was applied; a pull is a change only when the digest moved."""
        if step.action == 'pull':
            if not step.before:
                action = 'pulled'
            elif after and after.get('digest') != step.before.get('digest'):
                action = 'updated'
            else:
                return 'unchanged'
            self.changed = True
            return action
        if step.action == 'remove':
            return 'removed'
        return planned_action(step, check_mode=False)

    def _tags_after(self):
        try:
            return self.client.tags()
        except OllamaError as exc:
            self.fail('GET %s/api/tags failed after the changes: %s' % (self.params['api_url'], exc.message),
                      error_kind=exc.kind)

    def _load(self, desired, after):
        capabilities = after.get('capabilities')
        if capabilities is None:
            try:
                capabilities = self.client.show(after['name']).get('capabilities') or []
            except OllamaError:
                capabilities = []
        embedding = 'embedding' in capabilities and 'completion' not in capabilities
        try:
            self.client.load(after['name'], desired.keep_alive, embedding=embedding)
        except OllamaError as exc:
            self.fail('%s: preload failed (Ollama: %s). Fix: check the server log for the load error; a model '
                      'larger than the memory Ollama can use does not load.' % (after['name'], exc.message),
                      error_kind=exc.kind, model=after['name'])
        self.changed = True

    def _remaining(self):
        return self.deadline - self.clock()

    def _pull(self, step):
        """Pull one model, re-issuing the pull after a drop or a stall; the number of requests sent."""
        desired = step.desired
        name = desired.name.shortest
        # Ollama matches an installed model case-insensitively itself; the scheme must travel for an http registry.
        pull_name = desired.pull_name()
        allowed = self.params['retries'] + 1
        reason = None
        for attempt in range(1, allowed + 1):
            self.progress.start(name, attempt, allowed, reason)
            try:
                self._stream(pull_name)
                return attempt
            except PullTimeout:
                self.fail(timeout_message(desired, self.params, attempt, self.progress.how_far()),
                          error_kind='timeout', model=name, attempts=attempt)
            except OllamaError as exc:
                if exc.kind in RETRYABLE and self._remaining() <= 0:
                    self.fail(timeout_message(desired, self.params, attempt, self.progress.how_far()),
                              error_kind='timeout', model=name, attempts=attempt)
                if exc.kind not in RETRYABLE or attempt == allowed:
                    version = self._server_version() if exc.kind == NEWER_VERSION else None
                    self.fail(pull_failure_message(desired, exc, self.params, version, self.progress.how_far()),
                              error_kind=exc.kind, model=name, attempts=attempt)
                reason = exc.message
                pause = min(float(2 ** (attempt - 1)), BACKOFF_MAX, max(0.0, self._remaining()))
                self.sleep(pause)
        raise AssertionError('unreachable')  # pragma: no cover

    def _stream(self, pull_name):
        remaining = self._remaining()
        if remaining <= 0:
            raise PullTimeout()
        stall = max(1, min(self.params['stall_timeout'], int(remaining) + 1))
        stream = self.client.pull(pull_name, insecure=self.params['insecure'], stall_timeout=stall)
        try:
            for line in stream:
                self.progress.update(line)
                if self._remaining() <= 0 and line.get('status') != 'success':
                    raise PullTimeout()
        except OllamaError as exc:
            if exc.kind == STALLED and self._remaining() <= 0:
                raise PullTimeout() from None
            raise
        finally:
            stream.close()

    def _server_version(self):
        try:
            return self.client.version()
        except OllamaError:
            return None
