/* SPDX-License-Identifier: MIT */
/*
 * A migration session: the save side of one stream across epochs, shaped
 * like Xen's xc_sr_save_ops. It owns the domain's log-dirty handle, the
 * dirty bitmaps, the record encoder and the framed I/O from the xl header
 * to the last record, so pre-copy rounds, checkpoints (Remus, snapshots)
 * and the final stop-and-copy are calls on one object:
 *
 *	mig_session_create(h, domid, io, &opts, err, errlen, &s);
 *	mig_session_precopy(s, &pre);			 optional, live rounds
 *	mig_session_epoch(s, MIG_EPOCH_CHECKPOINT, &st); as often as wanted
 *	mig_session_epoch(s, MIG_EPOCH_END, &st);	 optional, once
 *	mig_session_close(s);
 *
 * Pages leave through a page sink (below); the state records go to the
 * stream. The layout of a checkpointed stream is formats/SPEC.md 9.
 */
#ifndef MIGRATE_SESSION_H
#define MIGRATE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "migrate/precopy.h"
#include "migrate/save.h"
#include "stream/io.h"

struct ld;
struct mig_session;

/*
 * Where a session's pages go, modelled on CRIU's page_xfer: the stream
 * sink (PAGE_DATA records on the session's io) is the default; a snapshot
 * image is the next. Every op returns 0 or -errno and logs its own
 * failures (the session passes the error up).
 */
struct mig_page_sink_ops {
	/* The pages of epoch `epoch` begin (0: the first, pre-copy included;
	 * each pre-copy round is one begin..flush of epoch 0's pages). */
	int (*begin)(void *sink, unsigned epoch);
	/*
	 * count (1..MIG_SINK_BATCH_MAX) pages: gfn pfns[i] holds the 4 KiB at
	 * pages[i], guest memory borrowed until the call returns (the sink
	 * writes or copies it before returning; no copy is made before).
	 */
	int (*put)(void *sink, const uint64_t *pfns, const void *const *pages, uint32_t count);
	/* count (1..MIG_SINK_HOLES_MAX) gfns with no frame (balloon holes). */
	int (*holes)(void *sink, const uint64_t *pfns, uint32_t count);
	/* Pushes what was put so far towards its destination (round end). */
	int (*flush)(void *sink);
	/* The epoch's pages are complete; the domain is still paused. */
	int (*end)(void *sink, unsigned epoch);
	/* Optional: bytes the sink has put on its own connections, counted
	 * with the session's (bandwidth, pacing, the report). */
	uint64_t (*wire)(void *sink);
};

/* Pages per put, holes per holes call: a PAGE_DATA record each. */
#define MIG_SINK_BATCH_MAX 256
#define MIG_SINK_HOLES_MAX 1024

struct mig_session_opts {
	/* The stream: STRM_CODEC_NONE and !codec_auto write a plain,
	 * Xen-conformant stream; else compressed, checksummed frames. */
	enum strm_codec codec;
	bool codec_auto;	 /* per frame: none or lz4, measured */
	const char *config_json; /* the domain config for the xl header */
	struct mig_xenstore xenstore; /* optional: the subtree, every epoch */
	/*
	 * Checkpointed (Xen's Remus stream): MIG_EPOCH_CHECKPOINT is allowed
	 * and log-dirty stays on from the first epoch to close. As in Xen,
	 * nothing in the stream says so: the receiver is told out of band
	 * (xl migrate-receive -r), formats/SPEC.md 9.
	 */
	bool checkpointed;
	/* A page all zero and never sent is left out (the receiver's fresh
	 * memory is zero); once sent, a page is always sent again. */
	bool elide_zero;
	/* The caller holds the domain paused for the session's life (a
	 * one-pass save): epochs neither pause nor resume it. */
	bool caller_paused;
	uint64_t bandwidth;	 /* bytes/s cap on io, 0 = none */
	/* Set from another thread to cancel pre-copy (not an epoch). */
	const volatile int *cancel;
	/* Called after every round and at an epoch's pause (caller's thread). */
	void (*progress)(void *opaque, const struct mig_progress *p);
	void *opaque;
	/* NULL: the stream sink on io. Else pages go to sink_ops (sink is
	 * borrowed) and io carries the other records only. */
	const struct mig_page_sink_ops *sink_ops;
	void *sink;
	/*
	 * Page channels (docs/channels.md; not with sink_ops, nor checkpointed):
	 * nchannels more connections (borrowed), each given a stream of its
	 * own carrying the pages of its pfn stripes, written by a thread of
	 * its own; io carries the rest and a FERRY_CHANNEL_SYNC at each round's
	 * end. Pages are read after the sink's put returns (the log-dirty
	 * covers what the guest writes meanwhile).
	 */
	struct strm_io *const *channels;
	unsigned nchannels;
	/*
	 * Optional: a log-dirty consumer of this domain kept from an earlier
	 * session (mig_session_take_logdirty), owned by the session from the
	 * create call on, whether it succeeds or not. The session starts from
	 * its log instead of the populated pages: the first round (or epoch)
	 * sends only what was dirtied since it was last harvested, so the
	 * receiver must hold the rest already (a snapshot's parent). Holes
	 * are all listed again in the first epoch.
	 */
	struct ld *logdirty;
};

/* Live pre-copy settings; zeroes take the defaults (precopy.h). */
struct mig_precopy_opts {
	uint32_t downtime_ms;		  /* MIG_DEFAULT_DOWNTIME_MS */
	enum mig_no_converge no_converge; /* throttle */
	unsigned max_rounds;		  /* MIG_DEFAULT_MAX_ROUNDS */
	/* The state's fixed cost as an earlier session of this domain measured
	 * it (mig_report.state_cost_ms): no pause to measure it again. 0:
	 * measured, with a pause of about that long. */
	double state_cost_ms;
};

/* Epoch kinds: exactly one of CHECKPOINT and END, optionally HOLD. */
#define MIG_EPOCH_CHECKPOINT (1u << 0) /* Xen's CHECKPOINT, CHECKPOINT_END */
#define MIG_EPOCH_END (1u << 1)	       /* libxc END .. libxl END: the last */
/* After a checkpoint, leave the domain paused: the caller then owes one
 * hyp_domain_op_unpause per held epoch (a next epoch pauses again). */
#define MIG_EPOCH_HOLD (1u << 2)

struct mig_epoch_stats {
	unsigned epoch;	       /* 0 for the first */
	uint64_t pages;	       /* pages put to the sink */
	uint64_t holes;	       /* holes listed (new ones only after the first) */
	uint64_t zero_pages;   /* elided */
	uint64_t bytes;	       /* on io during the epoch call */
	double paused_s;       /* pause to records written */
};

/*
 * Starts a session on domain domid (running, blocked or paused) writing to
 * io (borrowed: it stays open after close, for a handshake). Writes the xl
 * header, the libxl and libxc headers up to STATIC_DATA_END. err (errlen
 * bytes, borrowed for the session's life) gets the message of any failure,
 * which is also logged once. *out on success; close it.
 */
int mig_session_create(struct hyp *h, uint32_t domid, struct strm_io *io,
		       const struct mig_session_opts *o, char *err, size_t errlen,
		       struct mig_session **out);

/*
 * Live pre-copy (Xen's send_domain_memory_live minus the last round):
 * turns log-dirty on if it is not yet, sends the populated pages (or, after
 * an epoch, what changed since) with the guest running, then what it dirtied
 * meanwhile, round after round, until the policy (policy.c) says the rest
 * fits the downtime target. Returns 0 then (call mig_session_epoch), or
 * -ECANCELED, -ETIMEDOUT (policy abort) or -errno; the domain runs either
 * way, throttled if the policy said so until the next epoch or close.
 */
int mig_session_precopy(struct mig_session *s, const struct mig_precopy_opts *o);

/*
 * One epoch: pauses the domain (hyp_domain_op_pause), sends the pages
 * dirtied since the last epoch (all populated ones in the first, unless
 * pre-copy sent them), the new balloon holes and the state records, then:
 * MIG_EPOCH_CHECKPOINT: libxc CHECKPOINT, the xenstore subtree, libxl
 *   CHECKPOINT_END, a flush; log-dirty stays on, the domain resumes
 *   (unless MIG_EPOCH_HOLD). Checkpointed sessions only (-EINVAL).
 * MIG_EPOCH_END: (checkpointed: first closed as a CHECKPOINT, so that the
 *   receiver commits it) libxc END, the subtree, libxl END, the end frame; the
 *   domain stays paused, the caller owning that pause (handshake, then
 *   destroy or hyp_domain_op_unpause). No epoch may follow.
 * On failure the stream is unusable and the epoch's pause is released.
 * st (may be NULL) gets the epoch's figures.
 */
int mig_session_epoch(struct mig_session *s, unsigned flags, struct mig_epoch_stats *st);

/* The figures so far, as mig_live_send reports them (precopy.h). */
void mig_session_report(const struct mig_session *s, struct mig_report *rep);

/* The log-dirty handle while the session has it on, else NULL (borrowed). */
struct ld *mig_session_logdirty(const struct mig_session *s);

/*
 * Hands the log-dirty handle to the caller (who ld_disable()s it later,
 * outside the downtime) instead of close turning it off; NULL if off.
 */
struct ld *mig_session_take_logdirty(struct mig_session *s);

/*
 * Ends the session: log-dirty off, the throttle removed, the frame layer
 * ended (without END if no END epoch was written: the receiver then sees a
 * truncated stream), memory freed. A HOLD pause is the caller's to release.
 * NULL-safe.
 */
void mig_session_close(struct mig_session *s);

#endif
