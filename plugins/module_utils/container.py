# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ONE container reconciler: a desired spec against ``docker inspect``, through the docker SDK's low-level API.

The path of data:

    module options -> ollama_spec() / pgvector_spec() -> spec (a plain dict)
    spec + docker inspect -> managed views -> differences -> actions -> report

A spec names every field this collection manages; ``spec_view()`` and ``container_view()`` turn the
spec and an existing container into the same shape, and every field of that shape is compared
strictly: an environment variable we no longer set recreates the container. What we do not
manage (hostname, anonymous volumes, image labels, ...) is never looked at. Environment variables
that come from the image (``Config.Env`` of the image) are left out of the container's side unless
the spec sets them, so the image's own ``PATH`` or ``OLLAMA_HOST`` never counts as drift.

Drift is repaired by stop, remove, create, start: named volumes are part of the spec, so the new
container mounts the same data. ``state=absent`` keeps them unless ``purge``.

Nothing here imports the docker SDK: the client is handed in (a ``docker.APIClient`` in production,
a recording fake in unit tests), and its errors come from docker_client's guarded import.
"""

from __future__ import annotations

import copy
import re
import socket
import time

from ansible.module_utils.common.text.formatters import human_to_bytes

from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_client import (
    APIError,
    NotFound,
    api_error_text,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.gpu import docker_gpu_runtime_problem, ollama_outlook

LABEL_PREFIX = 'org.ragops.gpu_stack.'
MANAGED_FIELDS = (
    'image', 'image_id', 'env', 'command', 'ports', 'mounts', 'device_requests', 'devices', 'group_add',
    'healthcheck', 'restart_policy', 'log_config', 'memory', 'nano_cpus', 'network', 'shm_size', 'labels',
)
BUILTIN_NETWORKS = ('bridge', 'host', 'none')
NS = 1000000000
LOG_TAIL = 20


class InputError(Exception):
    """Bad module input, found before anything is touched; the message names the option."""


class ContainerError(Exception):
    """The engine refused or the container misbehaved; ``details`` go into the failed result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.details = details


# --------------------------------------------------------------------------- small parsers

_DURATION_PART = re.compile(r'(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)')
_DURATION = re.compile(r'^-?(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$')
_UNIT_NS = {'ns': 1, 'us': 1000, 'µs': 1000, 'ms': 1000000, 's': NS, 'm': 60 * NS, 'h': 3600 * NS}


def duration_ns(option, value):
    """'10s', '1m30s', '500ms' or a number of seconds -> nanoseconds."""
    text = str(value).strip()
    if re.match(r'^\d+$', text):
        return int(text) * NS
    if not _DURATION.match(text) or text.startswith('-'):
        raise InputError('%s: %r is not a duration; write it like 10s, 1m30s or 500ms' % (option, value))
    return int(sum(float(n) * _UNIT_NS[u] for n, u in _DURATION_PART.findall(text)))


def size_bytes(option, value):
    """'16g', '512m', '1GB' or a number of bytes -> bytes."""
    if isinstance(value, bool):
        raise InputError('%s: %r is not a size; write it like 512m, 16g or a number of bytes' % (option, value))
    if isinstance(value, int):
        result = value
    else:
        try:
            result = human_to_bytes(str(value).strip().upper())
        except ValueError:
            raise InputError('%s: %r is not a size; write it like 512m, 16g or a number of bytes' % (option, value)) from None
    if result < 0:
        raise InputError('%s: %r must not be negative' % (option, value))
    return int(result)


def split_image(ref):
    """'repo/name:tag' -> ('repo/name', 'tag'); digests stay whole; no tag -> ('repo/name', None)."""
    if '@' in ref:
        repo, digest = ref.split('@', 1)
        return repo, digest
    slash = ref.rfind('/')
    colon = ref.rfind(':')
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, None


def check_image_ref(option, ref):
    if not ref or not ref.strip() or any(c.isspace() for c in ref):
        raise InputError('%s: %r is not an image reference' % (option, ref))
    repo, tag = split_image(ref)
    if not tag:
        raise InputError('%s: %s has no tag; pin one (for example %s:<version>), or write %s:latest if you really mean it'
                         % (option, ref, repo, repo))
    return ref


def env_text(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


_ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_.]*$')


def merge_env(typed, free, option='env'):
    """The typed options' variables plus the free-form ones; a disagreement fails."""
    env = dict(typed)
    for key, value in sorted((free or {}).items()):
        if not _ENV_NAME.match(str(key)):
            raise InputError('%s: %r is not a valid environment variable name' % (option, key))
        if value is None:
            raise InputError('%s.%s: give a value; leave the key out to unset it' % (option, key))
        text = env_text(value)
        if key in typed and typed[key] != text:
            raise InputError('%s.%s is %r but a typed option sets it to %r; set it in one place only'
                             % (option, key, text, typed[key]))
        env[key] = text
    return env


def common_host_options(params, spec, default_port):
    """Ports, network, restart policy, logs, limits and health check timings shared by both modules."""
    network = params.get('network') or 'bridge'
    spec['network'] = network
    if params.get('publish', True):
        if network in ('host', 'none'):
            raise InputError('publish: a container on network %s cannot publish ports; set publish: false' % network)
        port = params.get('port') or default_port
        if not 1 <= port <= 65535:
            raise InputError('port: %s is not a TCP port (1-65535)' % port)
        address = params.get('bind_address') or '127.0.0.1'
        try:
            socket.inet_pton(socket.AF_INET6 if ':' in address else socket.AF_INET, address)
        except OSError:
            raise InputError('bind_address: %r is not an IP address' % address) from None
        spec['ports'] = [dict(host_ip=address, host_port=port, container_port=default_port, protocol='tcp')]
    else:
        spec['ports'] = []
    policy = params.get('restart_policy') or 'unless-stopped'
    spec['restart_policy'] = dict(name=policy, maximum_retry_count=0)
    log_opts = {}
    if params.get('log_max_size'):
        log_opts['max-size'] = str(params['log_max_size'])
    if params.get('log_max_file'):
        if params['log_max_file'] < 1:
            raise InputError('log_max_file: must be at least 1')
        log_opts['max-file'] = str(params['log_max_file'])
    spec['log_config'] = dict(type='json-file', config=log_opts)
    spec['memory'] = size_bytes('memory', params['memory']) if params.get('memory') else 0
    cpus = params.get('cpus')
    if cpus is not None and cpus <= 0:
        raise InputError('cpus: %s must be more than 0' % cpus)
    spec['nano_cpus'] = int(round(cpus * NS)) if cpus else 0
    return spec


def healthcheck_spec(test, options, defaults):
    options = dict(defaults, **{k: v for k, v in (options or {}).items() if v is not None})
    retries = int(options['retries'])
    if retries < 1:
        raise InputError('healthcheck.retries: must be at least 1')
    return dict(
        test=list(test),
        interval=duration_ns('healthcheck.interval', options['interval']),
        timeout=duration_ns('healthcheck.timeout', options['timeout']),
        retries=retries,
        start_period=duration_ns('healthcheck.start_period', options['start_period']),
    )


def volume_name(option, value):
    if not re.match(r'^[A-Za-z0-9][A-Za-z0-9_.-]+$', value or ''):
        raise InputError('%s: %r is not a Docker volume name ([A-Za-z0-9][A-Za-z0-9_.-]+)' % (option, value))
    return value


def container_name(value):
    if not re.match(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$', value or ''):
        raise InputError('name: %r is not a Docker container name ([A-Za-z0-9][A-Za-z0-9_.-]*)' % (value,))
    return value


# --------------------------------------------------------------------------- Ollama

OLLAMA_IMAGE = 'ollama/ollama:0.33.0'
OLLAMA_PORT = 11434
OLLAMA_HEALTH_DEFAULTS = dict(interval='10s', timeout='5s', retries=3, start_period='60s')
KV_CACHE_TYPES = ('f16', 'q8_0', 'q4_0')


def ollama_env(params, vendor):
    """The OLLAMA_* variables of the typed options (strings, as Docker holds them)."""
    env = {}

    def at_least(low, option, name):
        value = params.get(option)
        if value is not None:
            if value < low:
                raise InputError('%s: %s %s' % (option, value, 'must not be negative' if low == 0 else 'must be at least %d' % low))
            env[name] = str(value)

    def flag(option, name):
        if params.get(option) is not None:
            env[name] = '1' if params[option] else '0'

    at_least(1, 'num_parallel', 'OLLAMA_NUM_PARALLEL')
    at_least(0, 'max_loaded_models', 'OLLAMA_MAX_LOADED_MODELS')
    at_least(1, 'max_queue', 'OLLAMA_MAX_QUEUE')
    at_least(0, 'context_length', 'OLLAMA_CONTEXT_LENGTH')
    keep_alive = params.get('keep_alive')
    if keep_alive is not None:
        text = str(keep_alive).strip()
        if not (re.match(r'^-?\d+$', text) or _DURATION.match(text)):
            raise InputError('keep_alive: %r is neither a Go duration (5m, 1h30m, -1m) nor a number of seconds (300, -1 '
                             'keeps models loaded forever)' % (keep_alive,))
        env['OLLAMA_KEEP_ALIVE'] = text
    flag('flash_attention', 'OLLAMA_FLASH_ATTENTION')
    kv = params.get('kv_cache_type')
    if kv is not None:
        if kv not in KV_CACHE_TYPES:
            raise InputError('kv_cache_type: %r is not one of %s' % (kv, ', '.join(KV_CACHE_TYPES)))
        if kv != 'f16' and params.get('flash_attention') is not True:
            raise InputError('kv_cache_type: %s needs flash_attention: true; llama.cpp refuses a quantized V cache without '
                             'flash attention (set flash_attention: true, or kv_cache_type: f16)' % kv)
        env['OLLAMA_KV_CACHE_TYPE'] = kv
    overhead = params.get('gpu_overhead')
    if overhead is not None:
        env['OLLAMA_GPU_OVERHEAD'] = str(size_bytes('gpu_overhead', overhead))
    flag('sched_spread', 'OLLAMA_SCHED_SPREAD')
    if params.get('origins'):
        for origin in params['origins']:
            if not origin or ',' in origin or any(c.isspace() for c in origin):
                raise InputError('origins: %r is not an origin (no commas or spaces; one per list entry)' % (origin,))
        env['OLLAMA_ORIGINS'] = ','.join(params['origins'])
    debug = params.get('debug')
    if debug is not None and debug != 0:
        if debug not in (1, 2):
            raise InputError('debug: %r must be 0 (off), 1 (debug) or 2 (trace)' % (debug,))
        env['OLLAMA_DEBUG'] = str(debug)
    flag('noprune', 'OLLAMA_NOPRUNE')
    visible = params.get('visible_devices')
    if visible:
        if vendor == 'nvidia':
            env['CUDA_VISIBLE_DEVICES'] = ','.join(str(v) for v in visible)
        elif vendor == 'amd':
            env['ROCR_VISIBLE_DEVICES'] = ','.join(str(v) for v in visible)
        else:
            raise InputError('visible_devices: this container runs on the CPU (gpu: none or no GPU found), '
                             'so there are no GPUs to make visible')
    return env


def _gpus_value(gpus):
    """'all' | count | [ids] -> ('all', None) | ('count', N) | ('ids', [str])."""
    if gpus is None or gpus == 'all':
        return 'all', None
    if isinstance(gpus, bool):
        raise InputError('gpus: %r must be all, a number of GPUs or a list of GPU ids/UUIDs' % (gpus,))
    if isinstance(gpus, int) or (isinstance(gpus, str) and gpus.strip().isdigit()):
        count = int(gpus)
        if count < 1:
            raise InputError('gpus: %s must be at least 1; use gpu: none for the CPU' % count)
        return 'count', count
    if isinstance(gpus, str):
        gpus = [part.strip() for part in gpus.split(',')]
    if isinstance(gpus, (list, tuple)):
        ids = [str(g).strip() for g in gpus]
        if not ids or any(not g for g in ids):
            raise InputError('gpus: %r has an empty entry; give GPU indexes or UUIDs' % (gpus,))
        if len(set(ids)) != len(ids):
            raise InputError('gpus: %r names a GPU twice' % (gpus,))
        return 'ids', ids
    raise InputError('gpus: %r must be all, a number of GPUs or a list of GPU ids/UUIDs' % (gpus,))


def choose_gpu(gpu, facts):
    """(vendor, cpu_fallback_reason) for the gpu option and the host's ragops_gpu facts.

    gpu: auto follows gpu.py's ollama_outlook (the one rule gpu_facts reports too); a vendor asked
    for is refused only when the host plainly lacks it. Whether Ollama will then use the GPU is
    ollama_spec's question (the outlook again, with the GPUs and environment the container gets).
    """
    facts = facts or {}
    if gpu == 'none':
        return 'none', None
    if gpu == 'nvidia':
        nvidia = facts.get('nvidia') or {}
        if facts and not nvidia.get('gpus') and not nvidia.get('pci_devices') and facts.get('gpu_vendor') != 'nvidia':
            raise InputError('gpu: nvidia was asked for but this host shows no NVIDIA GPU (gpu_vendor is %s); '
                             'use gpu: auto or gpu: none' % facts.get('gpu_vendor'))
        return 'nvidia', None
    if gpu == 'amd':
        if facts:
            reason = docker_gpu_runtime_problem('amd', facts)
            if reason:
                raise InputError('gpu: amd was asked for but %s' % reason[reason.index('but ') + 4:])
        return 'amd', None
    if gpu != 'auto':
        raise InputError('gpu: %r is not a GPU vendor this module knows; use auto, nvidia, amd or none' % (gpu,))
    vendor = facts.get('gpu_vendor')
    if vendor not in ('nvidia', 'amd', 'none', None):
        raise InputError('gpu: auto found GPU vendor %r, which this module does not know; set gpu: none or gpu_facts' % vendor)
    outlook = ollama_outlook(facts)
    if outlook['vendor'] == 'none':
        return 'none', outlook['cpu_fallback_reason']
    return outlook['vendor'], None


def engine_major(version):
    match = re.match(r'^(\d+)', str(version or ''))
    return int(match.group(1)) if match else None


def nvidia_devices(facts, kind, value, mode, engine_version):
    """device_requests for NVIDIA: runtime mode (driver nvidia) or CDI names (driver cdi, Docker 25+)."""
    gpus = (facts.get('nvidia') or {}).get('gpus') or []
    known = {}
    for g in gpus:
        if g.get('index') is not None:
            known[str(g['index'])] = g
        if g.get('uuid'):
            known[g['uuid']] = g
        for mig in g.get('mig_devices') or []:
            if mig.get('uuid'):
                known[mig['uuid']] = g
    if kind == 'count' and gpus and value > len(gpus):
        raise InputError('gpus: %s GPUs asked for but this host has %d' % (value, len(gpus)))
    if kind == 'ids' and gpus:
        unknown = [i for i in value if i not in known]
        if unknown:
            raise InputError('gpus: %s not among this host\'s NVIDIA GPUs (indexes and UUIDs: %s)'
                             % (', '.join(unknown), ', '.join(sorted(known))))
    if mode == 'cdi':
        major = engine_major(engine_version)
        if major is None or major < 25:
            raise InputError('gpu_mode: cdi needs Docker 25 or later; this engine is %s. Use gpu_mode: runtime'
                             % (engine_version or 'of unknown version'))
        if kind == 'all':
            names = ['nvidia.com/gpu=all']
        elif kind == 'count':
            names = ['nvidia.com/gpu=%d' % i for i in range(value)]
        else:
            names = ['nvidia.com/gpu=%s' % i for i in value]
        return [dict(driver='cdi', count=0, device_ids=names, capabilities=[], options={})], names
    if kind == 'all':
        return [dict(driver='nvidia', count=-1, device_ids=[], capabilities=[['gpu']], options={})], ['all']
    if kind == 'count':
        return ([dict(driver='nvidia', count=value, device_ids=[], capabilities=[['gpu']], options={})],
                ['count: %d' % value])
    return [dict(driver='nvidia', count=0, device_ids=list(value), capabilities=[['gpu']], options={})], list(value)


def amd_devices(facts, kind, value):
    """(devices, group_add, env) for AMD: /dev/kfd and /dev/dri (or the selected render nodes), their gids."""
    amd = (facts or {}).get('amd') or {}
    nodes = [n['path'] for n in amd.get('render_nodes') or [] if n.get('exists', True) and n.get('path')]
    by_index = {}
    for g in amd.get('gpus') or []:
        if g.get('render_node'):
            by_index[str(g.get('index'))] = g['render_node']
    if kind == 'all':
        selected = ['/dev/dri']
    elif kind == 'count':
        if nodes and value > len(nodes):
            raise InputError('gpus: %s GPUs asked for but this host has %d AMD render nodes' % (value, len(nodes)))
        if not nodes:
            raise InputError('gpus: a count needs the host\'s render nodes; gpu_facts has none')
        selected = nodes[:value]
    else:
        selected = []
        for item in value:
            if item.startswith('/dev/dri/'):
                path = item
            elif item in by_index:
                path = by_index[item]
            else:
                raise InputError('gpus: %r is neither an AMD GPU index (%s) nor a /dev/dri/renderD* path'
                                 % (item, ', '.join(sorted(by_index)) or 'none known'))
            if nodes and path not in nodes:
                raise InputError('gpus: %s is not one of this host\'s render nodes (%s)' % (path, ', '.join(nodes)))
            selected.append(path)
    devices = [dict(path_on_host=p, path_in_container=p, permissions='rwm') for p in ['/dev/kfd'] + selected]
    gids = [str(g) for g in amd.get('group_ids') or []]
    return devices, gids, ['/dev/kfd'] + selected


def rocm_image(image):
    """ollama/ollama:0.33.0 -> ollama/ollama:0.33.0-rocm; a tag that already says rocm, or a digest, stays."""
    repo, tag = split_image(image)
    if '@' in image or (tag and 'rocm' in tag):
        return image
    return '%s:%s' % (repo, 'rocm' if tag in (None, 'latest') else tag + '-rocm')


def _selected_gpus(vendor, kind, value, devices):
    """The GPUs a container gets, as ollama_outlook takes them: None for all, else NVIDIA indexes/UUIDs or AMD nodes."""
    if vendor == 'amd':
        return None if '/dev/dri' in devices else [d for d in devices if d != '/dev/kfd']
    if kind == 'all':
        return None
    if kind == 'count':
        return [str(i) for i in range(value)]  # the runtime hands out the first N GPUs
    return list(value)


def ollama_spec(params, gpu_facts, engine_version=None):
    """Module options + the host's GPU facts -> (spec, gpu report). Raises InputError on bad input."""
    name = container_name(params.get('name') or 'ollama')
    image = check_image_ref('image', params.get('image') or OLLAMA_IMAGE)
    gpu = params.get('gpu') or 'auto'
    kind, value = _gpus_value(params.get('gpus'))
    vendor, fallback = choose_gpu(gpu, gpu_facts)
    mode = params.get('gpu_mode') or 'runtime'
    if mode not in ('runtime', 'cdi'):
        raise InputError('gpu_mode: %r must be runtime or cdi' % (mode,))
    if vendor == 'none' and kind != 'all':
        raise InputError('gpus: %r selects GPUs but this container runs on the CPU (%s); leave gpus at all (the '
                         'default) for the CPU, or set gpu: nvidia or gpu: amd on a host with that GPU'
                         % (params.get('gpus'), fallback or 'gpu: none'))
    spec = dict(name=name, image=image, command=None, device_requests=[], devices=[], group_add=[], shm_size=None,
                stop_timeout=10)
    gpu_report = dict(requested=gpu, vendor=vendor, mode=None, devices=[], inference='cpu', cpu_fallback_reason=fallback)
    env = {}
    if vendor == 'nvidia':
        spec['device_requests'], gpu_report['devices'] = nvidia_devices(gpu_facts or {}, kind, value, mode, engine_version)
        gpu_report['mode'] = mode
    elif vendor == 'amd':
        if mode == 'cdi':
            raise InputError('gpu_mode: cdi is for NVIDIA GPUs; AMD GPUs are passed as device nodes')
        spec['devices'], spec['group_add'], gpu_report['devices'] = amd_devices(gpu_facts or {}, kind, value)
        gpu_report['mode'] = 'devices'
        if params.get('rocm_image', True):
            spec['image'] = rocm_image(image)
        hsa = params.get('hsa_override_gfx_version') or 'auto'
        if hsa == 'auto':
            env.update(((gpu_facts or {}).get('amd') or {}).get('hsa_override_env') or {})
        elif hsa != 'none':
            if not re.match(r'^\d+\.\d+\.\d+$', hsa):
                raise InputError('hsa_override_gfx_version: %r must look like 10.3.0 (or be auto or none)' % hsa)
            env['HSA_OVERRIDE_GFX_VERSION'] = hsa
    elif params.get('hsa_override_gfx_version') not in (None, 'auto', 'none'):
        raise InputError('hsa_override_gfx_version: only applies to AMD GPUs, and this container runs on %s'
                         % ('the CPU' if vendor == 'none' else vendor))
    env.update(ollama_env(params, vendor))
    spec['env'] = merge_env(env, params.get('env'))
    if vendor != 'none':
        # The GPU is passed either way (the prediction may be wrong, and passing it costs nothing); the
        # report says what Ollama is expected to do with exactly these GPUs and this environment.
        outlook = ollama_outlook(gpu_facts, vendor=vendor, selected=_selected_gpus(vendor, kind, value, gpu_report['devices']),
                                 env=spec['env'])
        gpu_report.update(inference=outlook['inference'], cpu_fallback_reason=outlook['cpu_fallback_reason'])
    volume = volume_name('volume', params.get('volume') or name)
    spec['mounts'] = [dict(type='volume', source=volume, target='/root/.ollama', read_only=False)]
    spec['volumes'] = [volume]
    common_host_options(params, spec, OLLAMA_PORT)
    spec['healthcheck'] = healthcheck_spec(['CMD', 'ollama', 'list'], params.get('healthcheck'), OLLAMA_HEALTH_DEFAULTS)
    spec['labels'] = {LABEL_PREFIX + 'module': 'ollama_container', LABEL_PREFIX + 'instance': name,
                      LABEL_PREFIX + 'gpu': vendor}
    return spec, gpu_report


# --------------------------------------------------------------------------- pgvector

PGVECTOR_IMAGE = 'pgvector/pgvector:pg17'
PG_PORT = 5432
PG_PASSWORD_TARGET = '/run/secrets/postgres_password'
PG_HEALTH_DEFAULTS = dict(interval='5s', timeout='5s', retries=5, start_period='30s')
_PG_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_$]{0,62}$')
_PG_SETTING = re.compile(r'^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$')


def pg_setting_text(key, value):
    if isinstance(value, bool):
        return 'on' if value else 'off'
    if value is None or isinstance(value, (list, dict)):
        raise InputError('settings.%s: %r must be a string, number or boolean' % (key, value))
    text = str(value)
    if not text or '\n' in text or '\x00' in text:
        raise InputError('settings.%s: %r is not a setting value' % (key, value))
    return text


def pg_settings(params):
    """The PostgreSQL settings as sorted ('key', 'value') pairs; typed options and the dict must agree."""
    typed = {}
    for option in ('shared_buffers', 'work_mem', 'maintenance_work_mem', 'max_connections'):
        if params.get(option) is not None:
            typed[option] = pg_setting_text(option, params[option])
    if params.get('max_connections') is not None and params['max_connections'] < 1:
        raise InputError('max_connections: must be at least 1')
    for option in ('shared_buffers', 'work_mem', 'maintenance_work_mem'):
        if option in typed and not re.match(r'^\d+\s*(B|kB|MB|GB|TB)?$', typed[option]):
            raise InputError('%s: %r must be a number with a PostgreSQL unit (kB, MB, GB, TB), for example 256MB'
                             % (option, typed[option]))
    settings = dict(typed)
    for key, value in sorted((params.get('settings') or {}).items()):
        if not _PG_SETTING.match(str(key)):
            raise InputError('settings: %r is not a PostgreSQL setting name' % (key,))
        text = pg_setting_text(key, value)
        if key in typed and typed[key] != text:
            raise InputError('settings.%s is %r but the %s option sets %r; set it in one place only'
                             % (key, text, key, typed[key]))
        settings[key] = text
    return sorted(settings.items())


def pgvector_spec(params):
    """Module options -> spec. The password never enters the spec: only the file's path does."""
    name = container_name(params.get('name') or 'pgvector')
    image = check_image_ref('image', params.get('image') or PGVECTOR_IMAGE)
    user = params.get('user') or 'ragops'
    database = params.get('database') or user
    for option, value in (('user', user), ('database', database)):
        if not _PG_NAME.match(value):
            raise InputError('%s: %r must be a plain identifier (letters, digits, _; at most 63 characters)'
                             % (option, value))
    password_file = params.get('password_file')
    if not password_file or not password_file.startswith('/'):
        raise InputError('password_file: %r must be an absolute path on the host' % (password_file,))
    command = ['postgres']
    for key, value in pg_settings(params):
        command += ['-c', '%s=%s' % (key, value)]
    volume = volume_name('volume', params.get('volume') or name + '_data')
    spec = dict(
        name=name, image=image, command=command, device_requests=[], devices=[], group_add=[], stop_timeout=60,
        env={'POSTGRES_USER': user, 'POSTGRES_DB': database, 'POSTGRES_PASSWORD_FILE': PG_PASSWORD_TARGET},
        mounts=[dict(type='volume', source=volume, target='/var/lib/postgresql/data', read_only=False),
                dict(type='bind', source=password_file, target=PG_PASSWORD_TARGET, read_only=True)],
        volumes=[volume],
    )
    spec['env'] = merge_env(spec['env'], params.get('env'))
    spec['shm_size'] = size_bytes('shm_size', params.get('shm_size') or '256m')
    common_host_options(params, spec, PG_PORT)
    # -h 127.0.0.1: the entrypoint's first-start server listens on the socket only, so a TCP check
    # is not healthy until the real server is up with the user and database created.
    spec['healthcheck'] = healthcheck_spec(['CMD', 'pg_isready', '-h', '127.0.0.1', '-U', user, '-d', database],
                                           params.get('healthcheck'), PG_HEALTH_DEFAULTS)
    spec['labels'] = {LABEL_PREFIX + 'module': 'pgvector_container', LABEL_PREFIX + 'instance': name}
    return spec


def pgvector_task(params):
    """What pgvector_container does with its options before reading anything: ``(params, spec)``,
    with ``password_file`` defaulted to /etc/ragops/<name>/postgres_password; InputError for bad
    input. The module and its action plugin both start here."""
    params = dict(params)
    if not params.get('password_file'):
        params['password_file'] = '/etc/ragops/%s/postgres_password' % (params.get('name') or 'pgvector')
    spec = pgvector_spec(params)
    password = params.get('password')
    if params.get('state') != 'absent' and password is not None and (password == '' or '\n' in password):
        raise InputError('password: must be one non-empty line')
    return params, spec


# --------------------------------------------------------------------------- views: the managed fields, one shape

def _port_strings(ports):
    return sorted('%s:%s->%s/%s' % (p['host_ip'], p['host_port'], p['container_port'], p['protocol']) for p in ports)


def _mount_strings(mounts):
    return sorted('%s:%s:%s:%s' % (m['type'], m['source'], m['target'], 'ro' if m['read_only'] else 'rw')
                  for m in mounts)


def _device_request(req):
    return dict(driver=req.get('driver') or '', count=int(req.get('count') or 0),
                device_ids=list(req.get('device_ids') or []),
                capabilities=[sorted(c) for c in req.get('capabilities') or []], options=dict(req.get('options') or {}))


def spec_view(spec, image_config=None, image_id=None):
    """The managed fields of a spec, shaped like container_view(); image_config is the image's Config when known."""
    command = spec['command']
    if command is None:
        command = list((image_config or {}).get('Cmd') or []) if image_config is not None else None
    view = dict(
        image=spec['image'],
        image_id=image_id,
        env=dict(spec['env']),
        command=command,
        ports=_port_strings(spec['ports']),
        mounts=_mount_strings(spec['mounts']),
        device_requests=[_device_request(r) for r in spec['device_requests']],
        devices=sorted('%s:%s:%s' % (d['path_on_host'], d['path_in_container'], d['permissions']) for d in spec['devices']),
        group_add=sorted(spec['group_add']),
        healthcheck=dict(spec['healthcheck']),
        restart_policy=_restart_text(spec['restart_policy']['name'], spec['restart_policy']['maximum_retry_count']),
        log_config=dict(type=spec['log_config']['type'], config=dict(spec['log_config']['config'])),
        memory=spec['memory'],
        nano_cpus=spec['nano_cpus'],
        network=spec['network'],
        labels=dict(spec['labels']),
    )
    if spec.get('shm_size') is not None:
        view['shm_size'] = spec['shm_size']
    return view


def _restart_text(name, retries):
    name = name or 'no'
    return '%s:%d' % (name, retries) if name == 'on-failure' and retries else name


def env_dict(env_list):
    env = {}
    for item in env_list or []:
        key, sep, value = item.partition('=')
        env[key] = value
    return env


def container_view(info, image_env=None, spec=None):
    """The managed fields of ``docker inspect`` output. image_env: the image's Config.Env as a dict."""
    config = info.get('Config') or {}
    host = info.get('HostConfig') or {}
    wanted_env = (spec or {}).get('env') or {}
    env = env_dict(config.get('Env'))
    for key, value in (image_env or {}).items():
        if key in env and env[key] == value and key not in wanted_env:
            del env[key]
    ports = []
    for port_proto, bindings in (host.get('PortBindings') or {}).items():
        port, sep, proto = port_proto.partition('/')
        for b in bindings or []:
            ports.append(dict(host_ip=b.get('HostIp') or '0.0.0.0', host_port=int(b.get('HostPort') or 0),
                              container_port=int(port), protocol=proto or 'tcp'))
    mounts = [dict(type=m.get('Type'), source=m.get('Source'), target=m.get('Target'), read_only=bool(m.get('ReadOnly')))
              for m in host.get('Mounts') or []]
    for bind in host.get('Binds') or []:
        parts = bind.split(':')
        mode = parts[2] if len(parts) > 2 else 'rw'
        mounts.append(dict(type='volume' if not parts[0].startswith('/') else 'bind', source=parts[0],
                           target=parts[1] if len(parts) > 1 else parts[0], read_only='ro' in mode.split(',')))
    health = config.get('Healthcheck') or {}
    restart = host.get('RestartPolicy') or {}
    log = host.get('LogConfig') or {}
    network = host.get('NetworkMode') or 'bridge'
    view = dict(
        image=config.get('Image'),
        image_id=info.get('Image'),
        env=env,
        command=list(config.get('Cmd') or []),
        ports=_port_strings(ports),
        mounts=_mount_strings(mounts),
        device_requests=[_device_request(dict(driver=r.get('Driver'), count=r.get('Count'), device_ids=r.get('DeviceIDs'),
                                              capabilities=r.get('Capabilities'), options=r.get('Options')))
                         for r in host.get('DeviceRequests') or []],
        devices=sorted('%s:%s:%s' % (d.get('PathOnHost'), d.get('PathInContainer'), d.get('CgroupPermissions'))
                       for d in host.get('Devices') or []),
        group_add=sorted(str(g) for g in host.get('GroupAdd') or []),
        healthcheck=dict(test=list(health.get('Test') or []), interval=int(health.get('Interval') or 0),
                         timeout=int(health.get('Timeout') or 0), retries=int(health.get('Retries') or 0),
                         start_period=int(health.get('StartPeriod') or 0)),
        restart_policy=_restart_text(restart.get('Name'), int(restart.get('MaximumRetryCount') or 0)),
        log_config=dict(type=log.get('Type') or '', config=dict(log.get('Config') or {})),
        memory=int(host.get('Memory') or 0),
        nano_cpus=int(host.get('NanoCpus') or 0),
        network='bridge' if network == 'default' else network,
        labels={k: v for k, v in (config.get('Labels') or {}).items() if k.startswith(LABEL_PREFIX)},
    )
    if spec is None or spec.get('shm_size') is not None:
        view['shm_size'] = int(host.get('ShmSize') or 0)
    return view


def differences(current, desired):
    """Reasons, such as 'env OLLAMA_NUM_PARALLEL removed', why current (a view) is not desired (a view)."""
    reasons = []
    for field in MANAGED_FIELDS:
        if field not in desired:
            continue
        want = desired[field]
        have = current.get(field)
        if want is None:  # not knowable yet (check mode, image not pulled)
            continue
        if want == have:
            continue
        if field in ('env', 'labels'):
            word = 'env' if field == 'env' else 'label'
            for key in sorted(set(want) | set(have or {})):
                if key not in (have or {}):
                    reasons.append('%s %s added' % (word, key))
                elif key not in want:
                    reasons.append('%s %s removed' % (word, key))
                elif want[key] != have[key]:
                    reasons.append('%s %s changed' % (word, key))
        elif field == 'image_id':
            if current.get('image') == desired.get('image'):
                reasons.append('image %s now points at %s' % (desired['image'], want))
        elif field == 'image':
            reasons.append('image %s -> %s' % (have, want))
        else:
            reasons.append('%s changed' % field)
    return reasons


# --------------------------------------------------------------------------- engine side

def create_config(spec):
    """The body of POST /containers/create for a spec."""
    env = ['%s=%s' % (k, v) for k, v in sorted(spec['env'].items())]
    exposed = {}
    bindings = {}
    for p in spec['ports']:
        key = '%s/%s' % (p['container_port'], p['protocol'])
        exposed[key] = {}
        bindings.setdefault(key, []).append({'HostIp': p['host_ip'], 'HostPort': str(p['host_port'])})
    hc = spec['healthcheck']
    host_config = {
        'PortBindings': bindings,
        'Mounts': [{'Type': m['type'], 'Source': m['source'], 'Target': m['target'], 'ReadOnly': m['read_only']}
                   for m in spec['mounts']],
        'DeviceRequests': [{'Driver': r['driver'], 'Count': r['count'], 'DeviceIDs': r['device_ids'] or None,
                            'Capabilities': r['capabilities'] or None, 'Options': r['options'] or {}}
                           for r in spec['device_requests']],
        'Devices': [{'PathOnHost': d['path_on_host'], 'PathInContainer': d['path_in_container'],
                     'CgroupPermissions': d['permissions']} for d in spec['devices']],
        'GroupAdd': list(spec['group_add']) or None,
        'RestartPolicy': {'Name': spec['restart_policy']['name'],
                          'MaximumRetryCount': spec['restart_policy']['maximum_retry_count']},
        'LogConfig': {'Type': spec['log_config']['type'], 'Config': dict(spec['log_config']['config'])},
        'Memory': spec['memory'],
        'NanoCpus': spec['nano_cpus'],
        'NetworkMode': spec['network'],
    }
    if spec.get('shm_size') is not None:
        host_config['ShmSize'] = spec['shm_size']
    return {
        'Image': spec['image'],
        'Env': env,
        'Cmd': list(spec['command']) if spec['command'] is not None else None,
        'Labels': dict(spec['labels']),
        'ExposedPorts': exposed,
        'Healthcheck': {'Test': list(hc['test']), 'Interval': hc['interval'], 'Timeout': hc['timeout'],
                        'Retries': hc['retries'], 'StartPeriod': hc['start_period']},
        'HostConfig': host_config,
    }


def inspect_container(client, name):
    try:
        return client.inspect_container(name)
    except NotFound:
        return None


def inspect_image(client, ref):
    try:
        return client.inspect_image(ref)
    except NotFound:
        return None


PULL_FIX = ('check the image name and tag, and that this host reaches the registry (docker login where it needs one); '
            'or load the image (docker load) and set pull: never')


def pull_image(client, ref):
    """Pull ref; the registry's own error on failure, then what to check."""
    repo, tag = split_image(ref)
    try:
        for line in client.pull(repo, tag=tag, stream=True, decode=True):
            if isinstance(line, dict) and line.get('error'):
                raise ContainerError('image: cannot pull %s: %s; %s' % (ref, line['error'], PULL_FIX))
    except APIError as exc:
        raise ContainerError('image: cannot pull %s: %s; %s' % (ref, api_error_text(exc), PULL_FIX)) from None


def port_problem(host_ip, port, protocol='tcp'):
    """None when host_ip:port can be bound right now, else the reason (a bind test, as dockerd's proxy would)."""
    family = socket.AF_INET6 if ':' in host_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if protocol == 'tcp' else socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip, port))
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        sock.close()


def container_logs(client, name, tail=LOG_TAIL):
    try:
        raw = client.logs(name, stdout=True, stderr=True, tail=tail)
    except APIError as exc:
        return ['(logs unavailable: %s)' % api_error_text(exc)]
    if isinstance(raw, bytes):
        raw = raw.decode('utf-8', 'replace')
    return [line for line in (raw or '').splitlines() if line.strip()][-tail:]


def summary(info):
    """The container part of a result."""
    if not info:
        return None
    state = info.get('State') or {}
    return dict(
        id=info.get('Id'),
        name=(info.get('Name') or '').lstrip('/'),
        image=(info.get('Config') or {}).get('Image'),
        image_id=info.get('Image'),
        status=state.get('Status'),
        health=(state.get('Health') or {}).get('Status'),
    )


def ready(info):
    """Whether an inspected container is up: healthy, or running when it has no health check."""
    state = (info or {}).get('State') or {}
    status = (state.get('Health') or {}).get('Status')
    return status == 'healthy' or (not status and bool(state.get('Running')))


def wait_healthy(client, name, timeout, sleep=time.sleep, clock=time.monotonic, poll=0.5):
    """Poll until the container is ready() (healthy, or running without a health check); ContainerError on timeout."""
    deadline = clock() + timeout
    while True:
        info = client.inspect_container(name)
        if ready(info):
            return info
        state = info.get('State') or {}
        health = state.get('Health') or {}
        status = health.get('Status')
        restart = ((info.get('HostConfig') or {}).get('RestartPolicy') or {}).get('Name') or 'no'
        exited = state.get('Status') in ('exited', 'dead') and restart == 'no'
        if exited or clock() >= deadline:
            last = (health.get('Log') or [{}])[-1]
            output = (last.get('Output') or '').strip()
            logs = container_logs(client, name)
            if exited:
                head = 'container %s exited (code %s) before it became healthy' % (name, state.get('ExitCode'))
            else:
                head = 'container %s did not become healthy within %ss (health: %s, status: %s)' % (
                    name, timeout, status or 'none', state.get('Status'))
            msg = '%s; last health check (exit %s): %s; last log lines: %s' % (
                head, last.get('ExitCode', 'n/a'), output or '(no output)', ' | '.join(logs[-10:]) or '(none)')
            raise ContainerError(msg, container=summary(info), health_output=output, logs=logs)
        sleep(poll)


def _engine(call, what):
    try:
        return call()
    except APIError as exc:
        raise ContainerError('%s: %s' % (what, api_error_text(exc))) from None


def _ensure_image(client, spec, pull_policy, check_mode, actions):
    """(image info or None when only a pull would tell, notes)."""
    ref = spec['image']
    info = inspect_image(client, ref)
    if pull_policy == 'never':
        if info is None:
            raise ContainerError('image: %s is not on this host and pull is never; load it (docker load) or set '
                                 'pull: missing' % ref)
        return info
    if pull_policy == 'missing' and info is not None:
        return info
    if check_mode:
        if info is None:
            actions.append('pull')
        return info if info is not None else None
    pull_image(client, ref)
    new = inspect_image(client, ref)
    if new is None:
        raise ContainerError('image: %s was pulled but is not on the host afterwards' % ref)
    if info is None or info.get('Id') != new.get('Id'):
        actions.append('pull')
    return new


def _ensure_network(client, spec, check_mode, actions):
    network = spec['network']
    if network in BUILTIN_NETWORKS:
        return
    found = _engine(lambda: client.networks(names=[network]), 'network')
    if any(n.get('Name') == network for n in found or []):
        return
    actions.append('create network %s' % network)
    if not check_mode:
        _engine(lambda: client.create_network(network, driver='bridge',
                                              labels={LABEL_PREFIX + 'created-by': spec['labels'].get(LABEL_PREFIX + 'module', '')}),
                'network')


def _check_ports(spec, current, bind_test):
    """Fail before anything is touched when a port we would publish is taken by someone else."""
    held = set()
    if current and (current.get('State') or {}).get('Running'):
        held = set(container_view(current)['ports'])
    for p in spec['ports']:
        if _port_strings([p])[0] in held:
            continue
        problem = bind_test(p['host_ip'], p['host_port'], p['protocol'])
        if problem:
            raise ContainerError('port: %s:%s is not free on this host (%s); stop what listens there, or choose another '
                                 'port or bind_address' % (p['host_ip'], p['host_port'], problem))


def _create_start(client, spec, start):
    body = create_config(spec)
    created = _engine(lambda: client.create_container_from_config(body, name=spec['name']), 'create %s' % spec['name'])
    if start:
        _engine(lambda: client.start(created.get('Id') or spec['name']), 'start %s' % spec['name'])


def _remove(client, name, stop_timeout):
    _engine(lambda: client.stop(name, timeout=stop_timeout), 'stop %s' % name)
    _engine(lambda: client.remove_container(name, v=False, force=True), 'remove %s' % name)


def reconcile(client, spec, state='started', check_mode=False, pull_policy='missing', wait_healthy_timeout=120,
              purge=False, bind_test=port_problem, sleep=time.sleep, clock=time.monotonic, prepare=None):
    """Bring the container named spec['name'] to spec and state; return the result part of a module's output.

    Raises ContainerError (with ``details`` for the result) when the engine refuses or the container does not get
    healthy in time. Nothing is changed in check mode; the actions are what would be done.
    ``prepare`` (optional) is called once every check has passed and before the container is touched (also in
    check mode); it returns actions of its own (a password file written, say), which count as changes.
    """
    if state not in ('started', 'stopped', 'absent'):
        raise InputError('state: %r must be started, stopped or absent' % (state,))
    if pull_policy not in ('missing', 'always', 'never'):
        raise InputError('pull: %r must be missing, always or never' % (pull_policy,))
    name = spec['name']
    actions = []
    current = inspect_container(client, name)
    before = None
    current_image_env = {}
    if current is not None:
        current_image = inspect_image(client, current.get('Image')) if current.get('Image') else None
        current_image_env = env_dict(((current_image or {}).get('Config') or {}).get('Env'))
        before = container_view(current, current_image_env, spec)

    if state == 'absent':
        if current is not None:
            actions.append('remove')
            if not check_mode:
                _remove(client, name, spec.get('stop_timeout', 10))
        if purge:
            for volume in spec.get('volumes') or []:
                try:
                    client.inspect_volume(volume)
                except NotFound:
                    continue
                actions.append('remove volume %s' % volume)
                if not check_mode:
                    _engine(lambda v=volume: client.remove_volume(v), 'remove volume %s' % volume)
        return dict(changed=bool(actions), actions=actions, differences=[],
                    container=None if (current is None or not check_mode) else summary(current),
                    diff=dict(before=before or {}, after={}))

    image = _ensure_image(client, spec, pull_policy, check_mode, actions)
    image_config = ((image or {}).get('Config') or {}) if image is not None else None
    desired = spec_view(spec, image_config, image.get('Id') if image else None)
    if image is None:
        desired['image_id'] = None  # unknown until pulled

    reasons = []
    if current is not None:
        # the container's side, with the env of the image the spec asks for removed as well
        image_env = dict(current_image_env)
        image_env.update(env_dict((image_config or {}).get('Env')))
        before = container_view(current, image_env, spec)
        reasons = differences(before, desired)
        if image is None and before.get('image') == desired['image']:
            reasons.append('image %s would be pulled' % desired['image'])

    running = bool(current and (current.get('State') or {}).get('Running'))
    recreate = current is not None and bool(reasons)
    will_run = state == 'started' and (current is None or recreate or not running)
    if will_run:
        _check_ports(spec, current, bind_test)
    if prepare is not None:
        actions.extend(prepare())
    _ensure_network(client, spec, check_mode, actions)

    if current is None:
        actions.append('create' if state == 'stopped' else 'create and start')
    elif recreate:
        actions.append('recreate: %s' % ', '.join(reasons))
    elif state == 'started' and not running:
        actions.append('start')
    elif state == 'stopped' and running:
        actions.append('stop')

    if not check_mode:
        if current is None:
            _create_start(client, spec, start=state == 'started')
        elif recreate:
            _remove(client, name, spec.get('stop_timeout', 10))
            _create_start(client, spec, start=state == 'started')
        elif state == 'started' and not running:
            _engine(lambda: client.start(name), 'start %s' % name)
        elif state == 'stopped' and running:
            _engine(lambda: client.stop(name, timeout=spec.get('stop_timeout', 10)), 'stop %s' % name)

    info = current
    if not check_mode:
        info = inspect_container(client, name)
        if state == 'started' and wait_healthy_timeout and wait_healthy_timeout > 0:
            info = wait_healthy(client, name, wait_healthy_timeout, sleep=sleep, clock=clock)
    after = copy.deepcopy(desired)
    if after.get('image_id') is None and image is None:
        after['image_id'] = '(known after pull)'
    if after.get('command') is None:
        after['command'] = '(image default, known after pull)'
    return dict(changed=bool(actions), actions=actions, differences=reasons, container=summary(info),
                diff=dict(before=before or {}, after=after))
