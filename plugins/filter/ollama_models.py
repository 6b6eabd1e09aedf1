# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for an Ollama model store laid out on the controller (the fleet seed's cache).

The documentation of each filter is in the YAML file of its name beside this one. Names are
read by model_name and manifests by model_store, the same code the modules use on the hosts.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.ragops.gpu_stack.plugins.module_utils import model_store
from ansible_collections.ragops.gpu_stack.plugins.module_utils.model_name import InvalidModelName, parse


def ollama_manifest_path(name):
    """``llama3.2`` -> ``manifests/registry.ollama.ai/library/llama3.2/latest``."""
    try:
        return parse(name).manifest_path
    except InvalidModelName as exc:
        raise AnsibleFilterError('ollama_manifest_path: %s' % exc) from None


def ollama_manifest_blobs(manifest):
    """The blobs a manifest (JSON text or dict) names: ``[{digest, path, size}]``, config first."""
    try:
        return model_store.manifest_blobs(manifest)
    except model_store.ModelStoreError as exc:
        raise AnsibleFilterError('ollama_manifest_blobs: %s' % exc) from None


def ollama_missing_blobs(blobs, store):
    """The blobs of ``blobs`` (from ollama_manifest_blobs) that the model store ``store`` on the
    controller lacks or holds with another size, such as a blob an interrupted fetch left short."""
    if not isinstance(store, str) or not store:
        raise AnsibleFilterError('ollama_missing_blobs: the store is a directory path, not %r' % (store,))
    missing = []
    for blob in blobs or []:
        if not isinstance(blob, dict) or not {'digest', 'path', 'size'} <= set(blob):
            raise AnsibleFilterError('ollama_missing_blobs: %r is not a blob of ollama_manifest_blobs' % (blob,))
        try:
            # The hosts' own check of a blob before it is registered, without the hash.
            problem = model_store.blob_problem(store, blob, verify=False)
        except model_store.ModelStoreError as exc:
            raise AnsibleFilterError('ollama_missing_blobs: %s' % exc) from None
        if problem is not None:
            missing.append(blob)
    return missing


class FilterModule:  # pylint: disable=too-few-public-methods
    """ragops.gpu_stack's model store filters."""

    def filters(self):
        return {
            'ollama_manifest_path': ollama_manifest_path,
            'ollama_manifest_blobs': ollama_manifest_blobs,
            'ollama_missing_blobs': ollama_missing_blobs,
        }
