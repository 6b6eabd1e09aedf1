# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""execution-environment.yml makes a build context: `ansible-builder create` (which writes the context and
builds nothing, so no network is needed) on a copy of the definition and the files it names, beside the
tarball `ansible-galaxy collection build` makes of this checkout, as README's build steps do. The context
must hold the Containerfile on the documented base with the pinned ansible-core, the collection's tarball
where the galaxy requirements look for it, and the Python and system dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = os.path.dirname(sys.executable)


def load(path):
    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope='module')
def context(tmp_path_factory):
    """(definition, build context) of `ansible-builder create` run as README says, in a temporary directory."""
    work = tmp_path_factory.mktemp('ee')
    definition = load(REPO / 'execution-environment.yml')
    source = work / 'source'
    source.mkdir()
    named = [definition['dependencies'][key] for key in ('galaxy', 'python', 'system')]
    for name in ['execution-environment.yml'] + named:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, source / name)
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', str(REPO), '--output-path', str(source)],
                   check=True, capture_output=True, text=True)
    subprocess.run([os.path.join(BIN, 'ansible-builder'), 'create', '--file', str(source / 'execution-environment.yml'),
                    '--context', str(work / 'context'), '--output-filename', 'Containerfile'],
                   check=True, capture_output=True, text=True, cwd=str(work))
    return definition, work / 'context'


def test_the_definition_is_version_3_on_a_documented_base_with_ansible_core():
    definition = load(REPO / 'execution-environment.yml')
    assert definition['version'] == 3
    assert definition['images']['base_image']['name'] == 'quay.io/centos/centos:stream9'
    # the ansible-core the suite runs (requirements-dev.txt), not whatever is newest when the image is built
    dev = (REPO / 'requirements-dev.txt').read_text(encoding='utf-8').splitlines()
    assert definition['dependencies']['ansible_core']['package_pip'] in dev
    assert definition['dependencies']['ansible_runner']['package_pip'].startswith('ansible-runner==')


def test_the_containerfile_builds_on_the_base_with_the_pinned_ansible(context):
    definition, ctx = context
    containerfile = (ctx / 'Containerfile').read_text(encoding='utf-8')
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert 'ansible-core==2.19.14' in containerfile
    assert 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml' in containerfile
    assert '--user-pip=requirements.txt --user-bindep=bindep.txt' in containerfile


def test_the_collection_tarball_is_where_the_galaxy_requirements_point(context):
    definition, ctx = context
    version = load(REPO / 'galaxy.yml')['version']
    requirements = load(ctx / '_build' / 'requirements.yml')
    assert requirements['collections'] == [{'name': 'ragops/ragops-gpu_stack-%s.tar.gz' % version, 'type': 'file'}]
    # the galaxy stage runs in /build, the context's _build: the name resolves to the copied tarball
    tarball = ctx / '_build' / requirements['collections'][0]['name']
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        manifest = archive.extractfile('MANIFEST.json').read().decode('utf-8')
    assert '"version": "%s"' % version in manifest
    assert 'plugins/modules/mirror_check.py' in names and 'roles/ollama/tasks/main.yml' in names
    assert not [n for n in names if n.startswith(('.venv', '.cache', 'tests/output'))]
    # at the collection's root, where ansible-builder's introspection reads an installed collection's dependencies
    assert 'requirements.txt' in names and 'bindep.txt' in names


def test_the_python_and_system_dependencies_are_in_the_context(context):
    dummy, ctx = context
    python = (ctx / '_build' / 'requirements.txt').read_text(encoding='utf-8').split()
    assert 'docker>=7.0.0' in python and 'requests>=2.28.0' in python
    system = (ctx / '_build' / 'bindep.txt').read_text(encoding='utf-8')
    assert 'openssh-clients [platform:rpm]' in system
