# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The plan on its own; the module's tests (tests/unit/plugins/modules) cover it through the module."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ragops.gpu_stack.plugins.module_utils import daemon_json_plan as plan

NVIDIA = {'path': 'nvidia-container-runtime', 'args': []}


def params(**given):
    """Task options as AnsibleModule hands them over: every option present, defaults filled in."""
    result = ArgumentSpecValidator(plan.argument_spec(), required_if=plan.REQUIRED_IF).validate(given)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def test_importable_on_the_controller_without_ansible_module():
    # The action plugin imports this module on the controller, where AnsibleModule has no business.
    code = ('import sys\n'
            'import ansible_collections.ragops.gpu_stack.plugins.module_utils.daemon_json_plan\n'
            'print(sorted(m for m in sys.modules if m.startswith("ansible.module_utils.basic")))\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == '[]'


def test_required_if_refuses_state_absent_without_remove():
    result = ArgumentSpecValidator(plan.argument_spec(), required_if=plan.REQUIRED_IF).validate({'state': 'absent'})
    assert 'remove' in result.errors.msg


def test_compute_merges_and_leaves_its_inputs_alone():
    current = {'log-driver': 'journald', 'runtimes': {'crun': {'path': 'crun'}}}
    given = params(nvidia_runtime=True, default_runtime='nvidia', log_opts={'max-file': 3})
    before = copy.deepcopy((current, given))
    result, problem = plan.compute(current, given)
    assert result == {'log-driver': 'journald', 'runtimes': {'crun': {'path': 'crun'}, 'nvidia': NVIDIA},
                      'default-runtime': 'nvidia', 'log-opts': {'max-file': '3'}}
    assert problem is None
    assert (current, given) == before


def test_compute_of_its_own_result_changes_nothing():
    given = params(nvidia_runtime=True, cdi=True, remove=['runtimes.old'], defaults={'log-driver': 'local'})
    first = plan.compute({'runtimes': {'old': {'path': 'x'}}}, given)[0]
    second, problem = plan.compute(first, given)
    assert second == first and problem is None


def test_compute_reports_a_default_runtime_fault_it_did_not_make():
    result, problem = plan.compute({'default-runtime': 'nvidia'}, params(live_restore=True))
    assert result == {'default-runtime': 'nvidia', 'live-restore': True}
    assert 'default-runtime is' in problem


@pytest.mark.parametrize('given, words', [
    ({'default_runtime': 'nvidia'}, ['default_runtime', 'nvidia_runtime: true']),
    ({'registry_mirrors': ['mirror.example']}, ['registry_mirrors']),
    ({'state': 'absent', 'remove': ['a'], 'cdi': True}, ['state=absent', 'cdi']),
])
def test_compute_raises_input_error_naming_the_option(given, words):
    with pytest.raises(plan.InputError) as err:
        plan.compute({}, params(**given))
    for word in words:
        assert word in str(err.value)
