# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml's layers and tags, as ansible-playbook itself sees them (``--list-tasks``, ``--syntax-check``),
and preflight's mirror check run for real on this machine (local connection) against a local HTTP
server and a closed port, before any layer would change anything.

`--tags <layer>` must run that layer's own tasks and no other layer's, while preflight's GPU facts
(and the GPU runtime's choice, two controller-side tasks) run whatever the tags: the later layers
read them. The mirror check runs with the layers that fetch from mirrors, the model cache check
with the models layer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port
# /key: a file; /v2/: a registry that wants a login (401); anything else 404.
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_mirror import server  # noqa: F401 pylint: disable=unused-import

REPO = Path(__file__).resolve().parents[2]
BIN = os.path.dirname(sys.executable)
# The summary comes before the doctor, so a host the doctor fails still says what was provisioned, and
# the run ends with the doctor's report.
LAYERS = ['Preflight', 'Docker engine', 'GPU container runtime', 'Services', 'Models', 'Summary', 'Verify']
FIXTURES = REPO / 'tests' / 'unit' / 'fixtures' / 'gpu'


def ansible_playbook(*args, cwd=REPO):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_COLLECTIONS_PATH='%s:%s' % (REPO / '.cache' / 'collections', REPO / '.cache' / 'vendor'))
    return subprocess.run([os.path.join(BIN, 'ansible-playbook')] + list(args), env=env, cwd=str(cwd),
                          capture_output=True, text=True, check=False)


def listed(*args):
    """{play name prefix: [(task, tags)]} of `ansible-playbook site.yml --list-tasks` with args."""
    result = ansible_playbook('site.yml', '-i', 'inventories/gpu', '--list-tasks', *args)
    assert result.returncode == 0, result.stderr[-2000:]
    plays, current = {}, None
    for line in result.stdout.splitlines():
        play = re.match(r'\s+play #\d+ \(all\): (.+?)\tTAGS: \[(.*)\]', line)
        task = re.match(r'\s{6}(.+?)\tTAGS: \[(.*)\]', line)
        if play:
            current = next((layer for layer in LAYERS if play.group(1).startswith(layer)), play.group(1))
            plays[current] = []
        elif task:
            plays[current].append((task.group(1), set(filter(None, task.group(2).split(', ')))))
    return plays


def own(plays):
    """The plays that run tasks of their own (not tagged always) for these tags, and those tasks."""
    return {play: [name for name, tags in tasks if 'always' not in tags] for play, tasks in plays.items()
            if any('always' not in tags for name, tags in tasks)}


def test_the_layers_run_in_order_each_tagged_with_its_layer():
    plays = listed()
    assert list(plays) == LAYERS
    tag_of = {'Preflight': 'preflight', 'Docker engine': 'docker', 'GPU container runtime': 'gpu', 'Services': 'services',
              'Models': 'models', 'Verify': 'verify', 'Summary': 'always'}
    for play, tasks in plays.items():
        assert tasks and all(tag_of[play] in tags for name, tags in tasks), play


@pytest.mark.parametrize('tag, layers', [
    ('preflight', {'Preflight'}),
    ('docker', {'Preflight', 'Docker engine'}),
    ('gpu', {'Preflight', 'GPU container runtime'}),
    ('services', {'Preflight', 'Services'}),
    ('models', {'Preflight', 'Models'}),
    ('verify', {'Verify'}),
])
def test_one_tag_runs_one_layer_and_the_facts_the_later_layers_need(tag, layers):
    plays = listed('--tags', tag)
    selected = own(plays)
    assert set(selected) == layers
    if tag != 'preflight' and 'Preflight' in selected:
        # only the check of what this layer fetches from: the mirrors, or the model cache
        assert selected['Preflight'] == (['Check that the controller holds the model cache the inventory names'] if tag == 'models'
                                         else ['Check that this host reaches the mirrors the inventory names'])
    always = {play: [name for name, tags in tasks if 'always' in tags] for play, tasks in plays.items()}
    assert always['Preflight'] == ["Read the host's GPUs and the few facts the report and the Docker layer need"]
    assert always['GPU container runtime'] == ['Refuse an unknown GPU vendor', 'Choose the runtime']
    assert always['Summary'] == ['Say what was provisioned']


def test_verify_is_imported_last():
    text = (REPO / 'site.yml').read_text(encoding='utf-8')
    imported = re.search(r'^- name: .*\n  ansible\.builtin\.import_playbook: playbooks/verify\.yml\n  tags: \[verify\]$', text, re.M)
    assert imported and text.rstrip().endswith(imported.group(0))


@pytest.mark.parametrize('inventory', ['gpu', 'local', 'airgapped', 'sandbox'])
def test_site_yml_passes_the_syntax_check_with_each_inventory(inventory):
    result = ansible_playbook('--syntax-check', 'site.yml', '-i', 'inventories/' + inventory)
    assert result.returncode == 0, result.stderr[-2000:]


def preflight(tmp_path, host_vars):
    """site.yml --tags preflight on this machine as host `node` (local connection), its GPUs faked under a fixture root.

    Only preflight: it changes nothing, so a check that wrongly passes cannot let a layer loose on this machine (which
    layers each tag selects is the --list-tasks tests' job)."""
    host = dict({'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                 'gpu_stack_facts_root': str(FIXTURES / 'nvidia_single')}, **host_vars)
    (tmp_path / 'hosts.json').write_text(json.dumps({'all': {'hosts': {'node': host}}}), encoding='utf-8')
    return ansible_playbook(str(REPO / 'site.yml'), '-i', str(tmp_path / 'hosts.json'), '--tags', 'preflight')


def test_preflight_names_each_mirror_a_host_cannot_reach_before_any_layer(tmp_path, server):  # noqa: F811
    closed = 'http://127.0.0.1:%d' % free_port()
    result = preflight(tmp_path, {
        # NVIDIA's repository on the mirror that answers (its key at <base>/gpgkey is missing there: HTTP 404).
        'nvidia_container_toolkit_base_url': server + '/libnvidia-container',
        'docker_engine_source': 'docker-ce', 'docker_engine_ce_repo_url': closed + '/docker-ce/linux/debian',
        'docker_engine_registry_mirrors': [server],
    })
    assert result.returncode == 2, result.stdout[-3000:]
    out = result.stdout
    # the fixture's GPU makes this an NVIDIA host (gpu_stack_gpu_vendor auto), so NVIDIA's mirror is checked
    assert "cannot reach NVIDIA's package repository (its signing key) at %s/libnvidia-container/gpgkey (HTTP 404 Not Found)" % server in out
    assert "cannot reach Docker's package repository (its signing key) at %s/docker-ce/linux/debian/gpg (connection refused)" % closed in out
    assert re.search(r"cannot reach Docker's package repository \(its index for \w+ [\d.]+\) at %s/docker-ce/linux/debian/dists/\w+/Release "
                     r"\(connection refused\)" % re.escape(closed), out)
    assert 'set docker_engine_ce_repo_url (and docker_engine_ce_gpg_key_url) to a mirror this host reaches' in out
    # the registry mirror answered (401), so it is not named; the host stopped at the check
    assert 'the registry mirror at' not in out
    assert 'TASK [Check that the controller holds the model cache' not in out


def test_preflight_passes_when_every_mirror_answers_and_says_what_it_read(tmp_path, server):  # noqa: F811
    result = preflight(tmp_path, {
        'nvidia_container_toolkit_key_url': server + '/key', 'nvidia_container_toolkit_base_url': server + '/libnvidia-container',
        'docker_engine_registry_mirrors': [server],
        'ollama_image': server[len('http://'):] + '/ollama/ollama:0.33.0',
        'docker_engine_insecure_registries': [server[len('http://'):]],
    })
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'TASK [Check that this host reaches the mirrors the inventory names]' in result.stdout
    assert 'ok: [node]' in result.stdout.split('TASK [Check that this host reaches the mirrors the inventory names]')[1].split('TASK')[0]
    # --tags preflight: the preflight line, and no line of a layer that did not run (the GPU runtime's choice was made)
    assert 'preflight: ' in result.stdout and 'gpu_runtime: ' not in result.stdout


def test_no_mirror_configured_costs_no_module_call(tmp_path):
    result = preflight(tmp_path, {})
    assert result.returncode == 0, result.stdout[-3000:]
    out = result.stdout
    assert re.search(r'TASK \[Check that this host reaches the mirrors the inventory names\] \*+\nskipping: \[node\]', out)
    assert re.search(r'TASK \[Check that the controller holds the model cache the inventory names\] \*+\nskipping: \[node\]', out)


def test_a_missing_model_cache_fails_preflight_naming_it(tmp_path):
    missing = tmp_path / 'no-such-cache'
    result = preflight(tmp_path, {'ollama_models_seed': True, 'ollama_models_seed_host': None,
                                  'ollama_models_seed_cache': str(missing)})
    assert result.returncode == 2
    assert 'cannot read the model cache at %s on the controller (no such directory)' % missing in result.stdout
    missing.mkdir()
    assert preflight(tmp_path, {'ollama_models_seed': True, 'ollama_models_seed_host': None,
                                'ollama_models_seed_cache': str(missing)}).returncode == 0
