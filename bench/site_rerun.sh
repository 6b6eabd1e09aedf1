#!/usr/bin/env bash
# Benchmark: site.yml on a fresh sandbox host (full converge), then converged re-runs
# (which must report changed=0). Prints one line per run and writes them to
# bench/results/site_rerun-<UTC time>.txt. Figures and their context: bench/README.md.
#   bench/site_rerun.sh [RERUNS]      (default 5)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reruns=${1:-5}
out="$repo/bench/results/site_rerun-$(date -u +%Y%m%dT%H%M%SZ).txt"
mkdir -p "$repo/bench/results"
cd "$repo"

# A fresh sandbox host, set up but not yet provisioned (--list-hosts runs no task).
scripts/sandbox.sh --destroy >/dev/null
scripts/sandbox.sh --list-hosts >/dev/null

run() {
  local label=$1 start end log recap
  log=$(mktemp)
  start=$(date +%s.%N)
  .venv/bin/ansible-playbook -i inventories/sandbox site.yml >"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
  end=$(date +%s.%N)
  recap=$(grep -E '^sandbox +:' "$log" | sed 's/  */ /g')
  rm -f "$log"
  printf '%-12s %6s s   %s\n' "$label" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')" "$recap" | tee -a "$out"
}

{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
} | tee "$out"
run converge
for i in $(seq 1 "$reruns"); do run "re-run $i"; done
echo "results: $out"
