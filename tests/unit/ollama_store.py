# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real Ollama model stores for the model store tests: the Ollama double pulls models into a
store as Ollama lays it out, and the tests read, copy and damage its files."""

from __future__ import annotations

import shutil
from pathlib import Path

from ansible_collections.ragops.gpu_stack.tests.unit.world.conftest import spawn_double

# Small models of the double's catalog (a few hundred KB each).
MODELS = ('all-minilm', 'nomic-embed-text')


def pulled_store(directory: Path, models=MODELS) -> Path:
    """A model store at ``directory/models`` holding ``models``, pulled by a double that is stopped again."""
    store = directory / 'models'
    double = spawn_double(store, directory / 'double.log')
    try:
        for model in models:
            double.pull(model)
    finally:
        double.stop()
    return store


def empty_store(directory: Path) -> Path:
    """A model store as a fresh Ollama leaves it: blobs/ and manifests/, nothing in them."""
    (directory / 'blobs').mkdir(parents=True)
    (directory / 'manifests').mkdir()
    return directory


def copy_blobs(source: Path, dest: Path, blobs) -> None:
    """What the seed's copy step does: each blob of a manifest to the same path in another store."""
    for blob in blobs:
        shutil.copyfile(source / blob['path'], dest / blob['path'])


def manifest_text(store: Path, name_path: str) -> str:
    return (store / name_path).read_text(encoding='utf-8')
