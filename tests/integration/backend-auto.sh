#!/usr/bin/env bash
# ferryd's backend choice: with --backend auto a host without a usable
# /dev/kvm is no error (one info line says soft is used and why, no
# "error:" line at start); --backend kvm there is one, and so is a domain
# that asks for kvm. On a host with KVM, auto says it uses kvm.
# Usage: tests/integration/backend-auto.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

one_ferryd_script backend-auto "${1:?usage: $0 BUILD_DIR}"
check "ferryd --backend auto starts" start_one_ferryd auto 256M
check "it logs no error at start" bash -c "! grep 'error:' '$TMP/ferryd.out'"
if kvm_usable; then
	check "it says it uses kvm" grep -q "info: backend auto: using kvm" "$TMP/ferryd.out"
	skip "kvm refusals: /dev/kvm works here"
else
	check "one info line says it uses soft and why" \
		test "$(grep -c 'info: backend auto: using soft, as kvm cannot run here: cannot open /dev/kvm' \
			"$TMP/ferryd.out")" = 1
	printf 'name = "k"\nmemory = 32\nbackend = "kvm"\n' >"$TMP/k.cfg"
	check "a domain asking for kvm is refused" \
		bash -c "! timeout 20 '$XL' create '$TMP/k.cfg' 2>/dev/null"
	check "ferryd says why, as an error" \
		grep -q "error: k: the kvm backend cannot run here: cannot open /dev/kvm" \
		"$TMP/ferryd.out"
	stop_ferryd
	check "ferryd --backend kvm refuses to start here" \
		bash -c "! timeout 20 '$FERRYD' --foreground --backend kvm --memory 256M \
			--run-dir '$TMP/run-kvm' --state-dir '$TMP/state-kvm' >'$TMP/kvm.out' 2>&1"
	check "saying why, as an error" \
		grep -q "error: kvm backend: cannot open /dev/kvm" "$TMP/kvm.out"
fi
stop_ferryd
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
