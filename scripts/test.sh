#!/bin/bash
# Runs every test: builds Ferry normally and with ASan+UBSan, runs the unit
# suites in both builds, then the integration tests against real daemons.
# Tests that need /dev/kvm skip with a reason where it is missing.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# Every step's wall time, printed as it ends and in a table at the end:
# CI's limit is 45 minutes, and the log says where they go.
steps=() secs=()
t_all=$SECONDS
t0=$SECONDS
"$root/scripts/build.sh" --asan || { echo "test: build failed"; exit 1; }
steps+=("builds: normal and ASan+UBSan") secs+=($((SECONDS - t0)))
echo "=== ${steps[-1]}: ${secs[-1]} s"

passed=0 failed=0
failures=()
run() { # name command...
	local name=$1 t0=$SECONDS rc=0
	shift
	echo "=== $name"
	"$@" || rc=$?
	steps+=("$name") secs+=($((SECONDS - t0)))
	echo "=== $name: $((SECONDS - t0)) s"
	if ((rc == 0)); then
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
# Every exported symbol carries its module's prefix (design brief section 8).
run "exported symbols prefixed" "$root/scripts/check-prefixes.sh" "$root/build"
for t in "$root"/tests/integration/*.sh; do
	[ -e "$t" ] || continue
	run "integration $(basename "$t" .sh)" timeout 1500 bash "$t" "$root/build"
done

# What a user may build besides the two builds above: Release with gcc (-O3
# finds warnings -O2 does not) and clang. Built only, no tests run in them.
other_builds() {
	local rc=0 cc type b t0
	for b in gcc:Release clang:RelWithDebInfo; do
		cc=${b%%:*} type=${b#*:} t0=$SECONDS
		if ! { CC=$cc cmake -S "$root" -B "$root/build-$cc-$type" \
			-DCMAKE_BUILD_TYPE="$type" >/dev/null &&
			cmake --build "$root/build-$cc-$type" -j"$(nproc)" \
				>"$root/build-$cc-$type/build.log" 2>&1; }; then
			echo "build $cc $type failed:"
			grep -E 'error|warning' "$root/build-$cc-$type/build.log" | head -20
			rc=1
		fi
		echo "build $cc $type: $((SECONDS - t0)) s"
	done
	return $rc
}
run "builds: gcc Release, clang RelWithDebInfo" other_builds

# Parsers of untrusted input, fuzzed for a bounded time (clang + libFuzzer).
fuzz() {
	local b=$root/build-fuzz t0=$SECONDS targets=() t
	# Only the fuzz targets and what they link: ferryd and xl are built
	# with clang in "other builds" already.
	for t in "$root"/tests/fuzz/fuzz-*.c; do
		t=${t##*/}
		targets+=("${t%.c}")
	done
	CC=clang cmake -S "$root" -B "$b" -DFERRY_FUZZ=ON >/dev/null &&
		cmake --build "$b" -j"$(nproc)" --target "${targets[@]}" >/dev/null || return 1
	echo "build fuzz (clang, libFuzzer): $((SECONDS - t0)) s"
	# Each target is one process on one core for its time: as many at
	# once as there are cores, each printed whole when it ends.
	local rc=0 name out=$(mktemp -d) pids=() names=() i
	for t in "$b"/tests/fuzz/fuzz-*; do
		[ -x "$t" ] || continue
		name=${t##*/fuzz-}
		while (($(jobs -pr | wc -l) >= $(nproc))); do wait -n; done
		fuzz_one "$t" "$name" >"$out/$name" 2>&1 &
		pids+=($!) names+=("$name")
	done
	for i in "${!pids[@]}"; do
		wait "${pids[i]}" || rc=1
		cat "$out/${names[i]}"
	done
	rm -rf "$out"
	return $rc
}
fuzz_one() { # TARGET NAME: fuzzes for FERRY_FUZZ_SECONDS from the corpus
	local t=$1 name=$2 corpus rc=0
	corpus=$(mktemp -d)
	cp -r "$root/tests/fuzz/corpus/$name/." "$corpus/" 2>/dev/null || true
	[ "$name" = elf ] && cp "$root/build/guests/ferry-guest.elf" "$corpus/"
	echo "fuzz-$name: ${FERRY_FUZZ_SECONDS:-20} s"
	if ! (cd "$corpus" && timeout 300 "$t" -max_total_time="${FERRY_FUZZ_SECONDS:-20}" \
		-print_final_stats=1 . >fuzz.log 2>&1); then
		tail -30 "$corpus/fuzz.log"
		rc=1
	else
		grep -E "stat::number_of_executed_units" "$corpus/fuzz.log" || true
	fi
	rm -rf "$corpus"
	return $rc
}
run "fuzz targets" fuzz

echo
echo "test: wall time per step"
for i in "${!steps[@]}"; do
	printf '%6d s  %s\n' "${secs[i]}" "${steps[i]}"
done
printf '%6d s  total\n' $((SECONDS - t_all))
if ((failed)); then
	printf 'test: failed: %s\n' "${failures[@]}"
fi
echo "test: $passed passed, $failed failed"
((failed == 0))
