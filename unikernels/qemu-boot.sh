#!/bin/sh
# Boots a cloister unikernel ELF bare under QEMU (TCG) through its PVH note.
#   usage: unikernels/qemu-boot.sh <elf> [command line]
# Console (COM1) goes to stdout. The script exits with QEMU's status:
# (code << 1) | 1 for a guest exit code (1 = success), 0 after a triple fault
# (-no-reboot), 124 if the timeout (QEMU_TIMEOUT, default 60 s) ended it.
set -eu
elf=${1:?usage: qemu-boot.sh <elf> [command line]}
cmdline=${2:-}
exec timeout -s KILL "${QEMU_TIMEOUT:-60}" qemu-system-x86_64 \
    -machine q35 -accel tcg -m "${QEMU_MEM:-64}" \
    -kernel "$elf" -append "$cmdline" \
    -display none -serial stdio -monitor none -no-reboot \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04
