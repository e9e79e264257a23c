#!/usr/bin/env bash
# Installs what building and testing kipoi_containers needs on a fresh machine of this
# project's kind (Debian, Rust toolchain, CPython, Docker Engine). Idempotent: a second
# run only checks. Used by `make setup` (and so by `make test`, `make run-local`, .ci/run).
set -euo pipefail

need_apt=()
# command:package — git for zoo access; debootstrap for the test base image; the registry
# with htpasswd (bcrypt) auth and curl for the real-registry tests.
# squashfs-tools, squashfuse, fuse3 and bubblewrap check and boot the SIFs the converter writes.
for tool in git:git debootstrap:debootstrap docker-registry:docker-registry htpasswd:apache2-utils curl:curl unsquashfs:squashfs-tools squashfuse:squashfuse fusermount3:fuse3 bwrap:bubblewrap; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/bin/${tool%%:*}" ] || need_apt+=("${tool##*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import maturin, pytest, requests, yaml, mypy' >/dev/null 2>&1; then
  echo "setup: installing Python build and test tools"
  "$PY" -m pip install -q --disable-pip-version-check "maturin>=1.9.4,<2" "pytest>=7" "requests>=2.28" "pyyaml>=6" "mypy>=1.10"
fi
