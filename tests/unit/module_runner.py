# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs a module's main() in-process, the way Ansible would call it, and hands back its result;
and free_port(), for the container modules' tests that publish a port."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import socket
from unittest import mock

from ansible.module_utils import _internal as module_internal
from ansible.module_utils import basic
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args


class _Exited(Exception):
    """exit_json or fail_json was called; args[0] is the result."""


def _exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise _Exited(kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs.update(msg=msg, failed=True)
    raise _Exited(kwargs)


def run_module(module, args, check_mode=False, diff=False):
    """Return (result, warnings) of module.main() with args; a failure has ``failed: True``."""
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    warnings = []
    with patch_module_args(args), \
            mock.patch.multiple(basic.AnsibleModule, exit_json=_exit_json, fail_json=_fail_json), \
            mock.patch.object(basic.AnsibleModule, 'warn', lambda self, msg: warnings.append(msg)):
        try:
            module.main()
        except _Exited as exc:
            return exc.args[0], warnings
    raise AssertionError('the module returned without exit_json or fail_json')


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def printed_result(module, args, check_mode=False, diff=False, patches=()):
    """What ``module.main()`` prints for ``args``, parsed: its real exit_json, so ``invocation`` with
    no_log values masked and ``warnings`` are as Ansible receives them. ``patches``: context
    managers (mock.patch.object, say) active while it runs."""
    stdout = io.StringIO()
    module_args = dict(copy.deepcopy(args), _ansible_check_mode=check_mode, _ansible_diff=diff)
    with contextlib.ExitStack() as stack:
        stack.enter_context(patch_module_args(module_args))
        for patch in patches:
            stack.enter_context(patch)
        # is_controller off: warn() records a warning for the result, as in a module process, not on this display.
        stack.enter_context(mock.patch.object(module_internal, 'is_controller', False))
        stack.enter_context(mock.patch.dict(module_warnings._global_warnings, clear=True))
        stack.enter_context(mock.patch.dict(module_warnings._global_deprecations, clear=True))
        stack.enter_context(contextlib.redirect_stdout(stdout))
        try:
            module.main()
        except SystemExit:
            pass
        else:
            raise AssertionError('the module returned without exit_json or fail_json')
    return json.loads(stdout.getvalue().strip().splitlines()[-1])
