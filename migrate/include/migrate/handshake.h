/* SPDX-License-Identifier: MIT */
/*
 * The source's half of a live migration (docs/migration.md): connect, TLS
 * unless plain, the banner, mig_live_send, then Xen's xl migrate handshake
 * (ready, go, report). After go the source copy is fenced (paused, unpause
 * refused, renamed NAME--migratedaway) until the target's state is known:
 * from its report, or by asking it ("ferry-query NAME") for up to the
 * query phase. What cannot be resolved stays fenced for the caller to
 * record and resolve later (mig_hs_resolve, xl migrate-resolve).
 * The target's half is restore/receive.h.
 */
#ifndef MIGRATE_HANDSHAKE_H
#define MIGRATE_HANDSHAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "migrate/precopy.h"
#include "stream/io.h"
#include "stream/net.h"

/* The source copy's name between go and the end of the migration. */
#define MIG_AWAY_SUFFIX "--migratedaway"
/* After go, with the connection lost: how long the target is asked. */
#define MIG_QUERY_TOTAL_MS 30000

struct mig_hs_ops {
	/* Optional: a handshake step began ("handshake", "go", "query"), for
	 * the client's progress line. The job's thread. */
	void (*phase)(void *opaque, const char *phase);
	/*
	 * Required for mig_hs_migrate: ready has come, go is next. 0 lets the
	 * migration pass its point of no return (from then on the caller's
	 * cancel only ends waits: the source stays fenced); -ECANCELED when
	 * the caller cancelled first (the source resumes).
	 */
	int (*no_return)(void *opaque);
	void *opaque;
};

/* What every call here is about; borrowed for the call. */
struct mig_hs_conf {
	struct hyp *h;
	uint32_t domid;
	const char *name;	    /* the domain's name (NAME) */
	const char *host;	    /* the target's HOST[:PORT] */
	struct strm_tls *tls;	    /* NULL: plain TCP (--insecure) */
	int net_ms;		    /* progress timeout of every wait (--net-timeout) */
	int query_ms;		    /* 0: MIG_QUERY_TOTAL_MS */
	struct strm_cancel *cancel; /* the caller's token (may be NULL) */
	const struct mig_hs_ops *ops;
};

struct mig_hs_result {
	int rc;		      /* as returned */
	char err[2048];	      /* why, when rc != 0 (logged) */
	const char *outcome;  /* "migrated", "resumed", "fenced"; NULL: not started */
	bool fenced;	      /* left paused and fenced as away: record it */
	bool resolved_by_query;
	double downtime_ms;
	struct mig_report rep;
	char away[HYP_NAME_MAX]; /* the fenced copy's name */
};

/*
 * Migrates running domain c->domid to c->host. o is mig_live_send's
 * options with config_json, the codec and tuning, progress and cancel set
 * by the caller (keep_logdirty is this call's). Returns 0 with the source
 * destroyed (outcome "migrated"), or -errno with res->err: the source runs
 * here again (before go, or the target handed it back or does not have
 * it) or, with res->fenced, stays paused and fenced as res->away because
 * the target could not be asked (-EHOSTUNREACH, or the token fired after
 * go). The caller holds the domain (its claim) throughout.
 */
int mig_hs_migrate(const struct mig_hs_conf *c, struct mig_live_opts *o,
		   struct mig_hs_result *res);

/*
 * migrate-resolve: asks c->host again about c->name for the query phase;
 * the fenced copy here is c->domid, called away. Returns 0 when resolved:
 * destroyed here (the target runs it, "migrated") or resumed ("resumed");
 * else -EHOSTUNREACH (or -ECANCELED) with res->fenced, as it was.
 */
/*
 * Connects to c->host, TLS unless c->tls is NULL, and reads the target's
 * banner: the start every connection to a migration listener shares (HA's
 * pairs go on with their own request). Every wait ends after c->net_ms
 * without progress or when c->cancel fires; the io keeps both. -errno with
 * err saying why.
 */
int mig_hs_connect(const struct mig_hs_conf *c, struct strm_io **out, char *err, size_t errlen);

int mig_hs_resolve(const struct mig_hs_conf *c, const char *away, struct mig_hs_result *res);

#endif
