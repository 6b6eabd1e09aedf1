# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pgvector_container, answered on the controller when the container and its password file already are what the task asks for.

As ollama_container's plugin: the task's arguments are validated with the module's argument
spec, the spec is built with the module's pgvector_spec, one process on the host
(module_utils/docker_exec.py's host_inspect) reads the container, its image, the spec's image,
the network and the password file, and the module's own reconciler runs against that read in
check mode.

The password file is the module's ``prepare`` step (password_file_actions). The host reads the
file's mode, owner, group and the SHA-256 of a fresh random salt + its text as the module
compares it (trailing newlines stripped); the controller computes the same salted SHA-256 of the
password, so the password itself never leaves the controller and the file's text never leaves
the host. The plugin answers by itself only when that step would take no action and the
reconciler has nothing to do; everything else (a file to write, tighten or give to root, a file
missing, a change, a container not healthy yet, pull: always, bad input, a failed read, async,
no known interpreter, no pipelining) runs the module on the host and returns its result untouched.
"""

from __future__ import annotations

import hmac
import secrets

from ansible.utils.display import Display

from ansible_collections.ragops.gpu_stack.plugins.module_utils.container import InputError, pgvector_task
from ansible_collections.ragops.gpu_stack.plugins.module_utils.container_task import pgvector_argument_spec
from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_exec import salted_digest
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils import host_read
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils.container_snapshot import (
    SnapshotClient,
    converged_container,
    inspect_request,
    read_snapshot,
)
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils.host_read import HostError

display = Display()

MODULE_NAME = 'ragops.gpu_stack.pgvector_container'


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def password_file_plan(path, facts, password, salt, euid):
    """The actions password_file_actions would take on the host, from host_inspect's ``facts`` of ``path``.

    ``facts`` is None for a file that is not there (the module writes it, or fails without a
    password; the caller leaves both to it). Facts of another shape raise HostError.
    """
    if not isinstance(facts, dict) or not all(_is_int(facts.get(key)) for key in ('mode', 'uid', 'gid')) \
            or not _is_int(euid):
        raise HostError('the script on the host printed password file facts of another shape')
    actions = []
    if password is not None:
        digest = facts.get('digest')
        # A file that is not UTF-8 (digest null) makes the module stop on it: its to report.
        if not isinstance(digest, str) or not hmac.compare_digest(digest, salted_digest(salt, password)):
            actions.append('write password file %s' % path)
    if facts['mode'] & 0o077:
        actions.append('password file %s mode 0600' % path)
    if euid == 0 and (facts['uid'] != 0 or facts['gid'] != 0):
        actions.append('password file %s owner root' % path)
    return actions


class ActionModule(host_read.HostReadAction):

    MODULE_NAME = MODULE_NAME

    _password = None

    def _argument_spec(self):
        return dict(argument_spec=pgvector_argument_spec())

    def _converged_outcome(self, params, run_on_host):
        """The module's result when the container and the password file need nothing, else None."""
        self._password = params['password']
        raw_path = self._task.args.get('password_file')
        # type: path expands ~ and $VARS where it is validated: here on the controller, there on the host.
        if isinstance(raw_path, str) and ('~' in raw_path or '$' in raw_path):
            return self._leave_to_module('password_file has ~ or $: the module expands it on the host')
        # Where the module's main() starts too.
        try:
            params, spec = pgvector_task(params)
        except InputError as exc:
            return self._leave_to_module('the module reports bad input: %s' % exc)
        state = params['state']
        password = params['password']

        path = params['password_file']
        files = [path] if state != 'absent' else []
        # A fresh salt for each read: the host's answer says nothing that could be looked up elsewhere.
        salt = secrets.token_hex(16)
        request = inspect_request(params, spec, files=files, salt=salt)
        answer = read_snapshot(run_on_host, request)

        prepare = None
        if state != 'absent':
            facts = answer['files'][path]
            if facts is None:
                return self._leave_to_module('password file %s is not there: the module writes it or says why not' % path)
            actions = password_file_plan(path, facts, password, salt, answer['euid'])
            if actions:
                return self._leave_to_module('; '.join(actions))

            def prepare():
                return []

        client = SnapshotClient(request, answer)
        result, why = converged_container(client, spec, params, self._task.diff, prepare=prepare)
        if result is None:
            return self._leave_to_module(why)

        display.vvv('container %s and its password file already are what this task asks for; the module was not run'
                    % spec['name'])
        outcome = dict(password_file=path)
        outcome.update(result)
        outcome['changed'] = False
        return outcome

    def _scrub(self, reason):
        # A reason may quote a message built from the task's options; the password is none of its business.
        if self._password:
            reason = reason.replace(self._password, '********')
        return reason
