# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""doctor_report, on the controller only: the doctor's JSON report of a run, written atomically.

No module runs anywhere: the report is the controller's own file, so the plugin writes it in its
own process (the copy module it replaces ran twice on the controller, a stat and a write, about
1.5 s of a converged site.yml re-run). The write goes through daemon_json.write_atomic, the
collection's one atomic-write helper: a reader sees no report or the whole one.
"""

from __future__ import annotations

import json
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.ragops.gpu_stack.plugins.module_utils.daemon_json import DaemonJsonError, write_atomic

ARGUMENT_SPEC = dict(
    path=dict(type='path', required=True),
    document=dict(type='dict', required=True),
)


class ActionModule(ActionBase):
    """Writes ``document`` as JSON to ``path`` on the controller, whatever the task's host."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        path = os.path.abspath(os.path.expanduser(args['path']))
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            write_atomic(path, json.dumps(args['document'], indent=2, sort_keys=True, default=str) + '\n', mode=0o644)
        except (OSError, DaemonJsonError) as exc:
            raise AnsibleActionFail('doctor_report: cannot write %s (%s): set gpu_stack_verify_report_dir to a directory '
                                    'the controller can write' % (path, exc)) from None
        # The report is output of the run, not a managed host's state: never a change, and written
        # in check mode too (a check run's report is its product).
        result.update(changed=False, path=path)
        return result
