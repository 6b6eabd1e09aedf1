# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""docker_daemon_config, answered on the controller when the host's daemon.json already holds the task's settings.

A module call costs a round trip and an AnsiballZ payload; on a converged host the task needs
neither. This plugin validates the task's arguments with the module's argument spec, reads the
file with one shell command and plans with the module's own functions (module_utils
daemon_json and daemon_json_plan). It answers by itself only when it is certain that nothing
changes, with the result the module would give. Everything else (no file, a file that does not
read, decode or parse, bad input, a warning, a change, async) runs the module on the host and
returns its result untouched: failures and changes always come from the host.
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex

from ansible.utils.display import Display

from ansible_collections.ragops.gpu_stack.plugins.module_utils.daemon_json import (
    DaemonJsonError,
    decode_text,
    effective_equal,
    file_diff,
    parse,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.daemon_json_plan import (
    argument_spec,
    compute,
    InputError,
    REQUIRED_IF,
)
from ansible_collections.ragops.gpu_stack.plugins.plugin_utils import host_read

display = Display()

MODULE_NAME = 'ragops.gpu_stack.docker_daemon_config'

# The lines that frame the host's answer. base64 output never holds a space, so none of them can
# be part of the file's content.
ABSENT_LINE = 'ragops daemon.json absent'
BEGIN_LINE = 'ragops daemon.json begin'
END_LINE = 'ragops daemon.json end'


def read_command(path):
    """One shell command that prints ABSENT_LINE, or the file's bytes in base64 between BEGIN_LINE and END_LINE.

    base64 rather than cat: the bytes arrive as they are, whatever a pty does to line ends or
    the transport's text decoding does to bytes that are not UTF-8, so decode_text judges them
    as the module would. A file that exists but cannot be read leaves END_LINE out and exits
    non-zero; so does a host without base64.
    """
    quoted = shlex.quote(path)
    return 'if [ -e {path} ]; then echo {begin} && base64 < {path} && echo {end}; else echo {absent}; fi'.format(
        path=quoted, begin=shlex.quote(BEGIN_LINE), end=shlex.quote(END_LINE), absent=shlex.quote(ABSENT_LINE))


def read_outcome(rc, stdout):
    """``('ok', bytes)``, ``('absent', None)`` or ``('error', why)`` from what read_command printed."""
    lines = [line.strip() for line in stdout.splitlines()]
    if rc != 0:
        return 'error', 'reading it exited with %d' % rc
    if lines == [ABSENT_LINE]:
        return 'absent', None
    if lines.count(BEGIN_LINE) != 1 or lines.count(END_LINE) != 1:
        return 'error', 'the answer to reading it was not framed as expected'
    begin, end = lines.index(BEGIN_LINE), lines.index(END_LINE)
    if begin > end:
        return 'error', 'the answer to reading it was not framed as expected'
    try:
        return 'ok', base64.b64decode(''.join(lines[begin + 1:end]), validate=True)
    except (binascii.Error, ValueError):
        return 'error', 'the answer to reading it was not base64'


def _expands_on_host(value):
    """Whether a ``path`` option's value means something only the host knows.

    AnsibleModule expands ``~`` and ``$VARIABLES`` in such options; validated here, they would be
    expanded with the controller's home and environment instead.
    """
    return not isinstance(value, str) or value.startswith('~') or '$' in value


def _string_keys_only(value):
    """Whether every key of every mapping in ``value`` is a string.

    The module gets its arguments as JSON, where a YAML key such as ``on`` (True) becomes
    ``"true"``; the plan here would turn it into ``"True"``, and the two would disagree.
    """
    if isinstance(value, dict):
        return all(isinstance(key, str) and _string_keys_only(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_string_keys_only(item) for item in value)
    return True


class ActionModule(host_read.FastPathAction):

    MODULE_NAME = MODULE_NAME

    def _argument_spec(self):
        return dict(argument_spec=argument_spec(), required_if=REQUIRED_IF)

    def _converged_result(self, params, validation, task_vars):
        """The module's result when the host's file already holds what the task asks for, else None."""
        path = params['path']
        host_dependent = [name for name, spec in argument_spec().items()
                          if spec.get('type') == 'path' and self._task.args.get(name) is not None
                          and _expands_on_host(self._task.args[name])]
        if host_dependent:
            return self._leave_to_module('%s expands on the host' % ', '.join(host_dependent))
        if not _string_keys_only(self._task.args):
            return self._leave_to_module('a key that is not a string reaches the module changed by JSON')
        if not os.path.isabs(path):
            return self._leave_to_module('path %s is relative to the module\'s working directory on the host' % path)

        answer = self._low_level_execute_command(read_command(path), sudoable=True)
        status, payload = read_outcome(answer['rc'], answer['stdout'])
        if status != 'ok':
            return self._leave_to_module('%s: %s' % (path, 'absent' if status == 'absent' else payload))

        try:
            text = decode_text(payload, path)
            current = parse(text, path)
            config, problem = compute(current, params)
        except (DaemonJsonError, InputError) as exc:
            return self._leave_to_module(str(exc))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # An error nobody foresaw proves nothing about the host either way: the module decides there.
            return self._leave_to_module('planning on the controller failed: %r' % exc)
        if problem:
            # The warning is the module's to give.
            return self._leave_to_module(problem)
        if not effective_equal(current, config):
            return self._leave_to_module('%s changes' % path)

        display.vvv('%s already holds the settings of this task; the module was not run' % path)
        outcome = dict(changed=False, restart_required=False, config=config, validated=None)
        if self._task.diff:
            outcome['diff'] = file_diff(path, text, text)
        return self._as_module_prints(outcome, params, validation)
