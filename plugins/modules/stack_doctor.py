#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_doctor
short_description: Prove that a host serves RAG on the GPU it was meant to use, check by check
version_added: 0.2.0
author:
  - ragops (@ragops)
description:
  - Visits one host in one call and returns a list of checks, each V(ok), V(warn) or V(fail) with a message and, when
    not ok, its likely cause and the fix. The module never fails because of what it finds; it fails only on bad input.
    The play decides (C(playbooks/verify.yml) fails the hosts whose RV(status) is V(fail)).
  - "Docker: C(docker info) answers; C(/etc/docker/daemon.json) is valid JSON whose C(default-runtime) is registered."
  - "NVIDIA hosts: the C(nvidia) runtime is registered with the running dockerd and in daemon.json (or, for a container
    that asks by CDI names, an C(nvidia.com/gpu) CDI spec exists); C(nvidia-ctk) answers; the driver against the CUDA
    table and Ollama's driver and compute-capability floors (the GPU facts' C(ollama_outlook) when present); a
    throwaway container from the Ollama container's image with the same GPU request (named C(ragops-doctor-probe-*),
    removed before the module returns) sees C(/dev/nvidia<N>); the Ollama container itself holds them."
  - "AMD hosts: C(/dev/kfd) and the render nodes exist inside the Ollama container, with the host nodes' group ids
    and among the container's groups (C(GroupAdd)); a node whose group changed on the host since is a failure."
  - "Ollama: the container runs, is healthy, has not restarted or been killed for memory; the API answers; the listed
    models are installed; the embedding model (O(embedding_model), else the first listed model that C(/api/show) calls
    an embedding model, preloaded ones first) is loaded by embedding the round trip's sentences; then C(/api/ps)
    C(size_vram) and the log's latest C(inference compute) lines (C(library=)) say whether the GPU carries inference.
    On a host expected to use a GPU, a model on the CPU fails, naming the causes the evidence supports (driver floor,
    compute capability, gfx target without override, missing device nodes, the cgroup-driver case). Free VRAM when
    Ollama started is compared with the models it must keep loaded."
  - "pgvector: the container runs; the C(vector) extension and its version; the embeddings table's dimension equals
    the embedding model's; a RAG round trip (four sentences embedded, stored, queried by one of them, which must come
    back first), in a temporary table inside a transaction that is rolled back, in one psql session through
    C(docker exec), so that no user's row is touched and nothing persists even if the run dies."
  - "Exposure: a published port of either container bound beyond C(127.0.0.1)/C(::1) that the options do not ask for,
    or a container on the host network, is a failure."
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.docker
options:
  facts_root:
    description:
      - The host's file system root to read C(/etc/docker/daemon.json), C(/etc/cdi), C(/dev) and C(/etc/group) under,
        as M(ragops.gpu_stack.gpu_facts) O(ragops.gpu_stack.gpu_facts#module:root) (test hosts fake them there).
    type: path
    default: /
  gpu_facts:
    description:
      - The host's C(ragops_gpu) facts from M(ragops.gpu_stack.gpu_facts). Unset gathers them in-process.
    type: dict
  expected_gpu:
    description:
      - What the Ollama container must run on. V(auto) takes the vendor the GPU facts found, usable or not.
    type: str
    choices: [auto, nvidia, amd, none]
    default: auto
  ollama:
    description: The Ollama container as the inventory sets it up (the ollama role's variables).
    type: dict
    default: {}
    suboptions:
      name:
        description: The container's name.
        type: str
        default: ollama
      state:
        description:
          - The state the inventory wants it in. Only V(started) is checked as a server; for V(stopped) and V(absent)
            the doctor checks that the container is so, and checks nothing that needs Ollama.
        type: str
        choices: [started, stopped, absent]
        default: started
      api_url:
        description:
          - The API address. Unset uses the published port (loopback when bound to all interfaces), else the
            container's address on its network.
        type: str
      bind_address:
        description: The host address its port is published on.
        type: str
        default: 127.0.0.1
      port:
        description: The host port.
        type: int
        default: 11434
      publish:
        description: Whether the inventory publishes the port at all.
        type: bool
        default: true
  pgvector:
    description:
      - The pgvector container as the inventory sets it up (the pgvector role's variables); unset checks no pgvector.
      - psql runs inside the container as O(pgvector.user) over its local socket, as M(ragops.gpu_stack.pgvector_database)
        does, so no password is needed or read.
    type: dict
    suboptions:
      name:
        description: The container's name.
        type: str
        default: pgvector
      database:
        description: The database with the C(vector) extension.
        type: str
        default: rag
      user:
        description: The role psql runs as.
        type: str
        default: rag
      table:
        description: The embeddings table to compare with the embedding model; unset compares none.
        type: dict
        suboptions:
          name:
            description: Its name.
            type: str
            required: true
          schema:
            description: Its schema.
            type: str
            default: public
          embedding_column:
            description: Its vector column.
            type: str
            default: embedding
      bind_address:
        description: The host address its port is published on.
        type: str
        default: 127.0.0.1
      port:
        description: The host port.
        type: int
        default: 5432
      publish:
        description: Whether the inventory publishes the port at all.
        type: bool
        default: true
  models:
    description:
      - The models the host must hold, as M(ragops.gpu_stack.ollama_model) O(ragops.gpu_stack.ollama_model#module:models)
        takes them (names, or dicts with C(name), C(state), C(preload), C(keep_alive)).
    type: list
    elements: raw
    default: []
  models_state:
    description: The state of entries that set none.
    type: str
    choices: [present, latest, absent]
    default: present
  embedding_model:
    description: The embedding model; unset picks one from O(models).
    type: str
  round_trip:
    description: Whether to run the RAG round trip.
    type: bool
    default: true
  gpu_probe:
    description: Whether to run the probe container on NVIDIA hosts.
    type: bool
    default: true
  timeout:
    description: Seconds the embed call may take (it may load the embedding model first).
    type: int
    default: 120
attributes:
  check_mode:
    support: full
    description:
      - The module changes nothing and runs the same read-only checks in check mode; it never reports a change.
      - Its only traces are gone when it returns (the probe container removed; the round trip's temporary table
        rolled back). The embed call loads the embedding model, as any RAG query would.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Linux hosts with Docker.
requirements:
  - requests (Python) on the managed host
"""

EXAMPLES = r"""
- name: Check the host
  ragops.gpu_stack.stack_doctor:
    gpu_facts: "{{ ragops_gpu }}"
    expected_gpu: nvidia
    ollama: {name: ollama, port: 11434}
    pgvector: {name: pgvector, database: rag, user: rag, table: {name: chunks}}
    models: [{name: nomic-embed-text, preload: true}, llama3.2:3b]
  register: doctor

- name: Fail the host when a check failed
  ansible.builtin.fail:
    msg: "{{ doctor.checks | selectattr('status', 'eq', 'fail') | map(attribute='message') | join('; ') }}"
  when: doctor.status == 'fail'
"""

RETURN = r"""
checks:
  description: Every check that applies to the host, in order.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: >-
        docker, daemon_json, gpu, nvidia_runtime, nvidia_ctk, nvidia_driver, gpu_probe, gpu_devices, ollama_container,
        ollama_api, ollama_models, embedding_model, vram, gpu_inference, compute_library, pgvector_container,
        pgvector_extension, pgvector_dimension, rag_round_trip, exposure.
      type: str
    status:
      description: V(ok), V(warn) or V(fail).
      type: str
    message:
      description: What was found.
      type: str
    cause:
      description: The likely cause; null when ok.
      type: str
    fix:
      description: What to do; null when ok.
      type: str
  sample: [{id: gpu_inference, status: fail, message: "nomic-embed-text:latest 100% CPU: an NVIDIA host whose model sits on the CPU",
            cause: "GPU 0 (Tesla P100, compute capability 6.0) needs NVIDIA driver 570 or newer (found 535.104.05)",
            fix: "install NVIDIA driver 570 or newer"}]
status:
  description: The worst status of RV(checks).
  returned: always
  type: str
  sample: ok
host:
  description: >-
    A summary: expected_gpu, gpu_vendor, predicted_inference, ollama_gpu (the container's label), inference
    (gpu, partial, cpu, unknown), libraries, models_loaded, embedding_model, embedding_dimensions,
    pgvector_extension, failed (check ids) and seconds.
  returned: always
  type: dict
  sample: {expected_gpu: none, inference: cpu, embedding_model: "nomic-embed-text:latest", embedding_dimensions: 768,
           pgvector_extension: 0.8.0, failed: [], seconds: 0.62}
report:
  description: "One line per check: C(ok <id>: message), C(warn <id>: ...) or C(FAIL <id>: message; cause: ...; fix: ...)."
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_client import (
    DockerException,
    docker_client_argument_spec,
    get_api_client,
    require_docker,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.doctor import Doctor
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_api import OllamaClient, require_requests
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_models import InputError


def argument_spec():
    table = dict(name=dict(type='str', required=True), schema=dict(type='str', default='public'),
                 embedding_column=dict(type='str', default='embedding'))
    return dict(
        docker_client_argument_spec(),
        facts_root=dict(type='path', default='/'),
        gpu_facts=dict(type='dict'),
        expected_gpu=dict(type='str', choices=['auto', 'nvidia', 'amd', 'none'], default='auto'),
        ollama=dict(type='dict', default={}, options=dict(
            name=dict(type='str', default='ollama'), api_url=dict(type='str'),
            state=dict(type='str', choices=['started', 'stopped', 'absent'], default='started'),
            bind_address=dict(type='str', default='127.0.0.1'), port=dict(type='int', default=11434),
            publish=dict(type='bool', default=True))),
        pgvector=dict(type='dict', options=dict(
            name=dict(type='str', default='pgvector'), database=dict(type='str', default='rag'),
            user=dict(type='str', default='rag'), table=dict(type='dict', options=table),
            bind_address=dict(type='str', default='127.0.0.1'), port=dict(type='int', default=5432),
            publish=dict(type='bool', default=True))),
        models=dict(type='list', elements='raw', default=[]),
        models_state=dict(type='str', choices=['present', 'latest', 'absent'], default='present'),
        embedding_model=dict(type='str'),
        round_trip=dict(type='bool', default=True),
        gpu_probe=dict(type='bool', default=True),
        timeout=dict(type='int', default=120),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_docker(module)
    require_requests(module)
    api, docker_error = None, None
    try:
        api = get_api_client(module.params['docker_host'], module.params['docker_timeout'])
    except DockerException as exc:
        docker_error = str(exc)

    def run_command(argv):
        return module.run_command(argv, environ_update={'LC_ALL': 'C'})

    doctor = Doctor(module.params, api, docker_error, lambda url: OllamaClient(url, timeout=30), run_command,
                    module.get_bin_path)
    try:
        result = doctor.run()
    except InputError as exc:
        module.fail_json(msg='models: %s' % exc)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
