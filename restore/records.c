// SPDX-License-Identifier: MIT
/*
 * What every restore does with the stream's records (restore/internal.h):
 * create the domain once the headers have been checked, send PAGE_DATA to
 * the page applier, load the vCPU and platform state from HVM_CONTEXT.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "formats/hvm-context.h"
#include "hyp/context.h"
#include "internal.h"
#include "xenstore/xenstore.h"

/* Small enough to stay in the cache between the read and the decoder's use
 * of it; a record body that spans reads is read straight into place
 * (strm_dec_body_space). */
#define READ_CHUNK (256u << 10)

double rst_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int rst_fail(struct rst *r, int err, const char *fmt, ...)
{
	va_list ap;

	if (r->err[0])
		return err; /* the first error is the one that matters */
	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	log_err("restore: %s", r->err);
	return err;
}

int rst_on_xl_header(struct rst *r, const struct strm_rec *rec)
{
	char msg[256] = "";
	int err;

	if (!(rec->flags & XL_MANDATORY_FLAG_JSON) || !rec->len)
		return rst_fail(r, -EPROTO, "the xl header carries no JSON config");
	err = r->config(r->config_opaque, (const char *)rec->body, &r->cfg, msg, sizeof(msg));
	if (err)
		return rst_fail(r, err, "the stream's config: %s", msg);
	/* The backend is part of what was saved: vCPU state of one cannot
	 * run on the other. */
	if (!r->cfg.backend[0])
		return rst_fail(r, -EPROTO, "the stream's config names no backend");
	r->have_cfg = true;
	strm_dec_set_max_pfn(r->dec, r->cfg.maxmem_mb << 8);
	return 0;
}

int rst_create_domain(struct rst *r, const struct strm_rec *rec)
{
	struct hyp_info info;
	int err;

	if (!r->have_cfg)
		return rst_fail(r, -EPROTO, "libxc stream before the xl header");
	if (rec->dhdr.type != DHDR_TYPE_X86_HVM)
		return rst_fail(r, -EPROTO, "domain type %u is not x86 HVM", rec->dhdr.type);
	err = hyp_get_info(r->h, &info);
	if (!err && (r->cfg.memory_mb << 20) > info.free_bytes)
		return rst_fail(r, -ENOMEM,
				"domain '%s' needs %llu MiB, %llu MiB free of %llu MiB",
				r->cfg.name, (unsigned long long)r->cfg.memory_mb,
				(unsigned long long)(info.free_bytes >> 20),
				(unsigned long long)(info.total_bytes >> 20));
	err = r->lazy ? hyp_domain_create_lazy(r->h, &r->cfg, &r->domid)
		      : hyp_domain_create_restore(r->h, &r->cfg, &r->domid);
	if (err == -EEXIST)
		return rst_fail(r, err,
				"domain name '%s' is already in use (restore with -n NAME)",
				r->cfg.name);
	if (err == -FERRY_ENOKVM)
		return rst_fail(r, err,
				"the stream is from a %s domain and this ferryd cannot run %s",
				r->cfg.backend, r->cfg.backend);
	if (err)
		return rst_fail(r, err, "cannot create domain '%s': %s", r->cfg.name,
				ferry_strerror(err));
	r->created = true;
	err = hyp_domain_get(r->h, r->domid, &r->d);
	if (err)
		return rst_fail(r, err, "domain %u vanished while restoring", r->domid);
	hyp_domain_gmem(r->d, &r->gm);
	err = rst_applier_direct_new(r->d, &r->direct);
	if (err)
		return rst_fail(r, err, "no memory for the page applier");
	r->pages = r->direct;
	return r->on_created ? r->on_created(r->created_opaque, r) : 0;
}

int rst_apply_pages(struct rst *r, const uint64_t *pfns, const uint8_t *data, uint32_t count,
		    uint64_t offset, char *msg, size_t msglen)
{
	uint64_t pfn;

	for (uint32_t i = 0; i < count;) {
		uint64_t n = 1;
		unsigned type = (unsigned)(pfns[i] >> PAGE_DATA_TYPE_SHIFT);
		int err;

		pfn = pfns[i] & PAGE_DATA_PFN_MASK;
		if (type == PAGE_TYPE_XTAB) {
			/* A balloon hole in the sender: the same hole here. */
			if (pfn >= r->gm.npages)
				goto out_of_range;
			err = rst_applier_unpopulate(r->pages, pfn, 1);
			if (err) {
				snprintf(msg, msglen,
					 "PAGE_DATA at offset %llu: cannot release pfn 0x%llx",
					 (unsigned long long)offset, (unsigned long long)pfn);
				return err;
			}
			i++;
			continue;
		}
		if (type == PAGE_TYPE_BROKEN || type == PAGE_TYPE_XALLOC) {
			i++;
			continue;
		}
		/* A run of consecutive pfns with data is one write. */
		while (i + n < count && pfns[i + n] == (pfns[i] & PAGE_DATA_PFN_MASK) + n)
			n++;
		if (pfn >= r->gm.npages || n > r->gm.npages - pfn) {
			pfn += n - 1;
			goto out_of_range;
		}
		err = rst_applier_load(r->pages, pfn, data, n);
		if (err) {
			snprintf(msg, msglen,
				 "PAGE_DATA at offset %llu: cannot write pfn 0x%llx: %s",
				 (unsigned long long)offset, (unsigned long long)pfn,
				 ferry_strerror(err));
			return err;
		}
		data += n * 4096;
		r->npages += n;
		i += (uint32_t)n;
	}
	return 0;

out_of_range:
	snprintf(msg, msglen, "PAGE_DATA at offset %llu: pfn 0x%llx beyond the domain's %llu pages",
		 (unsigned long long)offset, (unsigned long long)pfn,
		 (unsigned long long)r->gm.npages);
	return -ERANGE;
}

int rst_on_pages(struct rst *r, const struct strm_rec *rec)
{
	char msg[256];
	int err;

	if (!r->created)
		return rst_fail(r, -EPROTO, "PAGE_DATA at offset %llu before the headers",
				(unsigned long long)rec->offset);
	err = rst_apply_pages(r, rec->page_pfns, rec->page_data, rec->page_count, rec->offset, msg,
			      sizeof(msg));
	return err ? rst_fail(r, err, "%s", msg) : 0;
}

int rst_load_context(struct rst *r, const uint8_t *body, uint32_t len, uint64_t offset)
{
	const uint8_t *p = body, *end = body + len;

	if (!r->created)
		return rst_fail(r, -EPROTO, "HVM_CONTEXT before the headers");
	while (p + sizeof(struct hvm_save_descriptor) <= end) {
		struct hvm_save_descriptor desc;
		int err;

		memcpy(&desc, p, sizeof(desc));
		p += sizeof(desc);
		if (desc.length > (size_t)(end - p))
			return rst_fail(r, -EPROTO, "HVM_CONTEXT at offset %llu: entry %s overruns",
					(unsigned long long)offset,
					fmt_hvm_code_name(desc.typecode) ?: "?");
		if (desc.typecode == HVM_SAVE_CODE_END)
			return 0;
		if (desc.typecode != HVM_SAVE_CODE_HEADER) {
			err = hyp_domain_load_entry(r->h, r->domid, desc.typecode,
						    desc.instance, p, desc.length);
			if (err)
				return rst_fail(r, err,
						"HVM_CONTEXT at offset %llu: entry %s (0x%x) "
						"instance %u refused: %s",
						(unsigned long long)offset,
						fmt_hvm_code_name(desc.typecode) ?: "unknown",
						desc.typecode, desc.instance, ferry_strerror(err));
		}
		p += desc.length;
	}
	return rst_fail(r, -EPROTO, "HVM_CONTEXT at offset %llu has no END entry",
			(unsigned long long)offset);
}

/* FERRY_CONSOLE, from saves written before the console history moved into
 * HVM_CONTEXT (its CONSOLE entry, which hyp loads): still restored. */
int rst_on_console(struct rst *r, const struct strm_rec *rec)
{
	struct ferry_hvm_console hdr;

	if (!r->created || rec->len < sizeof(hdr))
		return 0; /* optional: a short one is ignored */
	memcpy(&hdr, rec->body, sizeof(hdr));
	if (hdr.version != FERRY_CONSOLE_VERSION || hdr.length > rec->len - sizeof(hdr))
		return 0;
	return hyp_console_seed(r->h, r->domid, (const char *)rec->body + sizeof(hdr), hdr.length,
				hdr.total_written);
}

/* Ferry's subtree (emulator id 0). */
int rst_on_xenstore(struct rst *r, const struct strm_rec *rec, char **pairs, size_t *plen)
{
	struct libxl_sr_emulator_hdr eh;
	size_t len = rec->len - sizeof(eh);
	char why[XS_PAIRS_WHY_MAX];
	int err;

	memcpy(&eh, rec->body, sizeof(eh)); /* the decoder checked the length */
	if (eh.id != LIBXL_EMULATOR_UNKNOWN || eh.index)
		return rst_fail(r, -EPROTO,
				"EMULATOR_XENSTORE_DATA at offset %llu is for emulator %u index "
				"%u; Ferry has no device model (only id 0, index 0)",
				(unsigned long long)rec->offset, eh.id, eh.index);
	if (*pairs)
		return rst_fail(r, -EPROTO, "a second EMULATOR_XENSTORE_DATA at offset %llu",
				(unsigned long long)rec->offset);
	/* Refused here, naming the pair, not later by the store with a bare
	 * EINVAL after the whole stream has been read. */
	err = xs_check_pairs((const char *)rec->body + sizeof(eh), len, why, sizeof(why));
	if (err)
		return rst_fail(r, err, "EMULATOR_XENSTORE_DATA at offset %llu: %s",
				(unsigned long long)rec->offset, why);
	*pairs = malloc(len ? len : 1);
	if (!*pairs)
		return rst_fail(r, -ENOMEM, "no memory for the xenstore subtree");
	memcpy(*pairs, rec->body + sizeof(eh), len);
	*plen = len;
	return 0;
}

int rst_pump(struct rst *r, struct strm_io *io, strm_rec_fn fn, void *opaque)
{
	uint8_t *buf = malloc(READ_CHUNK);
	int err = 0;

	if (!buf)
		return rst_fail(r, -ENOMEM, "no memory for the read buffer");
	while (!strm_dec_done(r->dec)) {
		void *at = buf;
		size_t want = strm_dec_body_space(r->dec, &at);
		ssize_t n = strm_io_read(io, at, want ? want : READ_CHUNK);

		if (n < 0) {
			/* the io's message says more (a snapshot's names the page) */
			err = rst_fail(r, (int)n, "reading the stream at offset %llu: %s",
				       (unsigned long long)r->bytes,
				       strm_io_error(io)[0] ? strm_io_error(io)
							    : ferry_strerror((int)n));
			break;
		}
		if (n == 0)
			break;
		r->bytes += (uint64_t)n;
		err = strm_dec_feed(r->dec, at, (size_t)n, fn, opaque);
		if (err) {
			rst_fail(r, err, "%s", strm_dec_error(r->dec));
			break;
		}
	}
	free(buf);
	return err;
}

void rst_release(struct rst *r, bool destroy)
{
	/* Before the domain goes: the writer may be writing into it. */
	rst_pagew_free(r->pw);
	r->pw = NULL;
	rst_applier_free(r->direct);
	r->direct = r->pages = NULL;
	if (r->d)
		hyp_domain_put(r->d);
	r->d = NULL;
	if (destroy && r->created)
		hyp_domain_destroy(r->h, r->domid);
	r->created = false;
}
