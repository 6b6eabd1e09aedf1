#!/usr/bin/env bash
# ansible-test sanity on this checkout. ansible-test wants the collection at a path ending
# in ansible_collections/<namespace>/<name>, so the files git would commit (tracked and
# untracked-but-not-ignored) are mirrored there first; its per-test venvs under
# tests/output are kept between runs, which makes a warm run much faster.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Not under .cache: ansible-test skips every target of a content root with a hidden path part.
dest="$repo/tests/output/sanity-mirror/ansible_collections/ragops/gpu_stack"
mkdir -p "$dest"
find "$dest" -mindepth 1 -maxdepth 1 ! -name tests ! -name .git -exec rm -rf {} +
[ -d "$dest/tests" ] && find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
cd "$repo"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -xf - -C "$dest"
cd "$dest"
# A repository of its own: inside this checkout's work tree ansible-test would otherwise ask
# the outer git, which ignores tests/output, and find no files at all.
[ -d .git ] || git init -q .
exec "$repo/.venv/bin/ansible-test" sanity --venv --python 3.11 --color no "$@"
