#!/usr/bin/env bash
# xl save / xl restore against a real ferryd, for every backend that runs
# here and every compression: the restored guest's verify workload must
# report zero mismatches after resume and keep sweeping; bad files are
# refused with a clear error and leave nothing behind (a replacement
# config's vcpus and a reserved name too); xl mem-max travels.
# Usage: tests/integration/save-restore.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-save-restore.XXXXXX)
ferryd_pid=

cleanup() {
	stop_ferryd
	rm -rf "$TMP"
}
trap cleanup EXIT

xl() { timeout 120 "$XL" "$@"; }
console() { timeout 2 "$XL" console "$1" 2>/dev/null; }
# wait_console DOMAIN PATTERN COUNT: up to 30 s for COUNT lines matching
wait_console() {
	local i
	for ((i = 0; i < 300; i++)); do
		(( $(console "$1" | grep -c -- "$2") >= $3 )) && return 0
		sleep 0.1
	done
	return 1
}
free_mib() { xl info | awk '$1 == "free_memory" { print $3 }'; }
exists() { xl list "$1" >/dev/null 2>&1; } # of the one ferryd, not lib.bash's

start_ferryd() { # BACKEND
	local run=$TMP/run-$1
	export FERRY_SOCKET=$run/ferryd.sock
	timeout 900 "$FERRYD" --foreground --on-stop destroy --backend "$1" --memory 2G \
		--run-dir "$run" --state-dir "$TMP/state-$1" >"$TMP/ferryd-$1.out" 2>&1 &
	ferryd_pid=$!
	wait_socket "$FERRY_SOCKET"
}

round_trip() { # BACKEND CODEC
	local b=$1 c=$2 f=$TMP/$1-$2.save name=sr-$1-$2
	cat >"$TMP/$name.cfg" <<CFG
name = "$name"
memory = 256
extra = "workload=verify ws=64M rate=20M"
CFG
	xl create "$TMP/$name.cfg" 2>/dev/null || { not_ok "$b/$c: create"; return; }
	check "$b/$c: verify sweeps before the save" wait_console "$name" "verify: sweep" 1
	local before
	before=$(console "$name" | grep -c "verify: sweep")
	check "$b/$c: xl save" xl save "$name" "$f" --compress "$c"
	check "$b/$c: the saved domain is gone" test "$(exists "$name"; echo $?)" = 1
	check "$b/$c: xl stream-dump checks the file" \
		bash -c "timeout 60 '$XL' stream-dump '$f' >'$TMP/dump-$b-$c.txt'"
	check "$b/$c: xl restore" xl restore "$f"
	check "$b/$c: verify reports zero mismatches after resume" \
		wait_console "$name" "verify: resume pages=16384 mismatches=0" 1
	check "$b/$c: the console continues (old lines kept, new sweeps)" \
		wait_console "$name" "verify: sweep" $((before + 1))
	check "$b/$c: no mismatch anywhere" \
		bash -c "! timeout 2 '$XL' console '$name' | grep -q 'verify: mismatch'"
	check "$b/$c: restoring the same file again under -n is a second domain" \
		xl restore -n "$name-2" "$f"
	check "$b/$c: the second copy verifies clean too" \
		wait_console "$name-2" "verify: resume pages=16384 mismatches=0" 1
	check "$b/$c: restoring it again under the same name is refused" \
		bash -c "! timeout 60 '$XL' restore '$f' 2>'$TMP/dup.err' && grep -q 'already' '$TMP/dup.err'"
	xl destroy "$name"
	xl destroy "$name-2"
}

# refused_with FILE NAME ERE: xl restore -n NAME FILE fails saying ERE
refused_with() {
	! timeout 60 "$XL" restore -n "$2" "$1" 2>"$TMP/refused.err" &&
		grep -qE -- "$3" "$TMP/refused.err"
}

refusals() { # BACKEND
	local b=$1 f=$TMP/$1-none.save free0 err
	free0=$(free_mib)
	head -c 100000 "$f" >"$TMP/trunc.save"
	check "$b: a truncated file is refused as truncated" \
		bash -c "! timeout 60 '$XL' restore -n t1 '$TMP/trunc.save' 2>'$TMP/t.err' && grep -qi 'truncat' '$TMP/t.err'"
	cp "$f" "$TMP/flip.save"
	printf '\xff' | dd of="$TMP/flip.save" bs=1 seek=60 conv=notrunc status=none
	check "$b: a corrupt header is refused" \
		bash -c "! timeout 60 '$XL' restore -n t2 '$TMP/flip.save' 2>/dev/null"
	cp "$TMP/$1-lz4.save" "$TMP/flip2.save"
	printf '\x55' | dd of="$TMP/flip2.save" bs=1 seek=300000 conv=notrunc status=none
	check "$b: a corrupt frame is refused naming its offset" \
		bash -c "! timeout 60 '$XL' restore -n t3 '$TMP/flip2.save' 2>'$TMP/f.err' && grep -qi 'offset' '$TMP/f.err'"
	# A hostile xenstore key: the error names the record, the pair and the key.
	python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read())
i = b.rfind(b"memory/target\0"); b[i + 6] = 0x20; open(sys.argv[2], "wb").write(b)' \
		"$f" "$TMP/badkey.save"
	check "$b: a bad xenstore key is refused naming the pair and the key" \
		refused_with "$TMP/badkey.save" t5 "EMULATOR_XENSTORE_DATA at offset [0-9]+: pair [0-9]+ at byte [0-9]+ of the pairs \\(key 'memory target'\\): key byte 6 \\(0x20\\) is not one xenstore allows"
	check "$b: failed restores leave no domain" \
		bash -c "! timeout 10 '$XL' list t1 t2 t3 t5 >/dev/null 2>&1"
	check "$b: failed restores leave no frames behind" test "$(free_mib)" = "$free0"
	err=$(printf 'name = "x"\nmemory = 256\nbackend = "%s"\n' "$([[ $b == kvm ]] && echo soft || echo kvm)")
	echo "$err" >"$TMP/other.cfg"
	check "$b: restoring onto the other backend is refused" \
		bash -c "! timeout 60 '$XL' restore -n t4 '$f' '$TMP/other.cfg' 2>/dev/null"
	# A replacement config cannot change the vCPUs: the stream brings them.
	printf 'name = "t6"\nmemory = 256\nvcpus = 2\n' >"$TMP/vcpus.cfg"
	check "$b: a replacement config's vcpus that differs from the stream's is refused, saying so" \
		bash -c "! timeout 60 '$XL' restore '$f' '$TMP/vcpus.cfg' 2>'$TMP/v.err' &&
			grep -q \"the override's vcpus (2) differs from the saved domain's 1\" '$TMP/v.err'"
	check "$b: ... and no t6 exists" bash -c "! timeout 10 '$XL' list t6 >/dev/null 2>&1"
	check "$b: restoring under a reserved name (-n x--incoming) is refused" \
		refused_with "$f" x--incoming "the name 'x--incoming' is reserved"
	check "$b: ferryd keeps serving" xl list
}

# The domain's maximum as `xl list -l` shows its config.
max_memkb_is() { xl list -l "$1" | grep -q "\"max_memkb\": $2,\$"; }

maxmem_travels() { # BACKEND: xl mem-max survives a save and restore
	local b=$1 name=mm-$1 f=$TMP/mm-$1.save
	cat >"$TMP/$name.cfg" <<CFG
name = "$name"
memory = 64
maxmem = 128
extra = "workload=idle"
CFG
	xl create "$TMP/$name.cfg" 2>/dev/null || { not_ok "$b: maxmem: create"; return; }
	check "$b: a config's maxmem is the domain's maximum" max_memkb_is "$name" 131072
	check "$b: xl mem-max above the memory it was created with is refused, saying why" \
		bash -c "! timeout 20 '$XL' mem-max '$name' 96 2>'$TMP/mm.err' &&
			grep -q 'above the 64 MiB it was created with' '$TMP/mm.err'"
	check "$b: xl mem-max $name 64" xl mem-max "$name" 64
	check "$b: xl list -l shows it" max_memkb_is "$name" 65536
	check "$b: xl save (maxmem)" xl save "$name" "$f"
	check "$b: the saved config carries max_memkb" grep -qa '"max_memkb":65536' "$f"
	check "$b: xl restore (maxmem)" xl restore "$f"
	check "$b: the restored domain keeps 64 MiB, not the config's 128" \
		max_memkb_is "$name" 65536
	xl destroy "$name"
}

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f"; exit 1; }; done
for b in soft kvm; do
	if [[ $b == kvm ]] && ! [[ -r /dev/kvm && -w /dev/kvm ]]; then
		skip "kvm: /dev/kvm is not available here"
		continue
	fi
	if ! start_ferryd "$b"; then not_ok "$b: ferryd starts"; continue; fi
	for c in none lz4 zstd; do round_trip "$b" "$c"; done
	refusals "$b"
	maxmem_travels "$b"
	stop_ferryd
done
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
