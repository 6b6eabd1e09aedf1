# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shipped inventories set real variables: every role-prefixed name in inventories/*/group_vars and in
the hosts files is an option of that role's meta/argument_specs.yml and its value passes the role's
validation (templated values, such as a Vault reference, are checked by name only); every gpu_stack_*
name is one README documents; anything else is an Ansible connection variable or a vault_* reference.
A renamed or mistyped variable in an example inventory fails here, not in a user's first run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.ragops.gpu_stack.tests.unit.test_readme_examples import (
    PLAY_VARIABLES, REPO, UniqueKeyLoader, owner, role_options)

INVENTORIES = os.path.join(REPO, 'inventories')


def variable_files():
    """(path, {name: value}) of every group_vars/host_vars file and every vars mapping of a hosts file."""
    found = []
    for root, dummy, files in os.walk(INVENTORIES):
        for name in sorted(files):
            path = os.path.join(root, name)
            if not name.endswith(('.yml', '.yaml')):
                continue
            with open(path, encoding='utf-8') as handle:
                data = yaml.load(handle, Loader=UniqueKeyLoader) or {}
            if os.path.basename(root) in ('group_vars', 'host_vars'):
                found.append((path, data))
            else:
                found.extend(hosts_file_vars(path, data))
    return sorted(found, key=lambda item: item[0])


def hosts_file_vars(path, group, where='all'):
    out = [('%s:%s' % (path, where), group.get('vars') or {})] if group.get('vars') else []
    for host, host_vars in (group.get('hosts') or {}).items():
        if host_vars:
            out.append(('%s:%s' % (path, host), host_vars))
    for child, child_group in (group.get('children') or {}).items():
        out.extend(hosts_file_vars(path, child_group or {}, child))
    return out


def documented_gpu_stack_variables():
    with open(os.path.join(REPO, 'README.md'), encoding='utf-8') as handle:
        return set(re.findall(r'`(gpu_stack_[a-z_]+)', handle.read()))


FILES = variable_files()


def test_every_inventory_is_there():
    names = {os.path.relpath(path, INVENTORIES).split(os.sep)[0] for path, dummy in FILES}
    assert {'gpu', 'local', 'airgapped', 'sandbox'} <= names


@pytest.mark.parametrize('path, variables', FILES, ids=[os.path.relpath(p, INVENTORIES) for p, v in FILES])
def test_inventory_variables_are_real(path, variables):
    documented = documented_gpu_stack_variables()
    by_role = {}
    for name, value in variables.items():
        if name in PLAY_VARIABLES:
            result = ArgumentSpecValidator({name: PLAY_VARIABLES[name]}).validate({name: value})
            assert not result.error_messages, result.error_messages
        if name.startswith('gpu_stack_'):
            assert name in documented, '%s: %s is not documented in README.md' % (path, name)
            continue
        if name.startswith(('ansible_', 'vault_')):
            continue
        role = owner(name)
        assert role, '%s: %s belongs to no role of this collection' % (path, name)
        by_role.setdefault(role, {})[name] = value
    for role, values in by_role.items():
        options = role_options(role)
        unknown = sorted(set(values) - set(options))
        assert not unknown, '%s: not options of role %s: %s' % (path, role, unknown)
        checked = {name: value for name, value in values.items() if not (isinstance(value, str) and '{{' in value)}
        spec = {name: dict(options[name], required=False) for name in checked}
        result = ArgumentSpecValidator(spec).validate(checked)
        assert not result.error_messages, '%s: %s: %s' % (path, role, result.error_messages)


def test_the_example_fleet_has_a_group_per_vendor_and_a_detected_host():
    inventory = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-inventory'), '-i',
                                os.path.join(INVENTORIES, 'gpu'), '--list'], capture_output=True, text=True, check=True,
                               env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg')), cwd=REPO)
    data = yaml.safe_load(inventory.stdout)
    for group, vendor in (('nvidia', 'nvidia'), ('amd', 'amd'), ('cpu', 'none')):
        hosts = data[group]['hosts']
        assert hosts and all(data['_meta']['hostvars'][h]['gpu_stack_gpu_vendor'] == vendor for h in hosts), group
    # a host in no group keeps the default, auto: preflight's GPU facts decide
    assert data['ungrouped']['hosts'] == ['rag-auto-01']
    assert 'gpu_stack_gpu_vendor' not in data['_meta']['hostvars']['rag-auto-01']
    assert data['_meta']['hostvars']['rag-auto-01']['ollama_models_list'] == [{'name': 'nomic-embed-text', 'preload': True}]
