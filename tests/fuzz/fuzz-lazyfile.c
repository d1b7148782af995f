// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: restore/lazy-file.c's scan of a save file for a lazy
 * restore (rst_file_source_open), the input as the file (a memfd). An
 * input it takes must give a state stream the decoder reads to its end or
 * refuses cleanly, and a fetch of every pfn it indexed must return a page
 * or an error with a message; one it refuses must say why. Seeds: the
 * plain save files of tests/fuzz/corpus/restore (copied to corpus/lazyfile).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "restore/lazy.h"
#include "stream/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static int count(void *opaque, const struct strm_rec *rec)
{
	(void)rec;
	++*(uint64_t *)opaque;
	return 0;
}

/* The state stream through the decoder, as the lazy restore reads it. */
static void decode(struct strm_io *io)
{
	struct strm_dec_limits lim = {.max_pfn = 1u << 20};
	struct strm_dec *dec;
	uint8_t buf[4096];
	uint64_t recs = 0;
	ssize_t n;

	if (strm_dec_new(&lim, &dec))
		abort();
	while ((n = strm_io_read(io, buf, sizeof(buf))) > 0)
		if (strm_dec_feed(dec, buf, (size_t)n, count, &recs))
			break;
	strm_dec_free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static uint8_t page[4096];
	struct rst_file_source *src;
	struct strm_io *state;
	char path[64], err[512] = "";
	int fd = memfd_create("lazyfile", MFD_CLOEXEC);

	log_set_level(LOG_ERR);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (rst_file_source_open(path, &src, &state, err, sizeof(err))) {
		if (!err[0])
			abort(); /* refused without saying why */
		close(fd);
		return 0;
	}
	decode(state);
	strm_io_close(state);
	for (uint64_t pfn = 0; pfn < 512; pfn++) {
		err[0] = 0;
		if (rst_file_source_ops.fetch(src, pfn, page, err, sizeof(err)) && !err[0])
			abort();
	}
	rst_file_source_ops.close(src);
	close(fd);
	return 0;
}
