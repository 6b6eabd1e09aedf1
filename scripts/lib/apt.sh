# shellcheck shell=bash
# Sourced by scripts/setup.sh and tests/world/world.sh: install from apt what this machine lacks.
#   apt_install_missing WHO NEED...   each NEED is "<command or /absolute/path>:<package>"
# A command counts as present when it is on PATH, a path when it is executable. Prints
# "WHO: installing ..." and needs root only when something is missing.
apt_install_missing() {
  local who=$1 need probe missing=()
  shift
  for need in "$@"; do
    probe=${need%%:*}
    if [[ $probe == /* ]]; then [ -x "$probe" ] && continue
    else command -v "$probe" >/dev/null && continue; fi
    missing+=("${need#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    printf '%s: needs root to install %s: run it as root or install them with apt-get\n' "$who" "${missing[*]}" >&2
    exit 1
  fi
  printf '%s: installing %s with apt-get\n' "$who" "${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
