#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ollama_model
short_description: Pull, update, remove and preload Ollama models, digest-aware, with resumable pulls and progress
version_added: 0.1.0
author:
  - ragops (@ragops)
description:
  - Manages the models of one Ollama server through its REST API at O(api_url), so it works for the container of
    the C(ragops.gpu_stack.ollama) role and for a native Ollama alike.
  - Names are normalised as Ollama normalises them (default registry C(registry.ollama.ai), namespace C(library),
    tag C(latest)) and matched case-insensitively against the installed models, so V(llama3.2), V(llama3.2:latest)
    and V(LLaMA3.2) are one model. An invalid name fails before any request is sent.
  - A model that is installed and asked to be V(present) costs one C(GET /api/tags) and no request to the registry.
    Ollama's C(/api/pull) always contacts the registry, even for a model it has, and its stream looks the same
    either way; so V(latest) compares the model's digest in C(/api/tags) before and after the pull and reports
    C(changed) only when it moved. Only new blobs cross the network.
  - A pull interrupted by a dropped connection or a stall (no progress for O(stall_timeout) seconds) is issued again,
    up to O(retries) times with a growing pause (1 s, 2 s, 4 s, ... at most 30 s); Ollama resumes the partial
    download. O(timeout) bounds the whole task and its error says how far each layer got.
  - While pulling, O(progress_file) is rewritten with one line per layer (percent, bytes, rate), for the action
    plugin of the same name to show on the controller.
  - Errors name the model and the fix, and leave the installed models and their digests as they were, for an unknown
    model or tag, a registry Ollama cannot reach, a model that needs a newer Ollama (with the running server's version
    and the variable to raise, O(image_variable)), a full disk, Ollama not answering at O(api_url).
  - With O(preload) the model is loaded after the pull and C(/api/ps) says where it sits (C(size_vram) against
    C(size)); with O(expect_gpu) a model loaded entirely on the CPU is a warning that names the likely causes.
options:
  name:
    description:
      - One model, C([host/][namespace/]model[:tag]), for example V(llama3.2), V(llama3.2:1b),
        V(mattw/pygmalion), V(hf.co/org/repo:Q4_K_M) or V(registry.example.com:5000/team/model:v1).
      - Mutually exclusive with O(models); one of the two is required.
    type: str
  models:
    description:
      - Several models in one task, which asks once what is installed. Each element is a name or a dict with
        C(name) and optionally C(state), C(preload) and C(keep_alive), which default to O(state), O(preload) and
        O(keep_alive).
      - Two elements that name one model (V(llama3) and V(LLAMA3:latest)) are refused.
      - Mutually exclusive with O(name).
    type: list
    elements: raw
  state:
    description:
      - V(present) pulls a model only when it is not installed.
      - V(latest) pulls it every time (which asks the registry) and reports a change only when its digest changed.
      - V(absent) removes it (Ollama keeps the blobs other models use); a model already absent is no change.
      - In the list form, the default of each element's C(state).
    type: str
    choices: [present, latest, absent]
    default: present
  prune:
    description:
      - Remove every installed model that O(name) or O(models) does not name.
    type: bool
    default: false
  preload:
    description:
      - Load the model after the pull (C(POST /api/generate) with no prompt, or C(POST /api/embed) with an empty
        input for an embedding-only model), so the first request does not wait for the load. A model already loaded
        (with the installed digest) is not loaded again and is no change.
      - In the list form, the default of each element's C(preload).
    type: bool
    default: false
  keep_alive:
    description:
      - How long a preloaded model stays in memory, as Ollama reads it - seconds (V(-1) = until the server stops) or a
        Go duration (V(10m), V(24h)). Unset, the server's default (C(OLLAMA_KEEP_ALIVE), 5 minutes).
      - In the list form, the default of each element's C(keep_alive).
    type: str
  api_url:
    description:
      - The address of the Ollama API.
    type: str
    default: http://127.0.0.1:11434
  insecure:
    description:
      - Allow pulls from a registry over plain HTTP or with an unverified certificate (Ollama's C(insecure)).
    type: bool
    default: false
  timeout:
    description:
      - Seconds the whole task may take, pulls included. When it runs out during a pull the task fails with how far
        each layer got; the partial download stays and the next run resumes it.
    type: int
    default: 3600
  stall_timeout:
    description:
      - Seconds without a line from the pull stream after which the pull counts as stalled and is issued again.
      - Ollama sends nothing while it checks the sha256 of the blobs it has just downloaded (about a second per GB
        on a fast disk), so for models of tens of GB give more than that check takes.
    type: int
    default: 60
  retries:
    description:
      - How many times a pull is issued again after a dropped connection or a stall.
    type: int
    default: 5
  expect_gpu:
    description:
      - The host's facts say it has a GPU Ollama should use; a preloaded model with C(size_vram) 0 is then a warning.
    type: bool
    default: false
  image_variable:
    description:
      - The variable a user raises when a model needs a newer Ollama; the error for that case names it.
    type: str
    default: ollama_image
  progress_file:
    description:
      - >-
        A path on the managed host that the module rewrites atomically, at most once a second, while it pulls, with
        JSON C({"updated": <epoch seconds>, "lines": [...]}), one line per layer in flight or last finished, for
        example C(llama3.2:latest: pulling dde5aa3fc5ff 41% (820.0 MB of 2.0 GB, 35.2 MB/s)).
      - Unset, no file is written.
    type: path
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be pulled, removed or loaded and sends nothing but C(GET /api/tags) (and C(GET /api/ps)
        with O(preload)). Whether the registry has a newer digest is known only by pulling, so in check mode an
        installed model with O(state=latest) is reported as RV(models[].action=would_update), a change.
  diff_mode:
    support: full
    details:
      - The installed models (name, digest, size) before and after; in check mode the after is predicted, with a
        null digest for a model that would be pulled.
  platform:
    support: N/A
    platforms: posix
requirements:
  - requests
  - An Ollama server at O(api_url) (the module talks HTTP only; it needs no Ollama binary on the host).
notes:
  - Ollama pulls with its own network settings; a proxy for the registry is set on the server (HTTPS_PROXY in its
    environment, the C(ollama_env) of the C(ragops.gpu_stack.ollama) role), not here.
  - A preloaded model that is already loaded is left as it is, its keep_alive timer included.
  - The module reaches O(api_url) directly; C(HTTP_PROXY)-style variables of the task's environment are not used for
    it, so a proxy meant for the internet does not intercept a local Ollama.
seealso:
  - name: Ollama API
    description: The endpoints this module uses (C(/api/tags), C(/api/pull), C(/api/delete), C(/api/ps)).
    link: https://github.com/ollama/ollama/blob/main/docs/api.md
"""

EXAMPLES = r"""
- name: The embedding model a RAG host needs, kept in memory
  ragops.gpu_stack.ollama_model:
    name: nomic-embed-text
    preload: true
    keep_alive: "-1"
    expect_gpu: true

- name: Models of a host, with per-model state, and nothing else installed
  ragops.gpu_stack.ollama_model:
    models:
      - llama3.2
      - name: qwen2.5:0.5b
        state: latest
      - name: hf.co/org/repo:Q4_K_M
      - name: llama2
        state: absent
    prune: true
    timeout: 7200
    progress_file: /tmp/ollama-pull-progress.json
  register: models

- name: What a run would pull or remove
  ragops.gpu_stack.ollama_model:
    models: "{{ ollama_models_list }}"
    prune: true
  check_mode: true
  diff: true
"""

RETURN = r"""
models:
  description: One entry per requested model, in the given order, describing it after the task (predicted in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The name as Ollama lists it (V(llama3.2:latest)).
      type: str
    requested:
      description: The name as given.
      type: str
    state:
      description: The state asked for.
      type: str
    action:
      description:
        - V(pulled) (was not installed), V(updated) (a V(latest) pull changed the digest), V(unchanged) (a V(latest)
          pull found the same digest), V(present) (installed, nothing sent), V(removed), V(absent) (was not installed);
          in check mode V(would_pull), V(would_update), V(would_remove).
      type: str
    digest:
      description: The sha256 of the model's manifest, as C(/api/tags) gives it; V(null) when not installed or not yet known.
      type: str
    size:
      description: Bytes of all its blobs.
      type: int
    modified_at:
      description: When its manifest was written, as C(/api/tags) gives it.
      type: str
    loaded:
      description:
        - Its C(/api/ps) entry (C(name), C(size), C(size_vram), C(processor) as C(ollama ps) words it, C(digest),
          C(expires_at), C(context_length)); V(null) when not loaded, or when no model asks for O(preload) (then
          C(/api/ps) is not read).
      type: dict
      sample: {"name": "nomic-embed-text:latest", "size": 312000000, "size_vram": 312000000, "processor": "100% GPU",
               "digest": "0a109f...", "expires_at": "2318-01-01T00:00:00Z", "context_length": 2048}
    preload:
      description: V(loaded), V(already_loaded), V(would_load) in check mode, or V(null) without O(preload).
      type: str
    attempts:
      description: The pull requests sent for it (more than 1 after a drop or a stall); 0 when it was not pulled.
      type: int
  sample:
    - {"name": "llama3.2:latest", "requested": "llama3.2", "state": "present", "action": "pulled",
       "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72", "size": 2019393189,
       "modified_at": "2026-12-01T10:00:00.1234Z", "loaded": null, "preload": null, "attempts": 1}
removed:
  description: The installed models O(prune) removed (would remove, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["llama2:latest"]
installed:
  description: The installed models after the task (predicted in check mode), sorted by name.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "llama3.2:latest", "digest": "a80c4f...", "size": 2019393189, "modified_at": "2026-12-01T10:00:00Z"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_api import OllamaClient, require_requests
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_models import (
    MUTUALLY_EXCLUSIVE,
    REQUIRED_ONE_OF,
    InputError,
    ModelTask,
    TaskFailed,
    argument_spec,
    desired_models,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), mutually_exclusive=MUTUALLY_EXCLUSIVE,
                           required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    try:
        desired = desired_models(module.params)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    require_requests(module)

    client = OllamaClient(module.params['api_url'])
    task = ModelTask(module.params, client, check_mode=module.check_mode, diff_mode=module._diff, warn=module.warn)
    try:
        result = task.run(desired)
    except TaskFailed as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    finally:
        client.close()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
