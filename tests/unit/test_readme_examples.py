"""README's inventory examples ("GPU hosts", "Services", "Models") are real variables of real roles.

Each ```yaml block under those headings is one group_vars file. Every key must be an option
of the role its prefix names, and its value must pass that role's meta/argument_specs.yml
validation (the same validator Ansible runs when the role starts). A renamed variable, a
typo or a wrong type in README fails here instead of in a user's first run.
"""
from __future__ import annotations

import os

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = ('nvidia_container_toolkit', 'docker_engine', 'pgvector', 'ollama', 'ollama_models', 'rocm')
# gpu_stack_gpu_vendor is a play variable (playbooks/gpu_runtime.yml refuses anything else).
PLAY_VARIABLES = {'gpu_stack_gpu_vendor': {'type': 'str', 'choices': ['auto', 'nvidia', 'amd', 'none']}}


class UniqueKeyLoader(yaml.SafeLoader):
    """A group_vars file with a key twice silently keeps the last one: refuse it here."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, dummy in node.value]
        duplicates = sorted(set(k for k in keys if keys.count(k) > 1))
        if duplicates:
            raise yaml.constructor.ConstructorError(None, None, 'duplicate keys %s' % duplicates, node.start_mark)
        return super().construct_mapping(node, deep=deep)


def readme_blocks(*headings):
    """(heading, text) of each ```yaml block in the README sections with these ### headings."""
    with open(os.path.join(REPO, 'README.md'), encoding='utf-8') as handle:
        lines = handle.read().splitlines()
    blocks, heading, fence = [], None, None
    for line in lines:
        if fence is not None:
            if line.startswith('```'):
                if heading in headings:
                    blocks.append((heading, '\n'.join(fence) + '\n'))
                fence = None
            else:
                fence.append(line)
        elif line.startswith('```yaml'):
            fence = []
        elif line.startswith('#'):
            heading = line.lstrip('#').strip()
    return blocks


def role_options(role):
    with open(os.path.join(REPO, 'roles', role, 'meta', 'argument_specs.yml'), encoding='utf-8') as handle:
        return yaml.safe_load(handle)['argument_specs']['main']['options']


def owner(variable):
    """The role whose prefix the variable carries, the longest one (ollama_models_list is not the ollama role's)."""
    matches = [role for role in ROLES if variable.startswith(role + '_')]
    return max(matches, key=len) if matches else None


BLOCKS = readme_blocks('GPU hosts: one example per vendor', 'Services: one example per host kind',
                       'Models: one example per host kind')


def test_the_examples_are_there():
    # three host kinds for the GPU layer, three (and the shared-network one) for the services,
    # a GPU RAG host, a seeded fleet and an air-gapped site for the models
    assert len(BLOCKS) >= 10
    first_lines = [block.splitlines()[0] for dummy, block in BLOCKS]
    for kind in ('# NVIDIA', '# AMD', '# CPU only'):
        assert sum(line.startswith(kind) for line in first_lines) == 2, kind
    for kind in ('# A GPU RAG host', '# A fleet with seeding', '# An air-gapped site'):
        assert sum(line.startswith(kind) for line in first_lines) == 1, kind


def test_model_variables_belong_to_the_models_role():
    assert owner('ollama_models_list') == 'ollama_models'
    assert owner('ollama_image') == 'ollama'


@pytest.mark.parametrize('heading, block', BLOCKS, ids=['%s: %s' % (h.split(':')[0], b.splitlines()[0][2:40]) for h, b in BLOCKS])
def test_example_variables_are_valid_role_options(heading, block):
    variables = yaml.load(block, Loader=UniqueKeyLoader)
    assert isinstance(variables, dict) and variables, 'not a group_vars mapping'
    by_role = {}
    for name, value in variables.items():
        if name in PLAY_VARIABLES:
            result = ArgumentSpecValidator({name: PLAY_VARIABLES[name]}).validate({name: value})
            assert not result.error_messages, result.error_messages
            continue
        role = owner(name)
        assert role, '%s belongs to no role of this collection' % name
        by_role.setdefault(role, {})[name] = value
    for role, values in by_role.items():
        options = role_options(role)
        unknown = sorted(set(values) - set(options))
        assert not unknown, 'not options of role %s: %s' % (role, unknown)
        spec = {name: dict(options[name], required=False) for name in values}
        result = ArgumentSpecValidator(spec).validate(values)
        assert not result.error_messages, '%s: %s' % (role, result.error_messages)
