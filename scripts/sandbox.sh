#!/usr/bin/env bash
# README's first command: set up this checkout, bring up the test world, start the sandbox
# host (a Debian 12 systemd container on this machine) and run site.yml against it.
#   scripts/sandbox.sh [ansible-playbook options]    e.g. --check --diff
#   scripts/sandbox.sh --destroy                     remove the sandbox host and its volumes
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=ragops-sandbox
image=${RAGOPS_WORLD_HOST_IMAGE:-ragops-world/debian12-systemd:latest}
registry=registry.local:5000

say() { printf 'sandbox: %s\n' "$*"; }

if [ "${1:-}" = "--destroy" ]; then
  docker rm -f -v "$name" >/dev/null 2>&1 || true
  say "removed $name"
  exit 0
fi

"$repo/scripts/setup.sh"
"$repo/tests/world/world.sh" up

if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != "true" ]; then
  docker rm -f -v "$name" >/dev/null 2>&1 || true
  say "starting the sandbox host $name from $image"
  # The flags that let systemd and a nested Docker engine run here (see .config/molecule/config.yml).
  docker run -d --name "$name" --hostname sandbox \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v /var/lib/docker \
    --tmpfs /run --tmpfs /run/lock -e container=docker \
    --add-host "${registry%:*}:host-gateway" \
    "$image" /lib/systemd/systemd >/dev/null
fi
# Wait for systemd to finish booting (the Docker layer needs a running service manager).
state=unknown
for _ in $(seq 1 120); do
  state=$(docker exec "$name" systemctl is-system-running 2>/dev/null) || true
  case "$state" in running|degraded) break ;; esac
  sleep 0.5
done
say "host $name is up (systemd: ${state:-unknown})"

# The sandbox stands for an air-gapped host: its Docker daemon, once installed, pulls
# through the local registry. A daemon.json already there is left as it is.
docker exec "$name" sh -c "[ -e /etc/docker/daemon.json ] || { mkdir -p /etc/docker && printf '%s\n' \
  '{\"registry-mirrors\": [\"http://$registry\"], \"insecure-registries\": [\"$registry\"]}' >/etc/docker/daemon.json; }"
say "Docker Hub is out of reach from this machine: the sandbox's Docker daemon pulls"
say "ollama/ollama and pgvector/pgvector from the local registry $registry, which serves the"
say "test world's stand-ins under those names (the ollama/ollama there is an API double, not Ollama)."

cd "$repo"
exec "$repo/.venv/bin/ansible-playbook" -i inventories/sandbox site.yml "$@"
