// SPDX-License-Identifier: MIT
/*
 * The golden checkpointed stream: tests/fixtures/ckpt-3epoch.bin is what
 * ckpt_fixture() (tests/common/ckpt-bytes.h) builds, byte for byte, and it
 * restores as three epochs. FERRY_REGEN_FIXTURES=1 (scripts/
 * regen-fixtures.sh) rewrites it and the fuzz seeds made from it:
 * corpus/restore/ckpt-3epoch.bin, ckpt-cut-in-epoch3.bin (the sender died
 * in epoch 3), and corpus/stream/ckpt-3epoch*.bin (the fuzz-stream mode
 * byte first: checkpointed, whole and a byte at a time).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "session.h"

#define FIXTURE "tests/fixtures/ckpt-3epoch.bin"

static void write_file(const char *rel, uint8_t mode, const uint8_t *p, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", FERRY_SOURCE_DIR, rel);
	f = fopen(path, "wb");
	cr_assert(f, "cannot write %s", path);
	if (mode)
		cr_assert_eq(fwrite(&mode, 1, 1, f), 1);
	cr_assert_eq(fwrite(p, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static uint8_t *read_file(const char *rel, size_t *len)
{
	char path[1024];
	uint8_t *p;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", FERRY_SOURCE_DIR, rel);
	f = fopen(path, "rb");
	cr_assert(f, "%s missing: run scripts/regen-fixtures.sh", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_gt(n, 0);
	rewind(f);
	p = malloc((size_t)n);
	cr_assert(p);
	cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

Test(fixture, golden_checkpointed_stream_matches)
{
	struct ckpt c;
	uint8_t *old;
	size_t len;

	ckpt_fixture(&c);
	if (getenv("FERRY_REGEN_FIXTURES")) {
		write_file(FIXTURE, 0, c.p, c.len);
		write_file("tests/fuzz/corpus/restore/ckpt-3epoch.bin", 0, c.p, c.len);
		write_file("tests/fuzz/corpus/restore/ckpt-cut-in-epoch3.bin", 0, c.p,
			   c.epoch_end[3] - 12);
		write_file("tests/fuzz/corpus/stream/ckpt-3epoch.bin", 0x20, c.p, c.len);
		write_file("tests/fuzz/corpus/stream/ckpt-3epoch-bytewise.bin", 0x21, c.p,
			   c.len);
	}
	old = read_file(FIXTURE, &len);
	cr_assert_eq(len, c.len, "%s is %zu bytes, the generator makes %zu (run "
		     "scripts/regen-fixtures.sh, and say why in the commit)", FIXTURE, len, c.len);
	cr_assert_eq(memcmp(old, c.p, len), 0, "%s differs from the generator's bytes",
		     FIXTURE);
	free(old);
	free(c.p);
}

/* The committed file, through an io as a backup reads a connection. */
Test(fixture, committed_stream_restores_three_epochs, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct rst_session_opts o = { .config = ckpt_config };
	struct rst_session *s;
	struct strm_io *io;
	uint32_t domid;
	size_t len;
	uint8_t *p = read_file(FIXTURE, &len);

	cr_assert_eq(rst_session_new(h, &o, &s), 0);
	cr_assert_eq(strm_io_mem_reader(p, len, &io), 0);
	cr_assert_eq(rst_session_read(s, io), 0, "%s", rst_session_error(s));
	cr_assert_eq(rst_session_finish(s), 0, "%s", rst_session_error(s));
	cr_assert_eq(rst_session_committed(s), 3);
	cr_assert_eq(rst_session_domid(s, &domid), 0);
	expect_epoch(h, domid, 3);
	strm_io_close(io);
	rst_session_free(s);
	free(p);
	hyp_destroy(h);
}
