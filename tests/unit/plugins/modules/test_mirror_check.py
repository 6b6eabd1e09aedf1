# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror_check module end to end: arguments in, a result or one failure naming each mirror out."""

from __future__ import annotations

import pytest

from ansible_collections.ragops.gpu_stack.plugins.modules import mirror_check
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port, run_module
# The module_utils tests' server: /key is a file, /v2/ a registry that wants a login.
from ansible_collections.ragops.gpu_stack.tests.unit.plugins.module_utils.test_mirror import server  # noqa: F401 pylint: disable=unused-import


@pytest.mark.parametrize('check_mode', [False, True])
def test_every_mirror_answering_passes_and_changes_nothing(server, check_mode):  # noqa: F811
    result, warnings = run_module(mirror_check, dict(targets=[
        dict(what="NVIDIA's repository mirror", url=server + '/key'),
        dict(what='the registry mirror', url=server, kind='registry'),
    ]), check_mode=check_mode)
    assert not result.get('failed') and result['changed'] is False and not warnings
    assert result['unreachable'] == []
    assert [(m['what'], m['ok'], m['status']) for m in result['mirrors']] == [
        ("NVIDIA's repository mirror", True, 200), ('the registry mirror', True, 401)]


def test_each_mirror_out_of_reach_is_named_with_its_fix_in_one_failure(server):  # noqa: F811
    closed = 'http://127.0.0.1:%d' % free_port()
    result, dummy = run_module(mirror_check, dict(timeout=2, targets=[
        dict(what="Docker's repository mirror", url=closed + '/linux/debian/gpg',
             fix='set docker_engine_ce_repo_url to a mirror this host reaches'),
        dict(what="NVIDIA's repository mirror", url=server + '/key'),
        dict(what='the registry mirror', url=server + '/nothing-here', kind='registry', fix='check docker_engine_registry_mirrors'),
    ]))
    assert result['failed']
    assert result['msg'] == (
        "cannot reach Docker's repository mirror at %s/linux/debian/gpg (connection refused): "
        "set docker_engine_ce_repo_url to a mirror this host reaches; "
        "cannot reach the registry mirror at %s/nothing-here/v2/ (HTTP 404 Not Found): check docker_engine_registry_mirrors"
        % (closed, server))
    assert [m['ok'] for m in result['mirrors']] == [False, True, False]
    assert len(result['unreachable']) == 2


def test_no_target_is_nothing_to_do():
    result, dummy = run_module(mirror_check, dict(targets=[]))
    assert not result.get('failed') and result['mirrors'] == [] and result['unreachable'] == []


def test_an_unknown_kind_is_refused_by_the_argument_spec(server):  # noqa: F811
    result, dummy = run_module(mirror_check, dict(targets=[dict(what='x', url=server, kind='ftp')]))
    assert result['failed'] and 'kind' in result['msg'] and 'ftp' in result['msg']
