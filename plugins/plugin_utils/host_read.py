# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared half of the "converged fast path" action plugins: read on the host, decide on the controller.

A module call costs an AnsiballZ build, a round trip and Python importing Ansible's module_utils
on the host. An action plugin built on HostReadAction validates the task's arguments with the
module's argument spec, sends a standalone module_utils file (stdlib only, no Ansible import) to
the host's Python on stdin with one more line that calls its entry point, reads the one JSON line
that entry prints, and plans with the module's own code. It answers by itself only when the plan
has nothing to do, with the result the module would give; anything else (a change, a warning,
a failed or garbled read, async, no known interpreter, no pipelining) runs the module on the host
and returns its result untouched.
"""

from __future__ import annotations

import json

from ansible import constants as C
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

display = Display()

AUTO_INTERPRETERS = ('auto', 'auto_legacy', 'auto_silent', 'auto_legacy_silent')


class HostError(Exception):
    """The host's answer cannot be used; the module decides instead."""


def host_script(source_path, entry, request):
    """The source of ``source_path`` with the call ``entry(json.loads(<request>))``: what the host's Python reads on stdin.

    The request travels as a Python literal of its JSON text, so no value in it is ever code.
    """
    with open(source_path, encoding='utf-8') as source:
        text = source.read()
    return '%s\n%s(json.loads(%r))\n' % (text, entry, json.dumps(request, sort_keys=True))


def answer_line(rc, stdout):
    """The JSON object on the last non-empty line the script printed, or HostError.

    Anything else (no Python, a traceback, a banner instead of the answer, the script's own
    ``{"error": ...}``) proves nothing about the host. The message never quotes the output,
    which may hold what must not be shown.
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
    if not isinstance(answer, dict):
        raise HostError('the script on the host printed an answer of another shape')
    return answer


class FastPathAction(ActionBase):
    """Runs the module unless ``_converged_result`` answers for it; what every fast path plugin shares.

    Subclasses set ``MODULE_NAME`` and define ``_argument_spec()`` (keyword arguments for
    validate_argument_spec) and ``_converged_result(params, validation, task_vars)``, which
    returns the module's result or None, calling ``self._leave_to_module(reason)``. One that
    runs the module another way (ollama_model: asynchronously, showing its progress) overrides
    ``_run_module(params, task_vars, wrap_async)``.
    """

    MODULE_NAME = None
    _supports_check_mode = True
    # Async runs the module, as the generic action plugin would: the caller expects a job.
    _supports_async = True

    def _argument_spec(self):
        raise NotImplementedError

    def _converged_result(self, params, validation, task_vars):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused: ActionBase.run warns when it is given
        task_vars = task_vars or {}

        # Bad arguments fail here, naming the option, before anything is asked of the host.
        validation, params = self.validate_argument_spec(**self._argument_spec())

        wrap_async = self._task.async_val and not self._connection.has_native_async
        if not self._task.async_val:
            converged = self._converged_result(params, validation, task_vars)
            if converged is not None:
                return merge_hash(result, converged)

        result = merge_hash(result, self._run_module(params, task_vars, wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _run_module(self, params, task_vars, wrap_async):
        """The module on the host with the task's arguments, its result untouched; a subclass may watch it run."""
        del params  # what a subclass may need to decide how to run it
        return self._execute_module(
            module_name=self.MODULE_NAME, module_args=dict(self._task.args), task_vars=task_vars, wrap_async=wrap_async)

    @staticmethod
    def _as_module_prints(outcome, params, validation):
        """What AnsibleModule adds to every result and does on exit: the arguments it ran with,
        then every no_log value masked wherever it appears, top-level booleans and nulls kept."""
        outcome['invocation'] = dict(module_args=params)
        kept = {key: value for key, value in outcome.items() if value is None or isinstance(value, bool)}
        outcome = remove_values(outcome, validation._no_log_values)
        outcome.update(kept)
        return outcome

    def _scrub(self, reason):
        """The reason as -vvv may show it; a subclass whose reasons can quote secrets masks them here."""
        return reason

    def _leave_to_module(self, reason):
        """No answer from the controller: the module runs on the host, and -vvv says why."""
        display.vvv('%s runs on the host: %s' % (self.MODULE_NAME, self._scrub(reason)))
        return None


class HostReadAction(FastPathAction):
    """A fast path whose read is a standalone module_utils script run by the host's Python.

    Subclasses set ``MODULE_NAME`` and define ``_argument_spec()`` and
    ``_converged_outcome(params, run_on_host)``, which returns the module's result (without
    ``invocation``) or None, calling ``self._leave_to_module(reason)``. ``run_on_host(script)``
    runs a script on the host's Python and returns ``(rc, stdout)``.
    """

    def _converged_outcome(self, params, run_on_host):
        raise NotImplementedError

    def _converged_result(self, params, validation, task_vars):
        """The module's result, as AnsibleModule would print it, when nothing is to be done; else None."""
        if validation._warnings or validation._deprecations:
            return self._leave_to_module('validating the arguments gave a warning, which is the module\'s to give')
        # The script goes to the host's Python on stdin, as a pipelined module would: where the
        # connection or become cannot pipeline (paramiko, sudo with requiretty), neither can this.
        if not self._connection.is_pipelining_enabled():
            return self._leave_to_module('pipelining is not enabled for this connection')
        interpreter = self._python_interpreter(task_vars)
        if not interpreter:
            return self._leave_to_module('no Python interpreter is known for the host yet')

        def run_on_host(script):
            command = ' '.join(part for part in (self._compute_environment_string(), interpreter, '-') if part)
            answer = self._low_level_execute_command(command, sudoable=True, in_data=script.encode('utf-8'))
            return answer['rc'], answer['stdout']

        try:
            outcome = self._converged_outcome(params, run_on_host)
        except HostError as exc:
            return self._leave_to_module(str(exc))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # An error nobody foresaw proves nothing about the host either way: the module decides there.
            return self._leave_to_module('reading on the controller failed: %s' % type(exc).__name__)
        if outcome is None:
            return None
        return self._as_module_prints(outcome, params, validation)

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
