// SPDX-License-Identifier: MIT
/* The frame layer: writer/reader filters and the incremental decoder. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "frame-data.h"
#include "stream/io.h"

static void quiet(void)
{
	log_set_stderr(0);
}

static const size_t odd_sizes[] = {1, 7, 4093, 3, 65537, 300001, 511, 4096, 13, 262144};
#define N_ODD (sizeof(odd_sizes) / sizeof(odd_sizes[0]))

static enum strm_codec codec_of(const char *name)
{
	enum strm_codec c = STRM_CODEC_NONE;

	cr_assert_eq(strm_codec_parse(name, &c), 0, "codec %s", name);
	return c;
}

/* Frames data with codec into memory; returns the stream (malloc'd). */
static uint8_t *frame_mem(const uint8_t *data, size_t len, enum strm_codec codec,
			  uint32_t frame_size, size_t *out_len, struct strm_frame_stats *st)
{
	struct strm_io *mem, *fw;
	const void *bytes;
	uint8_t *copy;
	size_t pos = 0;

	cr_assert_eq(strm_io_mem_writer(&mem), 0);
	cr_assert_eq(strm_io_frame_writer(mem, codec, frame_size, &fw), 0);
	for (unsigned int i = 0; pos < len; i++) {
		size_t n = odd_sizes[i % N_ODD];

		n = n < len - pos ? n : len - pos;
		cr_assert_eq(strm_io_write(fw, data + pos, n), 0, "%s", strm_io_error(fw));
		pos += n;
		if (i == 5)
			cr_assert_eq(strm_io_flush(fw), 0);
	}
	cr_assert_eq(strm_io_offset(fw), len);
	cr_assert_eq(strm_io_finish(fw), 0, "%s", strm_io_error(fw));
	if (st)
		cr_assert_eq(strm_io_frame_stats(fw, st), 0);
	/* Memory authenticates nothing: every payload is checksummed. */
	if (st)
		cr_assert_eq(st->frames_unchecked, 0);
	bytes = strm_io_mem_data(mem, out_len);
	cr_assert_eq(strm_io_offset(mem), *out_len);
	copy = malloc(*out_len ? *out_len : 1);
	memcpy(copy, bytes, *out_len);
	cr_assert_eq(strm_io_close(fw), 0);
	return copy;
}

/* Reads a frame reader to its end (0) or first error (returned); *got
 * says how many bytes came out, into out (cap bytes; more is an error). */
static int read_all(struct strm_io *r, uint8_t *out, size_t cap, size_t *got)
{
	*got = 0;
	for (unsigned int i = 0;; i++) {
		size_t n = odd_sizes[(i + 4) % N_ODD];
		ssize_t k;

		n = n < cap - *got ? n : cap - *got;
		if (!n)
			n = 1; /* asks past the expected end: must be 0 or an error */
		k = strm_io_read(r, *got + n <= cap ? out + *got : (uint8_t[1]){0}, n);
		if (k <= 0)
			return (int)k;
		if (*got + (size_t)k > cap)
			return -E2BIG;
		*got += (size_t)k;
	}
}

static int read_mem(const uint8_t *s, size_t len, uint8_t *out, size_t cap, size_t *got, char *msg,
		    size_t msg_len)
{
	struct strm_io *mem, *fr;
	int rc;

	cr_assert_eq(strm_io_mem_reader(s, len, &mem), 0);
	cr_assert_eq(strm_io_frame_reader(mem, &fr), 0);
	rc = read_all(fr, out, cap, got);
	snprintf(msg, msg_len, "%s", strm_io_error(fr));
	strm_io_close(fr);
	return rc;
}

struct sink {
	uint8_t *buf;
	size_t len, cap;
	unsigned int calls;
};

static int sink_out(void *opaque, const void *raw, size_t len)
{
	struct sink *s = opaque;

	s->calls++;
	if (len > s->cap - s->len)
		return -E2BIG;
	memcpy(s->buf + s->len, raw, len);
	s->len += len;
	return 0;
}

/* Feeds s through the incremental decoder in pieces of step bytes (0: all
 * at once), then finishes. Output in sink. */
static int dec_mem(const uint8_t *s, size_t len, size_t step, struct sink *out, char *msg,
		   size_t msg_len)
{
	struct strm_frame_dec *dec;
	int rc = 0;

	cr_assert_eq(strm_frame_dec_new(&dec), 0);
	if (!step)
		step = len ? len : 1;
	for (size_t pos = 0; pos < len && !rc; pos += step)
		rc = strm_frame_dec_feed(dec, s + pos, step < len - pos ? step : len - pos,
					 sink_out, out);
	if (!rc)
		rc = strm_frame_dec_finish(dec);
	if (!rc)
		cr_assert(strm_frame_dec_done(dec));
	snprintf(msg, msg_len, "%s", strm_frame_dec_error(dec));
	strm_frame_dec_free(dec);
	return rc;
}

/* Checks a stream against formats/SPEC.md section 7 with the test's own parser. */
static void check_spec(const uint8_t *s, size_t len, enum strm_codec codec, uint32_t frame_size)
{
	size_t pos = 0;
	uint64_t seq = 0;
	bool end = false;

	while (pos < len) {
		const uint8_t *h = s + pos;
		uint32_t raw = fd_get32(h + 8), stored = fd_get32(h + 12);

		cr_assert(!end, "bytes after the end frame");
		cr_assert(pos + FD_HDR_LEN + stored <= len);
		cr_assert_eq(memcmp(h, "FRRY", 4), 0);
		cr_assert_eq(h[4], 1);
		cr_assert(h[5] == 0 || h[5] == (uint8_t)codec, "codec %u", h[5]);
		cr_assert_eq(fd_get32(h + 16), (uint32_t)seq);
		cr_assert_eq(fd_get32(h + 20), 0);
		cr_assert_eq(fd_get32(h + 24), fd_crc32c(0, h, 24));
		cr_assert_eq(fd_get32(h + 28),
			     fd_crc32c(fd_crc32c(0, h, 28), h + FD_HDR_LEN, stored));
		cr_assert_leq(raw, frame_size);
		cr_assert(h[5] == 0 ? stored == raw : stored < raw);
		end = h[6] & 1;
		pos += FD_HDR_LEN + stored;
		seq++;
	}
	cr_assert(end, "no end frame");
	cr_assert_eq(pos, len);
}

/* ---- round trips ----------------------------------------------------------- */

struct rt_param {
	char codec[8];
	uint32_t frame_size;
	char sink[8]; /* "mem" or "fd" */
};

ParameterizedTestParameters(frame, round_trip)
{
	static struct rt_param p[12];
	static const char *const codecs[] = {"none", "lz4", "zstd"};
	static const uint32_t sizes[] = {4096, 256u << 10};
	static const char *const sinks[] = {"mem", "fd"};
	size_t n = 0;

	for (int c = 0; c < 3; c++)
		for (int s = 0; s < 2; s++)
			for (int k = 0; k < 2; k++) {
				snprintf(p[n].codec, sizeof(p[n].codec), "%s", codecs[c]);
				p[n].frame_size = sizes[s];
				snprintf(p[n].sink, sizeof(p[n].sink), "%s", sinks[k]);
				n++;
			}
	return cr_make_param_array(struct rt_param, p, n);
}

ParameterizedTest(struct rt_param *p, frame, round_trip, .init = quiet, .timeout = 120)
{
	size_t len = (6u << 20) + 4321, got = 0, slen;
	uint8_t *data = fd_mix(len, 11), *back = malloc(len), *s;
	enum strm_codec codec = codec_of(p->codec);
	struct strm_frame_stats st;
	struct strm_io *r;
	char msg[256];
	int rc;

	if (!strcmp(p->sink, "mem")) {
		s = frame_mem(data, len, codec, p->frame_size, &slen, &st);
		rc = read_mem(s, slen, back, len, &got, msg, sizeof(msg));
		cr_assert_eq(rc, 0, "%s", msg);
	} else {
		FILE *tf = tmpfile();
		struct strm_io *fdw, *fw;

		cr_assert_not_null(tf);
		cr_assert_eq(strm_io_fd(fileno(tf), false, &fdw), 0);
		cr_assert_eq(strm_io_frame_writer(fdw, codec, p->frame_size, &fw), 0);
		for (size_t pos = 0, i = 0; pos < len; i++) {
			size_t n = odd_sizes[i % N_ODD];

			n = n < len - pos ? n : len - pos;
			cr_assert_eq(strm_io_write(fw, data + pos, n), 0);
			pos += n;
		}
		cr_assert_eq(strm_io_finish(fw), 0);
		cr_assert_eq(strm_io_frame_stats(fw, &st), 0);
		slen = (size_t)strm_io_offset(fdw);
		cr_assert_eq(strm_io_close(fw), 0);
		cr_assert_eq(lseek(fileno(tf), 0, SEEK_SET), 0);
		s = malloc(slen);
		cr_assert_eq(pread(fileno(tf), s, slen, 0), (ssize_t)slen);
		cr_assert_eq(strm_io_fd(fileno(tf), false, &fdw), 0);
		cr_assert_eq(strm_io_frame_reader(fdw, &r), 0);
		rc = read_all(r, back, len, &got);
		cr_assert_eq(rc, 0, "%s", strm_io_error(r));
		cr_assert_eq(strm_io_offset(r), len);
		cr_assert_eq(strm_io_offset(fdw), slen);
		cr_assert_eq(strm_io_close(r), 0);
		fclose(tf);
	}
	cr_assert_eq(got, len);
	cr_assert_eq(memcmp(back, data, len), 0);
	cr_assert_eq(st.raw_bytes, len);
	cr_assert_eq(st.stored_bytes, slen);
	check_spec(s, slen, codec, p->frame_size);
	if (codec != STRM_CODEC_NONE)
		cr_assert_lt(slen, len / 2 + len / 4, "%s compresses mix", p->codec);

	/* The incremental decoder agrees, whole and in odd pieces. */
	{
		struct sink out = {.buf = back, .cap = len};

		memset(back, 0, len);
		cr_assert_eq(dec_mem(s, slen, 0, &out, msg, sizeof(msg)), 0, "%s", msg);
		cr_assert_eq(out.len, len);
		cr_assert_eq(memcmp(back, data, len), 0);
		out.len = 0;
		memset(back, 0, len);
		cr_assert_eq(dec_mem(s, slen, 4099, &out, msg, sizeof(msg)), 0, "%s", msg);
		cr_assert_eq(out.len, len);
		cr_assert_eq(memcmp(back, data, len), 0);
	}
	free(s);
	free(data);
	free(back);
}

Test(frame, byte_by_byte_equals_at_once, .init = quiet, .timeout = 120)
{
	size_t len = (1u << 20) + 999;
	uint8_t *data = fd_mix(len, 12);
	const enum strm_codec codecs[] = {STRM_CODEC_NONE, STRM_CODEC_LZ4, STRM_CODEC_ZSTD};

	for (int c = 0; c < 3; c++) {
		size_t slen;
		uint8_t *s = frame_mem(data, len, codecs[c], 4096 * 3, &slen, NULL);
		struct sink a = {.buf = malloc(len), .cap = len};
		struct sink b = {.buf = malloc(len), .cap = len};
		char msg[256];

		cr_assert_eq(dec_mem(s, slen, 0, &a, msg, sizeof(msg)), 0, "%s", msg);
		cr_assert_eq(dec_mem(s, slen, 1, &b, msg, sizeof(msg)), 0, "%s", msg);
		cr_assert_eq(a.len, len);
		cr_assert_eq(b.len, len);
		cr_assert_eq(memcmp(a.buf, data, len), 0);
		cr_assert_eq(memcmp(b.buf, data, len), 0);
		cr_assert_eq(a.calls, b.calls, "one callback per frame either way");
		free(a.buf);
		free(b.buf);
		free(s);
	}
	free(data);
}

Test(frame, mix_compresses_2x, .init = quiet, .timeout = 120)
{
	size_t len = 32u << 20;
	uint8_t *data = fd_mix(len, 13);
	const enum strm_codec codecs[] = {STRM_CODEC_LZ4, STRM_CODEC_ZSTD};

	for (int c = 0; c < 2; c++) {
		struct strm_frame_stats st;
		size_t slen;
		uint8_t *s = frame_mem(data, len, codecs[c], 0, &slen, &st);
		double ratio = (double)len / (double)slen;

		cr_log_info("%s on mix, 256 KiB frames: ratio %.2f (%" PRIu64 " of %" PRIu64
			    " frames stored raw)",
			    strm_codec_name(codecs[c]), ratio, st.frames_stored_raw, st.frames);
		cr_assert_geq(ratio, 2.0, "%s ratio %.2f", strm_codec_name(codecs[c]), ratio);
		free(s);
	}
	free(data);
}

Test(frame, incompressible_is_stored_raw, .init = quiet)
{
	size_t len = (1u << 20) + 5;
	uint8_t *data = malloc(len);
	const enum strm_codec codecs[] = {STRM_CODEC_LZ4, STRM_CODEC_ZSTD};

	fd_random(data, len, 14);
	for (int c = 0; c < 2; c++) {
		struct strm_frame_stats st;
		size_t slen, offs[64], n;
		uint8_t *s = frame_mem(data, len, codecs[c], 65536, &slen, &st);

		n = fd_frame_offsets(s, slen, offs, 64);
		cr_assert_eq(n, st.frames);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(s[offs[i] + 5], 0, "frame %zu codec none", i);
			cr_assert_eq(fd_get32(s + offs[i] + 8), fd_get32(s + offs[i] + 12));
		}
		cr_assert_eq(st.frames_stored_raw, st.frames, "the end frame carries the tail");
		cr_assert_eq(slen, len + n * FD_HDR_LEN);
		free(s);
	}
	free(data);
}

/* ---- auto: compress when the link holds the sender up ---------------------- */

/* The link: a socket read at about 16 MiB/s (64 KiB every 4 ms), kept. */
struct slow_link {
	int fd;
	uint8_t *buf;
	size_t len, cap;
};

static void *slow_link_main(void *arg)
{
	struct slow_link *l = arg;
	ssize_t n;

	for (;;) {
		if (l->cap - l->len < 65536) {
			l->cap *= 2;
			l->buf = realloc(l->buf, l->cap);
			cr_assert(l->buf);
		}
		n = read(l->fd, l->buf + l->len, 65536);
		if (n <= 0)
			break;
		l->len += (size_t)n;
		usleep(4000);
	}
	return NULL;
}

/* Frames data with auto lz4 over the slow link; the stats, and the stream
 * decoded back equals data. */
static void auto_over_slow_link(const uint8_t *data, size_t len, struct strm_frame_stats *st)
{
	struct slow_link l = {.cap = 1 << 20};
	struct strm_io *lower, *fw;
	uint8_t *back = malloc(len);
	size_t got;
	char msg[256];
	pthread_t t;
	int sv[2];

	l.buf = malloc(l.cap);
	cr_assert(back && l.buf);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	l.fd = sv[1];
	cr_assert_eq(pthread_create(&t, NULL, slow_link_main, &l), 0);
	cr_assert_eq(strm_io_fd(sv[0], true, &lower), 0);
	cr_assert_eq(strm_io_frame_writer(lower, STRM_CODEC_LZ4, 0, &fw), 0);
	cr_assert_eq(strm_io_frame_writer_auto(fw, 0), 0);
	for (size_t pos = 0; pos < len; pos += 1 << 20)
		cr_assert_eq(strm_io_write(fw, data + pos,
					   len - pos < (1u << 20) ? len - pos : 1u << 20),
			     0, "%s", strm_io_error(fw));
	cr_assert_eq(strm_io_finish(fw), 0, "%s", strm_io_error(fw));
	cr_assert_eq(strm_io_frame_stats(fw, st), 0);
	cr_assert_eq(strm_io_close(fw), 0);
	pthread_join(t, NULL);
	close(sv[1]);
	cr_assert_eq(read_mem(l.buf, l.len, back, len, &got, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(got, len);
	cr_assert_eq(memcmp(back, data, len), 0);
	free(back);
	free(l.buf);
}

/* Guest-like memory over a link far slower than lz4: after the first
 * measuring window auto compresses (it sent everything raw when each
 * write's own time was its measure: a socket buffer takes a write at
 * memory speed). */
Test(frame, auto_compresses_over_a_slow_link, .init = quiet, .timeout = 60)
{
	size_t len = 24u << 20;
	uint8_t *data = fd_mix(len, 21);
	struct strm_frame_stats st;

	auto_over_slow_link(data, len, &st);
	cr_log_info("auto, mix over ~16 MiB/s: %" PRIu64 " of %" PRIu64 " frames raw, ratio %.2f",
		    st.frames_stored_raw, st.frames,
		    (double)st.raw_bytes / (double)st.stored_bytes);
	cr_assert_leq(st.frames_stored_raw * 3, st.frames, "%" PRIu64 " of %" PRIu64 " frames raw",
		      st.frames_stored_raw, st.frames);
	free(data);
}

/* The same link, random bytes: compressing cannot help, frames go raw. */
Test(frame, auto_sends_incompressible_raw_over_a_slow_link, .init = quiet, .timeout = 60)
{
	size_t len = 8u << 20;
	uint8_t *data = malloc(len);
	struct strm_frame_stats st;

	fd_random(data, len, 22);
	auto_over_slow_link(data, len, &st);
	cr_assert_eq(st.frames_stored_raw, st.frames - 1, "%" PRIu64 " of %" PRIu64 " frames raw",
		     st.frames_stored_raw, st.frames);
	free(data);
}

/* A reader that takes 1 ms per raw frame and 8 ms per compressed one (as
 * a receiver whose decompression competes with everything else for the
 * same cores): compressed frames move fewer guest bytes a second. */
static void *costly_reader_main(void *arg)
{
	int fd = *(int *)arg;
	static uint8_t buf[(4u << 20) + 64];

	for (;;) {
		size_t got = 0, len;
		uint8_t codec;

		while (got < FD_HDR_LEN) {
			ssize_t n = read(fd, buf + got, FD_HDR_LEN - got);

			if (n <= 0)
				return NULL;
			got += (size_t)n;
		}
		len = fd_get32(buf + 12);
		codec = buf[5];
		while (len) {
			ssize_t n = read(fd, buf, len);

			if (n <= 0)
				return NULL;
			len -= (size_t)n;
		}
		usleep(codec ? 8000 : 1000);
	}
}

/* The model says compress (the writer waits on its reader, lz4 outruns
 * it), but what lz4 windows achieve is below what raw ones did: auto goes
 * back to raw (it sent lz4 to the end when the model alone decided). */
Test(frame, auto_drops_a_codec_that_moves_less_than_raw, .init = quiet, .timeout = 60)
{
	size_t len = 96u << 20;
	uint8_t *data = fd_mix(len, 24);
	struct strm_io *lower, *fw;
	struct strm_frame_stats st;
	pthread_t t;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(pthread_create(&t, NULL, costly_reader_main, &sv[1]), 0);
	cr_assert_eq(strm_io_fd(sv[0], true, &lower), 0);
	cr_assert_eq(strm_io_frame_writer(lower, STRM_CODEC_LZ4, 0, &fw), 0);
	cr_assert_eq(strm_io_frame_writer_auto(fw, 0), 0);
	for (size_t pos = 0; pos < len; pos += 1 << 20)
		cr_assert_eq(strm_io_write(fw, data + pos, 1u << 20), 0, "%s", strm_io_error(fw));
	cr_assert_eq(strm_io_finish(fw), 0, "%s", strm_io_error(fw));
	cr_assert_eq(strm_io_frame_stats(fw, &st), 0);
	cr_assert_eq(strm_io_close(fw), 0);
	pthread_join(t, NULL);
	close(sv[1]);
	cr_log_info("auto, reader slower on compressed frames: %" PRIu64 " of %" PRIu64
		    " frames raw",
		    st.frames_stored_raw, st.frames);
	cr_assert_geq(st.frames_stored_raw * 10, st.frames * 6, "%" PRIu64 " of %" PRIu64 " raw",
		      st.frames_stored_raw, st.frames);
	free(data);
}

/* ---- corruption ------------------------------------------------------------ */

static uint8_t *small_stream(enum strm_codec codec, uint8_t **data, size_t *len, size_t *slen)
{
	*len = 3 * 4096 + 1000;
	*data = fd_mix(*len, 15);
	return frame_mem(*data, *len, codec, 4096, slen, NULL);
}

static bool is_prefix(const uint8_t *out, size_t got, const uint8_t *data, size_t len)
{
	return got <= len && !memcmp(out, data, got);
}

Test(frame, every_bit_flip_is_detected, .init = quiet, .timeout = 300)
{
	const enum strm_codec codecs[] = {STRM_CODEC_NONE, STRM_CODEC_LZ4, STRM_CODEC_ZSTD};

	for (int c = 0; c < 3; c++) {
		size_t len, slen;
		uint8_t *data, *s = small_stream(codecs[c], &data, &len, &slen);
		uint8_t *bad = malloc(slen), *out = malloc(len);

		for (size_t bit = 0; bit < slen * 8; bit++) {
			struct sink sk = {.buf = out, .cap = len};
			char msg[256];
			size_t got;
			int rc;

			memcpy(bad, s, slen);
			bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			rc = read_mem(bad, slen, out, len, &got, msg, sizeof(msg));
			cr_assert_eq(rc, -EBADMSG, "%s bit %zu: reader rc %d (%s)",
				     strm_codec_name(codecs[c]), bit, rc, msg);
			cr_assert(strstr(msg, "checksum") || strstr(msg, "magic") ||
					  strstr(msg, "version"),
				  "bit %zu: %s", bit, msg);
			cr_assert(is_prefix(out, got, data, len), "bit %zu: wrong data", bit);
			rc = dec_mem(bad, slen, 0, &sk, msg, sizeof(msg));
			cr_assert_eq(rc, -EBADMSG, "bit %zu: decoder rc %d (%s)", bit, rc, msg);
			cr_assert(is_prefix(out, sk.len, data, len), "bit %zu: wrong data", bit);
		}
		free(bad);
		free(out);
		free(data);
		free(s);
	}
}

Test(frame, truncation_at_every_offset, .init = quiet, .timeout = 300)
{
	const enum strm_codec codecs[] = {STRM_CODEC_NONE, STRM_CODEC_LZ4, STRM_CODEC_ZSTD};

	for (int c = 0; c < 3; c++) {
		size_t len, slen;
		uint8_t *data, *s = small_stream(codecs[c], &data, &len, &slen);
		uint8_t *out = malloc(len);

		for (size_t cut = 0; cut < slen; cut++) {
			struct sink sk = {.buf = out, .cap = len};
			char msg[256], want[64];
			size_t got;
			int rc;

			snprintf(want, sizeof(want), "truncated at offset %zu", cut);
			rc = read_mem(s, cut, out, len, &got, msg, sizeof(msg));
			cr_assert_eq(rc, -ENODATA, "cut %zu: reader rc %d (%s)", cut, rc, msg);
			cr_assert(strstr(msg, want), "cut %zu: %s", cut, msg);
			cr_assert(is_prefix(out, got, data, len));
			rc = dec_mem(s, cut, 0, &sk, msg, sizeof(msg));
			cr_assert_eq(rc, -ENODATA, "cut %zu: decoder rc %d (%s)", cut, rc, msg);
			cr_assert(strstr(msg, want), "cut %zu: %s", cut, msg);
			cr_assert(is_prefix(out, sk.len, data, len));
		}
		free(out);
		free(data);
		free(s);
	}
}

Test(frame, garbage_after_end_frame_is_refused, .init = quiet)
{
	size_t len, slen, offs[16], n;
	uint8_t *data, *s = small_stream(STRM_CODEC_LZ4, &data, &len, &slen);
	uint8_t *out = malloc(len);
	static const size_t extra[] = {1, 31, 32, 4096};

	n = fd_frame_offsets(s, slen, offs, 16);
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		uint8_t *g = calloc(1, slen + extra[i]);
		struct sink sk = {.buf = out, .cap = len};
		char msg[256], want[128];
		size_t got;
		int rc;

		memcpy(g, s, slen);
		if (extra[i] >= slen - offs[n - 1])
			memcpy(g + slen, s + offs[n - 1], slen - offs[n - 1]); /* a 2nd end */
		snprintf(want, sizeof(want),
			 "at offset %zu after the end frame (frame %zu at "
			 "offset %zu)",
			 slen, n - 1, offs[n - 1]);
		rc = read_mem(g, slen + extra[i], out, len, &got, msg, sizeof(msg));
		cr_assert_eq(rc, -EBADMSG, "extra %zu: %d %s", extra[i], rc, msg);
		cr_assert(strstr(msg, want), "%s", msg);
		cr_assert_eq(got, len, "the data before it is delivered");
		cr_assert_eq(memcmp(out, data, len), 0);
		rc = dec_mem(g, slen + extra[i], 0, &sk, msg, sizeof(msg));
		cr_assert_eq(rc, -EBADMSG, "extra %zu: %d %s", extra[i], rc, msg);
		cr_assert(strstr(msg, want), "%s", msg);
		free(g);
	}
	free(out);
	free(data);
	free(s);
}

/* One hostile header (checksums correct) followed by payload bytes. */
static void expect_refused(const uint8_t *hdr, const void *payload, size_t plen, const char *want)
{
	uint8_t *s = malloc(FD_HDR_LEN + plen + 1), out[64];
	struct sink sk = {.buf = out, .cap = sizeof(out)};
	char msg[256];
	size_t got;
	int rc;

	memcpy(s, hdr, FD_HDR_LEN);
	if (plen)
		memcpy(s + FD_HDR_LEN, payload, plen);
	/* Refused from the header alone, before any payload byte is read or a
	 * buffer for it allocated: an error, not a truncation. */
	rc = read_mem(s, FD_HDR_LEN + plen, out, sizeof(out), &got, msg, sizeof(msg));
	cr_assert_eq(rc, -EBADMSG, "%s: reader %d %s", want, rc, msg);
	cr_assert(strstr(msg, want), "want '%s': %s", want, msg);
	cr_assert(!strncmp(msg, "frame 0 at offset 0: ", 21), "%s", msg);
	cr_assert_eq(got, 0);
	rc = dec_mem(s, FD_HDR_LEN + plen, 0, &sk, msg, sizeof(msg));
	cr_assert_eq(rc, -EBADMSG, "%s: decoder %d %s", want, rc, msg);
	cr_assert(strstr(msg, want), "want '%s': %s", want, msg);
	cr_assert_eq(sk.len, 0);
	free(s);
}

Test(frame, hostile_headers_are_refused, .init = quiet)
{
	uint8_t h[FD_HDR_LEN], junk[4096];

	fd_random(junk, sizeof(junk), 16);
	fd_frame_hdr(h, 1, 0, 0, (4u << 20) + 1, (4u << 20) + 1, 0, NULL);
	expect_refused(h, NULL, 0, "raw length over 4 MiB");
	fd_frame_hdr(h, 1, 0, 1, 0xffffffffu, 0xffffffffu, 0, NULL);
	expect_refused(h, NULL, 0, "raw length over 4 MiB");
	fd_frame_hdr(h, 1, 1, 0, 4u << 20, 0xffffffffu, 0, NULL);
	expect_refused(h, NULL, 0, "stored length");
	fd_frame_hdr(h, 1, 2, 0, 4096, 4096, 0, junk);
	expect_refused(h, junk, 4096, "stored length"); /* compressed, not smaller */
	fd_frame_hdr(h, 1, 0, 0, 4096, 4095, 0, junk);
	expect_refused(h, junk, 4095, "stored length");
	fd_frame_hdr(h, 1, 1, 0, 4096, 0, 0, NULL);
	expect_refused(h, NULL, 0, "stored length");
	fd_frame_hdr(h, 1, 3, 0, 100, 50, 0, junk);
	expect_refused(h, junk, 50, "unknown codec");
	fd_frame_hdr(h, 1, 255, 0, 100, 50, 0, junk);
	expect_refused(h, junk, 50, "unknown codec");
	fd_frame_hdr(h, 2, 0, 0, 100, 100, 0, junk);
	expect_refused(h, junk, 100, "unsupported frame version");
	fd_frame_hdr(h, 1, 0, 4, 100, 100, 0, junk);
	expect_refused(h, junk, 100, "unknown frame flags");
	/* UNCHECKED (bit 1) is for raw frames only: a compressed payload is
	 * always checked before a decompressor sees it. */
	fd_frame_hdr(h, 1, 1, 2, 4096, 100, 0, NULL);
	expect_refused(h, junk, 100, "unchecked frame that is compressed");
	fd_frame_hdr(h, 1, 0, 0, 0, 0, 0, NULL);
	expect_refused(h, NULL, 0, "empty frame");
	fd_frame_hdr(h, 1, 0, 1, 100, 100, 1, junk);
	expect_refused(h, junk, 100, "sequence gap (got 1)");
	fd_frame_hdr(h, 1, 0, 1, 100, 100, 1ull << 40, junk);
	expect_refused(h, junk, 100, "sequence gap");
	memcpy(h, "FRRZ", 4);
	expect_refused(h, junk, 100, "bad frame magic");
	/* Garbage compressed data with a correct checksum: the codecs are
	 * given exact bounds and must fail cleanly. */
	for (uint8_t codec = 1; codec <= 2; codec++) {
		for (uint64_t seed = 0; seed < 200; seed++) {
			uint32_t stored = 1 + (uint32_t)(seed * 37 % 4000);

			fd_random(junk, sizeof(junk), seed);
			if (codec == 2 && seed % 2) /* a zstd magic, then junk */
				memcpy(junk, "\x28\xb5\x2f\xfd", 4);
			fd_frame_hdr(h, 1, codec, 1, 4096, stored, 0, junk);
			expect_refused(h, junk, stored, "corrupt compressed data");
		}
	}
}

/* An UNCHECKED raw frame's crc covers its header: the payload is taken as
 * it is (its transport authenticated it), the header still checked. */
Test(frame, unchecked_raw_frames_are_read, .init = quiet)
{
	uint8_t h[FD_HDR_LEN], junk[100], s[FD_HDR_LEN + sizeof(junk)], out[sizeof(junk)];
	struct sink sk = {.buf = out, .cap = sizeof(out)};
	char msg[256];
	size_t got;

	fd_random(junk, sizeof(junk), 23);
	fd_frame_hdr(h, 1, 0, 3, sizeof(junk), sizeof(junk), 0, NULL);
	memcpy(s, h, FD_HDR_LEN);
	memcpy(s + FD_HDR_LEN, junk, sizeof(junk));
	cr_assert_eq(read_mem(s, sizeof(s), out, sizeof(out), &got, msg, sizeof(msg)), 0, "%s",
		     msg);
	cr_assert(got == sizeof(junk) && !memcmp(out, junk, got));
	cr_assert_eq(dec_mem(s, sizeof(s), 0, &sk, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert(sk.len == sizeof(junk) && !memcmp(out, junk, sk.len));
	s[20] ^= 1; /* the header is still covered */
	cr_assert_eq(read_mem(s, sizeof(s), out, sizeof(out), &got, msg, sizeof(msg)), -EBADMSG);
}

Test(frame, errors_name_frame_and_offset, .init = quiet)
{
	size_t len = 1u << 20, slen, offs[32], n;
	uint8_t *data = fd_mix(len, 17), *out = malloc(len);
	uint8_t *s = frame_mem(data, len, STRM_CODEC_NONE, 65536, &slen, NULL);
	uint8_t *bad = malloc(slen);
	struct sink sk = {.buf = out, .cap = len};
	char msg[256], want[128];
	size_t got;

	n = fd_frame_offsets(s, slen, offs, 32);
	cr_assert_eq(n, 17);

	/* A flipped payload byte in frame 12. */
	memcpy(bad, s, slen);
	bad[offs[12] + FD_HDR_LEN + 1000] ^= 0x40;
	snprintf(want, sizeof(want), "frame 12 at offset %zu: checksum mismatch", offs[12]);
	cr_assert_eq(read_mem(bad, slen, out, len, &got, msg, sizeof(msg)), -EBADMSG);
	cr_assert_str_eq(msg, want);
	{
		size_t before = 0;

		for (size_t i = 0; i < 12; i++)
			before += fd_get32(s + offs[i] + 8);
		cr_assert_eq(got, before, "frames 0-11 delivered: %zu", got);
		cr_assert_eq(memcmp(out, data, got), 0);
	}
	cr_assert_eq(dec_mem(bad, slen, 0, &sk, msg, sizeof(msg)), -EBADMSG);
	cr_assert_str_eq(msg, want);
	cr_assert_eq(
		dec_mem(bad, slen, 1, &(struct sink){.buf = out, .cap = len}, msg, sizeof(msg)),
		-EBADMSG);
	cr_assert_str_eq(msg, want);

	/* Frame 2 dropped: a sequence gap at frame 2's place. */
	memcpy(bad, s, offs[2]);
	memcpy(bad + offs[2], s + offs[3], slen - offs[3]);
	snprintf(want, sizeof(want), "frame 2 at offset %zu: sequence gap (got 3)", offs[2]);
	cr_assert_eq(read_mem(bad, slen - (offs[3] - offs[2]), out, len, &got, msg, sizeof(msg)),
		     -EBADMSG);
	cr_assert_str_eq(msg, want);
	sk.len = 0;
	cr_assert_eq(dec_mem(bad, slen - (offs[3] - offs[2]), 0, &sk, msg, sizeof(msg)), -EBADMSG);
	cr_assert_str_eq(msg, want);

	/* Frames 5 and 6 swapped. */
	memcpy(bad, s, slen);
	memcpy(bad + offs[5], s + offs[6], offs[7] - offs[6]);
	memcpy(bad + offs[5] + (offs[7] - offs[6]), s + offs[5], offs[6] - offs[5]);
	snprintf(want, sizeof(want), "frame 5 at offset %zu: sequence gap (got 6)", offs[5]);
	cr_assert_eq(read_mem(bad, slen, out, len, &got, msg, sizeof(msg)), -EBADMSG);
	cr_assert_str_eq(msg, want);

	/* The end frame's flag cleared (checksums redone): truncation. */
	memcpy(bad, s, slen);
	fd_frame_hdr(bad + offs[16], 1, 0, 0, 0, 0, 16, NULL);
	cr_assert_eq(read_mem(bad, slen, out, len, &got, msg, sizeof(msg)), -EBADMSG);
	cr_assert(strstr(msg, "empty frame"), "%s", msg);
	free(bad);
	free(s);
	free(out);
	free(data);
}

Test(frame, bad_arguments)
{
	struct strm_io *mem, *fw;
	struct strm_frame_stats st;

	cr_assert_eq(strm_io_mem_writer(&mem), 0);
	cr_assert_eq(strm_io_frame_writer(mem, (enum strm_codec)7, 0, &fw), -EINVAL);
	cr_assert_eq(strm_io_frame_writer(mem, STRM_CODEC_LZ4, (4u << 20) + 1, &fw), -EINVAL);
	cr_assert_eq(strm_io_frame_stats(mem, &st), -EINVAL);
	cr_assert_eq(strm_io_frame_writer(mem, STRM_CODEC_LZ4, 4u << 20, &fw), 0);
	cr_assert_eq(strm_io_close(fw), 0);
}

/* ---- throughput (printed, not asserted; FERRY_STREAM_BENCH=1) ------------- */

Test(frame, writer_throughput, .init = quiet, .timeout = 600)
{
	size_t len = 256u << 20;
	uint8_t *data;
	const enum strm_codec codecs[] = {STRM_CODEC_NONE, STRM_CODEC_LZ4, STRM_CODEC_ZSTD};

	if (!getenv("FERRY_STREAM_BENCH"))
		cr_skip_test("set FERRY_STREAM_BENCH=1 to measure");
	data = fd_mix(len, 18);
	for (int c = 0; c < 3; c++) {
		struct strm_io *mem, *fw, *rd;
		struct strm_frame_stats st;
		size_t slen, got;
		const void *bytes;
		double t0, t1, t2;
		uint8_t *back = malloc(1u << 20);

		cr_assert_eq(strm_io_mem_writer(&mem), 0);
		cr_assert_eq(strm_io_frame_writer(mem, codecs[c], 0, &fw), 0);
		/* Grow the sink to 1 GiB first (512 MiB + 1 written) so that no
		 * realloc of it lands in the timed part. */
		cr_assert_eq(strm_io_write(mem, data, len), 0);
		cr_assert_eq(strm_io_write(mem, data, len), 0);
		cr_assert_eq(strm_io_write(mem, data, 1), 0);
		t0 = ferry_now_s();
		for (size_t pos = 0; pos < len; pos += 1u << 20)
			cr_assert_eq(strm_io_write(fw, data + pos, 1u << 20), 0);
		cr_assert_eq(strm_io_finish(fw), 0);
		t1 = ferry_now_s();
		cr_assert_eq(strm_io_frame_stats(fw, &st), 0);
		bytes = strm_io_mem_data(mem, &slen);
		bytes = (const uint8_t *)bytes + 2 * len + 1;
		slen -= 2 * len + 1;
		cr_assert_eq(strm_io_mem_reader(bytes, slen, &rd), 0);
		cr_assert_eq(strm_io_frame_reader(rd, &rd), 0);
		t2 = ferry_now_s();
		for (size_t pos = 0; pos < len; pos += got) {
			cr_assert_eq(strm_io_read_full(rd, back, 1u << 20), 0);
			got = 1u << 20;
		}
		t2 = ferry_now_s() - t2;
		cr_assert_eq(strm_io_close(rd), 0);
		fprintf(stderr,
			"frame %-4s 256 MiB mix, 256 KiB frames: write %.0f MB/s, "
			"read %.0f MB/s, ratio %.2f, %" PRIu64 "/%" PRIu64 " frames raw\n",
			strm_codec_name(codecs[c]), (double)len / (t1 - t0) / 1e6,
			(double)len / t2 / 1e6, (double)len / (double)slen, st.frames_stored_raw,
			st.frames);
		cr_assert_eq(strm_io_close(fw), 0);
		free(back);
	}
	free(data);
}

/*
 * A fixed codec backs off frames that will not compress (frame-io.c,
 * COMP_BACKOFF_MAX 16): 32 random frames are mostly sent untried, and
 * mix frames after them are compressed again within 16 frames.
 */
Test(frame, a_fixed_codec_backs_off_incompressible_frames, .init = quiet, .timeout = 60)
{
	size_t half = 8u << 20, slen, got;
	uint8_t *data = malloc(2 * half), *mix = fd_mix(half, 15), *back;
	const enum strm_codec codecs[] = {STRM_CODEC_LZ4, STRM_CODEC_ZSTD};

	cr_assert_not_null(data);
	fd_random(data, half, 16);
	memcpy(data + half, mix, half);
	for (int c = 0; c < 2; c++) {
		struct strm_frame_stats st;
		uint8_t *s = frame_mem(data, 2 * half, codecs[c], 0, &slen, &st);
		struct strm_io *mem, *fr;

		/* 64 frames of 256 KiB and the end frame's tail: tried at
		 * frames 0, 2, 5, 10, 19 of the random ones, then every 17th. */
		cr_log_info("%s: %" PRIu64 " of %" PRIu64 " frames untried, %" PRIu64 " compressed",
			    strm_codec_name(codecs[c]), st.frames_untried, st.frames,
			    st.frames_by_codec[codecs[c]]);
		cr_assert_geq(st.frames_untried, 24, "%s tried %" PRIu64 " random frames",
			      strm_codec_name(codecs[c]), 32 - st.frames_untried);
		cr_assert_geq(st.frames_by_codec[codecs[c]], 32 - 16, "%s compressed %" PRIu64
			      " of the 32 mix frames", strm_codec_name(codecs[c]),
			      st.frames_by_codec[codecs[c]]);
		/* and it reads back as written */
		cr_assert_eq(strm_io_mem_reader(s, slen, &mem), 0);
		cr_assert_eq(strm_io_frame_reader(mem, &fr), 0);
		back = malloc(2 * half);
		cr_assert_eq(read_all(fr, back, 2 * half, &got), 0, "%s", strm_io_error(fr));
		cr_assert_eq(got, 2 * half);
		cr_assert_eq(memcmp(back, data, 2 * half), 0);
		strm_io_close(fr);
		free(back);
		free(s);
	}
	free(mix);
	free(data);
}
