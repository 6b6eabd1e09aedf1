#!/usr/bin/env bash
# The test world: the local Docker engine, registry and images that the Molecule scenarios,
# the sandbox and tests/world use. No container registry is reachable from these machines
# (see ENVIRONMENT.md), so every image is built here from Debian's archive with debootstrap
# and `docker import`, and the stand-ins are served under the names users type
# (ollama/ollama, pgvector/pgvector) by a local registry on :5000. NVIDIA's apt repository is
# unreachable too: stand-in packages under the real names are served, signed, from :5080.
#
#   world.sh up                 dockerd + registry + images + push + nvidia-repo, one timed line per step
#   world.sh dockerd            start the Docker engine unless `docker` already answers
#   world.sh registry           start the local registry (distribution 2.8) on 0.0.0.0:5000
#   world.sh images [NAME...]   build what changed: debian12-systemd pgvector ollama-double
#                               (debian13-systemd only when named or in RAGOPS_WORLD_EXTRA_IMAGES)
#   world.sh push               push the stand-ins into the registry (skipped when already there)
#   world.sh nvidia-repo        build the NVIDIA Container Toolkit stand-in packages and their
#                               signed apt repository (when changed) and serve it on 0.0.0.0:5080
#   world.sh status             what is up, built, current and pushed
#   world.sh down               stop the registry and the apt repository's server (dockerd is left running)
#
# Every image is cached by a hash of its recipe (the functions below that make its root
# file system, its package list, the files copied in), kept in the image label
# org.ragops.world.recipe: an unchanged image costs one `docker image inspect`. Each image
# is two stages: a debootstrap root file system imported as ragops-world/rootfs-*:<hash>,
# then a small `docker build` FROM it (tests/world/images/<name>/Dockerfile) for the files
# that change often and the metadata `docker import --change` cannot set (STOPSIGNAL).
# Logs: /var/log/ragops-world/ (one file per image). State: /var/lib/ragops-world/.
#
# Environment: RAGOPS_WORLD_STATE, RAGOPS_WORLD_LOGS, RAGOPS_WORLD_MIRROR (Debian mirror),
# RAGOPS_WORLD_REGISTRY_PORT (5000), RAGOPS_WORLD_DOCKERD_TIMEOUT (seconds, 60),
# RAGOPS_WORLD_NVIDIA_REPO_PORT (5080).
set -euo pipefail
export LC_ALL=C
# The legacy builder works offline with local base images; BuildKit would ask a registry.
export DOCKER_BUILDKIT=0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${RAGOPS_WORLD_STATE:-/var/lib/ragops-world}
logs=${RAGOPS_WORLD_LOGS:-/var/log/ragops-world}
mirror=${RAGOPS_WORLD_MIRROR:-http://deb.debian.org/debian}
registry_port=${RAGOPS_WORLD_REGISTRY_PORT:-5000}
registry_url="http://127.0.0.1:$registry_port"
dockerd_log=/var/log/ragops-world-dockerd.log
dockerd_timeout=${RAGOPS_WORLD_DOCKERD_TIMEOUT:-60}
prefix=ragops-world
label=org.ragops.world.recipe
# Bump to rebuild every image (for a change this script's hashes cannot see).
recipe_version=1
all_images=(debian12-systemd pgvector ollama-double)
# Built only when named (world.sh images debian13-systemd) or listed in RAGOPS_WORLD_EXTRA_IMAGES.
optional_images=(debian13-systemd)
read -r -a extra_images <<<"${RAGOPS_WORLD_EXTRA_IMAGES:-}"
nvidia_port=${RAGOPS_WORLD_NVIDIA_REPO_PORT:-5080}
nvidia_state=$state/nvidia-apt
nvidia_local_url="http://127.0.0.1:$nvidia_port/libnvidia-container"
# The base URL as Molecule instances (registry.local -> host-gateway) and product code use it.
nvidia_url="http://registry.local:$nvidia_port/libnvidia-container"

say() { printf 'world: %s\n' "$*"; }
die() { printf 'world: ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

# show_log_tail LOG: the end of a log, for an error message.
show_log_tail() {
  printf 'world: --- last lines of %s ---\n' "$1" >&2
  tail -n "${2:-25}" "$1" >&2 2>/dev/null || true
  printf 'world: ---\n' >&2
}

# await_server ANSWERS PID DEADLINE LOG WHAT URL PORT: poll ANSWERS until the server just
# started as PID answers; die with its log's tail if it exits first or DEADLINE passes.
await_server() {
  local answers=$1 pid=$2 deadline=$3 log=$4 what=$5 url=$6 port=$7
  until "$answers"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail "$log"
      die "$what exited before answering on $url (port $port taken?)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_log_tail "$log"
      die "$what (pid $pid) did not answer on $url within 20s"
    fi
    sleep 0.1
  done
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "'$1' needs root (debootstrap, dockerd and the registry's state are system-wide)"
}

# ensure_packages: what a fresh machine may lack (scripts/setup.sh normally installs them).
# shellcheck source=scripts/lib/apt.sh
. "$here/../../scripts/lib/apt.sh"
ensure_packages() {
  # apt-utils, gnupg, gpgv: the NVIDIA stand-in apt repository is indexed, signed and checked here.
  apt_install_missing world dockerd:docker.io debootstrap:debootstrap /usr/bin/docker-registry:docker-registry \
    curl:curl apt-ftparchive:apt-utils gpg:gnupg gpgv:gpgv python3:python3
}

# lock: one mutating world.sh at a time (test.sh, the sandbox and pytest may all call `up`).
lock() {
  [ -n "${world_locked:-}" ] && return 0
  mkdir -p "$state"
  exec 9>>"$state/lock"
  if ! flock -n 9; then
    say "waiting for another world.sh to finish"
    flock -w 1800 9 || die "gave up waiting for the lock $state/lock"
  fi
  world_locked=1
}

docker_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
registry_answers() { curl -fsS -m 3 -o /dev/null "$registry_url/v2/" 2>/dev/null; }

# ---------------------------------------------------------------------------------------
# dockerd
# ---------------------------------------------------------------------------------------
cmd_dockerd() {
  docker_answers && return 0
  ensure_packages
  need_root dockerd
  say "starting dockerd (log: $dockerd_log)"
  setsid dockerd >"$dockerd_log" 2>&1 </dev/null 9>&- &
  local pid=$! deadline=$((SECONDS + dockerd_timeout))
  until docker_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail "$dockerd_log"
      die "dockerd exited before answering"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_log_tail "$dockerd_log"
      die "dockerd (pid $pid) did not answer within ${dockerd_timeout}s"
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------------
# registry: Debian's docker-registry (distribution 2.8) as a host process. Its packaged
# config turns on htpasswd auth, so it runs with ours: no auth, deletes allowed, storage
# that survives runs (pushed layers are reused), on all interfaces, because Molecule
# instances reach it through host-gateway as registry.local:5000.
# ---------------------------------------------------------------------------------------
registry_pidfile() { printf '%s/registry.pid' "$state"; }

registry_pid() {
  local pid
  pid=$(cat "$(registry_pidfile)" 2>/dev/null) || return 1
  [ -n "$pid" ] && grep -qa docker-registry "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

write_registry_config() {
  cat >"$state/registry.yml" <<EOF
# Written by tests/world/world.sh: the test world's local registry (no auth, test data only).
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $state/registry
  delete:
    enabled: true
http:
  addr: 0.0.0.0:$registry_port
  headers:
    X-Content-Type-Options: [nosniff]
EOF
}

cmd_registry() {
  registry_answers && return 0
  ensure_packages
  need_root registry
  mkdir -p "$state/registry" "$logs"
  write_registry_config
  local log="$logs/registry.log"
  say "starting the registry on 0.0.0.0:$registry_port (storage: $state/registry, log: $log)"
  setsid /usr/bin/docker-registry serve "$state/registry.yml" >>"$log" 2>&1 </dev/null 9>&- &
  local pid=$! deadline=$((SECONDS + 20))
  echo "$pid" >"$(registry_pidfile)"
  await_server registry_answers "$pid" "$deadline" "$log" "the registry" "$registry_url" "$registry_port"
}

cmd_down() {
  local pid
  nvidia_http_stop
  if pid=$(registry_pid); then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$(registry_pidfile)"
    say "registry stopped (pid $pid); dockerd left running"
  elif registry_answers; then
    say "something else answers on $registry_url (not started by world.sh): left running"
  else
    say "registry not running; dockerd left running"
  fi
}

# ---------------------------------------------------------------------------------------
# Root file systems. Each rootfs_prepare_<name> runs on the debootstrapped tree before it is
# slimmed and imported; its text is part of the image's recipe hash.
# ---------------------------------------------------------------------------------------

# Image table: rootfs name, suite, packages, final image, build context files.
image_spec() {
  case "$1" in
    debian12-systemd)
      # STAND-IN for a Debian 12 server (Molecule instances, the sandbox host): systemd as
      # PID 1 and what Ansible and testinfra need (python3, python3-apt, sudo), plus the
      # tools roles commonly call (curl, gnupg for signed-by keys, iproute2, procps).
      # dbus lets logind, hostnamectl and timedatectl work as on a real server.
      rootfs=debian12-systemd suite=bookworm
      include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,ca-certificates,procps,gnupg,curl
      image=$prefix/debian12-systemd:latest
      files=("$here/images/debian12-systemd/Dockerfile")
      ;;
    debian13-systemd)
      # The same host on Debian 13 (trixie), for trying the roles there; opt-in.
      rootfs=debian13-systemd suite=trixie
      include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,ca-certificates,procps,gnupg,curl
      image=$prefix/debian13-systemd:latest
      files=("$here/images/debian13-systemd/Dockerfile")
      ;;
    pgvector)
      # STAND-IN for pgvector/pgvector:pg17: Debian trixie has postgresql-17 and
      # postgresql-17-pgvector (0.8.0), bookworm has no pgvector package. The official
      # image's entrypoint contract is re-implemented in images/pgvector/docker-entrypoint.sh.
      rootfs=pgvector suite=trixie
      include=postgresql-17,postgresql-17-pgvector,ca-certificates
      image=$prefix/pgvector:pg17
      files=("$here/images/pgvector/Dockerfile" "$here/images/pgvector/docker-entrypoint.sh")
      ;;
    ollama-double)
      # TEST DOUBLE for ollama/ollama (no registry here has Ollama): tests/world/ollama_double
      # on a bookworm minbase with python3 (stdlib only) and ca-certificates. The base is
      # its own cached stage, so a change to the double rebuilds in about two seconds.
      rootfs=bookworm-python suite=bookworm
      include=python3-minimal,python3,ca-certificates
      image=$prefix/ollama-double:0.33.0
      files=("$here/images/ollama-double/Dockerfile" "$here/ollama_double/ollama_double.py" "$here/ollama_double/ollama")
      ;;
    *) die "unknown image '$1' (known: ${all_images[*]} ${optional_images[*]})" ;;
  esac
}

rootfs_prepare_debian12_systemd() {
  local root=$1 unit
  # Units that fail or only wait in a container: consoles, udev (no devices to manage; the
  # engine provides /dev), first-boot prompts, remounting /, hugepages/fuse mounts, and apt's
  # timers (a background apt run would hold the dpkg lock while a test installs packages).
  for unit in getty@.service serial-getty@.service console-getty.service getty-static.service \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service systemd-firstboot.service \
    systemd-remount-fs.service dev-hugepages.mount sys-fs-fuse-connections.mount \
    apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
  done
  # Each container gets its own machine id at boot instead of sharing the build's.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  printf 'localhost\n' >"$root/etc/hostname"
}

rootfs_prepare_debian13_systemd() {
  rootfs_prepare_debian12_systemd "$@"
}

rootfs_prepare_pgvector() {
  local root=$1
  # The package's default cluster (17/main) is never used: the entrypoint runs initdb in PGDATA.
  rm -rf "$root/etc/postgresql/17" "$root/var/lib/postgresql/17"
  # JIT (llvmjit.so + libLLVM, about 130 MB) is dropped: without its provider library the
  # server runs every query without JIT, which changes no result.
  rm -rf "$root/usr/lib/postgresql/17/lib/bitcode" "$root"/usr/lib/postgresql/17/lib/llvmjit*.so
  rm -f "$root"/usr/lib/*-linux-gnu/libLLVM* "$root"/usr/lib/*-linux-gnu/libz3.so*
  # As the official image: every new cluster listens on all interfaces.
  sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$root/usr/share/postgresql/17/postgresql.conf.sample"
  grep -q "^listen_addresses = '\*'" "$root/usr/share/postgresql/17/postgresql.conf.sample"
  mkdir -p "$root/docker-entrypoint-initdb.d"
  chroot "$root" install -d -o postgres -g postgres -m 3777 /var/run/postgresql
  chroot "$root" install -d -o postgres -g postgres -m 1777 /var/lib/postgresql/data
}

rootfs_prepare_bookworm_python() {
  local root=$1
  # Nothing beyond slimming: the double needs python3's standard library only.
  [ -x "$root/usr/bin/python3" ]
}

# slim_rootfs ROOT: what an image never needs. debootstrap leaves its .deb files and the
# package lists behind (50-110 MB each); docs, man pages and translations go too, and a
# dpkg filter keeps them out of packages installed later (e.g. by Molecule converges).
slim_rootfs() {
  local root=$1
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/archives/partial/* "$root"/var/cache/apt/*.bin
  find "$root/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -exec rm -rf {} +
  find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian "$root"/usr/share/linda
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/*
  find "$root/var/log" -type f -exec truncate -s 0 {} +
  cat >"$root/etc/dpkg/dpkg.cfg.d/ragops-world-slim" <<'EOF'
# Test-world image (tests/world/world.sh): no docs, man pages or translations.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
EOF
}

# remove_tree DIR: a build tree, never crossing into a file system mounted below it (a
# debootstrap that failed half-way can leave /proc or /sys mounted there).
remove_tree() {
  local dir=$1 mnt
  [ -e "$dir" ] || return 0
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
  # A tmpfs on DIR itself (build_rootfs) goes with its contents when unmounted.
  if awk -v d="$dir" '$2 == d { found = 1 } END { exit !found }' /proc/mounts; then
    umount "$dir" 2>/dev/null || umount -l "$dir"
  fi
  rm -rf --one-file-system "$dir"
}

# build_rootfs NAME SUITE INCLUDE IMAGE HASH
build_rootfs() {
  local name=$1 suite=$2 include=$3 image=$4 hash=$5
  local root="$state/build/rootfs-$name"
  remove_tree "$root"
  mkdir -p "$root"
  # A tmpfs of its own when the machine allows it: dpkg's many small synced writes cost
  # less there (about 15% of a cold build here), and nothing is left on disk afterwards.
  mount -t tmpfs -o size=3g,mode=0755 "ragops-world-$name" "$root" 2>/dev/null || true
  # ensure_image runs in a subshell of its own: a failed build leaves nothing behind.
  rootfs_in_progress=$root
  trap 'remove_tree "$rootfs_in_progress"' EXIT
  echo "== debootstrap --variant=minbase --include=$include $suite ($mirror)"
  debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror"
  echo "== prepare"
  "rootfs_prepare_${name//-/_}" "$root"
  echo "== slim ($(du -sm "$root" | cut -f1) MB before)"
  slim_rootfs "$root"
  echo "== import ($(du -sm "$root" | cut -f1) MB)"
  tar --numeric-owner -C "$root" -c . |
    docker import -c "LABEL $label=$hash" -c "LABEL org.ragops.world.stand-in=true" - "$image"
  remove_tree "$root"
  trap - EXIT
}

# build_final NAME BASE IMAGE HASH FILE...: docker build of images/NAME/Dockerfile FROM BASE
# with FILE... (the Dockerfile among them) as its context.
build_final() {
  local name=$1 base=$2 image=$3 hash=$4
  shift 4
  local ctx="$state/build/context-$name"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -p "$@" "$ctx/"
  echo "== docker build $image FROM $base"
  docker build --force-rm --label "$label=$hash" --build-arg "BASE=$base" -t "$image" "$ctx"
  rm -rf "$ctx"
}

# rootfs_hash NAME: everything that decides a root file system's content.
rootfs_hash() {
  local fn="rootfs_prepare_${rootfs//-/_}"
  {
    echo "ragops-world rootfs recipe v$recipe_version $rootfs $suite $include"
    declare -f build_rootfs slim_rootfs remove_tree "$fn"
    # What the prepare function calls (debian13 reuses debian12's).
    [ "$fn" != rootfs_prepare_debian13_systemd ] || declare -f rootfs_prepare_debian12_systemd
  } | sha256sum | cut -c1-16
}

# final_hash ROOTFS_HASH: the root file system's hash and the build context (names, modes, bytes).
final_hash() {
  local f
  {
    echo "ragops-world image recipe v$recipe_version $image $1"
    declare -f build_final
    for f in "${files[@]}"; do
      printf '%s %s %s\n' "$(basename "$f")" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -c1-64)"
    done
  } | sha256sum | cut -c1-16
}

image_label() { docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null || true; }

# ensure_image NAME: build NAME's stages that are not current. Its output is the image's
# log; its one status line goes to fd 3.
ensure_image() {
  local name=$1 rootfs suite include image files=() t0=$EPOCHREALTIME
  image_spec "$name"
  local rhash fhash base missing=() f
  rhash=$(rootfs_hash)
  base="$prefix/rootfs-$rootfs:$rhash"
  for f in "${files[@]}"; do [ -f "$f" ] || missing+=("$f"); done
  if [ ${#missing[@]} -eq 0 ]; then
    fhash=$(final_hash "$rhash")
    if [ "$(image_label "$image")" = "$fhash" ]; then
      say "images $name cached ($(elapsed "$t0"))" >&3
      return 0
    fi
  fi
  echo "== $name: $image (root file system $base)"
  local note=""
  if [ -z "$(docker image ls -q "$base")" ]; then
    local t1=$EPOCHREALTIME
    build_rootfs "$rootfs" "$suite" "$include" "$base" "$rhash"
    note="; rootfs $(elapsed "$t1")"
    # Older root file systems of this image are no longer used by anything current.
    docker image ls --format '{{.Repository}}:{{.Tag}}' "$prefix/rootfs-$rootfs" |
      grep -vxF "$base" | xargs -r docker rmi >/dev/null 2>&1 || true
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing build input(s): ${missing[*]}"
    echo "(the Ollama API double lives in tests/world/ollama_double/; its image is built once they exist)"
    return 1
  fi
  build_final "$name" "$base" "$image" "$fhash" "${files[@]}"
  say "images $name built ($(elapsed "$t0")$note)" >&3
}

cmd_images() {
  local names=("$@") name pid failed=() t0=$EPOCHREALTIME
  [ ${#names[@]} -gt 0 ] || names=("${all_images[@]}" "${extra_images[@]}")
  for name in "${names[@]}"; do image_spec "$name"; done
  cmd_dockerd
  mkdir -p "$logs" "$state/build"
  local -A pids=()
  exec 3>&1
  for name in "${names[@]}"; do
    # In parallel: debootstrap waits mostly on the network; each image has its own log.
    ensure_image "$name" >"$logs/image-$name.log" 2>&1 &
    pids[$name]=$!
  done
  for name in "${names[@]}"; do
    pid=${pids[$name]}
    wait "$pid" || failed+=("$name")
  done
  exec 3>&-
  # Images a rebuild left without a tag.
  docker image prune -f --filter "label=$label" >/dev/null 2>&1 || true
  if [ ${#failed[@]} -gt 0 ]; then
    for name in "${failed[@]}"; do
      say "images $name FAILED (log: $logs/image-$name.log)" >&2
      show_log_tail "$logs/image-$name.log"
    done
    die "image build failed: ${failed[*]}"
  fi
  [ -n "${world_quiet_total:-}" ] || say "images done ($(elapsed "$t0"))"
}

# ---------------------------------------------------------------------------------------
# push: the stand-ins under the names users type, so a daemon with
# registry-mirrors: ["http://registry.local:5000"] pulls `ollama/ollama:0.33.0` from here.
# ---------------------------------------------------------------------------------------
push_targets() {
  cat <<EOF
$prefix/ollama-double:0.33.0 ollama/ollama:0.33.0
$prefix/ollama-double:0.33.0 ollama/ollama:0.33.0-rocm
$prefix/pgvector:pg17 pgvector/pgvector:pg17
$prefix/pgvector:pg17 pgvector/pgvector:0.8.0-pg17
EOF
}

# registry_digest REPO:TAG: the digest the registry serves for it, empty when absent.
registry_digest() {
  local repo=${1%:*} tag=${1##*:}
  curl -fsS -m 10 -I \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$registry_url/v2/$repo/manifests/$tag" 2>/dev/null |
    awk 'tolower($1) == "docker-content-digest:" { sub(/\r$/, "", $2); print $2 }' || true
}

cmd_push() {
  cmd_dockerd
  cmd_registry
  mkdir -p "$state/pushed" "$logs"
  local src dest id stamp digest t0 log="$logs/push.log" old_id old_digest
  while read -r src dest; do
    t0=$EPOCHREALTIME
    id=$(docker image inspect -f '{{.Id}}' "$src" 2>/dev/null) || die "push: $src is not built (run: world.sh images)"
    stamp="$state/pushed/${dest//[\/:]/_}"
    digest=$(registry_digest "$dest")
    old_id='' old_digest=''
    [ -f "$stamp" ] && read -r old_id old_digest <"$stamp"
    if [ -n "$digest" ] && [ "$old_id" = "$id" ] && [ "$old_digest" = "$digest" ]; then
      say "push $dest already in the registry ($(elapsed "$t0"))"
      continue
    fi
    echo "== push $src as $dest" >>"$log"
    docker tag "$src" "127.0.0.1:$registry_port/$dest"
    if ! docker push "127.0.0.1:$registry_port/$dest" >>"$log" 2>&1; then
      show_log_tail "$log"
      die "push of $dest failed"
    fi
    digest=$(registry_digest "$dest")
    [ -n "$digest" ] || die "the registry does not serve $dest after the push"
    printf '%s %s\n' "$id" "$digest" >"$stamp"
    say "push $dest pushed ($(elapsed "$t0"))"
  done < <(push_targets)
}

# ---------------------------------------------------------------------------------------
# nvidia-repo: NVIDIA's apt repository (nvidia.github.io/libnvidia-container) is not
# reachable here, so stand-in packages under the real names and versions
# (tests/world/nvidia_stand_in: shell scripts, no NVIDIA code; each description says TEST
# STAND-IN) are built into a flat repository laid out like NVIDIA's and signed with a
# throwaway key, so the product's own source line and signed-by keyring go through apt's
# real signature check:
#
#   deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] \
#     http://registry.local:5080/libnvidia-container/stable/deb/amd64 /
#
# State in $state/nvidia-apt: gnupg/ (the key's private home, made once per machine and
# kept, so the fingerprint stays across rebuilds), fingerprint, builds/<recipe hash>/ (the
# repository; rebuilt only when the sources, the key or this recipe change) and www/, what
# the server shows: www/libnvidia-container -> ../builds/<hash>, switched atomically.
# The server is python3's http.server on 0.0.0.0:5080, started like the registry.
# ---------------------------------------------------------------------------------------
nvidia_arch() { dpkg --print-architecture; }

# nvidia_gpg ARG...: gpg on the stand-in key's home; never holding the world lock (fd 9),
# since the gpg-agent it starts outlives it.
nvidia_gpg() {
  GNUPGHOME="$nvidia_state/gnupg" gpg --batch --yes --no-tty --pinentry-mode loopback --passphrase '' "$@" 9>&-
}

nvidia_fingerprint() { cat "$nvidia_state/fingerprint" 2>/dev/null; }

# nvidia_key LOG: make the throwaway signing key unless it is there. As NVIDIA's: an RSA
# primary key for certification and a signing subkey that signs the repository (apt's
# signed-by keyring holds both; the fingerprint, in $nvidia_state/fingerprint, is the primary's).
nvidia_key() {
  local log=$1 fpr
  fpr=$(nvidia_fingerprint) || true
  if [ -n "$fpr" ] && nvidia_gpg --list-secret-keys "$fpr" >/dev/null 2>&1; then
    return 0
  fi
  echo "== $(date -u +%FT%TZ) new signing key" >>"$log"
  rm -rf "$nvidia_state/gnupg" "$nvidia_state/fingerprint"
  mkdir -p "$nvidia_state"
  mkdir -m 0700 "$nvidia_state/gnupg"
  nvidia_gpg --quick-gen-key \
    "ragops test world NVIDIA stand-in repository (THROWAWAY TEST KEY) <nvidia-stand-in@ragops.invalid>" \
    rsa3072 cert never >>"$log" 2>&1 || die "nvidia-repo: gpg could not make the key (log: $log)"
  fpr=$(nvidia_gpg --with-colons --list-secret-keys 2>>"$log" | awk -F: '$1 == "fpr" { print $10; exit }')
  [ -n "$fpr" ] || die "nvidia-repo: gpg made no key (log: $log)"
  nvidia_gpg --quick-add-key "$fpr" rsa3072 sign never >>"$log" 2>&1 ||
    die "nvidia-repo: gpg could not add the signing subkey (log: $log)"
  printf '%s\n' "$fpr" >"$nvidia_state/fingerprint"
}

# nvidia_recipe_hash FINGERPRINT: everything that decides the repository's content.
nvidia_recipe_hash() {
  local f
  {
    echo "ragops-world nvidia-repo recipe v$recipe_version $(nvidia_arch) $1 $nvidia_url"
    declare -f nvidia_build
    while IFS= read -r -d '' f; do
      printf '%s %s %s\n' "${f#"$here/nvidia_stand_in/"}" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -c1-64)"
    done < <(find "$here/nvidia_stand_in" -type f -print0 | sort -z)
  } | sha256sum | cut -c1-16
}

# nvidia_current HASH: whether the served repository is HASH's, complete.
nvidia_current() {
  [ "$(readlink "$nvidia_state/www/libnvidia-container" 2>/dev/null)" = "../builds/$1" ] &&
    [ -s "$nvidia_state/builds/$1/stable/deb/$(nvidia_arch)/InRelease" ] && [ -s "$nvidia_state/builds/$1/gpgkey" ]
}

# nvidia_build HASH FINGERPRINT: build the repository, then point www/ at it.
nvidia_build() {
  local hash=$1 fpr=$2 dir="$nvidia_state/builds/$1"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp" "$nvidia_state/www"
  echo "== $(date -u +%FT%TZ) build-repo.sh $(nvidia_arch) key $fpr recipe $hash"
  "$here/nvidia_stand_in/build-repo.sh" "$dir.tmp" "$(nvidia_arch)" "$nvidia_state/gnupg" "$fpr" "$nvidia_url" 9>&-
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  ln -sfn "../builds/$hash" "$nvidia_state/www/.libnvidia-container.new"
  mv -T "$nvidia_state/www/.libnvidia-container.new" "$nvidia_state/www/libnvidia-container"
  find "$nvidia_state/builds" -mindepth 1 -maxdepth 1 ! -name "$hash" -exec rm -rf {} +
  ls -l "$dir/stable/deb/$(nvidia_arch)"
}

nvidia_http_pidfile() { printf '%s/nvidia-repo-http.pid' "$state"; }

nvidia_http_pid() {
  local pid
  pid=$(cat "$(nvidia_http_pidfile)" 2>/dev/null) || return 1
  [ -n "$pid" ] && grep -qa http.server "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

nvidia_answers() { curl -fsS -m 3 -o /dev/null "$nvidia_local_url/gpgkey" 2>/dev/null; }

# nvidia_serve: start the server unless ours answers; prints "up" or "started".
nvidia_serve() {
  if nvidia_http_pid >/dev/null && nvidia_answers; then
    echo up
    return 0
  fi
  if curl -sS -m 3 -o /dev/null "http://127.0.0.1:$nvidia_port/" 2>/dev/null; then
    die "nvidia-repo: something not started by world.sh answers on port $nvidia_port"
  fi
  local log="$logs/nvidia-repo-http.log" python=/usr/bin/python3
  [ -x "$python" ] || python=python3
  setsid "$python" -m http.server --bind 0.0.0.0 --directory "$nvidia_state/www" "$nvidia_port" >>"$log" 2>&1 </dev/null 9>&- &
  local pid=$! deadline=$((SECONDS + 20))
  echo "$pid" >"$(nvidia_http_pidfile)"
  await_server nvidia_answers "$pid" "$deadline" "$log" "the nvidia-repo server" "$nvidia_local_url" "$nvidia_port"
  echo started
}

nvidia_http_stop() {
  local pid
  if pid=$(nvidia_http_pid); then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$(nvidia_http_pidfile)"
    say "nvidia-repo server stopped (pid $pid)"
  fi
}

cmd_nvidia_repo() {
  local t0=$EPOCHREALTIME fpr hash note served log="$logs/nvidia-repo.log"
  ensure_packages
  need_root nvidia-repo
  mkdir -p "$nvidia_state" "$logs"
  nvidia_key "$log"
  fpr=$(nvidia_fingerprint)
  hash=$(nvidia_recipe_hash "$fpr")
  if nvidia_current "$hash"; then
    note=cached
  else
    if ! nvidia_build "$hash" "$fpr" >>"$log" 2>&1; then
      rm -rf "$nvidia_state/builds/$hash.tmp"
      show_log_tail "$log"
      die "nvidia-repo: the build failed (log: $log)"
    fi
    note=built
  fi
  GNUPGHOME="$nvidia_state/gnupg" gpgconf --kill gpg-agent 9>&- || true
  served=$(nvidia_serve)
  say "nvidia-repo $note, server $served on 0.0.0.0:$nvidia_port ($(elapsed "$t0"))"
}

nvidia_status() {
  local fpr hash state_word=stale pid
  fpr=$(nvidia_fingerprint) || true
  if [ -z "$fpr" ] || [ ! -e "$nvidia_state/www/libnvidia-container" ]; then
    say "nvidia-repo: not built"
  else
    hash=$(nvidia_recipe_hash "$fpr")
    nvidia_current "$hash" && state_word=current
    say "nvidia-repo: $state_word ($(readlink "$nvidia_state/www/libnvidia-container")), key $fpr ($nvidia_state/fingerprint)"
  fi
  if nvidia_answers; then
    pid=$(nvidia_http_pid) || pid="not started by world.sh"
    say "nvidia-repo server: up on 0.0.0.0:$nvidia_port (pid $pid); instances use $nvidia_url"
  else
    say "nvidia-repo server: down"
  fi
}

# ---------------------------------------------------------------------------------------
cmd_up() {
  local t0=$EPOCHREALTIME t
  t=$EPOCHREALTIME
  if docker_answers; then say "dockerd up ($(elapsed "$t"))"; else cmd_dockerd; say "dockerd started ($(elapsed "$t"))"; fi
  t=$EPOCHREALTIME
  if registry_answers; then say "registry up ($(elapsed "$t"))"; else cmd_registry; say "registry started ($(elapsed "$t"))"; fi
  t=$EPOCHREALTIME
  cmd_images
  cmd_push
  cmd_nvidia_repo
  say "up ($(elapsed "$t0"))"
}

cmd_status() {
  local name rootfs suite include image files=() want have size src dest digest
  if docker_answers; then
    say "dockerd: up ($(docker version --format '{{.Server.Version}}'))"
  else
    say "dockerd: down"
    return 0
  fi
  if registry_answers; then
    local pid
    pid=$(registry_pid) || pid="not started by world.sh"
    say "registry: up on 0.0.0.0:$registry_port (pid $pid, storage $state/registry $(du -sh "$state/registry" 2>/dev/null | cut -f1))"
  else
    say "registry: down"
  fi
  for name in "${all_images[@]}" "${optional_images[@]}"; do
    image_spec "$name"
    have=$(image_label "$image")
    if [ -z "$have" ]; then
      say "image $image: not built"
      continue
    fi
    want=stale
    if [ -f "${files[-1]}" ] && [ -f "${files[0]}" ] && [ "$(final_hash "$(rootfs_hash)")" = "$have" ]; then want=current; fi
    size=$(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')
    say "image $image: $want (recipe $have, $size)"
  done
  if registry_answers; then
    while read -r src dest; do
      digest=$(registry_digest "$dest")
      say "registry $dest: ${digest:-absent}"
    done < <(push_targets)
  fi
  nvidia_status
}

usage() { sed -n '9,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case "$cmd" in
    dockerd) lock; cmd_dockerd ;;
    registry) lock; cmd_registry ;;
    images) lock; cmd_images "$@" ;;
    push) lock; cmd_push ;;
    nvidia-repo) lock; cmd_nvidia_repo ;;
    up) lock; cmd_up ;;
    status) cmd_status ;;
    down) lock; cmd_down ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
