#!/usr/bin/env bash
# The built-in guest boots through Xen's PVH entry under another VMM (QEMU,
# software emulation) and runs its workloads on the 8250 UART console.
# Usage: tests/integration/pvh-qemu.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
ELF=$BUILD/guests/ferry-guest.elf
QEMU=$(command -v qemu-system-x86_64)
passed=0 failed=0
if [[ -z $QEMU ]]; then
	echo "skip - qemu-system-x86_64 is not installed (scripts/deps.sh installs it)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# ELF note XEN_ELFNOTE_PHYS32_ENTRY is what QEMU's -kernel looks for.
timeout 20 "$QEMU" -accel tcg -m 128 -kernel "$ELF" -display none -serial stdio \
	-no-reboot -append 'workload=verify ws=8M rate=1M' >"$out" 2>&1
check() { if grep -q -- "$2" "$out"; then passed=$((passed + 1)); echo "ok   - $1";
	else failed=$((failed + 1)); echo "FAIL - $1"; fi; }
check "boots through the PVH entry, on the UART" "ferry-guest: booted vcpu=0 mem=127M on uart"
check "verify sweeps with zero mismatches" "verify: sweep pages=2048 mismatches=0"
if grep -q "mismatches=[1-9]" "$out"; then failed=$((failed + 1)); echo "FAIL - a mismatch"; fi
[[ $failed == 0 ]] || cat "$out" | head -20
echo "$passed passed, $failed failed"
((failed == 0))
