/* SPDX-License-Identifier: MIT */
/*
 * Lazy restore (design brief section 9, issue 12): the domain runs before
 * its memory is read. Its guest memory starts as holes of the pool (fresh
 * frames, never warm ones that held another domain's data), every page
 * the stream does not list as a hole is PENDING in the P2M and registered
 * for userfaultfd MISSING faults through the domain's one uffd owner
 * (hyp/uffd.h). A fault is served from a page source; a background thread
 * fetches the rest in pfn order, skipping what has arrived. Every reader of
 * the domain's memory in ferryd (vCPUs, saves, grant copies, the console
 * and xenstore rings, hashing) reads through that mapping and so gets the
 * real page, never a zero one. hyp_gmem_populated counts PENDING pages, so
 * a save of the domain while pages arrive sends them (they fault in).
 *
 * The state comes from a plain Xen v2 stream whose PAGE_DATA records carry
 * no page data, only XTAB holes: for a snapshot, snap_stream_open(...,
 * SNAP_STREAM_NO_DATA); for a save file, rst_file_source_open's state io.
 * It is restored by restore/'s record handling (rst_restore_domain's).
 *
 * If the source fails (an unreadable image), the faulting thread never gets
 * a page: the domain is paused for good (hyp_domain_mem_lost), o->failed
 * says why (the file and the pfn) and rst_lazy_wait returns the error.
 * What is left is to destroy it: rst_lazy_free first, then
 * hyp_domain_destroy. rst_lazy_free releases the threads stopped on the
 * missing page (a vCPU, or a ferryd reader of the domain's memory, which
 * stay stopped until then): they read zeros, the vCPU only until it sees
 * the pause (soft: within about 100 us), so the guest's last output is
 * not to be trusted. While the domain is being restored (before it may
 * run) a failed page is given as zeros to the state load, and the restore
 * then fails with the source's message: the guest never runs.
 *
 * ferryd, for `xl restore --lazy FILE`:
 *     rst_file_source_open(path, &fs, &state, err, len);   -ENOTSUP: compressed
 *     rst_lazy_restore(h, state, &rst_file_source_ops, fs, &o, &domid, &l, err, len);
 *     strm_io_close(state);
 * and for `xl snapshot-revert --lazy D NAME`, under the repository's lock
 * (ctl__snap_lock), which it may drop as soon as this returns:
 *     snap_source_open(repo, uuid, name, &ss, err, len);   snapshot/source.h
 *     snap_stream_open(repo, uuid, name, SNAP_STREAM_NO_DATA, &state, err, len);
 *     rst_lazy_restore(h, state, &snap_page_source_ops, ss, &o, &domid, &l, err, len);
 *     strm_io_close(state);   (it holds a view of the repository)
 * Then, the domain running, from a job thread: rst_lazy_wait(l, ...) (every
 * page in, or the source failed), rst_lazy_stats(l, &st) for the report,
 * rst_lazy_free(l). A domain destroyed meanwhile: destroy first, then
 * rst_lazy_free. A failed one (o.failed called, rst_lazy_wait -EIO):
 * rst_lazy_free, then hyp_domain_destroy. hyp_dom_info.mem_lost marks it.
 *
 * Saves, live migrations and snapshots of the domain while pages arrive
 * read them through the mapping like any reader: log-dirty (async
 * write-protect) shares the uffd with the missing-page faults, the fd
 * never replaced meanwhile (hyp/uffd.c). Copy-before-write (WP_SYNC) is
 * refused with -EBUSY until every page is in (rst_lazy_wait).
 */
#ifndef RESTORE_LAZY_H
#define RESTORE_LAZY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "restore/restore.h"
#include "stream/io.h"

/*
 * Where a lazy restore's pages come from. Calls are serialised by the lazy
 * restore (one at a time, from the fault thread or the fetcher), so a
 * source needs no lock of its own.
 */
struct rst_page_source_ops {
	/* The page of pfn (4 KiB) into buf; 0, or -errno with a message in
	 * err naming the file and the pfn. Called from the fault thread and
	 * the fetcher at once: it must be safe on two threads (a lock
	 * between them made a fault wait for a fetcher the scheduler had
	 * preempted while it held it). */
	int (*fetch)(void *src, uint64_t pfn, void *buf, char *err, size_t errlen);
	/* Frees src (optional). */
	void (*close)(void *src);
};

/* Called once, from the fault thread or the fetcher, when the source
 * failed: msg names the file and the pfn. The domain is paused already.
 * Must not call rst_lazy_* nor wait for the domain. */
typedef void (*rst_lazy_failed_fn)(void *opaque, uint32_t domid, const char *msg);

struct rst_lazy_opts {
	struct rst_opts restore;   /* config, xenstore, paused: as rst_restore_domain */
	rst_lazy_failed_fn failed; /* optional */
	void *failed_opaque;
	/* Scrubbed frames and UFFDIO_COPY even where the kernel has minor
	 * faults, which are used by default (restore/lazy.c): the path of
	 * kernels without them, kept tested. */
	bool scrubbed;
};

struct rst_lazy_stats {
	double to_running_s; /* from the call until the domain runs (or may) */
	double created_s;    /* of which until hyp had built the domain */
	uint64_t pages;	     /* pages to come at the start */
	uint64_t faults;     /* faults served from the source */
	double fault_p50_us; /* service time on the fault thread */
	double fault_p99_us;
	double fault_max_us;
	uint64_t fetched; /* pages the background thread brought in */
	uint64_t left;	  /* pages still to come */
	double all_in_s;  /* from the call until every page is in; 0: not yet */
	bool failed;
};

struct rst_lazy;

/*
 * Restores a domain from state_io (borrowed; read to its end before this
 * returns: the caller may close it then) with its memory served lazily
 * from the page source ops/src, which this takes on every return (closed
 * by rst_lazy_free, or here on failure). The domain is running when this
 * returns (paused if o->restore.paused) and *domid names it; *out is the
 * caller's, to free with rst_lazy_free. -ENOTSUP with the reason in err
 * when the kernel cannot serve missing-page faults on guest memory; any
 * other failure names what went wrong and leaves no domain behind.
 */
int rst_lazy_restore(struct hyp *h, struct strm_io *state_io, const struct rst_page_source_ops *ops,
		     void *src, const struct rst_lazy_opts *o, uint32_t *domid,
		     struct rst_lazy **out, char *err, size_t errlen);
/* Waits until every page is in (0) or the source failed (-EIO, err names
 * the file and the pfn) or the domain went away (-ENOENT). */
int rst_lazy_wait(struct rst_lazy *l, char *err, size_t errlen);
/* Whether every page is in, without waiting. */
bool rst_lazy_done(struct rst_lazy *l);
void rst_lazy_stats(struct rst_lazy *l, struct rst_lazy_stats *out);
/*
 * Stops the fetcher and lets the domain's memory go: waits for every page
 * first unless the domain was destroyed or the source failed (then the
 * threads stopped on a missing page are released into the paused domain,
 * to be destroyed). Closes the source. NULL-safe.
 */
void rst_lazy_free(struct rst_lazy *l);

/* ---- an uncompressed save file as a page source (restore/lazy-file.c) ---- */

struct rst_file_source;
extern const struct rst_page_source_ops rst_file_source_ops;

/*
 * Indexes the save file at path (an `xl save` written without
 * compression: a plain Xen v2 stream) by reading its record headers, not
 * its pages: where each pfn's page lies. *src is the source (its ops:
 * rst_file_source_ops), *state_io the stream to restore the state from
 * (every record but the page data; holes as XTAB), borrowed from the
 * source: close it before the source closes. A compressed save (framed
 * with lz4/zstd) is refused with -ENOTSUP: it has no index of where each
 * page lies.
 */
int rst_file_source_open(const char *path, struct rst_file_source **src, struct strm_io **state_io,
			 char *err, size_t errlen);

#endif
