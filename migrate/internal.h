/* SPDX-License-Identifier: MIT */
/*
 * Private to migrate/: the stream writer shared by the one-pass save
 * (save.c) and live migration (precopy.c), and the switchover policy.
 */
#ifndef MIGRATE_INTERNAL_H
#define MIGRATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/clock.h"
#include "common/compiler.h"
#include "formats/libxc-stream.h"
#include "hyp/hyp.h"
#include "hyp/gmem.h"
#include "migrate/precopy.h"
#include "migrate/session.h"
#include "stream/codec.h"
#include "stream/io.h"

/* ---- stream-out.c: records onto an io --------------------------------- */

struct mig_out {
	struct hyp *h;
	uint32_t domid;
	struct strm_enc *enc;
	struct strm_io *io; /* where records go (a frame writer or the lower io) */
	struct iovec iov[STRM_ENC_IOV_MAX + PAGE_DATA_BATCH_MAX];
	char *err;
	size_t errlen;
	struct mig_xenstore xs;
	/* HVM_CONTEXT body being built */
	uint8_t *ctx;
	size_t ctx_len, ctx_cap;
};

/*
 * Pages per PAGE_DATA record we write. Xen allows 1024 (4 MiB); a quarter
 * keeps the receiver's record buffer in its L2 cache between reading and
 * writing it into guest memory, which bench/migrate.sh measured as the
 * receiver's main cost.
 */
#define MIG_BATCH_PAGES 256
_Static_assert(MIG_BATCH_PAGES <= PAGE_DATA_BATCH_MAX, "a PAGE_DATA record Xen accepts");

/* One put being filled: pages borrowed from guest memory. */
struct mig_batch {
	uint32_t count;
	uint64_t pfns[MIG_BATCH_PAGES];
	const void *pages[MIG_BATCH_PAGES];
};

/* Fills s->err, logs once, returns err. */
int mig_fail(struct mig_out *s, int err, const char *fmt, ...) PRINTF_FMT(3, 4);
/* The same without the log: the module that found err logged it. */
int mig_fail_logged(struct mig_out *s, int err, const char *fmt, ...) PRINTF_FMT(3, 4);
/* Writes what an encoder call produced (n iovecs or -errno). */
int mig_put(struct mig_out *s, int n, const char *what);
int mig_put_libxc(struct mig_out *s, uint32_t type, const void *body, size_t len);
/*
 * s->enc, then the xl header with json; with a codec or auto, a frame
 * writer of it on s->io (*framed, which s->io then is; auto: lz4 or zstd
 * per frame against a link of bandwidth bytes/s, 0 measured). *framed
 * stays NULL for a plain stream.
 */
int mig_open_stream(struct mig_out *s, const char *json, enum strm_codec codec, bool codec_auto,
		    double bandwidth, struct strm_io **framed);
/* The records after the xl header up to STATIC_DATA_END. */
int mig_put_headers(struct mig_out *s);
/* Builds the HVM_CONTEXT body of paused domain s->domid into s->ctx. */
int mig_build_context(struct mig_out *s, uint32_t tsc_khz);
/*
 * The state records after an epoch's pages, as Xen's x86 HVM
 * end_of_checkpoint writes them: X86_TSC_INFO, HVM_CONTEXT (the console
 * history inside), HVM_PARAMS. The domain is paused.
 */
int mig_put_state(struct mig_out *s, struct hyp_domain *d);
/*
 * What closes an epoch (formats/SPEC.md 9): checkpoint: libxc CHECKPOINT,
 * the xenstore subtree, libxl CHECKPOINT_END; else libxc END, the
 * subtree, libxl END.
 */
int mig_put_epoch_close(struct mig_out *s, bool checkpoint);
void mig_out_fini(struct mig_out *s);

/* ---- policy.c: the switchover decision -------------------------------- */

enum mig_decision {
	MIG_CONTINUE,	/* another live round */
	MIG_THROTTLE,	/* another live round at cap throttle_pct (a new step) */
	MIG_SWITCH,	/* stop-and-copy now */
	MIG_ABORT,	/* give up, the source keeps running */
};

/* What one live round measured. */
struct mig_round {
	uint64_t pages;	  /* pages sent in the round */
	uint64_t bytes;	  /* wire bytes of the round */
	double seconds;	  /* the round's send time */
	uint64_t dirty;	  /* pages the following peek reported */
	double interval;  /* seconds since the previous peek (or enable) */
};

#define MIG_THROTTLE_STEPS 6

struct mig_policy {
	/* settings */
	double downtime_s;   /* target */
	double state_s;	     /* fixed cost of the state records at switchover */
	unsigned max_rounds;
	enum mig_no_converge no_converge;
	/* estimates after the last round */
	unsigned rounds;     /* rounds seen */
	double bandwidth;    /* wire bytes/s */
	double page_bytes;   /* wire bytes per page sent */
	double dirty_rate;   /* pages/s */
	double send_rate;    /* pages/s */
	double predicted_s;  /* downtime if we switched now */
	uint64_t last_dirty; /* pages the previous round had to send */
	unsigned stalls;     /* consecutive rounds without convergence */
	unsigned extra;	     /* rounds sent after the prediction fit */
	unsigned step;	     /* throttle steps taken */
	unsigned throttle_pct; /* 100: none */
	const char *why;     /* static reason of the last decision */
};

extern const unsigned mig_throttle_steps[MIG_THROTTLE_STEPS];

void mig_policy_init(struct mig_policy *p, uint32_t downtime_ms, double state_s,
		     unsigned max_rounds, enum mig_no_converge nc);
enum mig_decision mig_policy_round(struct mig_policy *p, const struct mig_round *r);

/* ---- sink-stream.c: pages as PAGE_DATA records ------------------------- */

_Static_assert(MIG_BATCH_PAGES == MIG_SINK_BATCH_MAX, "one put, one PAGE_DATA record");
_Static_assert(MIG_SINK_HOLES_MAX == PAGE_DATA_BATCH_MAX, "holes as Xen batches them");
/* The stream sink; its opaque is the session's struct mig_out. */
extern const struct mig_page_sink_ops mig_stream_sink_ops;

/* ---- channels.c: pages over page channels --------------------------------- */

struct mig_chans;
extern const struct mig_page_sink_ops mig_chans_sink_ops;
/* Opens o->channels' streams and starts their threads; errors in main. */
int mig_chans_new(struct mig_out *main, const struct mig_session_opts *o, struct mig_chans **out);
/* Adds the channels' frame figures as of their last round end or END. */
void mig_chans_frame_stats(struct mig_chans *set, struct strm_frame_stats *sum);
/* Stops the threads (a stream not ended is cut short), frees (NULL: nothing). */
void mig_chans_free(struct mig_chans *set);

/* ---- session.c: the save side across epochs --------------------------- */

struct mig_session {
	struct mig_out s;
	struct mig_session_opts o;
	struct mig_report rep;
	struct hyp_domain *d;
	struct hyp_gmem gm;
	struct ld *ld;
	uint64_t *dirty;      /* pages to send next (the peeks OR into it) */
	uint64_t *sent;	      /* pages sent at least once */
	uint64_t *holes;      /* holes as of the last epoch */
	uint64_t *scratch;    /* an epoch's holes */
	uint64_t holes_gen;   /* hyp_gmem_holes_gen when holes was taken */
	bool holes_known;     /* holes was taken at least once */
	struct mig_batch *b;
	const struct mig_page_sink_ops *sink_ops;
	void *sink;
	struct mig_chans *chans; /* the sink, when pages go over page channels */
	struct strm_io *lower;	/* the caller's io, borrowed */
	struct strm_io *framed; /* ours, on lower; NULL for a plain stream */
	uint64_t wire0;		/* lower's offset when we began */
	double t0;
	bool have_dirty;	/* dirty holds what to send (else: populated) */
	bool stop_copy;		/* past a pause: cancel no longer applies */
	bool ended;		/* END written (or the stream broken) */
	bool state_measured;
	unsigned epochs;
	unsigned throttle_pct;	/* cap applied, 100: none */
	double state_s;		/* measured fixed cost of the state records */
	struct mig_policy pol;	/* the last pre-copy's estimates */
	uint64_t framed_bytes;	/* into the frame layer, at END */
	struct strm_frame_stats fs_last; /* at the end of the last round */
	/* token bucket over lower's bytes (o.bandwidth) */
	double tb_tokens, tb_last;
	uint64_t tb_wire;
};

uint64_t mig_session_wire(const struct mig_session *s);
int mig_session_check_cancel(struct mig_session *s);
/* Sends every page set in s->dirty and clears it; *pages: how many. */
int mig_session_send_dirty(struct mig_session *s, uint64_t *pages);
int mig_session_peek(struct mig_session *s, uint64_t *count);
/* Counts the frames written since the last call as round round's. */
void mig_session_count_frames(struct mig_session *s, unsigned round);
/* Log-dirty on, s->dirty = the populated pages. */
int mig_session_start_logdirty(struct mig_session *s);
void mig_session_progress(struct mig_session *s, const char *phase, unsigned round,
			  const struct mig_policy *p, uint64_t left);

#endif
