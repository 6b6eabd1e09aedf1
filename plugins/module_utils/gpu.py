# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GPU facts of one host, read from a root path plus the tools found on PATH.

Everything here is read-only and pure where it can be: the file readers take the
host's ``root`` (``/`` on a live host, a fixture tree in tests) and the tool runners
take a ``run_command`` callable (argv -> (rc, stdout, stderr)) and a ``which``
callable (name -> path or None), so tests inject fakes.

Nothing in here raises on odd input: unreadable files, junk tool output and
failing tools become ``None`` values, ``error`` strings and hints.

Paths reported in the facts are host paths (``/dev/kfd``), never ``root``-prefixed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from http.client import HTTPConnection

try:
    import grp
except ImportError:  # pragma: no cover - non-POSIX
    grp = None

NVIDIA_VENDOR_ID = '0x10de'
AMD_VENDOR_ID = '0x1002'
INTEL_VENDOR_ID = '0x8086'
VENDOR_NAMES = {NVIDIA_VENDOR_ID: 'nvidia', AMD_VENDOR_ID: 'amd', INTEL_VENDOR_ID: 'intel'}

# PCI base class 0x03 = display controller (0x0300 VGA, 0x0302 3D controller, 0x0380 other).
PCI_DISPLAY_BASE_CLASS = 0x03

# Ollama's floors (docs/gpu.mdx at v0.33).
NVIDIA_MIN_DRIVER_MAJOR = 550
NVIDIA_MIN_COMPUTE_CAPABILITY = (5, 0)
NVIDIA_OLD_COMPUTE_CAPABILITY_MAX = (6, 2)
NVIDIA_OLD_COMPUTE_CAPABILITY_MIN_DRIVER_MAJOR = 570

# LLVM targets that Ollama's ROCm v7 build ships kernels for.
OLLAMA_ROCM_TARGETS = (
    'gfx908', 'gfx90a', 'gfx942', 'gfx950',
    'gfx1030', 'gfx1100', 'gfx1101', 'gfx1102',
    'gfx1150', 'gfx1151', 'gfx1200', 'gfx1201',
)

# Only the well-known overrides: the same ISA family as a supported target
# (LLVM's gfx10-3-generic / gfx11-generic), widely used with Ollama and ROCm.
# gfx1033 is the Steam Deck APU (Van Gogh), gfx1035/1036 Rembrandt/Raphael iGPUs,
# gfx1103 the Phoenix iGPU (Radeon 780M). Deliberately absent: gfx90c and gfx900-gfx906
# (their family has no supported member: gfx908/gfx90a are CDNA), RDNA1 gfx1010-gfx1012
# (10.3.0 on RDNA1 is folklore that crashes), gfx1152/gfx1153 (too new to call).
HSA_OVERRIDES = {
    'gfx1031': '10.3.0',
    'gfx1032': '10.3.0',
    'gfx1033': '10.3.0',
    'gfx1034': '10.3.0',
    'gfx1035': '10.3.0',
    'gfx1036': '10.3.0',
    'gfx1103': '11.0.0',
}

NVIDIA_SMI_QUERY_FIELDS = ('index', 'uuid', 'name', 'memory.total', 'compute_cap', 'pci.bus_id', 'mig.mode.current')

CDI_SPEC_DIRS = ('/etc/cdi', '/var/run/cdi')
KFD_TOPOLOGY = '/sys/class/kfd/kfd/topology/nodes'
DOCKER_SOCKET = '/var/run/docker.sock'
DAEMON_JSON = '/etc/docker/daemon.json'

_NVRM_RE = re.compile(r'NVRM version:\s*(?P<head>.*?Kernel Module(?: for \S+)?)\s+(?P<version>\d+(?:\.\d+)+)')
_PCI_ADDR_RE = re.compile(r'^(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{2}):(?P<dev>[0-9a-fA-F]{2})\.(?P<fn>[0-7])$')
_SMI_LIST_GPU_RE = re.compile(r'^GPU\s+(?P<index>\d+):\s+(?P<name>.*?)\s+\(UUID:\s*(?P<uuid>[^)\s]+)\s*\)\s*$')
_SMI_LIST_MIG_RE = re.compile(r'^\s+MIG\s+(?P<profile>\S+)\s+Device\s+(?P<index>\d+):\s+\(UUID:\s*(?P<uuid>[^)\s]+)\s*\)\s*$')
_GFX_RE = re.compile(r'^gfx(?P<major>\d{1,2})(?P<minor>[0-9a-f])(?P<step>[0-9a-f])$')
_CC_RE = re.compile(r'^(\d+)\.(\d+)$')
_SEMVER_RE = re.compile(r'(\d+\.\d+(?:\.\d+)?(?:[-+~][0-9A-Za-z.\-+~]*)?)')


# --------------------------------------------------------------------------- helpers

def host_path(root, path):
    """The place of host path ``path`` under ``root``."""
    return os.path.join(root or '/', path.lstrip('/'))


def read_text(path):
    """A file's text, or None when it cannot be read (missing, a directory, no permission)."""
    try:
        with open(path, 'r', encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except (OSError, ValueError):
        return None


def _read_hex(path):
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip(), 16)
    except ValueError:
        return None


def node_exists(path):
    """Whether a device node exists. Generous on purpose: a char device on a host,
    a regular file in a fixture tree, a symlink to either."""
    return os.path.exists(path)


def version_major(version):
    """550 from '550.54.14'; None when there is no leading number."""
    match = re.match(r'^\s*(\d+)', version or '')
    return int(match.group(1)) if match else None


def parse_compute_capability(value):
    """(8, 9) from '8.9'; None for anything else."""
    match = _CC_RE.match((value or '').strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def normalize_pci_address(value):
    """'0000:01:00.0' from nvidia-smi's '00000000:01:00.0' (or a bare '01:00.0'); None if not an address."""
    match = _PCI_ADDR_RE.match((value or '').strip())
    if not match:
        return None
    domain = int(match.group('domain') or '0', 16)
    return '%04x:%s:%s.%s' % (domain, match.group('bus').lower(), match.group('dev').lower(), match.group('fn'))


def read_group_names(root):
    """{gid: name} from <root>/etc/group; junk lines are skipped."""
    groups = {}
    for line in (read_text(host_path(root, '/etc/group')) or '').splitlines():
        parts = line.split(':')
        if len(parts) >= 3 and parts[2].strip().isdigit():
            groups.setdefault(int(parts[2]), parts[0])
    return groups


def group_name(gid, groups, root):
    """A gid's name from <root>/etc/group; on the live host (root '/') NSS is asked as well."""
    if gid in groups:
        return groups[gid]
    if grp is not None and os.path.realpath(root or '/') == '/':
        try:
            return grp.getgrgid(gid).gr_name
        except (KeyError, OverflowError):
            return None
    return None


def stat_device_node(root, path, groups):
    """{path, exists, gid, group, mode} of one device node (host path)."""
    info = {'path': path, 'exists': False, 'gid': None, 'group': None, 'mode': None, 'char_device': None}
    try:
        st = os.stat(host_path(root, path))
    except OSError:
        return info
    info.update(exists=True, gid=st.st_gid, group=group_name(st.st_gid, groups, root),
                mode='%04o' % stat.S_IMODE(st.st_mode), char_device=stat.S_ISCHR(st.st_mode))
    return info


def _run(run_command, argv):
    """run_command, turned total: an exception becomes rc 127 with its text."""
    try:
        rc, out, err = run_command(list(argv))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        return 127, '', '%s: %s' % (type(exc).__name__, exc)
    return rc, out or '', err or ''


# --------------------------------------------------------------------------- PCI

def parse_uevent(text):
    """KEY=value lines of a sysfs uevent file as a dict."""
    result = {}
    for line in (text or '').splitlines():
        key, sep, value = line.partition('=')
        if sep:
            result[key.strip()] = value.strip()
    return result


def list_pci_gpus(root):
    """Display-class PCI devices (class 0x03xxxx) under <root>/sys/bus/pci/devices.

    The address comes from the device's uevent PCI_SLOT_NAME (the directory name is the
    fallback, so fixture directories need no ':' in their names); the bound driver from
    uevent DRIVER, else the basename of the ``driver`` symlink.
    """
    base = host_path(root, '/sys/bus/pci/devices')
    try:
        names = os.listdir(base)
    except OSError:
        return []
    devices = []
    for name in names:
        path = os.path.join(base, name)
        pci_class = _read_hex(os.path.join(path, 'class'))
        if pci_class is None or (pci_class >> 16) != PCI_DISPLAY_BASE_CLASS:
            continue
        vendor = _read_hex(os.path.join(path, 'vendor'))
        device = _read_hex(os.path.join(path, 'device'))
        uevent = parse_uevent(read_text(os.path.join(path, 'uevent')))
        driver = uevent.get('DRIVER')
        if not driver and os.path.islink(os.path.join(path, 'driver')):
            driver = os.path.basename(os.readlink(os.path.join(path, 'driver')))
        vendor_id = '0x%04x' % vendor if vendor is not None else None
        devices.append({
            'address': normalize_pci_address(uevent.get('PCI_SLOT_NAME', '')) or name,
            'vendor_id': vendor_id,
            'vendor': VENDOR_NAMES.get(vendor_id, 'other'),
            'device_id': '0x%04x' % device if device is not None else None,
            'class': '0x%06x' % pci_class,
            'driver': driver or None,
        })
    return sorted(devices, key=lambda d: d['address'])


# --------------------------------------------------------------------------- NVIDIA

def parse_nvrm_version(text):
    """(version, flavor) from /proc/driver/nvidia/version; flavor is 'open' or 'proprietary'."""
    match = _NVRM_RE.search(text or '')
    if not match:
        return None, None
    flavor = 'open' if 'Open Kernel Module' in match.group('head') else 'proprietary'
    return match.group('version'), flavor


def read_nvidia_driver_version(root):
    """The loaded NVIDIA kernel module: {loaded, version, flavor} from <root>/proc/driver/nvidia/version."""
    text = read_text(host_path(root, '/proc/driver/nvidia/version'))
    version, flavor = parse_nvrm_version(text)
    return {'loaded': text is not None, 'version': version, 'flavor': flavor}


def list_nvidia_device_nodes(root):
    """The /dev/nvidia* nodes present (nvidia0.., nvidiactl, nvidia-uvm, ...), sorted naturally.

    /dev/nvidia-caps is a directory (the MIG capability nodes nvidia-cap1, nvidia-cap2 live in
    it, as seen on an H100 with the open module 580): its nodes are listed, never the directory,
    because a directory handed to a container as a device fails its start.
    """
    dev = host_path(root, '/dev')
    try:
        names = os.listdir(dev)
    except OSError:
        return []

    def order(name):
        match = re.match(r'^nvidia(\d+)$', name)
        return (0, int(match.group(1)), '') if match else (1, 0, name)
    nodes = []
    for name in sorted((n for n in names if n.startswith('nvidia')), key=order):
        if not os.path.isdir(os.path.join(dev, name)):
            nodes.append('/dev/' + name)
            continue
        try:
            children = sorted(os.listdir(os.path.join(dev, name)))
        except OSError:
            children = []
        nodes.extend('/dev/%s/%s' % (name, child) for child in children
                     if not os.path.isdir(os.path.join(dev, name, child)))
    return nodes


def nvidia_gpu_nodes(nodes):
    """The per-GPU nodes (/dev/nvidia0, /dev/nvidia1, ...) among list_nvidia_device_nodes' answer.

    The kernel module creates one for each GPU it drives, so they count GPUs where the PCI tree
    cannot (a Jetson/Tegra SoC's GPU is no PCI device; a container may see a partial /sys).
    """
    return [n for n in nodes or [] if re.match(r'^/dev/nvidia\d+$', n)]


def smi_value(value):
    """nvidia-smi's placeholders ('[N/A]', '[Not Supported]', '[Unknown Error]', 'N/A', '') -> None."""
    value = (value or '').strip()
    if not value or (value.startswith('[') and value.endswith(']')) or value.upper() in ('N/A', 'NOT SUPPORTED'):
        return None
    return value


def _to_int(value):
    match = re.match(r'^\s*(\d+)', value or '')
    return int(match.group(1)) if match else None


def parse_nvidia_smi_csv(text, fields=NVIDIA_SMI_QUERY_FIELDS):
    """GPUs from ``nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits``.

    Lines that are not data (``No devices were found``, ``WARNING: infoROM is corrupted``)
    are skipped; a name holding a comma is put back together.
    """
    fields = tuple(fields)
    gpus = []
    for line in (text or '').splitlines():
        parts = [p.strip() for p in line.split(',')]
        if len(parts) < len(fields):
            continue
        extra = len(parts) - len(fields)
        if extra and 'name' in fields:
            at = fields.index('name')
            parts = parts[:at] + [', '.join(parts[at:at + extra + 1])] + parts[at + extra + 1:]
        elif extra:
            continue
        raw = dict(zip(fields, parts))
        index = smi_value(raw.get('index', ''))
        if index is None or not index.isdigit():
            continue
        compute = smi_value(raw.get('compute_cap'))
        mig = (smi_value(raw.get('mig.mode.current')) or '').lower()
        gpus.append({
            'index': int(index),
            'uuid': smi_value(raw.get('uuid')),
            'name': smi_value(raw.get('name')),
            'memory_total_mib': _to_int(smi_value(raw.get('memory.total'))),
            'compute_capability': compute if parse_compute_capability(compute) else None,
            'pci_bus_id': normalize_pci_address(raw.get('pci.bus_id')),
            'mig_mode': mig if mig in ('enabled', 'disabled') else None,
            'mig_devices': [],
        })
    return gpus


def parse_nvidia_smi_list(text):
    """GPUs and their MIG devices from ``nvidia-smi -L``."""
    gpus = []
    for line in (text or '').splitlines():
        match = _SMI_LIST_GPU_RE.match(line)
        if match:
            gpus.append({'index': int(match.group('index')), 'name': match.group('name'),
                         'uuid': match.group('uuid'), 'mig_devices': []})
            continue
        match = _SMI_LIST_MIG_RE.match(line)
        if match and gpus:
            gpus[-1]['mig_devices'].append({'profile': match.group('profile'), 'index': int(match.group('index')),
                                            'uuid': match.group('uuid')})
    return gpus


def classify_nvidia_smi_failure(rc, stdout, stderr):
    """(error, hint) for a failed nvidia-smi call; error is a short machine-readable word."""
    text = '%s\n%s' % (stdout, stderr)
    if 'No devices were found' in text or rc == 6:
        return 'no_devices', ('nvidia-smi sees no GPU although the NVIDIA kernel module is loaded: the GPU may be '
                              'passed through to a VM (vfio-pci), fallen off the bus (check dmesg for Xid 79), or absent.')
    if "couldn't communicate with the NVIDIA driver" in text or rc == 9:
        return 'driver_unreachable', ('nvidia-smi cannot talk to the NVIDIA driver: the kernel module is not loaded for the '
                                      'running kernel (DKMS build missing after a kernel upgrade, nouveau bound, Secure Boot '
                                      'refusing an unsigned module). Install the driver for this kernel and reboot.')
    if 'version mismatch' in text or rc == 18:
        return 'version_mismatch', ('NVIDIA driver/library version mismatch: the user-space driver was upgraded but the old '
                                    'kernel module is still loaded. Reboot (or reload the nvidia modules).')
    if rc in (124, 137):
        return 'timeout', 'nvidia-smi did not answer in time: a GPU may be hung (check dmesg for Xid errors).'
    if 'is not a valid field' in text:
        return 'invalid_field', 'This nvidia-smi does not know a queried field (driver older than 510?).'
    return 'failed', 'nvidia-smi failed (rc %s): %s' % (rc, (stderr or stdout).strip()[:300])


def query_nvidia_smi(nvidia_smi, run_command):
    """Ask nvidia-smi for the GPUs. Returns {rc, error, hint, gpus, driver_version}."""
    fields = NVIDIA_SMI_QUERY_FIELDS
    result = {'rc': None, 'error': None, 'hint': None, 'message': None, 'gpus': []}
    for dummy in range(2):
        argv = [nvidia_smi, '--query-gpu=' + ','.join(fields), '--format=csv,noheader,nounits']
        rc, out, err = _run(run_command, argv)
        result['rc'] = rc
        if rc == 0:
            result['error'] = result['hint'] = result['message'] = None
            result['gpus'] = parse_nvidia_smi_csv(out, fields)
            break
        result['error'], result['hint'] = classify_nvidia_smi_failure(rc, out, err)
        result['message'] = next((line.strip()[:300] for line in (err + '\n' + out).splitlines() if line.strip()), None)
        if result['error'] == 'invalid_field' and 'compute_cap' in fields:
            fields = tuple(f for f in fields if f != 'compute_cap')
            continue
        break
    if any(gpu['mig_mode'] == 'enabled' for gpu in result['gpus']):
        rc, out, err = _run(run_command, [nvidia_smi, '-L'])
        if rc == 0:
            listed = {gpu['uuid']: gpu['mig_devices'] for gpu in parse_nvidia_smi_list(out)}
            for gpu in result['gpus']:
                gpu['mig_devices'] = listed.get(gpu['uuid'], [])
    return result


def query_nvidia_smi_driver_version(nvidia_smi, run_command):
    """The driver version as nvidia-smi reports it (used when /proc does not say)."""
    rc, out, dummy = _run(run_command, [nvidia_smi, '--query-gpu=driver_version', '--format=csv,noheader'])
    if rc != 0:
        return None
    for line in out.splitlines():
        value = smi_value(line)
        if value and version_major(value):
            return value
    return None


def nvidia_floor_warnings(driver_version, gpus, gpu_present=False):
    """Ollama's NVIDIA floors as data: [{code, message, gpu}].

    ``gpus`` are nvidia-smi's (with compute capabilities); ``gpu_present`` says an NVIDIA GPU
    is known by other means (the PCI bus), which is enough for the driver floor.
    """
    warnings = []
    major = version_major(driver_version)
    if major is not None and major < NVIDIA_MIN_DRIVER_MAJOR and (gpus or gpu_present):
        warnings.append({
            'code': 'nvidia_driver_too_old', 'gpu': None,
            'message': 'NVIDIA driver %s is older than %d: Ollama will fall back to the CPU.' % (driver_version, NVIDIA_MIN_DRIVER_MAJOR),
        })
    for gpu in gpus:
        cc = parse_compute_capability(gpu.get('compute_capability'))
        if cc is None:
            continue
        label = 'GPU %s (%s, compute capability %s)' % (gpu.get('index'), gpu.get('name'), gpu.get('compute_capability'))
        if cc < NVIDIA_MIN_COMPUTE_CAPABILITY:
            warnings.append({
                'code': 'nvidia_compute_capability_unsupported', 'gpu': gpu.get('index'),
                'message': '%s is below 5.0: Ollama does not support it and will use the CPU.' % label,
            })
        elif cc <= NVIDIA_OLD_COMPUTE_CAPABILITY_MAX and (major is None or major < NVIDIA_OLD_COMPUTE_CAPABILITY_MIN_DRIVER_MAJOR):
            warnings.append({
                'code': 'nvidia_driver_too_old_for_compute_capability', 'gpu': gpu.get('index'),
                'message': '%s needs NVIDIA driver %d or newer (found %s): Ollama will fall back to the CPU.'
                           % (label, NVIDIA_OLD_COMPUTE_CAPABILITY_MIN_DRIVER_MAJOR, driver_version or 'unknown'),
            })
    return warnings


def collect_nvidia(root, run_command, which, pci_devices, run_tools=True):
    """The NVIDIA part of the facts, and its hints."""
    module = read_nvidia_driver_version(root)
    pci = [d for d in pci_devices if d['vendor'] == 'nvidia']
    nvidia_smi = which('nvidia-smi') if run_tools else None
    hints = []
    facts = {
        'kernel_module_loaded': module['loaded'],
        'kernel_module_flavor': module['flavor'],
        'driver_version': module['version'],
        'driver_version_source': 'proc' if module['version'] else None,
        'nvidia_smi': nvidia_smi,
        'nvidia_smi_rc': None,
        'nvidia_smi_error': None,
        'nvidia_smi_message': None,
        'gpus': [],
        'pci_devices': pci,
        'device_nodes': list_nvidia_device_nodes(root),
    }
    if nvidia_smi:
        answer = query_nvidia_smi(nvidia_smi, run_command)
        facts.update(nvidia_smi_rc=answer['rc'], nvidia_smi_error=answer['error'], nvidia_smi_message=answer['message'],
                     gpus=answer['gpus'])
        if answer['hint'] and (pci or module['loaded'] or answer['error'] not in ('no_devices', 'driver_unreachable')):
            hints.append(answer['hint'])
        if not facts['driver_version'] and answer['rc'] == 0 and answer['gpus']:
            facts['driver_version'] = query_nvidia_smi_driver_version(nvidia_smi, run_command)
            facts['driver_version_source'] = 'nvidia_smi' if facts['driver_version'] else None
    elif module['loaded'] and run_tools:
        hints.append('The NVIDIA kernel module%s is loaded but nvidia-smi is not on PATH: GPU names, memory and compute '
                     'capability are unknown (GPUs are counted from the PCI bus, else from the /dev/nvidia<N> nodes). '
                     'Install the driver utilities (nvidia-utils / nvidia-driver-cuda).'
                     % (' ' + module['version'] if module['version'] else ''))
    if pci and not module['loaded']:
        drivers = sorted(set(d['driver'] for d in pci if d['driver']))
        bound = ' (bound: %s)' % ', '.join(drivers) if drivers else ''
        nouveau = ' and blacklist nouveau' if 'nouveau' in drivers else ''
        hints.append('NVIDIA GPU(s) on the PCI bus but no NVIDIA kernel module loaded%s: install the NVIDIA driver '
                     '(550 or newer for Ollama)%s.' % (bound, nouveau))
    nodes = facts['device_nodes']
    gpu_nodes = nvidia_gpu_nodes(nodes)
    if not pci and not facts['gpus'] and module['loaded']:
        if gpu_nodes:
            hints.append('No NVIDIA GPU is on the PCI bus but the NVIDIA kernel module is loaded and %s exist%s (a '
                         'Jetson/Tegra SoC, or a container that sees a partial /sys): the GPUs are counted from those nodes.'
                         % (', '.join(gpu_nodes), '' if len(gpu_nodes) > 1 else 's'))
        elif not (nvidia_smi and facts['nvidia_smi_error'] == 'no_devices'):
            hints.append('The NVIDIA kernel module is loaded but no NVIDIA GPU is on the PCI bus.')
    if (facts['gpus'] or pci or gpu_nodes) and module['loaded'] and '/dev/nvidiactl' in nodes and '/dev/nvidia-uvm' not in nodes:
        hints.append('/dev/nvidia-uvm is missing: CUDA needs the nvidia_uvm module (modprobe nvidia_uvm; after a '
                     'suspend/resume: rmmod nvidia_uvm && modprobe nvidia_uvm).')
    for gpu in facts['gpus']:
        if gpu['mig_mode'] == 'enabled':
            hints.append('MIG is enabled on GPU %s (%s): give containers MIG device UUIDs (nvidia-smi -L); a CUDA process '
                         'uses one MIG instance.' % (gpu['index'], gpu['name']))
    return facts, hints


# --------------------------------------------------------------------------- AMD

def parse_kfd_properties(text):
    """'name value' lines of a KFD topology properties file as {name: int}."""
    props = {}
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                props[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return props


def gfx_target_from_version(value):
    """KFD's gfx_target_version (major*10000 + minor*100 + stepping) as an LLVM target:
    110000 -> gfx1100, 100304 -> gfx1034, 90010 -> gfx90a. 0 or None -> None."""
    if not value:
        return None
    major, minor, step = value // 10000, (value // 100) % 100, value % 100
    if minor > 15 or step > 15:
        return None
    return 'gfx%d%x%x' % (major, minor, step)


def gfx_version_string(gfx_target):
    """'10.3.4' from 'gfx1034', '9.0.10' from 'gfx90a' (the HSA_OVERRIDE_GFX_VERSION syntax)."""
    match = _GFX_RE.match(gfx_target or '')
    if not match:
        return None
    return '%d.%d.%d' % (int(match.group('major')), int(match.group('minor'), 16), int(match.group('step'), 16))


def suggest_hsa_override(gfx_target):
    """{supported, hsa_override_gfx_version, reason} for one LLVM target."""
    if not gfx_target:
        return {'supported': False, 'hsa_override_gfx_version': None,
                'reason': 'The gfx target is unknown (a kernel too old to report gfx_target_version?).'}
    if gfx_target in OLLAMA_ROCM_TARGETS:
        return {'supported': True, 'hsa_override_gfx_version': None,
                'reason': '%s is one of Ollama\'s ROCm targets: no override needed.' % gfx_target}
    if gfx_target in HSA_OVERRIDES:
        version = HSA_OVERRIDES[gfx_target]
        return {'supported': False, 'hsa_override_gfx_version': version,
                'reason': '%s is not one of Ollama\'s ROCm targets; it shares the ISA of gfx%s, so '
                          'HSA_OVERRIDE_GFX_VERSION=%s is the well-known workaround.'
                          % (gfx_target, version.replace('.', ''), version)}
    return {'supported': False, 'hsa_override_gfx_version': None,
            'reason': '%s is not one of Ollama\'s ROCm targets and no well-known HSA_OVERRIDE_GFX_VERSION maps it onto '
                      'one: Ollama will not use it with ROCm (the Vulkan backend may).' % gfx_target}


def read_kfd_nodes(root):
    """GPU nodes of the KFD topology (<root>/sys/class/kfd/kfd/topology/nodes/N/properties).

    CPU nodes (simd_count 0 and gfx_target_version 0) are skipped. ``node`` is the KFD
    node id: the suffix libhsakmt reads in HSA_OVERRIDE_GFX_VERSION_<node>.
    """
    base = host_path(root, KFD_TOPOLOGY)
    try:
        names = sorted((n for n in os.listdir(base) if n.isdigit()), key=int)
    except OSError:
        return []
    nodes = []
    for name in names:
        props = parse_kfd_properties(read_text(os.path.join(base, name, 'properties')))
        gfxv = props.get('gfx_target_version')
        if not props.get('simd_count') and not gfxv:
            continue
        location = props.get('location_id')
        bus_id = None
        if location:
            bus_id = '%04x:%02x:%02x.%d' % (props.get('domain', 0), (location >> 8) & 0xff, (location >> 3) & 0x1f, location & 0x7)
        minor = props.get('drm_render_minor')
        target = gfx_target_from_version(gfxv)
        node = {
            'node': int(name),
            'gfx_target': target,
            'gfx_target_version': gfxv,
            'vendor_id': '0x%04x' % props['vendor_id'] if props.get('vendor_id') else None,
            'device_id': '0x%04x' % props['device_id'] if props.get('device_id') else None,
            'pci_bus_id': bus_id,
            'render_node': '/dev/dri/renderD%d' % minor if minor else None,
            'simd_count': props.get('simd_count'),
        }
        node.update(suggest_hsa_override(target))
        nodes.append(node)
    return nodes


def kfd_topology_readable(root):
    """Whether the KFD topology can be read: at least one node with a properties file that says something.

    A live KFD always lists the CPU node, so an empty or missing nodes directory means it cannot be
    read here (a container given /dev/kfd but not the host's /sys, a /sys without permission),
    not that the host has no GPU.
    """
    base = host_path(root, KFD_TOPOLOGY)
    try:
        names = [n for n in os.listdir(base) if n.isdigit()]
    except OSError:
        return False
    return any(parse_kfd_properties(read_text(os.path.join(base, name, 'properties'))) for name in names)


def hsa_override_env(gpus):
    """The HSA_OVERRIDE_GFX_VERSION environment for a set of KFD GPU nodes.

    One global variable when every GPU ends up on the same version (gfx1030 + gfx1034 ->
    HSA_OVERRIDE_GFX_VERSION=10.3.0); otherwise HSA_OVERRIDE_GFX_VERSION_<node> for each GPU
    that needs one (libhsakmt keys it by KFD node id, CPU nodes included, so the first GPU
    is usually _1). Empty when no GPU needs an override.
    """
    needing = [g for g in gpus if g.get('hsa_override_gfx_version')]
    if not needing:
        return {}
    effective = set(g.get('hsa_override_gfx_version') or gfx_version_string(g.get('gfx_target')) for g in gpus)
    if len(effective) == 1:
        return {'HSA_OVERRIDE_GFX_VERSION': needing[0]['hsa_override_gfx_version']}
    return dict(('HSA_OVERRIDE_GFX_VERSION_%d' % g['node'], g['hsa_override_gfx_version']) for g in needing)


def list_render_nodes(root):
    """/dev/dri/renderD* present, in minor order."""
    try:
        names = os.listdir(host_path(root, '/dev/dri'))
    except OSError:
        return []
    found = [n for n in names if re.match(r'^renderD\d+$', n)]
    return ['/dev/dri/' + n for n in sorted(found, key=lambda n: int(n[len('renderD'):]))]


def amd_warnings(gpus):
    """AMD GPUs that Ollama's ROCm build will not use and no override rescues."""
    return [{'code': 'amd_gfx_target_unsupported', 'gpu': g['node'],
             'message': 'AMD GPU on KFD node %s: %s' % (g['node'], g['reason'])}
            for g in gpus if not g['supported'] and not g['hsa_override_gfx_version']]


def collect_amd(root, pci_devices, groups):
    """The AMD part of the facts, and its hints."""
    gpus = read_kfd_nodes(root)
    for ordinal, gpu in enumerate(gpus):
        gpu['index'] = ordinal
    pci = [d for d in pci_devices if d['vendor'] == 'amd']
    kfd = stat_device_node(root, '/dev/kfd', groups)
    named = [g['render_node'] for g in gpus if g['render_node']]
    render_paths = named if named else (list_render_nodes(root) if gpus or pci else [])
    render_nodes = [stat_device_node(root, p, groups) for p in render_paths]
    gids = sorted(set(n['gid'] for n in [kfd] + render_nodes if n['exists'] and n['gid'] is not None))
    facts = {
        'kfd': kfd,
        'render_nodes': render_nodes,
        'group_ids': gids,
        'group_names': sorted(set(n['group'] for n in [kfd] + render_nodes if n['exists'] and n['group'])),
        'gpus': gpus,
        'pci_devices': pci,
        'hsa_override_env': hsa_override_env(gpus),
        'kfd_topology_readable': bool(gpus) or kfd_topology_readable(root),
    }
    hints = []
    if pci and not kfd['exists']:
        hints.append('AMD GPU(s) on the PCI bus but no /dev/kfd: the amdgpu kernel driver (with KFD) is not loaded, '
                     'so ROCm cannot see them.')
    elif kfd['exists'] and not facts['kfd_topology_readable']:
        hints.append('/dev/kfd exists but the KFD topology (%s) cannot be read: the AMD GPUs and their gfx targets are '
                     'unknown.' % KFD_TOPOLOGY)
    elif kfd['exists'] and not gpus and pci:
        hints.append('/dev/kfd exists but the KFD topology lists no GPU node.')
    for node in render_nodes:
        if not node['exists']:
            hints.append('%s is named by the KFD topology but missing.' % node['path'])
    if facts['hsa_override_env']:
        hints.append('Set %s in the Ollama container for the AMD GPU(s) outside Ollama\'s ROCm targets.'
                     % ', '.join('%s=%s' % kv for kv in sorted(facts['hsa_override_env'].items())))
    return facts, hints


# --------------------------------------------------------------------------- containers

def read_daemon_json_runtimes(root):
    """Runtimes, default-runtime and the CDI feature flag from <root>/etc/docker/daemon.json.

    Read-only (the editor is another module). A UTF-8 BOM is accepted; an empty file reads
    as {}; invalid JSON or a non-object top level gives valid=false and the parser's error.
    """
    info = {'path': DAEMON_JSON, 'exists': False, 'valid': None, 'error': None, 'empty': False,
            'runtimes': {}, 'default_runtime': None, 'cdi_enabled': None}
    path = host_path(root, DAEMON_JSON)
    if not os.path.lexists(path):
        return info
    info['exists'] = True
    try:
        with open(path, 'r', encoding='utf-8-sig') as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        info.update(valid=False, error='cannot read: %s' % exc)
        return info
    if not text.strip():
        info.update(valid=True, empty=True)
        return info
    try:
        data = json.loads(text)
    except ValueError as exc:
        info.update(valid=False, error='invalid JSON: %s' % exc)
        return info
    if not isinstance(data, dict):
        info.update(valid=False, error='the top level is a %s, not an object' % type(data).__name__)
        return info
    info['valid'] = True
    runtimes = data.get('runtimes')
    if isinstance(runtimes, dict):
        info['runtimes'] = dict((str(name), spec.get('path') if isinstance(spec, dict) else None) for name, spec in runtimes.items())
    default = data.get('default-runtime')
    info['default_runtime'] = default if isinstance(default, str) else None
    features = data.get('features')
    if isinstance(features, dict) and 'cdi' in features:
        info['cdi_enabled'] = bool(features['cdi'])
    return info


def _yaml_scalar(value):
    value = value.split(' #', 1)[0].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
        value = value[1:-1]
    return value


def parse_cdi_spec_yaml(text):
    """{kind, cdi_version, devices} from a CDI spec in YAML, without a YAML library.

    Reads the top-level ``kind:`` and ``cdiVersion:`` and, under ``devices:``, each list
    item's ``name:`` whether it sits on the ``- `` line or below it (nvidia-ctk sorts
    keys, so its ``name:`` follows ``containerEdits:``).
    """
    result = {'kind': None, 'cdi_version': None, 'devices': []}
    in_devices = False
    item_indent = key_indent = None
    for raw in (text or '').splitlines():
        line = raw.rstrip()
        stripped = line.lstrip()
        if not stripped or stripped.startswith('#') or stripped in ('---', '...'):
            continue
        indent = len(line) - len(stripped)
        if indent == 0 and not stripped.startswith('- '):
            key, sep, value = stripped.partition(':')
            in_devices = key == 'devices' and sep
            item_indent = None
            if key == 'kind' and sep:
                result['kind'] = _yaml_scalar(value) or None
            elif key == 'cdiVersion' and sep:
                result['cdi_version'] = _yaml_scalar(value) or None
            continue
        if not in_devices:
            continue
        if stripped.startswith('- ') and (item_indent is None or indent == item_indent):
            item_indent = indent
            key_indent = indent + 2
            first = stripped[2:].lstrip()
            if first.startswith('name:'):
                result['devices'].append(_yaml_scalar(first[len('name:'):]))
            continue
        if indent == key_indent and stripped.startswith('name:'):
            result['devices'].append(_yaml_scalar(stripped[len('name:'):]))
    return result


def parse_cdi_spec_json(text):
    """{kind, cdi_version, devices} from a CDI spec in JSON; raises ValueError when it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError('the top level is not an object')
    devices = data.get('devices') if isinstance(data.get('devices'), list) else []
    return {
        'kind': data.get('kind') if isinstance(data.get('kind'), str) else None,
        'cdi_version': data.get('cdiVersion') if isinstance(data.get('cdiVersion'), str) else None,
        'devices': [str(d['name']) for d in devices if isinstance(d, dict) and 'name' in d],
    }


def list_cdi_specs(root):
    """CDI spec files (*.yaml, *.yml, *.json) in /etc/cdi and /var/run/cdi, with what they declare."""
    specs = []
    for directory in CDI_SPEC_DIRS:
        try:
            names = sorted(os.listdir(host_path(root, directory)))
        except OSError:
            continue
        for name in names:
            ext = os.path.splitext(name)[1].lower()
            if ext not in ('.yaml', '.yml', '.json'):
                continue
            spec = {'path': directory + '/' + name, 'format': 'json' if ext == '.json' else 'yaml',
                    'kind': None, 'cdi_version': None, 'devices': [], 'valid': False, 'error': None}
            text = read_text(host_path(root, spec['path']))
            if text is None:
                spec['error'] = 'cannot read'
            elif ext == '.json':
                try:
                    spec.update(parse_cdi_spec_json(text))
                except ValueError as exc:
                    spec['error'] = 'invalid JSON: %s' % exc
            else:
                spec.update(parse_cdi_spec_yaml(text))
            if spec['error'] is None:
                spec['valid'] = bool(spec['kind'])
                if not spec['valid']:
                    spec['error'] = 'no kind: declared'
            specs.append(spec)
    return specs


class _UnixHTTPConnection(HTTPConnection):
    """HTTP over the engine's unix socket (the stdlib has no such transport)."""

    def __init__(self, socket_path, timeout):
        HTTPConnection.__init__(self, 'localhost', timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except Exception:
            sock.close()
            raise
        self.sock = sock


def query_docker_api_version(socket_path, timeout=5):
    """The engine's version from ``GET /version`` on its unix socket; None when nothing answers.

    The API answers in milliseconds where ``docker version`` starts the CLI (a Go binary that
    reads its config and contexts) once per question; a converged re-run asks on every host.
    """
    if not socket_path or not os.path.exists(socket_path):
        return None
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request('GET', '/version')
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        value = json.loads(body.decode('utf-8')).get('Version')
    except (OSError, ValueError, AttributeError):
        return None
    finally:
        conn.close()
    return value if isinstance(value, str) and _SEMVER_RE.match(value) else None


def query_docker_version(docker, run_command, socket_path=None):
    """{path, version, server_version, client_version, server_reachable, error}; version is the
    server's, else the client's.

    The engine's API on ``socket_path`` is asked first; the CLI only when the API does not
    answer (then the client's version is worth knowing: Docker is installed, its daemon is not
    running). So client_version is None whenever the API answered.
    """
    info = {'path': docker, 'version': None, 'server_version': None, 'client_version': None,
            'server_reachable': False, 'error': None}
    api_version = query_docker_api_version(socket_path)
    if api_version:
        info.update(version=api_version, server_version=api_version, server_reachable=True)
        return info
    if not docker:
        return info
    rc, out, err = _run(run_command, [docker, 'version', '--format', '{{.Server.Version}}'])
    value = out.strip().splitlines()[0].strip() if out.strip() else ''
    if rc == 0 and value and value != '<no value>':
        info.update(server_version=value, server_reachable=True)
    else:
        info['error'] = (err or out).strip()[:300] or 'docker version failed (rc %s)' % rc
        rc, out, err = _run(run_command, [docker, 'version', '--format', '{{.Client.Version}}'])
        # The client prints its part even when the daemon is down, yet exits 1.
        value = out.strip().splitlines()[0].strip() if out.strip() else ''
        if value and _SEMVER_RE.match(value):
            info['client_version'] = value
    if info['server_version'] and not info['client_version']:
        rc, out, err = _run(run_command, [docker, 'version', '--format', '{{.Client.Version}}'])
        value = out.strip().splitlines()[0].strip() if rc == 0 and out.strip() else ''
        info['client_version'] = value if _SEMVER_RE.match(value) else None
    info['version'] = info['server_version'] or info['client_version']
    return info


def parse_nvidia_ctk_version(text):
    """'1.17.8' from 'NVIDIA Container Toolkit CLI version 1.17.8\\ncommit: ...'."""
    match = re.search(r'version\s+v?' + _SEMVER_RE.pattern, text or '')
    return match.group(1) if match else None


def query_nvidia_ctk(nvidia_ctk, run_command):
    """{path, version} of nvidia-ctk."""
    info = {'path': nvidia_ctk, 'version': None}
    if nvidia_ctk:
        rc, out, err = _run(run_command, [nvidia_ctk, '--version'])
        if rc == 0:
            info['version'] = parse_nvidia_ctk_version(out or err)
    return info


def collect_container(root, run_command, which, run_tools=True):
    """The container side: docker, daemon.json, CDI specs, nvidia-ctk."""
    specs = list_cdi_specs(root)
    devices = []
    for spec in specs:
        if spec['valid']:
            devices.extend('%s=%s' % (spec['kind'], name) for name in spec['devices'])
    return {
        'docker': query_docker_version(which('docker') if run_tools else None, run_command,
                                       host_path(root, DOCKER_SOCKET) if run_tools else None),
        'daemon_json': read_daemon_json_runtimes(root),
        'cdi': {'spec_dirs': list(CDI_SPEC_DIRS), 'specs': specs, 'devices': sorted(set(devices))},
        'nvidia_ctk': query_nvidia_ctk(which('nvidia-ctk') if run_tools else None, run_command),
    }


# --------------------------------------------------------------------------- the host

def read_host_capacity(root):
    """{cpus, memory_total_mib} from /proc/cpuinfo and /proc/meminfo (None where unreadable).

    What a GPU host can fall back on: Ollama puts the layers that do not fit in VRAM into
    system memory and runs them on these CPUs.
    """
    cpuinfo = read_text(host_path(root, '/proc/cpuinfo')) or ''
    cpus = sum(1 for line in cpuinfo.splitlines() if re.match(r'^processor\s*:', line))
    memory = None
    match = re.search(r'^MemTotal:\s+(\d+)\s*kB', read_text(host_path(root, '/proc/meminfo')) or '', re.M)
    if match:
        memory = int(match.group(1)) // 1024
    return {'cpus': cpus or None, 'memory_total_mib': memory}


# --------------------------------------------------------------------------- the whole

def _nvidia_hard_to_see(nvidia):
    """The NVIDIA kernel module is loaded and drives /dev/nvidia<N>, whatever the PCI tree and nvidia-smi say."""
    return bool(nvidia.get('kernel_module_loaded') and nvidia_gpu_nodes(nvidia.get('device_nodes')))


def _amd_hard_to_see(amd):
    """/dev/kfd exists (amdgpu drives a GPU with KFD) but its topology cannot be read."""
    return bool((amd.get('kfd') or {}).get('exists') and not amd.get('kfd_topology_readable', True))


def choose_vendor(nvidia, amd):
    """(gpu_vendor, gpu_usable, gpu_count).

    The rule: a vendor whose GPUs are usable wins (NVIDIA: nvidia-smi lists GPUs; AMD:
    /dev/kfd exists and KFD lists GPU nodes); if both are usable NVIDIA wins (Ollama's
    CUDA path is its most mature, and an AMD GPU next to an NVIDIA card is most often an
    APU's iGPU). With nothing usable, the vendor whose GPUs are present is reported, NVIDIA
    first, so a role can install its driver stack: on the PCI bus, or by the driver's own
    signs where the PCI tree says nothing (the NVIDIA kernel module loaded with /dev/nvidia<N>
    nodes, counted from those; /dev/kfd with an unreadable KFD topology). A loaded driver
    without any GPU counts as none.
    """
    nvidia_usable = bool(nvidia['gpus'])
    amd_usable = bool(amd['kfd']['exists'] and amd['gpus'])
    if nvidia_usable:
        return 'nvidia', True, len(nvidia['gpus'])
    if amd_usable:
        return 'amd', True, len(amd['gpus'])
    if nvidia['pci_devices']:
        return 'nvidia', False, len(nvidia['pci_devices'])
    if _nvidia_hard_to_see(nvidia):
        return 'nvidia', False, len(nvidia_gpu_nodes(nvidia['device_nodes']))
    if amd['gpus'] or amd['pci_devices']:
        return 'amd', False, len(amd['gpus']) or len(amd['pci_devices'])
    if _amd_hard_to_see(amd):
        # /dev/kfd exists only while amdgpu drives a GPU: at least one, one per render node when they are visible.
        return 'amd', False, len([n for n in amd['render_nodes'] if n['exists']]) or 1
    return 'none', False, 0


def _exist(paths):
    return '%s exist%s' % (', '.join(paths), 's' if len(paths) == 1 else '')


def _addresses(pci):
    return ', '.join(d.get('address') or '?' for d in pci)


def nvidia_unusable_reason(nvidia, run_tools=True):
    """Why the NVIDIA GPUs this host shows are not usable (cause, then the fix); None when they are or there are none."""
    if nvidia.get('gpus'):
        return None
    pci = nvidia.get('pci_devices') or []
    nodes = nvidia_gpu_nodes(nvidia.get('device_nodes'))
    loaded = nvidia.get('kernel_module_loaded')
    if pci and not loaded:
        drivers = sorted(set(d['driver'] for d in pci if d.get('driver')))
        return ('NVIDIA GPU(s) on the PCI bus (%s) but no NVIDIA kernel module is loaded%s: install the NVIDIA driver '
                '(550 or newer for Ollama, 570 for compute capability 5.0-6.2)%s and reboot'
                % (_addresses(pci), ' (bound: %s)' % ', '.join(drivers) if drivers else '',
                   ', blacklisting nouveau' if 'nouveau' in drivers else ''))
    if not loaded or not (pci or nodes):
        return None
    version = nvidia.get('driver_version')
    seen = 'NVIDIA kernel module %sis loaded' % (version + ' ' if version else '')
    if nodes:
        seen += ' and %s' % _exist(nodes)
    else:
        seen += ' and GPU(s) are on the PCI bus (%s)' % _addresses(pci)
    if not pci:
        seen += ' (no NVIDIA GPU on the PCI bus: a Jetson/Tegra SoC, or a container that sees a partial /sys)'
    error = nvidia.get('nvidia_smi_error')
    if not nvidia.get('nvidia_smi'):
        if not run_tools:
            return seen + ', but nvidia-smi was not run (run_tools=false): run gpu_facts with run_tools=true to check the GPUs'
        return (seen + ', but nvidia-smi is missing, so no GPU can be checked: install the driver utilities that provide '
                'it (nvidia-utils / nvidia-driver-cuda%s; JetPack 6 on a Jetson)'
                % (' ' + version_major_text(version) if version else ''))
    if error:
        fixes = {
            'no_devices': 'the GPU may be passed through to a VM (vfio-pci) or fallen off the bus: check dmesg for Xid 79',
            'driver_unreachable': 'install the driver built for the running kernel (DKMS, Secure Boot signing) and reboot',
            'version_mismatch': 'the user-space driver was upgraded but the old kernel module is still loaded: reboot',
            'timeout': 'a GPU may be hung: check dmesg for Xid errors',
            'invalid_field': 'this nvidia-smi is older than the driver floor: install driver 550 or newer',
        }
        message = nvidia.get('nvidia_smi_message')
        if message and 'Failed to initialize NVML: Unknown Error' in message:
            # NVIDIA's known issue: a container whose device cgroup was reset (systemctl daemon-reload on cgroup v2)
            # keeps its /dev/nvidia* nodes but may no longer open them.
            fix = ('a container that lost access to its GPU device nodes (systemctl daemon-reload with cgroup v2): restart '
                   'it, and on the host create the /dev/char symlinks (nvidia-ctk system create-dev-char-symlinks --create-all)')
        else:
            fix = fixes.get(error) or 'run nvidia-smi by hand for the whole message'
        return seen + ', but nvidia-smi fails (%s, rc %s%s): %s' % (
            error, nvidia.get('nvidia_smi_rc'), ': ' + message if message else '', fix)
    return seen + ', but nvidia-smi lists no GPU: check dmesg for NVRM and Xid errors'


def version_major_text(version):
    """'for driver 535' from '535.104.05' (the package to match)."""
    major = version_major(version)
    return 'for driver %d' % major if major else ''


def amd_unusable_reason(amd):
    """Why the AMD GPUs this host shows are not usable (cause, then the fix); None when they are or there are none."""
    kfd = (amd.get('kfd') or {}).get('exists')
    gpus = amd.get('gpus') or []
    pci = amd.get('pci_devices') or []
    if kfd and gpus:
        return None
    if not kfd and (gpus or pci):
        where = ('on the PCI bus (%s)' % _addresses(pci)) if pci else 'in the KFD topology'
        return ('AMD GPU(s) %s but no /dev/kfd: the amdgpu kernel driver with KFD is not loaded (or this container was '
                'not given /dev/kfd); load amdgpu (a kernel with CONFIG_HSA_AMD, or ROCm\'s amdgpu-dkms) and reboot' % where)
    if kfd and not amd.get('kfd_topology_readable', True):
        return ('/dev/kfd exists but the KFD topology (%s) cannot be read, so the AMD GPUs and their gfx targets are '
                'unknown: give this system the host\'s /sys (a container needs it mounted), or check that amdgpu brought '
                'up KFD (dmesg | grep -i kfd)' % KFD_TOPOLOGY)
    if kfd and pci:
        return ('/dev/kfd exists but the KFD topology lists no GPU node: amdgpu did not bring the GPU up for ROCm '
                '(dmesg | grep -i amdgpu)')
    return None


def gpu_unusable_reason(vendor, usable, nvidia, amd, run_tools=True):
    """The reason for gpu_vendor's GPUs not being usable; None when usable or there is no GPU."""
    if usable or vendor == 'none':
        return None
    if vendor == 'nvidia':
        return nvidia_unusable_reason(nvidia, run_tools) or 'the NVIDIA GPU(s) are not usable (no nvidia-smi answer)'
    return amd_unusable_reason(amd) or 'the AMD GPU(s) are not usable (no GPU node in the KFD topology)'


def docker_gpu_runtime_problem(vendor, facts):
    """None when Docker can hand ``vendor``'s GPUs to a container, else why not (cause: fix).

    The one rule, for gpu_facts' outlook and for the ollama_container module. NVIDIA: Docker needs
    the nvidia runtime registered (daemon.json) or an nvidia.com/gpu CDI spec; nvidia-ctk alone is
    the toolkit's CLI (nvidia-container-toolkit-base), which hands Docker nothing until one of those
    is set up. AMD: plain device nodes, so /dev/kfd and a render node must exist.
    """
    facts = facts or {}
    if vendor == 'nvidia':
        container = facts.get('container') or {}
        runtimes = (container.get('daemon_json') or {}).get('runtimes') or {}
        cdi = [d for d in (container.get('cdi') or {}).get('devices') or [] if d.startswith('nvidia.com/gpu=')]
        if 'nvidia' in runtimes or cdi:
            return None
        return ('NVIDIA GPU(s) found but Docker has no GPU runtime (no nvidia runtime in daemon.json, no nvidia.com/gpu '
                'CDI spec; nvidia-ctk alone is not enough): install the NVIDIA Container Toolkit and register it with '
                'Docker (site.yml\'s gpu layer does)')
    if vendor == 'amd':
        amd = facts.get('amd') or {}
        if not (amd.get('kfd') or {}).get('exists'):
            return 'AMD GPU(s) found but /dev/kfd is missing: the amdgpu driver with KFD is not loaded'
        if not [n for n in amd.get('render_nodes') or [] if n.get('exists')]:
            return 'AMD GPU(s) found but no /dev/dri/renderD* node exists'
    return None


def container_hints(vendor, container):
    """Advice about the container side for the chosen vendor."""
    hints = []
    daemon = container['daemon_json']
    if daemon['exists'] and daemon['valid'] is False:
        hints.append('%s is not valid (%s): dockerd will refuse to start until it is fixed.' % (daemon['path'], daemon['error']))
    if vendor == 'nvidia' and container['docker']['path']:
        problem = docker_gpu_runtime_problem(vendor, {'container': container})
        if problem:
            hints.append(problem[problem.index('Docker has'):] + '.')
    return hints


# --------------------------------------------------------------------------- what Ollama will do

def _label(gpu):
    name = gpu.get('name') or 'unknown name'
    if gpu.get('compute_capability'):
        return 'GPU %s (%s, compute capability %s)' % (gpu.get('index'), name, gpu['compute_capability'])
    return 'GPU %s (%s)' % (gpu.get('index'), name)


def _selected_nvidia(gpus, selected):
    if selected is None:
        return list(gpus)
    wanted = set(str(s) for s in selected)
    return [g for g in gpus if str(g.get('index')) in wanted or g.get('uuid') in wanted
            or any(m.get('uuid') in wanted for m in g.get('mig_devices') or [])]


def _nvidia_floors(nvidia, selected):
    """(codes, cause, fix, all_excluded) of Ollama's NVIDIA floors for the GPUs the container gets."""
    driver = nvidia.get('driver_version')
    major = version_major(driver)
    gpus = _selected_nvidia(nvidia.get('gpus') or [], selected)
    present = bool(gpus or nvidia.get('pci_devices'))  # as collect(): no driver floor for a GPU seen by its node only
    warnings = nvidia_floor_warnings(driver, gpus, present)
    # The most specific first: a Pascal on driver 535 is decided by the 570 rule (the 550 one is met by its fix).
    order = ('nvidia_compute_capability_unsupported', 'nvidia_driver_too_old_for_compute_capability', 'nvidia_driver_too_old')
    codes = [code for code in order if any(w['code'] == code for w in warnings)]
    if not warnings:
        return [], None, None, False
    host_wide = any(w['gpu'] is None for w in warnings)
    excluded = set(w['gpu'] for w in warnings if w['gpu'] is not None)
    all_excluded = bool(gpus) and (host_wide or all(g.get('index') in excluded for g in gpus))
    # Per GPU: the driver it needs, or None when no driver helps (compute capability below 5.0).
    too_low, by_need = [], {}
    for g in gpus:
        cc = parse_compute_capability(g.get('compute_capability'))
        if cc is not None and cc < NVIDIA_MIN_COMPUTE_CAPABILITY:
            too_low.append(g)
        elif host_wide or g.get('index') in excluded:
            need = (NVIDIA_OLD_COMPUTE_CAPABILITY_MIN_DRIVER_MAJOR
                    if cc is not None and cc <= NVIDIA_OLD_COMPUTE_CAPABILITY_MAX else NVIDIA_MIN_DRIVER_MAJOR)
            by_need.setdefault(need, []).append(g)
    causes, fixes = [], []
    for need in sorted(by_need):
        labels = [_label(g) for g in by_need[need]]
        causes.append('%s need%s NVIDIA driver %d or newer for Ollama v0.33 and this host has %s'
                      % (', '.join(labels), 's' if len(labels) == 1 else '', need, driver or 'an unknown version'))
    if host_wide and not by_need:
        # No GPU listed, or only GPUs below 5.0: the driver floor still stands for whatever GPU comes next.
        causes.append('NVIDIA driver %s is older than Ollama v0.33\'s floor %d' % (driver, NVIDIA_MIN_DRIVER_MAJOR))
        by_need[NVIDIA_MIN_DRIVER_MAJOR] = []
    if by_need:
        fixes.append('install NVIDIA driver %d or newer' % max(by_need))
    if too_low:
        causes.append('%s %s below compute capability 5.0, which Ollama v0.33 does not support'
                      % (', '.join(_label(g) for g in too_low), 'is' if len(too_low) == 1 else 'are'))
        fixes.append('use a GPU of compute capability 5.0 or newer')
    return codes, '; '.join(causes), ' and '.join(fixes), all_excluded


def _amd_floors(amd, selected, env):
    """(codes, cause, fix, all_excluded) of Ollama's ROCm targets for the GPUs the container gets.

    ``env`` is the container's environment when known; None means the facts' suggested
    HSA_OVERRIDE_GFX_VERSION is applied (what ollama_container does with hsa_override_gfx_version: auto).
    """
    # Facts handed in by a user may lack the targets (no 'supported' key): nothing to judge those by.
    gpus = [g for g in amd.get('gpus') or [] if 'supported' in g]
    if selected is not None and '/dev/dri' not in selected:
        gpus = [g for g in gpus if g.get('render_node') in selected or str(g.get('index')) in set(str(s) for s in selected)]
    if not gpus:
        return [], None, None, False

    def overridden(g):
        if env is None:
            return bool(g.get('hsa_override_gfx_version'))
        return 'HSA_OVERRIDE_GFX_VERSION' in env or ('HSA_OVERRIDE_GFX_VERSION_%s' % g.get('node')) in env
    missing = [g for g in gpus if not g.get('supported') and g.get('hsa_override_gfx_version') and not overridden(g)]
    unsupported = [g for g in gpus if not g.get('supported') and not g.get('hsa_override_gfx_version') and not overridden(g)]
    if not missing and not unsupported:
        return [], None, None, False
    codes, causes, fixes = [], [], []

    def label(g):
        return 'AMD GPU %s (KFD node %s, %s)' % (g.get('index'), g.get('node'), g.get('gfx_target') or 'gfx target unknown')
    if unsupported:
        codes.append('amd_gfx_target_unsupported')
        causes.append('%s %s not among Ollama v0.33\'s ROCm targets and no well-known HSA_OVERRIDE_GFX_VERSION maps it '
                      'onto one' % (', '.join(label(g) for g in unsupported), 'is' if len(unsupported) == 1 else 'are'))
        fixes.append('use a GPU Ollama\'s ROCm build supports (%s), or set hsa_override_gfx_version to a version you '
                     'have tested' % ', '.join(OLLAMA_ROCM_TARGETS))
    if missing:
        codes.append('amd_hsa_override_missing')
        causes.append('%s %s not among Ollama v0.33\'s ROCm targets and the container gets no HSA_OVERRIDE_GFX_VERSION'
                      % (', '.join(label(g) for g in missing), 'is' if len(missing) == 1 else 'are'))
        fixes.append('set hsa_override_gfx_version: auto (%s)'
                     % ', '.join(sorted(set(g['hsa_override_gfx_version'] for g in missing))))
    return codes, '; '.join(causes), ' and '.join(fixes), len(missing) + len(unsupported) == len(gpus)


VISIBLE_DEVICES_VARIABLES = {'nvidia': ('CUDA_VISIBLE_DEVICES',), 'amd': ('ROCR_VISIBLE_DEVICES', 'HIP_VISIBLE_DEVICES')}


def ollama_outlook(facts, vendor=None, selected=None, env=None):
    """What Ollama v0.33 will run on: {vendor, inference, cpu_fallback_reason, causes}.

    ``vendor`` None decides, as ``gpu: auto`` does, what the Ollama container should be given:
    a usable GPU whose runtime Docker has, else none. A ``vendor`` given (the user's choice)
    is kept and only the inference is predicted. ``selected`` narrows the GPUs the container
    gets (NVIDIA indexes or UUIDs, AMD render nodes; None for all); ``env`` is its environment
    when known (HSA_OVERRIDE_GFX_VERSION, CUDA_VISIBLE_DEVICES=-1).

    ``inference`` is cpu when no GPU the container gets passes Ollama's floors (docs/gpu.mdx at
    v0.33: NVIDIA driver 550, compute capability 5.0, 570 for compute capability 5.0-6.2; the
    AMD gfx target supported or overridden), when the GPUs are hidden from it, or when no GPU
    is passed. ``causes`` holds every code that applies, the deciding one first: no_gpu,
    gpu_not_usable, no_gpu_runtime, gpus_hidden, then the floors' codes, the most specific
    first (gpu_warnings' codes, and amd_hsa_override_missing).

    A prediction, not a promise: ollama_container still passes the GPU when the floors say
    cpu, because passing it costs nothing and the floors may move. Facts handed in by a user
    may be partial: whatever is missing is not held against the GPU.
    """
    facts = facts or {}
    found = facts.get('gpu_vendor') if facts.get('gpu_vendor') in ('nvidia', 'amd') else 'none'

    def outlook(given, causes, reason):
        return {'vendor': given, 'inference': 'cpu' if causes else 'gpu', 'cpu_fallback_reason': reason if causes else None,
                'causes': causes}

    def floors(which):
        if which == 'nvidia':
            return _nvidia_floors(facts.get('nvidia') or {}, selected)
        if which == 'amd':
            return _amd_floors(facts.get('amd') or {}, selected, env)
        return [], None, None, False

    def with_floors(first, text, which):
        codes, cause, fix, dummy = floors(which)
        if codes:
            text += ' (and even then %s: %s)' % (cause, fix)
        return [first] + codes, text

    if vendor is None:
        if found == 'none':
            return outlook('none', ['no_gpu'], 'no GPU found on this host (gpu_vendor none): running Ollama on the CPU')
        if not facts.get('gpu_usable'):
            reason = facts.get('gpu_unusable_reason') or gpu_unusable_reason(
                found, False, facts.get('nvidia') or {}, facts.get('amd') or {'kfd': {}})
            causes, text = with_floors('gpu_not_usable', reason + '; running Ollama on the CPU', found)
            return outlook('none', causes, text)
        problem = docker_gpu_runtime_problem(found, facts)
        if problem:
            causes, text = with_floors('no_gpu_runtime', problem + '; running Ollama on the CPU', found)
            return outlook('none', causes, text)
        vendor = found
    if vendor not in ('nvidia', 'amd'):
        return outlook('none', ['no_gpu'], 'no GPU is passed to the container: running Ollama on the CPU')
    if not facts:
        return outlook(vendor, [], None)  # nothing known to predict from: trust the choice
    if found != vendor or not facts.get('gpu_usable'):
        reason = (facts.get('gpu_unusable_reason') if found == vendor else None) or gpu_unusable_reason(
            vendor, False, facts.get('nvidia') or {}, facts.get('amd') or {'kfd': {}})
        causes, text = with_floors('gpu_not_usable', 'gpu_facts finds no usable %s GPU, so Ollama will likely run on '
                                   'the CPU: %s' % (vendor.upper() if vendor == 'amd' else 'NVIDIA', reason), vendor)
        return outlook(vendor, causes, text)
    for name in VISIBLE_DEVICES_VARIABLES[vendor]:
        if str((env or {}).get(name, '')).strip() == '-1':
            return outlook(vendor, ['gpus_hidden'], '%s=-1 hides the GPUs from Ollama, so it runs on the CPU: remove it '
                           '(or list the GPUs with visible_devices)' % name)
    codes, cause, fix, all_excluded = floors(vendor)
    if all_excluded:
        return outlook(vendor, codes, '%s, so Ollama will fall back to the CPU: %s' % (cause, fix))
    return outlook(vendor, [], None)


def collect(root='/', run_command=None, which=None, run_tools=True):
    """Every GPU fact of a host, as one JSON-able dict (see the gpu_facts module's RETURN)."""
    root = root or '/'
    if run_command is None:
        def run_command(argv):
            return 127, '', 'no run_command given: %s' % argv[0]
    if which is None:
        def which(dummy):
            return None
    groups = read_group_names(root)
    pci = list_pci_gpus(root)
    nvidia, nvidia_hints = collect_nvidia(root, run_command, which, pci, run_tools=run_tools)
    amd, amd_hints = collect_amd(root, pci, groups)
    container = collect_container(root, run_command, which, run_tools=run_tools)
    vendor, usable, count = choose_vendor(nvidia, amd)
    # The driver floor is for discrete GPUs: a GPU known only by its /dev/nvidia<N> node (no PCI device, no
    # nvidia-smi) is most often a Jetson's, whose L4T driver numbers (540 on JetPack 6) follow another scheme.
    warnings = nvidia_floor_warnings(nvidia['driver_version'], nvidia['gpus'], bool(nvidia['pci_devices'])) + amd_warnings(amd['gpus'])
    facts = {
        'gpu_vendor': vendor,
        'gpu_usable': usable,
        'gpu_count': count,
        'gpu_unusable_reason': gpu_unusable_reason(vendor, usable, nvidia, amd, run_tools),
        'nvidia': nvidia,
        'amd': amd,
        'container': container,
        'pci_display_devices': pci,
        'host': read_host_capacity(root),
        'gpu_warnings': warnings,
        'hints': nvidia_hints + amd_hints + container_hints(vendor, container),
    }
    facts['ollama_outlook'] = ollama_outlook(facts)
    return facts
