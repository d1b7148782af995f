/* SPDX-License-Identifier: MIT */
/*
 * Restoring a domain from a Xen migration stream v2 (formats/SPEC.md), for
 * `xl restore` now and the receiving side of migration later.
 */
#ifndef RESTORE_RESTORE_H
#define RESTORE_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "stream/io.h"

/*
 * Turns the stream's JSON config into the config to restore with (the
 * caller applies its overrides: a new name, a replacement config). Return
 * 0, or -errno with a message in err.
 */
typedef int (*rst_config_fn)(void *opaque, const char *json, struct hyp_dom_config *cfg,
			     char *err, size_t errlen);

/*
 * Gives the new domain domid the xenstore subtree the stream carried
 * ("key NUL value NUL" pairs, formats/SPEC.md 6.1; NULL, 0 when it carried
 * none). Called once, after the state is loaded and before the domain may
 * run, so its entries and ring exist when the guest looks.
 */
typedef int (*rst_xenstore_fn)(void *opaque, uint32_t domid, const char *pairs, size_t len);

struct rst_opts {
	bool paused;	   /* leave the domain paused */
	rst_config_fn config;
	void *opaque;
	rst_xenstore_fn xenstore; /* optional */
	void *xenstore_opaque;
	/*
	 * Optional page channels (docs/channels.md): nchannels more streams,
	 * borrowed, each carrying only PAGE_DATA, read by a thread of their
	 * own into the domain's memory. Every channel has reached its END
	 * before the main stream's state records are applied. Their waits use
	 * net_ms as progress timeout; cancel (may be NULL) ends them too.
	 */
	struct strm_io *const *channels;
	unsigned nchannels;
	struct strm_cancel *cancel;
	int net_ms;
};

struct rst_stats {
	uint64_t pages;
	uint64_t bytes;	 /* read from the io */
	double seconds;
};

/*
 * Reads a whole stream from io (borrowed; not closed) and builds a domain
 * from it, unpaused unless o->paused. Everything is checked before the
 * domain is created (format versions, the backend the stream was made on,
 * free memory); on any failure after that the half-built domain is
 * destroyed, so nothing stays behind. err names what went wrong and where.
 */
int rst_restore_domain(struct hyp *h, struct strm_io *io, const struct rst_opts *o,
		       uint32_t *domid, struct rst_stats *st, char *err, size_t errlen);

/* ---- checkpointed streams (HA's backup) ---------------------------------- */

/*
 * Called after each committed epoch (the first is 1): the domain holds that
 * epoch's memory and state, paused and still restoring (unpause refused
 * until rst_session_resume). Return 0 to go on, -errno to stop the session.
 */
typedef int (*rst_epoch_fn)(void *opaque, uint32_t domid, uint64_t epoch);

struct rst_session_opts {
	rst_config_fn config; /* as rst_opts */
	void *opaque;
	rst_epoch_fn epoch; /* optional */
	void *epoch_opaque;
	/* Bound on one held epoch, in the decoder and again in the applier's
	 * staged pages (0: STRM_DEC_MAX_EPOCH_DEFAULT, 256 MiB). */
	uint64_t max_epoch_bytes;
};

/*
 * Restores a checkpointed stream (stream/codec.h: epochs closed by libxc
 * CHECKPOINT and libxl CHECKPOINT_END) into a paused domain, epoch by
 * epoch. The domain is created from the stream's headers as by
 * rst_restore_domain. The first epoch (the live phase: all of memory) is
 * written straight into guest memory, there being no earlier epoch to keep;
 * from then on each epoch's pages are staged (the epoch applier) and its
 * HVM_CONTEXT and xenstore data kept, and only when its CHECKPOINT_END has
 * arrived are its state entries loaded, its pages written and its state
 * committed (hyp_domain_load_commit), in that order; then o->epoch is called.
 * An epoch cut short, damaged or refused before its pages are written is
 * discarded whole: the previous one stands. A failure while writing a
 * committed epoch's pages or state leaves no epoch standing
 * (rst_session_committed then 0).
 *
 * Driving it: rst_session_feed with the bytes as they arrive (any split),
 * or rst_session_read from an io; rst_session_finish at the end of the
 * input. Whatever those return, rst_session_committed() > 0 means the
 * domain holds the last committed epoch: rst_session_resume makes it the
 * running domain (failover); rst_session_free without it destroys it.
 *
 *     struct rst_session_opts o = { .config = cfg_fn };
 *     rst_session_new(h, &o, &s);
 *     err = rst_session_feed(s, bytes, len);      // repeat
 *     err = err ?: rst_session_finish(s);         // -ENODATA: cut short
 *     if (rst_session_committed(s))
 *             rst_session_resume(s, xs_fn, xs_opaque, true);
 *     rst_session_free(s);
 */
struct rst_session;
int rst_session_new(struct hyp *h, const struct rst_session_opts *o, struct rst_session **out);
/* Frees the session; destroys its domain unless rst_session_resume ran. */
void rst_session_free(struct rst_session *s);
/* Feeds stream bytes. 0, or -errno with rst_session_error() saying what;
 * errors are sticky. */
int rst_session_feed(struct rst_session *s, const void *buf, size_t len);
/* Reads io (borrowed) until its end, an error, or libxl END. */
int rst_session_read(struct rst_session *s, struct strm_io *io);
/* At the end of the input: 0 if the stream ended with libxl END after a
 * complete epoch, -ENODATA if it was cut short (the sender died), -EPROTO
 * if it ended with no epoch (a plain stream), or the session's error. */
int rst_session_finish(struct rst_session *s);
/* Epochs committed and standing (0: none, or none whole). */
uint64_t rst_session_committed(const struct rst_session *s);
/* The domain, once the headers created it: 0, or -ENOENT. */
int rst_session_domid(const struct rst_session *s, uint32_t *domid);
const char *rst_session_error(const struct rst_session *s);
/*
 * Makes the last committed epoch the domain's state for good: drops
 * anything of a later epoch, gives the domain the xenstore subtree of the
 * last epoch that carried one (xs optional, as rst_opts.xenstore), bumps
 * its resume counter (hyp_domain_resume_restored) and unpauses it if
 * unpause. -ENODATA if no epoch stands. The domain is then the caller's.
 */
int rst_session_resume(struct rst_session *s, rst_xenstore_fn xs, void *xs_opaque,
		       bool unpause);

#endif
