#!/usr/bin/env bash
# One idempotent set-up step for this checkout: system packages the tests need,
# a project-local virtualenv with pinned tools, the collections Molecule's docker driver
# needs (taken from the `ansible` wheel, since Galaxy is out of reach here), and the link
# that lets a plain checkout resolve `ragops.gpu_stack.*`. A second call takes about a second.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$repo/.cache"
venv="$repo/.venv"
python=${RAGOPS_PYTHON:-python3}
# The `ansible` community package whose wheel carries the vendored collections.
ansible_wheel_version=12.3.0
vendored=(community/docker community/library_inventory_filtering_v1 ansible/posix)

log() { printf 'setup: %s\n' "$*"; }

# shellcheck source=scripts/lib/apt.sh
. "$repo/scripts/lib/apt.sh"

install_system_packages() {
  # The shellcheck package: ansible-test's shellcheck sanity test skips itself (and passes) without it.
  apt_install_missing setup dockerd:docker.io debootstrap:debootstrap /usr/bin/docker-registry:docker-registry \
    shellcheck:shellcheck
}

install_venv() {
  local stamp="$venv/.requirements.sha256" want
  want=$(sha256sum "$repo/requirements-dev.txt" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/ansible-playbook" ]; then
    return 0
  fi
  log "creating $venv (pinned tools from requirements-dev.txt)"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  # pip's noise about this machine's unused local index locations is filtered; errors still show.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$repo/requirements-dev.txt" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
  echo "$want" >"$stamp"
}

install_vendored_collections() {
  local dest="$cache/vendor" stamp="$cache/vendor/.ansible-$ansible_wheel_version"
  [ -f "$stamp" ] && return 0
  log "vendoring ${vendored[*]} from ansible==$ansible_wheel_version"
  mkdir -p "$cache/downloads"
  local wheel="$cache/downloads/ansible-$ansible_wheel_version-py3-none-any.whl"
  [ -f "$wheel" ] || "$venv/bin/python" -m pip download -q --disable-pip-version-check \
    --no-deps "ansible==$ansible_wheel_version" -d "$cache/downloads"
  rm -rf "$dest" && mkdir -p "$dest"
  local patterns=()
  for c in "${vendored[@]}"; do patterns+=("ansible_collections/$c/*"); done
  "$venv/bin/python" - "$wheel" "$dest" "${patterns[@]}" <<'PY'
import fnmatch, sys, zipfile
wheel, dest, patterns = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if any(fnmatch.fnmatch(n, p) for p in patterns)])
PY
  touch "$stamp"
}

link_collection() {
  # ansible.cfg puts .cache/collections on collections_path; the link makes this checkout
  # the installed ragops.gpu_stack without copying it into the user's home.
  local parent="$cache/collections/ansible_collections/ragops"
  mkdir -p "$parent"
  [ "$(readlink "$parent/gpu_stack" 2>/dev/null)" = "$repo" ] || ln -sfn "$repo" "$parent/gpu_stack"
}

install_ansible_test_pip_bootstrap() {
  # ansible-test downloads a pip bootstrap script from a host that is unreachable here;
  # a stand-in that builds each sanity venv from PyPI instead is saved where it looks first.
  local pip_version req
  req=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py
  pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',.*/\1/p" "$req" | head -n1)
  [ -n "$pip_version" ] || { log "cannot read ansible-test's pinned pip version from $req" >&2; exit 1; }
  local target="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
  [ -f "$target" ] && return 0
  mkdir -p "$(dirname "$target")"
  cat >"$target" <<'PY'
"""Stand-in for ansible-test's downloaded get-pip script (its host is unreachable here)."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.run([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'], check=True)
subprocess.run([sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check', '--upgrade'] + args, check=True)
PY
}

install_system_packages
install_venv
install_vendored_collections
link_collection
install_ansible_test_pip_bootstrap
log "ready ($venv)"
