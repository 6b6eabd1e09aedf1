#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ollama_model_import
short_description: Register Ollama models from blobs already copied into a host's model store
version_added: 0.1.0
author:
  - ragops (@ragops)
description:
  - Registers models in an Ollama model store (C($OLLAMA_MODELS)) without the internet. The
    blobs a manifest names are already in C(<path>/blobs/sha256-<hex>) (copied there, for example
    by M(ansible.builtin.copy) from a cache on the controller) and the manifest is given as content.
    This is the last step of the fleet seeding of the C(ragops.gpu_stack.ollama_models) role.
  - Ollama trusts the blobs of a manifest in its store and never checks them again, so every blob
    is checked before the manifest is written; its size against the manifest first, then its
    sha256, read in 1 MiB pieces. A missing, truncated or corrupt blob fails the task with one
    line per bad blob, and that model is not registered. A blob whose bytes do not match its
    digest (wrong size or wrong sha256) is removed, so that the next copy replaces it.
  - The manifest is then written atomically (a temporary file in the same directory, fsync,
    rename), after the blobs' modification times are made current, because Ollama's start-up
    prune deletes unreferenced blobs older than an hour. Since Ollama 0.30 C(/api/tags) reads the
    manifests at every call, so the model is listed at once, without a restart.
  - A model whose registered manifest already has the same bytes is left as it is, and none of its
    blobs is read; the digest C(/api/tags) shows is the sha256 of those bytes.
options:
  path:
    description:
      - The model store on the host, the directory holding C(blobs/) and C(manifests/).
      - For the ollama role's container, C(/var/lib/docker/volumes/<volume>/_data/models); for a
        native Ollama, C(~/.ollama/models) of the user it runs as (or its C(OLLAMA_MODELS)).
      - A path that is not a directory, or has no C(blobs/) directory, is refused before anything
        is read.
    type: path
    required: true
  models:
    description:
      - The models to register.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The model's name as Ollama takes it (C(nomic-embed-text), C(llama3.2:3b),
            C(hf.co/org/repo:Q4_K_M)); it picks the manifest's path, C(manifests/<host>/<namespace>/<model>/<tag>).
        type: str
        required: true
      manifest:
        description:
          - The manifest, as the JSON text of the manifest file (its bytes are written unchanged,
            so the model gets the same digest as where the manifest came from), or as a dict
            (written compact, as Ollama writes the manifests it pulls).
        type: raw
        required: true
  api_url:
    description:
      - The Ollama API of the server using O(path). When set, the module asks C(GET /api/tags)
        after registering and fails unless every model is listed with the manifest's digest
        (a store that is not that server's, or a config blob Ollama cannot read).
      - Unset, no request is made.
    type: str
  timeout:
    description: Seconds to wait for the answer of O(api_url).
    type: int
    default: 30
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports which models would be registered, from the manifests' bytes and the blobs' sizes;
        nothing is written, removed or hashed.
  diff_mode:
    support: full
    details:
      - The registered models (name, digest) before and after.
  platform:
    support: full
    platforms: posix
requirements:
  - The C(requests) Python library on the host, only with O(api_url).
notes:
  - Run it as the owner of the model store (root for a Docker volume, C(become=true)).
  - It registers models only; removing models is M(ragops.gpu_stack.ollama_model)'s C(state=absent).
seealso:
  - module: ragops.gpu_stack.ollama_model
  - module: ansible.builtin.copy
"""

EXAMPLES = r"""
- name: Copy the blobs of nomic-embed-text from the controller's cache (each transfer checksummed)
  ansible.builtin.copy:
    src: "{{ cache }}/{{ item.path }}"
    dest: /var/lib/docker/volumes/ollama/_data/models/{{ item.path }}
    mode: "0644"
  loop: "{{ lookup('ansible.builtin.file', cache ~ '/' ~ ('nomic-embed-text' | ragops.gpu_stack.ollama_manifest_path), rstrip=false)
            | ragops.gpu_stack.ollama_manifest_blobs }}"
  become: true

- name: Register it (every blob checked against its sha256 first)
  ragops.gpu_stack.ollama_model_import:
    path: /var/lib/docker/volumes/ollama/_data/models
    models:
      - name: nomic-embed-text
        manifest: "{{ lookup('ansible.builtin.file', cache ~ '/' ~ ('nomic-embed-text' | ragops.gpu_stack.ollama_manifest_path), rstrip=false) }}"
    api_url: http://127.0.0.1:11434
  become: true
"""

RETURN = r"""
models:
  description: One entry per model in O(models), in their order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The model's name as Ollama lists it.
      type: str
      sample: nomic-embed-text:latest
    action:
      description:
        - V(registered) (it was not there), V(updated) (another manifest was), V(unchanged);
          in check mode V(would_register) or V(would_update); V(failed) when a blob is bad.
      type: str
      sample: registered
    digest:
      description: The sha256 of the manifest's bytes, the digest C(/api/tags) lists.
      type: str
      sample: 0a109f422b47e3a30ba2b10eca18548e944e8a23073ee3f3e947efcf3c45e59f
    previous_digest:
      description: The digest of the manifest registered before, V(null) when there was none.
      type: str
    size:
      description: The model's size in bytes (its blobs together), as C(/api/tags) reports it.
      type: int
      sample: 274302450
    manifest:
      description: The manifest file, relative to O(path).
      type: str
      sample: manifests/registry.ollama.ai/library/nomic-embed-text/latest
    bad_blobs:
      description:
        - "The blobs that stop the model from being registered, each C(<digest>: <why>); in check mode
          from their sizes only."
      type: list
      elements: str
      sample: ["sha256:970aa7...: 1048576 bytes, the manifest says 274290656 (removed)"]
removed_blobs:
  description: Blobs removed because their bytes did not match their digest.
  returned: always
  type: list
  elements: str
  sample: ["blobs/sha256-970aa74c0a90ef7482477cf803618e776e173c007bf957f635f1015bfcfef0e6"]
diff:
  description: The registered models (name, digest) of O(models) before and after.
  returned: in diff mode
  type: dict
  sample: {"before": {"models": []}, "after": {"models": [{"name": "nomic-embed-text:latest", "digest": "0a109f..."}]}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils import model_store
from ansible_collections.ragops.gpu_stack.plugins.module_utils.model_name import InvalidModelName, parse
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_api import OllamaClient, OllamaError, require_requests


def argument_spec():
    return dict(
        path=dict(type='path', required=True),
        models=dict(type='list', elements='dict', required=True, options=dict(
            name=dict(type='str', required=True),
            manifest=dict(type='raw', required=True),
        )),
        api_url=dict(type='str'),
        timeout=dict(type='int', default=30),
    )


def confirm_listed(module, results):
    """Fail unless GET /api/tags lists every model with the manifest's digest."""
    client = OllamaClient(module.params['api_url'], timeout=module.params['timeout'])
    try:
        tags = client.tags()
    except OllamaError as exc:
        module.fail_json(msg='the models were registered in %s, but GET /api/tags failed: %s. Is Ollama running, '
                             'and is api_url its address?' % (module.params['path'], exc),
                         changed=any(r['action'] in ('registered', 'updated') for r in results), models=results)
    finally:
        client.close()
    listed = {}
    for model in tags.get('models') or []:
        try:
            listed[parse(model.get('name', '')).key] = model.get('digest')
        except InvalidModelName:
            continue
    wrong = []
    for result in results:
        digest = listed.get(parse(result['name']).key)
        if digest != result['digest']:
            wrong.append('%s (listed with digest %s, the manifest\'s is %s)' % (result['name'], digest, result['digest'])
                         if digest else '%s (not listed)' % result['name'])
    if wrong:
        module.fail_json(msg='Ollama at %s does not list %s after the import: is %s the model store of that server '
                             '(its OLLAMA_MODELS), and can it read the config blob?'
                             % (module.params['api_url'], ', '.join(wrong), module.params['path']),
                         changed=any(r['action'] in ('registered', 'updated') for r in results), models=results)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params['api_url']:
        require_requests(module)
    store = module.params['path']
    try:
        planned = model_store.plan_imports(module.params['models'])
        model_store.check_store(store)
        results, removed = model_store.import_models(store, planned, module.check_mode)
    except model_store.ModelStoreError as exc:
        module.fail_json(msg=str(exc))

    changed = any(r['action'] not in ('unchanged', 'failed') for r in results) or bool(removed)
    result = {'changed': changed, 'models': results, 'removed_blobs': removed}
    if module._diff:
        # After: what is registered once the task is done (or would be, in check mode); a model
        # that failed keeps what it had.
        result['diff'] = {
            'before': {'models': model_store.registered_models(results, 'before')},
            'after': {'models': model_store.registered_models(results, 'after')},
        }
    failed = [r for r in results if r['action'] == 'failed']
    if failed:
        module.fail_json(msg='not registered, because of bad blobs in %s: %s. Copy the blobs again '
                             '(the removed ones are gone, so the next copy replaces them) and rerun'
                             % (store, '; '.join('%s: %s' % (r['name'], ', '.join(r['bad_blobs'])) for r in failed)),
                         **result)
    if module.params['api_url'] and not module.check_mode:
        confirm_listed(module, results)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
