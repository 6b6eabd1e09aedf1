#!/usr/bin/env bash
# Where a converged re-run of site.yml spends its time: one run on the sandbox host as it is
# (converge it first: bench/site_rerun.sh, or scripts/sandbox.sh), every task with its time
# in playbook order (ansible.posix.profile_tasks), written to bench/results/profile-<time>.txt.
#   bench/profile.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$repo/bench/results/profile-$(date -u +%Y%m%dT%H%M%SZ).txt"
mkdir -p "$repo/bench/results"
cd "$repo"
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_SORT_ORDER=none PROFILE_TASKS_TASK_OUTPUT_LIMIT=all \
    .venv/bin/ansible-playbook -i inventories/sandbox site.yml | sed -n '/^PLAY RECAP/,$p'
} | tee "$out"
echo "results: $out"
