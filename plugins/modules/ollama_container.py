#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ollama_container
short_description: Run the Ollama server in a Docker container, on the host's NVIDIA or AMD GPUs or on the CPU
version_added: 0.1.0
author:
  - ragops (@ragops)
description:
  - Creates, updates, starts, stops and removes one Ollama container through the Docker Engine API.
  - Every field this module manages (image, environment, command, published ports, mounts, GPU device requests,
    devices, extra groups, health check, restart policy, log rotation, memory and CPU limits, network, its
    C(org.ragops.gpu_stack.*) labels) is compared strictly with C(docker inspect). Removing an C(OLLAMA_*) variable
    recreates the container. Environment variables that the image itself sets are ignored unless this module sets them.
    Anything else about the container is left alone.
  - A container that differs is stopped, removed, created and started again with the same named volume, so the models
    stay.
  - With O(gpu=auto) the host's GPUs are found in-process (the same facts as M(ragops.gpu_stack.gpu_facts)) or taken
    from O(gpu_facts). A host without a usable GPU and container runtime for it gets a CPU container, and the result
    says why in RV(gpu.cpu_fallback_reason), with a warning; never silently.
  - A GPU that Ollama is predicted not to use (below Ollama's floors, such as a compute capability 6.1 GPU on a driver
    older than 570) is still passed, since the prediction may be wrong and passing it costs nothing, but the result
    says V(cpu) in RV(gpu.inference) with the reason in RV(gpu.cpu_fallback_reason), and the module warns. The
    prediction is the C(ollama_outlook) of M(ragops.gpu_stack.gpu_facts), made for exactly the GPUs and environment
    this container gets.
  - Bad input fails before anything is touched, naming the option; so does a published port that something else
    holds (a bind test on the host address) and an image the registry refuses (with the registry's message).
  - With O(state=started) the task waits until the container's health check (C(ollama list); the image has no curl or
    wget) passes, up to O(wait_healthy_timeout) seconds; on timeout the error carries the last health-check output and
    the last log lines.
options:
  name:
    description:
      - The container's name. Several instances can run on one host under different names, each with its own GPUs,
        port and volume.
    type: str
    default: ollama
  state:
    description:
      - V(started) creates or updates the container and makes sure it runs and is healthy.
      - V(stopped) creates or updates the container and makes sure it does not run.
      - V(absent) removes the container; its model volume stays unless O(purge=true).
    type: str
    choices: [started, stopped, absent]
    default: started
  purge:
    description:
      - With O(state=absent), also remove the named volume O(volume) and the models in it.
    type: bool
    default: false
  image:
    description:
      - The image reference, with a tag (or digest); a reference without a tag fails, so C(latest) is never used by
        accident.
      - With AMD GPUs the C(-rocm) variant of the tag is used (V(ollama/ollama:0.33.0) becomes
        V(ollama/ollama:0.33.0-rocm)) unless O(rocm_image=false) or the tag already names rocm.
    type: str
    default: ollama/ollama:0.33.0
  rocm_image:
    description:
      - Whether to switch to the C(-rocm) tag for AMD GPUs.
    type: bool
    default: true
  pull:
    description:
      - V(missing) pulls the image only when the host does not have it.
      - V(always) pulls every run; the container is recreated only when the tag then points at another image.
        In check mode nothing is pulled, so a newer image in the registry is not predicted.
      - V(never) fails when the host does not have the image.
    type: str
    choices: [missing, always, never]
    default: missing
  gpu:
    description:
      - V(auto) uses the host's GPU vendor when its GPUs are usable and Docker can pass them (NVIDIA Container Toolkit,
        or C(/dev/kfd) and render nodes for AMD), else the CPU with RV(gpu.cpu_fallback_reason).
      - V(nvidia), V(amd) and V(none) force a choice; V(nvidia) and V(amd) fail when the facts show no such GPU.
    type: str
    choices: [auto, nvidia, amd, none]
    default: auto
  gpus:
    description:
      - Which GPUs the container gets. V(all), a number of GPUs (V(2)), or a list of GPU indexes or UUIDs
        (V([GPU-8f6a...]); UUIDs are steadier than indexes).
      - "NVIDIA: a device request with driver C(nvidia) and capabilities C([[gpu]]): C(Count -1) for V(all), C(Count N),
        or C(DeviceIDs). With O(gpu_mode=cdi), the CDI names C(nvidia.com/gpu=<id>)."
      - "AMD: V(all) passes C(/dev/dri); a count or a list (GPU indexes or C(/dev/dri/renderD*) paths) passes only
        those render nodes. C(/dev/kfd) is always passed."
      - A number or a list on a host that runs the CPU container fails.
    type: raw
    default: all
  gpu_mode:
    description:
      - How NVIDIA GPUs are passed. V(runtime) uses a device request for the NVIDIA Container Toolkit.
      - V(cdi) uses Container Device Interface names; it needs Docker 25 or later and fails clearly on older engines.
    type: str
    choices: [runtime, cdi]
    default: runtime
  gpu_facts:
    description:
      - The host's C(ragops_gpu) facts from M(ragops.gpu_stack.gpu_facts). When unset and O(gpu) is not V(none) they
        are gathered in-process.
    type: dict
  num_parallel:
    description: E(OLLAMA_NUM_PARALLEL), requests each model serves at once (Ollama's default 1).
    type: int
  max_loaded_models:
    description: E(OLLAMA_MAX_LOADED_MODELS), models loaded at once (Ollama's default 0 means 3 per GPU).
    type: int
  max_queue:
    description: E(OLLAMA_MAX_QUEUE), queued requests before Ollama answers 503 (Ollama's default 512).
    type: int
  keep_alive:
    description:
      - E(OLLAMA_KEEP_ALIVE), how long an idle model stays loaded; a Go duration (V(5m), V(1h30m)) or seconds (V(300)).
        A negative value keeps models loaded forever.
    type: str
  flash_attention:
    description: E(OLLAMA_FLASH_ATTENTION); unset leaves Ollama's automatic choice.
    type: bool
  kv_cache_type:
    description:
      - E(OLLAMA_KV_CACHE_TYPE). V(q8_0) and V(q4_0) need O(flash_attention=true), because llama.cpp refuses a
        quantized V cache without flash attention; the task fails otherwise.
    type: str
    choices: [f16, q8_0, q4_0]
  context_length:
    description: E(OLLAMA_CONTEXT_LENGTH), the default context length (0 lets Ollama choose by VRAM).
    type: int
  gpu_overhead:
    description: E(OLLAMA_GPU_OVERHEAD), VRAM to keep free per GPU; bytes or a size such as V(512m).
    type: str
  sched_spread:
    description: E(OLLAMA_SCHED_SPREAD), spread every model across all GPUs.
    type: bool
  origins:
    description: E(OLLAMA_ORIGINS), extra allowed browser origins.
    type: list
    elements: str
  debug:
    description: E(OLLAMA_DEBUG); V(1) debug, V(2) trace, V(0) unset.
    type: int
    choices: [0, 1, 2]
  noprune:
    description: E(OLLAMA_NOPRUNE), keep blobs that no manifest names (useful when seeding models by copying files).
    type: bool
  visible_devices:
    description:
      - GPUs Ollama may use inside the container, as E(CUDA_VISIBLE_DEVICES) (NVIDIA) or E(ROCR_VISIBLE_DEVICES) (AMD).
      - Usually unneeded, since O(gpus) decides which GPUs the container sees at all.
    type: list
    elements: str
  hsa_override_gfx_version:
    description:
      - E(HSA_OVERRIDE_GFX_VERSION) for AMD GPUs outside Ollama's ROCm targets, such as V(10.3.0).
      - V(auto) uses what the GPU facts suggest for the detected gfx targets (nothing for supported targets);
        V(none) sets nothing.
    type: str
    default: auto
  env:
    description:
      - More environment variables, as given. A variable that a typed option also sets must have the same value.
    type: dict
  volume:
    description: The named volume mounted on C(/root/.ollama) (the models). Defaults to O(name).
    type: str
  publish:
    description:
      - Publish Ollama's port 11434 on O(bind_address):O(port).
      - V(false) publishes nothing, for a container reached only on its O(network).
    type: bool
    default: true
  bind_address:
    description: The host address to publish on. The default keeps Ollama, which has no authentication, off the network.
    type: str
    default: 127.0.0.1
  port:
    description: The host port to publish on.
    type: int
    default: 11434
  network:
    description:
      - A user-defined network to attach the container to (created as a bridge network when missing); the other
        containers on it reach Ollama as C(http://<name>:11434).
      - Unset uses Docker's default bridge.
    type: str
  memory:
    description: Memory limit, such as V(16g); unset or V(0) means none.
    type: str
  cpus:
    description: CPU limit in CPUs, such as V(4) or V(1.5); unset means none.
    type: float
  restart_policy:
    description: Docker's restart policy.
    type: str
    choices: ['no', always, unless-stopped, on-failure]
    default: unless-stopped
  log_max_size:
    description: json-file log rotation, the size of one log file.
    type: str
    default: 10m
  log_max_file:
    description: json-file log rotation, how many files to keep.
    type: int
    default: 3
  healthcheck:
    description: Timings of the C(ollama list) health check.
    type: dict
    suboptions:
      interval:
        description: Time between checks.
        type: str
        default: 10s
      timeout:
        description: Time one check may take.
        type: str
        default: 5s
      retries:
        description: Failures in a row that make the container unhealthy.
        type: int
        default: 3
      start_period:
        description: Start-up time during which failures do not count.
        type: str
        default: 60s
  wait_healthy_timeout:
    description:
      - Seconds to wait, with O(state=started), until the container is healthy; V(0) does not wait.
    type: int
    default: 300
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.docker
attributes:
  action:
    support: full
    description:
      - The action plugin of the same name validates the arguments on the controller, builds the container spec
        with the module's own code and reads the container, its image, the spec's image and the network in one
        small Python script on the host (with the docker SDK, through C(become) and the task's C(environment)
        where the task has them). When the module's reconciler finds nothing to do and the container is running
        and healthy (or, with O(state=stopped) or O(state=absent), already as asked), it returns the module's
        result, CPU-fallback warning included, without running it. Without O(gpu_facts) (and O(gpu) not V(none)),
        with O(gpu_mode=cdi) or O(pull=always), the module runs.
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    support: full
    platforms: posix
notes:
  - AMD containers get the owning group ids of C(/dev/kfd) and the render nodes as extra groups (C(group_add)), since
    the C(render) and C(video) gids differ between host and image.
  - The diff shows the managed fields only, before and after.
seealso:
  - module: ragops.gpu_stack.gpu_facts
  - module: ragops.gpu_stack.pgvector_container
"""

EXAMPLES = r"""
- name: Ollama on whatever GPU the host has, else on the CPU, on localhost:11434
  ragops.gpu_stack.ollama_container:
    num_parallel: 2
    keep_alive: 30m
  register: ollama

- name: Say when it fell back to the CPU
  ansible.builtin.debug:
    msg: "{{ ollama.gpu.cpu_fallback_reason }}"
  when: ollama.gpu.cpu_fallback_reason

- name: Two instances, one GPU each, by UUID
  ragops.gpu_stack.ollama_container:
    name: "ollama-{{ item.0 }}"
    gpu: nvidia
    gpus: ["{{ item.1 }}"]
    port: "{{ 11434 + item.0 }}"
    flash_attention: true
    kv_cache_type: q8_0
  loop: "{{ ansible_facts.ragops_gpu.nvidia.gpus | map(attribute='uuid') | list | enumerate | list }}"

- name: AMD, an override for an unsupported gfx target, on an internal network only
  ragops.gpu_stack.ollama_container:
    gpu: amd
    hsa_override_gfx_version: 10.3.0
    publish: false
    network: ragops

- name: Remove it and its models
  ragops.gpu_stack.ollama_container:
    state: absent
    purge: true
"""

RETURN = r"""
container:
  description: The container after the task (before it, in check mode); null when there is none.
  returned: always
  type: dict
  contains:
    id:
      description: The container id.
      type: str
    name:
      description: The container name.
      type: str
    image:
      description: The image reference it was created from.
      type: str
    image_id:
      description: The image id it runs.
      type: str
    status:
      description: Docker's status, such as V(running) or V(exited).
      type: str
    health:
      description: V(healthy), V(unhealthy), V(starting), or null without a health check.
      type: str
  sample: {id: 3f2a..., name: ollama, image: ollama/ollama:0.33.0, image_id: "sha256:5472...", status: running,
           health: healthy}
actions:
  description: What was done (what would be done, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [pull, "recreate: env OLLAMA_NUM_PARALLEL changed"]
differences:
  description: Why the existing container does not match, one entry per managed field or variable.
  returned: always
  type: list
  elements: str
  sample: [env OLLAMA_NUM_PARALLEL changed, ports changed]
gpu:
  description: The GPU decision.
  returned: always
  type: dict
  contains:
    requested:
      description: The O(gpu) option.
      type: str
    vendor:
      description: V(nvidia), V(amd) or V(none) (the CPU).
      type: str
    mode:
      description: V(runtime) or V(cdi) (NVIDIA), V(devices) (AMD), null on the CPU.
      type: str
    devices:
      description: The GPUs passed (V(all), a count, ids, CDI names or device node paths).
      type: list
      elements: str
    inference:
      description:
        - What Ollama is expected to run on, V(gpu) or V(cpu). Always V(cpu) with V(none) in RV(gpu.vendor); V(cpu) with
          a GPU passed when none of the GPUs given passes Ollama v0.33's floors or they are hidden
          (C(CUDA_VISIBLE_DEVICES=-1)).
      type: str
      choices: [gpu, cpu]
    cpu_fallback_reason:
      description:
        - Why Ollama runs, or will likely run, on the CPU, naming the cause and the fix; null when it uses the GPU and
          with O(gpu=none).
        - Set both when O(gpu=auto) gives the container no GPU and when a GPU is passed but predicted to go unused.
      type: str
  sample: {requested: nvidia, vendor: nvidia, mode: runtime, devices: [all], inference: cpu,
           cpu_fallback_reason: "GPU 0 (NVIDIA GeForce GTX 1080, compute capability 6.1) needs NVIDIA driver 570 or newer
             for Ollama v0.33 and this host has 535.183.01, so Ollama will fall back to the CPU: install NVIDIA driver 570
             or newer"}
diff:
  description: The managed fields before and after.
  returned: when diff mode is on
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils.container import (
    ContainerError,
    InputError,
    ollama_spec,
    reconcile,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.container_task import ollama_argument_spec as argument_spec
from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_client import (
    APIError,
    api_error_text,
    connect,
    require_docker,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.gpu import collect


def host_gpu_facts(module):
    """The ragops_gpu facts of this host, gathered in-process like gpu_facts does."""
    def run_command(argv):
        return module.run_command(argv, environ_update={'LC_ALL': 'C'})
    return collect(root='/', run_command=run_command, which=module.get_bin_path, run_tools=True)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_docker(module)
    params = dict(module.params)
    state = params['state']

    facts = params['gpu_facts']
    if state == 'absent':
        params.update(gpu='none', gpus='all', visible_devices=None, hsa_override_gfx_version='auto')
    elif facts is None and params['gpu'] != 'none':
        facts = host_gpu_facts(module)

    client = connect(module)
    engine_version = None
    if params['gpu_mode'] == 'cdi' and state != 'absent':
        try:
            engine_version = client.version().get('Version')
        except APIError as exc:
            module.fail_json(msg='docker_host: cannot read the engine version: %s' % api_error_text(exc))

    try:
        spec, gpu = ollama_spec(params, facts, engine_version)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    if gpu['cpu_fallback_reason']:
        # Said before anything is deployed: the GPU passed but Ollama predicted to ignore it, or no GPU passed.
        module.warn('gpu: %s: %s' % (gpu['requested'], gpu['cpu_fallback_reason']))

    try:
        result = reconcile(client, spec, state=state, check_mode=module.check_mode, pull_policy=params['pull'],
                           wait_healthy_timeout=params['wait_healthy_timeout'], purge=params['purge'])
    except InputError as exc:
        module.fail_json(msg=str(exc), gpu=gpu)
    except ContainerError as exc:
        module.fail_json(msg=str(exc), gpu=gpu, **exc.details)

    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(gpu=gpu, **result)


if __name__ == '__main__':
    main()
