// SPDX-License-Identifier: MIT
/*
 * The frame layer as strm_io filters: a writer that cuts bytes into
 * compressed, checksummed frames on a lower io, and a reader that checks
 * and decodes them (formats/SPEC.md section 7).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "internal-io.h"

struct frame_io {
	struct strm_io io;
	struct strm_io *lower; /* owned unless borrowed */
	bool borrowed;	       /* close leaves lower open */
	struct strm_frame_stats stats;
	uint64_t seq; /* next frame's sequence number */
	void *states[STRM_FRAME_NCODECS];
	/* writer */
	const struct strm_codec_ops *codec;
	uint32_t frame_size;
	uint8_t *buf; /* raw bytes of the frame being filled */
	size_t have;
	uint8_t *out; /* compressed frame, bound(frame_size) */
	size_t out_cap;
	/* auto codec (strm_io_frame_writer_auto): measurements, EWMAs */
	bool autoc;
	double cap_bps;	  /* the caller's pacing, stored bytes/s; 0: none */
	double link_bps;  /* the link's rate when it held us up; 0: it never did */
	double comp_bps[STRM_FRAME_NCODECS]; /* raw bytes/s through each compressor */
	double ratio[STRM_FRAME_NCODECS];    /* raw / stored of each */
	uint64_t nprobe;		     /* frames since a compressor was last probed */
	unsigned probe;			     /* the index in auto_codecs probed last */
	double win_t0;	  /* the current measuring window: its start, */
	double win_wait;  /* the seconds lower's writes spent off the CPU, */
	uint64_t win_bytes;		      /* and the stored bytes written, */
	uint64_t win_raw[STRM_FRAME_NCODECS]; /* the raw bytes per codec */
	/* raw bytes/s windows sent mostly in each codec moved: what a codec
	 * achieved, against what the model predicts (auto_pick) */
	double got_bps[STRM_FRAME_NCODECS];
	int sock;	    /* lower's socket, or -1 */
	uint64_t rwnd_us;   /* its time held up by the reader, at the window's start */
	bool rwnd_known;
	bool authenticated; /* lower authenticates every byte: raw frames go unchecked */
	const struct strm_codec_ops *cur; /* the codec of the frame being filled, */
	bool picked;			  /* once chosen */
	/* a fixed codec's back-off (COMP_BACKOFF_MAX): frames still to send
	 * raw untried, and how many the last miss earned */
	uint32_t skip_left, skip_run;
	/* reader */
	uint8_t *raw; /* decoded frame, STRM_FRAME_RAW_MAX */
	size_t raw_pos, raw_len;
	uint8_t *stored; /* compressed frame bytes */
	size_t stored_cap;
	bool done; /* end frame decoded */
	uint64_t end_off;
};

static int lower_failed(struct frame_io *f, int err)
{
	const char *m = strm_io_error(f->lower);

	return strm_io_fail(&f->io, err, "%s", *m ? m : "lower io failed");
}

/* ---- writer --------------------------------------------------------------- */

/* Frames between two probes of a compressor auto is not using. */
#define AUTO_PROBE_EVERY 128
/* Stored bytes per measuring window of the link. */
#define AUTO_WINDOW (4u << 20)

/* The compressors auto weighs: lz4 is the faster, zstd -1 the tighter. */
static const enum strm_codec auto_codecs[] = {STRM_CODEC_LZ4, STRM_CODEC_ZSTD};
#define AUTO_NCODECS (sizeof(auto_codecs) / sizeof(auto_codecs[0]))

/*
 * The auto rule, per frame. The compressor and the link work as a
 * pipeline (the kernel sends while we compress the next frame), so with a
 * link of L stored bytes/s and a compressor of C raw bytes/s at ratio r,
 * raw frames move L raw bytes/s and compressed ones min(C, L * r): more
 * only when the link holds the sender up and C > L. Of raw, lz4 and zstd
 * -1 the one that moves most is used, with margins (C / 1.25, r >= 1.1)
 * for the CPU the write path itself needs. Here lz4 runs at ~0.45 GB/s and
 * zstd -1 at ~0.35 GB/s per core on guest pages, zstd 5-10 % tighter, so a
 * 1 Gbit link gets zstd, 2.5 Gbit lz4 and a fast one raw (research/
 * limits.md). L is measured in windows of AUTO_WINDOW bytes (auto_window),
 * or is the caller's pacing when that is lower; a reader that held the
 * writes up (slow_reader) gets raw frames too. Each compressor runs once
 * before anything is judged, then one not in use every AUTO_PROBE_EVERY
 * frames, in turn, to refresh C and r (the frame is still sent compressed
 * when that is smaller). The model is then checked against what each codec
 * achieved (got_bps, raw bytes/s of the windows sent mostly in it): a
 * compressor that moved fewer guest bytes than raw did is not used while
 * that holds. The model cannot see a reader whose decompression and
 * writes compete for the sender's own cores (two ferryds on one host, or
 * a busy target): at 10 Gbit here it chose lz4 for round 0 of a mix guest
 * and ran 1.27x slower than raw.
 */
static const struct strm_codec_ops *auto_pick(struct frame_io *f)
{
	const struct strm_codec_ops *best = NULL;
	double link, best_bps;

	for (unsigned i = 0; i < AUTO_NCODECS; i++)
		if (!f->comp_bps[auto_codecs[i]])
			return strm_codec_ops_get(auto_codecs[i]);
	link = f->link_bps;
	if (f->cap_bps > 0 && (!link || f->cap_bps < link))
		link = f->cap_bps;
	best_bps = link;
	for (unsigned i = 0; link && i < AUTO_NCODECS; i++) {
		enum strm_codec c = auto_codecs[i];
		double bps = MIN(f->comp_bps[c] / 1.25, link * f->ratio[c]);

		if (f->ratio[c] >= 1.1 && bps > best_bps &&
		    /* what it achieved, when known, must beat raw's */
		    !(f->got_bps[c] && f->got_bps[STRM_CODEC_NONE] &&
		      f->got_bps[c] < f->got_bps[STRM_CODEC_NONE])) {
			best = strm_codec_ops_get(c);
			best_bps = bps;
		}
	}
	if (++f->nprobe >= AUTO_PROBE_EVERY) {
		f->nprobe = 0;
		f->probe = (f->probe + 1) % AUTO_NCODECS;
		if (!best || best->id != auto_codecs[f->probe])
			return strm_codec_ops_get(auto_codecs[f->probe]);
	}
	return best; /* NULL: raw (a link that never held us up, too) */
}

static void auto_measured(struct frame_io *f, enum strm_codec c, size_t raw, size_t stored,
			  double dt)
{
	double r = (double)raw / (double)stored, bps = dt > 0 ? (double)raw / dt : 0;

	f->ratio[c] = f->ratio[c] ? 0.75 * f->ratio[c] + 0.25 * r : r;
	if (bps > 0)
		f->comp_bps[c] = f->comp_bps[c] ? 0.75 * f->comp_bps[c] + 0.25 * bps : bps;
}

/*
 * Whether the reader, not the link, held the window up: its socket sat on
 * a full receive window for a quarter of the window's time or more. The
 * sender cannot tell the two apart by waiting alone, and compressing for
 * a slow reader only adds its decompression to the reader's work (a
 * receiver on the sender's own two cores ran 1.65x slower so at 10 Gbit).
 */
static bool slow_reader(struct frame_io *f, double wall)
{
	uint64_t us;
	bool slow;

	if (f->sock < 0 || strm_sock_rwnd_limited_us(f->sock, &us))
		return false;
	slow = f->rwnd_known && (double)(us - f->rwnd_us) / 1e6 >= 0.25 * wall;
	f->rwnd_us = us;
	f->rwnd_known = true;
	return slow;
}

/*
 * One write of stored bytes to lower that spent waited seconds off the
 * CPU. A single write's time says nothing (a socket buffer or the TLS
 * layer's may take it at memory speed), so the link is judged per window:
 * if the writes waited for at least half of its wall time, the link held
 * the sender up and its rate is the window's. Encryption inside the
 * write is CPU time, not waiting, so a fast link that only looks busy is
 * not taken for a slow one. Other windows say nothing of the link: one
 * that starts on empty socket buffers runs faster than the link can.
 */
static void auto_window(struct frame_io *f, size_t stored, size_t raw, enum strm_codec c,
			double waited)
{
	double now = ferry_now_s(), wall, bps;
	uint64_t all = 0;

	if (!f->win_t0)
		f->win_t0 = now;
	f->win_bytes += stored;
	f->win_wait += waited;
	f->win_raw[c] += raw;
	if (f->win_bytes < AUTO_WINDOW)
		return;
	wall = now - f->win_t0;
	bps = wall > 0 ? (double)f->win_bytes / wall : 0;
	/* What the codec of most of the window achieved. The first window
	 * starts on empty socket buffers and overrates raw: that only delays
	 * a compressor by a window or two, as raw's figure then falls. */
	for (unsigned k = 0; k < STRM_FRAME_NCODECS; k++)
		all += f->win_raw[k];
	for (unsigned k = 0; k < STRM_FRAME_NCODECS && wall > 0; k++)
		if (f->win_raw[k] * 4 >= all * 3) {
			double got = (double)all / wall;

			f->got_bps[k] = f->got_bps[k] ? 0.5 * f->got_bps[k] + 0.5 * got : got;
		}
	memset(f->win_raw, 0, sizeof(f->win_raw));
	if (slow_reader(f, wall))
		f->link_bps = 0;
	else if (bps > 0 && f->win_wait >= 0.5 * wall)
		f->link_bps = f->link_bps ? 0.5 * f->link_bps + 0.5 * bps : bps;
	f->win_t0 = now;
	f->win_bytes = 0;
	f->win_wait = 0;
}

static double thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A fixed codec on frames that do not compress (encrypted or compressed
 * guest data; the built-in guest's verify pages) spends a core for
 * nothing: zstd -1 on them ran a busy guest's migration 1.6x as long as
 * raw frames did. After a frame that saved less than 1/32 of itself, the
 * next 1, 2, 4 ... up to COMP_BACKOFF_MAX frames go raw untried (and so
 * uncopied, emit_direct); a frame that compresses ends the back-off. ZFS's
 * early abort, in spirit. At most 4 MiB of compressible data after such a
 * run goes raw; auto makes its own choice (auto_pick).
 */
#define COMP_BACKOFF_MAX 16

static void comp_backoff(struct frame_io *f, bool paid)
{
	if (paid)
		f->skip_run = 0;
	else
		f->skip_run = f->skip_run ? MIN(2 * f->skip_run, COMP_BACKOFF_MAX) : 1;
	f->skip_left = f->skip_run;
}

/* The codec of the frame being started: NULL for raw. auto weighs it once
 * per frame, before any of its bytes are copied (emit_direct). */
static const struct strm_codec_ops *frame_codec(struct frame_io *f)
{
	if (!f->picked) {
		if (f->codec->id == STRM_CODEC_NONE) {
			f->cur = NULL;
		} else if (f->autoc) {
			f->cur = auto_pick(f);
		} else if (f->skip_left) {
			f->cur = NULL;
			f->skip_left--;
			f->stats.frames_untried++;
		} else {
			f->cur = f->codec;
		}
		f->picked = true;
	}
	return f->cur;
}

/* Writes header + the stored bytes (iov[1..n)) to lower and counts the
 * frame; iov[0] is the header's slot. */
static int put_frame(struct frame_io *f, const struct strm_frame_hdr *h, const void *stored,
		     struct iovec *iov, int n)
{
	uint8_t hdr[STRM_FRAME_HDR_LEN];
	double t_write = 0, cpu_write = 0;
	int err;

	strm_frame_hdr_pack(hdr, h, stored);
	iov[0] = (struct iovec){.iov_base = hdr, .iov_len = sizeof(hdr)};
	if (f->autoc) {
		t_write = ferry_now_s();
		cpu_write = thread_cpu_s();
	}
	err = strm_io_writev(f->lower, iov, h->stored_len ? n : 1);
	if (err)
		return lower_failed(f, err);
	if (f->autoc) {
		double waited = (ferry_now_s() - t_write) - (thread_cpu_s() - cpu_write);

		auto_window(f, sizeof(hdr) + h->stored_len, h->raw_len, h->codec,
			    waited > 0 ? waited : 0);
	}
	f->picked = false;
	f->seq++;
	f->stats.frames++;
	f->stats.raw_bytes += h->raw_len;
	f->stats.stored_bytes += sizeof(hdr) + h->stored_len;
	if (h->raw_len)
		f->stats.frames_by_codec[h->codec]++;
	if (h->flags & STRM_FRAME_F_UNCHECKED)
		f->stats.frames_unchecked++;
	return 0;
}

static int emit(struct frame_io *f, const uint8_t *raw, size_t len, uint16_t flags)
{
	struct strm_frame_hdr h = {.codec = STRM_CODEC_NONE,
				   .flags = flags,
				   .raw_len = (uint32_t)len,
				   .stored_len = (uint32_t)len,
				   .seq = f->seq};
	const struct strm_codec_ops *codec = len ? frame_codec(f) : NULL;
	const uint8_t *stored = raw;
	struct iovec iov[2];

	if (codec) {
		double t0 = f->autoc ? ferry_now_s() : 0;
		ssize_t n = codec->compress(&f->states[codec->id], f->out, f->out_cap, raw, len);

		if (f->autoc && n > 0)
			auto_measured(f, codec->id, len, (size_t)n, ferry_now_s() - t0);

		if (n == -ENOMEM)
			return strm_io_fail(&f->io, -ENOMEM,
					    "frame %" PRIu64 ": out of memory in %s", f->seq,
					    codec->name);
		if (!f->autoc)
			comp_backoff(f, n > 0 && (size_t)n <= len - len / 32);
		/* Not smaller (or not compressible within the bound): raw. */
		if (n > 0 && (size_t)n < len) {
			h.codec = (uint8_t)codec->id;
			h.stored_len = (uint32_t)n;
			stored = f->out;
		}
	}
	/* TLS checks these bytes already; our copy of them is stable, but
	 * a checksum of it is work for both ends that finds nothing more. */
	if (len && h.codec == STRM_CODEC_NONE && f->authenticated)
		h.flags |= STRM_FRAME_F_UNCHECKED;
	iov[1] = (struct iovec){.iov_base = (void *)stored, .iov_len = h.stored_len};
	return put_frame(f, &h, stored, iov, 2);
}

/* Iovecs a direct frame may gather: a frame of pages and record headers. */
#define DIRECT_IOV_MAX 256
/* The least of a write's bytes that go out as a frame of their own rather
 * than wait in the buffer for the next write: a frame header per 64 KiB
 * costs nothing, and a writer of small records keeps whole frames. */
#define DIRECT_MIN (64u << 10)

/*
 * A raw frame of the bytes buffered and then take bytes straight from the
 * caller's iovecs at (*i, *off), with no copy: only over a lower that
 * authenticates every byte, since the caller's bytes may be a running
 * guest's pages that change while they are sent, which a checksum
 * computed beforehand would then not match. Returns 1 when sent (the
 * cursor moved past it), 0 when the bytes are too scattered (the caller
 * copies them), or -errno.
 */
static int emit_direct(struct frame_io *f, const struct iovec *iov, int iovcnt, int *i, size_t *off,
		       size_t take)
{
	struct strm_frame_hdr h = {.codec = STRM_CODEC_NONE,
				   .flags = STRM_FRAME_F_UNCHECKED,
				   .raw_len = (uint32_t)(f->have + take),
				   .stored_len = (uint32_t)(f->have + take),
				   .seq = f->seq};
	struct iovec v[DIRECT_IOV_MAX + 2];
	size_t o = *off;
	int n = 1, k = *i, err;

	if (f->have)
		v[n++] = (struct iovec){.iov_base = f->buf, .iov_len = f->have};
	while (take) {
		size_t t;

		if (k == iovcnt || n > DIRECT_IOV_MAX)
			return 0;
		t = MIN(take, iov[k].iov_len - o);
		if (t)
			v[n++] = (struct iovec){.iov_base = (uint8_t *)iov[k].iov_base + o,
						.iov_len = t};
		take -= t;
		o += t;
		if (o == iov[k].iov_len) {
			k++;
			o = 0;
		}
	}
	err = put_frame(f, &h, NULL, v, n);
	if (err)
		return err;
	f->have = 0;
	*i = k;
	*off = o;
	return 1;
}

static int fw_writev(struct strm_io *io, const struct iovec *iov, int iovcnt)
{
	struct frame_io *f = container_of(io, struct frame_io, io);
	size_t left = 0, off = 0;
	bool scattered = false; /* a direct frame found too many pieces */
	int i = 0, err;

	for (int k = 0; k < iovcnt; k++)
		left += iov[k].iov_len;
	while (left) {
		size_t n;

		if (f->authenticated && !scattered && left >= DIRECT_MIN && !frame_codec(f)) {
			n = MIN(left, f->frame_size - f->have);
			err = emit_direct(f, iov, iovcnt, &i, &off, n);
			if (err < 0)
				return err;
			if (err) {
				left -= n;
				continue;
			}
			scattered = true;
		}
		/* Otherwise through our buffer: the caller's bytes may be a
		 * running guest's pages, and the checksum and the payload
		 * sent must read the same bytes. */
		while (off == iov[i].iov_len) {
			i++;
			off = 0;
		}
		n = MIN(iov[i].iov_len - off, f->frame_size - f->have);
		memcpy(f->buf + f->have, (const uint8_t *)iov[i].iov_base + off, n);
		f->have += n;
		off += n;
		left -= n;
		if (f->have == f->frame_size) {
			err = emit(f, f->buf, f->have, 0);
			if (err)
				return err;
			f->have = 0;
			scattered = false; /* the next frame may gather fewer */
		}
	}
	return 0;
}

static int fw_flush(struct strm_io *io)
{
	struct frame_io *f = container_of(io, struct frame_io, io);
	int err;

	if (f->have) {
		err = emit(f, f->buf, f->have, 0);
		if (err)
			return err;
		f->have = 0;
	}
	err = strm_io_flush(f->lower);
	return err ? lower_failed(f, err) : 0;
}

static int fw_finish(struct strm_io *io)
{
	struct frame_io *f = container_of(io, struct frame_io, io);
	int err;

	/* The bytes still buffered travel in the end frame. */
	err = emit(f, f->buf, f->have, STRM_FRAME_F_END);
	if (err)
		return err;
	f->have = 0;
	/* A borrowed lower carries more after this stream: only flush it. */
	err = f->borrowed ? strm_io_flush(f->lower) : strm_io_finish(f->lower);
	return err ? lower_failed(f, err) : 0;
}

static int frame_close(struct strm_io *io)
{
	struct frame_io *f = container_of(io, struct frame_io, io);
	int err = f->borrowed ? 0 : strm_io_close(f->lower);

	strm_frame_states_free(f->states);
	free(f->buf);
	free(f->out);
	free(f->raw);
	free(f->stored);
	free(f);
	return err;
}

/* clang-format off */
static const struct strm_io_ops strm_io_ops_frame_writer = {
	.name   = "frame writer",
	.read   = NULL,
	.writev = fw_writev,
	.flush  = fw_flush,
	.finish = fw_finish,
	.close  = frame_close,
};
/* clang-format on */

int strm_io_frame_writer(struct strm_io *lower, enum strm_codec codec, uint32_t frame_size,
			 struct strm_io **out)
{
	const struct strm_codec_ops *ops = strm_codec_ops_get((unsigned int)codec);
	struct frame_io *f;

	if (!frame_size)
		frame_size = STRM_FRAME_SIZE_DEFAULT;
	if (!ops || frame_size > STRM_FRAME_RAW_MAX)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	strm_io_init(&f->io, &strm_io_ops_frame_writer);
	f->sock = -1;
	f->codec = ops;
	f->frame_size = frame_size;
	f->out_cap = ops->bound(frame_size);
	f->buf = malloc(frame_size);
	f->out = codec == STRM_CODEC_NONE ? NULL : malloc(f->out_cap);
	if (!f->buf || (codec != STRM_CODEC_NONE && !f->out)) {
		free(f->buf);
		free(f->out);
		free(f);
		return -ENOMEM;
	}
	f->lower = lower;
	f->authenticated = strm_io_authenticates(lower);
	*out = &f->io;
	return 0;
}

int strm_io_frame_writer_borrow(struct strm_io *lower, enum strm_codec codec,
				uint32_t frame_size, struct strm_io **out)
{
	int err = strm_io_frame_writer(lower, codec, frame_size, out);

	if (!err)
		container_of(*out, struct frame_io, io)->borrowed = true;
	return err;
}

int strm_io_frame_writer_auto(struct strm_io *io, double cap_bps)
{
	struct frame_io *f;

	if (io->ops != &strm_io_ops_frame_writer)
		return -EINVAL;
	f = container_of(io, struct frame_io, io);
	if (f->codec->id == STRM_CODEC_NONE)
		return -EINVAL;
	/* Any of auto's compressors may fill the out buffer. */
	for (unsigned i = 0; i < AUTO_NCODECS; i++) {
		size_t cap = strm_codec_ops_get(auto_codecs[i])->bound(f->frame_size);

		if (cap > f->out_cap) {
			uint8_t *out = realloc(f->out, cap);

			if (!out)
				return -ENOMEM;
			f->out = out;
			f->out_cap = cap;
		}
	}
	f->autoc = true;
	f->cap_bps = cap_bps > 0 ? cap_bps : 0;
	f->sock = strm_io_sock_fd(f->lower);
	return 0;
}

/* ---- reader ---------------------------------------------------------------- */

#define FRAME_ERR(f, err, off, fmt, ...)                                                           \
	strm_io_fail(&(f)->io, err, "frame %" PRIu64 " at offset %" PRIu64 ": " fmt, (f)->seq,     \
		     (uint64_t)(off), __VA_ARGS__)

/* Reads exactly len bytes from lower; *got says how many came before an
 * end of stream (-ENODATA) or an error. */
static int read_exact(struct frame_io *f, void *buf, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = strm_io_read(f->lower, (uint8_t *)buf + *got, len - *got);

		if (n < 0)
			return lower_failed(f, (int)n);
		if (n == 0)
			return -ENODATA;
		*got += (size_t)n;
	}
	return 0;
}

/* Reads and decodes the next frame, into dst when it fits in dst_len, else
 * into f->raw. Returns the raw length decoded into dst (> 0), 0 if it went
 * to f->raw or was empty, or -errno. */
static ssize_t next_frame(struct frame_io *f, void *dst, size_t dst_len)
{
	uint64_t off = strm_io_offset(f->lower);
	uint8_t hdr[STRM_FRAME_HDR_LEN];
	struct strm_frame_hdr h;
	const char *why = "";
	uint8_t *raw, *stored;
	size_t got;
	int err;

	err = read_exact(f, hdr, sizeof(hdr), &got);
	if (err == -ENODATA && got == 0)
		return strm_io_fail(&f->io, -ENODATA,
				    "truncated at offset %" PRIu64
				    ": the stream ends without its end frame (after %" PRIu64
				    " frames)",
				    off, f->seq);
	if (err == -ENODATA)
		return FRAME_ERR(f, -ENODATA, off,
				 "truncated at offset %" PRIu64 " with %zu of the %d header bytes",
				 off + got, got, STRM_FRAME_HDR_LEN);
	if (err)
		return err;
	err = strm_frame_hdr_parse(hdr, f->seq, &h, &why);
	if (err && !strcmp(why, "sequence gap"))
		return FRAME_ERR(f, err, off, "sequence gap (got %" PRIu64 ")", h.seq);
	if (err)
		return FRAME_ERR(f, err, off, "%s", why);

	raw = h.raw_len <= dst_len ? dst : NULL;
	if (!raw) {
		if (!f->raw && !(f->raw = malloc(STRM_FRAME_RAW_MAX)))
			return FRAME_ERR(f, -ENOMEM, off, "%s", "out of memory");
		raw = f->raw;
	}
	stored = raw;
	if (h.codec != STRM_CODEC_NONE) {
		if (f->stored_cap < h.stored_len) {
			/* stored_len < raw_len <= 4 MiB: checked by the parse. */
			free(f->stored);
			f->stored_cap = 0;
			f->stored = malloc(h.stored_len);
			if (!f->stored)
				return FRAME_ERR(f, -ENOMEM, off, "%s", "out of memory");
			f->stored_cap = h.stored_len;
		}
		stored = f->stored;
	}
	err = read_exact(f, stored, h.stored_len, &got);
	if (err == -ENODATA)
		return FRAME_ERR(f, -ENODATA, off,
				 "truncated at offset %" PRIu64 " with %zu of its %" PRIu32
				 " stored bytes",
				 off + STRM_FRAME_HDR_LEN + got, got, h.stored_len);
	if (err)
		return err;
	err = strm_frame_decode(hdr, &h, stored, raw, f->states, &why);
	if (err)
		return FRAME_ERR(f, err, off, "%s", why);
	f->seq++;
	f->stats.frames++;
	f->stats.raw_bytes += h.raw_len;
	f->stats.stored_bytes += STRM_FRAME_HDR_LEN + h.stored_len;
	if (h.raw_len)
		f->stats.frames_by_codec[h.codec]++;
	if (h.flags & STRM_FRAME_F_UNCHECKED)
		f->stats.frames_unchecked++;
	if (h.flags & STRM_FRAME_F_END) {
		f->done = true;
		f->end_off = off;
	}
	if (raw == dst)
		return h.raw_len;
	f->raw_pos = 0;
	f->raw_len = h.raw_len;
	return 0;
}

static ssize_t fr_read(struct strm_io *io, void *buf, size_t len)
{
	struct frame_io *f = container_of(io, struct frame_io, io);

	while (f->raw_pos == f->raw_len) {
		ssize_t n;

		if (f->done) {
			uint64_t off = strm_io_offset(f->lower);
			uint8_t extra;

			n = strm_io_read(f->lower, &extra, 1);
			if (n < 0)
				return lower_failed(f, (int)n);
			if (n > 0)
				return strm_io_fail(io, -EBADMSG,
						    "bytes at offset %" PRIu64
						    " after the end frame (frame %" PRIu64
						    " at offset %" PRIu64 ")",
						    off, f->seq - 1, f->end_off);
			return 0;
		}
		n = next_frame(f, buf, len);
		if (n != 0)
			return n;
	}
	len = MIN(len, f->raw_len - f->raw_pos);
	memcpy(buf, f->raw + f->raw_pos, len);
	f->raw_pos += len;
	return (ssize_t)len;
}

/* clang-format off */
static const struct strm_io_ops strm_io_ops_frame_reader = {
	.name   = "frame reader",
	.read   = fr_read,
	.writev = NULL,
	.flush  = NULL,
	.finish = NULL,
	.close  = frame_close,
};
/* clang-format on */

int strm_io_frame_reader(struct strm_io *lower, struct strm_io **out)
{
	struct frame_io *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	strm_io_init(&f->io, &strm_io_ops_frame_reader);
	f->lower = lower;
	*out = &f->io;
	return 0;
}

int strm_io_frame_stats(const struct strm_io *io, struct strm_frame_stats *out)
{
	const struct frame_io *f;

	if (io->ops != &strm_io_ops_frame_writer && io->ops != &strm_io_ops_frame_reader)
		return -EINVAL;
	f = container_of(io, const struct frame_io, io);
	*out = f->stats;
	out->frames_stored_raw = f->stats.frames_by_codec[STRM_CODEC_NONE];
	return 0;
}
