# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgvector_container end to end against the recording fake client (no dockerd)."""

from __future__ import annotations

import os
import socket
import stat
from unittest import mock

import pytest

from ansible_collections.ragops.gpu_stack.plugins.modules import pgvector_container
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, run_module
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_container import FakeClient

PG_IMAGE = {'pgvector/pgvector:pg17': {'Id': 'sha256:pg', 'Config': {
    'Env': ['PATH=/usr/lib/postgresql/17/bin:/usr/bin:/bin', 'PGDATA=/var/lib/postgresql/data'], 'Cmd': ['postgres']}}}


@pytest.fixture
def client():
    fake = FakeClient(images=PG_IMAGE)
    with mock.patch.object(pgvector_container, 'connect', lambda module: fake):
        yield fake


@pytest.fixture
def args(tmp_path):
    return dict(password='s3cret', password_file=str(tmp_path / 'secrets' / 'pw'), port=free_port(), user='rag',
                database='rag')


def run(args, **kwargs):
    return run_module(pgvector_container, args, **kwargs)


def test_password_only_in_a_0600_file(client, args):
    result, warnings = run(args, diff=True)
    assert result['changed']
    assert result['actions'] == ['write password file %s' % args['password_file'], 'create and start']
    assert stat.S_IMODE(os.stat(args['password_file']).st_mode) == 0o600
    with open(args['password_file'], encoding='utf-8') as handle:
        assert handle.read() == 's3cret'
    assert 's3cret' not in repr(client.calls) and 's3cret' not in repr(result)
    info = client.containers['pgvector']
    assert 'POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password' in info['Config']['Env']
    assert {'Type': 'bind', 'Source': args['password_file'], 'Target': '/run/secrets/postgres_password',
            'ReadOnly': True} in info['HostConfig']['Mounts']
    again, warnings = run(args)
    assert not again['changed']


def test_setting_change_recreates_keeping_volume(client, args):
    run(dict(args, shared_buffers='128MB'))
    result, warnings = run(dict(args, shared_buffers='256MB'))
    assert result['actions'] == ['recreate: command changed']
    info = client.containers['pgvector']
    assert info['Config']['Cmd'] == ['postgres', '-c', 'shared_buffers=256MB']
    assert info['HostConfig']['Mounts'][0]['Source'] == 'pgvector_data'
    assert info['HostConfig']['ShmSize'] == 256 * 1024 * 1024


def test_check_mode_writes_nothing(client, args):
    result, warnings = run(args, check_mode=True)
    assert result['changed'] and not os.path.exists(args['password_file'])
    assert client.mutating_calls() == []


def test_loose_mode_is_tightened(client, args):
    run(args)
    os.chmod(args['password_file'], 0o644)
    result, warnings = run(args)
    assert result['actions'] == ['password file %s mode 0600' % args['password_file']]
    assert stat.S_IMODE(os.stat(args['password_file']).st_mode) == 0o600


def test_missing_password_file_fails_naming_it(client, args):
    del args['password']
    result, warnings = run(args)
    assert result['failed'] and result['msg'].startswith('password_file: ')
    assert client.mutating_calls() == []


def test_bad_settings_fail_before_anything(client, args):
    result, warnings = run(dict(args, shared_buffers='1GB', settings={'shared_buffers': '2GB'}))
    assert result['failed'] and result['msg'].startswith('settings.shared_buffers')
    assert not os.path.exists(args['password_file']) and client.mutating_calls() == []


def test_port_in_use_fails_before_the_file_is_written(client, args):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)
    try:
        result, warnings = run(dict(args, port=sock.getsockname()[1]))
    finally:
        sock.close()
    assert result['failed'] and result['msg'].startswith('port: ')
    assert not os.path.exists(args['password_file']) and client.mutating_calls() == []
