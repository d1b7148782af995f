// SPDX-License-Identifier: MIT
/*
 * The frame format (formats/SPEC.md section 7) without I/O: CRC32C, header packing
 * and checking, payload decoding, and the incremental decoder
 * strm_frame_dec.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "internal-io.h"

#if defined(__x86_64__) && !defined(STRM_CRC32C_PORTABLE)
#include <nmmintrin.h>
#endif

/* ---- little-endian helpers ----------------------------------------------- */

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- CRC32C ---------------------------------------------------------------- */

/* SSE4.2 when the CPU has it (checked once), else slicing-by-8; build with
 * -DSTRM_CRC32C_PORTABLE to test the portable path on x86-64. */
#define CRC32C_POLY 0x82f63b78u /* reflected Castagnoli */
/* Hardware path: three independent streams over blocks of CRC_BLOCK bytes,
 * combined with a table for "shift by CRC_BLOCK zero bytes". */
#define CRC_BLOCK 8192

static uint32_t crc_table[8][256];	    /* slicing-by-8 for the portable path */
static uint32_t crc_shift[4][256];	    /* x^(8*CRC_BLOCK) mod P, per byte lane */
static bool crc_hw __attribute__((unused)); /* unused when portable */
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* a * b mod P in the reflected representation (zlib's multmodp). */
static uint32_t crc_multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ CRC32C_POLY : b >> 1;
	}
	return p;
}

static void crc_init(void)
{
	uint32_t xn = 1u << 31; /* x^0 */
	uint32_t x8 = 1u << 23; /* x^8 */

	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
	/* xn = x^(8 * CRC_BLOCK) mod P */
	for (int i = 0; i < CRC_BLOCK; i++)
		xn = crc_multmodp(xn, x8);
	for (int lane = 0; lane < 4; lane++)
		for (uint32_t v = 0; v < 256; v++)
			crc_shift[lane][v] = crc_multmodp(xn, v << (8 * lane));
#if defined(__x86_64__) && !defined(STRM_CRC32C_PORTABLE)
	crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static inline uint32_t crc_shift_block(uint32_t c)
{
	return crc_shift[0][c & 0xff] ^ crc_shift[1][(c >> 8) & 0xff] ^
	       crc_shift[2][(c >> 16) & 0xff] ^ crc_shift[3][c >> 24];
}

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t len)
{
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= c;
		c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		    crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		    crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		    crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__) && !defined(STRM_CRC32C_PORTABLE)
__attribute__((target("sse4.2"))) static uint32_t crc_hw_run(uint32_t c, const uint8_t *p,
							     size_t len)
{
	uint64_t a = c;

	while (len >= 3 * CRC_BLOCK) {
		uint64_t b = 0, d = 0;

		for (size_t i = 0; i < CRC_BLOCK; i += 8) {
			uint64_t w0, w1, w2;

			memcpy(&w0, p + i, 8);
			memcpy(&w1, p + CRC_BLOCK + i, 8);
			memcpy(&w2, p + 2 * CRC_BLOCK + i, 8);
			a = _mm_crc32_u64(a, w0);
			b = _mm_crc32_u64(b, w1);
			d = _mm_crc32_u64(d, w2);
		}
		a = crc_shift_block((uint32_t)a) ^ (uint32_t)b;
		a = crc_shift_block((uint32_t)a) ^ (uint32_t)d;
		p += 3 * CRC_BLOCK;
		len -= 3 * CRC_BLOCK;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		a = _mm_crc32_u64(a, w);
		p += 8;
		len -= 8;
	}
	c = (uint32_t)a;
	while (len--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}
#endif

uint32_t strm_crc32c(uint32_t crc, const void *buf, size_t len)
{
	uint32_t c = ~crc;

	pthread_once(&crc_once, crc_init);
#if defined(__x86_64__) && !defined(STRM_CRC32C_PORTABLE)
	if (crc_hw)
		return ~crc_hw_run(c, buf, len);
#endif
	return ~crc_sw(c, buf, len);
}

/* ---- codec names ------------------------------------------------------------ */

static const struct strm_codec_ops *const codecs[STRM_FRAME_NCODECS] = {
	[STRM_CODEC_NONE] = &strm_codec_ops_none,
	[STRM_CODEC_LZ4] = &strm_codec_ops_lz4,
	[STRM_CODEC_ZSTD] = &strm_codec_ops_zstd,
};

const struct strm_codec_ops *strm_codec_ops_get(unsigned int id)
{
	return id < STRM_FRAME_NCODECS ? codecs[id] : NULL;
}

const char *strm_codec_name(enum strm_codec c)
{
	const struct strm_codec_ops *ops = strm_codec_ops_get((unsigned int)c);

	return ops ? ops->name : "?";
}

int strm_codec_parse(const char *name, enum strm_codec *out)
{
	for (unsigned int i = 0; i < STRM_FRAME_NCODECS; i++) {
		if (name && !strcmp(name, codecs[i]->name)) {
			*out = codecs[i]->id;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- header ------------------------------------------------------------------ */

/* The crc field: header bytes 0..27, then the stored bytes unless the
 * frame is UNCHECKED. */
static uint32_t frame_crc(const uint8_t hdr[STRM_FRAME_HDR_LEN], const struct strm_frame_hdr *h,
			  const void *stored)
{
	uint32_t crc = strm_crc32c(0, hdr, STRM_FRAME_OFF_CRC);

	return h->flags & STRM_FRAME_F_UNCHECKED ? crc : strm_crc32c(crc, stored, h->stored_len);
}

void strm_frame_hdr_pack(uint8_t out[STRM_FRAME_HDR_LEN], const struct strm_frame_hdr *h,
			 const void *stored)
{
	memcpy(out + STRM_FRAME_OFF_MAGIC, STRM_FRAME_MAGIC, 4);
	out[STRM_FRAME_OFF_VERSION] = STRM_FRAME_VERSION;
	out[STRM_FRAME_OFF_CODEC] = h->codec;
	put16(out + STRM_FRAME_OFF_FLAGS, h->flags);
	put32(out + STRM_FRAME_OFF_RAW, h->raw_len);
	put32(out + STRM_FRAME_OFF_STORED, h->stored_len);
	put64(out + STRM_FRAME_OFF_SEQ, h->seq);
	put32(out + STRM_FRAME_OFF_HDR_CRC, strm_crc32c(0, out, STRM_FRAME_OFF_HDR_CRC));
	put32(out + STRM_FRAME_OFF_CRC, frame_crc(out, h, stored));
}

int strm_frame_hdr_parse(const uint8_t in[STRM_FRAME_HDR_LEN], uint64_t expect_seq,
			 struct strm_frame_hdr *h, const char **why)
{
	const struct strm_codec_ops *ops;

	if (memcmp(in + STRM_FRAME_OFF_MAGIC, STRM_FRAME_MAGIC, 4)) {
		*why = "bad frame magic";
		return -EBADMSG;
	}
	h->version = in[STRM_FRAME_OFF_VERSION];
	if (h->version != STRM_FRAME_VERSION) {
		*why = "unsupported frame version";
		return -EBADMSG;
	}
	if (get32(in + STRM_FRAME_OFF_HDR_CRC) != strm_crc32c(0, in, STRM_FRAME_OFF_HDR_CRC)) {
		*why = "header checksum mismatch";
		return -EBADMSG;
	}
	h->codec = in[STRM_FRAME_OFF_CODEC];
	h->flags = get16(in + STRM_FRAME_OFF_FLAGS);
	h->raw_len = get32(in + STRM_FRAME_OFF_RAW);
	h->stored_len = get32(in + STRM_FRAME_OFF_STORED);
	h->seq = get64(in + STRM_FRAME_OFF_SEQ);
	h->crc = get32(in + STRM_FRAME_OFF_CRC);
	ops = strm_codec_ops_get(h->codec);
	if (!ops) {
		*why = "unknown codec";
		return -EBADMSG;
	}
	if (h->flags & ~STRM_FRAME_F_KNOWN) {
		*why = "unknown frame flags";
		return -EBADMSG;
	}
	if ((h->flags & STRM_FRAME_F_UNCHECKED) && h->codec != STRM_CODEC_NONE) {
		*why = "unchecked frame that is compressed";
		return -EBADMSG;
	}
	if (h->raw_len > STRM_FRAME_RAW_MAX) {
		*why = "raw length over 4 MiB";
		return -EBADMSG;
	}
	if (h->raw_len == 0 && !(h->flags & STRM_FRAME_F_END)) {
		*why = "empty frame that does not end the stream";
		return -EBADMSG;
	}
	if (ops->id == STRM_CODEC_NONE
		    ? h->stored_len != h->raw_len
		    : h->stored_len >= h->raw_len || h->stored_len > ops->bound(h->raw_len) ||
			      h->stored_len == 0) {
		*why = "stored length inconsistent with raw length and codec";
		return -EBADMSG;
	}
	if (h->seq != expect_seq) {
		*why = "sequence gap";
		return -EBADMSG;
	}
	return 0;
}

int strm_frame_decode(const uint8_t hdr[STRM_FRAME_HDR_LEN], const struct strm_frame_hdr *h,
		      const void *stored, void *raw, void *states[STRM_FRAME_NCODECS],
		      const char **why)
{
	const struct strm_codec_ops *ops = strm_codec_ops_get(h->codec);
	int err;

	if (frame_crc(hdr, h, stored) != h->crc) {
		*why = "checksum mismatch";
		return -EBADMSG;
	}
	err = ops->decompress(&states[h->codec], raw, h->raw_len, stored, h->stored_len);
	if (err == -EBADMSG)
		*why = "corrupt compressed data (checksum correct)";
	else if (err)
		*why = "out of memory";
	return err;
}

void strm_frame_states_free(void *states[STRM_FRAME_NCODECS])
{
	for (unsigned int i = 0; i < STRM_FRAME_NCODECS; i++) {
		if (states[i] && codecs[i]->free_state)
			codecs[i]->free_state(states[i]);
		states[i] = NULL;
	}
}

/* ---- incremental decoder ------------------------------------------------------ */

struct strm_frame_dec {
	uint64_t off;	    /* bytes fed so far */
	uint64_t frame_off; /* offset of the current frame's header */
	uint64_t seq;	    /* expected sequence number */
	uint8_t hdr[STRM_FRAME_HDR_LEN];
	size_t hdr_have;
	bool in_payload; /* hdr parsed into h; collecting stored bytes */
	struct strm_frame_hdr h;
	uint8_t *stored;
	size_t stored_have, stored_cap;
	uint8_t *raw;
	size_t raw_cap;
	void *states[STRM_FRAME_NCODECS];
	bool done;
	uint64_t end_off; /* offset of the end frame */
	int err;
	char msg[STRM_IO_MSG_MAX];
};

int strm_frame_dec_new(struct strm_frame_dec **out)
{
	struct strm_frame_dec *dec = calloc(1, sizeof(*dec));

	if (!dec)
		return -ENOMEM;
	*out = dec;
	return 0;
}

void strm_frame_dec_free(struct strm_frame_dec *dec)
{
	if (!dec)
		return;
	strm_frame_states_free(dec->states);
	free(dec->stored);
	free(dec->raw);
	free(dec);
}

bool strm_frame_dec_done(const struct strm_frame_dec *dec)
{
	return dec->done;
}

const char *strm_frame_dec_error(const struct strm_frame_dec *dec)
{
	return dec->msg;
}

static int PRINTF_FMT(3, 4) dec_fail(struct strm_frame_dec *dec, int err, const char *fmt, ...)
{
	va_list ap;

	if (dec->err)
		return dec->err;
	va_start(ap, fmt);
	vsnprintf(dec->msg, sizeof(dec->msg), fmt, ap);
	va_end(ap);
	dec->err = err;
	log_err("frame decoder: %s", dec->msg);
	return err;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *p;

	if (*cap >= need)
		return 0;
	p = realloc(*buf, need);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = need;
	return 0;
}

/* The current frame is complete with its stored bytes at stored. */
static int dec_frame(struct strm_frame_dec *dec, const uint8_t *stored, strm_frame_out_fn fn,
		     void *opaque)
{
	const char *why = "";
	void *raw = (void *)stored;
	int err;

	if (dec->h.codec != STRM_CODEC_NONE) {
		if (grow(&dec->raw, &dec->raw_cap, dec->h.raw_len))
			return dec_fail(dec, -ENOMEM,
					"frame %" PRIu64 " at offset %" PRIu64 ": out of memory",
					dec->h.seq, dec->frame_off);
		raw = dec->raw;
	}
	err = strm_frame_decode(dec->hdr, &dec->h, stored, raw, dec->states, &why);
	if (err)
		return dec_fail(dec, err, "frame %" PRIu64 " at offset %" PRIu64 ": %s", dec->h.seq,
				dec->frame_off, why);
	if (dec->h.raw_len) {
		err = fn(opaque, raw, dec->h.raw_len);
		if (err)
			return dec_fail(dec, err,
					"frame %" PRIu64 " at offset %" PRIu64
					": consumer failed (%d)",
					dec->h.seq, dec->frame_off, err);
	}
	if (dec->h.flags & STRM_FRAME_F_END) {
		dec->done = true;
		dec->end_off = dec->frame_off;
	}
	dec->seq++;
	dec->in_payload = false;
	dec->hdr_have = 0;
	dec->stored_have = 0;
	dec->frame_off = dec->off;
	return 0;
}

int strm_frame_dec_feed(struct strm_frame_dec *dec, const void *buf, size_t len,
			strm_frame_out_fn fn, void *opaque)
{
	const uint8_t *p = buf;
	int err;

	if (dec->err)
		return dec->err;
	while (len) {
		size_t n;

		if (dec->done)
			return dec_fail(dec, -EBADMSG,
					"%zu bytes at offset %" PRIu64
					" after the end frame (frame %" PRIu64 " at offset %" PRIu64
					")",
					len, dec->off, dec->seq - 1, dec->end_off);
		if (!dec->in_payload) {
			const char *why = "";

			n = MIN(len, STRM_FRAME_HDR_LEN - dec->hdr_have);
			memcpy(dec->hdr + dec->hdr_have, p, n);
			dec->hdr_have += n;
			dec->off += n;
			p += n;
			len -= n;
			if (dec->hdr_have < STRM_FRAME_HDR_LEN)
				break;
			err = strm_frame_hdr_parse(dec->hdr, dec->seq, &dec->h, &why);
			if (err == -EBADMSG && !strcmp(why, "sequence gap"))
				return dec_fail(dec, err,
						"frame %" PRIu64 " at offset %" PRIu64
						": sequence gap (got %" PRIu64 ")",
						dec->seq, dec->frame_off, dec->h.seq);
			if (err)
				return dec_fail(dec, err,
						"frame %" PRIu64 " at offset %" PRIu64 ": %s",
						dec->seq, dec->frame_off, why);
			dec->in_payload = true;
			if (dec->h.stored_len == 0) {
				err = dec_frame(dec, NULL, fn, opaque);
				if (err)
					return err;
			}
			continue;
		}
		if (dec->stored_have == 0 && len >= dec->h.stored_len) {
			/* The whole payload is in the caller's buffer: no copy. */
			n = dec->h.stored_len;
			dec->off += n;
			err = dec_frame(dec, p, fn, opaque);
			if (err)
				return err;
			p += n;
			len -= n;
			continue;
		}
		if (grow(&dec->stored, &dec->stored_cap, dec->h.stored_len))
			return dec_fail(dec, -ENOMEM,
					"frame %" PRIu64 " at offset %" PRIu64 ": out of memory",
					dec->seq, dec->frame_off);
		n = MIN(len, dec->h.stored_len - dec->stored_have);
		memcpy(dec->stored + dec->stored_have, p, n);
		dec->stored_have += n;
		dec->off += n;
		p += n;
		len -= n;
		if (dec->stored_have == dec->h.stored_len) {
			err = dec_frame(dec, dec->stored, fn, opaque);
			if (err)
				return err;
		}
	}
	return 0;
}

int strm_frame_dec_finish(struct strm_frame_dec *dec)
{
	if (dec->err)
		return dec->err;
	if (dec->done)
		return 0;
	if (dec->in_payload)
		return dec_fail(dec, -ENODATA,
				"truncated at offset %" PRIu64 ": frame %" PRIu64
				" at offset %" PRIu64 " has %zu of its %" PRIu32 " stored bytes",
				dec->off, dec->seq, dec->frame_off, dec->stored_have,
				dec->h.stored_len);
	if (dec->hdr_have)
		return dec_fail(dec, -ENODATA,
				"truncated at offset %" PRIu64 ": frame %" PRIu64
				" at offset %" PRIu64 " has %zu of its %d header bytes",
				dec->off, dec->seq, dec->frame_off, dec->hdr_have,
				STRM_FRAME_HDR_LEN);
	return dec_fail(dec, -ENODATA,
			"truncated at offset %" PRIu64
			": the stream ends without its end frame (after %" PRIu64 " frames)",
			dec->off, dec->seq);
}
