#!/usr/bin/env bash
# Builds the Kipoi base image for the Docker-path tests WITHOUT any registry:
# a Debian bookworm rootfs (debootstrap, minbase) + a venv at /opt/kipoi holding the real
# `kipoi` package (pip, run in a chroot), turned into an image by `docker import`.
#
#   scripts/base-image.sh            build if missing; last stdout line = the image reference
#   scripts/base-image.sh --ref      only print the reference this recipe builds (no Docker needed)
#
# Image:  kipoi-containers-test/kipoi-base-env:<12 hex of the recipe hash>  (+ :latest)
# The recipe hash is sha256 over this file and the pinned versions below, so editing the recipe
# (or the pins) makes a new tag, and an existing tag means "already built": exit 0 at once.
#
# Environment (all optional):
#   KIPOI_TEST_CACHE      work dir for the rootfs (default /var/tmp/kipoi-containers); cleaned after import
#   KIPOI_DEBIAN_MIRROR   Debian mirror URL (default: the host's, from /etc/apt/sources.list{,.d/*})
#   KIPOI_BASE_IMAGE_REPO image repository (default kipoi-containers-test/kipoi-base-env)
#   KIPOI_BASE_REBUILD=1  build even when the image exists
#   DOCKER_HOST           as the docker CLI understands it
#
# Needs: root, docker CLI + engine, debootstrap (apt-get installed when missing), tar, flock, sha256sum.
set -euo pipefail

# ---- the recipe: pins (changing any of these changes the image tag) --------------------------
SUITE=bookworm
DEB_INCLUDE=python3,python3-pip,python3-venv,ca-certificates
KIPOI_VERSION=0.8.6
# kipoi 0.8.6 imports `six` without declaring it. numpy stays 1.x and pandas 2.x: kipoi 0.8.6
# uses names NumPy 2 removed (np.string_/np.unicode_ in its HDF5 writer: `kipoi test -o`,
# `kipoi predict` fail with numpy 2), and the real kipoi images are numpy 1.x too. The full
# resolved set is pinned, so two machines building the same tag get the same Python packages
# (recorded from a real build: pip freeze is kept at $KIPOI_TEST_CACHE/base-image-<hash>.freeze.txt).
PIP_PINS='
arrow==1.4.0
attrs==21.4.0
binaryornot==0.6.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
colorlog==6.12.0
cookiecutter==2.7.1
deprecation==2.1.0
future==1.0.0
h5py==3.16.0
idna==3.20
Jinja2==3.1.6
kipoi==0.8.6
kipoi-conda==0.3.1
kipoi-utils==0.7.7
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
numpy==1.26.4
packaging==26.4
pandas==2.2.3
Pygments==2.21.0
python-dateutil==4.0.0
python-slugify==9.2.0
pytz==2026.6
PyYAML==6.0.4
related==0.7.3
requests==2.34.2
rich==15.0.0
six==1.17.0
text-unidecode==1.3
tinydb==4.9.0
tqdm==4.70.1
tzdata==2026.6
urllib3==2.8.0
'
# ----------------------------------------------------------------------------------------------

REPO=${KIPOI_BASE_IMAGE_REPO:-kipoi-containers-test/kipoi-base-env}
CACHE=${KIPOI_TEST_CACHE:-/var/tmp/kipoi-containers}
SELF=$(readlink -f "${BASH_SOURCE[0]}")
IMAGE_PATH=/opt/kipoi

log() { echo "base-image: $*" >&2; }
die() { echo "base-image: error: $*" >&2; exit 1; }

MODE=build
case "${1:-}" in
  "") ;;
  --ref) MODE=ref ;;
  -h|--help) sed -n '2,/^set -euo/p' "$SELF" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (usage: $0 [--ref])" ;;
esac

ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)
HASH=$( { cat "$SELF"; printf '\n--\nsuite=%s\narch=%s\ninclude=%s\n%s\n' "$SUITE" "$ARCH" "$DEB_INCLUDE" "$PIP_PINS"; } \
        | sha256sum | cut -c1-12)
REF="$REPO:$HASH"
LATEST="$REPO:latest"
if [ "$MODE" = ref ]; then echo "$REF"; exit 0; fi

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker Engine (docker info failed; DOCKER_HOST=${DOCKER_HOST:-unset})"

image_exists() { docker image inspect "$REF" >/dev/null 2>&1; }
finish_existing() {
  # keep :latest on the current recipe (cheap, and a no-op when it already is)
  if [ "$(docker image inspect -f '{{.Id}}' "$LATEST" 2>/dev/null)" != "$(docker image inspect -f '{{.Id}}' "$REF")" ]; then
    docker tag "$REF" "$LATEST"
  fi
  echo "$REF"
  exit 0
}

if [ "${KIPOI_BASE_REBUILD:-0}" != 1 ] && image_exists; then
  log "up to date: $REF"
  finish_existing
fi

[ "$(id -u)" = 0 ] || die "building the rootfs needs root (debootstrap, chroot); run as root"
mkdir -p "$CACHE"
# one build at a time per cache dir (parallel test sessions); re-check once we hold the lock
exec 9>"$CACHE/base-image.lock"
flock 9
if [ "${KIPOI_BASE_REBUILD:-0}" != 1 ] && image_exists; then
  log "built meanwhile by another process: $REF"
  finish_existing
fi

# ---- tools ------------------------------------------------------------------------------------
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$CACHE"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap; } >"$CACHE/apt.log" 2>&1; then
    cat "$CACHE/apt.log" >&2
    die "apt-get install debootstrap failed"
  fi
fi
for t in chroot tar flock sha256sum; do command -v "$t" >/dev/null 2>&1 || die "missing tool: $t"; done

# ---- Debian mirror: the host's own (the only one reachable here) ---------------------------
find_mirror() {
  local f
  # one-line format: deb [opts] URI SUITE COMPONENTS...
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v s="$SUITE" '$1=="deb" && $3==s {print $2; exit}'
  done
  # deb822 format: stanzas of "Key: value", blank-line separated
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$SUITE" '
      function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && uris != "") { split(uris, u, " "); print u[1] } types=""; suites=""; uris="" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      tolower($1)=="types:"  { $1=""; types=$0 }
      tolower($1)=="suites:" { $1=""; suites=$0 }
      tolower($1)=="uris:"   { $1=""; uris=$0; sub(/^ +/, "", uris) }
      END { flush() }' "$f"
  done
}
MIRROR=${KIPOI_DEBIAN_MIRROR:-$(find_mirror | grep -v -i security | head -n1 || true)}
[ -n "$MIRROR" ] || die "no Debian '$SUITE' mirror found in /etc/apt/sources.list{,.d/*}; set KIPOI_DEBIAN_MIRROR"

# ---- build ------------------------------------------------------------------------------------
BUILD="$CACHE/base-image-$HASH"
ROOT="$BUILD/rootfs"
remove_build() {
  if mountpoint -q "$ROOT/proc" 2>/dev/null; then umount -l "$ROOT/proc" || true; fi
  # never follow a leftover mount out of the build dir
  rm -rf --one-file-system "$BUILD" || die "cannot remove $BUILD (a mount left inside?)"
}
cleanup() {
  local rc=$?
  trap - EXIT
  remove_build
  [ $rc -eq 0 ] || log "failed (exit $rc); build dir removed"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
remove_build   # a stale dir from a killed run
mkdir -p "$BUILD"

START=$(date +%s)
log "debootstrap $SUITE from $MIRROR into $ROOT"
if ! debootstrap --variant=minbase --include="$DEB_INCLUDE" "$SUITE" "$ROOT" "$MIRROR" >"$BUILD/debootstrap.log" 2>&1; then
  tail -n 30 "$BUILD/debootstrap.log" >&2
  if [ -f "$ROOT/debootstrap/debootstrap.log" ]; then tail -n 30 "$ROOT/debootstrap/debootstrap.log" >&2; fi
  die "debootstrap failed (see above)"
fi
log "rootfs ready after $(( $(date +%s) - START ))s"

# The proxy trap: outbound HTTPS here goes through a proxy with its own CA, so pip in the chroot
# needs the host's CA bundle. It is swapped in only for the pip run; the image keeps Debian's.
CA=/etc/ssl/certs/ca-certificates.crt
cp -a "$ROOT$CA" "$BUILD/ca-certificates.crt.debian"
if [ -f "$CA" ]; then cp "$CA" "$ROOT$CA"; fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$ROOT/etc/pip.conf"; fi
mount -t proc proc "$ROOT/proc"

# A clean environment for the chroot: the CA bundle at the path copied above (it beats pip's
# `cert`), proxy and index settings when the host has them, nothing else from the host
# (e.g. PIP_FIND_LINKS would name a host folder).
CENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
      "SSL_CERT_FILE=$CA" "REQUESTS_CA_BUNDLE=$CA" "PIP_CERT=$CA" PIP_DISABLE_PIP_VERSION_CHECK=1
      PIP_NO_CACHE_DIR=1 "PIP_DEFAULT_TIMEOUT=${PIP_DEFAULT_TIMEOUT:-120}")
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY all_proxy ALL_PROXY \
         PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do
  if [ -n "${!v:-}" ]; then CENV+=("$v=${!v}"); fi
done
printf '%s\n' "$PIP_PINS" >"$ROOT/tmp/constraints.txt"

log "venv $IMAGE_PATH + pip install kipoi==$KIPOI_VERSION six (chroot)"
if ! chroot "$ROOT" /usr/bin/env -i "${CENV[@]}" /bin/sh -euc "
    python3 -m venv $IMAGE_PATH
    $IMAGE_PATH/bin/pip install -q -c /tmp/constraints.txt kipoi==$KIPOI_VERSION six
    $IMAGE_PATH/bin/pip freeze --all >/tmp/freeze.txt
    $IMAGE_PATH/bin/python -c 'import kipoi, six'
  " >"$BUILD/pip.log" 2>&1; then
  cat "$BUILD/pip.log" >&2
  die "pip install in the chroot failed (see above)"
fi
GOT=$(chroot "$ROOT" $IMAGE_PATH/bin/python -c 'import kipoi; print(kipoi.__version__)' 2>/dev/null || true)
[ "$GOT" = "$KIPOI_VERSION" ] || die "kipoi version in the image is '$GOT', expected $KIPOI_VERSION"
PYVER=$(chroot "$ROOT" $IMAGE_PATH/bin/python -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
cp "$ROOT/tmp/freeze.txt" "$BUILD/freeze.txt"
umount "$ROOT/proc"

# back to the image's own files; drop caches and host-specific bits
cp -a "$BUILD/ca-certificates.crt.debian" "$ROOT$CA"
rm -f "$ROOT/etc/pip.conf" "$ROOT/tmp/constraints.txt" "$ROOT/tmp/freeze.txt"
: >"$ROOT/etc/resolv.conf"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/lib/apt/lists/* \
       "$ROOT"/root/.cache "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* "$ROOT"/debootstrap \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* 2>/dev/null || true
mkdir -p "$ROOT/var/lib/apt/lists/partial"

log "docker import $REF ($(du -sh --one-file-system "$ROOT" | cut -f1))"
tar -C "$ROOT" --numeric-owner -c . | docker import \
  --change "ENV PATH=$IMAGE_PATH/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change 'ENV HOME=/root' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL org.kipoi-containers.recipe=$HASH" \
  --change 'LABEL org.kipoi-containers.created-by=kipoi_containers' \
  --change "LABEL org.kipoi-containers.kipoi-version=$KIPOI_VERSION" \
  --change "LABEL org.kipoi-containers.python-version=$PYVER" \
  --change "LABEL org.kipoi-containers.debian-suite=$SUITE" \
  --message "kipoi_containers test base image (recipe $HASH)" \
  - "$REF" >/dev/null || die "docker import failed"
docker tag "$REF" "$LATEST"

# record what was installed next to the cache (the pins above come from such a file)
cp "$BUILD/freeze.txt" "$CACHE/base-image-$HASH.freeze.txt"
log "built $REF (kipoi $KIPOI_VERSION, python $PYVER) in $(( $(date +%s) - START ))s; pip freeze: $CACHE/base-image-$HASH.freeze.txt"
echo "$REF"
