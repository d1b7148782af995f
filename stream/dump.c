// SPDX-License-Identifier: MIT
/* `xl stream-dump`: the decoder run over a file, printing what it reports. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/hvm-context.h"
#include "internal-codec.h"
#include "stream/codec.h"
#include "stream/dump.h"

#define NLIBXL (LIBXL_REC_CHECKPOINT_STATE + 1)
#define NLIBXC (REC_TYPE_X86_MSR_POLICY + 1)

struct tally {
	uint64_t n, bytes;
};

struct dump {
	FILE *out;
	bool verbose;
	struct strm_dec *dec;
	bool libxl_hdr_printed;
	struct tally libxl[NLIBXL], libxc[NLIBXC], console, optional;
	uint64_t records, entries, data_pages;
};

static struct tally *tally_of(struct dump *d, const struct strm_rec *rec)
{
	if (rec->layer == STRM_LIBXL)
		return rec->type < NLIBXL ? &d->libxl[rec->type] : NULL;
	if (rec->type == REC_TYPE_FERRY_CONSOLE)
		return &d->console;
	if (rec->flags & STRM_REC_UNKNOWN_OPTIONAL)
		return &d->optional;
	return rec->type < NLIBXC ? &d->libxc[rec->type] : NULL;
}

static void print_flags(FILE *out, uint32_t f)
{
	static const char *const names[] = { "JSON", "STREAMV2" };
	const char *sep = "";

	fprintf(out, "0x%08" PRIx32 " (", f);
	for (unsigned b = 0; b < 32; b++) {
		if (!(f & (1u << b)))
			continue;
		if (b < 2)
			fprintf(out, "%s%s", sep, names[b]);
		else if (1u << b == XL_MANDATORY_FLAG_FERRY_FRAMES)
			fprintf(out, "%sFERRY_FRAMES", sep);
		else
			fprintf(out, "%sbit%u", sep, b);
		sep = " ";
	}
	fputs(")", out);
}

static void dump_hvm_context(struct dump *d, const struct strm_rec *rec)
{
	struct strm_hvm_entry e;
	uint32_t pos = 0;
	int rc;

	do {
		const char *name;

		rc = strm_hvm_ctx_next(rec->body, rec->len, &pos, &e);
		if (rc < 0)
			break;
		name = fmt_hvm_code_name(e.typecode);
		if (name)
			fprintf(d->out, "           %-16s", name);
		else
			fprintf(d->out, "           code 0x%04x      ", e.typecode);
		fprintf(d->out, " instance %-3u length %" PRIu32 "\n", e.instance, e.length);
	} while (rc > 0);
}

static void dump_str(FILE *out, const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fputc(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '.', out);
}

static void dump_verbose(struct dump *d, const struct strm_rec *rec)
{
	const uint8_t *b = rec->body;

	if (rec->layer == STRM_LIBXL && rec->type == LIBXL_REC_EMULATOR_XENSTORE_DATA) {
		uint32_t p = 8;

		while (p < rec->len) {
			size_t kl = strlen((const char *)b + p);
			size_t vl = strlen((const char *)b + p + kl + 1);

			fputs("           ", d->out);
			dump_str(d->out, b + p, kl);
			fputs(" = \"", d->out);
			dump_str(d->out, b + p + kl + 1, vl);
			fputs("\"\n", d->out);
			p += (uint32_t)(kl + vl + 2);
		}
		return;
	}
	if (rec->layer != STRM_LIBXC)
		return;
	switch (rec->type) {
	case REC_TYPE_HVM_CONTEXT:
		dump_hvm_context(d, rec);
		break;
	case REC_TYPE_HVM_PARAMS:
		for (uint32_t i = 0; i < get_le32(b); i++)
			fprintf(d->out, "           param %" PRIu64 " = 0x%" PRIx64 "\n",
				get_le64(b + 8 + 16 * (size_t)i),
				get_le64(b + 16 + 16 * (size_t)i));
		break;
	case REC_TYPE_X86_TSC_INFO:
		fprintf(d->out,
			"           mode %" PRIu32 " khz %" PRIu32 " nsec %" PRIu64
			" incarnation %" PRIu32 "\n",
			get_le32(b), get_le32(b + 4), get_le64(b + 8), get_le32(b + 16));
		break;
	case REC_TYPE_PAGE_DATA:
		fputs("           pfns", d->out);
		for (uint32_t i = 0; i < rec->page_count && i < 8; i++) {
			uint64_t v = rec->page_pfns[i];

			fprintf(d->out, " 0x%" PRIx64, v & PAGE_DATA_PFN_MASK);
			if (v >> PAGE_DATA_TYPE_SHIFT)
				fprintf(d->out, "/t%x", (unsigned)(v >> PAGE_DATA_TYPE_SHIFT));
		}
		fputs(rec->page_count > 8 ? " ...\n" : "\n", d->out);
		break;
	case REC_TYPE_FERRY_CONSOLE:
		fprintf(d->out, "           %" PRIu64 " bytes ever written, last %" PRIu32 "\n",
			get_le64(b + 8), get_le32(b + 16));
		break;
	default:
		break;
	}
}

static int on_rec(void *opaque, const struct strm_rec *rec)
{
	struct dump *d = opaque;
	struct tally *t;
	const char *name;
	uint32_t version, options;

	if (rec->layer == STRM_XL) {
		fputs("xl header: mandatory flags ", d->out);
		print_flags(d->out, rec->flags);
		if (rec->flags & XL_MANDATORY_FLAG_JSON || rec->len)
			fprintf(d->out, ", config %" PRIu32 " bytes\n", rec->len);
		else
			fputs(", no config\n", d->out);
		if (d->verbose && rec->len)
			fprintf(d->out, "%s\n", (const char *)rec->body);
		return 0;
	}
	if (!d->libxl_hdr_printed && strm_dec_libxl_header(d->dec, &version, &options)) {
		d->libxl_hdr_printed = true;
		fprintf(d->out, "0x%08" PRIx64 " libxl header: version %" PRIu32
				" options 0x%" PRIx32 "\n",
			rec->offset - 16, version, options);
	}
	if (rec->type == STRM_REC_LIBXC_HEADERS) {
		fprintf(d->out,
			"0x%08" PRIx64 " libxc headers: image version %" PRIu32
			", domain type %s, page shift %u, saved by Xen %" PRIu32 ".%" PRIu32 "\n",
			rec->offset, rec->flags, rec->dhdr.type == DHDR_TYPE_X86_HVM ? "HVM" : "PV",
			rec->dhdr.page_shift, rec->dhdr.xen_major, rec->dhdr.xen_minor);
		return 0;
	}
	d->records++;
	t = tally_of(d, rec);
	if (t) {
		t->n++;
		t->bytes += 8 + STRM_ROUNDUP8(rec->len);
	}
	name = rec->layer == STRM_LIBXL ? fmt_libxl_rec_name(rec->type) :
					  fmt_libxc_rec_name(rec->type);
	fprintf(d->out, "0x%08" PRIx64 " %s ", rec->offset,
		rec->layer == STRM_LIBXL ? "libxl" : "libxc");
	if (name)
		fprintf(d->out, "%-24s", name);
	else
		fprintf(d->out, "optional 0x%08" PRIx32 "     ", rec->type);
	fprintf(d->out, " length %" PRIu32, rec->len);
	if (rec->layer == STRM_LIBXC && rec->type == REC_TYPE_PAGE_DATA) {
		uint32_t ndata = (uint32_t)((rec->len - 8 - 8 * (uint64_t)rec->page_count) / 4096);

		fprintf(d->out, " pfns %" PRIu32 " (%" PRIu32 " with data)", rec->page_count,
			ndata);
		d->entries += rec->page_count;
		d->data_pages += ndata;
	}
	if (rec->flags & STRM_REC_UNKNOWN_OPTIONAL)
		fputs(" (skipped)", d->out);
	fputc('\n', d->out);
	if (d->verbose)
		dump_verbose(d, rec);
	return 0;
}

static void summary_line(FILE *out, const char *layer, const char *name,
			 const struct tally *t)
{
	if (t->n)
		fprintf(out, "  %s %-24s %8" PRIu64 " records %12" PRIu64 " bytes\n", layer,
			name, t->n, t->bytes);
}

static void summary(struct dump *d)
{
	fprintf(d->out, "summary: %" PRIu64 " records, %" PRIu64 " bytes\n", d->records,
		strm_dec_offset(d->dec));
	for (uint32_t i = 0; i < NLIBXC; i++)
		summary_line(d->out, "libxc", fmt_libxc_rec_name(i), &d->libxc[i]);
	summary_line(d->out, "libxc", "FERRY_CONSOLE", &d->console);
	summary_line(d->out, "libxc", "(unknown optional)", &d->optional);
	for (uint32_t i = 0; i < NLIBXL; i++)
		summary_line(d->out, "libxl", fmt_libxl_rec_name(i), &d->libxl[i]);
	fprintf(d->out, "  pages: %" PRIu64 " pfns sent, %" PRIu64 " with data (%" PRIu64
			" bytes)\n",
		d->entries, d->data_pages, d->data_pages * 4096);
}

int strm_dump(FILE *out, int fd, bool verbose)
{
	struct dump d = { .out = out, .verbose = verbose };
	size_t bufsz = 1u << 20;
	uint8_t *buf = malloc(bufsz);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = strm_dec_new(NULL, &d.dec);
	if (rc) {
		free(buf);
		return rc;
	}
	for (;;) {
		ssize_t n = read(fd, buf, bufsz);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			fprintf(out, "error: read after %" PRIu64 " bytes: %s\n",
				strm_dec_offset(d.dec), strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		rc = strm_dec_feed(d.dec, buf, (size_t)n, on_rec, &d);
		if (rc)
			break;
	}
	if (!rc)
		rc = strm_dec_finish(d.dec);
	if (rc)
		fprintf(out, "error: %s\n", strm_dec_error(d.dec));
	else
		summary(&d);
out:
	strm_dec_free(d.dec);
	free(buf);
	return rc;
}
