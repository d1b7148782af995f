#!/bin/bash
# Builds Ferry: build/ (release with debug info) and, with --asan,
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
jobs=$(nproc)
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$jobs"
if [ "${1:-}" = --asan ]; then
	cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug \
		-DFERRY_SANITIZE=ON >/dev/null
	cmake --build "$root/build-asan" -j"$jobs"
fi
