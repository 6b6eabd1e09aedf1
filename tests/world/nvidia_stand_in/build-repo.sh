#!/usr/bin/env bash
# Builds the NVIDIA Container Toolkit STAND-IN packages and their signed flat apt repository,
# laid out as https://nvidia.github.io/libnvidia-container publishes it:
#
#   OUT/gpgkey                                   the signing key, ASCII-armoured
#   OUT/stable/deb/nvidia-container-toolkit.list the repository's one-line source
#   OUT/stable/deb/ARCH/                         *.deb, Packages, Packages.gz, Release,
#                                                InRelease (clear-signed), Release.gpg
#
# so the product's source line `deb [signed-by=KEYRING] BASE/stable/deb/ARCH /` works
# against it unchanged. tests/world/world.sh (nvidia-repo) runs it, caches its output by a
# hash of this folder and serves it; it is not meant to be run by hand.
#
#   build-repo.sh OUT ARCH GNUPGHOME KEY_FINGERPRINT BASE_URL
#
# Each package is a folder here: `control` (and `conffiles`) for DEBIAN/, every other file
# is installed at its path; @VERSION@ (1.17.8-1), @UPSTREAM@ (1.17.8) and @ARCH@ are filled
# in. `versions` lists the versions the repository carries.
set -euo pipefail
export LC_ALL=C
[ $# -eq 5 ] || { echo "usage: $0 OUT ARCH GNUPGHOME KEY_FINGERPRINT BASE_URL" >&2; exit 2; }
out=$1 arch=$2 gnupghome=$3 key=$4 base_url=$5
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
packages=(libnvidia-container1 libnvidia-container-tools nvidia-container-toolkit-base nvidia-container-toolkit)
# Reproducible member times: the same sources give the same .deb files.
export SOURCE_DATE_EPOCH=1735689600

fill() { sed -e "s/@VERSION@/$version/g" -e "s/@UPSTREAM@/$upstream/g" -e "s/@ARCH@/$arch/g"; }

build_deb() {
  local pkg=$1 stage f rel
  stage=$(mktemp -d "$work/$pkg.XXXXXX")
  chmod 0755 "$stage"
  mkdir -p "$stage/DEBIAN" "$stage/usr/share/doc/$pkg"
  while IFS= read -r -d '' f; do
    rel=${f#"$src/$pkg/"}
    case $rel in control | conffiles) continue ;; esac
    mkdir -p "$stage/$(dirname "$rel")"
    case $rel in
      usr/bin/*) fill <"$f" >"$stage/$rel"; chmod 0755 "$stage/$rel" ;;
      *) fill <"$f" >"$stage/$rel"; chmod 0644 "$stage/$rel" ;;
    esac
  done < <(find "$src/$pkg" -type f -print0 | sort -z)
  cat >"$stage/usr/share/doc/$pkg/copyright" <<COPYRIGHT
TEST STAND-IN, not NVIDIA's package: $pkg $version was built by the ragops.gpu_stack
test world (tests/world/nvidia_stand_in) from shell scripts of its own. It contains no
NVIDIA code. The real package: https://github.com/NVIDIA/ (Apache-2.0).
COPYRIGHT
  find "$stage" -type d -exec chmod 0755 {} +
  find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  fill <"$src/$pkg/control" >"$stage/DEBIAN/control"
  printf 'Installed-Size: %s\n' "$(du -sk --exclude=DEBIAN "$stage" | cut -f1)" >>"$stage/DEBIAN/control"
  [ ! -f "$src/$pkg/conffiles" ] || install -m 0644 "$src/$pkg/conffiles" "$stage/DEBIAN/conffiles"
  dpkg-deb --root-owner-group -Zxz --build "$stage" "$repo/${pkg}_${version}_${arch}.deb" >/dev/null
  rm -rf "$stage"
}

gpg_() { GNUPGHOME=$gnupghome gpg --batch --yes --quiet --no-tty --pinentry-mode loopback --passphrase '' "$@"; }

repo="$out/stable/deb/$arch"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$repo"
while read -r version; do
  case $version in '' | '#'*) continue ;; esac
  upstream=${version%-*}
  for pkg in "${packages[@]}"; do build_deb "$pkg"; done
done <"$src/versions"

# The index, as NVIDIA's: Filename entries relative to the flat repository (./name.deb).
(cd "$repo" && apt-ftparchive packages . >"$work/Packages")
mv "$work/Packages" "$repo/Packages"
gzip -9n <"$repo/Packages" >"$repo/Packages.gz"
(cd "$repo" && apt-ftparchive \
  -o APT::FTPArchive::Release::Origin="ragops test world: NVIDIA Container Toolkit TEST STAND-IN" \
  -o APT::FTPArchive::Release::Label="libnvidia-container stand-in (not NVIDIA's repository)" \
  -o APT::FTPArchive::Release::Architectures="$arch" \
  release . >"$work/Release")
mv "$work/Release" "$repo/Release"
gpg_ --local-user "$key" --digest-algo SHA512 --clearsign --output "$repo/InRelease" "$repo/Release"
gpg_ --local-user "$key" --digest-algo SHA512 --armor --detach-sign --output "$repo/Release.gpg" "$repo/Release"
gpg_ --armor --export "$key" >"$out/gpgkey"
printf '%s\n' "$key" >"$out/gpgkey.fingerprint"
# shellcheck disable=SC2016 # $(ARCH) is apt's, written as is
printf 'deb %s/stable/deb/$(ARCH) /\n' "$base_url" >"$out/stable/deb/nvidia-container-toolkit.list"
