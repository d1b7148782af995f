/* SPDX-License-Identifier: MIT */
/*
 * The record codec: Xen migration stream v2 (formats/) encoded to iovecs
 * and decoded from bytes fed incrementally. No I/O inside.
 *
 * Layers of one stream: the xl save header with the JSON config, then
 * (through the frame layer when the header says so) the libxl v2 stream,
 * whose LIBXC_CONTEXT record is followed inline by a whole libxc stream
 * (image header, domain header, records, libxc END), after which libxl
 * records resume until libxl END.
 */
#ifndef STREAM_CODEC_H
#define STREAM_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "formats/libxc-stream.h"
#include "formats/libxl-stream.h"
#include "formats/xl-header.h"

/* ---- encoder ------------------------------------------------------------- */

/*
 * Each strm_enc_* call fills out[] (at most STRM_ENC_IOV_MAX entries plus the
 * caller's body iovecs) with the bytes of one header or record and returns
 * the number of iovecs, or -errno (-E2BIG: over the record size limit,
 * -EINVAL: a malformed argument). Header, length and padding bytes live in
 * the encoder and stay valid until the next call on it; bodies are the
 * caller's memory, referenced, not copied.
 */
#define STRM_ENC_IOV_MAX 4
struct strm_enc;
int strm_enc_new(struct strm_enc **out);
void strm_enc_free(struct strm_enc *enc);

/* xl header + optional data (u32 length incl. NUL, then json and NUL). */
int strm_enc_xl_header(struct strm_enc *enc, const char *json,
		       uint32_t mandatory_flags, struct iovec *out);
int strm_enc_libxl_header(struct strm_enc *enc, struct iovec *out);
/* A libxl record: header, body iovecs, zero padding to 8. */
int strm_enc_libxl_rec(struct strm_enc *enc, uint32_t type,
		       const struct iovec *body, int nbody, struct iovec *out);
int strm_enc_libxc_ihdr(struct strm_enc *enc, struct iovec *out);
int strm_enc_libxc_dhdr(struct strm_enc *enc, uint32_t type, uint32_t xen_major,
			uint32_t xen_minor, struct iovec *out);
/* A libxc record: header, body iovecs, zero padding to 8. */
int strm_enc_libxc_rec(struct strm_enc *enc, uint32_t type,
		       const struct iovec *body, int nbody, struct iovec *out);
/*
 * PAGE_DATA of count (1..PAGE_DATA_BATCH_MAX) entries: pfns[i] is the pfn
 * with its type in bits 63-60 (PAGE_DATA_TYPE_*); pages[j] points at the
 * 4 KiB of the j-th entry whose type carries data; pages adjacent in
 * memory come out as one iovec. out needs STRM_ENC_IOV_MAX + the number of
 * data pages entries.
 */
int strm_enc_page_data(struct strm_enc *enc, const uint64_t *pfns, uint32_t count,
		       const void *const *pages, struct iovec *out);
/* Total bytes of n iovecs (what one strm_enc_* call produced). */
size_t strm_iov_len(const struct iovec *iov, int n);

/* ---- decoder ------------------------------------------------------------- */

enum strm_layer { STRM_XL, STRM_LIBXL, STRM_LIBXC };

struct strm_rec {
	enum strm_layer layer;
	/* STRM_XL: type 0 = the xl header; body = the JSON config (NUL-
	 * terminated, len without the NUL), flags = mandatory_flags.
	 * STRM_LIBXL: a libxl record (the libxl header is checked, not
	 * reported). STRM_LIBXC: type = REC_TYPE_*; the image and domain
	 * headers are checked and reported once as type STRM_REC_LIBXC_HEADERS
	 * with dhdr filled and flags = the image version (2 or 3). A libxc
	 * record of an unknown optional type (bit 31 set) is reported with
	 * flags = STRM_REC_UNKNOWN_OPTIONAL and its body unchecked: consumers
	 * must skip such records (Xen's reader skips them too). */
	uint32_t type;
	const uint8_t *body; /* valid during the callback only */
	uint32_t len;	     /* body length, without padding */
	uint32_t flags;
	uint64_t offset;     /* of the record header, in the decoded byte
			      * stream after the frame layer (xl header: 0) */
	struct xc_sr_dhdr dhdr;
	/* PAGE_DATA, checked: count entries, pfn|type values, and the data
	 * of the entries whose type has data, in order. */
	uint32_t page_count;
	const uint64_t *page_pfns;
	const uint8_t *page_data;
	/* Checkpointed streams: the epoch the record belongs to, from 1 (the
	 * records up to the first libxl CHECKPOINT_END); 0 in a plain stream. */
	uint64_t epoch;
};
#define STRM_REC_LIBXC_HEADERS 0xfffffff0u
#define STRM_REC_UNKNOWN_OPTIONAL (1u << 0)

/*
 * Checkpointed streams (Remus; Xen's restore is told so by its caller, as
 * xc_domain_restore's stream_type, and so is this decoder): each epoch is
 * the libxc records up to a libxc CHECKPOINT, then the libxl records up to
 * a libxl CHECKPOINT_END, after which libxc records resume (no headers
 * again); the stream ends with libxc END and libxl END right after an
 * epoch, or is cut when the sender dies. As Xen's buffer_all_records does,
 * the records before the first CHECKPOINT go straight to the callback (the
 * live phase: the whole of memory), and from that CHECKPOINT on every
 * record is held until its epoch's CHECKPOINT_END, then all of them are
 * handed over in stream order, CHECKPOINT_END last: the callback sees an
 * epoch whole or not at all. An epoch cut short or damaged is reported
 * (strm_dec_finish -ENODATA, or the error) and its held records dropped.
 * Held bytes (bodies padded to 8, plus about 100 bytes a record) are
 * bounded by max_epoch_bytes: a larger epoch fails with -E2BIG.
 */
#define STRM_DEC_MAX_EPOCH_DEFAULT (256u << 20)

struct strm_dec_limits {
	uint64_t max_pfn;     /* pfns >= this are refused (0: no limit yet) */
	uint32_t max_rec_len; /* body bytes (0: default 16 MiB) */
	bool checkpointed;    /* accept CHECKPOINT and CHECKPOINT_END (above) */
	/* A page channel's stream (net.h): the libxc END need not follow an
	 * HVM_CONTEXT, which travels on the main stream. */
	bool page_channel;
	uint64_t max_epoch_bytes; /* 0: STRM_DEC_MAX_EPOCH_DEFAULT */
};

/* Return 0 to go on, or -errno to stop decoding with that error. */
typedef int (*strm_rec_fn)(void *opaque, const struct strm_rec *rec);

struct strm_dec;
int strm_dec_new(const struct strm_dec_limits *lim, struct strm_dec **out);
void strm_dec_free(struct strm_dec *dec);
/* May be raised once the config says how big the domain is. */
void strm_dec_set_max_pfn(struct strm_dec *dec, uint64_t max_pfn);
/*
 * Feeds bytes (any split: one byte at a time gives the same records).
 * Returns 0, the callback's error, or -EBADMSG / -EPROTO / -E2BIG /
 * -ERANGE for bad input, with strm_dec_error() naming what and where
 * (byte offset in the file, and the frame's offset for frame errors).
 * Errors are sticky. The decoder does not log: the caller logs the message
 * once. Bytes after libxl END (or after the end frame) are an error.
 */
int strm_dec_feed(struct strm_dec *dec, const void *buf, size_t len,
		  strm_rec_fn fn, void *opaque);
/*
 * Where the rest of a record body already begun can be read straight into
 * (unframed input only), and how many bytes it still needs; 0 when there is
 * no such place. Feeding bytes read there (from *at on) saves a copy of
 * every page of PAGE_DATA: the receiver's memory bandwidth is its limit.
 */
size_t strm_dec_body_space(struct strm_dec *dec, void **at);
/*
 * From a record callback: when rec's body lies in the decoder's own buffer
 * (a body that did not arrive whole in one feed, as a socket's PAGE_DATA
 * bodies mostly do), gives that buffer to the caller (*taken, of
 * *taken_cap bytes, malloc'd: the caller frees it) and takes fresh
 * (malloc'd, fresh_cap bytes; NULL and 0 for none yet) in its place, so
 * the body outlives the callback without a copy. Returns 0, or -ENOENT
 * when the body is elsewhere (fresh stays the caller's).
 */
int strm_dec_swap_body(struct strm_dec *dec, const struct strm_rec *rec, void *fresh,
		       size_t fresh_cap, void **taken, size_t *taken_cap);
/* At end of input: 0 if the stream ended at libxl END, else -ENODATA
 * ("truncated after N bytes, in the middle of ..."). */
int strm_dec_finish(struct strm_dec *dec);
const char *strm_dec_error(const struct strm_dec *dec);
/* True once libxl END was decoded. */
bool strm_dec_done(const struct strm_dec *dec);
/* Checkpointed streams: complete epochs handed over so far. */
uint64_t strm_dec_epochs(const struct strm_dec *dec);
/* Bytes of the decoded stream (after the frame layer) consumed so far. */
uint64_t strm_dec_offset(const struct strm_dec *dec);
/* The libxl header once checked: true and its version and options. */
bool strm_dec_libxl_header(const struct strm_dec *dec, uint32_t *version,
			   uint32_t *options);

/* ---- HVM_CONTEXT bodies -------------------------------------------------- */

struct strm_hvm_entry {
	uint16_t typecode;
	uint16_t instance;
	uint32_t length;
	const uint8_t *payload; /* into the body; may be unaligned */
	uint32_t offset;	/* of the descriptor, within the body */
};
/*
 * Walks the descriptor list of an HVM_CONTEXT body (one the decoder has
 * checked, or any bytes: it checks bounds itself). *pos starts at 0.
 * Returns 1 with *e filled (the HEADER entry included), 0 once the END
 * entry has been read, -EBADMSG if the list leaves the body.
 */
int strm_hvm_ctx_next(const uint8_t *body, uint32_t len, uint32_t *pos,
		      struct strm_hvm_entry *e);

#endif
