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
  - A converged host is answered on the controller after reading the file once; see the C(action)
    attribute. The module itself runs on the host only when something changes or the answer is
    not certain.
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
  action:
    support: full
    description:
      - The action plugin of the same name validates the arguments on the controller, reads the
        file with one command (through C(become) where the task has it) and plans the merge with
        the module's own code. When the file reads and parses, the plan has no error or warning
        and nothing changes, it returns the result the module would return, without running it.
      - Otherwise (no file, a file that does not read or parse, bad input, a warning, a change, a
        relative O(path), a O(path) or O(data_root) with C(~) or C($), C(async)) the module runs on
        the host and its result is returned as it is.
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
    DaemonJsonError,
    detect_indent,
    effective_equal,
    file_diff,
    parse,
    read_text,
    render,
    validate,
    write_atomic,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.daemon_json_plan import (
    argument_spec,
    compute,
    InputError,
    REQUIRED_IF,
)


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
        required_if=REQUIRED_IF,
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
        outcome['diff'] = file_diff(path, current_text, after_text)

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
