// SPDX-License-Identifier: MIT
/*
 * Record decoder: a state machine fed arbitrary byte chunks. Each state
 * collects a fixed number of bytes (a header, or a record body with its
 * padding) and then checks and reports them; lengths are checked against
 * the limits before anything is allocated. The input is untrusted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "formats/hvm-context.h"
#include "formats/libxc-stream.h"
#include "formats/libxl-stream.h"
#include "formats/xl-header.h"
#include "internal-codec.h"
#include "stream/codec.h"
#include "stream/io.h"

enum dec_state {
	ST_XL_HDR,
	ST_XL_OPT,
	ST_LIBXL_HDR,
	ST_LIBXL_RHDR,
	ST_LIBXL_BODY,
	ST_LIBXC_IHDR,
	ST_LIBXC_DHDR,
	ST_LIBXC_RHDR,
	ST_LIBXC_BODY,
	ST_DONE,
	ST_ERROR,
};

struct strm_dec {
	uint64_t max_pfn;
	uint32_t max_rec_len;
	bool page_channel; /* strm_dec_limits.page_channel */

	enum dec_state st;
	uint64_t pos;	  /* decoded bytes consumed (after the frame layer) */
	uint64_t unit_off; /* offset of the header or record being read */
	uint8_t hdr[sizeof(struct xl_save_header)]; /* headers collect here */
	uint8_t *buf;	  /* bodies collect here */
	size_t cap;
	size_t have, need; /* of the current unit */
	uint32_t rec_type, rec_len;

	/* xl header */
	uint32_t xl_flags;
	uint32_t xl_optlen;
	/* frame layer */
	bool framed;
	struct strm_frame_dec *fdec;
	uint64_t raw_pos;   /* bytes fed */
	uint64_t frames_at; /* file offset of the first frame */
	/* libxl */
	bool libxl_hdr_ok;
	uint32_t libxl_version, libxl_options;
	bool libxc_seen;
	/* libxc */
	uint32_t ihdr_version;
	uint64_t ihdr_off;
	bool sde_seen, hvm_ctx_seen;
	/* checkpointed streams (stream/codec.h) */
	bool checkpointed;
	uint64_t max_epoch;
	bool holding;	    /* from the first libxc CHECKPOINT to libxc END */
	bool in_checkpoint; /* between libxc CHECKPOINT and CHECKPOINT_END */
	uint64_t epochs;    /* complete epochs handed over */
	uint64_t epoch_off; /* where the epoch being held began */
	struct strm_held held;

	/* the callback of the strm_dec_feed in progress */
	strm_rec_fn fn;
	void *opaque;

	int err;
	char msg[320];
};

/* ---- errors -------------------------------------------------------------- */

static int STRM_PRINTF(3, 4) dec_fail(struct strm_dec *dec, int err, const char *fmt, ...);

static int dec_fail(struct strm_dec *dec, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dec->msg, sizeof(dec->msg), fmt, ap);
	va_end(ap);
	dec->st = ST_ERROR;
	dec->err = err;
	return err;
}

static const char *rec_name(enum dec_state st, uint32_t type, char *tmp, size_t n)
{
	const char *name = st == ST_LIBXL_RHDR || st == ST_LIBXL_BODY ?
				   fmt_libxl_rec_name(type) :
				   fmt_libxc_rec_name(type);

	if (name)
		return name;
	snprintf(tmp, n, "type 0x%08" PRIx32, type);
	return tmp;
}

/* "libxc record PAGE_DATA at offset 0x1a0: " + message. */
static int STRM_PRINTF(3, 4) rec_fail(struct strm_dec *dec, int err, const char *fmt, ...);

static int rec_fail(struct strm_dec *dec, int err, const char *fmt, ...)
{
	char tmp[24], what[200];
	bool libxl = dec->st == ST_LIBXL_RHDR || dec->st == ST_LIBXL_BODY;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return dec_fail(dec, err, "%s record %s at offset 0x%" PRIx64 ": %s",
			libxl ? "libxl" : "libxc",
			rec_name(dec->st, dec->rec_type, tmp, sizeof(tmp)), dec->unit_off,
			what);
}

/* ---- life cycle ---------------------------------------------------------- */

int strm_dec_new(const struct strm_dec_limits *lim, struct strm_dec **out)
{
	struct strm_dec *dec = calloc(1, sizeof(*dec));

	if (!dec)
		return -ENOMEM;
	dec->max_pfn = lim ? lim->max_pfn : 0;
	dec->max_rec_len = lim && lim->max_rec_len ? lim->max_rec_len :
						     STRM_DEC_MAX_REC_LEN_DEFAULT;
	if (dec->max_rec_len > REC_LENGTH_MAX)
		dec->max_rec_len = REC_LENGTH_MAX;
	dec->checkpointed = lim && lim->checkpointed;
	dec->page_channel = lim && lim->page_channel;
	dec->max_epoch = lim && lim->max_epoch_bytes ? lim->max_epoch_bytes :
						       STRM_DEC_MAX_EPOCH_DEFAULT;
	dec->st = ST_XL_HDR;
	dec->need = sizeof(struct xl_save_header);
	*out = dec;
	return 0;
}

void strm_dec_free(struct strm_dec *dec)
{
	if (!dec)
		return;
	if (dec->fdec)
		strm_frame_dec_free(dec->fdec);
	strm_held_free(&dec->held);
	free(dec->buf);
	free(dec);
}

void strm_dec_set_max_pfn(struct strm_dec *dec, uint64_t max_pfn)
{
	dec->max_pfn = max_pfn;
}

const char *strm_dec_error(const struct strm_dec *dec)
{
	return dec->msg;
}

bool strm_dec_done(const struct strm_dec *dec)
{
	return dec->st == ST_DONE && (!dec->framed || strm_frame_dec_done(dec->fdec));
}

uint64_t strm_dec_epochs(const struct strm_dec *dec)
{
	return dec->epochs;
}

uint64_t strm_dec_offset(const struct strm_dec *dec)
{
	return dec->pos;
}

bool strm_dec_libxl_header(const struct strm_dec *dec, uint32_t *version,
			   uint32_t *options)
{
	if (!dec->libxl_hdr_ok)
		return false;
	if (version)
		*version = dec->libxl_version;
	if (options)
		*options = dec->libxl_options;
	return true;
}

/* ---- HVM_CONTEXT --------------------------------------------------------- */

int strm_hvm_ctx_next(const uint8_t *body, uint32_t len, uint32_t *pos,
		      struct strm_hvm_entry *e)
{
	uint32_t p = *pos;

	if (p > len || len - p < sizeof(struct hvm_save_descriptor))
		return -EBADMSG;
	e->typecode = get_le16(body + p);
	e->instance = get_le16(body + p + 2);
	e->length = get_le32(body + p + 4);
	e->offset = p;
	if (e->length > len - p - sizeof(struct hvm_save_descriptor))
		return -EBADMSG;
	e->payload = body + p + sizeof(struct hvm_save_descriptor);
	*pos = p + (uint32_t)sizeof(struct hvm_save_descriptor) + e->length;
	return e->typecode == HVM_SAVE_CODE_END ? 0 : 1;
}

static int check_hvm_context(struct strm_dec *dec, const uint8_t *body, uint32_t len)
{
	struct strm_hvm_entry e;
	uint32_t pos = 0;
	int rc, n = 0;

	for (;; n++) {
		rc = strm_hvm_ctx_next(body, len, &pos, &e);
		if (rc < 0) {
			if (len - pos < sizeof(struct hvm_save_descriptor))
				return rec_fail(dec, -EBADMSG,
						"entry %d at body offset %" PRIu32
						": the body ends inside its descriptor (no END entry)",
						n, pos);
			return rec_fail(dec, -EBADMSG,
					"entry %d (typecode %u) at body offset %" PRIu32
					": length %" PRIu32 " runs past the body's %" PRIu32
					" bytes",
					n, e.typecode, pos, e.length, len);
		}
		if (n == 0) {
			if (e.typecode != HVM_SAVE_CODE_HEADER)
				return rec_fail(dec, -EBADMSG,
						"the first entry is typecode %u, not HEADER",
						e.typecode);
			if (e.length != sizeof(struct hvm_save_header))
				return rec_fail(dec, -EBADMSG,
						"HEADER entry of %" PRIu32 " bytes, expected %zu",
						e.length, sizeof(struct hvm_save_header));
			if (get_le32(e.payload) != HVM_FILE_MAGIC ||
			    get_le32(e.payload + 4) != HVM_FILE_VERSION)
				return rec_fail(dec, -EBADMSG,
						"HEADER magic 0x%08" PRIx32 " version %" PRIu32
						", expected 0x%08x version %u",
						get_le32(e.payload), get_le32(e.payload + 4),
						HVM_FILE_MAGIC, HVM_FILE_VERSION);
			continue;
		}
		if (rc == 0) {
			if (e.length)
				return rec_fail(dec, -EBADMSG,
						"END entry at body offset %" PRIu32
						" has length %" PRIu32 ", expected 0",
						e.offset, e.length);
			if (pos != len)
				return rec_fail(dec, -EBADMSG,
						"%" PRIu32 " bytes after the END entry", len - pos);
			return 0;
		}
		if (e.typecode == HVM_SAVE_CODE_HEADER)
			return rec_fail(dec, -EBADMSG,
					"a second HEADER entry at body offset %" PRIu32,
					e.offset);
	}
}

/* ---- record bodies ------------------------------------------------------- */

static int check_page_data(struct strm_dec *dec, const uint8_t *body, uint32_t len,
			   uint32_t *count_out)
{
	uint32_t count = get_le32(body), ndata = 0;
	uint64_t want;

	if (count == 0 || count > PAGE_DATA_BATCH_MAX)
		return rec_fail(dec, -EBADMSG, "count %" PRIu32 " (must be 1..%u)", count,
				PAGE_DATA_BATCH_MAX);
	if (len < 8 + 8 * (uint64_t)count)
		return rec_fail(dec, -EBADMSG,
				"length %" PRIu32 " too short for %" PRIu32 " entries", len,
				count);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t v = get_le64(body + 8 + 8 * (size_t)i);
		unsigned t = (unsigned)(v >> PAGE_DATA_TYPE_SHIFT);
		uint64_t pfn = v & PAGE_DATA_PFN_MASK;

		if (!strm_page_type_known(t))
			return rec_fail(dec, -EBADMSG,
					"entry %" PRIu32 " (pfn 0x%" PRIx64
					"): unknown page type 0x%x",
					i, pfn, t);
		if (v & STRM_PAGE_DATA_RES_MASK)
			return rec_fail(dec, -EBADMSG,
					"entry %" PRIu32 " (pfn 0x%" PRIx64
					"): reserved bits 0x%016" PRIx64 " set",
					i, pfn, v & STRM_PAGE_DATA_RES_MASK);
		if (dec->max_pfn && pfn >= dec->max_pfn)
			return rec_fail(dec, -ERANGE,
					"pfn 0x%" PRIx64 " beyond the domain's %" PRIu64
					" pages",
					pfn, dec->max_pfn);
		ndata += strm_page_type_has_data(t);
	}
	want = 8 + 8 * (uint64_t)count + 4096 * (uint64_t)ndata;
	if (len != want)
		return rec_fail(dec, -EBADMSG,
				"length %" PRIu32 ", expected %" PRIu64 " for %" PRIu32
				" entries of which %" PRIu32 " carry data",
				len, want, count, ndata);
	*count_out = count;
	return 0;
}

static int check_console(struct strm_dec *dec, const uint8_t *body, uint32_t len)
{
	uint32_t version = get_le32(body), n = get_le32(body + 16);
	uint64_t total = get_le64(body + 8);

	if (version != FERRY_CONSOLE_VERSION)
		return rec_fail(dec, -EPROTO, "version %" PRIu32 " (this Ferry knows %u)",
				version, FERRY_CONSOLE_VERSION);
	if (get_le32(body + 4) || get_le32(body + 20))
		return rec_fail(dec, -EBADMSG, "reserved fields not zero");
	if (n != len - sizeof(struct ferry_hvm_console))
		return rec_fail(dec, -EBADMSG,
				"data length %" PRIu32 " in a body of %" PRIu32 " bytes", n,
				len);
	if (n > total)
		return rec_fail(dec, -EBADMSG,
				"%" PRIu32 " bytes of data but only %" PRIu64 " ever written",
				n, total);
	return 0;
}

/* Key NUL value NUL pairs after the emulator sub-header. */
static int check_xenstore_data(struct strm_dec *dec, const uint8_t *body, uint32_t len)
{
	uint32_t id = get_le32(body), p = sizeof(struct libxl_sr_emulator_hdr);

	if (id > LIBXL_EMULATOR_QEMU_UPSTREAM)
		return rec_fail(dec, -EBADMSG, "unknown emulator id %" PRIu32, id);
	while (p < len) {
		const uint8_t *k = body + p, *nul = memchr(k, 0, len - p);
		const uint8_t *v, *vnul;

		if (!nul)
			return rec_fail(dec, -EBADMSG,
					"key at body offset %" PRIu32 " not NUL-terminated", p);
		if (nul == k)
			return rec_fail(dec, -EBADMSG, "empty key at body offset %" PRIu32, p);
		if (id == LIBXL_EMULATOR_UNKNOWN && k[0] == '/')
			return rec_fail(dec, -EBADMSG,
					"key at body offset %" PRIu32
					" is absolute; keys are relative to the domain's path",
					p);
		v = nul + 1;
		if (v == body + len)
			return rec_fail(dec, -EBADMSG,
					"key at body offset %" PRIu32 " has no value", p);
		vnul = memchr(v, 0, len - (uint32_t)(v - body));
		if (!vnul)
			return rec_fail(dec, -EBADMSG,
					"value at body offset %" PRIu32 " not NUL-terminated",
					(uint32_t)(v - body));
		p = (uint32_t)(vnul + 1 - body);
	}
	return 0;
}

static int check_padding(struct strm_dec *dec, const uint8_t *unit)
{
	for (size_t i = dec->rec_len; i < dec->need; i++)
		if (unit[i])
			return rec_fail(dec, -EBADMSG,
					"padding byte at offset 0x%" PRIx64 " is 0x%02x, not 0",
					dec->unit_off + 8 + i, unit[i]);
	return 0;
}

static int deliver(void *opaque, struct strm_rec *rec)
{
	struct strm_dec *dec = opaque;
	int rc;

	if (!dec->fn)
		return 0;
	rc = dec->fn(dec->opaque, rec);
	if (rc) {
		char tmp[24];
		const char *what = rec->layer == STRM_XL		       ? "xl header" :
				   rec->type == STRM_REC_LIBXC_HEADERS ? "libxc headers" :
				   rec->layer == STRM_LIBXL ? fmt_libxl_rec_name(rec->type) :
							      fmt_libxc_rec_name(rec->type);

		if (!what) {
			snprintf(tmp, sizeof(tmp), "type 0x%08" PRIx32, rec->type);
			what = tmp;
		}
		return dec_fail(dec, rc < 0 ? rc : -EINVAL,
				"%s at offset 0x%" PRIx64 ": the consumer stopped: %s", what,
				rec->offset, ferry_strerror(rc < 0 ? -rc : EINVAL));
	}
	return 0;
}

/* A checkpointed stream's record is held from the first CHECKPOINT on. */
static int emit(struct strm_dec *dec, struct strm_rec *rec)
{
	int rc;

	if (dec->checkpointed)
		rec->epoch = dec->epochs + 1;
	if (!dec->holding)
		return deliver(dec, rec);
	rc = strm_held_add(&dec->held, rec, dec->max_epoch);
	if (rc == -E2BIG)
		return dec_fail(dec, rc,
				"epoch %" PRIu64 " (from offset 0x%" PRIx64 "): the record at "
				"offset 0x%" PRIx64 " takes it past the limit of %" PRIu64
				" bytes held for one epoch",
				dec->epochs + 1, dec->epoch_off, rec->offset, dec->max_epoch);
	if (rc)
		return dec_fail(dec, rc, "no memory to hold epoch %" PRIu64 " (%" PRIu64
				" bytes)", dec->epochs + 1, strm_held_bytes(&dec->held));
	return 0;
}

/* CHECKPOINT_END: the epoch is complete, every record of it goes out. */
static int epoch_done(struct strm_dec *dec)
{
	int rc = strm_held_each(&dec->held, deliver, dec);

	strm_held_clear(&dec->held);
	if (rc)
		return rc;
	dec->epochs++;
	dec->epoch_off = dec->pos;
	return 0;
}

static void expect(struct strm_dec *dec, enum dec_state st, size_t need)
{
	dec->st = st;
	dec->need = need;
	dec->have = 0;
	dec->unit_off = dec->pos;
}

/* ---- the xl header ------------------------------------------------------- */

static void bit_list(uint32_t bits, char *buf, size_t n)
{
	size_t used = 0;

	buf[0] = 0;
	for (unsigned b = 0; b < 32 && used < n; b++)
		if (bits & (1u << b))
			used += (size_t)snprintf(buf + used, n - used, "%s%u",
						 used ? ", " : "", b);
}

static int xl_hdr(struct strm_dec *dec, const uint8_t *u)
{
	struct xl_save_header h;
	char bits[100];

	memcpy(&h, u, sizeof(h));
	if (memcmp(h.magic, XL_SAVE_MAGIC, XL_SAVE_MAGIC_LEN))
		return dec_fail(dec, -EBADMSG,
				"xl header at offset 0: not an xl save file (bad magic)");
	if (h.byteorder != XL_SAVE_BYTEORDER)
		return dec_fail(dec, -EBADMSG,
				"xl header at offset 0x20: byte order mark 0x%08" PRIx32
				" (expected 0x%08x: a file from a host of the other "
				"byte order?)",
				h.byteorder, XL_SAVE_BYTEORDER);
	if (h.mandatory_flags & ~XL_MANDATORY_FLAGS_KNOWN) {
		bit_list(h.mandatory_flags & ~XL_MANDATORY_FLAGS_KNOWN, bits, sizeof(bits));
		return dec_fail(dec, -EPROTO,
				"xl header at offset 0x24: unknown mandatory flags 0x%08" PRIx32
				" (bits %s)",
				h.mandatory_flags & ~XL_MANDATORY_FLAGS_KNOWN, bits);
	}
	if (!(h.mandatory_flags & XL_MANDATORY_FLAG_STREAMV2))
		return dec_fail(dec, -EPROTO,
				"xl header at offset 0x24: a version 1 stream (no STREAMV2 "
				"flag), which Ferry does not read");
	if (h.optional_data_len && h.optional_data_len < 4)
		return dec_fail(dec, -EBADMSG,
				"xl header at offset 0x2c: optional data of %" PRIu32
				" bytes cannot hold a config length",
				h.optional_data_len);
	if (h.optional_data_len > XL_CONFIG_MAX + 4)
		return dec_fail(dec, -E2BIG,
				"xl header at offset 0x2c: optional data of %" PRIu32
				" bytes is over the limit of %u",
				h.optional_data_len, XL_CONFIG_MAX + 4);
	dec->xl_flags = h.mandatory_flags;
	dec->xl_optlen = h.optional_data_len;
	expect(dec, ST_XL_OPT, h.optional_data_len);
	return 0;
}

static int xl_opt(struct strm_dec *dec, const uint8_t *u)
{
	struct strm_rec rec = {
		.layer = STRM_XL,
		.body = (const uint8_t *)"",
		.flags = dec->xl_flags,
	};
	uint64_t off = sizeof(struct xl_save_header);

	if (dec->xl_optlen) {
		uint32_t n = get_le32(u);
		const uint8_t *cfg = u + 4, *nul;

		if (n > dec->xl_optlen - 4)
			return dec_fail(dec, -EBADMSG,
					"xl header at offset 0x%" PRIx64 ": config length %" PRIu32
					" exceeds the %" PRIu32 " bytes of optional data",
					off, n, dec->xl_optlen);
		if (n == 0)
			return dec_fail(dec, -EBADMSG,
					"xl header at offset 0x%" PRIx64
					": config length 0 (it counts the NUL)",
					off);
		if (cfg[n - 1])
			return dec_fail(dec, -EBADMSG,
					"xl header at offset 0x%" PRIx64
					": config not NUL-terminated",
					off + 4 + n - 1);
		nul = memchr(cfg, 0, n);
		if (nul != cfg + n - 1)
			return dec_fail(dec, -EBADMSG,
					"xl header at offset 0x%" PRIx64
					": config has a NUL before its end",
					off + 4 + (uint64_t)(nul - cfg));
		rec.body = cfg;
		rec.len = n - 1;
	}
	expect(dec, ST_LIBXL_HDR, sizeof(struct libxl_sr_hdr));
	if (dec->xl_flags & XL_MANDATORY_FLAG_FERRY_FRAMES) {
		int rc = strm_frame_dec_new(&dec->fdec);

		if (rc)
			return dec_fail(dec, rc, "cannot set up the frame decoder");
		dec->framed = true;
		dec->frames_at = dec->pos;
	}
	return emit(dec, &rec);
}

/* ---- libxl --------------------------------------------------------------- */

static int libxl_hdr(struct strm_dec *dec, const uint8_t *u)
{
	uint64_t ident = get_be64(u);
	uint32_t version = get_be32(u + 8), options = get_be32(u + 12);

	if (ident != LIBXL_STREAM_IDENT)
		return dec_fail(dec, -EBADMSG,
				"libxl header at offset 0x%" PRIx64 ": ident 0x%016" PRIx64
				" is not \"LibxlFmt\"",
				dec->unit_off, ident);
	if (version != LIBXL_STREAM_VERSION)
		return dec_fail(dec, -EPROTO,
				"libxl header at offset 0x%" PRIx64 ": version %" PRIu32
				" (Ferry reads version %u)",
				dec->unit_off, version, LIBXL_STREAM_VERSION);
	if (options & LIBXL_STREAM_OPT_BIG_ENDIAN)
		return dec_fail(dec, -EPROTO,
				"libxl header at offset 0x%" PRIx64
				": a big-endian stream, which Ferry does not read",
				dec->unit_off);
	dec->libxl_hdr_ok = true;
	dec->libxl_version = version;
	dec->libxl_options = options;
	expect(dec, ST_LIBXL_RHDR, sizeof(struct libxl_sr_rec_hdr));
	return 0;
}

static int rec_len_limit(struct strm_dec *dec)
{
	if (dec->rec_len > dec->max_rec_len)
		return rec_fail(dec, -E2BIG, "length %" PRIu32 " is over the limit of %" PRIu32,
				dec->rec_len, dec->max_rec_len);
	return 0;
}

static int want_len(struct strm_dec *dec, bool ok, const char *what)
{
	if (!ok)
		return rec_fail(dec, -EBADMSG, "length %" PRIu32 ", expected %s",
				dec->rec_len, what);
	return 0;
}

static int libxl_rhdr(struct strm_dec *dec, const uint8_t *u)
{
	uint32_t len;
	int rc;

	dec->rec_type = get_le32(u);
	dec->rec_len = len = get_le32(u + 4);
	switch (dec->rec_type) {
	case LIBXL_REC_END:
		if (!dec->libxc_seen)
			return rec_fail(dec, -EPROTO, "the stream ends before LIBXC_CONTEXT");
		if (dec->in_checkpoint)
			return rec_fail(dec, -EPROTO,
					"inside epoch %" PRIu64 " (no CHECKPOINT_END after its "
					"CHECKPOINT)", dec->epochs + 1);
		rc = want_len(dec, len == 0, "0");
		break;
	case LIBXL_REC_LIBXC_CONTEXT:
		if (dec->libxc_seen)
			return rec_fail(dec, -EPROTO, "a second LIBXC_CONTEXT");
		rc = want_len(dec, len == 0, "0");
		break;
	case LIBXL_REC_EMULATOR_XENSTORE_DATA:
	case LIBXL_REC_EMULATOR_CONTEXT:
		rc = want_len(dec, len >= sizeof(struct libxl_sr_emulator_hdr),
			      "at least 8 (the emulator sub-header)");
		break;
	case LIBXL_REC_CHECKPOINT_END:
		if (!dec->checkpointed)
			return rec_fail(dec, -EPROTO, "checkpoint record in a plain stream");
		if (!dec->in_checkpoint)
			return rec_fail(dec, -EPROTO, "no libxc CHECKPOINT before it");
		rc = want_len(dec, len == 0, "0");
		break;
	case LIBXL_REC_CHECKPOINT_STATE:
		return rec_fail(dec, -EPROTO,
				dec->checkpointed ? "COLO's record, and Ferry does not do COLO" :
						    "checkpoint record in a plain stream");
	default:
		return rec_fail(dec, -EPROTO,
				"unknown %s record (libxl refuses every record it does "
				"not know)",
				dec->rec_type & LIBXL_REC_OPTIONAL ? "optional" : "mandatory");
	}
	if (!rc)
		rc = rec_len_limit(dec);
	if (rc)
		return rc;
	dec->st = ST_LIBXL_BODY;
	dec->need = STRM_ROUNDUP8(len);
	dec->have = 0;
	return 0;
}

static int libxl_body(struct strm_dec *dec, const uint8_t *u)
{
	struct strm_rec rec = {
		.layer = STRM_LIBXL,
		.type = dec->rec_type,
		.body = u,
		.len = dec->rec_len,
		.offset = dec->unit_off,
	};
	int rc = check_padding(dec, u);

	if (rc)
		return rc;
	switch (dec->rec_type) {
	case LIBXL_REC_EMULATOR_XENSTORE_DATA:
		rc = check_xenstore_data(dec, u, dec->rec_len);
		break;
	case LIBXL_REC_EMULATOR_CONTEXT:
		if (get_le32(u) > LIBXL_EMULATOR_QEMU_UPSTREAM)
			rc = rec_fail(dec, -EBADMSG, "unknown emulator id %" PRIu32,
				      get_le32(u));
		break;
	default:
		break;
	}
	if (rc)
		return rc;
	switch (dec->rec_type) {
	case LIBXL_REC_LIBXC_CONTEXT:
		dec->libxc_seen = true;
		expect(dec, ST_LIBXC_IHDR, sizeof(struct xc_sr_ihdr));
		break;
	case LIBXL_REC_END:
		expect(dec, ST_DONE, 0);
		break;
	case LIBXL_REC_CHECKPOINT_END:
		/* The libxc records of the next epoch follow, no headers. */
		dec->in_checkpoint = false;
		expect(dec, ST_LIBXC_RHDR, sizeof(struct xc_sr_rhdr));
		rc = emit(dec, &rec);
		return rc ? rc : epoch_done(dec);
	default:
		expect(dec, ST_LIBXL_RHDR, sizeof(struct libxl_sr_rec_hdr));
		break;
	}
	return emit(dec, &rec);
}

/* ---- libxc --------------------------------------------------------------- */

static int libxc_ihdr(struct strm_dec *dec, const uint8_t *u)
{
	uint64_t marker = get_be64(u);
	uint32_t id = get_be32(u + 8), version = get_be32(u + 12);
	uint16_t options = (uint16_t)(u[16] << 8 | u[17]);

	if (marker != IHDR_MARKER)
		return dec_fail(dec, -EBADMSG,
				"libxc image header at offset 0x%" PRIx64 ": marker 0x%016" PRIx64
				" is not all ones (a legacy pre-4.6 image?)",
				dec->unit_off, marker);
	if (id != IHDR_ID)
		return dec_fail(dec, -EBADMSG,
				"libxc image header at offset 0x%" PRIx64 ": id 0x%08" PRIx32
				" is not \"XENF\"",
				dec->unit_off, id);
	if (version != 2 && version != 3)
		return dec_fail(dec, -EPROTO,
				"libxc image header at offset 0x%" PRIx64 ": version %" PRIu32
				" (Ferry reads 2 and 3)",
				dec->unit_off, version);
	if (options & IHDR_OPT_BIG_ENDIAN)
		return dec_fail(dec, -EPROTO,
				"libxc image header at offset 0x%" PRIx64
				": a big-endian stream, which Ferry does not read",
				dec->unit_off);
	dec->ihdr_version = version;
	dec->ihdr_off = dec->unit_off;
	expect(dec, ST_LIBXC_DHDR, sizeof(struct xc_sr_dhdr));
	return 0;
}

static int libxc_dhdr(struct strm_dec *dec, const uint8_t *u)
{
	struct strm_rec rec = {
		.layer = STRM_LIBXC,
		.type = STRM_REC_LIBXC_HEADERS,
		.offset = dec->ihdr_off,
		.flags = dec->ihdr_version,
	};

	memcpy(&rec.dhdr, u, sizeof(rec.dhdr));
	if (rec.dhdr.type == DHDR_TYPE_X86_PV)
		return dec_fail(dec, -EPROTO,
				"libxc domain header at offset 0x%" PRIx64
				": an x86 PV domain; Ferry restores HVM domains only",
				dec->unit_off);
	if (rec.dhdr.type != DHDR_TYPE_X86_HVM)
		return dec_fail(dec, -EPROTO,
				"libxc domain header at offset 0x%" PRIx64
				": unknown domain type %" PRIu32,
				dec->unit_off, rec.dhdr.type);
	if (rec.dhdr.page_shift != 12)
		return dec_fail(dec, -EPROTO,
				"libxc domain header at offset 0x%" PRIx64
				": page shift %u (Ferry uses 4 KiB pages, shift 12)",
				dec->unit_off, rec.dhdr.page_shift);
	expect(dec, ST_LIBXC_RHDR, sizeof(struct xc_sr_rhdr));
	return emit(dec, &rec);
}

/* libxc END, and CHECKPOINT which ends the libxc part of an epoch. */
static int libxc_end_rhdr(struct strm_dec *dec, uint32_t type, uint32_t len)
{
	if (type == REC_TYPE_CHECKPOINT) {
		if (!dec->checkpointed)
			return rec_fail(dec, -EPROTO,
					"CHECKPOINT in a plain stream (the receiver did not "
					"expect a checkpointed one)");
		if (!dec->holding)
			dec->epoch_off = dec->unit_off;
		dec->holding = true; /* Xen's buffer_all_records */
		dec->in_checkpoint = true;
		return want_len(dec, len == 0, "0");
	}
	if (!dec->hvm_ctx_seen && !dec->page_channel)
		return rec_fail(dec, -EPROTO, "the libxc stream ends without HVM_CONTEXT");
	if (dec->held.n)
		return rec_fail(dec, -EPROTO,
				"inside epoch %" PRIu64 " (%zu records since the last "
				"CHECKPOINT_END, which are dropped)",
				dec->epochs + 1, dec->held.n);
	dec->holding = false; /* no epoch follows */
	return want_len(dec, len == 0, "0");
}

/* One case per libxc record type, each the few checks of its header: long
 * (about 85 lines), but split by type it reads as the spec's table does. */
static int libxc_rhdr(struct strm_dec *dec, const uint8_t *u)
{
	uint32_t type, len;
	int rc;

	dec->rec_type = type = get_le32(u);
	dec->rec_len = len = get_le32(u + 4);
	switch (type) {
	case REC_TYPE_END:
	case REC_TYPE_CHECKPOINT:
		rc = libxc_end_rhdr(dec, type, len);
		break;
	case REC_TYPE_STATIC_DATA_END:
		if (dec->sde_seen)
			return rec_fail(dec, -EPROTO,
					dec->ihdr_version == 2 ?
						"after PAGE_DATA (which implies it in a version 2 "
						"stream)" :
						"a second STATIC_DATA_END");
		dec->sde_seen = true;
		rc = want_len(dec, len == 0, "0");
		break;
	case REC_TYPE_VERIFY:
		rc = want_len(dec, len == 0, "0");
		break;
	case REC_TYPE_PAGE_DATA:
		if (!dec->sde_seen && dec->ihdr_version >= 3)
			return rec_fail(dec, -EPROTO, "before STATIC_DATA_END");
		dec->sde_seen = true;
		rc = want_len(dec, len >= 8, "at least 8");
		break;
	case REC_TYPE_X86_TSC_INFO:
		rc = want_len(dec, len == sizeof(struct xc_sr_rec_x86_tsc_info), "24");
		break;
	case REC_TYPE_HVM_CONTEXT:
		rc = want_len(dec, len >= 2 * sizeof(struct hvm_save_descriptor) +
					      sizeof(struct hvm_save_header),
			      "at least 40 (HEADER and END entries)");
		break;
	case REC_TYPE_HVM_PARAMS:
		rc = want_len(dec, len >= sizeof(struct xc_sr_rec_hvm_params),
			      "at least 8");
		break;
	case REC_TYPE_X86_CPUID_POLICY:
	case REC_TYPE_X86_MSR_POLICY: {
		uint32_t sz = type == REC_TYPE_X86_CPUID_POLICY ?
				      sizeof(struct xc_sr_cpuid_leaf) :
				      sizeof(struct xc_sr_msr_entry);

		if (dec->sde_seen)
			return rec_fail(dec, -EPROTO, "static data after STATIC_DATA_END");
		rc = want_len(dec, len && len % sz == 0,
			      sz == 24 ? "a non-zero multiple of 24" :
					 "a non-zero multiple of 16");
		break;
	}
	case REC_TYPE_FERRY_CONSOLE:
		rc = want_len(dec, len >= sizeof(struct ferry_hvm_console), "at least 24");
		break;
	case REC_TYPE_FERRY_CHANNEL_SYNC:
		if (!dec->sde_seen)
			return rec_fail(dec, -EPROTO, "before STATIC_DATA_END");
		rc = want_len(dec, len == sizeof(struct ferry_channel_sync), "8");
		break;
	case REC_TYPE_X86_PV_INFO:
	case REC_TYPE_X86_PV_P2M_FRAMES:
	case REC_TYPE_X86_PV_VCPU_BASIC:
	case REC_TYPE_X86_PV_VCPU_EXTENDED:
	case REC_TYPE_X86_PV_VCPU_XSAVE:
	case REC_TYPE_SHARED_INFO:
	case REC_TYPE_X86_PV_VCPU_MSRS:
		return rec_fail(dec, -EPROTO, "a PV record in an HVM stream");
	case REC_TYPE_TOOLSTACK:
		return rec_fail(dec, -EPROTO, "deprecated record, refused as Xen does");
	case REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST:
		return rec_fail(dec, -EPROTO, "a COLO back-channel record in the stream");
	default:
		if (!(type & REC_TYPE_OPTIONAL))
			return rec_fail(dec, -EPROTO, "unknown mandatory record");
		rc = 0; /* unknown optional: reported flagged, body unchecked */
		break;
	}
	if (!rc)
		rc = rec_len_limit(dec);
	if (rc)
		return rc;
	dec->st = ST_LIBXC_BODY;
	dec->need = STRM_ROUNDUP8(len);
	dec->have = 0;
	return 0;
}

static int libxc_body(struct strm_dec *dec, const uint8_t *u)
{
	struct strm_rec rec = {
		.layer = STRM_LIBXC,
		.type = dec->rec_type,
		.body = u,
		.len = dec->rec_len,
		.offset = dec->unit_off,
	};
	uint32_t len = dec->rec_len;
	int rc = check_padding(dec, u);

	if (rc)
		return rc;
	switch (dec->rec_type) {
	case REC_TYPE_PAGE_DATA:
		rc = check_page_data(dec, u, len, &rec.page_count);
		rec.page_pfns = (const uint64_t *)(const void *)(u + 8);
		rec.page_data = u + 8 + 8 * (size_t)rec.page_count;
		break;
	case REC_TYPE_HVM_CONTEXT:
		rc = check_hvm_context(dec, u, len);
		dec->hvm_ctx_seen = true;
		break;
	case REC_TYPE_HVM_PARAMS: {
		uint32_t count = get_le32(u);

		if (len != 8 + 16 * (uint64_t)count)
			rc = rec_fail(dec, -EBADMSG,
				      "length %" PRIu32 ", expected %" PRIu64 " for %" PRIu32
				      " params",
				      len, 8 + 16 * (uint64_t)count, count);
		break;
	}
	case REC_TYPE_X86_MSR_POLICY:
		for (uint32_t i = 0; i < len / 16; i++)
			if (get_le32(u + 16 * (size_t)i + 4)) {
				rc = rec_fail(dec, -EBADMSG,
					      "entry %" PRIu32 " (MSR 0x%08" PRIx32
					      "): flags 0x%08" PRIx32 " must be 0",
					      i, get_le32(u + 16 * (size_t)i),
					      get_le32(u + 16 * (size_t)i + 4));
				break;
			}
		break;
	case REC_TYPE_FERRY_CONSOLE:
		rc = check_console(dec, u, len);
		break;
	default:
		if (!fmt_libxc_rec_name(dec->rec_type))
			rec.flags = STRM_REC_UNKNOWN_OPTIONAL;
		break;
	}
	if (rc)
		return rc;
	/* After CHECKPOINT the libxl records of the epoch follow. */
	if (dec->rec_type == REC_TYPE_END || dec->rec_type == REC_TYPE_CHECKPOINT)
		expect(dec, ST_LIBXL_RHDR, sizeof(struct libxl_sr_rec_hdr));
	else
		expect(dec, ST_LIBXC_RHDR, sizeof(struct xc_sr_rhdr));
	return emit(dec, &rec);
}

/* ---- the byte pump ------------------------------------------------------- */

static int unit_done(struct strm_dec *dec, const uint8_t *u)
{
	switch (dec->st) {
	case ST_XL_HDR: return xl_hdr(dec, u);
	case ST_XL_OPT: return xl_opt(dec, u);
	case ST_LIBXL_HDR: return libxl_hdr(dec, u);
	case ST_LIBXL_RHDR: return libxl_rhdr(dec, u);
	case ST_LIBXL_BODY: return libxl_body(dec, u);
	case ST_LIBXC_IHDR: return libxc_ihdr(dec, u);
	case ST_LIBXC_DHDR: return libxc_dhdr(dec, u);
	case ST_LIBXC_RHDR: return libxc_rhdr(dec, u);
	case ST_LIBXC_BODY: return libxc_body(dec, u);
	case ST_DONE:
	case ST_ERROR: break;
	}
	return dec->err;
}

static bool is_body(enum dec_state st)
{
	return st == ST_XL_OPT || st == ST_LIBXL_BODY || st == ST_LIBXC_BODY;
}

/* Units of zero bytes (empty bodies, no optional data) complete at once. */
static int empty_units(struct strm_dec *dec)
{
	int rc = 0;

	while (!rc && dec->need == 0 && dec->st != ST_DONE && dec->st != ST_ERROR)
		rc = unit_done(dec, (const uint8_t *)"");
	return rc;
}

static int body_reserve(struct strm_dec *dec)
{
	uint8_t *nb;

	if (dec->cap >= dec->need)
		return 0;
	nb = realloc(dec->buf, dec->need);
	if (!nb)
		return -ENOMEM;
	dec->buf = nb;
	dec->cap = dec->need;
	return 0;
}

/*
 * Consumes decoded bytes. Stops early (*used < len) only when the xl header
 * has switched the rest of the input to the frame layer.
 */
static int consume(struct strm_dec *dec, const uint8_t *p, size_t len, bool raw,
		   size_t *used)
{
	size_t off = 0;
	int rc = 0;

	while (off < len) {
		size_t want, n;

		if (dec->st == ST_ERROR)
			return dec->err;
		if (dec->st == ST_DONE)
			return dec_fail(dec, -EBADMSG,
					"%zu bytes after libxl END (which ended at offset 0x%" PRIx64
					")",
					len - off, dec->pos);
		want = dec->need - dec->have;
		if (dec->have == 0 && len - off >= want &&
		    (!is_body(dec->st) || (uintptr_t)(p + off) % 8 == 0)) {
			/* The whole unit is here, suitably aligned: no copy. */
			dec->pos += want;
			rc = unit_done(dec, p + off);
			off += want;
		} else {
			uint8_t *dst = dec->hdr;

			if (is_body(dec->st)) {
				if (body_reserve(dec))
					return dec_fail(dec, -ENOMEM,
							"no memory for a %zu-byte record",
							dec->need);
				dst = dec->buf;
			}
			n = len - off < want ? len - off : want;
			/* Bytes read straight into place (strm_dec_body_space). */
			if (dst + dec->have != p + off)
				memcpy(dst + dec->have, p + off, n);
			dec->have += n;
			dec->pos += n;
			off += n;
			if (dec->have < dec->need)
				break;
			rc = unit_done(dec, dst);
		}
		if (!rc)
			rc = empty_units(dec);
		if (rc)
			return rc;
		if (raw && dec->framed)
			break; /* the rest goes through the frame layer */
	}
	*used = off;
	return 0;
}

static int frame_out(void *opaque, const void *raw, size_t len)
{
	struct strm_dec *dec = opaque;
	size_t used = 0;

	return consume(dec, raw, len, false, &used);
}

int strm_dec_feed(struct strm_dec *dec, const void *buf, size_t len,
		  strm_rec_fn fn, void *opaque)
{
	const uint8_t *p = buf;
	int rc = 0;

	if (dec->st == ST_ERROR)
		return dec->err;
	dec->fn = fn;
	dec->opaque = opaque;
	while (!rc && len) {
		size_t used = 0;

		if (dec->framed) {
			if (strm_frame_dec_done(dec->fdec)) {
				rc = dec_fail(dec, -EBADMSG,
					      "%zu bytes after the end frame (file offset 0x%" PRIx64
					      ")",
					      len, dec->raw_pos);
				break;
			}
			rc = strm_frame_dec_feed(dec->fdec, p, len, frame_out, dec);
			dec->raw_pos += len;
			if (dec->st == ST_ERROR)
				rc = dec->err;
			else if (rc)
				rc = dec_fail(dec, rc,
					      "frame layer (frames from file offset 0x%" PRIx64
					      "): %s",
					      dec->frames_at, strm_frame_dec_error(dec->fdec));
			break;
		}
		rc = consume(dec, p, len, true, &used);
		dec->raw_pos += used;
		p += used;
		len -= used;
	}
	dec->fn = NULL;
	dec->opaque = NULL;
	return rc;
}

size_t strm_dec_body_space(struct strm_dec *dec, void **at)
{
	/* Only unframed input lands in the body as read; a body that starts
	 * now may still arrive whole in the caller's buffer (no copy at all),
	 * so only one already begun is offered. */
	if (dec->framed || !is_body(dec->st) || dec->have == 0 || dec->have >= dec->need ||
	    body_reserve(dec))
		return 0;
	*at = dec->buf + dec->have;
	return dec->need - dec->have;
}

int strm_dec_swap_body(struct strm_dec *dec, const struct strm_rec *rec, void *fresh,
		       size_t fresh_cap, void **taken, size_t *taken_cap)
{
	uintptr_t b = (uintptr_t)rec->body, lo = (uintptr_t)dec->buf;

	if (!dec->buf || b < lo || b >= lo + dec->cap)
		return -ENOENT;
	*taken = dec->buf;
	*taken_cap = dec->cap;
	dec->buf = fresh;
	dec->cap = fresh ? fresh_cap : 0;
	return 0;
}

static const char *reading(const struct strm_dec *dec, char *buf, size_t n)
{
	char tmp[24];

	switch (dec->st) {
	case ST_XL_HDR: return "the xl header";
	case ST_XL_OPT: return "the xl header's optional data (the config)";
	case ST_LIBXL_HDR: return "the libxl header";
	case ST_LIBXL_RHDR: return "a libxl record header";
	case ST_LIBXC_IHDR: return "the libxc image header";
	case ST_LIBXC_DHDR: return "the libxc domain header";
	case ST_LIBXC_RHDR: return "a libxc record header (no libxc END yet)";
	case ST_LIBXL_BODY:
	case ST_LIBXC_BODY:
		snprintf(buf, n, "the body of %s record %s at offset 0x%" PRIx64,
			 dec->st == ST_LIBXL_BODY ? "libxl" : "libxc",
			 rec_name(dec->st, dec->rec_type, tmp, sizeof(tmp)), dec->unit_off);
		return buf;
	case ST_DONE:
	case ST_ERROR: break;
	}
	return "nothing";
}

int strm_dec_finish(struct strm_dec *dec)
{
	char what[160];

	if (dec->st == ST_ERROR)
		return dec->err;
	if (dec->st == ST_DONE) {
		int rc = dec->framed ? strm_frame_dec_finish(dec->fdec) : 0;

		if (rc)
			return dec_fail(dec, rc,
					"after libxl END, frame layer (frames from file offset "
					"0x%" PRIx64 "): %s",
					dec->frames_at, strm_frame_dec_error(dec->fdec));
		return 0;
	}
	if (dec->holding) {
		size_t n = dec->held.n;

		strm_held_clear(&dec->held);
		return dec_fail(dec, -ENODATA,
				"truncated after %" PRIu64 " bytes%s, in epoch %" PRIu64
				" (from offset 0x%" PRIx64 ", %zu records held and dropped; "
				"%" PRIu64 " complete epochs), in the middle of %s (%zu of %zu "
				"bytes at offset 0x%" PRIx64 ")",
				dec->pos, dec->framed ? " (decoded from frames)" : "",
				dec->epochs + 1, dec->epoch_off, n, dec->epochs,
				reading(dec, what, sizeof(what)), dec->have, dec->need,
				dec->unit_off);
	}
	return dec_fail(dec, -ENODATA,
			"truncated after %" PRIu64 " bytes%s, in the middle of %s (%zu of %zu "
			"bytes at offset 0x%" PRIx64 ")",
			dec->pos, dec->framed ? " (decoded from frames)" : "",
			reading(dec, what, sizeof(what)), dec->have, dec->need, dec->unit_off);
}
