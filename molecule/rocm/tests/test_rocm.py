"""The rocm role on a Debian 12 host whose AMD devices prepare.yml faked (a gfx1030 on renderD128,
a gfx1034 on renderD129): users in render and video, the udev rules, and the facts handed to the
service roles: device nodes, their real gids, HSA_OVERRIDE_GFX_VERSION and a GPU selection."""
from __future__ import annotations

import json

import pytest

NODES = ['/dev/kfd', '/dev/dri/renderD128', '/dev/dri/renderD129']
RULES = (
    '# Managed by ragops.gpu_stack.rocm: local changes are overwritten.\n'
    '# ROCm device access: /dev/kfd and the DRM render nodes belong to render, mode 0660.\n'
    'KERNEL=="kfd", GROUP="render", MODE="0660"\n'
    'SUBSYSTEM=="drm", KERNEL=="renderD*", GROUP="render", MODE="0660"\n'
)


def facts(host, name):
    return json.loads(host.file(f'/var/tmp/{name}.json').content_string)


def gid(host, group):
    return int(host.check_output(f'getent group {group}').split(':')[2])


def test_user_is_in_render_and_video(host):
    groups = host.user('ollama-op').groups
    assert 'render' in groups
    assert 'video' in groups


def test_udev_rules_give_kfd_and_render_nodes_to_render(host):
    rules = host.file('/etc/udev/rules.d/70-ragops-rocm.rules')
    assert rules.is_file
    assert rules.user == 'root' and rules.group == 'root'
    assert rules.mode == 0o644
    assert rules.content_string == RULES


@pytest.mark.parametrize('path', NODES)
def test_prepare_made_character_devices(host, path):
    # Docker grants CAP_MKNOD; prepare.yml falls back to regular files only where it is refused.
    assert host.run(f'test -c {path}').rc == 0


def test_devices_are_kfd_and_both_render_nodes(host):
    assert facts(host, 'rocm-facts')['rocm_devices'] == NODES


def test_group_ids_are_the_nodes_real_gids(host):
    exported = facts(host, 'rocm-facts')['rocm_group_ids']
    assert exported == sorted({host.file(path).gid for path in NODES})
    # kfd and renderD128 belong to render (993 here), renderD129 to video (44).
    assert exported == sorted([gid(host, 'render'), gid(host, 'video')])
    assert 993 in exported and 44 in exported


def test_gfx1030_and_gfx1034_share_one_override(host):
    exported = facts(host, 'rocm-facts')
    assert exported['rocm_hsa_override_env'] == {'HSA_OVERRIDE_GFX_VERSION': '10.3.0'}
    # The role's rule, applied to all GPUs, is gpu_facts' rule.
    assert exported['gpu_facts_hsa_override_env'] == exported['rocm_hsa_override_env']


def test_no_selection_sets_no_visible_devices(host):
    exported = facts(host, 'rocm-facts')
    assert exported['rocm_visible_devices_env'] == {}
    assert [(g['index'], g['node'], g['gfx_target'], g['runs_as']) for g in exported['rocm_gpus']] == [
        (0, 1, 'gfx1030', '10.3.0'),
        (1, 2, 'gfx1034', '10.3.0'),
    ]


def test_selinux_boolean_is_reported_off(host):
    assert facts(host, 'rocm-facts')['rocm_selinux_container_use_devices'] is False


def test_selection_passes_only_the_selected_render_node(host):
    exported = facts(host, 'rocm-facts-selected')
    assert exported['rocm_devices'] == ['/dev/kfd', '/dev/dri/renderD129']
    assert exported['rocm_group_ids'] == sorted({host.file(p).gid for p in exported['rocm_devices']})
    assert exported['rocm_hsa_override_env'] == {'HSA_OVERRIDE_GFX_VERSION': '10.3.0'}
    # Inside a container given only renderD129, ROCm sees one GPU: ordinal 0, KFD node 1.
    assert exported['rocm_visible_devices_env'] == {'ROCR_VISIBLE_DEVICES': '0', 'HIP_VISIBLE_DEVICES': '0'}
    (gpu,) = exported['rocm_gpus']
    assert (gpu['index'], gpu['ordinal'], gpu['host_node'], gpu['node']) == (1, 0, 2, 1)


def test_gpus_on_different_versions_get_per_node_overrides(host):
    exported = facts(host, 'rocm-facts-per-node')
    assert exported['rocm_devices'] == ['/dev/kfd', '/dev/dri/renderD128', '/dev/dri/renderD130']
    assert exported['rocm_group_ids'] == [993]
    # gfx1031 is KFD node 3 on the host, node 2 once renderD129's GPU is left out.
    assert exported['rocm_hsa_override_env'] == {'HSA_OVERRIDE_GFX_VERSION_2': '10.3.0'}
    assert exported['rocm_visible_devices_env'] == {'ROCR_VISIBLE_DEVICES': '0,1', 'HIP_VISIBLE_DEVICES': '0,1'}


def test_host_without_kfd_is_refused_with_the_fix(host):
    message = host.file('/var/tmp/rocm-no-kfd.txt').content_string
    assert 'No /dev/kfd' in message
    assert 'amdgpu' in message
    assert 'rocm_require_devices: false' in message
