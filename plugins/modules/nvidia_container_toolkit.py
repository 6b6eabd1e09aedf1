#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_container_toolkit
short_description: Add NVIDIA's Container Toolkit repository with a pinned signing key and install the toolkit
version_added: 0.1.0
author:
  - ragops (@ragops)
description:
  - Adds NVIDIA's C(libnvidia-container) package repository for apt (deb822 C(.sources) or a
    one-line C(.list)), dnf, yum or zypper, and installs the NVIDIA Container Toolkit packages
    at a pinned version.
  - The signing key is downloaded from O(key_url), or given inline with O(key_content), and its
    primary key fingerprint is checked against O(key_fingerprint) before anything is written.
    A key that does not match fails the task and leaves the host as it was. No C(gpg) is needed
    on the host; the module reads the key itself.
  - For apt the key is written as the binary keyring that C(signed-by) names (what
    C(gpg --dearmor) writes); for dnf, yum and zypper it is written ASCII-armoured and the
    C(.repo) file points C(gpgkey) at that local file, so the package manager never fetches a
    key of its own.
  - The keyring and the repository file are rewritten only when their bytes differ, atomically.
    After a change, the metadata of that one repository is refreshed.
  - Packages are installed only when one of them is not at the wanted version, so a second run
    reports no change.
  - This module does not configure Docker; see M(ragops.gpu_stack.docker_daemon_config).
options:
  state:
    description:
      - V(present) adds the repository and, unless O(install_packages=false), installs the packages.
      - V(absent) removes the repository file and the keyring, and the packages too when
        O(remove_packages=true). No key is fetched.
    type: str
    choices: [present, absent]
    default: present
  version:
    description:
      - The toolkit version to install, as the package manager shows it (C(version-release)),
        for example V(1.17.8-1). Every package in O(packages) is installed at this version, since
        NVIDIA releases them together and their dependencies pin each other.
      - A version without a release (V(1.17.8)) is fine for dnf, yum and zypper; apt needs the release.
      - V(latest) installs the newest version the repository has and upgrades to it on later runs.
    type: str
    default: 1.17.8-1
  channel:
    description:
      - NVIDIA's C(stable) or C(experimental) packages (release candidates).
    type: str
    choices: [stable, experimental]
    default: stable
  base_url:
    description:
      - Where the repository lives. Point it at a mirror for hosts that cannot reach NVIDIA; the
        mirror must keep NVIDIA's layout (C(<channel>/deb/<arch>), C(<channel>/rpm/<arch>)) and
        NVIDIA's signed metadata.
    type: str
    default: https://nvidia.github.io/libnvidia-container
  key_url:
    description:
      - Where to download the signing key (armoured or binary). Defaults to C(<base_url>/gpgkey).
      - Not used when O(key_content) is given.
    type: str
  key_fingerprint:
    description:
      - The fingerprint the signing key's primary key must have; spaces, colons and case do not matter.
      - The default is the key NVIDIA signs this repository with (user ID "NVIDIA CORPORATION, Open
        Source Projects", C(cudatools@nvidia.com); key ID C(DDCAE044F796ECB0)). Override it if NVIDIA
        rotates the key, or for a mirror that re-signs the repository with its own key.
      - Key IDs (16 or 8 digits) are refused; they are easy to forge.
    type: str
    default: C95B321B61E88C1809C4F759DDCAE044F796ECB0
  key_content:
    description:
      - The signing key itself, ASCII-armoured, for hosts that cannot download it. It is checked
        against O(key_fingerprint) like a downloaded key.
    type: str
  packages:
    description:
      - The packages to install, all at O(version).
    type: list
    elements: str
    default: [nvidia-container-toolkit, nvidia-container-toolkit-base, libnvidia-container-tools, libnvidia-container1]
  install_packages:
    description:
      - V(false) only adds the repository and its key.
    type: bool
    default: true
  allow_downgrade:
    description:
      - Let apt (C(--allow-downgrades)) and zypper (C(--oldpackage)) install a version older than
        the installed one. Without it they refuse and the task fails. C(dnf install) of a named
        version downgrades by itself.
    type: bool
    default: false
  remove_packages:
    description:
      - With O(state=absent), also remove O(packages).
    type: bool
    default: false
  package_manager:
    description:
      - Which package manager to configure. V(auto) picks the first of C(apt-get), C(zypper),
        C(dnf) and C(yum) found on the host; no facts are needed.
    type: str
    choices: [auto, apt, dnf, yum, zypper]
    default: auto
  repo_format:
    description:
      - For apt, a deb822 C(.sources) file (V(deb822), what apt reads natively since Debian 12 and
        Ubuntu 24.04) or the one-line C(.list) form NVIDIA documents (V(list)).
      - With the default O(repo_path), the file of the other form is removed, so apt never sees
        the repository twice (NVIDIA's instructions write C(nvidia-container-toolkit.list)).
    type: str
    choices: [deb822, list]
    default: deb822
  repo_path:
    description:
      - The repository file.
      - Defaults to C(/etc/apt/sources.list.d/nvidia-container-toolkit.sources) (or C(.list)) for apt,
        C(/etc/yum.repos.d/nvidia-container-toolkit.repo) for dnf and yum, and
        C(/etc/zypp/repos.d/nvidia-container-toolkit.repo) for zypper.
    type: path
  keyring_path:
    description:
      - The signing key file.
      - Defaults to C(/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg) for apt and
        C(/etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit) for dnf, yum and zypper.
    type: path
  timeout:
    description:
      - Seconds to wait for the key download.
    type: int
    default: 30
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
    details:
      - The key is still downloaded and checked in check mode, since the prediction depends on it.
      - With O(version=latest), check mode predicts installs of missing packages only, not upgrades,
        because it does not refresh the package metadata.
  diff_mode:
    support: full
    details:
      - The repository file is shown as text, the keyring as the fingerprints it holds.
  platform:
    support: full
    platforms: debian, redhat, suse
notes:
  - NVIDIA builds the packages for x86_64 and aarch64 only; other architectures fail.
  - The deb repository URL names the architecture (C(.../deb/amd64)) instead of using apt's ARCH
    variable as NVIDIA's instructions do, and the source is restricted to that architecture, so a host with a foreign architecture
    enabled does not ask NVIDIA for packages it does not publish.
seealso:
  - name: Installing the NVIDIA Container Toolkit
    description: NVIDIA's instructions, which this module follows.
    link: https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html
  - module: ragops.gpu_stack.docker_daemon_config
"""

EXAMPLES = r"""
- name: Repository, pinned key and the toolkit at the pinned version
  ragops.gpu_stack.nvidia_container_toolkit:

- name: A specific version, allowed to go back
  ragops.gpu_stack.nvidia_container_toolkit:
    version: 1.17.4-1
    allow_downgrade: true

- name: Air-gapped host, internal mirror, key shipped with the playbook
  ragops.gpu_stack.nvidia_container_toolkit:
    base_url: https://mirror.internal.example/libnvidia-container
    key_content: "{{ lookup('ansible.builtin.file', 'files/nvidia-container-toolkit.asc') }}"

- name: Only the repository, one-line .list form
  ragops.gpu_stack.nvidia_container_toolkit:
    install_packages: false
    repo_format: list

- name: Remove the repository, the key and the packages
  ragops.gpu_stack.nvidia_container_toolkit:
    state: absent
    remove_packages: true
"""

RETURN = r"""
package_manager:
  description: The package manager configured.
  returned: always
  type: str
  sample: apt
repo_file:
  description: The repository file.
  returned: always
  type: str
  sample: /etc/apt/sources.list.d/nvidia-container-toolkit.sources
keyring:
  description: The signing key file.
  returned: always
  type: str
  sample: /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
key_fingerprint:
  description: The fingerprint of the checked signing key (the primary key).
  returned: when O(state=present)
  type: str
  sample: C95B321B61E88C1809C4F759DDCAE044F796ECB0
packages:
  description:
    - For each package in O(packages), the installed version before and after the task (V(null) when
      not installed).
    - In check mode, C(after) is the version the task would install (V(latest) when O(version=latest)).
    - Empty when the task looked at no package (O(install_packages=false), or O(state=absent) without
      O(remove_packages=true)).
  returned: always
  type: dict
  sample: {"nvidia-container-toolkit": {"before": null, "after": "1.17.8-1"}}
actions:
  description: What the task did, or would do in check mode, in order.
  returned: always
  type: list
  elements: str
  sample:
    - wrote /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
    - wrote /etc/apt/sources.list.d/nvidia-container-toolkit.sources
    - refreshed the nvidia-container-toolkit repository
    - installed nvidia-container-toolkit=1.17.8-1, nvidia-container-toolkit-base=1.17.8-1
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.module_utils.urls import fetch_url

from ansible_collections.ragops.gpu_stack.plugins.module_utils.package_repo import (
    DEFAULT_PATHS,
    NVIDIA_BASE_URL,
    NVIDIA_KEY_FINGERPRINT,
    NVIDIA_PACKAGES,
    NVIDIA_REPO_NAME,
    PackageRepoError,
    check_fingerprint,
    default_paths,
    describe_keyring,
    detect_package_manager,
    install_commands,
    keyring_bytes,
    normalize_fingerprint,
    nvidia_repo_file,
    package_spec,
    parse_installed,
    query_command,
    read_bytes,
    refresh_commands,
    remove_command,
    remove_file,
    version_matches,
    write_atomic,
)

DEFAULT_VERSION = '1.17.8-1'


def argument_spec():
    return dict(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        version=dict(type='str', default=DEFAULT_VERSION),
        channel=dict(type='str', choices=['stable', 'experimental'], default='stable'),
        base_url=dict(type='str', default=NVIDIA_BASE_URL),
        # A public key, its fingerprint and its URL are public by nature; "key" only looks like a secret's name.
        key_url=dict(type='str', no_log=False),
        key_fingerprint=dict(type='str', default=NVIDIA_KEY_FINGERPRINT, no_log=False),
        key_content=dict(type='str', no_log=False),
        packages=dict(type='list', elements='str', default=list(NVIDIA_PACKAGES)),
        install_packages=dict(type='bool', default=True),
        allow_downgrade=dict(type='bool', default=False),
        remove_packages=dict(type='bool', default=False),
        package_manager=dict(type='str', choices=['auto', 'apt', 'dnf', 'yum', 'zypper'], default='auto'),
        repo_format=dict(type='str', choices=['deb822', 'list'], default='deb822'),
        repo_path=dict(type='path'),
        keyring_path=dict(type='path'),
        timeout=dict(type='int', default=30),
    )


def machine():
    """The host's architecture as ``uname -m`` names it (a function so tests can stand in another)."""
    return os.uname().machine


class Task:
    """One run of the module: the plan, what was done, and the result."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.actions = []
        self.diffs = []
        self.changed = False
        self.manager = self._package_manager()
        repo_path, keyring_path = default_paths(self.manager, self.params['repo_format'])
        self.repo_path = self.params['repo_path'] or repo_path
        self.keyring_path = self.params['keyring_path'] or keyring_path
        # The other apt form at its default place, which would list the repository twice.
        self.stale_paths = []
        if self.manager == 'apt' and not self.params['repo_path']:
            other = 'list' if self.params['repo_format'] == 'deb822' else 'deb822'
            self.stale_paths.append(DEFAULT_PATHS['apt'][other])

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, actions=self.actions, **kwargs)

    def _package_manager(self):
        wanted = self.params['package_manager']
        if wanted != 'auto':
            return wanted
        found = detect_package_manager(self.module.get_bin_path)
        if found is None:
            self.module.fail_json(msg='no supported package manager found (looked for apt-get, zypper, dnf and yum); '
                                      'set package_manager explicitly')
        return found

    def run(self, argv, what, environ_update=None):
        env = {'LC_ALL': 'C'}
        if self.manager == 'apt':
            env['DEBIAN_FRONTEND'] = 'noninteractive'
        env.update(environ_update or {})
        rc, out, err = self.module.run_command(argv, environ_update=env)
        if rc != 0:
            self.fail('%s failed (rc=%d): %s' % (what, rc, (err or out or 'no output').strip()),
                      cmd=argv, rc=rc, stdout=out, stderr=err)
        return out

    # -----------------------------------------------------------------------------------------
    # Key

    def key(self):
        """The checked key: ``check_fingerprint``'s dict. Fails before anything is written on a mismatch."""
        try:
            expected = normalize_fingerprint(self.params['key_fingerprint'])
        except PackageRepoError as exc:
            self.fail('key_fingerprint: %s' % exc)
        if self.params['key_content'] is not None:
            data = to_bytes(self.params['key_content'], errors='surrogate_or_strict')
            source = 'key_content'
        else:
            url = self.params['key_url'] or '%s/gpgkey' % self.params['base_url'].rstrip('/')
            data = self._download(url)
            source = url
        try:
            return check_fingerprint(data, expected, source)
        except PackageRepoError as exc:
            self.fail('%s; nothing was written' % exc)

    def _download(self, url):
        response, info = fetch_url(self.module, url, timeout=self.params['timeout'])
        status = info.get('status')
        if response is None or status != 200:
            self.fail('could not download the signing key from %s: HTTP %s %s; set key_url, or give the key in key_content'
                      % (url, status, info.get('msg', '')))
        try:
            return response.read()
        finally:
            response.close()

    # -----------------------------------------------------------------------------------------
    # Files

    def ensure_file(self, path, data, label):
        current = self._read(path)
        if current == data:
            return False
        self._diff(path, current, data, label)
        self.actions.append('wrote %s' % path)
        if not self.module.check_mode:
            try:
                write_atomic(path, data, 0o644)
            except PackageRepoError as exc:
                self.fail(str(exc))
        return True

    def ensure_absent(self, path, label):
        current = self._read(path)
        if current is None:
            return False
        self._diff(path, current, None, label)
        self.actions.append('removed %s' % path)
        if not self.module.check_mode:
            try:
                remove_file(path)
            except PackageRepoError as exc:
                self.fail(str(exc))
        return True

    def _read(self, path):
        try:
            return read_bytes(path)
        except PackageRepoError as exc:
            self.fail(str(exc))

    def _diff(self, path, before, after, label):
        if label == 'key':
            before_text, after_text = describe_keyring(before), describe_keyring(after)
        else:
            before_text = to_native(before or b'', errors='surrogate_or_strict')
            after_text = to_native(after or b'', errors='surrogate_or_strict')
        self.diffs.append(dict(
            before_header=path if before is not None else '%s (absent)' % path,
            after_header=path if after is not None else '%s (absent)' % path,
            before=before_text,
            after=after_text,
        ))

    # -----------------------------------------------------------------------------------------
    # Packages

    def installed(self):
        packages = self.params['packages']
        argv = query_command(self.manager, packages)
        if not self.module.get_bin_path(argv[0]):
            self.fail('%s was not found; is %s really the package manager of this host?' % (argv[0], self.manager))
        # dpkg-query and rpm exit non-zero when a package is not installed; that is an answer, not an error.
        dummy, out, dummy = self.module.run_command(argv, environ_update={'LC_ALL': 'C'})
        return parse_installed(self.manager, packages, out)

    def present(self):
        key = self.key()
        try:
            repo_text = nvidia_repo_file(self.manager, self.params['base_url'], self.params['channel'], machine(),
                                         self.keyring_path, self.params['repo_format'])
        except PackageRepoError as exc:
            self.fail(str(exc))
        repo_changed = self.ensure_file(self.keyring_path, keyring_bytes(self.manager, key['keyring']), 'key')
        repo_changed = self.ensure_file(self.repo_path, repo_text.encode('utf-8'), 'repo') or repo_changed
        for path in self.stale_paths:
            repo_changed = self.ensure_absent(path, 'repo') or repo_changed

        version = self.params['version']
        packages = self.params['packages']
        before = self.installed() if self.params['install_packages'] else {}
        if version == 'latest' and not self.module.check_mode:
            # Only fresh metadata knows whether a newer version exists, so latest always asks.
            to_install = list(packages)
        elif version == 'latest':
            to_install = [name for name in packages if before.get(name) is None]
        else:
            to_install = [name for name in packages if not version_matches(before.get(name), version)]
        install = self.params['install_packages'] and bool(to_install)

        if repo_changed or install:
            # An install needs the repository's metadata, which a fresh image may have cleaned away.
            self.actions.append('refreshed the %s repository' % NVIDIA_REPO_NAME)
            if not self.module.check_mode:
                for argv in refresh_commands(self.manager, self.repo_path, self.keyring_path):
                    self.run(argv, 'refreshing the %s repository' % NVIDIA_REPO_NAME)
        self.changed = repo_changed

        after = dict(before)
        if install:
            specs = ', '.join(package_spec(self.manager, name, version) for name in to_install)
            if self.module.check_mode:
                after.update((name, version) for name in to_install)
                self.changed = True
                self.actions.append('installed %s' % specs)
            else:
                for argv in install_commands(self.manager, to_install, version, before, self.params['allow_downgrade']):
                    self.run(argv, 'installing %s' % specs)
                after = self.installed()
                if after != before:
                    self.changed = True
                    self.actions.append('installed %s' % specs)
                self._check_installed(after, version)
        return dict(key_fingerprint=key['fingerprint'], packages=self._versions(before, after))

    def _check_installed(self, after, version):
        """A package manager that exits 0 without installing the version asked for (a held package) fails the task."""
        if version == 'latest':
            wrong = [name for name in self.params['packages'] if after.get(name) is None]
        else:
            wrong = [name for name in self.params['packages'] if not version_matches(after.get(name), version)]
        if wrong:
            self.fail('after the install, these packages are not at version %s: %s'
                      % (version, ', '.join('%s %s' % (name, after.get(name) or '(not installed)') for name in wrong)))

    def absent(self):
        packages = self.params['packages']
        before = self.installed() if self.params['remove_packages'] else {}
        after = dict(before)
        if self.params['remove_packages']:
            installed = [name for name in packages if before.get(name) is not None]
            if installed:
                self.changed = True
                self.actions.append('removed %s' % ', '.join(installed))
                if self.module.check_mode:
                    after = {name: None for name in packages}
                else:
                    self.run(remove_command(self.manager, installed), 'removing %s' % ', '.join(installed))
                    after = self.installed()
        for path in [self.repo_path] + self.stale_paths:
            self.changed = self.ensure_absent(path, 'repo') or self.changed
        self.changed = self.ensure_absent(self.keyring_path, 'key') or self.changed
        return dict(packages=self._versions(before, after))

    def _versions(self, before, after):
        if not before and not after:
            return {}
        return {name: dict(before=before.get(name), after=after.get(name)) for name in self.params['packages']}


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('key_url', 'key_content')],
        supports_check_mode=True,
    )
    if not module.params['packages'] and module.params['install_packages'] and module.params['state'] == 'present':
        module.fail_json(msg='packages is empty; set install_packages: false to add only the repository')
    task = Task(module)
    if module.params['state'] == 'present':
        result = task.present()
    else:
        result = task.absent()
    result.update(
        changed=task.changed,
        package_manager=task.manager,
        repo_file=task.repo_path,
        keyring=task.keyring_path,
        actions=task.actions,
    )
    if module._diff:
        result['diff'] = task.diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()
