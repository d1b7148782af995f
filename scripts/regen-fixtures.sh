#!/bin/bash
# Rewrites the golden streams (tests/fixtures/*.bin) and the stream fuzz
# corpus (tests/fuzz/corpus/stream/) from the generator compiled into the
# stream test suite (tests/stream/codec-gen.h), and the checkpointed stream
# tests/fixtures/ckpt-3epoch.bin with its fuzz seeds from the restore suite's
# hand-built bytes (tests/common/ckpt-bytes.h). Run it when the format or
# the generator changes on purpose, and say why in the commit; the
# codec_fixtures tests compare these files byte for byte otherwise.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" --target test-stream test-restore
mkdir -p "$root/tests/fixtures" "$root/tests/fuzz/corpus/stream"
FERRY_REGEN_FIXTURES=1 "$build/tests/test-stream" --filter 'codec_fixtures/golden_streams_match' \
	--jobs 1
# The checkpointed stream and its seeds (tests/common/ckpt-bytes.h).
FERRY_REGEN_FIXTURES=1 "$build/tests/test-restore" --filter 'fixture/golden_checkpointed_stream_matches' \
	--jobs 1
ls -l "$root/tests/fixtures" "$root/tests/fuzz/corpus/stream"
