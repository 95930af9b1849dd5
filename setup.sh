#!/usr/bin/env bash
# Installs what cloister needs on Debian 12 (run as root, or with sudo
# available): the emulators, GRUB's ISO tools and a C compiler. Quick and
# silent when everything is already there. The Rust toolchain and the
# x86_64-unknown-none target come from rust-toolchain.toml through rustup.
set -euo pipefail

packages=(
    bochs bochs-term bochsbios vgabios   # full-system tier: VT-x in software
    grub-pc-bin grub-common xorriso mtools  # GRUB rescue ISO for seL4 + the VMM
    dosfstools                           # FAT images for the file server's tests
    qemu-system-x86                      # unikernels booted bare
    gcc binutils                         # libsel4 probe, stripping the kernel
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Make sure rustup has the pinned toolchain and its target (no-op when present).
if command -v rustup >/dev/null 2>&1; then
    cd "$(dirname "$0")"
    rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
    rustc --print target-list >/dev/null
    rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-none \
        || rustup target add x86_64-unknown-none
fi
