/* SPDX-License-Identifier: MIT */
/*
 * Live migration's save side: iterative pre-copy with log-dirty, an
 * adaptive switchover policy (predicted downtime against a target;
 * throttle, abort or force when rounds stop converging), then
 * stop-and-copy. Writes the same stream as save.h, with many rounds of
 * PAGE_DATA.
 */
#ifndef MIGRATE_PRECOPY_H
#define MIGRATE_PRECOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "migrate/defaults.h"
#include "migrate/save.h"
#include "stream/io.h"

struct ld;

enum mig_no_converge { MIG_NC_THROTTLE, MIG_NC_ABORT, MIG_NC_FORCE };

#define MIG_MAX_ROUNDS_LIMIT 256

struct mig_progress {
	unsigned round;
	const char *phase;	      /* "round", "throttle", "stop-and-copy",
				       * "checkpoint" (session.h) */
	uint64_t pages_left;	      /* dirty pages still to send */
	double dirty_rate;	      /* pages/s the guest dirties */
	double bandwidth;	      /* bytes/s achieved on the link */
	double predicted_downtime_ms;
	unsigned throttle_pct;	      /* 100 = not throttled */
	uint64_t bytes_sent;
};

struct mig_live_opts {
	enum strm_codec codec;	 /* frames with this codec; NONE + !codec_auto: plain */
	bool codec_auto;	 /* per frame: none or lz4 from measured ratio/speed */
	uint32_t downtime_ms;	 /* target, 0: MIG_DEFAULT_DOWNTIME_MS */
	enum mig_no_converge no_converge; /* default throttle */
	unsigned max_rounds;	 /* 0: MIG_DEFAULT_MAX_ROUNDS */
	uint64_t bandwidth;	 /* bytes/s cap, 0 = none */
	const char *config_json; /* for the xl header */
	struct mig_xenstore xenstore; /* optional: the domain's subtree travels */
	/* Set from another thread to cancel before the switchover. */
	const volatile int *cancel;
	/* Called after every round and at stop-and-copy (worker thread). */
	void (*progress)(void *opaque, const struct mig_progress *p);
	void *opaque;
	/*
	 * Optional: on success the log-dirty handle is handed over here
	 * instead of being disabled, so turning logging off (tens of ms on
	 * a large guest) happens after the handshake, outside the downtime.
	 * The caller must ld_disable() it.
	 */
	struct ld **keep_logdirty;
	/* Optional page channels (session.h): connections borrowed for the
	 * call, each carrying a stream of the pages of its pfn stripes. */
	struct strm_io *const *channels;
	unsigned nchannels;
};

struct mig_report {
	double total_s;		   /* start to stream complete */
	double pause_at;	   /* CLOCK_MONOTONIC s when the source paused */
	double predicted_downtime_ms;
	uint64_t bytes_sent;	   /* on the wire (after frames) */
	unsigned rounds;	   /* live rounds, round 0 included */
	uint64_t pages_per_round[MIG_MAX_ROUNDS_LIMIT + 1]; /* last: stop-and-copy */
	unsigned throttle_pct;	   /* lowest cap applied, 100 = none */
	uint64_t zero_pages;	   /* elided */
	/* Additions: pages_per_round[rounds] is the stop-and-copy's count,
	 * also here; the measured fixed cost of the state records (pause,
	 * vCPU/platform context) that the prediction includes; why the
	 * policy switched or gave up; the codec auto chose for how many
	 * frames (frames mode only). */
	uint64_t final_pages;
	double state_cost_ms;
	const char *decision;	   /* static string */
	uint64_t frames, frames_raw;
	/* Per round as pages_per_round (frames mode only): its frames by
	 * the codec they went in (enum strm_codec), so a report says what
	 * auto chose; the codec asked for (auto: lz4 or zstd, per frame). */
	uint32_t frames_per_round[MIG_MAX_ROUNDS_LIMIT + 1][STRM_CODEC_ZSTD + 1];
	const char *codec; /* static: "none", "lz4", "zstd" */
	bool codec_auto;
};

/*
 * Sends running domain domid over io (borrowed: it stays open for the
 * handshake after the stream). Returns 0 with the stream complete and the
 * domain PAUSED by this operation (hyp_domain_op_pause: the caller does the
 * handshake, then destroys it or resumes it with hyp_domain_op_unpause). On
 * cancel (-ECANCELED), policy abort (-ETIMEDOUT) or any error the domain is
 * in the pause state it was found in, log-dirty is off and the throttle
 * removed; err says what happened.
 */
int mig_live_send(struct hyp *h, uint32_t domid, struct strm_io *io,
		  const struct mig_live_opts *o, struct mig_report *rep, char *err,
		  size_t errlen);

#endif
