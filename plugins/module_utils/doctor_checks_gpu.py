# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doctor's GPU decisions: pure functions from what doctor.py read to ok / warn / fail checks.

Nothing here reads the host. Each function takes the evidence (the GPU facts, ``docker info``,
the Ollama container's inspect, what a probe container saw, Ollama's own log lines) and returns
one check, or None when the check does not apply to the host. Ollama's floors are gpu.py's; the
prediction of what Ollama will do on a host is the GPU facts' ``ollama_outlook`` when present
(read with ``.get``: older facts lack it) and gpu.py's floor warnings otherwise.
"""

from __future__ import annotations

import re

from ansible_collections.ragops.gpu_stack.plugins.module_utils import gpu as gpu_facts
from ansible_collections.ragops.gpu_stack.plugins.module_utils.doctor_record import FAIL, OK, WARN, make_check

# The newest CUDA each driver branch runs (NVIDIA's CUDA toolkit release notes, Linux, minimum
# driver per toolkit): what decides whether Ollama's cuda_v13 or cuda_v12 runner can load.
# Newest first; the first row a driver reaches wins.
CUDA_DRIVER_TABLE = (
    (580, '13.0'), (575, '12.9'), (570, '12.8'), (560, '12.6'), (555, '12.5'), (550, '12.4'),
    (545, '12.3'), (535, '12.2'), (530, '12.1'), (525, '12.0'), (520, '11.8'), (450, '11.0'),
)
GPU_LIBRARIES = ('cuda', 'rocm', 'vulkan', 'metal')
SERVICES_FIX = 'ansible-playbook site.yml --tags gpu,services (the services layer recreates the Ollama container)'
DRIVER_FIXES = {
    'nvidia_driver_too_old': 'install NVIDIA driver 550 or newer (Ollama v0.33\'s floor) and reboot',
    'nvidia_driver_too_old_for_compute_capability': 'install NVIDIA driver 570 or newer: Ollama needs it for '
                                                    'compute capability 5.0-6.2 (Maxwell, Pascal)',
    'nvidia_compute_capability_unsupported': 'use a GPU of compute capability 5.0 or newer: Ollama cannot use this one',
    'amd_gfx_target_unsupported': 'set ollama_hsa_override_gfx_version (HSA_OVERRIDE_GFX_VERSION) to the nearest '
                                  'supported gfx target, or use a supported AMD GPU',
}
CGROUP_FIX = ('restart the Ollama container now (docker restart <name>); for good, let the nvidia_container_toolkit '
              'role create the /dev/char symlinks (nvidia_container_toolkit_daemon_reload_mitigation: true) or set '
              '"exec-opts": ["native.cgroupdriver=cgroupfs"] in daemon.json')

# Lines of Ollama's log that explain a CPU fallback (server/, discover/ at v0.33).
_LOG_HINTS = re.compile(r'NVIDIA driver too old|failure during .*GPU discovery|unable to load|no compatible GPUs|'
                        r'dropping integrated GPU|amdgpu .*not supported|unsupported Radeon|cuda driver library failed',
                        re.IGNORECASE)
_NVIDIA_GPU_NODE = re.compile(r'^/dev/nvidia\d+$')
_RENDER_NODE = re.compile(r'^/dev/dri/renderD\d+$')


def outlook(facts):
    """The GPU facts' prediction (contract C1), {} before the facts carry one."""
    return (facts or {}).get('ollama_outlook') or {}


def expected_vendor(expected, facts):
    """nvidia | amd | none: what the inventory says the Ollama container must run on.

    ``auto`` takes the vendor the GPU facts found, usable or not: a host with a GPU that Ollama
    does not use is exactly what the doctor must catch.
    """
    if expected in ('nvidia', 'amd', 'none'):
        return expected
    vendor = (facts or {}).get('gpu_vendor')
    return vendor if vendor in ('nvidia', 'amd') else 'none'


def cuda_for_driver(driver_version):
    """'12.2' for driver 535.x: the newest CUDA the driver runs; None below the table or unknown."""
    major = gpu_facts.version_major(driver_version)
    if major is None:
        return None
    for floor, cuda in CUDA_DRIVER_TABLE:
        if major >= floor:
            return cuda
    return None


def floor_findings(facts):
    """[(code, message)] of Ollama's floors this host misses: the outlook's causes and reason when the
    facts carry one, else gpu.py's floor warnings from the driver and the GPUs."""
    facts = facts or {}
    seen = outlook(facts)
    if seen:
        if seen.get('inference') != 'cpu':
            return []
        codes = [code for code in seen.get('causes') or [] if code in DRIVER_FIXES]
        reason = seen.get('cpu_fallback_reason')
        # Only a floor is the driver's doing: a fallback for another cause (no GPU runtime, GPUs
        # hidden) is named by the check that owns it, never answered with a driver upgrade.
        if not codes:
            return []
        return [(codes[0], reason or 'Ollama is predicted to fall back to the CPU')]
    nvidia = facts.get('nvidia') or {}
    warnings = facts.get('gpu_warnings')
    if warnings is None:
        warnings = gpu_facts.nvidia_floor_warnings(nvidia.get('driver_version'), nvidia.get('gpus') or [],
                                                   bool(nvidia.get('pci_devices')))
    return [(w.get('code'), w.get('message')) for w in warnings if w.get('code') in DRIVER_FIXES]


def check_gpu(expected, facts):
    """The host's GPU against the inventory: present, usable, or the reason it is not."""
    facts = facts or {}
    vendor = facts.get('gpu_vendor') or 'none'
    if expected == 'none':
        note = '' if vendor == 'none' else ' (a %s GPU is present; the inventory keeps Ollama on the CPU)' % vendor
        return make_check('gpu', OK, 'CPU host: Ollama is expected on the CPU%s' % note)
    if vendor != expected:
        return make_check('gpu', FAIL, 'the inventory expects an %s GPU but the host shows %s' % (expected.upper(), vendor),
                          cause='no %s GPU was found (driver not loaded, or the wrong inventory group)' % expected.upper(),
                          fix='install the %s driver, or set gpu_stack_gpu_vendor for this host' % expected.upper())
    if not facts.get('gpu_usable'):
        reason = facts.get('gpu_unusable_reason') or '%s GPU(s) present but not usable' % expected.upper()
        return make_check('gpu', FAIL, reason, cause=reason,
                          fix='load the %s driver and its tools (nvidia-smi / the amdgpu KFD), then re-run site.yml'
                          % expected.upper())
    names = [g.get('name') for g in (facts.get('nvidia') or {}).get('gpus') or []] if expected == 'nvidia' else \
        [g.get('gfx_target') for g in (facts.get('amd') or {}).get('gpus') or []]
    return make_check('gpu', OK, '%d %s GPU(s) usable%s' % (facts.get('gpu_count') or len(names), expected.upper(),
                                                            (': ' + ', '.join(str(n) for n in names if n)) if any(names) else ''))


def nvidia_request_kind(host_config):
    """How a container asks for NVIDIA GPUs: 'runtime' (a device request for the toolkit, or --runtime nvidia),
    'cdi' (nvidia.com/gpu names), or None."""
    host_config = host_config or {}
    for request in host_config.get('DeviceRequests') or []:
        if (request.get('Driver') or '') == 'cdi' or any(str(i).startswith('nvidia.com/') for i in request.get('DeviceIDs') or []):
            return 'cdi'
        if (request.get('Driver') or '') in ('nvidia', '') and any('gpu' in caps for caps in request.get('Capabilities') or []):
            return 'runtime'
    if host_config.get('Runtime') == 'nvidia':
        return 'runtime'
    return None


def check_nvidia_runtime(live_runtimes, daemon_json, cdi_devices, request_kind):
    """The nvidia runtime in dockerd and daemon.json, or an nvidia.com/gpu CDI spec, as the Ollama container asks.

    ``daemon_json``: the parsed file ({} when absent), or None when it cannot be read.
    """
    in_live = 'nvidia' in (live_runtimes or {})
    runtimes = (daemon_json or {}).get('runtimes')
    in_file = isinstance(runtimes, dict) and 'nvidia' in runtimes
    cdi = sorted(d for d in cdi_devices or [] if d.startswith('nvidia.com/gpu='))
    cdi_on = bool(((daemon_json or {}).get('features') or {}).get('cdi')) if isinstance((daemon_json or {}).get('features'), dict) else False
    fix = ('ansible-playbook site.yml --tags gpu (the nvidia_container_toolkit role registers it), '
           'or nvidia-ctk runtime configure --runtime=docker and restart Docker')
    if request_kind == 'cdi':
        if cdi:
            return make_check('nvidia_runtime', OK, 'CDI spec registered: %s' % ', '.join(cdi[:4]))
        return make_check('nvidia_runtime', FAIL, 'the Ollama container asks for CDI devices but no nvidia.com/gpu CDI spec '
                          'is in /etc/cdi or /var/run/cdi', cause='the CDI spec was never generated or was removed'
                          + ('' if cdi_on else ', and daemon.json does not enable features.cdi'),
                          fix='ansible-playbook site.yml --tags gpu (nvidia_container_toolkit_runtime_mode: cdi), '
                          'or nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml')
    if in_file and in_live:
        return make_check('nvidia_runtime', OK, 'the nvidia runtime is registered in daemon.json and loaded by dockerd')
    if in_live and daemon_json is not None:
        return make_check('nvidia_runtime', FAIL, 'dockerd runs with the nvidia runtime but daemon.json no longer registers it',
                          cause='daemon.json was edited or replaced (a tool that writes the whole file) after the toolkit '
                          'registered the runtime: the next restart of Docker drops it', fix=fix)
    if in_file:
        return make_check('nvidia_runtime', FAIL, 'daemon.json registers the nvidia runtime but the running dockerd has not '
                          'loaded it', cause='Docker was not restarted after daemon.json changed',
                          fix='restart Docker (systemctl restart docker), or re-run --tags gpu')
    if cdi and request_kind is None:
        return make_check('nvidia_runtime', OK, 'no nvidia runtime, but a CDI spec is registered: %s' % ', '.join(cdi[:4]))
    return make_check('nvidia_runtime', FAIL, 'neither dockerd nor daemon.json has the nvidia runtime%s'
                      % ('' if cdi else ', and no nvidia.com/gpu CDI spec exists'),
                      cause='the NVIDIA Container Toolkit is not set up for Docker (or daemon.json lost its runtimes entry)',
                      fix=fix)


def check_nvidia_ctk(ctk):
    """nvidia-ctk on PATH and answering --version (gpu.query_nvidia_ctk's answer)."""
    ctk = ctk or {}
    if ctk.get('version'):
        return make_check('nvidia_ctk', OK, 'nvidia-ctk %s answers (%s)' % (ctk['version'], ctk.get('path')))
    if ctk.get('path'):
        return make_check('nvidia_ctk', FAIL, '%s does not answer --version' % ctk['path'],
                          cause='a broken NVIDIA Container Toolkit install', fix='reinstall it: ansible-playbook site.yml --tags gpu')
    return make_check('nvidia_ctk', FAIL, 'nvidia-ctk is not on PATH', cause='the NVIDIA Container Toolkit is not installed',
                      fix='ansible-playbook site.yml --tags gpu')


def check_nvidia_driver(facts):
    """The driver against the CUDA table and Ollama's floors (the outlook's reason when the facts have one)."""
    nvidia = (facts or {}).get('nvidia') or {}
    driver = nvidia.get('driver_version')
    cuda = cuda_for_driver(driver)
    gpus = ', '.join('%s (CC %s)' % (g.get('name'), g.get('compute_capability')) for g in nvidia.get('gpus') or [])
    described = 'driver %s%s%s' % (driver or 'unknown', (', CUDA up to %s' % cuda) if cuda else '',
                                   ('; ' + gpus) if gpus else '')
    findings = floor_findings(facts)
    if findings:
        code, message = findings[0]
        return make_check('nvidia_driver', FAIL, '%s: below Ollama\'s floor, it will run on the CPU' % described,
                          cause=message, fix=DRIVER_FIXES.get(code) or DRIVER_FIXES['nvidia_driver_too_old'])
    if not driver:
        return make_check('nvidia_driver', WARN, 'the NVIDIA driver version is unknown (no /proc/driver/nvidia/version, '
                          'nvidia-smi not answering)', cause=(facts or {}).get('gpu_unusable_reason'),
                          fix='install the driver utilities (nvidia-smi) so the version can be checked')
    if cuda is None:
        return make_check('nvidia_driver', FAIL, '%s: too old for any CUDA Ollama ships' % described,
                          cause='NVIDIA driver older than 450', fix=DRIVER_FIXES['nvidia_driver_too_old'])
    return make_check('nvidia_driver', OK, described)


def probe_nodes(output):
    """The /dev/nvidia* paths a probe container listed."""
    return sorted(set(line.strip() for line in (output or '').splitlines() if line.strip().startswith('/dev/nvidia')))


def check_gpu_probe(probe, facts):
    """What a throwaway container with the Ollama container's GPU request saw.

    ``probe``: {ran, error, nodes, request (words), own_request (bool: the Ollama container had none,
    so the toolkit's usual request was used)}.
    """
    probe = probe or {}
    if probe.get('error'):
        return make_check('gpu_probe', FAIL, 'a probe container with %s could not run: %s' % (probe.get('request'), probe['error']),
                          cause='Docker refuses the GPU request (the toolkit\'s hook or runtime is missing or broken)',
                          fix='ansible-playbook site.yml --tags gpu, then docker run --rm --gpus all <image> ls /dev/nvidia*')
    gpus = [n for n in probe.get('nodes') or [] if _NVIDIA_GPU_NODE.match(n)]
    if not gpus:
        return make_check('gpu_probe', FAIL, 'a probe container with %s saw no /dev/nvidia<N> (saw: %s)'
                          % (probe.get('request'), ', '.join(probe.get('nodes') or []) or 'nothing'),
                          cause='Docker accepted the GPU request but the NVIDIA Container Toolkit passed no GPU',
                          fix='check nvidia-container-cli info on the host; ansible-playbook site.yml --tags gpu')
    wanted = probe.get('expected_count')
    note = ' (the Ollama container has no GPU request: the toolkit\'s usual one was used)' if probe.get('own_request') else ''
    if wanted and len(gpus) < wanted:
        return make_check('gpu_probe', WARN, 'a probe container with %s saw %d of %d GPUs: %s%s'
                          % (probe.get('request'), len(gpus), wanted, ', '.join(gpus), note),
                          cause='some GPUs are not passed (a CUDA_VISIBLE_DEVICES or a device selection)',
                          fix='check ollama_gpus and ollama_visible_devices')
    return make_check('gpu_probe', OK, 'a probe container with %s got %s%s' % (probe.get('request'), ', '.join(gpus), note))


def parse_node_listing(output):
    """(nodes {path: gid}, groups [gid]) from the in-container listing doctor.py runs."""
    nodes, groups = {}, []
    for line in (output or '').splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == 'node' and parts[2].isdigit():
            nodes[parts[1]] = int(parts[2])
        elif parts and parts[0] == 'groups':
            groups = [int(p) for p in parts[1:] if p.isdigit()]
    return nodes, groups


def _numeric_groups(group_add):
    return sorted(set(int(g) for g in group_add or [] if str(g).isdigit()))


def check_gpu_devices(expected, name, listing, host_nodes, group_add):
    """The device nodes inside the Ollama container, and for AMD their gids against the container's groups
    (GroupAdd, and what its processes hold) and the host's nodes.

    ``listing``: {nodes {path: gid}, groups [gid], error}; ``host_nodes``: {path: stat_device_node()}.
    """
    listing = listing or {}
    if listing.get('error'):
        return make_check('gpu_devices', FAIL, 'cannot list the device nodes in %s: %s' % (name, listing['error']),
                          cause='the container is not running', fix='see ollama_container')
    nodes = listing.get('nodes') or {}
    if expected == 'nvidia':
        gpus = sorted(n for n in nodes if _NVIDIA_GPU_NODE.match(n))
        if not gpus or '/dev/nvidiactl' not in nodes:
            return make_check('gpu_devices', FAIL, '%s has no %s' % (name, '/dev/nvidia<N>' if not gpus else '/dev/nvidiactl'),
                              cause='the container runs without its GPU devices (created without a GPU request, or it '
                              'lost them after a systemctl daemon-reload: the cgroup-driver case)', fix=SERVICES_FIX)
        return make_check('gpu_devices', OK, '%s sees %s' % (name, ', '.join(['/dev/nvidiactl'] + gpus)))
    render = sorted(n for n in nodes if _RENDER_NODE.match(n))
    if '/dev/kfd' not in nodes or not render:
        return make_check('gpu_devices', FAIL, '%s has no %s' % (name, '/dev/kfd' if '/dev/kfd' not in nodes else 'render node'),
                          cause='the container was created without the AMD device nodes', fix=SERVICES_FIX)
    held = set(_numeric_groups(group_add)) | set(listing.get('groups') or [])
    problems = []
    for path in ['/dev/kfd'] + render:
        inside = nodes[path]
        host = (host_nodes or {}).get(path) or {}
        if host.get('exists') and host.get('gid') is not None and host['gid'] != inside:
            problems.append(('%s is group %s (gid %s) on the host but gid %s inside %s'
                             % (path, host.get('group') or host['gid'], host['gid'], inside, name),
                             'the node\'s group changed on the host after the container was created (a udev rule, '
                             'rocm_device_group, a driver reload): the container holds the old gid'))
        elif inside not in held and inside != 0:
            problems.append(('%s is gid %s inside %s, which is not among its groups (%s)'
                             % (path, inside, name, ', '.join(str(g) for g in sorted(held)) or 'none'),
                             'the container\'s GroupAdd does not carry the node\'s group'))
    if problems:
        return make_check('gpu_devices', FAIL, '; '.join(p[0] for p in problems), cause=problems[0][1],
                          fix='ansible-playbook site.yml --tags gpu,services: the services layer recreates the Ollama '
                          'container with the nodes\' current group ids')
    return make_check('gpu_devices', OK, '%s sees /dev/kfd and %s with the host\'s group ids (%s)'
                      % (name, ', '.join(render), ', '.join(str(g) for g in sorted(set(nodes[p] for p in ['/dev/kfd'] + render)))))


# ----------------------------------------------------------------------------- Ollama's own word

_LOGFMT = re.compile(r'(\w[\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    """{key: value} of one Ollama log line (Go's slog text format)."""
    fields = {}
    for key, value in _LOGFMT.findall(line or ''):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r'\\(.)', r'\1', value[1:-1])
        fields[key] = value
    return fields


def inference_compute(log_text):
    """The ``inference compute`` lines of the server's last start, parsed (one per device)."""
    lines = []
    for line in (log_text or '').splitlines():
        if 'inference compute' not in line:
            continue
        fields = parse_logfmt(line)
        if fields.get('msg') != 'inference compute':
            continue
        if lines and lines[-1].get('time') and fields.get('time') and _second(fields['time']) != _second(lines[-1]['time']):
            # A new start of the server (a restart inside the window read): its lines replace the earlier ones.
            lines = []
        lines.append(fields)
    return lines


def _second(stamp):
    return stamp[:19]


def log_hints(log_text, limit=3):
    """Lines of the log that explain a CPU fallback, newest last."""
    return [line.strip()[:300] for line in (log_text or '').splitlines() if _LOG_HINTS.search(line)][-limit:]


def libraries(lines):
    """The lower-cased ``library=`` values (never ``id=``: its meaning changed between releases)."""
    return [(fields.get('library') or '').lower() for fields in lines]


_SIZE = re.compile(r'^\s*([\d.]+)\s*([KMGT]i?B|B)\s*$', re.IGNORECASE)
_UNITS = {'b': 1, 'kb': 1000, 'mb': 1000 ** 2, 'gb': 1000 ** 3, 'tb': 1000 ** 4,
          'kib': 1024, 'mib': 1024 ** 2, 'gib': 1024 ** 3, 'tib': 1024 ** 4}


def parse_size(text):
    """Bytes of ``23.5 GiB`` (Ollama's format.HumanBytes2); None for anything else."""
    match = _SIZE.match(text or '')
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def cpu_fallback_causes(evidence):
    """[(cause, fix)] that the evidence supports for a GPU host whose model sits on the CPU.

    ``evidence``: expected, facts, container (inspect), probe, listing, devices_check, log_hints,
    cgroup_driver.
    """
    causes = []
    facts = evidence.get('facts') or {}
    for code, message in floor_findings(facts):
        causes.append((message, DRIVER_FIXES.get(code) or 'upgrade the GPU driver'))
    if facts.get('gpu_unusable_reason'):
        causes.append((facts['gpu_unusable_reason'], 'make the GPU usable on the host first'))
    container = evidence.get('container') or {}
    host_config = container.get('HostConfig') or {}
    label = ((container.get('Config') or {}).get('Labels') or {}).get('org.ragops.gpu_stack.gpu')
    env = dict(item.split('=', 1) for item in (container.get('Config') or {}).get('Env') or [] if '=' in item)
    expected = evidence.get('expected')
    if expected == 'nvidia' and not nvidia_request_kind(host_config) and not host_config.get('Devices'):
        causes.append(('the Ollama container was created without a GPU request (gpu %s)' % (label or 'none'), SERVICES_FIX))
    if expected == 'amd' and not host_config.get('Devices'):
        causes.append(('the Ollama container was created without /dev/kfd and the render nodes', SERVICES_FIX))
    if env.get('CUDA_VISIBLE_DEVICES', '').strip() == '-1':
        causes.append(('CUDA_VISIBLE_DEVICES=-1 in the container forces the CPU', 'remove it from ollama_visible_devices / ollama_env'))
    probe = evidence.get('probe') or {}
    probe_ok = bool([n for n in probe.get('nodes') or [] if _NVIDIA_GPU_NODE.match(n)])
    if expected == 'nvidia' and probe.get('ran') and not probe_ok:
        causes.append(('a fresh container with the same GPU request gets no GPU: the NVIDIA Container Toolkit does not pass it',
                       'ansible-playbook site.yml --tags gpu'))
    devices = evidence.get('devices_check') or {}
    if devices.get('status') == FAIL:
        if expected == 'nvidia' and probe_ok and evidence.get('cgroup_driver') == 'systemd':
            causes.append(('the running container lost its GPU devices while a fresh one gets them: the cgroup-driver case '
                           '(a systemctl daemon-reload under the systemd cgroup driver)', CGROUP_FIX))
        else:
            causes.append((devices.get('cause') or devices.get('message'), devices.get('fix') or SERVICES_FIX))
    if expected == 'amd':
        for gpu in (facts.get('amd') or {}).get('gpus') or []:
            if not gpu.get('supported') and 'HSA_OVERRIDE_GFX_VERSION' not in ' '.join(env):
                causes.append(('%s is not one of Ollama\'s ROCm targets and the container sets no HSA_OVERRIDE_GFX_VERSION'
                               % (gpu.get('gfx_target') or 'the AMD GPU'),
                               'set ollama_hsa_override_gfx_version to %s' % (gpu.get('hsa_override_gfx_version') or 'the nearest supported target')))
                break
    for line in evidence.get('log_hints') or []:
        causes.append(('Ollama\'s log says: %s' % line, 'see the cause above it; OLLAMA_DEBUG=1 (ollama_debug: 1) logs the GPU discovery'))
        break
    if not causes:
        causes.append(('no cause is visible from outside the container',
                       'run it with ollama_debug: 1 and read docker logs %s for the GPU discovery' % (evidence.get('name') or 'ollama')))
    return causes


def _joined(causes):
    """One cause text and one fix text from [(cause, fix)], each said once, in order."""
    said_causes, said_fixes = [], []
    for cause, fix in causes:
        if cause and cause not in said_causes:
            said_causes.append(cause)
        if fix and fix not in said_fixes:
            said_fixes.append(fix)
    return '; '.join(said_causes), '; '.join(said_fixes)


def check_gpu_inference(expected, loaded, causes):
    """Where /api/ps says the loaded models sit: all on the GPU, partly, or on the CPU (a fail on a GPU host)."""
    if not loaded:
        return make_check('gpu_inference', WARN, 'no model is loaded, so where inference runs cannot be seen',
                          cause='the embedding model could not be loaded (see embedding_model)', fix='load a model and re-run')
    described = ', '.join('%s %s' % (m.get('name'), _residency(m)) for m in loaded)
    on_cpu = [m for m in loaded if not int(m.get('size_vram') or 0)]
    partial = [m for m in loaded if 0 < int(m.get('size_vram') or 0) < int(m.get('size') or 0)]
    if expected == 'none':
        if len(on_cpu) < len(loaded):
            return make_check('gpu_inference', WARN, '%s, on a host the inventory keeps on the CPU' % described,
                              cause='Ollama found a GPU the inventory did not expect', fix='set gpu_stack_gpu_vendor for this host')
        return make_check('gpu_inference', OK, described)
    if on_cpu:
        cause, fix = _joined(causes)
        return make_check('gpu_inference', FAIL, '%s: an %s host whose model sits on the CPU' % (described, expected.upper()),
                          cause=cause, fix=fix)
    if partial:
        return make_check('gpu_inference', WARN, '%s: part of the model runs on the CPU' % described,
                          cause='the models do not fit in free VRAM (see vram)',
                          fix='smaller or more quantized models, fewer preloads, or OLLAMA_MAX_LOADED_MODELS=1')
    return make_check('gpu_inference', OK, described)


def _residency(model):
    size, vram = int(model.get('size') or 0), int(model.get('size_vram') or 0)
    if vram == 0:
        return '100% CPU'
    if vram >= size:
        return '100% GPU'
    return '%d%% GPU' % round(100.0 * vram / max(size, 1))


def check_compute_library(expected, lines, causes, started_at=None):
    """The ``library=`` of the server's latest ``inference compute`` lines (docker logs)."""
    if not lines:
        return make_check('compute_library', WARN, 'no "inference compute" line in the Ollama log since it started%s'
                          % ((' (%s)' % started_at) if started_at else ''),
                          cause='the log was rotated, or the log driver cannot be read back (json-file and local can)',
                          fix='restart the Ollama container to log the GPU discovery again')
    found = libraries(lines)
    described = 'inference compute: ' + ', '.join(
        'library=%s%s%s' % (f.get('library'), (' ' + f['description']) if f.get('description') else '',
                            (' available=%s' % f['available']) if f.get('available') else '') for f in lines)
    gpu = [lib for lib in found if lib in GPU_LIBRARIES]
    if expected == 'none':
        return make_check('compute_library', OK if not gpu else WARN, described,
                          cause=None if not gpu else 'Ollama found a GPU the inventory did not expect',
                          fix=None if not gpu else 'set gpu_stack_gpu_vendor for this host')
    if not gpu:
        cause, fix = _joined(causes)
        return make_check('compute_library', FAIL, '%s: no GPU library on an %s host' % (described, expected.upper()),
                          cause=cause, fix=fix)
    return make_check('compute_library', OK, described)


def check_vram(expected, lines, facts, required):
    """Free VRAM when Ollama started (its log's ``available=``, else the GPUs' memory) against the models it
    must hold; on a CPU host, the host's memory. ``required``: [(name, bytes)]."""
    need = sum(size for _name, size in required)
    names = ', '.join('%s %s' % (name, _human(size)) for name, size in required) or 'no model to hold'
    if expected == 'none':
        memory = ((facts or {}).get('host') or {}).get('memory_total_mib')
        if not memory or not need:
            return make_check('vram', OK, 'CPU host: no VRAM to check (%s)' % names)
        have = memory * 1024 * 1024
        status = OK if need <= have else WARN
        return make_check('vram', status, 'CPU host: %s to hold in %s of memory' % (names, _human(have)),
                          cause=None if status == OK else 'the models are larger than the host\'s memory',
                          fix=None if status == OK else 'smaller models, or fewer preloads')
    gpu_lines = [f for f in lines or [] if (f.get('library') or '').lower() in GPU_LIBRARIES]
    available = sum(parse_size(f.get('available')) or 0 for f in gpu_lines)
    source = 'free when Ollama started'
    if not available:
        mib = sum(int(g.get('memory_total_mib') or 0) for g in ((facts or {}).get('nvidia') or {}).get('gpus') or []) or \
            sum(int(g.get('vram_total_mib') or 0) for g in ((facts or {}).get('amd') or {}).get('gpus') or [])
        available = mib * 1024 * 1024
        source = 'total (free VRAM unknown: no inference compute line)'
    if not available:
        return make_check('vram', WARN, 'VRAM unknown: %s' % names, cause='neither Ollama\'s log nor the GPU facts give it',
                          fix='check nvidia-smi / rocm-smi by hand')
    if need > available:
        return make_check('vram', WARN, '%s need %s but %s of VRAM is %s' % (names, _human(need), _human(available), source),
                          cause='the models Ollama must keep loaded do not fit: layers spill to the CPU',
                          fix='smaller or more quantized models, fewer preloads, or OLLAMA_MAX_LOADED_MODELS=1 (ollama_max_loaded_models)')
    return make_check('vram', OK, '%s fit in %s of VRAM %s' % (names, _human(available), source))


def _human(size):
    size = float(size or 0)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if size < 1024 or unit == 'GiB':
            return ('%.1f %s' % (size, unit)) if unit != 'B' else '%d B' % size
        size /= 1024
    return '%.1f GiB' % size
