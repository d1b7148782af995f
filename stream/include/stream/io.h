/* SPDX-License-Identifier: MIT */
/*
 * Stream I/O: byte sinks and sources behind one ops table (file/fd and
 * memory now; TCP and TLS with migration), and the frame layer, which is
 * itself a struct strm_io stacked on another.
 *
 * Ownership: strm_io_close() frees the object (and the lower io of a
 * filter, and the fd when the io owns it).
 */
#ifndef STREAM_IO_H
#define STREAM_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct strm_io;

/* Reads up to len bytes; returns the count, 0 at end of stream, or -errno.
 * A frame reader returns -EBADMSG for a corrupt frame (see strm_io_error). */
ssize_t strm_io_read(struct strm_io *io, void *buf, size_t len);
/* Reads exactly len bytes; -ENODATA if the stream ends first. */
int strm_io_read_full(struct strm_io *io, void *buf, size_t len);
/* Writes all of iov; returns 0 or -errno. */
int strm_io_writev(struct strm_io *io, const struct iovec *iov, int iovcnt);
int strm_io_write(struct strm_io *io, const void *buf, size_t len);
/* Pushes buffered bytes down (a frame writer ends its current frame). */
int strm_io_flush(struct strm_io *io);
/* Ends the stream cleanly (a frame writer writes its end frame), flushes
 * and frees. Returns the first error seen, or 0. NULL-safe. */
int strm_io_close(struct strm_io *io);
/* Ends the stream cleanly like strm_io_close (end frame, flush, down the
 * filter stack) without freeing, so that the bytes of a memory writer under
 * a frame writer can be read; later writes fail with -EBADF, close then
 * only frees. No-op on a reader. Returns the first error seen, or 0. */
int strm_io_finish(struct strm_io *io);
/*
 * After a write (or flush or finish) failed: lets reads go on, so a caller
 * can collect what the peer sent before it hung up (a peer that refuses
 * says why, then closes; its reason sits in our socket buffer behind our
 * EPIPE or ECONNRESET). Writes stay refused (-EBADF) and strm_io_error
 * keeps the write's message. Returns 0, or the sticky error when it did not
 * come from a write (a failed read ends reading).
 */
int strm_io_keep_reading(struct strm_io *io);
/* Bytes read or written through this io so far (before any filter below). */
uint64_t strm_io_offset(const struct strm_io *io);
/* A message describing the last error, naming where (byte offset), or "". */
const char *strm_io_error(const struct strm_io *io);

/* fd (file, pipe, socket). own: close the fd on strm_io_close. */
int strm_io_fd(int fd, bool own, struct strm_io **out);
/* Memory: a reader over [buf, buf + len) (borrowed), or a growable writer
 * whose contents strm_io_mem_data returns (owned by the io). */
int strm_io_mem_reader(const void *buf, size_t len, struct strm_io **out);
int strm_io_mem_writer(struct strm_io **out);
const void *strm_io_mem_data(const struct strm_io *io, size_t *len);

/*
 * A reader whose bytes come from read(opaque, buf, len): the count (at most
 * len), 0 at end of stream or -errno. A failure is sticky like any io's;
 * its message (strm_io_error) is the one the callback gave with
 * strm_io_pull_fail, else a generic one naming the offset. strm_io_close
 * calls release(opaque) (may be NULL); when strm_io_pull fails (-ENOMEM),
 * nothing is called and the caller keeps opaque.
 */
int strm_io_pull(ssize_t (*read)(void *opaque, void *buf, size_t len),
		 void (*release)(void *opaque), void *opaque, struct strm_io **out);
/*
 * From a pull io's read callback (which learns the io from its opaque, set
 * after strm_io_pull returned): records err (negative) with the message, to
 * be returned by the callback. The io logs it once. Returns err; -EINVAL
 * for another io.
 */
int strm_io_pull_fail(struct strm_io *io, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A writer whose bytes go to write(opaque, buf, len) (0 or -errno; a
 * failure is sticky), in pieces of at most piece bytes (0: 1 MiB): one goes
 * when it is full and at every flush. While held (strm_io_push_hold),
 * flushes keep the bytes, at most max_held of them (0: no limit; past it
 * the write fails with -ENOBUFS), until strm_io_push_release hands them
 * over and stops holding. strm_io_close hands over what is collected
 * unless held (held bytes are dropped), then calls release(opaque) (may
 * be NULL).
 */
int strm_io_push(int (*write)(void *opaque, const void *buf, size_t len),
		 void (*release)(void *opaque), void *opaque, size_t piece, size_t max_held,
		 struct strm_io **out);
int strm_io_push_hold(struct strm_io *io);
int strm_io_push_release(struct strm_io *io);
/* Bytes held now (0 when not holding). */
size_t strm_io_push_held(const struct strm_io *io);

/*
 * A reader returning buf (len <= 64 bytes, copied) first, then what lower
 * (borrowed, not closed) reads: for peeking at the start of a stream.
 */
int strm_io_prefix(struct strm_io *lower, const void *buf, size_t len, struct strm_io **out);

/* ---- cancellation and progress timeouts ---------------------------------- */

/*
 * A cancel token. Fired once from any thread (a job's client went away,
 * xl migrate-cancel, SIGTERM), it fails every blocking read or write of the
 * ios it is attached to with -ECANCELED, one already blocked included.
 * Ownership: strm_cancel_free frees it; ios only borrow it.
 */
struct strm_cancel;
int strm_cancel_new(struct strm_cancel **out);
/* Any thread; idempotent. */
void strm_cancel_fire(struct strm_cancel *c);
/* NULL-safe: false for NULL. */
bool strm_cancel_fired(const struct strm_cancel *c);
/* Readable once fired: for a caller's own poll(). */
int strm_cancel_fd(const struct strm_cancel *c);
/* NULL-safe. */
void strm_cancel_free(struct strm_cancel *c);
/*
 * Waits until fd is ready for events (POLLIN/POLLOUT), the token fires
 * (-ECANCELED) or timeout_ms pass (-ETIMEDOUT; 0: no limit); waiting to
 * write to a socket, timeout_ms pass with no byte leaving its send queue
 * (SIOCOUTQ), so a slow link is not a stalled peer. cancel may be NULL.
 * 0 when ready (or the fd reports an error or hang-up, which the next read
 * or write then returns).
 */
int strm_wait_fd(int fd, short events, const struct strm_cancel *cancel, int timeout_ms);

/*
 * Makes the blocking reads and writes of an fd or TLS io wait in poll() for
 * its fd or for cancel (borrowed; NULL: none): a fired token fails the call
 * with -ECANCELED; a wait of progress_ms (0: no limit) with no byte moving
 * fails it with -ETIMEDOUT, "no progress for N ms". The fd is switched to
 * non-blocking mode. -EINVAL for an io of another kind (attach it to the
 * bottom io of a filter stack).
 */
int strm_io_set_cancel(struct strm_io *io, struct strm_cancel *cancel, int progress_ms);
/*
 * Waits up to timeout_ms (at least 1) for an fd or TLS io to have
 * something to read, without reading: 1 when a read would not block (bytes,
 * the end, or an error), 0 when none came in time, -ECANCELED when the
 * token set by strm_io_set_cancel fires, -EINVAL for an io of another
 * kind. For loops that also keep time (HA's heartbeats); the fd need not
 * be non-blocking.
 */
int strm_io_wait_in(struct strm_io *io, int timeout_ms);

/* ---- frame layer --------------------------------------------------------- */

enum strm_codec { STRM_CODEC_NONE, STRM_CODEC_LZ4, STRM_CODEC_ZSTD };
/* "none", "lz4", "zstd"; parse returns -EINVAL for other names. */
const char *strm_codec_name(enum strm_codec c);
int strm_codec_parse(const char *name, enum strm_codec *out);

/*
 * A writer that cuts the bytes written to it into frames of up to
 * frame_size raw bytes (0: the default, 256 KiB), each compressed with
 * codec and checksummed, written to lower; close writes an end frame.
 * The frame io owns lower.
 */
int strm_io_frame_writer(struct strm_io *lower, enum strm_codec codec,
			 uint32_t frame_size, struct strm_io **out);
/*
 * The same with lower borrowed: closing the frame writer writes the end
 * frame and flushes lower but neither finishes nor closes it, so more can
 * follow on it (live migration's handshake after the stream).
 */
int strm_io_frame_writer_borrow(struct strm_io *lower, enum strm_codec codec,
				uint32_t frame_size, struct strm_io **out);
/*
 * Auto codec on a frame writer made with a compressing codec: each frame is
 * compressed or stored raw, whichever moves more guest bytes per second
 * given the measured compressor speed and ratio and the link's rate: the
 * writer's measure of lower when it held the writes up, or cap_bps, the
 * rate in wire bytes/s the caller paces the stream to (0: none), when that
 * is lower. A link that never holds the writer up gets raw frames. Call
 * again to change cap_bps. -EINVAL for another io or codec none.
 */
int strm_io_frame_writer_auto(struct strm_io *io, double cap_bps);
/* Frame counts of a frame writer or reader so far (end frame included once
 * written or read); -EINVAL for another io. stored_bytes counts headers. */
struct strm_frame_stats {
	uint64_t frames;
	/* Non-empty frames kept uncompressed: frames_by_codec[STRM_CODEC_NONE]. */
	uint64_t frames_stored_raw;
	uint64_t frames_by_codec[STRM_CODEC_ZSTD + 1]; /* non-empty frames per codec */
	/* Raw frames whose payload the lower io's authentication covers
	 * instead of the frame checksum (TLS; formats/SPEC.md 7, UNCHECKED). */
	uint64_t frames_unchecked;
	/* Raw frames a fixed codec did not try, backing off after frames
	 * that would not compress (stream/frame-io.c, COMP_BACKOFF_MAX). */
	uint64_t frames_untried;
	uint64_t raw_bytes;
	uint64_t stored_bytes;
};
int strm_io_frame_stats(const struct strm_io *io, struct strm_frame_stats *out);
/* A reader of such frames from lower (owned). A bad checksum, a bad header
 * or a stream that ends without its end frame is an error naming the
 * frame's byte offset in lower. */
int strm_io_frame_reader(struct strm_io *lower, struct strm_io **out);

/*
 * The same frame layer without I/O, for incremental decoders: feed any
 * bytes; raw bytes come out through fn as each frame completes. Returns 0,
 * or -EBADMSG (message via strm_frame_dec_error, with the byte offset of the
 * bad frame counted from the first byte fed).
 */
struct strm_frame_dec;
typedef int (*strm_frame_out_fn)(void *opaque, const void *raw, size_t len);
int strm_frame_dec_new(struct strm_frame_dec **out);
int strm_frame_dec_feed(struct strm_frame_dec *dec, const void *buf, size_t len,
			strm_frame_out_fn fn, void *opaque);
/* True once the end frame has been seen. */
bool strm_frame_dec_done(const struct strm_frame_dec *dec);
/* At end of input: 0 if the end frame was seen, else -ENODATA with a
 * message naming the offset ("truncated at offset N: ..."). */
int strm_frame_dec_finish(struct strm_frame_dec *dec);
const char *strm_frame_dec_error(const struct strm_frame_dec *dec);
void strm_frame_dec_free(struct strm_frame_dec *dec);

#endif
