#!/usr/bin/env bash
# Builds the collection tarball, installs it into a scratch collections path, and checks
# that the installed copy behaves like the checkout: every module's documentation renders
# and site.yml resolves ragops.gpu_stack.* from the installed copy.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin="$repo/.venv/bin"
export ANSIBLE_NOCOLOR=1
"$bin/ansible-galaxy" collection build "$repo" --output-path "$work/dist" --force >/dev/null
tarball=$(ls "$work"/dist/ragops-gpu_stack-*.tar.gz)
echo "built $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"
printf '[defaults]\ncollections_path = %s\n' "$work/collections:$repo/.cache/vendor" >"$work/ansible.cfg"
export ANSIBLE_CONFIG="$work/ansible.cfg"
"$bin/ansible-galaxy" collection install "$tarball" -p "$work/collections" --force >/dev/null
installed="$work/collections/ansible_collections/ragops/gpu_stack"
# Nothing from the test caches or the virtualenv may ship.
if tar -tzf "$tarball" | grep -E '^(\.cache|\.venv|tests/output|\.ci)/' >/dev/null; then
  echo "the tarball carries build_ignore'd paths" >&2; exit 1
fi
modules=()
for m in "$installed"/plugins/modules/*.py; do
  [ -e "$m" ] || continue
  modules+=("ragops.gpu_stack.$(basename "$m" .py)")
done
for m in "${modules[@]}"; do
  "$bin/ansible-doc" -t module "$m" >"$work/doc.txt"
  grep -q "^> MODULE $m" "$work/doc.txt" || { echo "ansible-doc did not render $m" >&2; exit 1; }
  echo "ansible-doc renders $m"
done
cd "$installed"
"$bin/ansible-playbook" --syntax-check -i "$repo/inventories/gpu" site.yml >/dev/null
echo "site.yml resolves from the installed collection (${#modules[@]} modules documented)"
