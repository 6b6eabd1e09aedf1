# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container modules' reconciler, run on the controller against one read of the host's engine.

docker_exec.host_inspect reads, in one process on the host, what container.reconcile reads of a
converged container: the container, the image it runs, the image the spec names, the network.
SnapshotClient answers exactly those calls from that read; any other call (a pull, a create, a
start, logs, a volume, a bind test) raises NotAnswered, which sends the task to the module: only
a container that needs nothing is answered here.
"""

from __future__ import annotations

import copy

from ansible_collections.ragops.gpu_stack.plugins.module_utils import docker_exec
from ansible_collections.ragops.gpu_stack.plugins.module_utils.container import (
    BUILTIN_NETWORKS,
    ContainerError,
    InputError,
    ready,
    reconcile,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_client import NotFound
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils import host_read
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils.host_read import HostError

ANSWER_KEYS = frozenset(('container', 'container_image', 'image', 'networks', 'files', 'euid'))


class NotAnswered(Exception):
    """The reconciler asked for something the snapshot does not hold: the module has work to do."""


def inspect_request(params, spec, files=(), salt=''):
    """What host_inspect is asked for a task's ``params`` and the spec built from them."""
    return {
        'docker_host': params['docker_host'],
        'timeout': params['docker_timeout'],
        'container': spec['name'],
        'image': spec['image'],
        'network': None if spec['network'] in BUILTIN_NETWORKS else spec['network'],
        'files': list(files),
        'salt': salt,
    }


def read_snapshot(run_on_host, request):
    """host_inspect's answer to ``request``, checked for its shape; HostError otherwise."""
    script = host_read.host_script(docker_exec.__file__, 'host_inspect', request)
    answer = host_read.answer_line(*run_on_host(script))
    if set(answer) != ANSWER_KEYS:
        raise HostError('the script on the host printed an answer of another shape')
    for key in ('container', 'container_image', 'image'):
        if answer[key] is not None and not isinstance(answer[key], dict):
            raise HostError('the script on the host printed an answer of another shape')
    if not isinstance(answer['files'], dict) or set(answer['files']) != set(request['files']):
        raise HostError('the script on the host printed an answer of another shape')
    if request['network'] and not isinstance(answer['networks'], list):
        raise HostError('the script on the host printed an answer of another shape')
    return answer


class SnapshotClient:
    """The reads of docker.APIClient that reconcile makes on a converged container, from one snapshot.

    NotFound is docker_client's, which container.py catches; every other call raises NotAnswered.
    """

    def __init__(self, request, answer):
        self.request = request
        self.answer = answer

    def inspect_container(self, name):
        if name != self.request['container']:
            raise NotAnswered('inspect container %s' % name)
        return self._found(self.answer['container'], 'No such container: %s' % name)

    def inspect_image(self, ref):
        running = (self.answer['container'] or {}).get('Image')
        if ref == self.request['image']:
            return self._found(self.answer['image'], 'No such image: %s' % ref)
        if ref and ref == running:
            return self._found(self.answer['container_image'], 'No such image: %s' % ref)
        raise NotAnswered('inspect image %s' % ref)

    def networks(self, names=None):
        if not self.request['network'] or names != [self.request['network']]:
            raise NotAnswered('list networks %s' % names)
        return copy.deepcopy(self.answer['networks'])

    @staticmethod
    def _found(info, missing):
        if info is None:
            raise NotFound(missing)
        return copy.deepcopy(info)

    def __getattr__(self, name):
        # Anything but the reads above would change the host or wait on it: the module's to do.
        def not_answered(*args, **kwargs):
            raise NotAnswered(name)
        return not_answered


def no_bind_test(host_ip, port, protocol):
    """reconcile's bind test: asked only when the container would be started, which the module must do."""
    raise NotAnswered('test whether %s:%s/%s is free' % (host_ip, port, protocol))


def passes_post_check(info, state):
    """Whether the module would return at once after reconciling: for started, what wait_healthy accepts at once."""
    return state != 'started' or ready(info)


def converged_container(client, spec, params, diff_mode, prepare=None):
    """``(result, None)`` with the module's result part (diff only in diff mode) when nothing is to be done,
    else ``(None, why)``."""
    state = params['state']
    if state != 'absent' and params['pull'] == 'always':
        return None, 'pull: always asks the registry on every run'
    try:
        # check_mode=True: nothing here can write; the client could not anyway.
        result = reconcile(client, spec, state=state, check_mode=True, pull_policy=params['pull'],
                           wait_healthy_timeout=params['wait_healthy_timeout'], purge=params['purge'],
                           bind_test=no_bind_test, prepare=prepare)
    except NotAnswered as exc:
        return None, 'the module has to %s' % exc
    except (InputError, ContainerError) as exc:
        return None, 'the module reports: %s' % exc
    if result['changed']:
        return None, '; '.join(result['actions'])
    if not passes_post_check(client.answer['container'], state):
        return None, 'the container is not healthy yet; the module waits for it'
    diff = result.pop('diff')
    if diff_mode:
        result['diff'] = diff
    return result, None
