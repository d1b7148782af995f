#!/bin/bash
# Runs every test: builds Ferry normally and with ASan+UBSan, runs the unit
# suites in both builds, then the integration tests against real daemons.
# Tests that need /dev/kvm skip with a reason where it is missing.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" --asan || { echo "test: build failed"; exit 1; }

passed=0 failed=0
failures=()
run() { # name command...
	local name=$1
	shift
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$name")
	fi
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run "unit suites" ctest --test-dir "$root/build" --output-on-failure
run "unit suites (ASan+UBSan)" ctest --test-dir "$root/build-asan" --output-on-failure
for t in "$root"/tests/integration/*.sh; do
	[ -e "$t" ] || continue
	run "integration $(basename "$t" .sh)" timeout 900 bash "$t" "$root/build"
done

echo
if ((failed)); then
	printf 'test: failed: %s\n' "${failures[@]}"
fi
echo "test: $passed passed, $failed failed"
((failed == 0))
