/* SPDX-License-Identifier: MIT */
/*
 * Replication pairs (Remus): the primary's epoch loop and the backup's
 * receiver, over one connection (TLS in ferryd; any fd or TLS io here).
 *
 * The primary runs a checkpointed migration session (migrate/session.h):
 * a live pre-copy, then every interval an epoch: pause, harvest the dirty
 * log, copy the dirty pages and the state into a staging buffer (a held
 * push io, stream/io.h), resume, and only then send it, so the pause does
 * not depend on the link. Epoch N+1 starts only once the backup has
 * acknowledged N (one epoch in flight; a late one takes in everything
 * dirtied meanwhile). The guest's console output is held by the console
 * gate (hyp/hyp.h) and released up to an epoch's pause only when the
 * backup acknowledged that epoch.
 *
 * The backup feeds the stream into a checkpointed restore session
 * (restore/restore.h), which commits each whole epoch to its paused copy;
 * it then acknowledges the epoch. When the primary goes silent for the
 * timeout, or its connection breaks, the backup resumes the last
 * committed epoch. Heartbeats flow both ways between epochs.
 *
 * The link's messages (formats/SPEC.md 11): a 12-byte header (magic
 * "FHA1", type, length) and a payload: DATA (stream bytes), ACK (the
 * epoch committed), HB (a heartbeat), BYE (handover or stop).
 */
#ifndef HA_HA_H
#define HA_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "migrate/save.h"
#include "restore/restore.h"
#include "stream/io.h"

#define HA_DEFAULT_INTERVAL_MS 200 /* Xen's default epoch period */
#define HA_MIN_INTERVAL_MS     10
#define HA_DEFAULT_TIMEOUT_MS  500
#define HA_MAX_TIMEOUT_MS      60000
/* Staging bound: one epoch's records held while the guest runs on. An
 * epoch past it fails the pair (the primary runs on unprotected). */
#define HA_DEFAULT_MAX_STAGE_BYTES (256ull << 20)

/* ---- witness ------------------------------------------------------------- */

/*
 * The coordination service that decides which copy may run (etcd, v3 JSON
 * gateway). A lease of HA_WITNESS_TTL_S seconds on PAIR's "owner" key: the
 * primary holds it while it runs and fences itself (pauses the domain)
 * when it cannot renew it before it expires, counting from when it sent
 * its last successful renewal, less HA_WITNESS_MARGIN_MS; a backup resumes
 * only once it holds it. etcd's leases are whole seconds, at least about
 * 1.5 election timeouts: run etcd with --heartbeat-interval 50
 * --election-timeout 500 for 1 s leases (docs/ARCHITECTURE.md, HA pairs).
 * Each request gives up after 250 ms. url: etcd://HOST:PORT or
 * http://HOST:PORT (plain), https://HOST:PORT (TLS, the system's CAs).
 */
#define HA_WITNESS_TTL_S     1
#define HA_WITNESS_MARGIN_MS 300
struct ha_witness;
/*
 * TLS to an https:// witness, all optional: ca, the PEM file of the CA that
 * signed the witness's certificate (NULL: the system's CAs); cert and key,
 * this host's client certificate (etcd's --client-cert-auth). ferryd gives
 * its --tls-dir's ca.pem and NAME.pem/NAME.key: one CA (xl tls-setup, with
 * --host for the witness's address too) for the hosts and the witness.
 */
struct ha_witness_tls {
	const char *ca, *cert, *key;
};
int ha_witness_new(const char *url, const char *pair, const char *me,
		   const struct ha_witness_tls *tls, struct ha_witness **out, char *err,
		   size_t errlen);
/* Takes the owner key if nobody holds it (*got), else names the holder. */
int ha_witness_acquire(struct ha_witness *w, bool *got, char *holder, size_t holderlen);
/* Renews the lease: 0, -ETIME when it expired (the key is gone), or another
 * -errno when the witness could not be asked. *sent_at: when it was asked.
 * timeout_ms: give up sooner than a request's 250 ms (0: not sooner). */
int ha_witness_keepalive(struct ha_witness *w, int timeout_ms, double *sent_at);
/* The pair's persistent state ("protected", "unprotected"). */
int ha_witness_set_state(struct ha_witness *w, const char *state);
/* The same, only while the owner key is still on this host's lease (one
 * transaction): 0, -ESTALE when it is not (the lease expired: a backup may
 * run the domain), or another -errno when the witness could not be asked. */
int ha_witness_set_state_held(struct ha_witness *w, const char *state);
int ha_witness_get_state(struct ha_witness *w, char *buf, size_t len);
/* Gives the lease back (the owner key goes with it). Best effort. */
void ha_witness_release(struct ha_witness *w);
const char *ha_witness_error(const struct ha_witness *w);
void ha_witness_free(struct ha_witness *w);

/* ---- primary ---------------------------------------------------------- */

enum ha_state {
	HA_SYNCING,	/* the initial pre-copy */
	HA_PROTECTED,	/* epochs acknowledged */
	HA_UNPROTECTED, /* the backup was lost: runs on alone */
	HA_STOPPED,	/* protection ended on request (remus-stop) */
	HA_HANDED_OVER, /* the backup runs it now (controlled failover) */
	HA_FENCED,	/* paused: the witness lease could not be renewed */
	HA_BLACKHOLE,	/* -b: epochs made and dropped, nothing protects it */
};
const char *ha_state_name(enum ha_state s);

struct ha_primary_opts {
	unsigned interval_ms; /* start to start; 0: HA_DEFAULT_INTERVAL_MS */
	unsigned timeout_ms;  /* silence that means the peer is dead; 0: default */
	enum strm_codec codec;
	const char *config_json;      /* the domain config for the xl header */
	struct mig_xenstore xenstore; /* the subtree, every epoch */
	uint64_t max_stage_bytes;     /* 0: HA_DEFAULT_MAX_STAGE_BYTES */
	bool blackhole;		      /* epochs made and dropped: link unused (may be NULL) */
	bool no_buffer;		      /* console output is not held */
	/* Called on every change of state, with a sentence saying why (the
	 * primary's thread). */
	void (*event)(void *opaque, enum ha_state st, const char *why);
	void *opaque;
	/* Fired when this daemon stops on purpose: run hands the domain over
	 * (as ha_primary_request_handover). May be NULL. */
	const struct strm_cancel *cancel;
	/* Optional: the witness (above) at witness_url; the pair's key under
	 * witness_pair (the domain's UUID); witness_me names this host there. */
	const char *witness_url, *witness_pair, *witness_me;
	struct ha_witness_tls witness_tls;
};

struct ha_stats {
	enum ha_state state;
	uint64_t epochs_acked; /* epoch numbers: the first after pre-copy is 1 */
	uint64_t epochs_sent;
	uint64_t late;		/* epochs that started after their time */
	uint64_t merged;	/* intervals that had no epoch of their own */
	double epochs_per_s;	/* acknowledged, from epoch 1's ack to the last */
	double last_ack_age_ms; /* now minus the last ack; -1: none yet */
	double pause_p50_ms, pause_p99_ms;
	double bytes_per_epoch; /* mean on the link */
	/* From the pause that opened an epoch's output (the one before) to
	 * its release: the longest any byte of it was held. */
	double output_delay_p50_ms, output_delay_p99_ms;
	double sync_s;	       /* the initial pre-copy until epoch 1 was acknowledged */
	unsigned throttle_pct; /* the guest's CPU cap while epochs are late; 100: none */
	/* "" without a witness; "held", "away" (it cannot be reached: the
	 * domain runs on the backup's word), or "lost" (the lease expired). */
	const char *witness;
};

struct ha_primary;

/*
 * Prepares to protect running domain domid over link (borrowed; the
 * caller closes it after ha_primary_free). err (errlen bytes, borrowed for
 * the object's life) gets the message of any failure.
 */
int ha_primary_new(struct hyp *h, uint32_t domid, struct strm_io *link,
		   const struct ha_primary_opts *o, char *err, size_t errlen,
		   struct ha_primary **out);
/* The initial sync: pre-copy and epoch 1, acknowledged. 0: protected. On
 * failure the domain runs on, its output released. */
int ha_primary_sync(struct ha_primary *p);
/*
 * Runs epochs until the backup is lost (returns 0, state UNPROTECTED: the
 * output is released and the domain runs on), a request (0, STOPPED or
 * HANDED_OVER; the latter leaves the domain paused for the caller to
 * destroy: the backup runs it), or an error (-errno, UNPROTECTED).
 */
int ha_primary_run(struct ha_primary *p);
/* Any thread: ends run after the epoch in progress. stop: the backup
 * destroys its copy. handover: a last epoch with the domain left paused,
 * then the backup resumes it (controlled failover). */
void ha_primary_request_stop(struct ha_primary *p);
void ha_primary_request_handover(struct ha_primary *p);
/* Any thread. */
void ha_primary_stats(struct ha_primary *p, struct ha_stats *out);
void ha_primary_free(struct ha_primary *p);

/* ---- backup ------------------------------------------------------------ */

enum ha_backup_outcome {
	HA_BACKUP_BROKEN,      /* nothing runs here: no epoch, an error, or stopped */
	HA_BACKUP_STOPPED,     /* the primary ended protection: copy destroyed */
	HA_BACKUP_FAILED_OVER, /* the primary went silent: the copy runs */
	HA_BACKUP_HANDED_OVER, /* the primary handed over: the copy runs */
};
const char *ha_backup_outcome_name(enum ha_backup_outcome o);

struct ha_backup_opts {
	unsigned timeout_ms;	  /* 0: HA_DEFAULT_TIMEOUT_MS */
	rst_config_fn config;	  /* required: names the copy (NAME--backup) */
	void *opaque;		  /* for config, epoch and takeover */
	uint64_t max_epoch_bytes; /* 0: the restore session's default */
	/* Optional: after each committed epoch (the copy paused). */
	rst_epoch_fn epoch;
	/* Optional: the copy becomes the domain (rename), still paused,
	 * before it runs. A failure leaves it paused and is the outcome's
	 * error. */
	int (*takeover)(void *opaque, uint32_t domid);
	rst_xenstore_fn xenstore; /* optional, as rst_session_resume */
	void *xs_opaque;
	/* Optional: as ha_primary_opts; the copy resumes only once this host
	 * holds the witness lease, and never when the primary recorded that it
	 * ran on without its backup. */
	const char *witness_url, *witness_pair, *witness_me;
	struct ha_witness_tls witness_tls;
	/* Fired from another thread (this daemon stops): the copy is dropped
	 * and nothing more is said; the primary finds the link gone. Also
	 * ends the link's blocking waits (strm_io_set_cancel). May be NULL. */
	struct strm_cancel *cancel;
};

struct ha_backup_result {
	enum ha_backup_outcome outcome;
	uint32_t domid;	    /* the copy, for FAILED_OVER and HANDED_OVER */
	uint64_t committed; /* the epoch it runs from */
	/* For FAILED_OVER: from the last message heard to the copy running. */
	double failover_ms;
	double resumed_at; /* ferry_now_s() when it was unpaused */
	char err[512];	   /* why, for BROKEN and FAILED_OVER */
};

/*
 * Serves one pair on link (borrowed) until the primary stops it, goes
 * silent or hands over; everything is logged. The copy is kept paused
 * meanwhile and destroyed unless it ends up running.
 */
void ha_backup_run(struct hyp *h, struct strm_io *link, const struct ha_backup_opts *o,
		   struct ha_backup_result *res);

#endif
