/* SPDX-License-Identifier: MIT */
/*
 * Private to stream/: the strm_io provider API (ops table and base object),
 * the codec ops tables and the frame wire format (formats/SPEC.md section 7).
 */
#ifndef STREAM_INTERNAL_IO_H
#define STREAM_INTERNAL_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/compiler.h"
#include "stream/io.h"

/* ---- strm_io provider API ------------------------------------------------ */

/*
 * One backend or filter. A backend embeds struct strm_io as a member and
 * recovers itself with container_of. io.c does the offset accounting, the
 * sticky error and the NULL checks; hooks see only valid calls made while
 * no error is pending.
 */
struct strm_io_ops {
	const char *name; /* for messages: "fd", "mem", "frame" */
	/* Reads up to len (> 0) bytes: the count, 0 at end, or -errno.
	 * Optional, may be NULL (the io is write-only: -EBADF). */
	ssize_t (*read)(struct strm_io *io, void *buf, size_t len);
	/* Writes all of iov (iovcnt > 0) or fails with -errno. Optional, may
	 * be NULL (the io is read-only: -EBADF). */
	int (*writev)(struct strm_io *io, const struct iovec *iov, int iovcnt);
	/* Pushes buffered bytes down. Optional, may be NULL (nothing buffered). */
	int (*flush)(struct strm_io *io);
	/* Called once, by strm_io_finish or strm_io_close, when the writer
	 * side ends cleanly (no error pending): a frame writer writes its end
	 * frame. Optional, may be NULL (flush is called instead). */
	int (*finish)(struct strm_io *io);
	/* strm_io_set_cancel for backends that wait on an fd. Optional, may
	 * be NULL (-EINVAL). */
	int (*set_cancel)(struct strm_io *io, struct strm_cancel *cancel, int progress_ms);
	/* strm_io_wait_in for backends that wait on an fd: 1, 0 or -errno.
	 * Optional, may be NULL (-EINVAL). */
	int (*wait_in)(struct strm_io *io, int timeout_ms);
	/* Whether every byte through the io is authenticated by it (TLS's
	 * AEAD), so a frame layer above need not checksum what it sends.
	 * Optional, may be NULL (false). */
	bool (*authenticates)(const struct strm_io *io);
	/* The socket the io writes to, or -1. Optional, may be NULL (-1). */
	int (*sock_fd)(const struct strm_io *io);
	/* Frees the io and everything it owns (lower io, fd). Mandatory.
	 * Returns an error from releasing (close(2)), or 0. */
	int (*close)(struct strm_io *io);
};

#define STRM_IO_MSG_MAX 256

/* io's socket (ops->sock_fd), or -1. */
int strm_io_sock_fd(const struct strm_io *io);
/* ops->authenticates, false without it. */
bool strm_io_authenticates(const struct strm_io *io);
/* sock-limits.c: how long (usec, since the connection began) the TCP
 * socket fd was held up by its peer's receive window: a slow reader. */
int strm_sock_rwnd_limited_us(int fd, uint64_t *us);

struct strm_io {
	const struct strm_io_ops *ops;
	uint64_t offset; /* bytes through this io */
	int err;	 /* first error, sticky; 0 when none */
	bool finished;	 /* strm_io_finish done: no more writes */
	bool err_write;	 /* err came from writev, flush or finish */
	char msg[STRM_IO_MSG_MAX];
};

void strm_io_init(struct strm_io *io, const struct strm_io_ops *ops);
/* wait_in on fd: 1 readable, 0 after timeout_ms (> 0), -ECANCELED. */
int strm__wait_in_fd(int fd, const struct strm_cancel *cancel, int timeout_ms);
/* Puts fd in non-blocking mode (for set_cancel hooks): 0 or -errno. */
int strm__fd_nonblock(int fd);
/* Records err (negative) with a message if no error is recorded yet; the
 * message is logged once. Returns err. */
int strm_io_fail(struct strm_io *io, int err, const char *fmt, ...) PRINTF_FMT(3, 4);

/* ---- codecs -------------------------------------------------------------- */

/*
 * A codec is chosen once per frame writer; a frame reader picks one per
 * frame from the header. *state is the codec's per-io, per-direction
 * context (NULL until the first call allocates it; freed with free_state).
 */
struct strm_codec_ops {
	const char *name;
	enum strm_codec id;
	/* Worst-case compressed size of raw_len (<= STRM_FRAME_RAW_MAX) bytes. */
	size_t (*bound)(size_t raw_len);
	/* Compresses len bytes into dst (cap >= bound(len)): the compressed
	 * length (> 0), or -errno (-ENOMEM). */
	ssize_t (*compress)(void **state, void *dst, size_t cap, const void *src, size_t len);
	/* Decompresses stored_len bytes into exactly raw_len bytes at dst:
	 * 0, -EBADMSG if the input is corrupt or its size is not raw_len,
	 * -ENOMEM. Never reads or writes outside the two buffers. */
	int (*decompress)(void **state, void *dst, size_t raw_len, const void *src,
			  size_t stored_len);
	/* Frees a state; optional, may be NULL (the codec keeps none). */
	void (*free_state)(void *state);
};

extern const struct strm_codec_ops strm_codec_ops_none;
extern const struct strm_codec_ops strm_codec_ops_lz4;
extern const struct strm_codec_ops strm_codec_ops_zstd;

/* The ops of a wire codec id, or NULL when unknown. */
const struct strm_codec_ops *strm_codec_ops_get(unsigned int id);

/* ---- frame wire format (formats/SPEC.md section 7) -------------------------------- */

#define STRM_FRAME_MAGIC	"FRRY"
#define STRM_FRAME_VERSION	1
#define STRM_FRAME_HDR_LEN	32
#define STRM_FRAME_F_END	0x0001u
/* crc covers the header only: a raw frame sent straight from the caller's
 * memory over a transport that authenticates every byte (SPEC 7). */
#define STRM_FRAME_F_UNCHECKED	0x0002u
#define STRM_FRAME_F_KNOWN	(STRM_FRAME_F_END | STRM_FRAME_F_UNCHECKED)
#define STRM_FRAME_RAW_MAX	(4u << 20)
#define STRM_FRAME_SIZE_DEFAULT (256u << 10)
#define STRM_FRAME_NCODECS	3

/* Field offsets in the 32-byte little-endian header. */
#define STRM_FRAME_OFF_MAGIC   0  /* 4 bytes "FRRY" */
#define STRM_FRAME_OFF_VERSION 4  /* u8 */
#define STRM_FRAME_OFF_CODEC   5  /* u8 */
#define STRM_FRAME_OFF_FLAGS   6  /* u16 */
#define STRM_FRAME_OFF_RAW     8  /* u32 */
#define STRM_FRAME_OFF_STORED  12 /* u32 */
#define STRM_FRAME_OFF_SEQ     16 /* u64 */
#define STRM_FRAME_OFF_HDR_CRC 24 /* u32 CRC32C of bytes 0..23 */
#define STRM_FRAME_OFF_CRC     28 /* u32 CRC32C of bytes 0..27 + stored */

struct strm_frame_hdr {
	uint8_t version;
	uint8_t codec;
	uint16_t flags;
	uint32_t raw_len;
	uint32_t stored_len;
	uint64_t seq;
	uint32_t crc; /* as read; checked by strm_frame_decode */
};

/* CRC32C (Castagnoli), chainable like zlib's crc32: crc = 0 to start. */
uint32_t strm_crc32c(uint32_t crc, const void *buf, size_t len);

/* Builds a header for stored bytes (hdr_crc and crc filled in). */
void strm_frame_hdr_pack(uint8_t out[STRM_FRAME_HDR_LEN], const struct strm_frame_hdr *h,
			 const void *stored);
/*
 * Checks a header read from the wire against everything that can be known
 * before its stored bytes: magic, version, header checksum, codec, flags,
 * lengths (raw <= 4 MiB, stored <= bound(raw), stored < raw when
 * compressed, stored == raw when not), and seq == expect_seq. Returns 0 or
 * -EBADMSG with *why set to a static reason.
 */
int strm_frame_hdr_parse(const uint8_t in[STRM_FRAME_HDR_LEN], uint64_t expect_seq,
			 struct strm_frame_hdr *h, const char **why);
/*
 * Checks the frame checksum over hdr and stored, then decodes stored into
 * raw (h->raw_len bytes; for codec none, raw may be stored itself and
 * nothing is copied). states[] are the per-codec decompress states.
 * Returns 0, -EBADMSG (*why set) or -ENOMEM.
 */
int strm_frame_decode(const uint8_t hdr[STRM_FRAME_HDR_LEN], const struct strm_frame_hdr *h,
		      const void *stored, void *raw, void *states[STRM_FRAME_NCODECS],
		      const char **why);
void strm_frame_states_free(void *states[STRM_FRAME_NCODECS]);

#endif
