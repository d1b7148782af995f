/* SPDX-License-Identifier: MIT */
/*
 * Periodic snapshots: a domain's schedule (interval, retention, its last
 * and next runs), its due times, its file and its pruning. Logic and files
 * only: ferryd's timer (ferryd/ctl-snapsched.c) takes the snapshots.
 *
 * A schedule belongs to a domain's UUID and is stored in a directory of
 * its own (ferryd: STATE_DIR/snapshot-schedules), one file per UUID,
 * UUID.sched, replaced crash-safely (common/afile.h). The snapshots a
 * schedule takes are named "auto-YYYYMMDD-HHMMSS" (UTC, "-N" added when
 * two fall in one second); retention counts and prunes only names of that
 * form, so a user's own snapshots are never pruned.
 *
 *	snap_sched_parse_interval("5m", &every, err, errlen);
 *	snap_sched_init(&s, uuid, every, keep, now);
 *	if (s.next_due <= now) { take it; snap_sched_done(&s, ...); }
 *	snap_sched_save(dir, &s, err, errlen);
 *	snap_sched_prune(repo, uuid, s.keep, &n, err, errlen);
 *
 * Times are seconds since the epoch (wall clock: due times outlive the
 * process). Messages go to err and name the file; nothing is logged.
 */
#ifndef SNAPSHOT_SCHEDULE_H
#define SNAPSHOT_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snapshot/repo.h"

#define SNAP_SCHED_VERSION     1
#define SNAP_SCHED_AUTO_PREFIX "auto-"
/* Longest interval: a year (longer ones are a typo, not a schedule). */
#define SNAP_SCHED_EVERY_MAX  (366ull * 86400)
#define SNAP_SCHED_KEEP_MAX   100000u
#define SNAP_SCHED_REASON_MAX 256

enum snap_sched_result {
	SNAP_SCHED_NONE,    /* no run yet */
	SNAP_SCHED_OK,	    /* a snapshot was taken */
	SNAP_SCHED_SKIPPED, /* not attempted or given up: the domain was busy, a full disk */
	SNAP_SCHED_FAILED,  /* attempted and failed otherwise */
};

struct snap_sched {
	uint8_t uuid[16];
	uint64_t every_s;
	uint32_t keep; /* auto snapshots kept (1..SNAP_SCHED_KEEP_MAX) */
	int64_t next_due;
	int64_t last_run; /* when the last run began; 0: none yet */
	enum snap_sched_result last_result;
	char last_reason[SNAP_SCHED_REASON_MAX]; /* skipped or failed: why */
	char last_name[SNAP_NAME_MAX + 1];	 /* the last snapshot it took */
	uint64_t runs;				 /* snapshots taken */
	uint64_t missed; /* due runs that made none: skipped, failed, or due while
			  * ferryd was down */
};

/*
 * "30s", "5m", "2h", "1d" (or a bare number of seconds) into *secs.
 * -EINVAL for 0, anything else, or more than SNAP_SCHED_EVERY_MAX (-ERANGE),
 * with err saying which and what is accepted.
 */
int snap_sched_parse_interval(const char *s, uint64_t *secs, char *err, size_t errlen);
/* secs in the largest unit that divides it: 300 -> "5m", 90 -> "90s". */
void snap_sched_format_interval(uint64_t secs, char *buf, size_t len);
/* "ok", "skipped", "failed", "none". */
const char *snap_sched_result_name(enum snap_sched_result r);

/*
 * A new schedule of uuid set at now: its first run is due at once.
 * -EINVAL (err says why) for an interval or keep out of range.
 */
int snap_sched_init(struct snap_sched *s, const uint8_t uuid[16], uint64_t every_s, uint32_t keep,
		    int64_t now, char *err, size_t errlen);
/*
 * Changes an existing schedule's interval and keep (checked as above),
 * keeping its history: the next run is due one new interval after the last
 * run, or at once if that has passed or none ran.
 */
int snap_sched_change(struct snap_sched *s, uint64_t every_s, uint32_t keep, int64_t now, char *err,
		      size_t errlen);
/*
 * The first look at a stored schedule after ferryd started, its domain
 * present: each run that fell due while ferryd was down counts as missed
 * and the next is due at once (one run, not a burst of catch-up runs).
 * Also pulls back a due time the wall clock left far ahead (the clock was
 * set back). Returns the runs counted missed.
 */
uint64_t snap_sched_restart(struct snap_sched *s, int64_t now);
/* Its domain came back (restore, incoming migration) after the schedule
 * was idle: a run that fell due meanwhile is taken at once, none counts as
 * missed (nothing could have run). */
void snap_sched_resume(struct snap_sched *s, int64_t now);
/*
 * Records the run due at s->next_due that began at started and ended at
 * now: result with detail (the snapshot's name for SNAP_SCHED_OK, the
 * reason otherwise; may be NULL). The next run is the first of the
 * schedule's due times (every_s apart) not before now; those that passed
 * while this one ran were not taken and count as missed. Returns them.
 */
uint64_t snap_sched_done(struct snap_sched *s, int64_t started, int64_t now,
			 enum snap_sched_result result, const char *detail);

/* ---- names and retention ---------------------------------------------- */

/* Whether name is one a schedule gives (the form above, exactly). */
bool snap_sched_is_auto(const char *name);
/* The name for a run beginning at t; seq > 0 appends "-seq" (a second run
 * in the same second). -ENAMETOOLONG if len is short. */
int snap_sched_auto_name(int64_t t, unsigned seq, char *buf, size_t len);
/*
 * Of a domain's snapshots (list of n, from snap_list), the indices of the
 * complete auto snapshots beyond the newest keep, oldest first, into pick
 * (room for n); *npick gets their count. Others, and snapshots still being
 * written, are neither counted nor picked.
 */
void snap_sched_prune_pick(const struct snap_info *list, size_t n, uint32_t keep, size_t *pick,
			   size_t *npick);
/*
 * Deletes (snap_delete: the others stay whole) uuid's auto snapshots
 * beyond the newest keep, oldest first; *pruned counts those deleted. The
 * first failure stops it: -errno with err from the repository.
 */
int snap_sched_prune(struct snap_repo *r, const uint8_t uuid[16], uint32_t keep, uint32_t *pruned,
		     char *err, size_t errlen);

/* ---- files -------------------------------------------------------------- */

/*
 * Writes s to dir/UUID.sched crash-safely (the old file or the new one
 * survives a crash, never a mix); makes dir (0700) if it is missing.
 */
int snap_sched_save(const char *dir, const struct snap_sched *s, char *err, size_t errlen);
/* Removes uuid's file durably; -ENOENT if there is none. */
int snap_sched_remove(const char *dir, const uint8_t uuid[16], char *err, size_t errlen);
/* Reads one file: -EINVAL for a corrupt one, -EPROTONOSUPPORT for a newer
 * version, err naming the file and what is wrong. */
int snap_sched_load(const char *path, struct snap_sched *s, char *err, size_t errlen);

/* A file load_all could not read: path, the error and its message. */
typedef void (*snap_sched_bad_fn)(void *opaque, const char *path, int rc, const char *msg);
/*
 * Every schedule in dir (none if dir does not exist) into *out (malloc'd,
 * caller frees; *n of them, sorted by uuid). A file that does not load is
 * reported to bad (may be NULL) and left where it is, so one bad file
 * costs only its own schedule. -errno only when dir cannot be read.
 */
int snap_sched_load_all(const char *dir, struct snap_sched **out, size_t *n, snap_sched_bad_fn bad,
			void *opaque, char *err, size_t errlen);

#endif
