#!/bin/bash
# Builds Ferry: build/ (release with debug info) and, with --asan,
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
jobs=$(nproc)
t0=$SECONDS
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$jobs"
echo "build: build/ (RelWithDebInfo): $((SECONDS - t0)) s"
if [ "${1:-}" = --asan ]; then
	t0=$SECONDS
	cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug \
		-DFERRY_SANITIZE=ON >/dev/null
	cmake --build "$root/build-asan" -j"$jobs"
	echo "build: build-asan/ (ASan+UBSan): $((SECONDS - t0)) s"
fi
