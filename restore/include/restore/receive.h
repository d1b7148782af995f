/* SPDX-License-Identifier: MIT */
/*
 * The target's half of a live migration (docs/migration.md): on one
 * accepted connection, TLS unless plain, the banner, then either a query
 * ("ferry-query NAME", answered running, paused or absent) or a stream
 * restored paused as NAME--incoming, ready, go, then renamed NAME,
 * unpaused and reported. Without go the incoming copy is destroyed; a copy
 * that cannot start after go is destroyed and handed back (go sent back).
 * The source's half is migrate/handshake.h.
 */
#ifndef RESTORE_RECEIVE_H
#define RESTORE_RECEIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "hyp/hyp.h"
#include "restore/restore.h"
#include "stream/io.h"
#include "stream/net.h"

/* The target's copy's name until go. */
#define RST_INCOMING_SUFFIX "--incoming"
/* A query about NAME waits this long for a receiver of NAME to decide. */
#define RST_QUERY_WAIT_S 20

/*
 * The receivers in flight on a host, by the name they receive: a second
 * receiver of the same NAME is refused, and a query about NAME waits until
 * its receiver has decided, so "absent" is never said about a domain about
 * to start. One per listener; shared by its receivers' threads.
 */
struct rst_rcv_set;
int rst_rcv_set_new(struct rst_rcv_set **out);
/* After every receiver of the set has returned. NULL-safe. */
void rst_rcv_set_free(struct rst_rcv_set *set);
/* Any thread: wakes the queries waiting in the set, so those whose token
 * has fired end their wait. */
void rst_rcv_set_wake(struct rst_rcv_set *set);

struct rst_rcv_ops {
	/* Required: the stream's JSON config into the config to restore
	 * (rst_config_fn); the receiver then checks the name and makes it
	 * NAME--incoming. */
	rst_config_fn config;
	/* Optional: as rst_opts.xenstore. */
	rst_xenstore_fn xenstore;
	/* Optional: the domain runs here as NAME now (after go): the caller
	 * records it. */
	void (*arrived)(void *opaque, uint32_t domid);
	/* Optional: after each message of the handshake, "banner" (sent),
	 * "stream" (received, the domain paused here), "ready" (sent), "go"
	 * (received), "report" (sent). */
	void (*step)(void *opaque, const char *step);
	/* Optional: the connection opened with STRM_HS_PEEK_LEN bytes that are
	 * neither a stream nor a query (first): the caller serves it on io
	 * (borrowed, closed after) with the conf's cancel token and returns
	 * true, or false to have it refused as unknown. HA's pairs. */
	bool (*other)(void *opaque, struct strm_io *io, const char *first, const char *peer,
		      struct strm_cancel *cancel);
	void *opaque; /* for all five */
};

/* Borrowed for the call. */
struct rst_rcv_conf {
	struct hyp *h;
	struct rst_rcv_set *set;
	struct strm_tls *tls;	    /* NULL: plain TCP (--insecure) */
	int net_ms;		    /* progress timeout of every wait (--net-timeout) */
	struct strm_cancel *cancel; /* may be NULL */
	const char *peer;	    /* "ADDR:PORT", for messages */
	const struct rst_rcv_ops *ops;
};

enum rst_rcv_outcome {
	RST_RCV_NOTHING,     /* refused by TLS, silent, or neither stream nor query */
	RST_RCV_ANSWERED,    /* a query */
	RST_RCV_REFUSED,     /* the stream could not be restored; nothing left */
	RST_RCV_DROPPED,     /* no go: NAME--incoming destroyed */
	RST_RCV_RUNNING,     /* after go: runs here as NAME (*domid) */
	RST_RCV_HANDED_BACK, /* after go it could not start: destroyed, go sent back */
	RST_RCV_OTHER,	     /* served by ops->other */
	RST_RCV_CHANNEL,     /* a page channel, taken by its migration's connection */
};

/*
 * Serves one accepted connection fd (taken: closed before return) on the
 * caller's thread; everything is logged. Returns what became of it, with
 * *domid (may be NULL) set for RST_RCV_RUNNING.
 */
enum rst_rcv_outcome rst_rcv_serve(const struct rst_rcv_conf *c, int fd, uint32_t *domid);

#endif
