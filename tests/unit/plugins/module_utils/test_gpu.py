# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/gpu.py against captured fixture trees and tool outputs.

Fixture trees live in tests/unit/fixtures/gpu/<tree>/ (device nodes are plain files there;
PCI device directories are named with '-' for ':' and carry the real address in their
uevent's PCI_SLOT_NAME). Tool outputs live in tests/unit/fixtures/gpu/tools/<case>/ as
<tool>.<call>.stdout|stderr|rc; most tests inject them with FakeTools, a few run
generated fake executables from a temporary PATH.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import threading

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.ragops.gpu_stack.plugins.module_utils import gpu

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'gpu')
TOOLS = os.path.join(FIXTURES, 'tools')


def tree(name):
    return os.path.join(FIXTURES, name)


def call_key(argv):
    """The <call> part of a tool fixture's file name for one argv."""
    tool, args = os.path.basename(argv[0]), list(argv[1:])
    joined = ' '.join(args)
    if tool == 'nvidia-smi':
        if args == ['-L']:
            return tool, 'list'
        if joined.startswith('--query-gpu=driver_version'):
            return tool, 'driver'
        return tool, 'query' if 'compute_cap' in joined else 'query-nocc'
    if tool == 'docker':
        return tool, 'server' if 'Server.Version' in joined else 'client'
    if tool == 'nvidia-ctk' and args == ['--version']:
        return tool, 'version'
    raise AssertionError('unexpected call: %r' % (argv,))


class FakeTools:
    """run_command and which over tools/<case>/: a tool exists when any file names it."""

    def __init__(self, case=None):
        self.dir = os.path.join(TOOLS, case) if case else None
        self.calls = []
        names = os.listdir(self.dir) if self.dir else []
        self.tools = set(n.split('.', 1)[0] for n in names)

    def _read(self, name):
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            return None
        with open(path, encoding='utf-8') as handle:
            return handle.read()

    def which(self, name):
        return '/usr/bin/' + name if name in self.tools else None

    def run(self, argv):
        self.calls.append(list(argv))
        tool, key = call_key(argv)
        rc = int((self._read('%s.%s.rc' % (tool, key)) or '0').strip())
        return rc, self._read('%s.%s.stdout' % (tool, key)) or '', self._read('%s.%s.stderr' % (tool, key)) or ''


def collect(tree_name, case=None, **kwargs):
    tools = FakeTools(case)
    root = tree(tree_name) if not os.path.isabs(tree_name) else tree_name
    return gpu.collect(root, tools.run, tools.which, **kwargs), tools


def codes(facts):
    return [w['code'] for w in facts['gpu_warnings']]


# --------------------------------------------------------------------------- whole trees

@pytest.mark.parametrize('tree_name, case, vendor, usable, count, warning_codes', [
    ('nvidia_single', 'nvidia_single', 'nvidia', True, 1, []),
    ('nvidia_multi_mig', 'nvidia_multi_mig', 'nvidia', True, 2, []),
    ('nvidia_pascal_535', 'nvidia_pascal_535', 'nvidia', True, 1,
     ['nvidia_driver_too_old', 'nvidia_driver_too_old_for_compute_capability']),
    ('nvidia_no_gpu', 'nvidia_no_gpu', 'none', False, 0, []),
    ('nvidia_smi_missing', 'docker_only', 'nvidia', False, 1, []),
    ('nvidia_unloaded', 'nvidia_smi_rc9', 'nvidia', False, 1, []),
    ('amd_rdna2', 'docker_only', 'amd', True, 2, []),
    ('amd_rdna3', 'docker_only', 'amd', True, 1, []),
    ('none', None, 'none', False, 0, []),
    # Hard to see: the driver's own signs count where the PCI tree (or nvidia-smi) says nothing.
    ('nvidia_jetson_orin', 'docker_only', 'nvidia', False, 1, []),
    ('nvidia_container_nvml_error', 'nvml_unknown_error', 'nvidia', False, 2, []),
    ('amd_kfd_no_topology', None, 'amd', False, 1, []),
    ('nvidia_pascal_535_toolkit', 'nvidia_pascal_535_toolkit', 'nvidia', True, 1,
     ['nvidia_driver_too_old', 'nvidia_driver_too_old_for_compute_capability']),
])
def test_collect_trees(tree_name, case, vendor, usable, count, warning_codes):
    facts, dummy = collect(tree_name, case)
    assert (facts['gpu_vendor'], facts['gpu_usable'], facts['gpu_count']) == (vendor, usable, count)
    assert codes(facts) == warning_codes
    json.dumps(facts)  # facts must be JSON-able as they are


def test_nvidia_single_details():
    facts, tools = collect('nvidia_single', 'nvidia_single')
    nvidia = facts['nvidia']
    assert nvidia['driver_version'] == '550.54.14'
    assert nvidia['driver_version_source'] == 'proc'
    assert nvidia['kernel_module_flavor'] == 'proprietary'
    assert nvidia['gpus'] == [{
        'index': 0, 'uuid': 'GPU-5e1f4a5b-9c2f-3d1e-8a7b-6c5d4e3f2a10', 'name': 'NVIDIA GeForce RTX 4090',
        'memory_total_mib': 24564, 'compute_capability': '8.9', 'pci_bus_id': '0000:01:00.0',
        'mig_mode': None, 'mig_devices': [],
    }]
    assert [d['address'] for d in nvidia['pci_devices']] == ['0000:01:00.0']  # the HDMI audio function is not a GPU
    assert nvidia['device_nodes'] == ['/dev/nvidia0', '/dev/nvidia-modeset', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', '/dev/nvidiactl']
    container = facts['container']
    assert container['docker']['version'] == '27.5.1' and container['docker']['server_reachable']
    assert container['daemon_json']['runtimes'] == {'nvidia': 'nvidia-container-runtime'}
    assert container['daemon_json']['default_runtime'] is None
    assert container['nvidia_ctk'] == {'path': '/usr/bin/nvidia-ctk', 'version': '1.17.8'}
    assert container['cdi']['devices'] == ['nvidia.com/gpu=0', 'nvidia.com/gpu=GPU-5e1f4a5b-9c2f-3d1e-8a7b-6c5d4e3f2a10',
                                           'nvidia.com/gpu=all']
    assert facts['hints'] == []
    assert ['/usr/bin/nvidia-smi', '-L'] not in tools.calls  # no MIG, no second call


def test_nvidia_multi_gpu_mig():
    facts, tools = collect('nvidia_multi_mig', 'nvidia_multi_mig')
    a100, t4 = facts['nvidia']['gpus']
    assert facts['nvidia']['kernel_module_flavor'] == 'open'
    assert facts['nvidia']['driver_version'] == '570.124.06'
    assert (a100['name'], a100['memory_total_mib'], a100['compute_capability'], a100['mig_mode']) == (
        'NVIDIA A100 80GB PCIe', 81920, '8.0', 'enabled')
    assert [(m['profile'], m['index']) for m in a100['mig_devices']] == [('3g.40gb', 0), ('2g.20gb', 1), ('1g.10gb', 2)]
    assert a100['mig_devices'][0]['uuid'] == 'MIG-8f3e2d1c-0b9a-5c8d-9e7f-6a5b4c3d2e1f'
    assert (t4['name'], t4['compute_capability'], t4['mig_mode'], t4['mig_devices']) == ('Tesla T4', '7.5', None, [])
    assert ['/usr/bin/nvidia-smi', '-L'] in tools.calls
    # the ASPEED BMC VGA is listed as a display device but is no GPU of either vendor
    assert [d['vendor'] for d in facts['pci_display_devices']] == ['other', 'nvidia', 'nvidia']
    assert facts['container']['daemon_json']['default_runtime'] == 'nvidia'
    assert facts['container']['daemon_json']['cdi_enabled'] is True
    assert 'nvidia.com/gpu=0:1' in facts['container']['cdi']['devices']
    assert any('MIG is enabled on GPU 0' in h for h in facts['hints'])


def test_pascal_with_driver_535_warns_and_reports_messy_files():
    facts, dummy = collect('nvidia_pascal_535', 'nvidia_pascal_535')
    warnings = facts['gpu_warnings']
    assert warnings[0]['gpu'] is None and '535.183.01' in warnings[0]['message']
    assert warnings[1]['gpu'] == 0 and '570' in warnings[1]['message'] and 'GTX 1080' in warnings[1]['message']
    daemon = facts['container']['daemon_json']
    assert daemon['exists'] and daemon['valid'] is False and daemon['error'].startswith('invalid JSON: ')
    docker = facts['container']['docker']
    assert docker['server_reachable'] is False and docker['server_version'] is None
    assert docker['version'] == docker['client_version'] == '24.0.7'
    assert 'Cannot connect to the Docker daemon' in docker['error']
    assert facts['container']['nvidia_ctk'] == {'path': None, 'version': None}
    hints = ' '.join(facts['hints'])
    assert 'nvidia-uvm is missing' in hints and 'daemon.json is not valid' in hints and 'Container Toolkit' in hints


def test_driver_loaded_no_gpu_visible():
    facts, dummy = collect('nvidia_no_gpu', 'nvidia_no_gpu')
    assert facts['nvidia']['driver_version'] == '550.54.14'
    assert (facts['nvidia']['nvidia_smi_rc'], facts['nvidia']['nvidia_smi_error']) == (6, 'no_devices')
    assert facts['nvidia']['gpus'] == [] and facts['nvidia']['pci_devices'] == []
    assert len(facts['hints']) == 1 and 'sees no GPU' in facts['hints'][0]


def test_nvidia_smi_missing_with_module_loaded():
    facts, tools = collect('nvidia_smi_missing', 'docker_only')
    nvidia = facts['nvidia']
    assert nvidia['nvidia_smi'] is None and nvidia['nvidia_smi_rc'] is None and nvidia['gpus'] == []
    assert nvidia['driver_version'] == '550.127.05'
    assert [(d['address'], d['device_id'], d['driver']) for d in nvidia['pci_devices']] == [('0000:41:00.0', '0x24b0', 'nvidia')]
    assert any('nvidia-smi is not on PATH' in h for h in facts['hints'])
    assert not any(c[0].endswith('nvidia-smi') for c in tools.calls)


def test_nvidia_smi_cannot_talk_to_driver():
    facts, dummy = collect('nvidia_unloaded', 'nvidia_smi_rc9')
    nvidia = facts['nvidia']
    assert (nvidia['nvidia_smi_rc'], nvidia['nvidia_smi_error']) == (9, 'driver_unreachable')
    assert nvidia['kernel_module_loaded'] is False and nvidia['driver_version'] is None
    assert nvidia['pci_devices'][0]['driver'] == 'nouveau'
    assert any('blacklist nouveau' in h for h in facts['hints'])
    assert any("cannot talk to the NVIDIA driver" in h for h in facts['hints'])


def test_driver_library_mismatch():
    facts, dummy = collect('nvidia_single', 'mismatch')
    assert facts['nvidia']['nvidia_smi_error'] == 'version_mismatch'
    assert (facts['gpu_vendor'], facts['gpu_usable']) == ('nvidia', False)
    assert any('Reboot' in h for h in facts['hints'])


def test_old_nvidia_smi_without_compute_cap_is_asked_again(tmp_path):
    facts, tools = collect(str(tmp_path), 'old_smi_470')
    queries = [c for c in tools.calls if c[1].startswith('--query-gpu=')]
    assert 'compute_cap' in queries[0][1] and 'compute_cap' not in queries[1][1]
    k80 = facts['nvidia']['gpus'][0]
    assert (k80['name'], k80['memory_total_mib'], k80['compute_capability']) == ('Tesla K80', 11441, None)
    assert (facts['nvidia']['driver_version'], facts['nvidia']['driver_version_source']) == ('470.256.02', 'nvidia_smi')
    assert codes(facts) == ['nvidia_driver_too_old']


def test_amd_rdna2_override_and_groups(tmp_path):
    root = tmp_path / 'root'
    shutil.copytree(tree('amd_rdna2'), str(root))
    for node, gid in (('dev/kfd', 105), ('dev/dri/renderD128', 105), ('dev/dri/renderD129', 44)):
        os.chown(str(root / node), -1, gid)
    facts, dummy = collect(str(root), 'docker_only')
    amd = facts['amd']
    assert [(g['index'], g['node'], g['gfx_target'], g['supported'], g['hsa_override_gfx_version']) for g in amd['gpus']] == [
        (0, 1, 'gfx1030', True, None), (1, 2, 'gfx1034', False, '10.3.0')]
    assert [(g['pci_bus_id'], g['render_node'], g['device_id']) for g in amd['gpus']] == [
        ('0000:03:00.0', '/dev/dri/renderD128', '0x73bf'), ('0000:0b:00.0', '/dev/dri/renderD129', '0x743f')]
    assert amd['hsa_override_env'] == {'HSA_OVERRIDE_GFX_VERSION': '10.3.0'}
    assert amd['kfd']['exists'] and (amd['kfd']['gid'], amd['kfd']['group']) == (105, 'render')
    assert amd['group_ids'] == [44, 105] and amd['group_names'] == ['render', 'video']
    assert [n['path'] for n in amd['render_nodes']] == ['/dev/dri/renderD128', '/dev/dri/renderD129']
    assert amd['render_nodes'][0]['char_device'] is False  # a fixture file, still counted as present
    assert facts['gpu_warnings'] == []


def test_amd_rdna3_needs_nothing():
    facts, dummy = collect('amd_rdna3', 'docker_only')
    (gpu_node,) = facts['amd']['gpus']
    assert (gpu_node['gfx_target'], gpu_node['gfx_target_version'], gpu_node['supported']) == ('gfx1100', 110000, True)
    assert facts['amd']['hsa_override_env'] == {}
    assert facts['nvidia']['gpus'] == [] and facts['nvidia']['nvidia_smi'] is None


def test_both_vendors_prefer_usable_nvidia_and_report_both(tmp_path):
    root = tmp_path / 'root'
    shutil.copytree(tree('amd_rdna3'), str(root))
    shutil.copytree(tree('nvidia_single'), str(root), dirs_exist_ok=True)
    facts, dummy = collect(str(root), 'nvidia_single')
    assert (facts['gpu_vendor'], facts['gpu_count']) == ('nvidia', 1)
    assert len(facts['amd']['gpus']) == 1 and len(facts['nvidia']['gpus']) == 1
    # with nvidia-smi unable to reach the driver, the usable AMD GPU wins
    facts, dummy = collect(str(root), 'nvidia_smi_rc9')
    assert (facts['gpu_vendor'], facts['gpu_usable']) == ('amd', True)


def test_no_tools_reads_only_files():
    facts, tools = collect('nvidia_single', 'nvidia_single', run_tools=False)
    assert tools.calls == []
    assert facts['nvidia']['gpus'] == [] and facts['container']['docker']['path'] is None
    assert (facts['gpu_vendor'], facts['gpu_usable'], facts['gpu_count']) == ('nvidia', False, 1)
    assert facts['nvidia']['driver_version'] == '550.54.14'


def test_run_command_exceptions_and_timeouts_give_no_traceback():
    def explode(argv):
        raise OSError('exec format error: %s' % argv[0])
    facts = gpu.collect(tree('nvidia_single'), explode, lambda name: '/opt/bin/' + name)
    assert facts['nvidia']['nvidia_smi_rc'] == 127 and facts['nvidia']['nvidia_smi_error'] == 'failed'
    assert facts['container']['docker']['version'] is None

    facts = gpu.collect(tree('nvidia_single'), lambda argv: (124, '', ''), lambda name: '/opt/bin/' + name)
    assert facts['nvidia']['nvidia_smi_error'] == 'timeout'


def test_collect_without_callables_and_missing_root(tmp_path):
    facts = gpu.collect(str(tmp_path / 'nowhere'))
    assert facts['gpu_vendor'] == 'none' and facts['hints'] == [] and facts['gpu_warnings'] == []


def test_through_a_real_path_with_fake_executables(tmp_path, monkeypatch):
    """collect() with subprocess and shutil.which over generated executables."""
    bin_dir = write_fake_tools(tmp_path, 'nvidia_multi_mig', ('nvidia-smi', 'docker', 'nvidia-ctk'))
    monkeypatch.setenv('PATH', str(bin_dir))

    def run(argv):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=20)
        return proc.returncode, proc.stdout, proc.stderr
    facts = gpu.collect(tree('nvidia_multi_mig'), run, shutil.which)
    assert facts['nvidia']['nvidia_smi'] == str(bin_dir / 'nvidia-smi')
    assert [g['name'] for g in facts['nvidia']['gpus']] == ['NVIDIA A100 80GB PCIe', 'Tesla T4']
    assert len(facts['nvidia']['gpus'][0]['mig_devices']) == 3
    assert facts['container']['docker']['version'] == '28.0.4'
    assert facts['container']['nvidia_ctk']['version'] == '1.17.8'


def test_through_a_real_path_failing_tool(tmp_path, monkeypatch):
    bin_dir = write_fake_tools(tmp_path, 'nvidia_no_gpu', ('nvidia-smi',))
    monkeypatch.setenv('PATH', str(bin_dir))

    def run(argv):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=20)
        return proc.returncode, proc.stdout, proc.stderr
    facts = gpu.collect(tree('nvidia_no_gpu'), run, shutil.which)
    assert (facts['nvidia']['nvidia_smi_rc'], facts['nvidia']['nvidia_smi_error']) == (6, 'no_devices')
    assert facts['container']['docker']['path'] is None


FAKE_TOOL = r'''#!/bin/sh
PATH=/usr/bin:/bin
{record}
d='{case_dir}'
t='{tool}'
case "$*" in
  -L) k=list ;;
  --query-gpu=driver_version*) k=driver ;;
  *compute_cap*) k=query ;;
  --query-gpu=*) k=query-nocc ;;
  *Server.Version*) k=server ;;
  *Client.Version*) k=client ;;
  --version) k=version ;;
  *) echo "unexpected: $*" >&2; exit 99 ;;
esac
{sleep}
[ -f "$d/$t.$k.stdout" ] && cat "$d/$t.$k.stdout"
[ -f "$d/$t.$k.stderr" ] && cat "$d/$t.$k.stderr" >&2
rc=0
[ -f "$d/$t.$k.rc" ] && rc=$(cat "$d/$t.$k.rc")
exit $rc
'''


def write_fake_tools(tmp_path, case, tools, log=None, sleep=None):
    """Executables in tmp_path/bin that replay tools/<case>/ (generated, never committed).

    ``log``: a file each call appends ``<argv>`` to; ``sleep``: seconds each call waits first.
    """
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        path = bin_dir / tool
        path.write_text(FAKE_TOOL.format(case_dir=os.path.abspath(os.path.join(TOOLS, case)), tool=tool,
                                         record='echo "$0 $*" >> \'%s\'' % log if log else '',
                                         sleep='sleep %s' % sleep if sleep else ''), encoding='utf-8')
        path.chmod(0o755)
    return bin_dir


# --------------------------------------------------------------------------- NVIDIA parsers

@pytest.mark.parametrize('text, expected', [
    ('NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n', ('550.54.14', 'proprietary')),
    ('NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.124.06  Release Build  (dvs-builder@U16)  Wed Feb 26 2025\n',
     ('570.124.06', 'open')),
    ('NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.65.06  Release Build  (dvs-builder@U22)  Sun Jul 27 2025\n',
     ('580.65.06', 'open')),
    ('NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu May  2 14:37:44 UTC 2024\nGCC version: gcc 10\n',
     ('470.256.02', 'proprietary')),
    ('garbage', (None, None)),
    ('', (None, None)),
    (None, (None, None)),
])
def test_parse_nvrm_version(text, expected):
    assert gpu.parse_nvrm_version(text) == expected


def test_read_nvidia_driver_version_absent(tmp_path):
    assert gpu.read_nvidia_driver_version(str(tmp_path)) == {'loaded': False, 'version': None, 'flavor': None}


@pytest.mark.parametrize('value, expected', [
    ('00000000:01:00.0', '0000:01:00.0'),
    ('00000001:AF:1F.7', '0001:af:1f.7'),
    ('0000:2d:00.0', '0000:2d:00.0'),
    ('01:00.0', '0000:01:00.0'),
    ('[N/A]', None),
    ('', None),
    (None, None),
])
def test_normalize_pci_address(value, expected):
    assert gpu.normalize_pci_address(value) == expected


@pytest.mark.parametrize('value, expected', [
    ('[N/A]', None), ('[Not Supported]', None), ('[Unknown Error]', None), ('[Insufficient Permissions]', None),
    ('N/A', None), ('', None), ('  ', None), (' 8.9 ', '8.9'), ('Enabled', 'Enabled'),
])
def test_smi_value(value, expected):
    assert gpu.smi_value(value) == expected


def test_parse_nvidia_smi_csv_messy():
    text = (
        'WARNING: infoROM is corrupted at gpu 0000:02:00.0\n'
        '0, GPU-aaaa, NVIDIA GeForce RTX 3060, 12288, 8.6, 00000000:01:00.0, [N/A]\n'
        '1, [Unknown Error], Some Vendor, Model X, [Not Supported], [N/A], 00000000:02:00.0, Disabled\n'
        '2, GPU-cccc, NVIDIA H100 80GB HBM3, 81559 MiB, 9.0, 00000000:03:00.0, Enabled\n'
        '\n'
        'x, GPU-dddd, junk, 1, 1.0, 00000000:04:00.0, [N/A]\n'
    )
    first, second, third = gpu.parse_nvidia_smi_csv(text)
    assert (first['name'], first['memory_total_mib'], first['compute_capability'], first['mig_mode']) == (
        'NVIDIA GeForce RTX 3060', 12288, '8.6', None)
    assert (second['uuid'], second['name'], second['memory_total_mib'], second['compute_capability'], second['mig_mode']) == (
        None, 'Some Vendor, Model X', None, None, 'disabled')
    assert second['pci_bus_id'] == '0000:02:00.0'
    assert (third['memory_total_mib'], third['mig_mode']) == (81559, 'enabled')


@pytest.mark.parametrize('text', ['No devices were found\n', '', 'NVIDIA-SMI has failed because it couldn\'t communicate\n'])
def test_parse_nvidia_smi_csv_no_data(text):
    assert gpu.parse_nvidia_smi_csv(text) == []


def test_parse_nvidia_smi_list_formats():
    text = (
        'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)\n'
        '  MIG 3g.20gb Device 0: (UUID: MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/1/0)\n'
        '  MIG 1g.5gb      Device  1: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)\n'
        'GPU 1: NVIDIA GeForce RTX 4090 (UUID: GPU-12345678-1234-1234-1234-123456789abc)\n'
        'junk line\n'
    )
    first, second = gpu.parse_nvidia_smi_list(text)
    assert first['name'] == 'NVIDIA A100-SXM4-40GB'
    assert first['mig_devices'] == [
        {'profile': '3g.20gb', 'index': 0, 'uuid': 'MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/1/0'},
        {'profile': '1g.5gb', 'index': 1, 'uuid': 'MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f'},
    ]
    assert second['mig_devices'] == [] and second['index'] == 1


@pytest.mark.parametrize('rc, stdout, stderr, expected', [
    (6, 'No devices were found\n', '', 'no_devices'),
    (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure ...\n", '', 'driver_unreachable'),
    (18, 'Failed to initialize NVML: Driver/library version mismatch\n', '', 'version_mismatch'),
    (124, '', '', 'timeout'),
    (2, 'Field "compute_cap" is not a valid field to query.\n', '', 'invalid_field'),
    (255, '', 'Unable to determine the device handle for GPU0000:01:00.0: Unknown Error\n', 'failed'),
])
def test_classify_nvidia_smi_failure(rc, stdout, stderr, expected):
    error, hint = gpu.classify_nvidia_smi_failure(rc, stdout, stderr)
    assert error == expected and hint


@pytest.mark.parametrize('driver, cc, expected', [
    ('550.54.14', '8.9', []),
    ('550.54.14', '5.0', ['nvidia_driver_too_old_for_compute_capability']),
    ('570.86.10', '6.1', []),
    ('570.86.10', '6.2', []),
    ('550.54.14', '6.3', []),
    ('535.183.01', '7.5', ['nvidia_driver_too_old']),
    ('535.183.01', '6.1', ['nvidia_driver_too_old', 'nvidia_driver_too_old_for_compute_capability']),
    ('580.65.06', '3.7', ['nvidia_compute_capability_unsupported']),
    ('470.256.02', '3.5', ['nvidia_driver_too_old', 'nvidia_compute_capability_unsupported']),
    (None, '6.1', ['nvidia_driver_too_old_for_compute_capability']),
    (None, None, []),
    ('550.54.14', None, []),
])
def test_nvidia_floor_warnings(driver, cc, expected):
    gpus = [{'index': 0, 'name': 'GPU', 'compute_capability': cc}]
    assert [w['code'] for w in gpu.nvidia_floor_warnings(driver, gpus)] == expected


def test_driver_floor_without_nvidia_smi_uses_pci_presence():
    assert [w['code'] for w in gpu.nvidia_floor_warnings('535.1', [], gpu_present=True)] == ['nvidia_driver_too_old']
    assert gpu.nvidia_floor_warnings('535.1', [], gpu_present=False) == []


# --------------------------------------------------------------------------- PCI

def test_list_pci_gpus_skips_non_display_and_falls_back_to_dir_name(tmp_path):
    devices = tmp_path / 'sys' / 'bus' / 'pci' / 'devices'
    for name, vendor, klass in (('0000:05:00.0', '0x10de', '0x030200'), ('0000:06:00.0', '0x8086', '0x020000'),
                                ('0000:07:00.0', '0x8086', '0x038000'), ('broken', 'zz', 'yy')):
        path = devices / name
        path.mkdir(parents=True)
        (path / 'vendor').write_text(vendor + '\n', encoding='utf-8')
        (path / 'device').write_text('0x1234\n', encoding='utf-8')
        (path / 'class').write_text(klass + '\n', encoding='utf-8')
    drivers = tmp_path / 'sys' / 'bus' / 'pci' / 'drivers' / 'vfio-pci'
    drivers.mkdir(parents=True)
    os.symlink('../../../bus/pci/drivers/vfio-pci', str(devices / '0000:05:00.0' / 'driver'))
    found = gpu.list_pci_gpus(str(tmp_path))
    assert [(d['address'], d['vendor'], d['class'], d['driver']) for d in found] == [
        ('0000:05:00.0', 'nvidia', '0x030200', 'vfio-pci'), ('0000:07:00.0', 'intel', '0x038000', None)]


# --------------------------------------------------------------------------- AMD

@pytest.mark.parametrize('value, target', [
    (110000, 'gfx1100'), (100300, 'gfx1030'), (100304, 'gfx1034'), (90010, 'gfx90a'), (90012, 'gfx90c'),
    (90008, 'gfx908'), (90402, 'gfx942'), (90500, 'gfx950'), (110501, 'gfx1151'), (110003, 'gfx1103'),
    (120001, 'gfx1201'), (0, None), (None, None), (101699, None),
])
def test_gfx_target_from_version(value, target):
    assert gpu.gfx_target_from_version(value) == target


@given(st.integers(min_value=6, max_value=63), st.integers(min_value=0, max_value=15), st.integers(min_value=0, max_value=15))
def test_gfx_target_round_trip(major, minor, step):
    target = gpu.gfx_target_from_version(major * 10000 + minor * 100 + step)
    assert gpu.gfx_version_string(target) == '%d.%d.%d' % (major, minor, step)


@pytest.mark.parametrize('target', list(gpu.OLLAMA_ROCM_TARGETS))
def test_supported_targets_need_no_override(target):
    answer = gpu.suggest_hsa_override(target)
    assert answer['supported'] is True and answer['hsa_override_gfx_version'] is None


@pytest.mark.parametrize('target, override', [
    ('gfx1031', '10.3.0'), ('gfx1032', '10.3.0'), ('gfx1034', '10.3.0'), ('gfx1035', '10.3.0'), ('gfx1036', '10.3.0'),
    ('gfx1103', '11.0.0'),
])
def test_well_known_overrides(target, override):
    answer = gpu.suggest_hsa_override(target)
    assert (answer['supported'], answer['hsa_override_gfx_version']) == (False, override)
    assert override in answer['reason']


@pytest.mark.parametrize('target', ['gfx90c', 'gfx906', 'gfx900', 'gfx1010', 'gfx1012', 'gfx1152', None, ''])
def test_no_override_without_a_well_known_mapping(target):
    answer = gpu.suggest_hsa_override(target)
    assert answer['supported'] is False and answer['hsa_override_gfx_version'] is None and answer['reason']


def _amd(node, target):
    entry = {'node': node, 'gfx_target': target}
    entry.update(gpu.suggest_hsa_override(target))
    return entry


@pytest.mark.parametrize('gpus, env', [
    ([_amd(1, 'gfx1100')], {}),
    ([_amd(1, 'gfx1032')], {'HSA_OVERRIDE_GFX_VERSION': '10.3.0'}),
    ([_amd(1, 'gfx1030'), _amd(2, 'gfx1034')], {'HSA_OVERRIDE_GFX_VERSION': '10.3.0'}),
    ([_amd(1, 'gfx1101'), _amd(2, 'gfx1032')], {'HSA_OVERRIDE_GFX_VERSION_2': '10.3.0'}),
    ([_amd(1, 'gfx1032'), _amd(2, 'gfx1103')], {'HSA_OVERRIDE_GFX_VERSION_1': '10.3.0', 'HSA_OVERRIDE_GFX_VERSION_2': '11.0.0'}),
    ([_amd(1, 'gfx90c'), _amd(2, 'gfx1034')], {'HSA_OVERRIDE_GFX_VERSION_2': '10.3.0'}),
    ([], {}),
])
def test_hsa_override_env(gpus, env):
    assert gpu.hsa_override_env(gpus) == env


def test_unsupported_amd_target_warns(tmp_path):
    nodes = tmp_path / 'sys' / 'class' / 'kfd' / 'kfd' / 'topology' / 'nodes'
    (nodes / '0').mkdir(parents=True)
    (nodes / '0' / 'properties').write_text('cpu_cores_count 8\nsimd_count 0\ngfx_target_version 0\n', encoding='utf-8')
    (nodes / '1').mkdir()
    (nodes / '1' / 'properties').write_text(
        'simd_count 16\ngfx_target_version 90012\nvendor_id 4098\ndevice_id 5686\nlocation_id 1024\ndrm_render_minor 128\n',
        encoding='utf-8')
    (nodes / '2').mkdir()  # an old kernel: no gfx_target_version
    (nodes / '2' / 'properties').write_text('simd_count 64\nvendor_id 4098\ndevice_id 26287\n', encoding='utf-8')
    (nodes / 'junk').mkdir()
    (tmp_path / 'dev').mkdir()
    (tmp_path / 'dev' / 'kfd').write_text('', encoding='utf-8')
    facts = gpu.collect(str(tmp_path))
    apu, old = facts['amd']['gpus']
    assert (apu['gfx_target'], apu['pci_bus_id'], apu['render_node']) == ('gfx90c', '0000:04:00.0', '/dev/dri/renderD128')
    assert old['gfx_target'] is None and old['render_node'] is None
    assert codes(facts) == ['amd_gfx_target_unsupported', 'amd_gfx_target_unsupported']
    assert facts['amd']['hsa_override_env'] == {}
    assert any('renderD128 is named by the KFD topology but missing' in h for h in facts['hints'])


def test_amd_on_pci_without_kfd(tmp_path):
    shutil.copytree(tree('amd_rdna3'), str(tmp_path / 'r'))
    os.remove(str(tmp_path / 'r' / 'dev' / 'kfd'))
    shutil.rmtree(str(tmp_path / 'r' / 'sys' / 'class'))
    facts = gpu.collect(str(tmp_path / 'r'))
    assert (facts['gpu_vendor'], facts['gpu_usable'], facts['gpu_count']) == ('amd', False, 1)
    assert any('no /dev/kfd' in h for h in facts['hints'])
    assert [n['path'] for n in facts['amd']['render_nodes']] == ['/dev/dri/renderD128']


@given(st.text())
@settings(max_examples=200)
def test_text_parsers_never_raise(text):
    gpu.parse_nvidia_smi_csv(text)
    gpu.parse_nvidia_smi_list(text)
    gpu.parse_kfd_properties(text)
    gpu.parse_cdi_spec_yaml(text)
    gpu.parse_nvrm_version(text)
    gpu.parse_uevent(text)
    gpu.parse_nvidia_ctk_version(text)
    gpu.classify_nvidia_smi_failure(1, text, text)


# --------------------------------------------------------------------------- containers

def _daemon(tmp_path, raw):
    path = tmp_path / 'etc' / 'docker'
    path.mkdir(parents=True, exist_ok=True)
    (path / 'daemon.json').write_bytes(raw)
    return gpu.read_daemon_json_runtimes(str(tmp_path))


def test_daemon_json_variants(tmp_path):
    assert gpu.read_daemon_json_runtimes(str(tmp_path))['exists'] is False
    bom = _daemon(tmp_path, b'\xef\xbb\xbf{"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "crun": {}}, "default-runtime": "nvidia"}')
    assert bom['valid'] and bom['runtimes'] == {'nvidia': 'nvidia-container-runtime', 'crun': None} and bom['default_runtime'] == 'nvidia'
    empty = _daemon(tmp_path, b'  \n')
    assert empty['valid'] and empty['empty'] and empty['runtimes'] == {}
    listed = _daemon(tmp_path, b'[1, 2]')
    assert listed['valid'] is False and 'list' in listed['error']
    odd = _daemon(tmp_path, b'{"runtimes": ["nvidia"], "default-runtime": 5, "features": {"cdi": false}}')
    assert odd['valid'] and odd['runtimes'] == {} and odd['default_runtime'] is None and odd['cdi_enabled'] is False
    latin = _daemon(tmp_path, b'{"x": "\xff"}')
    assert latin['valid'] is False and latin['error'].startswith('cannot read')


def test_daemon_json_is_a_directory(tmp_path):
    (tmp_path / 'etc' / 'docker' / 'daemon.json').mkdir(parents=True)
    info = gpu.read_daemon_json_runtimes(str(tmp_path))
    assert info['exists'] and info['valid'] is False and info['error']


def test_cdi_yaml_hand_written_style():
    text = (
        '# a comment\n'
        'cdiVersion: "0.6.0"\n'
        'kind: "vendor.com/device"   # trailing comment\n'
        'devices:\n'
        '  - name: "myDevice"\n'
        '    containerEdits:\n'
        '      deviceNodes:\n'
        '        - path: "/dev/vfio/71"\n'
        '          name: not-a-device\n'
        "  - name: 'other'\n"
        'containerEdits:\n'
        '  env:\n'
        '    - name: FOO\n'
    )
    assert gpu.parse_cdi_spec_yaml(text) == {'kind': 'vendor.com/device', 'cdi_version': '0.6.0', 'devices': ['myDevice', 'other']}


def test_list_cdi_specs(tmp_path):
    etc = tmp_path / 'etc' / 'cdi'
    run = tmp_path / 'var' / 'run' / 'cdi'
    etc.mkdir(parents=True)
    run.mkdir(parents=True)
    (etc / 'amd.json').write_text(json.dumps({'cdiVersion': '0.6.0', 'kind': 'amd.com/gpu',
                                              'devices': [{'name': 'gpu0'}, {'name': 'all'}, 'junk']}), encoding='utf-8')
    (etc / 'broken.json').write_text('{"kind": ', encoding='utf-8')
    (etc / 'README.md').write_text('not a spec', encoding='utf-8')
    (run / 'nokind.yml').write_text('cdiVersion: 0.5.0\ndevices:\n- name: x\n', encoding='utf-8')
    (run / 'list.json').write_text('[]', encoding='utf-8')
    specs = dict((s['path'], s) for s in gpu.list_cdi_specs(str(tmp_path)))
    assert sorted(specs) == ['/etc/cdi/amd.json', '/etc/cdi/broken.json', '/var/run/cdi/list.json', '/var/run/cdi/nokind.yml']
    assert specs['/etc/cdi/amd.json']['devices'] == ['gpu0', 'all'] and specs['/etc/cdi/amd.json']['valid']
    assert specs['/etc/cdi/broken.json']['valid'] is False and specs['/etc/cdi/broken.json']['error'].startswith('invalid JSON')
    assert specs['/var/run/cdi/nokind.yml']['error'] == 'no kind: declared'
    assert specs['/var/run/cdi/list.json']['valid'] is False
    facts = gpu.collect(str(tmp_path))
    assert facts['container']['cdi']['devices'] == ['amd.com/gpu=all', 'amd.com/gpu=gpu0']


@pytest.mark.parametrize('text, version', [
    ('NVIDIA Container Toolkit CLI version 1.17.8\ncommit: f202b80a9b9d0db00d9b1d73c0128c8962c55f4d\n', '1.17.8'),
    ('NVIDIA Container Toolkit CLI version 1.18.0-rc.1\ncommit: abc\n', '1.18.0-rc.1'),
    ('nvidia-ctk version 1.13.5\n', '1.13.5'),
    ('nonsense', None),
])
def test_parse_nvidia_ctk_version(text, version):
    assert gpu.parse_nvidia_ctk_version(text) == version


@pytest.mark.parametrize('answers, expected', [
    ({'Server': (0, '27.5.1\n', ''), 'Client': (0, '27.5.1\n', '')}, ('27.5.1', True)),
    ({'Server': (1, '', 'Cannot connect to the Docker daemon'), 'Client': (1, '25.0.3\n', 'Cannot connect')}, ('25.0.3', False)),
    ({'Server': (0, '<no value>\n', ''), 'Client': (0, '20.10.24+dfsg1\n', '')}, ('20.10.24+dfsg1', False)),
    ({'Server': (1, '', 'permission denied'), 'Client': (1, '', 'boom')}, (None, False)),
])
def test_query_docker_version(answers, expected):
    def run(argv):
        return answers['Server' if 'Server' in argv[-1] else 'Client']
    info = gpu.query_docker_version('/usr/bin/docker', run)
    assert (info['version'], info['server_reachable']) == expected
    assert gpu.query_docker_version(None, run)['version'] is None


def test_group_names(tmp_path):
    (tmp_path / 'etc').mkdir()
    (tmp_path / 'etc' / 'group').write_text('root:x:0:\nrender:x:105:ollama\nbroken line\nvideo:x:44:\n', encoding='utf-8')
    groups = gpu.read_group_names(str(tmp_path))
    assert groups == {0: 'root', 105: 'render', 44: 'video'}
    assert gpu.group_name(105, groups, str(tmp_path)) == 'render'
    assert gpu.group_name(4242, groups, str(tmp_path)) is None
    assert gpu.stat_device_node(str(tmp_path), '/dev/kfd', groups)['exists'] is False


def test_h100_captured_on_real_hardware():
    """nvidia_h100_open_580 was captured by tests/unit/fixtures/gpu/capture.sh on a real
    H100 80GB (open kernel module 580.159.04, no Docker, gVisor-style VM) on 2026-11-25."""
    facts, tools = collect('nvidia_h100_open_580', 'nvidia_h100_open_580')
    assert (facts['gpu_vendor'], facts['gpu_usable'], facts['gpu_count']) == ('nvidia', True, 1)
    nvidia = facts['nvidia']
    assert (nvidia['driver_version'], nvidia['driver_version_source'], nvidia['kernel_module_flavor']) == \
        ('580.159.04', 'proc', 'open')
    assert nvidia['gpus'] == [{
        'index': 0, 'uuid': 'GPU-3c15737e-0676-dd38-2b5d-7dc502112aab', 'name': 'NVIDIA H100 80GB HBM3',
        'memory_total_mib': 81559, 'compute_capability': '9.0', 'pci_bus_id': '0000:00:06.0',
        'mig_mode': 'disabled', 'mig_devices': [],
    }]
    # six virtio/host-bridge functions on that bus, one display controller (class 0x0302, 3D)
    assert [(d['address'], d['class'], d['driver']) for d in facts['pci_display_devices']] == \
        [('0000:00:06.0', '0x030200', 'nvidia')]
    # /dev/nvidia-caps is a directory there: its nodes are listed, not the directory itself
    assert nvidia['device_nodes'] == ['/dev/nvidia0', '/dev/nvidia-caps/nvidia-cap1', '/dev/nvidia-caps/nvidia-cap2',
                                      '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools', '/dev/nvidiactl']
    assert facts['gpu_warnings'] == [] and facts['container']['docker']['path'] is None
    assert ['/usr/bin/nvidia-smi', '-L'] not in tools.calls  # MIG disabled: no second call


class _EngineVersionHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET /version as dockerd does (the fields gpu_facts reads, plus some it ignores)."""
    answer = (200, {'Version': '29.1.3', 'ApiVersion': '1.52', 'Os': 'linux'})

    def address_string(self):  # a unix socket has no client address
        return 'unix'

    def do_GET(self):
        status, body = self.answer
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.send_response(status if self.path == '/version' else 404)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def engine_socket(tmp_path):
    """A real HTTP server on a unix socket under tmp_path/var/run/docker.sock."""
    path = tmp_path / 'var' / 'run' / 'docker.sock'
    path.parent.mkdir(parents=True)
    server = socketserver.UnixStreamServer(str(path), _EngineVersionHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()
    _EngineVersionHandler.answer = (200, {'Version': '29.1.3', 'ApiVersion': '1.52', 'Os': 'linux'})


def test_docker_version_comes_from_the_engine_api_without_running_the_cli(tmp_path, engine_socket):
    shutil.copytree(tree('nvidia_single'), str(tmp_path), dirs_exist_ok=True)
    facts, tools = collect(str(tmp_path), 'nvidia_single')
    docker = facts['container']['docker']
    assert (docker['version'], docker['server_version'], docker['server_reachable']) == ('29.1.3', '29.1.3', True)
    assert docker['client_version'] is None and docker['path'] == '/usr/bin/docker'
    assert not any(c[0].endswith('docker') for c in tools.calls)


@pytest.mark.parametrize('answer', [(500, {'message': 'boom'}), (200, b'not json'), (200, {'Version': 'dev'})])
def test_docker_api_that_does_not_answer_sensibly_falls_back_to_the_cli(tmp_path, engine_socket, answer):
    _EngineVersionHandler.answer = answer
    shutil.copytree(tree('nvidia_single'), str(tmp_path), dirs_exist_ok=True)
    facts, tools = collect(str(tmp_path), 'nvidia_single')
    assert facts['container']['docker']['version'] == '27.5.1'  # the CLI's answer in tools/nvidia_single
    assert any(c[0].endswith('docker') for c in tools.calls)


def test_a_stale_docker_socket_falls_back_to_the_cli(tmp_path):
    shutil.copytree(tree('nvidia_single'), str(tmp_path), dirs_exist_ok=True)
    stale = socket.socket(socket.AF_UNIX)
    (tmp_path / 'var' / 'run').mkdir(parents=True)
    stale.bind(str(tmp_path / 'var' / 'run' / 'docker.sock'))  # bound, never listening: refused
    stale.close()
    assert gpu.query_docker_api_version(str(tmp_path / 'var' / 'run' / 'docker.sock'), timeout=1) is None
    facts, dummy = collect(str(tmp_path), 'nvidia_single')
    assert facts['container']['docker']['version'] == '27.5.1'


def test_host_capacity_from_proc():
    facts, dummy = collect('nvidia_single', 'nvidia_single')
    assert facts['host'] == {'cpus': 2, 'memory_total_mib': 64000}
    facts, dummy = collect('none')  # a tree without /proc/cpuinfo or meminfo
    assert facts['host'] == {'cpus': None, 'memory_total_mib': None}


# --------------------------------------------------------------------------- hard-to-see GPUs
# The trees nvidia_jetson_orin, nvidia_container_nvml_error, amd_kfd_no_topology and
# nvidia_pascal_535_toolkit are written by hand in capture.sh's layout, from what such hosts show:
# a Jetson Orin on JetPack 6 (the open module 540.4.0 for aarch64, /dev/nvidia0, only Tegra's own
# PCIe root port on the bus, no nvidia-smi), a container given two GPUs' nodes but not the host's
# /sys whose nvidia-smi says NVML's "Unknown Error", a container given /dev/kfd and a render node
# but no /sys, and nvidia_pascal_535 with the toolkit registered with Docker.

def test_jetson_like_host_is_an_nvidia_host_without_pci_or_nvidia_smi():
    facts, dummy = collect('nvidia_jetson_orin', 'docker_only')
    assert (facts['gpu_vendor'], facts['gpu_usable'], facts['gpu_count']) == ('nvidia', False, 1)
    assert facts['nvidia']['pci_devices'] == [] and facts['nvidia']['driver_version'] == '540.4.0'
    reason = facts['gpu_unusable_reason']
    assert reason.startswith('NVIDIA kernel module 540.4.0 is loaded and /dev/nvidia0 exists')
    assert 'Jetson' in reason and 'nvidia-smi is missing' in reason and 'install the driver utilities' in reason
    # L4T's driver numbers are not the discrete driver's: no 550 floor for a GPU seen by its node only.
    assert facts['gpu_warnings'] == []
    assert facts['ollama_outlook'] == {'vendor': 'none', 'inference': 'cpu', 'causes': ['gpu_not_usable'],
                                       'cpu_fallback_reason': reason + '; running Ollama on the CPU'}
    assert any('the GPUs are counted from those nodes' in h for h in facts['hints'])


def test_jetson_like_host_without_running_tools_says_so():
    facts, tools = collect('nvidia_jetson_orin', 'docker_only', run_tools=False)
    assert tools.calls == [] and facts['gpu_vendor'] == 'nvidia'
    assert 'nvidia-smi was not run (run_tools=false)' in facts['gpu_unusable_reason']


def test_nvidia_smi_failing_with_gpu_nodes_and_no_pci_tree():
    facts, dummy = collect('nvidia_container_nvml_error', 'nvml_unknown_error')
    nvidia = facts['nvidia']
    assert (nvidia['nvidia_smi_rc'], nvidia['nvidia_smi_error']) == (255, 'failed')
    assert nvidia['nvidia_smi_message'] == 'Failed to initialize NVML: Unknown Error'
    reason = facts['gpu_unusable_reason']
    assert '/dev/nvidia0, /dev/nvidia1 exist' in reason and 'Failed to initialize NVML: Unknown Error' in reason
    assert 'create-dev-char-symlinks' in reason
    assert facts['ollama_outlook']['vendor'] == 'none' and facts['ollama_outlook']['causes'] == ['gpu_not_usable']


def test_nvidia_smi_message_is_null_on_success():
    facts, dummy = collect('nvidia_single', 'nvidia_single')
    assert facts['nvidia']['nvidia_smi_message'] is None and facts['gpu_unusable_reason'] is None


def test_module_loaded_without_gpu_nodes_or_pci_is_still_no_gpu():
    facts, dummy = collect('nvidia_no_gpu', 'nvidia_no_gpu')  # only /dev/nvidiactl: no GPU node, no GPU
    assert (facts['gpu_vendor'], facts['gpu_unusable_reason']) == ('none', None)
    assert facts['ollama_outlook']['causes'] == ['no_gpu']


def test_amd_kfd_without_topology_is_an_amd_host():
    facts, dummy = collect('amd_kfd_no_topology')
    assert (facts['gpu_vendor'], facts['gpu_usable'], facts['gpu_count']) == ('amd', False, 1)
    assert facts['amd']['kfd_topology_readable'] is False and facts['amd']['gpus'] == []
    reason = facts['gpu_unusable_reason']
    assert reason.startswith('/dev/kfd exists but the KFD topology (/sys/class/kfd/kfd/topology/nodes) cannot be read')
    assert "host's /sys" in reason
    assert facts['ollama_outlook']['causes'] == ['gpu_not_usable'] and facts['ollama_outlook']['vendor'] == 'none'
    assert any('cannot be read' in h for h in facts['hints'])


def test_kfd_topology_readable_on_a_captured_host():
    facts, dummy = collect('amd_rdna2', 'docker_only')
    assert facts['amd']['kfd_topology_readable'] is True and facts['gpu_unusable_reason'] is None


@pytest.mark.parametrize('tree_name, case, words', [
    ('nvidia_smi_missing', 'docker_only', ['550.127.05', 'nvidia-smi is missing']),
    ('nvidia_unloaded', 'nvidia_smi_rc9', ['0000:0a:00.0', 'no NVIDIA kernel module is loaded', 'bound: nouveau']),
    ('nvidia_single', 'mismatch', ['version_mismatch', 'reboot']),
])
def test_pci_hosts_get_a_reason_too(tree_name, case, words):
    facts, dummy = collect(tree_name, case)
    assert facts['gpu_vendor'] == 'nvidia' and not facts['gpu_usable']
    for word in words:
        assert word in facts['gpu_unusable_reason']


def test_amd_on_pci_without_kfd_has_a_reason(tmp_path):
    shutil.copytree(tree('amd_rdna3'), str(tmp_path / 'r'))
    os.remove(str(tmp_path / 'r' / 'dev' / 'kfd'))
    facts = gpu.collect(str(tmp_path / 'r'))
    assert facts['gpu_vendor'] == 'amd' and 'no /dev/kfd' in facts['gpu_unusable_reason']


# --------------------------------------------------------------------------- ollama_outlook

def test_pascal_on_535_with_the_toolkit_is_predicted_to_fall_back():
    facts, dummy = collect('nvidia_pascal_535_toolkit', 'nvidia_pascal_535_toolkit')
    assert facts['ollama_outlook'] == {
        'vendor': 'nvidia', 'inference': 'cpu',
        'cpu_fallback_reason': 'GPU 0 (NVIDIA GeForce GTX 1080, compute capability 6.1) needs NVIDIA driver 570 or newer '
                               'for Ollama v0.33 and this host has 535.183.01, so Ollama will fall back to the CPU: '
                               'install NVIDIA driver 570 or newer',
        'causes': ['nvidia_driver_too_old_for_compute_capability', 'nvidia_driver_too_old'],
    }


def test_pascal_on_535_without_a_runtime_names_both():
    facts, dummy = collect('nvidia_pascal_535', 'nvidia_pascal_535')  # its daemon.json is broken JSON
    outlook = facts['ollama_outlook']
    assert outlook['vendor'] == 'none' and outlook['causes'][0] == 'no_gpu_runtime'
    assert 'nvidia_driver_too_old_for_compute_capability' in outlook['causes']
    assert 'install the NVIDIA Container Toolkit' in outlook['cpu_fallback_reason']
    assert 'install NVIDIA driver 570 or newer' in outlook['cpu_fallback_reason']


PASCAL_SMI = r"""#!/bin/sh
# TEST FAKE: nvidia-smi on a GTX 1080 with driver 535, answering like molecule/nvidia/prepare.yml's.
case "$*" in
  *--query-gpu=driver_version*) echo '535.183.01' ;;
  *--query-gpu=*) echo '0, GPU-7c1d9e2f-4a3b-5c6d-8e9f-0a1b2c3d4e5f, NVIDIA GeForce GTX 1080, 8192, 6.1, 00000000:01:00.0, [N/A]' ;;
  -L) echo 'GPU 0: NVIDIA GeForce GTX 1080 (UUID: GPU-7c1d9e2f-4a3b-5c6d-8e9f-0a1b2c3d4e5f)' ;;
  *) echo 'nvidia-smi (TEST FAKE)' ;;
esac
"""


def faked_pascal_host(tmp_path, proc_version=True):
    """A fake root as the Molecule scenarios build one (nvidia_single's tree, the nvidia runtime in
    daemon.json) and a real executable nvidia-smi that answers CC 6.1 and driver 535; returns the facts."""
    root = tmp_path / 'root'
    shutil.copytree(tree('nvidia_single'), str(root))
    if not proc_version:
        shutil.rmtree(str(root / 'proc'))
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'nvidia-smi').write_text(PASCAL_SMI, encoding='utf-8')
    (bin_dir / 'nvidia-smi').chmod(0o755)

    def run(argv):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=20)
        return proc.returncode, proc.stdout, proc.stderr
    return gpu.collect(str(root), run, lambda name: shutil.which(name, path=str(bin_dir)))


@pytest.mark.parametrize('proc_version, driver', [(False, '535.183.01'), (True, '550.54.14')])
def test_a_faked_pascal_host_is_predicted_to_fall_back_mentioning_570(tmp_path, proc_version, driver):
    """Whether the driver comes from nvidia-smi (no /proc) or a captured /proc, CC 6.1 needs 570."""
    facts = faked_pascal_host(tmp_path, proc_version)
    assert facts['nvidia']['driver_version'] == driver and facts['gpu_usable']
    outlook = facts['ollama_outlook']
    assert (outlook['vendor'], outlook['inference']) == ('nvidia', 'cpu')
    assert outlook['causes'][0] == 'nvidia_driver_too_old_for_compute_capability'
    assert 'driver 570 or newer' in outlook['cpu_fallback_reason'] and driver in outlook['cpu_fallback_reason']


def _nvidia_facts(gpus, driver='550.54.14', runtimes=None):
    return {
        'gpu_vendor': 'nvidia', 'gpu_usable': True, 'gpu_count': len(gpus),
        'nvidia': {'driver_version': driver, 'gpus': gpus, 'pci_devices': [{}] * len(gpus), 'device_nodes': []},
        'container': {'daemon_json': {'runtimes': {'nvidia': 'nvidia-container-runtime'} if runtimes is None else runtimes},
                      'cdi': {'devices': []}, 'nvidia_ctk': {'path': '/usr/bin/nvidia-ctk'}},
    }


RTX_4090 = {'index': 0, 'uuid': 'GPU-4090', 'name': 'NVIDIA GeForce RTX 4090', 'compute_capability': '8.9', 'mig_devices': []}
GTX_1080 = {'index': 1, 'uuid': 'GPU-1080', 'name': 'NVIDIA GeForce GTX 1080', 'compute_capability': '6.1', 'mig_devices': []}
TESLA_K80 = {'index': 0, 'uuid': 'GPU-k80', 'name': 'Tesla K80', 'compute_capability': '3.7', 'mig_devices': []}


def test_one_good_gpu_keeps_ollama_on_the_gpu_unless_only_the_old_one_is_given():
    facts = _nvidia_facts([RTX_4090, GTX_1080])
    assert gpu.ollama_outlook(facts) == {'vendor': 'nvidia', 'inference': 'gpu', 'cpu_fallback_reason': None, 'causes': []}
    for selected in (['1'], ['GPU-1080']):
        outlook = gpu.ollama_outlook(facts, vendor='nvidia', selected=selected)
        assert outlook['inference'] == 'cpu' and outlook['causes'] == ['nvidia_driver_too_old_for_compute_capability']
        assert outlook['cpu_fallback_reason'].startswith('GPU 1 (NVIDIA GeForce GTX 1080, compute capability 6.1) needs')
    assert gpu.ollama_outlook(facts, vendor='nvidia', selected=['0'])['inference'] == 'gpu'


def test_driver_below_550_stops_every_gpu():
    outlook = gpu.ollama_outlook(_nvidia_facts([RTX_4090], driver='535.183.01'))
    assert outlook['causes'] == ['nvidia_driver_too_old'] and 'driver 550 or newer' in outlook['cpu_fallback_reason']


def test_compute_capability_below_5_needs_another_gpu_and_the_driver_floor():
    outlook = gpu.ollama_outlook(_nvidia_facts([TESLA_K80], driver='470.256.02'))
    assert outlook['causes'] == ['nvidia_compute_capability_unsupported', 'nvidia_driver_too_old']
    reason = outlook['cpu_fallback_reason']
    assert 'below compute capability 5.0' in reason and 'use a GPU of compute capability 5.0 or newer' in reason
    assert 'install NVIDIA driver 550 or newer' in reason


def test_nvidia_ctk_alone_does_not_hand_out_gpus():
    facts = _nvidia_facts([RTX_4090], runtimes={})
    outlook = gpu.ollama_outlook(facts)
    assert (outlook['vendor'], outlook['causes']) == ('none', ['no_gpu_runtime'])
    assert 'nvidia-ctk alone is not enough' in outlook['cpu_fallback_reason']
    facts['container']['cdi']['devices'] = ['nvidia.com/gpu=all']
    assert gpu.ollama_outlook(facts)['vendor'] == 'nvidia'
    assert gpu.docker_gpu_runtime_problem('nvidia', facts) is None


def test_hidden_gpus_run_on_the_cpu():
    outlook = gpu.ollama_outlook(_nvidia_facts([RTX_4090]), vendor='nvidia', env={'CUDA_VISIBLE_DEVICES': '-1'})
    assert outlook['causes'] == ['gpus_hidden'] and 'CUDA_VISIBLE_DEVICES=-1' in outlook['cpu_fallback_reason']


def test_amd_override_missing_or_given(tmp_path):
    facts, dummy = collect('amd_rdna2', 'docker_only')  # gfx1030 (supported) and gfx1034 (needs 10.3.0)
    assert facts['ollama_outlook'] == {'vendor': 'amd', 'inference': 'gpu', 'cpu_fallback_reason': None, 'causes': []}
    only_1034 = ['/dev/dri/renderD129']
    outlook = gpu.ollama_outlook(facts, vendor='amd', selected=only_1034, env={})
    assert outlook['causes'] == ['amd_hsa_override_missing']
    assert 'gfx1034' in outlook['cpu_fallback_reason'] and 'hsa_override_gfx_version: auto (10.3.0)' in outlook['cpu_fallback_reason']
    for env in ({'HSA_OVERRIDE_GFX_VERSION': '10.3.0'}, {'HSA_OVERRIDE_GFX_VERSION_2': '10.3.0'}, None):
        assert gpu.ollama_outlook(facts, vendor='amd', selected=only_1034, env=env)['inference'] == 'gpu'


def test_amd_targets_nothing_rescues():
    facts = {'gpu_vendor': 'amd', 'gpu_usable': True,
             'amd': {'kfd': {'exists': True}, 'render_nodes': [{'path': '/dev/dri/renderD128', 'exists': True}],
                     'gpus': [{'index': 0, 'node': 1, 'gfx_target': 'gfx90c', 'supported': False,
                               'hsa_override_gfx_version': None, 'render_node': '/dev/dri/renderD128'}]}}
    outlook = gpu.ollama_outlook(facts)
    assert (outlook['vendor'], outlook['inference'], outlook['causes']) == ('amd', 'cpu', ['amd_gfx_target_unsupported'])
    assert 'gfx90c' in outlook['cpu_fallback_reason']


@pytest.mark.parametrize('facts, vendor, expected', [
    (None, None, ('none', 'cpu', ['no_gpu'])),
    ({}, None, ('none', 'cpu', ['no_gpu'])),
    ({}, 'nvidia', ('nvidia', 'gpu', [])),  # nothing known: the choice is trusted
    ({'gpu_vendor': 'nvidia'}, None, ('none', 'cpu', ['gpu_not_usable'])),
    ({'gpu_vendor': 'amd', 'gpu_usable': True}, None, ('none', 'cpu', ['no_gpu_runtime'])),
    ({'gpu_vendor': 'amd', 'gpu_usable': False}, 'amd', ('amd', 'cpu', ['gpu_not_usable'])),
    ({'gpu_vendor': 'nvidia', 'gpu_usable': True, 'container': {'daemon_json': {'runtimes': {'nvidia': None}}}}, None,
     ('nvidia', 'gpu', [])),
    ({'gpu_vendor': 'nvidia', 'gpu_usable': False, 'nvidia': {'pci_devices': [{}]}}, 'nvidia',
     ('nvidia', 'cpu', ['gpu_not_usable'])),
])
def test_outlook_on_partial_facts_never_raises(facts, vendor, expected):
    outlook = gpu.ollama_outlook(facts, vendor=vendor)
    assert (outlook['vendor'], outlook['inference'], outlook['causes']) == expected
    assert (outlook['cpu_fallback_reason'] is None) == (outlook['inference'] == 'gpu')
    json.dumps(outlook)


@pytest.mark.parametrize('path', [
    ('gpu_unusable_reason',), ('nvidia',), ('amd',), ('container',), ('gpu_usable',),
    ('nvidia', 'driver_version'), ('nvidia', 'gpus'), ('nvidia', 'pci_devices'), ('container', 'daemon_json'),
])
@pytest.mark.parametrize('vendor', [None, 'nvidia', 'amd'])
def test_outlook_with_any_key_missing_still_answers(path, vendor):
    facts, dummy = collect('nvidia_pascal_535_toolkit', 'nvidia_pascal_535_toolkit')
    holder = facts
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    outlook = gpu.ollama_outlook(facts, vendor=vendor)
    assert outlook['inference'] in ('gpu', 'cpu') and (outlook['cpu_fallback_reason'] is None) == (not outlook['causes'])
