#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: gpu_facts
short_description: Gather a host's NVIDIA and AMD GPU facts, and what Docker knows about them
version_added: 0.1.0
description:
  - Reads, and never changes, what decides whether Ollama can use a host's GPUs.
  - "NVIDIA: the loaded kernel module and driver version (C(/proc/driver/nvidia/version), else C(nvidia-smi)), each GPU's
    index, UUID, name, memory, compute capability, PCI bus id and MIG mode with its MIG devices (C(nvidia-smi)),
    the NVIDIA display controllers on the PCI bus and the C(/dev/nvidia*) nodes."
  - "AMD: C(/dev/kfd) and the render nodes with their owning group ids (for C(--group-add)), each GPU node of the KFD
    topology with its gfx target, and a suggested E(HSA_OVERRIDE_GFX_VERSION) for targets outside Ollama's ROCm list."
  - "Containers: the C(docker) version, the runtimes, default runtime and CDI feature of C(/etc/docker/daemon.json),
    the CDI spec files in C(/etc/cdi) and C(/var/run/cdi) with the devices they declare, and the C(nvidia-ctk) version."
  - Checks Ollama's hardware floors (NVIDIA compute capability 5.0 and driver 550, compute capability 5.0-6.2 with
    driver 570, AMD targets Ollama's ROCm build lacks) and reports each miss as data and as a warning.
  - Predicts, before anything is deployed, what Ollama will run on (RV(ansible_facts.ragops_gpu.ollama_outlook)), that
    is the GPU vendor its container should be given, and whether Ollama v0.33 will use that GPU or fall back to the
    CPU, with the cause and the fix.
  - Odd output (C([N/A]) fields, C(No devices were found), a driver nvidia-smi cannot reach, a missing tool, invalid
    JSON) gives null values, errors and hints, never a failure.
  - "Everything is returned in one place: the fact C(ragops_gpu) (C(ansible_facts.ragops_gpu)). A registered result
    holds it as RV(ansible_facts.ragops_gpu)."
author:
  - ragops (@ragops)
options:
  root:
    description:
      - The host's file system root to read C(/proc), C(/sys), C(/dev) and C(/etc) under.
      - Another path inspects a mounted image or a captured tree; tools are still run on the host unless O(run_tools=false).
    type: path
    default: /
  timeout:
    description:
      - Seconds each tool call (C(nvidia-smi), C(docker), C(nvidia-ctk)) may take before it is abandoned.
      - A hung GPU can make C(nvidia-smi) wait for minutes. Needs C(timeout) from coreutils on the host.
    type: int
    default: 30
  run_tools:
    description:
      - Whether to run C(nvidia-smi), C(docker) and C(nvidia-ctk) found on E(PATH).
      - With V(false) only files under O(root) are read.
    type: bool
    default: true
  host_facts:
    description:
      - Setup subsets to gather in the same call, so that a play needing both GPU facts and the basic
        host facts (distribution, architecture, kernel) reads them in one round trip instead of two.
      - The facts are gathered by Ansible's own collectors and are exactly those M(ansible.builtin.setup)
        returns for the same subsets (C(ansible_distribution), C(ansible_os_family), ...), minus its
        C(gather_subset) and C(module_setup) markers, so a later implicit fact gathering still runs.
      - They are always read from the host's C(/), whatever O(root) says.
    type: list
    elements: str
    choices: [distribution, platform, virtual, service_mgr]
    default: []
attributes:
  check_mode:
    support: full
    description: The module never changes anything; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  facts:
    support: full
    description: Sets the fact C(ragops_gpu), and the setup facts of O(host_facts).
  platform:
    support: full
    platforms: posix
    description: Linux hosts (it reads C(/proc), C(/sys) and C(/dev)).
notes:
  - "Vendor rule: a vendor whose GPUs are usable wins (NVIDIA: C(nvidia-smi) lists a GPU; AMD: C(/dev/kfd) exists and
    the KFD topology lists a GPU). When both are usable NVIDIA wins. With nothing usable the vendor whose GPUs are on
    the PCI bus is reported (NVIDIA first), so a role can install the driver stack. A loaded driver without a GPU is
    V(none). Both vendors' lists are always reported."
  - "GPUs that are hard to see are never reported as a CPU host: the NVIDIA kernel module loaded with C(/dev/nvidia<N>)
    nodes is an NVIDIA host even without a PCI tree (Jetson/Tegra, a container with a partial C(/sys)) or with
    C(nvidia-smi) missing or failing (counted from the nodes); C(/dev/kfd) with a KFD topology that cannot be read is an
    AMD host. Both are V(gpu_usable=false) with RV(ansible_facts.ragops_gpu.gpu_unusable_reason) saying why."
  - "Docker can hand NVIDIA GPUs to a container only with the C(nvidia) runtime in C(daemon.json) or an
    C(nvidia.com/gpu) CDI spec; C(nvidia-ctk) on PATH alone does not count. M(ragops.gpu_stack.ollama_container) uses
    the same rule."
  - "E(HSA_OVERRIDE_GFX_VERSION_<N>): libhsakmt keys the per-device override by KFD topology node id, and CPU nodes count,
    so on a one-socket host the first GPU is C(_1), not the C(_0) that Ollama's documentation shows. When every GPU
    would end up on the same version (gfx1030 + gfx1034) one plain E(HSA_OVERRIDE_GFX_VERSION) is suggested instead."
  - Only well-known overrides are suggested (gfx1031-gfx1036 to 10.3.0, gfx1103 to 11.0.0); other unsupported targets
    get no override and a reason.
  - Device nodes are stat()ed, so their owning group ids are the host's; group names come from O(root)'s C(/etc/group)
    (and NSS when O(root=/)).
seealso:
  - name: Ollama GPU support
    description: Ollama's hardware requirements and the HSA_OVERRIDE_GFX_VERSION advice.
    link: https://docs.ollama.com/gpu
  - name: Container Device Interface
    description: The CDI specification the spec files follow.
    link: https://github.com/cncf-tags/container-device-interface
'''

EXAMPLES = r'''
- name: Gather GPU facts
  ragops.gpu_stack.gpu_facts:

- name: Show what Ollama will get
  ansible.builtin.debug:
    msg: "{{ ragops_gpu.gpu_vendor }} x{{ ragops_gpu.gpu_count }}, warnings: {{ ragops_gpu.gpu_warnings | map(attribute='message') }}"

- name: Stop early when Ollama would fall back to the CPU
  ansible.builtin.assert:
    that: ragops_gpu.ollama_outlook.inference == 'gpu'
    fail_msg: "{{ ragops_gpu.ollama_outlook.cpu_fallback_reason }}"
  when: gpu_stack_require_gpu | default(false)

- name: Pass the AMD device nodes' groups and the gfx override to the Ollama container
  ansible.builtin.set_fact:
    ollama_group_add: "{{ ragops_gpu.amd.group_ids }}"
    ollama_extra_env: "{{ ragops_gpu.amd.hsa_override_env }}"
  when: ragops_gpu.gpu_vendor == 'amd'

- name: Read the GPUs and the facts setup would give for distribution and platform, in one call
  ragops.gpu_stack.gpu_facts:
    host_facts: [distribution, platform]

- name: Inspect a captured tree without running any tool
  ragops.gpu_stack.gpu_facts:
    root: /srv/captures/gpu-node-07
    run_tools: false
  register: captured
'''

RETURN = r'''
ansible_facts:
  description:
    - The facts this module sets.
    - With O(host_facts), also the facts M(ansible.builtin.setup) returns for those subsets, under the same names.
  returned: always
  type: dict
  contains:
    ragops_gpu:
      description: Everything the module found.
      returned: always
      type: dict
      contains:
        gpu_vendor:
          description: The vendor Ollama should be set up for (see the vendor rule in the notes).
          returned: always
          type: str
          choices: [nvidia, amd, none]
          sample: nvidia
        gpu_usable:
          description: Whether that vendor's GPUs are usable now (driver loaded and answering).
          returned: always
          type: bool
          sample: true
        gpu_count:
          description:
            - How many GPUs of that vendor (usable ones when usable, else those on the PCI bus; where the PCI tree
              shows none, the C(/dev/nvidia<N>) nodes or, for AMD, the render nodes).
          returned: always
          type: int
          sample: 2
        gpu_unusable_reason:
          description:
            - Null when RV(ansible_facts.ragops_gpu.gpu_usable) is true or there is no GPU; else why the GPUs present are
              not usable, naming the cause and the fix (no kernel module for a GPU on the PCI bus, C(nvidia-smi)
              missing or failing with C(/dev/nvidia<N>) nodes present, C(/dev/kfd) without a readable KFD topology, ...).
          returned: always
          type: str
          sample: "NVIDIA kernel module 540.4.0 is loaded and /dev/nvidia0 exists (no NVIDIA GPU on the PCI bus: a
            Jetson/Tegra SoC, or a container that sees a partial /sys), but nvidia-smi is missing, so no GPU can be checked:
            install the driver utilities that provide it (nvidia-utils / nvidia-driver-cuda for driver 540; JetPack 6 on a
            Jetson)"
        ollama_outlook:
          description:
            - What Ollama v0.33 will run on, predicted from these facts before anything is deployed.
            - A prediction from Ollama's documented floors; M(ragops.gpu_stack.ollama_container) passes the GPU even when
              it says V(cpu) (passing it costs nothing) and reports the same prediction in its C(gpu) result.
          returned: always
          type: dict
          contains:
            vendor:
              description:
                - The GPUs the Ollama container should be given (what M(ragops.gpu_stack.ollama_container) picks with
                  C(gpu=auto)); V(none) when no GPU is usable or Docker cannot hand it over.
              type: str
              choices: [nvidia, amd, none]
              returned: always
            inference:
              description:
                - V(gpu) or V(cpu), what Ollama will do. V(cpu) with V(vendor=none), and also with a GPU given that no
                  GPU passes Ollama's floors (NVIDIA driver 550, compute capability 5.0, driver 570 for compute
                  capability 5.0-6.2; an AMD gfx target Ollama's ROCm build supports or that an override maps onto one).
              type: str
              choices: [gpu, cpu]
              returned: always
            cpu_fallback_reason:
              description: Null with V(inference=gpu); else one sentence naming the cause and the fix.
              type: str
              returned: always
            causes:
              description:
                - Codes of every cause that applies, the deciding one first; empty with V(inference=gpu).
                - V(no_gpu), V(gpu_not_usable), V(no_gpu_runtime) (Docker has no nvidia runtime and no nvidia.com/gpu CDI
                  spec, or no AMD device nodes), V(gpus_hidden) (C(CUDA_VISIBLE_DEVICES=-1) and the like), then the floors'
                  codes, most specific first (those of RV(ansible_facts.ragops_gpu.gpu_warnings), and
                  V(amd_hsa_override_missing)).
                - A host with Docker but not yet the NVIDIA Container Toolkit reads V(no_gpu_runtime) until the gpu
                  layer of C(site.yml) installs it; the floors' codes still show what would follow.
              type: list
              elements: str
              returned: always
          sample:
            vendor: nvidia
            inference: cpu
            cpu_fallback_reason: "GPU 0 (NVIDIA GeForce GTX 1080, compute capability 6.1) needs NVIDIA driver 570 or newer
              for Ollama v0.33 and this host has 535.183.01, so Ollama will fall back to the CPU: install NVIDIA driver 570
              or newer"
            causes: [nvidia_driver_too_old_for_compute_capability, nvidia_driver_too_old]
        gpu_warnings:
          description:
            - Ollama's hardware floors this host misses; each is also emitted as a warning.
            - C(code) is one of V(nvidia_driver_too_old), V(nvidia_compute_capability_unsupported),
              V(nvidia_driver_too_old_for_compute_capability), V(amd_gfx_target_unsupported).
            - C(gpu) is the NVIDIA index or the AMD KFD node, null for a host-wide warning.
          returned: always
          type: list
          elements: dict
          sample:
            - code: nvidia_driver_too_old
              gpu: null
              message: "NVIDIA driver 535.183.01 is older than 550: Ollama will fall back to the CPU."
        hints:
          description: Advice for a human (a missing nvidia-smi, nvidia_uvm not loaded, invalid daemon.json, MIG enabled, ...).
          returned: always
          type: list
          elements: str
        host:
          description:
            - What the host can fall back on when a model does not fit in VRAM (Ollama runs those layers on the CPU,
              in system memory), C(cpus) (from C(/proc/cpuinfo)) and C(memory_total_mib) (from C(/proc/meminfo)), null
              where unreadable.
          returned: always
          type: dict
          sample: {cpus: 16, memory_total_mib: 128793}
        pci_display_devices:
          description:
            - Every display-class PCI device (class 0x03xxxx), any vendor, each with C(address), C(vendor_id), C(vendor)
              (V(nvidia), V(amd), V(intel) or V(other)), C(device_id), C(class) and the bound C(driver).
          returned: always
          type: list
          elements: dict
        nvidia:
          description: The NVIDIA side.
          returned: always
          type: dict
          contains:
            kernel_module_loaded:
              description: Whether C(/proc/driver/nvidia/version) exists.
              type: bool
              returned: always
            kernel_module_flavor:
              description: V(open) or V(proprietary), null when unknown.
              type: str
              returned: always
            driver_version:
              description: The driver version, null when unknown.
              type: str
              returned: always
              sample: 550.54.14
            driver_version_source:
              description: Where the version came from, V(proc) or V(nvidia_smi).
              type: str
              returned: always
            nvidia_smi:
              description: The path of C(nvidia-smi), null when absent.
              type: str
              returned: always
            nvidia_smi_rc:
              description: Exit status of the GPU query, null when it did not run.
              type: int
              returned: always
            nvidia_smi_error:
              description:
                - Null on success, else one of V(no_devices), V(driver_unreachable), V(version_mismatch), V(timeout),
                  V(invalid_field), V(failed).
              type: str
              returned: always
            nvidia_smi_message:
              description: The first line nvidia-smi printed when it failed (at most 300 characters); null on success.
              type: str
              returned: always
              sample: "Failed to initialize NVML: Unknown Error"
            gpus:
              description:
                - GPUs as nvidia-smi reports them; C([N/A]) and C([Not Supported]) fields are null.
                - Each has C(index), C(uuid), C(name), C(memory_total_mib), C(compute_capability) (a string such as V(8.9)),
                  C(pci_bus_id) (V(0000:01:00.0)), C(mig_mode) (V(enabled), V(disabled) or null) and C(mig_devices)
                  (C(profile), C(index), C(uuid) from C(nvidia-smi -L)).
              type: list
              elements: dict
              returned: always
            pci_devices:
              description: The NVIDIA entries of RV(ansible_facts.ragops_gpu.pci_display_devices).
              type: list
              elements: dict
              returned: always
            device_nodes:
              description: The C(/dev/nvidia*) nodes present.
              type: list
              elements: str
              returned: always
              sample: [/dev/nvidia0, /dev/nvidia-uvm, /dev/nvidiactl]
        amd:
          description: The AMD side.
          returned: always
          type: dict
          contains:
            kfd:
              description: C(/dev/kfd) as C(path), C(exists), C(gid), C(group), C(mode), C(char_device).
              type: dict
              returned: always
            render_nodes:
              description: The AMD GPUs' render nodes (from the KFD topology, else every C(/dev/dri/renderD*)), each like C(kfd).
              type: list
              elements: dict
              returned: always
            group_ids:
              description: The distinct owning gids of C(/dev/kfd) and the render nodes, for the container's C(group_add).
              type: list
              elements: int
              returned: always
              sample: [44, 105]
            group_names:
              description: Their names where known.
              type: list
              elements: str
              returned: always
            gpus:
              description:
                - GPU nodes of the KFD topology, CPU nodes skipped. Each has C(index) (GPU ordinal), C(node) (KFD node id),
                  C(gfx_target) (V(gfx1030)), C(gfx_target_version) (V(100300)), C(vendor_id), C(device_id), C(pci_bus_id),
                  C(render_node), C(simd_count), C(supported) (in Ollama's ROCm list), C(hsa_override_gfx_version)
                  (suggested value or null) and C(reason).
              type: list
              elements: dict
              returned: always
            pci_devices:
              description: The AMD entries of RV(ansible_facts.ragops_gpu.pci_display_devices).
              type: list
              elements: dict
              returned: always
            hsa_override_env:
              description:
                - Environment to give the Ollama container; empty when no GPU needs an override.
              type: dict
              returned: always
              sample: {HSA_OVERRIDE_GFX_VERSION: 10.3.0}
            kfd_topology_readable:
              description:
                - Whether the KFD topology (C(/sys/class/kfd/kfd/topology/nodes)) could be read. False with C(/dev/kfd)
                  present means the AMD GPUs are there but unknown (a container given the devices but not C(/sys)).
              type: bool
              returned: always
        container:
          description: The container side.
          returned: always
          type: dict
          contains:
            docker:
              description:
                - C(path) (null when docker is absent), C(version) (the server's, else the client's, else null),
                  C(server_version), C(client_version), C(server_reachable), C(error).
                - The engine is asked through its API on C(/var/run/docker.sock) (GET /version); the docker CLI only
                  when the API does not answer, so C(client_version) is null whenever the server answered.
              type: dict
              returned: always
            daemon_json:
              description:
                - C(/etc/docker/daemon.json) read-only; C(path), C(exists), C(valid), C(error) (the JSON error, no traceback),
                  C(empty), C(runtimes) (name to path), C(default_runtime), C(cdi_enabled) (C(features.cdi), null when unset).
              type: dict
              returned: always
            cdi:
              description:
                - C(spec_dirs) searched, C(specs) (each C(path), C(format), C(kind), C(cdi_version), C(devices), C(valid), C(error)),
                  and C(devices), the fully qualified names (V(nvidia.com/gpu=all)) of every valid spec.
              type: dict
              returned: always
            nvidia_ctk:
              description: C(path) of nvidia-ctk (null when absent) and its C(version).
              type: dict
              returned: always
              sample: {path: /usr/bin/nvidia-ctk, version: 1.17.8}
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.facts.ansible_collector import get_ansible_collector
from ansible.module_utils.facts.namespace import PrefixFactNamespace
from ansible.module_utils.facts.system.distribution import DistributionFactCollector
from ansible.module_utils.facts.system.platform import PlatformFactCollector
from ansible.module_utils.facts.system.service_mgr import ServiceMgrFactCollector
from ansible.module_utils.facts.virtual.linux import LinuxVirtualCollector

from ansible_collections.ragops.gpu_stack.plugins.module_utils.gpu import collect


def make_run_command(module, timeout):
    """argv -> (rc, stdout, stderr) through module.run_command, bounded by coreutils' timeout when present."""
    timeout_bin = module.get_bin_path('timeout')

    def run_command(argv):
        if timeout_bin:
            argv = [timeout_bin, '--kill-after=5', str(timeout)] + list(argv)
        return module.run_command(argv, environ_update={'LC_ALL': 'C'})
    return run_command


# Ansible's own collectors for the setup subsets this module can add, so the facts are exactly
# what ansible.builtin.setup would return for them; only these are imported, not all of setup's.
HOST_FACT_COLLECTORS = (DistributionFactCollector, PlatformFactCollector, LinuxVirtualCollector,
                        ServiceMgrFactCollector)
HOST_FACT_SUBSETS = [collector.name for collector in HOST_FACT_COLLECTORS]


def host_facts(module, subsets):
    """The setup facts of ``subsets``, as ``ansible.builtin.setup`` gathers them (``ansible_`` prefixed)."""
    if not subsets:
        return {}
    collector = get_ansible_collector(
        all_collector_classes=HOST_FACT_COLLECTORS,
        namespace=PrefixFactNamespace(namespace_name='ansible', prefix='ansible_'),
        gather_subset=['!all', '!min'] + list(subsets),
        minimal_gather_subset=frozenset(),
    )
    facts = collector.collect(module=module)
    # Not a full setup run: leave gather_facts' "already gathered" markers to setup itself.
    for marker in ('ansible_gather_subset', 'ansible_module_setup', 'gather_subset', 'module_setup'):
        facts.pop(marker, None)
    return facts


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type='path', default='/'),
            timeout=dict(type='int', default=30),
            run_tools=dict(type='bool', default=True),
            host_facts=dict(type='list', elements='str', default=[], choices=HOST_FACT_SUBSETS),
        ),
        supports_check_mode=True,
    )
    root = module.params['root']
    if not os.path.isdir(root):
        module.fail_json(msg='root %s is not a directory' % root)
    if module.params['timeout'] < 1:
        module.fail_json(msg='timeout must be at least 1 second, got %s' % module.params['timeout'])

    facts = collect(
        root=root,
        run_command=make_run_command(module, module.params['timeout']),
        which=module.get_bin_path,
        run_tools=module.params['run_tools'],
    )
    for warning in facts['gpu_warnings']:
        module.warn(warning['message'])
    ansible_facts = host_facts(module, module.params['host_facts'])
    ansible_facts['ragops_gpu'] = facts
    module.exit_json(changed=False, ansible_facts=ansible_facts)


if __name__ == '__main__':
    main()
