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
import json

from ansible import constants as C
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

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

display = Display()

MODULE_NAME = 'ragops.gpu_stack.pgvector_database'
AUTO_INTERPRETERS = ('auto', 'auto_legacy', 'auto_silent', 'auto_legacy_silent')


class HostError(Exception):
    """The host's answer cannot be used; the module decides instead."""


def host_script(request):
    """docker_exec.py's source with the call that runs ``request``: what the host's Python reads on stdin.

    The request travels as a Python literal of its JSON text, so no value in it is ever code.
    """
    with open(docker_exec.__file__, encoding='utf-8') as source:
        text = source.read()
    return '%s\nhost_main(json.loads(%r))\n' % (text, json.dumps(request, sort_keys=True))


def host_answer(rc, stdout):
    """``(exit_code, stdout_bytes, stderr_bytes)`` from what host_main printed, or HostError.

    The last non-empty line must be host_main's JSON line, with exactly its keys: anything else
    (no Python, a traceback, a banner instead of the answer) proves nothing about the server.
    The message never quotes the output, which holds the role's verifier.
    """
    if rc != 0:
        raise HostError('the script on the host exited with %s' % rc)
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise HostError('the script on the host printed no JSON answer') from None
    if isinstance(answer, dict) and set(answer) == {'error'}:
        raise HostError('on the host: %s' % answer['error'])
    if not isinstance(answer, dict) or set(answer) != {'exit_code', 'stdout', 'stderr'} \
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


class ActionModule(ActionBase):

    _supports_check_mode = True
    # Async runs the module, as the generic action plugin would: the caller expects a job.
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused: ActionBase.run warns when it is given
        task_vars = task_vars or {}

        # Bad arguments fail here, naming the option, before anything is asked of the host.
        validation, params = self.validate_argument_spec(argument_spec=argument_spec())

        wrap_async = self._task.async_val and not self._connection.has_native_async
        if not self._task.async_val:
            converged = self._converged_result(params, validation, task_vars)
            if converged is not None:
                return merge_hash(result, converged)

        result = merge_hash(result, self._execute_module(
            module_name=MODULE_NAME, module_args=dict(self._task.args), task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _converged_result(self, params, validation, task_vars):
        """The module's result when the server already holds what the task asks for, else None."""
        if validation._warnings or validation._deprecations:
            return self._leave_to_module('validating the arguments gave a warning, which is the module\'s to give')
        # The script goes to the host's Python on stdin, as a pipelined module would: where the
        # connection or become cannot pipeline (paramiko, sudo with requiretty), neither can this.
        if not self._connection.is_pipelining_enabled():
            return self._leave_to_module('pipelining is not enabled for this connection')
        interpreter = self._python_interpreter(task_vars)
        if not interpreter:
            return self._leave_to_module('no Python interpreter is known for the host yet')
        try:
            spec = build_spec(params)
        except SpecError as exc:
            return self._leave_to_module('the module reports bad input: %s' % exc)

        def run_on_host(script):
            command = ' '.join(part for part in (self._compute_environment_string(), interpreter, '-') if part)
            answer = self._low_level_execute_command(command, sudoable=True, in_data=script.encode('utf-8'))
            return answer['rc'], answer['stdout']

        psql = HostPsql(run_on_host, params['container'], params['db_user'], params['docker_host'], params['docker_timeout'])
        try:
            # check_mode=True: whatever the task's mode, nothing here ever writes.
            reconciled = reconcile(psql, spec, check_mode=True)
        except (SpecError, PgError, HostError) as exc:
            return self._leave_to_module(str(exc))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # An error nobody foresaw proves nothing about the server either way: the module decides there.
            return self._leave_to_module('reading on the controller failed: %s' % type(exc).__name__)
        if reconciled['changed']:
            return self._leave_to_module('%s' % '; '.join(reconciled['actions']))
        outcome, warnings = task_result(reconciled, spec, self._task.diff)
        if warnings:
            return self._leave_to_module('the plan has a warning, which is the module\'s to give')

        display.vvv('database %s in container %s already holds what this task asks for; the module was not run'
                    % (params['database'], params['container']))
        # What AnsibleModule adds to every result and does on exit: the arguments it ran with,
        # then every no_log value masked wherever it appears, top-level booleans and nulls kept.
        outcome['invocation'] = dict(module_args=params)
        kept = {key: value for key, value in outcome.items() if value is None or isinstance(value, bool)}
        outcome = remove_values(outcome, validation._no_log_values)
        outcome.update(kept)
        return outcome

    def _python_interpreter(self, task_vars):
        """The host's Python as a module would use it: ansible_python_interpreter or interpreter_python,
        the discovered one for auto, None when neither is known (the module discovers it)."""
        host_vars = task_vars
        if self._task.delegate_to:
            host_vars = (task_vars.get('ansible_delegated_vars') or {}).get(self._task.delegate_to) or {}
        if getattr(self._connection, '_remote_is_local', False):
            return None  # network connections run modules on the controller: not this plugin's case
        try:
            configured = C.config.get_config_value('INTERPRETER_PYTHON', variables=host_vars)
            if self._templar is not None:
                configured = self._templar.template(configured)
        except Exception:  # pylint: disable=broad-exception-caught
            return None
        if not isinstance(configured, str) or '{{' in configured or '{%' in configured:
            return None
        configured = configured.strip()
        if configured and configured not in AUTO_INTERPRETERS:
            return configured
        discovered = (host_vars.get('ansible_facts') or {}).get('discovered_interpreter_python')
        return discovered if isinstance(discovered, str) and discovered else None

    @staticmethod
    def _leave_to_module(reason):
        """No answer from the controller: the module runs on the host, and -vvv says why."""
        display.vvv('%s runs on the host: %s' % (MODULE_NAME, scrub(reason)))
        return None
