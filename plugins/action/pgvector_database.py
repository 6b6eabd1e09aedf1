# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""pgvector_database, answered on the controller when the server already holds what the task asks for.

A module call costs an AnsiballZ build, a round trip and Python importing Ansible's module_utils
on the host; on a converged host the task needs one read. This plugin validates the task's
arguments with the module's argument spec, reads the server's state with the module's own
read script in one read-only psql session (module_utils/docker_exec.py sent as a script to the
host's Python, which runs psql in the container), and plans with the module's own code
(module_utils/pg.py). It answers by itself only when the plan has no action and no warning,
with the result the module would give. Everything else (a change, a warning, bad input the
module reports, a failed read, async, no known interpreter, no pipelining) runs the module on
the host and returns its result untouched: failures and changes always come from the module.

The password never leaves the controller: the read needs only the role's name, and the role's
stored SCRAM verifier comes back to be checked here, as the module checks it on the host.
"""

from __future__ import annotations

import base64
import binascii

from ansible.utils.display import Display

from ansible_collections.ragops.gpu_stack.plugins.module_utils import docker_exec
from ansible_collections.ragops.gpu_stack.plugins.module_utils.pg import (
    PSQL_ENVIRONMENT,
    READ_ONLY_PREAMBLE,
    PgError,
    SpecError,
    build_spec,
    psql_command,
    psql_output,
    reconcile,
    scrub,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.pg_task import argument_spec, task_result
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils import host_read
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils.host_read import HostError

display = Display()

MODULE_NAME = 'ragops.gpu_stack.pgvector_database'


def host_script(request):
    """docker_exec.py's source with the call ``host_main(<request>)``: what the host's Python reads on stdin."""
    return host_read.host_script(docker_exec.__file__, 'host_main', request)


def host_answer(rc, stdout):
    """``(exit_code, stdout_bytes, stderr_bytes)`` from what host_main printed, or HostError.

    The answer must have exactly host_main's keys: anything else proves nothing about the server.
    The message never quotes the output, which holds the role's verifier.
    """
    answer = host_read.answer_line(rc, stdout)
    if set(answer) != {'exit_code', 'stdout', 'stderr'} \
            or not isinstance(answer['exit_code'], int) or isinstance(answer['exit_code'], bool):
        raise HostError('the script on the host printed an answer of another shape')
    try:
        return (answer['exit_code'], base64.b64decode(answer['stdout'], validate=True),
                base64.b64decode(answer['stderr'], validate=True))
    except (TypeError, ValueError, binascii.Error):
        raise HostError('the script on the host printed output that is not base64') from None


class HostPsql:
    """psql reads in the container, each one docker_exec.host_main run by ``run_on_host`` on the host.

    The same ``query`` as DockerPsql's, with the same argv, environment and read-only preamble;
    there is no ``run``, so nothing this class does can write.
    """

    def __init__(self, run_on_host, container, db_user, docker_host, docker_timeout):
        self.run_on_host = run_on_host
        self.container = container
        self.db_user = db_user
        self.docker_host = docker_host
        self.docker_timeout = docker_timeout

    def query(self, database, sql, variables=None):
        request = {
            'docker_host': self.docker_host,
            'timeout': self.docker_timeout,
            'container': self.container,
            'argv': psql_command(database, self.db_user, variables),
            'stdin': base64.b64encode((READ_ONLY_PREAMBLE + sql).encode('utf-8')).decode('ascii'),
            'environment': dict(PSQL_ENVIRONMENT),
        }
        code, out, err = host_answer(*self.run_on_host(host_script(request)))
        return psql_output(self.container, database, code, out, err)


class ActionModule(host_read.HostReadAction):

    MODULE_NAME = MODULE_NAME

    def _argument_spec(self):
        return dict(argument_spec=argument_spec())

    def _converged_outcome(self, params, run_on_host):
        """The module's result when the server already holds what the task asks for, else None."""
        try:
            spec = build_spec(params)
        except SpecError as exc:
            return self._leave_to_module('the module reports bad input: %s' % exc)

        psql = HostPsql(run_on_host, params['container'], params['db_user'], params['docker_host'], params['docker_timeout'])
        try:
            # check_mode=True: whatever the task's mode, nothing here ever writes.
            reconciled = reconcile(psql, spec, check_mode=True)
        except (SpecError, PgError) as exc:
            return self._leave_to_module(str(exc))
        if reconciled['changed']:
            return self._leave_to_module('%s' % '; '.join(reconciled['actions']))
        outcome, warnings = task_result(reconciled, spec, self._task.diff)
        if warnings:
            return self._leave_to_module('the plan has a warning, which is the module\'s to give')

        display.vvv('database %s in container %s already holds what this task asks for; the module was not run'
                    % (params['database'], params['container']))
        return outcome

    def _scrub(self, reason):
        return scrub(reason)
