# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An Ollama model store on disk ($OLLAMA_MODELS): manifests, the blobs they name, registering models.

The layout (Ollama v0.33): ``manifests/<host>/<namespace>/<model>/<tag>`` holds a Docker v2
manifest whose ``config`` and ``layers`` name blobs by digest; each blob is
``blobs/sha256-<64 hex>``. Ollama lists a manifest on the next ``/api/tags`` call, without a
restart, and never checks a blob it did not download itself: whatever registers a manifest must
have checked every blob first. ``/api/tags`` reports the sha256 of the manifest file's bytes as
the model's digest, so a manifest is written byte for byte as it was read elsewhere.

Standard library only: the filter plugins run this on the controller too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from ansible_collections.ragops.gpu_stack.plugins.module_utils.daemon_json import DaemonJsonError, write_atomic
from ansible_collections.ragops.gpu_stack.plugins.module_utils.model_name import InvalidModelName, parse

BLOBS_DIR = 'blobs'
MANIFESTS_DIR = 'manifests'

# Blobs are read in chunks of this size while hashed: memory stays flat for a 40 GB model layer.
HASH_CHUNK = 1024 * 1024

_DIGEST = re.compile(r'^sha256:([0-9a-f]{64})$')


class ModelStoreError(Exception):
    """The store or a manifest is not what Ollama would accept; the message names the problem."""


def blob_file_name(digest):
    """``sha256:<hex>`` -> ``sha256-<hex>``, the blob's file name; ModelStoreError for any other digest."""
    match = _DIGEST.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise ModelStoreError('%r is not a blob digest: Ollama names blobs sha256:<64 lowercase hex>' % (digest,))
    return 'sha256-' + match.group(1)


def blob_relpath(digest):
    """The blob's path relative to the model store (``blobs/sha256-<hex>``)."""
    return BLOBS_DIR + '/' + blob_file_name(digest)


def check_store(path):
    """Refuse a path that is not an Ollama model store, before anything is read or written there.

    A store is a directory with a ``blobs`` directory: Ollama creates it when it starts (its
    start-up prune walks it), so a directory without one is a wrong path, or a store that no
    Ollama has used yet.
    """
    if not os.path.isdir(path):
        what = 'does not exist' if not os.path.lexists(path) else 'is not a directory'
        raise ModelStoreError('%s %s: give the model store of the Ollama server ($OLLAMA_MODELS, '
                              'e.g. /var/lib/docker/volumes/ollama/_data/models for the ollama role\'s container)'
                              % (path, what))
    if not os.path.isdir(os.path.join(path, BLOBS_DIR)):
        raise ModelStoreError('%s is not an Ollama model store: it has no %s/ directory. Give $OLLAMA_MODELS '
                              '(the directory holding blobs/ and manifests/), and start Ollama once so that it '
                              'creates them' % (path, BLOBS_DIR))


# ------------------------------------------------------------------------------- manifests

def manifest_bytes(manifest):
    """The manifest as the bytes to write and hash.

    Text (or bytes) is kept exactly as given: its sha256 is the digest Ollama will list. A dict
    (what some templating makes of JSON text) is written as Go's encoding/json writes it,
    which is how Ollama wrote the manifests it pulled: compact, key order kept, ``<>&`` escaped.
    """
    if isinstance(manifest, bytes):
        return manifest
    if isinstance(manifest, str):
        return manifest.encode('utf-8')
    if isinstance(manifest, dict):
        text = json.dumps(manifest, separators=(',', ':'), ensure_ascii=False)
        return text.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026').encode('utf-8')
    raise ModelStoreError('a manifest is JSON text or a dict, not %s' % type(manifest).__name__)


def parse_manifest(manifest):
    """``(raw bytes, manifest dict)`` for a manifest given as text, bytes or dict; ModelStoreError
    naming what is wrong when it is not a manifest whose blobs Ollama could find."""
    raw = manifest_bytes(manifest)
    try:
        data = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelStoreError('the manifest is not JSON: %s' % exc) from None
    if not isinstance(data, dict):
        raise ModelStoreError('the manifest is not a JSON object')
    if not isinstance(data.get('config'), dict):
        raise ModelStoreError('the manifest has no "config" object (Ollama leaves such a model out of /api/tags)')
    layers = data.get('layers')
    if not isinstance(layers, list) or not layers:
        raise ModelStoreError('the manifest has no "layers" list')
    for where, entry in [('config', data['config'])] + [('layers[%d]' % i, layer) for i, layer in enumerate(layers)]:
        if not isinstance(entry, dict):
            raise ModelStoreError('the manifest\'s %s is not an object' % where)
        try:
            blob_file_name(entry.get('digest'))
        except ModelStoreError as exc:
            raise ModelStoreError('the manifest\'s %s: %s' % (where, exc)) from None
        size = entry.get('size')
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ModelStoreError('the manifest\'s %s has no size in bytes (got %r)' % (where, size))
    return raw, data


def manifest_blobs(manifest):
    """Every blob the manifest names, config first then the layers, each once:
    ``[{'digest': 'sha256:<hex>', 'path': 'blobs/sha256-<hex>', 'size': <bytes>}]``."""
    data = parse_manifest(manifest)[1]
    blobs, seen = [], set()
    for entry in [data['config']] + list(data['layers']):
        if entry['digest'] in seen:
            continue
        seen.add(entry['digest'])
        blobs.append({'digest': entry['digest'], 'path': blob_relpath(entry['digest']), 'size': entry['size']})
    return blobs


def manifest_size(data):
    """What /api/tags reports as the model's size: its blobs' sizes, each once."""
    return sum(blob['size'] for blob in manifest_blobs(data))


def manifest_digest(raw):
    """What /api/tags reports as the model's digest: sha256 of the manifest file's bytes (hex)."""
    return hashlib.sha256(raw).hexdigest()


def manifest_file(store, name):
    """The manifest file of ``name`` (a ModelName) in ``store``.

    Installed models match case-insensitively, as Ollama looks them up: an existing
    ``manifests/.../Llama3.2/latest`` is the file for ``llama3.2``, so registering the model
    replaces it instead of adding a second entry Ollama would list twice.
    """
    exact = os.path.join(store, name.manifest_path)
    if os.path.isfile(exact):
        return exact
    directory = os.path.join(store, MANIFESTS_DIR)
    for part in (name.host, name.namespace, name.model, name.tag):
        try:
            entries = os.listdir(directory)
        except OSError:
            return exact
        match = [entry for entry in entries if entry.lower() == part.lower()]
        if not match:
            return exact
        directory = os.path.join(directory, match[0])
    return directory if os.path.isfile(directory) else exact


def read_manifest_file(path):
    """The bytes of a registered manifest, or None when there is none."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ModelStoreError('%s cannot be read: %s' % (path, exc.strerror)) from None


# ------------------------------------------------------------------------------- blobs

def sha256_file(path):
    """The sha256 (hex) of a file, read in HASH_CHUNK pieces."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def blob_problem(store, blob, verify=True):
    """Why the blob ``{'digest', 'size'}`` in ``store`` cannot be registered, or None when it can.

    The size (from the manifest) is compared first, so a truncated blob costs one stat; only a
    blob of the right size is hashed, and only with ``verify``. Returns ``(kind, text)`` with
    kind ``missing``, ``size`` or ``sha256``.
    """
    path = os.path.join(store, blob_relpath(blob['digest']))
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return 'missing', 'missing'
    except OSError as exc:
        return 'missing', 'cannot be read: %s' % exc.strerror
    if stat.st_size != blob['size']:
        return 'size', '%d bytes, the manifest says %d' % (stat.st_size, blob['size'])
    if not verify:
        return None
    try:
        actual = sha256_file(path)
    except OSError as exc:
        return 'missing', 'cannot be read: %s' % exc.strerror
    if 'sha256:' + actual != blob['digest']:
        return 'sha256', 'its content has sha256 %s' % actual
    return None


def remove_blob(store, digest):
    """Remove a blob whose bytes are not its digest, so that the next copy replaces it; True when removed."""
    try:
        os.unlink(os.path.join(store, blob_relpath(digest)))
        return True
    except FileNotFoundError:
        return False


def freshen_blobs(store, blobs):
    """Give the blobs a current mtime: Ollama's start-up prune deletes unreferenced blobs older than
    an hour, and until the manifest is written these blobs are unreferenced."""
    for blob in blobs:
        os.utime(os.path.join(store, blob_relpath(blob['digest'])))


def register(store, path, raw, blobs):
    """Write the manifest ``raw`` at ``path`` (inside ``store``) atomically, after freshening its blobs.

    Readers (Ollama's /api/tags) see the old manifest or the new one, never half of one; the
    temporary file's name starts with a dot, which no valid tag does, so Ollama never lists it.
    """
    try:
        freshen_blobs(store, blobs)
        write_atomic(path, raw.decode('utf-8'), mode=0o644)
    except DaemonJsonError as exc:
        raise ModelStoreError('%s %s' % (exc.path, exc.message)) from None
    except OSError as exc:
        raise ModelStoreError('%s cannot be written: %s' % (path, exc.strerror or exc)) from None


# ------------------------------------------------------------------------------- importing (ollama_model_import)

def plan_imports(models):
    """The module's ``models`` (``[{name, manifest}]``) parsed and checked before anything is read from
    the store: ``[{name: ModelName, raw: bytes, blobs}]``; ModelStoreError names the entry and the problem."""
    planned, seen = [], {}
    for index, entry in enumerate(models):
        where = 'models[%d]' % index
        try:
            name = parse(entry['name'])
        except InvalidModelName as exc:
            raise ModelStoreError('%s: %s' % (where, exc)) from None
        if name.key in seen:
            raise ModelStoreError('%s: %s is models[%d] again; give each model once'
                                  % (where, name.shortest, seen[name.key]))
        seen[name.key] = index
        try:
            raw, data = parse_manifest(entry['manifest'])
        except ModelStoreError as exc:
            raise ModelStoreError('%s (%s): %s' % (where, name.shortest, exc)) from None
        planned.append({'name': name, 'raw': raw, 'blobs': manifest_blobs(data)})
    return planned


def import_models(store, planned, check_mode):
    """Register each planned model whose registered manifest differs; returns (per-model results, removed blobs)."""
    results, removed = [], []
    for item in planned:
        path = manifest_file(store, item['name'])
        current = read_manifest_file(path)
        result = {
            'name': item['name'].shortest,
            'digest': manifest_digest(item['raw']),
            'previous_digest': manifest_digest(current) if current is not None else None,
            'size': sum(blob['size'] for blob in item['blobs']),
            'manifest': item['name'].manifest_path,
            'bad_blobs': [],
        }
        results.append(result)
        if current == item['raw']:
            # The converged case: same bytes, same digest; the blobs were checked when it was registered.
            result['action'] = 'unchanged'
            continue
        for blob in item['blobs']:
            problem = blob_problem(store, blob, verify=not check_mode)
            if problem is None:
                continue
            kind, text = problem
            if kind in ('size', 'sha256') and not check_mode:
                # Named by its digest but holding other bytes: wrong for every manifest. Removing it
                # lets the next copy (which compares checksums) put the right bytes there.
                if remove_blob(store, blob['digest']):
                    removed.append(blob['path'])
                    text += ' (removed)'
            result['bad_blobs'].append('%s: %s' % (blob['digest'], text))
        if check_mode:
            result['action'] = 'would_update' if current is not None else 'would_register'
        elif result['bad_blobs']:
            result['action'] = 'failed'
        else:
            register(store, path, item['raw'], item['blobs'])
            result['action'] = 'updated' if current is not None else 'registered'
    return results, removed


def registered_models(results, key):
    """(name, digest) of each model of ``results`` that has a manifest ``before`` or ``after`` the import."""
    models = []
    for r in results:
        digest = r['previous_digest'] if key == 'before' or r['action'] == 'failed' else r['digest']
        if digest is not None:
            models.append({'name': r['name'], 'digest': digest})
    return models
