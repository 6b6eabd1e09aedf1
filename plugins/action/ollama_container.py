# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""ollama_container, answered on the controller when the container already is what the task asks for.

The plugin validates the task's arguments with the module's argument spec, builds the spec with
the module's ollama_spec, reads the container, its image, the spec's image and the network in
one process on the host (module_utils/docker_exec.py's host_inspect) and runs the module's own
reconciler against that read in check mode. It answers by itself only when there is nothing to
do and the module would return at once (a started container running and healthy), with the
module's result, CPU-fallback warning included. Everything else (a change, a container not
healthy yet, GPU facts or an engine version the module has to read itself, pull: always, bad
input, a failed read, async, no known interpreter, no pipelining) runs the module on the host
and returns its result untouched.
"""

from __future__ import annotations

from ansible.utils.display import Display

from ansible_collections.ragops.gpu_stack.plugins.module_utils.container import InputError, ollama_spec
from ansible_collections.ragops.gpu_stack.plugins.module_utils.container_task import ollama_argument_spec
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils import host_read
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils.container_snapshot import (
    SnapshotClient,
    converged_container,
    inspect_request,
    read_snapshot,
)

display = Display()

MODULE_NAME = 'ragops.gpu_stack.ollama_container'


class ActionModule(host_read.HostReadAction):

    MODULE_NAME = MODULE_NAME

    def _argument_spec(self):
        return dict(argument_spec=ollama_argument_spec())

    def _converged_outcome(self, params, run_on_host):
        """The module's result when the container needs nothing, else None."""
        params = dict(params)
        state = params['state']
        facts = params['gpu_facts']
        # As the module's main() does, step by step.
        if state == 'absent':
            params.update(gpu='none', gpus='all', visible_devices=None, hsa_override_gfx_version='auto')
        elif facts is None and params['gpu'] != 'none':
            return self._leave_to_module('gpu_facts is not given: the module reads the host\'s GPUs itself')
        if params['gpu_mode'] == 'cdi' and state != 'absent':
            return self._leave_to_module('gpu_mode: cdi: the module reads the engine\'s version')
        try:
            spec, gpu = ollama_spec(params, facts, None)
        except InputError as exc:
            return self._leave_to_module('the module reports bad input: %s' % exc)

        request = inspect_request(params, spec)
        client = SnapshotClient(request, read_snapshot(run_on_host, request))
        result, why = converged_container(client, spec, params, self._task.diff)
        if result is None:
            return self._leave_to_module(why)

        display.vvv('container %s already is what this task asks for; the module was not run' % spec['name'])
        result['gpu'] = gpu
        if gpu['cpu_fallback_reason']:
            # The module's own warning on every run that falls back to the CPU.
            result['warnings'] = ['gpu: %s: %s' % (gpu['requested'], gpu['cpu_fallback_reason'])]
        result['changed'] = False
        return result
