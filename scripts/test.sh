#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, lint, sanity, unit tests, the test
# world, the collection build, then every Molecule scenario. Each stage runs even when an
# earlier one failed (except where it needs that one), and the run ends with one tally line.
#   scripts/test.sh                 everything
#   scripts/test.sh unit molecule   only the named stages (lint sanity unit build world molecule)
#   MOLECULE_SCENARIOS="default" scripts/test.sh molecule
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1
export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$repo/ansible.cfg"
results="$repo/.cache/test-results"
passed=0 failed=0 skipped=0
failures=()

note() { printf '\n=== %s\n' "$*"; }

# Adds a pytest junit file's counts to the tally.
count_junit() {
  local counts
  counts=$(python3 - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == 'testsuite' else list(root)
t = sum(int(s.get('tests', 0)) for s in suites)
f = sum(int(s.get('failures', 0)) + int(s.get('errors', 0)) for s in suites)
s_ = sum(int(s.get('skipped', 0)) for s in suites)
print(t - f - s_, f, s_)
PY
  ) || counts="0 1 0"
  read -r p f s <<<"$counts"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

# Runs one named check that is not pytest; it counts as one test.
check() {
  local name=$1 start rc
  shift
  note "$name"
  start=$(date +%s)
  "$@"
  rc=$?
  printf -- '--- %s: %s (%ss)\n' "$name" "$([ $rc -eq 0 ] && echo passed || echo FAILED)" "$(($(date +%s) - start))"
  if [ $rc -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
  return $rc
}

# Runs pytest on the given paths; every test counts.
pytest_stage() {
  local name=$1 start rc xml="$results/$1.xml"
  shift
  note "$name"
  start=$(date +%s)
  python -m pytest -q -p no:cacheprovider --junitxml="$xml" "$@"
  rc=$?
  printf -- '--- %s: exit %s (%ss)\n' "$name" "$rc" "$(($(date +%s) - start))"
  if [ -f "$xml" ] && [ $rc -le 1 ]; then
    count_junit "$xml"
  else
    failed=$((failed + 1))
  fi
  [ $rc -eq 0 ] || failures+=("$name")
}

stage_lint() {
  check yamllint yamllint -s .
  check ansible-lint ansible-lint --nocolor -q
}

stage_sanity() {
  check ansible-test-sanity "$repo/scripts/sanity.sh"
}

stage_unit() {
  pytest_stage unit tests/unit
}

stage_build() {
  check collection-build "$repo/scripts/check-build.sh"
}

# The test world's own tests, and the modules' tests against the real Docker engine and
# PostgreSQL here (tests/integration_docker): both need the world up.
stage_world() {
  check world-up tests/world/world.sh up || return 1
  pytest_stage world tests/world tests/integration_docker
}

stage_molecule() {
  local scenarios s
  if [ -n "${MOLECULE_SCENARIOS:-}" ]; then
    read -r -a scenarios <<<"$MOLECULE_SCENARIOS"
  else
    scenarios=()
    for s in molecule/*/molecule.yml; do scenarios+=("$(basename "$(dirname "$s")")"); done
  fi
  tests/world/world.sh up >/dev/null || { failed=$((failed + 1)); failures+=("molecule: test world"); return 1; }
  for s in "${scenarios[@]}"; do
    check "molecule-$s" molecule test -s "$s"
  done
}

mkdir -p "$results"
suite_start=$(date +%s)
check setup "$repo/scripts/setup.sh" || { echo "suite: 0 passed, 1 failed"; exit 1; }

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(lint sanity unit build world molecule)
for stage in "${stages[@]}"; do
  if declare -F "stage_$stage" >/dev/null; then
    "stage_$stage"
  else
    echo "unknown stage '$stage' (lint sanity unit build world molecule)" >&2
    failed=$((failed + 1)); failures+=("$stage")
  fi
done

note "summary ($(($(date +%s) - suite_start))s)"
[ ${#failures[@]} -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
if [ "$skipped" -gt 0 ]; then
  echo "suite: $passed passed, $failed failed, $skipped skipped"
else
  echo "suite: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
