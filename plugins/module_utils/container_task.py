# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of ollama_container and pgvector_container.

Each module and its action plugin validate with the same spec, so that what the controller
accepts cannot drift from what the module accepts. Nothing here imports the docker SDK.
"""

from __future__ import annotations

from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_exec import docker_client_argument_spec


def host_options(port):
    """What both containers take about where and how they run: published port, network, limits, restart, logs."""
    return dict(
        publish=dict(type='bool', default=True),
        bind_address=dict(type='str', default='127.0.0.1'),
        port=dict(type='int', default=port),
        network=dict(type='str'),
        memory=dict(type='str'),
        cpus=dict(type='float'),
        restart_policy=dict(type='str', choices=['no', 'always', 'unless-stopped', 'on-failure'], default='unless-stopped'),
        log_max_size=dict(type='str', default='10m'),
        log_max_file=dict(type='int', default=3),
    )


def ollama_argument_spec():
    spec = dict(
        name=dict(type='str', default='ollama'),
        state=dict(type='str', choices=['started', 'stopped', 'absent'], default='started'),
        purge=dict(type='bool', default=False),
        image=dict(type='str', default='ollama/ollama:0.33.0'),
        rocm_image=dict(type='bool', default=True),
        pull=dict(type='str', choices=['missing', 'always', 'never'], default='missing'),
        gpu=dict(type='str', choices=['auto', 'nvidia', 'amd', 'none'], default='auto'),
        gpus=dict(type='raw', default='all'),
        gpu_mode=dict(type='str', choices=['runtime', 'cdi'], default='runtime'),
        gpu_facts=dict(type='dict'),
        num_parallel=dict(type='int'),
        max_loaded_models=dict(type='int'),
        max_queue=dict(type='int'),
        keep_alive=dict(type='str'),
        flash_attention=dict(type='bool'),
        kv_cache_type=dict(type='str', choices=['f16', 'q8_0', 'q4_0']),
        context_length=dict(type='int'),
        gpu_overhead=dict(type='str'),
        sched_spread=dict(type='bool'),
        origins=dict(type='list', elements='str'),
        debug=dict(type='int', choices=[0, 1, 2]),
        noprune=dict(type='bool'),
        visible_devices=dict(type='list', elements='str'),
        hsa_override_gfx_version=dict(type='str', default='auto'),
        env=dict(type='dict'),
        volume=dict(type='str'),
        **host_options(11434),
        healthcheck=dict(type='dict', options=dict(
            interval=dict(type='str', default='10s'),
            timeout=dict(type='str', default='5s'),
            retries=dict(type='int', default=3),
            start_period=dict(type='str', default='60s'),
        )),
        wait_healthy_timeout=dict(type='int', default=300),
    )
    spec.update(docker_client_argument_spec())
    return spec


def pgvector_argument_spec():
    spec = dict(
        name=dict(type='str', default='pgvector'),
        state=dict(type='str', choices=['started', 'stopped', 'absent'], default='started'),
        purge=dict(type='bool', default=False),
        image=dict(type='str', default='pgvector/pgvector:pg17'),
        pull=dict(type='str', choices=['missing', 'always', 'never'], default='missing'),
        user=dict(type='str', default='ragops'),
        database=dict(type='str'),
        password=dict(type='str', no_log=True),
        # A path, not a secret: without no_log=False AnsibleModule warns about every run for the word 'password'.
        password_file=dict(type='path', no_log=False),
        volume=dict(type='str'),
        shm_size=dict(type='str', default='256m'),
        shared_buffers=dict(type='str'),
        work_mem=dict(type='str'),
        maintenance_work_mem=dict(type='str'),
        max_connections=dict(type='int'),
        settings=dict(type='dict'),
        env=dict(type='dict'),
        **host_options(5432),
        healthcheck=dict(type='dict', options=dict(
            interval=dict(type='str', default='5s'),
            timeout=dict(type='str', default='5s'),
            retries=dict(type='int', default=5),
            start_period=dict(type='str', default='30s'),
        )),
        wait_healthy_timeout=dict(type='int', default=180),
    )
    spec.update(docker_client_argument_spec())
    return spec
