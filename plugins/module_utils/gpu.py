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
    result = {'rc': None, 'error': None, 'hint': None, 'gpus': []}
    for dummy in range(2):
        argv = [nvidia_smi, '--query-gpu=' + ','.join(fields), '--format=csv,noheader,nounits']
        rc, out, err = _run(run_command, argv)
        result['rc'] = rc
        if rc == 0:
            result['error'] = result['hint'] = None
            result['gpus'] = parse_nvidia_smi_csv(out, fields)
            break
        result['error'], result['hint'] = classify_nvidia_smi_failure(rc, out, err)
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
        'gpus': [],
        'pci_devices': pci,
        'device_nodes': list_nvidia_device_nodes(root),
    }
    if nvidia_smi:
        answer = query_nvidia_smi(nvidia_smi, run_command)
        facts.update(nvidia_smi_rc=answer['rc'], nvidia_smi_error=answer['error'], gpus=answer['gpus'])
        if answer['hint'] and (pci or module['loaded'] or answer['error'] not in ('no_devices', 'driver_unreachable')):
            hints.append(answer['hint'])
        if not facts['driver_version'] and answer['rc'] == 0 and answer['gpus']:
            facts['driver_version'] = query_nvidia_smi_driver_version(nvidia_smi, run_command)
            facts['driver_version_source'] = 'nvidia_smi' if facts['driver_version'] else None
    elif module['loaded'] and run_tools:
        hints.append('The NVIDIA kernel module%s is loaded but nvidia-smi is not on PATH: GPU names, memory and compute '
                     'capability are unknown (GPUs are counted from the PCI bus). Install the driver utilities '
                     '(nvidia-utils / nvidia-driver-cuda).' % (' ' + module['version'] if module['version'] else ''))
    if pci and not module['loaded']:
        drivers = sorted(set(d['driver'] for d in pci if d['driver']))
        bound = ' (bound: %s)' % ', '.join(drivers) if drivers else ''
        nouveau = ' and blacklist nouveau' if 'nouveau' in drivers else ''
        hints.append('NVIDIA GPU(s) on the PCI bus but no NVIDIA kernel module loaded%s: install the NVIDIA driver '
                     '(550 or newer for Ollama)%s.' % (bound, nouveau))
    if not pci and not facts['gpus'] and module['loaded']:
        if not (nvidia_smi and facts['nvidia_smi_error'] == 'no_devices'):
            hints.append('The NVIDIA kernel module is loaded but no NVIDIA GPU is on the PCI bus.')
    nodes = facts['device_nodes']
    if (facts['gpus'] or pci) and module['loaded'] and '/dev/nvidiactl' in nodes and '/dev/nvidia-uvm' not in nodes:
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
    base = host_path(root, '/sys/class/kfd/kfd/topology/nodes')
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
    }
    hints = []
    if pci and not kfd['exists']:
        hints.append('AMD GPU(s) on the PCI bus but no /dev/kfd: the amdgpu kernel driver (with KFD) is not loaded, '
                     'so ROCm cannot see them.')
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

def choose_vendor(nvidia, amd):
    """(gpu_vendor, gpu_usable, gpu_count).

    The rule: a vendor whose GPUs are usable wins (NVIDIA: nvidia-smi lists GPUs; AMD:
    /dev/kfd exists and KFD lists GPU nodes); if both are usable NVIDIA wins (Ollama's
    CUDA path is its most mature, and an AMD GPU next to an NVIDIA card is most often an
    APU's iGPU). With nothing usable, the vendor whose GPUs are present (PCI bus, KFD)
    is reported, NVIDIA first, so a role can install its driver stack. A loaded driver
    without a GPU counts as none.
    """
    nvidia_usable = bool(nvidia['gpus'])
    amd_usable = bool(amd['kfd']['exists'] and amd['gpus'])
    if nvidia_usable:
        return 'nvidia', True, len(nvidia['gpus'])
    if amd_usable:
        return 'amd', True, len(amd['gpus'])
    if nvidia['pci_devices']:
        return 'nvidia', False, len(nvidia['pci_devices'])
    if amd['gpus'] or amd['pci_devices']:
        return 'amd', False, len(amd['gpus']) or len(amd['pci_devices'])
    return 'none', False, 0


def container_hints(vendor, container):
    """Advice about the container side for the chosen vendor."""
    hints = []
    daemon = container['daemon_json']
    if daemon['exists'] and daemon['valid'] is False:
        hints.append('%s is not valid (%s): dockerd will refuse to start until it is fixed.' % (daemon['path'], daemon['error']))
    if vendor == 'nvidia' and container['docker']['path']:
        has_runtime = 'nvidia' in daemon['runtimes']
        has_cdi = any(d.startswith('nvidia.com/gpu=') for d in container['cdi']['devices'])
        if not has_runtime and not has_cdi:
            hints.append('Docker has neither the nvidia runtime in daemon.json nor an nvidia.com/gpu CDI spec: '
                         'the NVIDIA Container Toolkit is not set up for Docker.')
    return hints


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
    warnings = nvidia_floor_warnings(nvidia['driver_version'], nvidia['gpus'], bool(nvidia['pci_devices'])) + amd_warnings(amd['gpus'])
    return {
        'gpu_vendor': vendor,
        'gpu_usable': usable,
        'gpu_count': count,
        'nvidia': nvidia,
        'amd': amd,
        'container': container,
        'pci_display_devices': pci,
        'host': read_host_capacity(root),
        'gpu_warnings': warnings,
        'hints': nvidia_hints + amd_hints + container_hints(vendor, container),
    }
