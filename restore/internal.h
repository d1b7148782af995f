/* SPDX-License-Identifier: MIT */
/*
 * Private to restore/: what a plain restore (restore.c) and a checkpointed
 * session (session.c) share: the stream's headers make the domain, PAGE_DATA
 * goes to an applier, HVM_CONTEXT entries go to hyp.
 */
#ifndef RESTORE_INTERNAL_H
#define RESTORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/compiler.h"
#include "hyp/gmem.h"
#include "restore/applier.h"
#include "restore/restore.h"
#include "stream/codec.h"

struct rst {
	struct hyp *h;
	rst_config_fn config;
	void *config_opaque;
	struct strm_dec *dec;
	struct hyp_dom_config cfg;
	bool have_cfg;
	bool created;
	uint32_t domid;
	struct hyp_domain *d;
	struct hyp_gmem gm;
	struct rst_applier *direct; /* into d's memory, once created */
	struct rst_applier *pages;  /* where PAGE_DATA goes now */
	uint64_t npages;	    /* pages applied */
	uint64_t bytes;		    /* read from the io */
	char *err;
	size_t errlen;
	/* Optional: called once the domain exists, before any record of the
	 * stream touches it (a lazy restore registers its memory here). */
	int (*on_created)(void *opaque, struct rst *r);
	void *created_opaque;
	/* The domain is made with hyp_domain_create_lazy: its pages come by
	 * faults, which on_created registers. */
	bool lazy;
	/* A plain restore's PAGE_DATA writer thread (page-writer.c), or NULL. */
	struct rst_pagew *pw;
};

/* Keeps the first error's message (logged once) and returns err. */
int rst_fail(struct rst *r, int err, const char *fmt, ...) PRINTF_FMT(3, 4);
/* The xl header: the config to restore with. */
int rst_on_xl_header(struct rst *r, const struct strm_rec *rec);
/* The libxc headers: creates the domain (paused, restoring) and r->direct. */
int rst_create_domain(struct rst *r, const struct strm_rec *rec);
/* PAGE_DATA: ranges checked, then runs of pages and holes to r->pages. */
int rst_on_pages(struct rst *r, const struct strm_rec *rec);
/* rst_on_pages' work on a checked PAGE_DATA body, with no logging: 0, or
 * -errno and msg says what (the record at offset). */
int rst_apply_pages(struct rst *r, const uint64_t *pfns, const uint8_t *data, uint32_t count,
		    uint64_t offset, char *msg, size_t msglen);

/* page-writer.c: PAGE_DATA written by a thread of its own, in order. */
struct rst_pagew;
int rst_pagew_new(struct rst *r, struct rst_pagew **out);
/* From the decoder's callback: 1 when rec's body was taken from dec and
 * queued, 0 when it is not the decoder's to take (the caller drains, then
 * writes it itself), or an earlier write's -errno (rst_pagew_error). */
int rst_pagew_submit(struct rst_pagew *w, struct strm_dec *dec, const struct strm_rec *rec);
/* PAGE_DATA of a plain restore: to r->pw when it takes the body (*queued,
 * if given, says so), else written here once the queue is empty; without
 * a writer, rst_on_pages. Errors go through rst_fail. */
int rst_pagew_on_pages(struct rst *r, const struct strm_rec *rec, bool *queued);
/* Waits until every queued batch is written: 0 or the first error. */
int rst_pagew_drain(struct rst_pagew *w);
const char *rst_pagew_error(const struct rst_pagew *w);
/* Writes what is queued, stops the thread, frees w (NULL: nothing). */
void rst_pagew_free(struct rst_pagew *w);
/* channels.c: the page channels' reader threads (docs/channels.md). */
struct rst_chans;
/* Once the domain exists: a thread per io (borrowed) writing its pages;
 * the ios wait with set's own token until rst_chans_free gives them home
 * (the caller's, may be NULL) back. */
int rst_chans_start(struct rst *r, struct strm_io *const *ios, unsigned n, int net_ms,
		    struct strm_cancel *home, struct rst_chans **out);
/* Until every channel has reached its END (their pages and bytes then
 * count in r) or one failed, or cancel fires: 0 or -errno (rst_fail). */
int rst_chans_wait(struct rst *r, struct rst_chans *set, const struct strm_cancel *cancel);
bool rst_chans_joined(const struct rst_chans *set);
/* Stops and joins what still runs, frees set (NULL: nothing). */
void rst_chans_free(struct rst_chans *set);
/* Every entry of an HVM_CONTEXT body to hyp_domain_load_entry. */
int rst_load_context(struct rst *r, const uint8_t *body, uint32_t len, uint64_t offset);
/* FERRY_CONSOLE of older saves. */
int rst_on_console(struct rst *r, const struct strm_rec *rec);
/* EMULATOR_XENSTORE_DATA: checked, its pairs copied to *pairs (malloc'd,
 * the caller frees; -EPROTO if *pairs is already set). */
int rst_on_xenstore(struct rst *r, const struct strm_rec *rec, char **pairs, size_t *len);
/* Reads io to its end (or the decoder's), feeding the decoder with fn. */
int rst_pump(struct rst *r, struct strm_io *io, strm_rec_fn fn, void *opaque);
/* rst_restore_domain with r->created set to created (may be NULL) and
 * r->lazy to lazy. */
int rst_restore_hooked(struct hyp *h, struct strm_io *io, const struct rst_opts *o,
		       int (*created)(void *opaque, struct rst *r), void *opaque, bool lazy,
		       uint32_t *domid, struct rst_stats *st, char *err, size_t errlen);
/* Frees what rst_create_domain made; destroys the domain if destroy. */
void rst_release(struct rst *r, bool destroy);
double rst_now(void);

#endif
