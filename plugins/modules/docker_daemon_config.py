#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_config
short_description: Merge settings into Docker's daemon.json, keeping what others put there
version_added: 0.1.0
author:
  - ragops (@ragops)
description:
  - Edits Docker's daemon configuration file (C(/etc/docker/daemon.json)) by merging, never by
    overwriting. Keys this task does not name, such as those written by C(nvidia-ctk) or by a
    person, survive every run.
  - Objects merge key by key (C(runtimes), C(log-opts), C(features)); lists and other values are
    replaced whole.
  - Options left unset leave their keys as they are.
  - The file is rewritten only when the parsed configuration changes, so a file with its own
    formatting or key order is left alone when it already holds the wanted settings. A rewrite
    keeps the key order and indentation of the existing file and appends new keys.
  - Bad input fails before anything is written, naming the option and what to do about it. An
    existing file that is not valid JSON fails with its path, line and column, and is not touched.
  - The write is atomic (temporary file in the same directory, fsync, rename). A symlink is
    followed and its target written. An existing file keeps its owner, group and mode; a new one
    gets mode C(0644). A missing parent directory is created with mode C(0755).
  - This module does not restart Docker. Use the RV(restart_required) result to notify a handler.
options:
  path:
    description:
      - The daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  state:
    description:
      - V(present) removes the key paths in O(remove), then merges O(settings) and the other
        options.
      - V(absent) only removes the key paths in O(remove), which is then required; O(settings) and
        the setting options must be left unset.
    type: str
    choices: [present, absent]
    default: present
  settings:
    description:
      - Free-form daemon.json settings, deep-merged into the file as given.
      - Values in C(log-opts) are turned into strings, as for O(log_opts).
      - A key that one of the setting options below also sets must have the same value there,
        otherwise the task fails.
    type: dict
  defaults:
    description:
      - Settings applied as one group, and only where the file has none of their top-level keys
        yet, after everything else. For choices that belong to whoever made them first, such as
        C(log-driver) with its C(log-opts); a host whose daemon.json already names a log driver
        keeps it and its options whole.
      - Values in C(log-opts) are turned into strings, as for O(log_opts).
    type: dict
  remove:
    description:
      - Key paths to remove, applied before O(settings) and the other options, so that removing
        C(runtimes) and setting O(nvidia_runtime=true) leaves exactly one runtime.
      - A key path is a dotted string such as V(runtimes.nvidia) or V(log-opts.max-size), or a
        list of keys such as V([runtimes, nvidia]) for keys that contain a dot.
      - A path that is not in the file is ignored. An object left empty by a removal is removed too.
    type: list
    elements: raw
  nvidia_runtime:
    description:
      - V(true) registers the NVIDIA runtime as C(runtimes.nvidia) with C(path) set to
        O(nvidia_runtime_path) and C(args) set to V([]) (what C(nvidia-ctk runtime configure)
        writes); other keys already in C(runtimes.nvidia) are kept.
      - V(false) removes C(runtimes.nvidia).
      - Unset leaves C(runtimes) as it is.
    type: bool
  nvidia_runtime_path:
    description:
      - The C(path) of the NVIDIA runtime when O(nvidia_runtime=true).
    type: str
    default: nvidia-container-runtime
  default_runtime:
    description:
      - Sets C(default-runtime), for example V(nvidia) or V(runc).
      - Anything but V(runc) and V(io.containerd.runc.v2) must be registered under C(runtimes)
        (by O(nvidia_runtime=true), O(settings) or the existing file), otherwise the task fails,
        because dockerd would refuse to start.
    type: str
  cdi:
    description:
      - Sets C(features.cdi), which lets C(docker run --device nvidia.com/gpu=all) use CDI specs
        (Docker 25 or later).
    type: bool
  log_driver:
    description:
      - Sets C(log-driver), for example V(json-file) or V(local).
    type: str
  log_opts:
    description:
      - Merged into C(log-opts).
      - Docker accepts only string values there, so numbers and booleans are turned into
        strings (V(3) into V("3"), V(true) into V("true")); an object or a list fails.
    type: dict
  registry_mirrors:
    description:
      - Sets C(registry-mirrors), replacing the list. Each entry is a URL starting with
        V(http://) or V(https://).
    type: list
    elements: str
  insecure_registries:
    description:
      - Sets C(insecure-registries), replacing the list. Entries are C(host[:port]) or CIDR
        ranges, without a scheme.
    type: list
    elements: str
  live_restore:
    description:
      - Sets C(live-restore), which keeps containers running while dockerd restarts.
    type: bool
  data_root:
    description:
      - Sets C(data-root), an absolute path.
    type: path
  backup:
    description:
      - Copy the file to C(<path>.<pid>.<timestamp>~) before changing it.
    type: bool
    default: false
  validate:
    description:
      - Before writing, run C(dockerd --validate --config-file) on the new configuration and fail
        when dockerd refuses it.
      - Only Docker 23 or later has C(--validate); with an older dockerd or none on the host the
        check is skipped and RV(validated) is V(null), with the reason in RV(validation_note).
    type: bool
    default: true
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    support: N/A
    platforms: posix
notes:
  - RV(restart_required) is true only when the configuration dockerd would read changed, never
    for formatting. Restarting dockerd without O(live_restore=true) stops running containers.
  - The validation cannot see flags given to dockerd on its command line (for example C(-H fd://)
    in the systemd unit); a key that conflicts with such a flag still stops dockerd from starting.
seealso:
  - name: Docker daemon configuration file
    description: Every key daemon.json accepts.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Register the NVIDIA runtime and make it the default
  ragops.gpu_stack.docker_daemon_config:
    nvidia_runtime: true
    default_runtime: nvidia
  register: daemon_json
  notify: Restart docker

- name: Turn on CDI and keep containers running across dockerd restarts
  ragops.gpu_stack.docker_daemon_config:
    cdi: true
    live_restore: true

- name: Rotate container logs
  ragops.gpu_stack.docker_daemon_config:
    log_driver: json-file
    log_opts:
      max-size: 50m
      max-file: 3  # written as "3"

- name: Any other daemon.json key, merged as given
  ragops.gpu_stack.docker_daemon_config:
    settings:
      default-address-pools:
        - base: 10.200.0.0/16
          size: 24
      features:
        containerd-snapshotter: true
    backup: true

- name: Back to runc, without the NVIDIA runtime
  ragops.gpu_stack.docker_daemon_config:
    default_runtime: runc
    nvidia_runtime: false

- name: Remove keys
  ragops.gpu_stack.docker_daemon_config:
    state: absent
    remove:
      - log-opts.max-size
      - [runtimes, my.runtime]
"""

RETURN = r"""
restart_required:
  description:
    - Whether the configuration dockerd reads changed, so that dockerd must be restarted to apply it.
    - False when only formatting or key order differ, and always false when nothing changed.
  returned: always
  type: bool
  sample: true
config:
  description: The configuration the file holds after the task (what it would hold, in check mode).
  returned: always
  type: dict
  sample: {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}, "default-runtime": "nvidia"}
backup_file:
  description: The backup copy of the previous file.
  returned: when O(backup=true) and the file existed and was changed
  type: str
  sample: /etc/docker/daemon.json.2371.2025-11-25@10:31:05~
validated:
  description:
    - V(true) when C(dockerd --validate) accepted the new configuration.
    - V(null) when nothing changed, O(validate=false), or dockerd cannot validate (see RV(validation_note)).
    - A configuration dockerd refuses fails the task, so V(false) is never returned.
  returned: always
  type: bool
  sample: true
validation_note:
  description: Why a changed configuration was not validated.
  returned: when O(validate=true), the configuration changed and validation was skipped
  type: str
  sample: /usr/sbin/dockerd has no --validate option (Docker 23 or later has it); the configuration was not validated
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils.daemon_json import (
    apply_defaults,
    DaemonJsonError,
    default_runtime_problem,
    detect_indent,
    effective_equal,
    get_path,
    leaf_paths,
    merge,
    normalize,
    parse,
    parse_key_path,
    read_text,
    remove,
    render,
    stringify_log_opts,
    validate,
    write_atomic,
)

# The options that set or remove daemon.json keys; state=absent takes none of them.
SETTING_OPTIONS = (
    'nvidia_runtime', 'default_runtime', 'cdi', 'log_driver', 'log_opts',
    'registry_mirrors', 'insecure_registries', 'live_restore', 'data_root',
)

_MISSING = object()


class InputError(Exception):
    """Bad module input; the message names the option and the fix."""


def argument_spec():
    return dict(
        path=dict(type='path', default='/etc/docker/daemon.json'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        settings=dict(type='dict'),
        defaults=dict(type='dict'),
        remove=dict(type='list', elements='raw'),
        nvidia_runtime=dict(type='bool'),
        nvidia_runtime_path=dict(type='str', default='nvidia-container-runtime'),
        default_runtime=dict(type='str'),
        cdi=dict(type='bool'),
        log_driver=dict(type='str'),
        log_opts=dict(type='dict'),
        registry_mirrors=dict(type='list', elements='str'),
        insecure_registries=dict(type='list', elements='str'),
        live_restore=dict(type='bool'),
        data_root=dict(type='path'),
        backup=dict(type='bool', default=False),
        validate=dict(type='bool', default=True),
    )


def _nonempty(params, name):
    value = params[name]
    if not value or not value.strip():
        raise InputError('%s must not be empty; leave it unset to keep the key as it is' % name)
    return value


def option_changes(params):
    """Translate the setting options into ``(option, key path, value)`` to set and ``(option, key path)`` to remove."""
    sets = []
    removals = []
    if params['nvidia_runtime'] is True:
        runtime_path = _nonempty(params, 'nvidia_runtime_path')
        sets.append(('nvidia_runtime', ('runtimes', 'nvidia'), {'path': runtime_path, 'args': []}))
    elif params['nvidia_runtime'] is False:
        removals.append(('nvidia_runtime', ('runtimes', 'nvidia')))
    if params['default_runtime'] is not None:
        sets.append(('default_runtime', ('default-runtime',), _nonempty(params, 'default_runtime')))
    if params['cdi'] is not None:
        sets.append(('cdi', ('features', 'cdi'), params['cdi']))
    if params['log_driver'] is not None:
        sets.append(('log_driver', ('log-driver',), _nonempty(params, 'log_driver')))
    if params['log_opts'] is not None:
        try:
            opts = stringify_log_opts(normalize(params['log_opts']))
        except ValueError as exc:
            raise InputError('log_opts: %s' % exc) from None
        sets.append(('log_opts', ('log-opts',), opts))
    if params['registry_mirrors'] is not None:
        for mirror in params['registry_mirrors']:
            if not mirror.startswith(('http://', 'https://')):
                raise InputError('registry_mirrors: %r must be a URL starting with https:// or http://, '
                                 'for example https://%s; dockerd refuses anything else' % (mirror, mirror))
        sets.append(('registry_mirrors', ('registry-mirrors',), list(params['registry_mirrors'])))
    if params['insecure_registries'] is not None:
        for registry in params['insecure_registries']:
            if '://' in registry:
                raise InputError('insecure_registries: %r must be host[:port] or a CIDR range without a scheme, '
                                 'for example %s; dockerd refuses a scheme there' % (registry, registry.split('://', 1)[1]))
        sets.append(('insecure_registries', ('insecure-registries',), list(params['insecure_registries'])))
    if params['live_restore'] is not None:
        sets.append(('live_restore', ('live-restore',), params['live_restore']))
    if params['data_root'] is not None:
        if not os.path.isabs(params['data_root']):
            raise InputError('data_root: %r must be an absolute path, for example /var/lib/docker' % params['data_root'])
        sets.append(('data_root', ('data-root',), params['data_root']))
    return sets, removals


def _nest(parts, value):
    for part in reversed(parts):
        value = {part: value}
    return value


def _dotted(parts):
    return '.'.join(parts)


def desired_changes(params):
    """Check the input and return ``(removals, settings, option_removals)``.

    ``removals`` (from O(remove)) apply first, then ``settings`` (O(settings) with the setting
    options merged in) is merged, then ``option_removals`` (O(nvidia_runtime=false)) apply.
    """
    if params['state'] == 'absent':
        given = [name for name in ('settings', 'defaults') + SETTING_OPTIONS if params[name] is not None]
        if given:
            raise InputError('state=absent only removes the key paths in remove; unset %s, or use state=present'
                             % ', '.join(given))

    removals = []
    for index, key_path in enumerate(params['remove'] or []):
        try:
            removals.append(parse_key_path(normalize(key_path)))
        except (ValueError, TypeError) as exc:
            raise InputError('remove[%d]: %s; write a dotted string such as runtimes.nvidia or a list of keys '
                             'such as [runtimes, nvidia]' % (index, exc)) from None

    settings = _json_settings(params['settings'], 'settings')

    option_sets, option_removals = option_changes(params)

    # One key, one value: when settings and an option disagree there is no right answer to pick.
    for option, parts, value in option_sets:
        for leaf, leaf_value in leaf_paths(_nest(parts, value)):
            given = get_path(settings, leaf, _MISSING)
            if leaf_value != {} and given is not _MISSING and not effective_equal(given, leaf_value):
                raise InputError('settings.%s is %s but %s sets it to %s; set it in one place only'
                                 % (_dotted(leaf), _json(given), option, _json(leaf_value)))
    for option, parts in option_removals:
        if get_path(settings, parts, _MISSING) is not _MISSING:
            raise InputError('settings.%s sets what %s=false removes; set it in one place only' % (_dotted(parts), option))

    for option, parts, value in option_sets:
        settings = merge(settings, _nest(parts, value))
    return removals, settings, [parts for option, parts in option_removals]


def _json_settings(value, option):
    """A free-form settings option as JSON data, its log-opts values turned into strings."""
    try:
        settings = normalize(value or {})
    except TypeError as exc:
        raise InputError('%s: %s; give JSON values only (strings, numbers, booleans, lists, objects)' % (option, exc)) from None
    if isinstance(settings.get('log-opts'), dict):
        try:
            settings['log-opts'] = stringify_log_opts(settings['log-opts'])
        except ValueError as exc:
            raise InputError('%s.log-opts: %s' % (option, exc)) from None
    return settings


def _json(value):
    return render(value, indent=None).strip()


def compute(current, params):
    """The configuration after this task, checked for a default-runtime dockerd would refuse.

    Returns ``(result, problem)``: ``problem`` is a default-runtime fault that the file already
    had and this task leaves as it was (worth a warning, not a failure).
    """
    removals, settings, option_removals = desired_changes(params)
    result = remove(merge(remove(current, removals), settings), option_removals)
    result = apply_defaults(result, _json_settings(params['defaults'], 'defaults'))

    problem = default_runtime_problem(result)
    if problem:
        if params['default_runtime'] is not None:
            raise InputError('default_runtime: %s. Set nvidia_runtime: true to register the nvidia runtime, register %r '
                             'under settings.runtimes, or use default_runtime: runc' % (problem, params['default_runtime']))
        if params['nvidia_runtime'] is False and current.get('default-runtime') == 'nvidia' \
                and get_path(current, ('runtimes', 'nvidia'), _MISSING) is not _MISSING:
            raise InputError('nvidia_runtime: false removes the nvidia runtime that default-runtime uses; '
                             'set default_runtime: runc as well')
        untouched = (effective_equal(current.get('default-runtime'), result.get('default-runtime'))
                     and effective_equal(current.get('runtimes'), result.get('runtimes')))
        if not untouched:
            raise InputError('%s; fix default-runtime or runtimes in settings or remove' % problem)
    return result, problem


def _backup(module):
    """module.backup_local, whose failures (a plain Exception) become the DaemonJsonError write_atomic reports."""
    def backup(target):
        try:
            return module.backup_local(target)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise DaemonJsonError(target, 'could not be backed up: %s' % (exc.__cause__ or exc)) from None
    return backup


def _selinux_hook(module):
    """Give the new file the old one's SELinux context, as Ansible's atomic_move does."""
    if not module.selinux_enabled():
        return None

    def hook(tmp_path, target):
        if os.path.exists(target):
            context = module.selinux_context(target)
        else:
            context = module.selinux_default_context(target)
        module.set_context_if_different(tmp_path, context, False)
    return hook


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[('state', 'absent', ('remove',))],
        supports_check_mode=True,
    )
    params = module.params
    path = params['path']

    try:
        current_text = read_text(path)
        current = parse(current_text, path)
    except DaemonJsonError as exc:
        module.fail_json(msg='%s; fix or remove the file by hand, it was left as it is' % exc)

    try:
        result, problem = compute(current, params)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    if problem:
        module.warn('%s: %s (already so before this task)' % (path, problem))

    changed = not effective_equal(current, result)
    before_text = current_text or ''
    after_text = before_text
    if changed:
        after_text = render(result, detect_indent(current_text))

    outcome = dict(changed=changed, restart_required=changed, config=result, validated=None)
    if module._diff:
        outcome['diff'] = dict(
            before=before_text,
            after=after_text,
            before_header=path if current_text is not None else '%s (absent)' % path,
            after_header=path,
        )

    if changed and params['validate']:
        dockerd = module.get_bin_path('dockerd')
        if dockerd is None:
            outcome['validation_note'] = 'dockerd was not found on this host; the configuration was not validated'
        else:
            accepted, output = validate(after_text, dockerd, module.run_command, module.tmpdir)
            if accepted is None:
                outcome['validation_note'] = output
            elif not accepted:
                module.fail_json(msg='%s refused the new configuration for %s, which was left as it is: %s'
                                 % (dockerd, path, output or 'no message'), config=result)
            outcome['validated'] = accepted

    if changed and not module.check_mode:
        try:
            backup_file = write_atomic(path, after_text, mode=0o644, backup=params['backup'],
                                       backup_func=_backup(module), before_rename=_selinux_hook(module))
        except DaemonJsonError as exc:
            module.fail_json(msg=str(exc))
        if backup_file:
            outcome['backup_file'] = backup_file

    module.exit_json(**outcome)


if __name__ == '__main__':
    main()
