# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gpu_facts module end to end: arguments in, ansible_facts.ragops_gpu out.

Tools are real executables generated into tmp_path/bin at test time (never committed):
shell scripts that replay tests/unit/fixtures/gpu/tools/<case>/ and log their calls
(test_gpu.write_fake_tools).
"""

from __future__ import annotations

import os
import shutil

import pytest

from ansible.modules import setup

from ansible_collections.ragops.gpu_stack.plugins.modules import gpu_facts
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import run_module as run_module_main
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_gpu import write_fake_tools

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'gpu'))


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """make(case, *tools, sleep=0) puts replaying executables on a PATH of their own; returns the call log."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = tmp_path / 'calls.log'
    log.write_text('', encoding='utf-8')
    monkeypatch.setenv('PATH', str(bin_dir))

    def make(case, *names, **kwargs):
        write_fake_tools(tmp_path, case, names, log=log, sleep=kwargs.get('sleep'))
        if kwargs.get('with_timeout'):
            os.symlink(shutil.which('timeout', path='/usr/bin:/bin'), str(bin_dir / 'timeout'))
        return log
    return make


def run_module(args):
    return run_module_main(gpu_facts, args, check_mode=args.pop('_ansible_check_mode', False))


def test_pascal_host_warns_and_sets_the_fact(tools):
    tools('nvidia_pascal_535', 'nvidia-smi', 'docker')
    result, warnings = run_module({'root': os.path.join(FIXTURES, 'nvidia_pascal_535')})
    assert result['changed'] is False and 'failed' not in result
    facts = result['ansible_facts']['ragops_gpu']
    assert facts['gpu_vendor'] == 'nvidia' and facts['nvidia']['gpus'][0]['name'] == 'NVIDIA GeForce GTX 1080'
    assert warnings == [w['message'] for w in facts['gpu_warnings']]
    assert len(warnings) == 2 and 'older than 550' in warnings[0] and '570' in warnings[1]
    assert facts['container']['docker']['client_version'] == '24.0.7'


def test_pascal_host_with_the_toolkit_predicts_the_cpu_fallback(tools):
    tools('nvidia_pascal_535_toolkit', 'nvidia-smi', 'docker', 'nvidia-ctk')
    result, warnings = run_module({'root': os.path.join(FIXTURES, 'nvidia_pascal_535_toolkit')})
    facts = result['ansible_facts']['ragops_gpu']
    outlook = facts['ollama_outlook']
    assert (outlook['vendor'], outlook['inference']) == ('nvidia', 'cpu') and facts['gpu_unusable_reason'] is None
    assert outlook['causes'] == ['nvidia_driver_too_old_for_compute_capability', 'nvidia_driver_too_old']
    assert 'install NVIDIA driver 570 or newer' in outlook['cpu_fallback_reason']
    assert warnings == [w['message'] for w in facts['gpu_warnings']]  # the floors warn once, as before


def test_jetson_like_host_through_path_is_nvidia_not_cpu(tools):
    tools('docker_only', 'docker')
    result, warnings = run_module({'root': os.path.join(FIXTURES, 'nvidia_jetson_orin')})
    facts = result['ansible_facts']['ragops_gpu']
    assert (facts['gpu_vendor'], facts['gpu_usable'], facts['gpu_count']) == ('nvidia', False, 1)
    assert 'nvidia-smi is missing' in facts['gpu_unusable_reason']
    assert facts['ollama_outlook']['causes'] == ['gpu_not_usable'] and warnings == []


def test_check_mode_gives_the_same_answer(tools):
    log = tools('nvidia_multi_mig', 'nvidia-smi', 'docker', 'nvidia-ctk')
    root = os.path.join(FIXTURES, 'nvidia_multi_mig')
    normal, dummy = run_module({'root': root})
    checked, dummy = run_module({'root': root, '_ansible_check_mode': True})
    assert normal == checked and checked['changed'] is False
    facts = checked['ansible_facts']['ragops_gpu']
    assert [g['mig_mode'] for g in facts['nvidia']['gpus']] == ['enabled', None]
    assert facts['container']['nvidia_ctk']['version'] == '1.17.8'
    assert ' -L' in log.read_text(encoding='utf-8')


def test_amd_host_without_any_tool(tools):
    tools('docker_only')
    result, warnings = run_module({'root': os.path.join(FIXTURES, 'amd_rdna2')})
    facts = result['ansible_facts']['ragops_gpu']
    assert facts['gpu_vendor'] == 'amd' and facts['amd']['hsa_override_env'] == {'HSA_OVERRIDE_GFX_VERSION': '10.3.0'}
    assert facts['container']['docker']['path'] is None and warnings == []


def test_nvidia_smi_failing_through_path(tools):
    tools('nvidia_smi_rc9', 'nvidia-smi')
    result, dummy = run_module({'root': os.path.join(FIXTURES, 'nvidia_unloaded')})
    nvidia = result['ansible_facts']['ragops_gpu']['nvidia']
    assert (nvidia['nvidia_smi_rc'], nvidia['nvidia_smi_error']) == (9, 'driver_unreachable')


def test_run_tools_false_runs_nothing(tools):
    log = tools('nvidia_single', 'nvidia-smi', 'docker', 'nvidia-ctk')
    result, dummy = run_module({'root': os.path.join(FIXTURES, 'nvidia_single'), 'run_tools': False})
    assert log.read_text(encoding='utf-8') == ''
    facts = result['ansible_facts']['ragops_gpu']
    assert (facts['gpu_vendor'], facts['gpu_usable'], facts['nvidia']['driver_version']) == ('nvidia', False, '550.54.14')


def test_timeout_bounds_a_hung_nvidia_smi(tools):
    log = tools('nvidia_single', 'nvidia-smi', sleep=30, with_timeout=True)
    result, dummy = run_module({'root': os.path.join(FIXTURES, 'nvidia_single'), 'timeout': 1})
    nvidia = result['ansible_facts']['ragops_gpu']['nvidia']
    assert nvidia['nvidia_smi_error'] == 'timeout' and nvidia['gpus'] == []
    assert '--query-gpu=' in log.read_text(encoding='utf-8')


@pytest.mark.parametrize('args, message', [
    ({'root': '/nonexistent/gpu/root'}, 'is not a directory'),
    ({'timeout': 0}, 'timeout must be at least 1'),
    ({'timeout': 'soon'}, 'timeout'),
    ({'bogus': 1}, 'bogus'),
    ({'host_facts': ['hardware']}, 'host_facts'),
])
def test_bad_arguments_fail(tools, args, message):
    tools('docker_only')
    result, dummy = run_module(args)
    assert result.get('failed') is True and message in result['msg']


HOST_SUBSETS = ['distribution', 'platform', 'virtual', 'service_mgr']


def test_host_facts_are_what_setup_returns_for_the_same_subsets(tools):
    """preflight replaces its setup call with this: the Docker layer's per-OS choices must not change."""
    tools('docker_only')
    ours, dummy = run_module({'host_facts': list(HOST_SUBSETS), 'run_tools': False})
    theirs, dummy = run_module_main(setup, {'gather_subset': ['!all', '!min'] + HOST_SUBSETS})
    theirs = dict(theirs['ansible_facts'])
    # setup's markers say "facts were gathered"; a partial read must not claim that.
    assert theirs.pop('gather_subset') and theirs.pop('module_setup') is True
    assert 'gather_subset' not in ours['ansible_facts'] and 'module_setup' not in ours['ansible_facts']
    ragops_gpu = ours['ansible_facts'].pop('ragops_gpu')
    assert ragops_gpu['host']['cpus'] >= 1
    assert ours['ansible_facts'] == theirs
    assert ours['ansible_facts']['ansible_os_family'] and ours['ansible_facts']['ansible_architecture']


def test_host_facts_gather_only_the_subsets_asked(tools):
    tools('docker_only')
    result, dummy = run_module({'host_facts': ['distribution'], 'run_tools': False})
    facts = result['ansible_facts']
    assert facts['ansible_distribution'] and facts['ansible_os_family']
    assert 'ansible_virtualization_type' not in facts and 'ansible_service_mgr' not in facts
    assert 'ansible_kernel' not in facts


def test_no_host_facts_by_default(tools):
    tools('docker_only')
    result, dummy = run_module({'run_tools': False})
    assert list(result['ansible_facts']) == ['ragops_gpu']
