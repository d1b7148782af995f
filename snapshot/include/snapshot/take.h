/* SPDX-License-Identifier: MIT */
/*
 * Taking a live snapshot of a running domain: a migration session whose
 * pages go into the repository (snap_sink_ops) while the guest runs, then
 * a short pause for the last dirty pages and the state records (the STATE
 * BLOB, snap_set_state), then the guest resumes and the snapshot is made
 * durable.
 *
 *	snap_chain_new(&c);
 *	snap_take(h, domid, r, uuid, &(struct snap_take_opts){ .name = "s1",
 *		  .chain = c }, &rep, err, sizeof(err));	full
 *	snap_take(... .name = "s2", .chain = c ...);		only what changed
 *	snap_chain_free(c);
 *
 * A chain keeps the domain's log-dirty consumer (logdirty.h) between
 * snapshots, so the next one stores only the pages dirtied since the
 * last, with the last as its parent. It falls back to a full snapshot
 * when it has no consumer (first use, an earlier failure), the domain is
 * another one, or the parent is gone. Other consumers (a migration, a
 * save) share the tracker and do not break the chain.
 */
#ifndef SNAPSHOT_TAKE_H
#define SNAPSHOT_TAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "migrate/precopy.h"
#include "migrate/save.h"
#include "snapshot/repo.h"

/* The pause target when the options give none: the 5 ms. */
#define SNAP_TAKE_DOWNTIME_MS 5

struct snap_chain;

int snap_chain_new(struct snap_chain **out);
/*
 * Drops the chain's log-dirty consumer and its domain reference: the next
 * snapshot with it is a full one. Call it when the domain goes (the
 * reference keeps its memory mapped). NULL-safe.
 */
void snap_chain_reset(struct snap_chain *c);
/* Resets and frees. NULL-safe. */
void snap_chain_free(struct snap_chain *c);

struct snap_take_opts {
	const char *name;	      /* the snapshot's (snap_name_check) */
	const char *config_json;      /* the domain config for the state's xl header */
	struct mig_xenstore xenstore; /* optional: the domain's subtree */
	/* Leave the domain paused afterwards, by the toolstack (xl unpause
	 * resumes it), as xl save -p; an error resumes it all the same. */
	bool leave_paused;
	uint32_t downtime_ms; /* pause target, 0: SNAP_TAKE_DOWNTIME_MS */
	/* Set from another thread to cancel before the pause. */
	const volatile int *cancel;
	/* After every live round and at the pause (caller's thread). */
	void (*progress)(void *opaque, const struct mig_progress *p);
	void *opaque;
	struct snap_chain *chain; /* NULL: a full snapshot */
};

struct snap_take_report {
	char parent[SNAP_NAME_MAX + 1]; /* "" for a full snapshot */
	/* pause_s: from asking the vCPUs to stop until they run again (with
	 * leave_paused: until the snapshot is complete); seconds: the whole. */
	double pause_s, seconds;
	uint64_t bytes; /* written to the repository: pages, index, state */
	uint64_t pages; /* put (snap_write_stats) */
	uint64_t stored, deduped, zero, holes;
	bool incremental; /* parent set: only what changed was sent */
	/* additions */
	unsigned rounds;      /* live rounds */
	uint64_t final_pages; /* sent while paused */
	uint64_t state_bytes; /* the STATE BLOB */
};

/*
 * Takes snapshot o->name of running (or paused) domain domid into r under
 * uuid. Returns 0 with the snapshot complete and the domain running (or,
 * with leave_paused, paused by the toolstack). On failure (-EEXIST for a
 * taken name, -ECANCELED, -ETIMEDOUT if pre-copy gave up, -ENOSPC, ...)
 * the partial snapshot is removed, the domain is left as it was found
 * (running unless paused before) and err says why; a failure after the
 * chain's consumer was used resets the chain (the next one is full).
 * The repository is used from this thread for the call's length.
 */
int snap_take(struct hyp *h, uint32_t domid, struct snap_repo *r, const uint8_t uuid[16],
	      const struct snap_take_opts *o, struct snap_take_report *rep, char *err,
	      size_t errlen);

#endif
