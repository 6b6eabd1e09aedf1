#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: mirror_check
short_description: Check, from the host, that every mirror the inventory names answers
version_added: 0.1.0
description:
  - "Tries each URL in O(targets) from the managed host, with one short HTTP request each, all at once, and fails
    the host when one does not answer, with one line per such mirror naming what it is, the URL, the error and the
    fix, before anything is installed. The collection's C(preflight.yml) calls it with the mirrors an inventory configured (NVIDIA's and
    Docker's package repositories, the registry mirrors, images named on a mirror); an air-gapped site learns which
    mirror a host cannot reach from the first task, not from a failed apt or pull halfway through the run."
  - Changes nothing.
author:
  - ragops (@ragops)
options:
  targets:
    description:
      - What to probe. An empty list probes nothing and succeeds.
    type: list
    elements: dict
    required: true
    suboptions:
      what:
        description: What the URL is, for the message (C(NVIDIA's apt repository mirror)).
        type: str
        required: true
      url:
        description:
          - An C(http://) or C(https://) URL; for O(targets[].kind=image), an image reference instead.
        type: str
        required: true
      kind:
        description:
          - V(file) wants the file itself (HTTP 2xx or 3xx; a HEAD refused with 405 or 501 is asked again with GET).
          - "V(server) wants any HTTP answer: the server is reachable, whatever the path gives."
          - V(registry) requests the Docker registry API C(<url>/v2/) and wants 200, or 401 from a registry that asks
            for a login (dockerd logs in with its own credentials).
          - V(image) probes the registry the image reference names (C(mirror.example.internal:5000/ollama/ollama:0.33.0)),
            like V(registry), over plain HTTP when that registry is in O(insecure_registries). A Docker Hub name has
            no registry to probe and fails as given.
        type: str
        choices: [file, server, registry, image]
        default: file
      fix:
        description: What the user should do when it does not answer; appended to the failure message.
        type: str
  timeout:
    description:
      - Seconds each request may take. The requests run concurrently, so this is about the whole module's time too.
    type: float
    default: 5
  validate_certs:
    description: Whether HTTPS certificates must be trusted by the host (its system store, or O(ca_path)).
    type: bool
    default: true
  ca_path:
    description: A PEM file of CA certificates to trust for HTTPS, for mirrors behind an internal CA.
    type: path
  insecure_registries:
    description:
      - Registries (C(host[:port])) that dockerd reaches over plain HTTP (its C(insecure-registries)), for
        O(targets[].kind=image).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
    description: The module never changes anything; it probes the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
notes:
  - The request leaves from the host with the proxy settings of the module's environment (E(https_proxy), E(no_proxy);
    set them with the C(environment) keyword). apt and dockerd have proxy settings of their own, which are not read.
  - A reachable server that gives the wrong file still passes a V(server) probe; probe a file that must exist (a
    repository's signing key, C(dists/<release>/Release)) with V(file) to catch a wrong path.
seealso:
  - name: Docker registry mirrors
    description: How dockerd pulls Docker Hub images through a mirror (C(registry-mirrors)).
    link: https://docs.docker.com/docker-hub/image-library/mirror/
'''

EXAMPLES = r'''
- name: Check the mirrors before anything is installed
  ragops.gpu_stack.mirror_check:
    targets:
      - what: NVIDIA's apt repository mirror (its signing key)
        url: https://mirror.example.internal/libnvidia-container/gpgkey
        fix: check nvidia_container_toolkit_base_url, or open the way from this host to the mirror
      - what: the registry mirror
        url: http://registry.example.internal:5000
        kind: registry
        fix: check docker_engine_registry_mirrors
    timeout: 3

- name: Probe the registry an image is named on, over HTTP as dockerd does for an insecure registry
  ragops.gpu_stack.mirror_check:
    targets:
      - {what: the Ollama image's registry, url: "registry.example.internal:5000/ollama/ollama:0.33.0", kind: image}
    insecure_registries: [registry.example.internal:5000]
'''

RETURN = r'''
mirrors:
  description: One entry per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    what:
      description: The target's O(targets[].what).
      type: str
    url:
      description: The target's O(targets[].url).
      type: str
    kind:
      description: The target's O(targets[].kind).
      type: str
    probe_url:
      description: The URL requested (C(/v2/) of a registry); null when the target could not be probed as given.
      type: str
      sample: https://registry.example.internal/v2/
    ok:
      description: Whether it answered as its kind requires.
      type: bool
    status:
      description: The HTTP status it answered with; null when no HTTP answer came.
      type: int
      sample: 200
    error:
      description: Why it is not ok (C(connection refused), C(no answer within 5.0s), C(HTTP 404 Not Found)); null when ok.
      type: str
    fix:
      description: The target's O(targets[].fix).
      type: str
unreachable:
  description: The failure messages, one per target that did not answer (empty when all did).
  returned: always
  type: list
  elements: str
  sample: ["cannot reach the registry mirror at http://registry.example.internal:5000/v2/ (connection refused): check docker_engine_registry_mirrors"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils.mirror import KINDS, check_all, failure_message


def main():
    module = AnsibleModule(
        argument_spec=dict(
            targets=dict(type='list', elements='dict', required=True, options=dict(
                what=dict(type='str', required=True),
                url=dict(type='str', required=True),
                kind=dict(type='str', choices=list(KINDS), default='file'),
                fix=dict(type='str'),
            )),
            timeout=dict(type='float', default=5),
            validate_certs=dict(type='bool', default=True),
            ca_path=dict(type='path'),
            insecure_registries=dict(type='list', elements='str', default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    results = check_all(params['targets'], timeout=params['timeout'], validate_certs=params['validate_certs'],
                        ca_path=params['ca_path'], insecure_registries=params['insecure_registries'])
    unreachable = [failure_message(result) for result in results if not result['ok']]
    if unreachable:
        module.fail_json(msg='; '.join(unreachable), mirrors=results, unreachable=unreachable)
    module.exit_json(changed=False, mirrors=results, unreachable=[])


if __name__ == '__main__':
    main()
