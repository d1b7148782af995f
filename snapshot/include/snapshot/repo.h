/* SPDX-License-Identifier: MIT */
/*
 * The snapshot repository: a directory holding snapshots of domains'
 * memory, each a map pfn -> page. Pages live once in a content-addressed
 * store (SHA-256, zero pages not stored); a snapshot's index holds only the
 * pfns it changed and inherits the rest from its parent. A snapshot is
 * listed complete only once its pages and index are durable; a partial one
 * is removed at the next open. The layout is formats/SPEC.md section 10.
 *
 *	snap_repo_open(dir, &o, &r, err, errlen);
 *	snap_begin(r, uuid, "s1", NULL, pages, &w, err, errlen);
 *	snap_put(w, pfns, pages, n);   as often as wanted (or snap_sink_ops)
 *	snap_set_state(w, blob, len);  the non-page records, optional
 *	snap_commit(w, &st);	       or snap_abort(w)
 *	snap_view_open(r, uuid, "s1", &v, err, errlen); snap_view_read(v, ...)
 *
 * Snapshots belong to a domain's UUID: names are unique per UUID. A repo
 * is used by one thread at a time; one process holds it (a lock file).
 * Messages go to err (errlen bytes) and name the file, snapshot and pfn;
 * nothing is logged.
 */
#ifndef SNAPSHOT_REPO_H
#define SNAPSHOT_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_PAGE_SIZE 4096
/* The format this code writes; a repository with a higher one is refused. */
#define SNAP_FORMAT_VERSION 1
#define SNAP_NAME_MAX 128

struct snap_repo;
struct snap_writer;
struct snap_view;

struct snap_repo_opts {
	bool create; /* make the directory's repository if none is there */
	/*
	 * At creation only (kept in the repository): a page is shared between
	 * snapshots of different domains. Off by default: sharing tells a
	 * guest, by timing, that another guest holds a page (KSM's channel).
	 */
	bool cross_domain_dedup;
};

/*
 * Opens (or with o->create makes) the repository in dir, removes partial
 * snapshots and reclaims pages no snapshot references. -EPROTONOSUPPORT
 * for a newer format, -EINVAL for a corrupt file (err names it and what is
 * wrong), -EBUSY when another process holds it. *out: close it.
 */
int snap_repo_open(const char *dir, const struct snap_repo_opts *o, struct snap_repo **out,
		   char *err, size_t errlen);
/* Frees r and what it holds; writers must be committed or aborted and
 * views closed first. NULL-safe. */
void snap_repo_close(struct snap_repo *r);

/* 0, or -EINVAL for an empty name, '/', a control byte, a leading '.' or
 * more than SNAP_NAME_MAX bytes. */
int snap_name_check(const char *name, char *err, size_t errlen);

struct snap_info {
	char name[SNAP_NAME_MAX + 1];
	char parent[SNAP_NAME_MAX + 1]; /* "" for none */
	uint8_t uuid[16];
	int64_t time;		/* seconds since the epoch, at begin */
	uint64_t memory_pages;	/* the domain's pfn space */
	uint64_t own_entries;	/* pfns this snapshot set (not inherited) */
	bool complete;
};

/* The snapshots of uuid or of all (uuid NULL), oldest first, the one being
 * written included (complete false); *out (malloc'd, caller frees) holds *n. */
int snap_list(struct snap_repo *r, const uint8_t *uuid, struct snap_info **out, size_t *n);

/*
 * Begins snapshot name of domain uuid with memory_pages pfns, inheriting
 * every pfn it does not set from parent (a complete snapshot of the same
 * uuid; NULL for none: unset pfns read as zero). -EEXIST for a taken
 * name. err (borrowed until commit or abort) gets later failures too.
 */
int snap_begin(struct snap_repo *r, const uint8_t uuid[16], const char *name,
	       const char *parent, uint64_t memory_pages, struct snap_writer **out, char *err,
	       size_t errlen);
/* count pages: pfns[i] holds the 4 KiB at pages[i] (read before return).
 * A pfn put again takes its latest contents. */
int snap_put(struct snap_writer *w, const uint64_t *pfns, const void *const *pages,
	     uint32_t count);
/* count pfns have no frame (balloon holes). */
int snap_holes(struct snap_writer *w, const uint64_t *pfns, uint32_t count);
/*
 * Stores the snapshot's state: the non-page records of its domain (a plain
 * Xen v2 stream without PAGE_DATA, as a session with snap_sink_ops writes
 * to its io; snapshot/stream.h splices the pages back in). Written and
 * synced at once, before commit lists the snapshot complete; its SHA-256
 * goes in the manifest. Called again, the last call wins; len 0 drops it.
 * -EFBIG past 256 MiB.
 */
int snap_set_state(struct snap_writer *w, const void *buf, size_t len);
/* Writes what is buffered (no sync). */
int snap_flush(struct snap_writer *w);

struct snap_write_stats {
	uint64_t pages;	   /* put (a pfn put again counts again) */
	uint64_t stored;   /* new in the store */
	uint64_t deduped;  /* already in the store */
	uint64_t zero;	   /* all zero: not stored */
	uint64_t holes;
	uint64_t bytes;	   /* written to the store and index */
};

/* Makes the snapshot durable and lists it complete; frees w either way
 * (on failure the partial snapshot is removed). st may be NULL. */
int snap_commit(struct snap_writer *w, struct snap_write_stats *st);
/* Drops the snapshot and frees w. NULL-safe. */
void snap_abort(struct snap_writer *w);

/*
 * A page sink (migrate/session.h's struct mig_page_sink_ops) writing a
 * session's pages into a snapshot: its sink argument is a snap_writer.
 * end() flushes; the caller commits once the session's last epoch ended.
 */
struct mig_page_sink_ops;
extern const struct mig_page_sink_ops snap_sink_ops;

enum snap_page_kind {
	SNAP_PAGE_DATA,
	SNAP_PAGE_ZERO, /* all zero, or never set in the chain */
	SNAP_PAGE_HOLE, /* no frame */
};

/* A complete snapshot resolved through its parents, for reads. Its state
 * (if one was stored) is read and checked here: -EIO naming the file when
 * it is missing or its SHA-256 does not match the manifest's. */
int snap_view_open(struct snap_repo *r, const uint8_t uuid[16], const char *name,
		   struct snap_view **out, char *err, size_t errlen);
/*
 * Reads pfn into buf (4 KiB; zeroed for ZERO and HOLE) after checking its
 * SHA-256: -EIO for a damaged page with the snapshot, file and pfn named
 * in err, -ERANGE past the snapshot's memory.
 */
int snap_view_read(struct snap_view *v, uint64_t pfn, void *buf, enum snap_page_kind *kind,
		   char *err, size_t errlen);
uint64_t snap_view_pages(const struct snap_view *v);
/* The snapshot's state as stored by snap_set_state (checked at open),
 * borrowed until snap_view_close; -ENOENT when none was stored. */
int snap_view_state(struct snap_view *v, const void **buf, size_t *len);
void snap_view_close(struct snap_view *v);

/* One page, through a view opened for the call. */
int snap_read_page(struct snap_repo *r, const uint8_t uuid[16], const char *name, uint64_t pfn,
		   void *buf, enum snap_page_kind *kind, char *err, size_t errlen);

/*
 * Deletes a snapshot: its children take over its entries (their indices
 * rewritten first, durably), then its manifest goes and pages nothing
 * else references are reclaimed. Every other snapshot reads as before.
 * Views of the deleted snapshot must be closed first; -EBUSY while a
 * snapshot is being written.
 */
int snap_delete(struct snap_repo *r, const uint8_t uuid[16], const char *name, char *err,
		size_t errlen);

struct snap_verify_report {
	uint64_t snapshots;
	uint64_t pages;	 /* stored pages read and hashed */
	uint64_t bad;	 /* of which damaged */
	uint64_t states; /* state blobs read and hashed */
	uint64_t bad_states;
};

/* Re-reads and checks every page and state of a snapshot (name) or of all of uuid's
 * (name NULL) or the repo's (uuid NULL too). -EIO if any is damaged: err
 * names the first (snapshot, file, pfn); rep counts all. */
int snap_verify(struct snap_repo *r, const uint8_t *uuid, const char *name,
		struct snap_verify_report *rep, char *err, size_t errlen);

struct snap_repo_stats {
	uint64_t live_pages;   /* stored pages some snapshot references */
	uint64_t packs;
	uint64_t disk_bytes;   /* allocated by the page store (st_blocks) */
};
int snap_repo_stats(struct snap_repo *r, struct snap_repo_stats *st);

#endif
