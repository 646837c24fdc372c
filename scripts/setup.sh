#!/usr/bin/env bash
# Installs what bpfsign's tests, benchmarks and VM need on Debian 12, then
# creates .venv with bpfsign in editable mode. Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  openssl                       # CMS oracle
  clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev gcc   # fixtures + C benchmark harness
  qemu-system-x86 busybox-static cpio xz-utils zstd keyutils  # the Linux 7.x VM
  hyperfine                     # CLI benchmark
  softhsm2                      # PKCS#11 token for the pkcs11 tests
  python3-venv
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# a venv whose creation was interrupted has a python but no pip: make it again
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
