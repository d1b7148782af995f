/* SPDX-License-Identifier: MIT */
/*
 * ferryd internals shared by its files:
 *   ferryd.c      flags, run/state directories, pidfile lock, daemonizing
 *   ctl-server.c  the control socket on the libuv loop: clients, writes,
 *                 signals, clean shutdown
 *   ctl-ops.c     one handler per control op
 *   ctl-events.c  hyp events (any thread) -> the loop (uv_async_t + queue)
 *   xs-server.c   the xenstore (one struct xs_store) and its xenstored
 *                 sockets RUN_DIR/xenstored/socket and socket_ro
 *   ctl-migrate.c live migration: the migrate/-cancel/-resolve ops (source
 *                 side, on the thread pool) and the migration listener
 *                 (target side, one detached thread per connection)
 * Everything here runs on the loop thread except the hyp_events callbacks
 * in ctl-events.c.
 */
#ifndef XL_MIGRATE_INTERNAL_H
#define XL_MIGRATE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "common/compiler.h"
#include "hyp/hyp.h"
#include "xl-migrate/proto.h"

#define FERRYD_VERSION "0.1"
#define FERRYD_PROTOCOL 1
/* A client whose unsent replies and events exceed this is dropped. */
#define CTL_WRITE_QUEUE_MAX (16u << 20)
/* Console bytes held per domain between two turns of the loop. */
#define CTL_CONSOLE_PENDING_MAX (1u << 20)

struct ferryd_opts {
	const char *run_dir;
	const char *state_dir;
	const char *backend;
	unsigned pcpus;
	uint64_t memory_bytes;
	bool foreground;
	char guest[4096];
	/* migration (ctl-migrate.c) */
	const char *listen;   /* ADDR[:PORT]; NULL: no listener */
	const char *tls_dir;  /* ca.pem, NAME.pem, NAME.key */
	const char *tls_name; /* default: the ADDR of listen */
	bool insecure;	      /* plain TCP, no TLS */
	bool no_xenstore;     /* --no-xenstore: no store, no xenstored sockets */
};

struct ctl_event;
struct ctl_mig;
struct xs_server;

struct ctl_client {
	uv_pipe_t pipe; /* pipe.data points back here */
	struct ctl_server *srv;
	struct xlm_proto proto;
	struct ctl_client *prev, *next;
	bool closing;   /* uv_close() called: gone at the next loop turn */
	unsigned busy;  /* ops running on the thread pool (ctl-save.c) */
	bool dead;      /* closed while busy: the last op frees it */
	bool finishing; /* flushing its last writes before closing */
	/* console-attach: console and domain events for this domain */
	bool attached;
	uint32_t attach_domid;
	/* shutdown -w: the reply waits until the domain is gone */
	bool waiting;
	long long wait_id;
	uint32_t wait_domid;
};

struct ctl_server {
	uv_loop_t *loop;
	const struct ferryd_opts *opts;
	struct hyp *hyp;
	char sock_path[4096];
	uv_pipe_t listener;
	uv_signal_t sigterm, sigint;
	struct ctl_client *clients;
	bool stopping;
	bool signals_started;
	/* event bridge (ctl-events.c); lock guards the queue and closed */
	uv_async_t async;
	pthread_mutex_t ev_lock;
	struct ctl_event *ev_head, *ev_tail;
	bool ev_closed;
	/* migration state (ctl-migrate.c) */
	struct ctl_mig *mig;
	/* xenstore (xs-server.c); NULL with --no-xenstore */
	struct xs_server *xs;
};

/* ctl-server.c */
int ctl_server_start(struct ctl_server *srv);
/* After the loop has ended: closes what stop left open. */
void ctl_server_fini(struct ctl_server *srv);
/* Sends a line to a client; takes ownership of buf (malloc()ed). */
void ctl__send(struct ctl_client *cl, char *buf, size_t len);
void ctl__client_close(struct ctl_client *cl);
/* 0 if the peer of a unix-socket connection may use ferryd, else -EACCES
 * (logged, naming what socket) or -errno. */
int ctl__peer_allowed(uv_pipe_t *p, const char *what);
/* hyp event delivery, called by ctl-events.c on the loop thread. */
void ctl__on_console(struct ctl_server *srv, uint32_t domid, const char *buf, size_t len);
void ctl__on_state(struct ctl_server *srv, uint32_t domid, enum hyp_dom_state st);
void ctl__on_gone(struct ctl_server *srv, uint32_t domid);

/* Migration's names: the target receives NAME as NAME--incoming until go;
 * the source's copy is NAME--migratedaway after go. */
#define CTL_INCOMING_SUFFIX "--incoming"
#define CTL_AWAY_SUFFIX	    "--migratedaway"

/* ctl-ops.c */
void ctl__dispatch(struct ctl_client *cl, const struct xlm_req *req);
/*
 * Loop thread. The owner rule and the fence for a request about domid
 * (verb: what was asked, "save", "unpause", "set the maxmem of"): replies
 * and returns -EBUSY when an operation holds the domain or a migration is
 * receiving it, -EPERM when it is fenced (the message says how to resolve
 * it), else 0. Every verb that could break an operation or run a fenced
 * domain or a copy of it asks this first (docs/control-protocol.md lists
 * them).
 */
int ctl__domain_check(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
		      const char *verb);
/* Loop thread: ctl__domain_check, then claims domid for op (detail: the
 * phrase others' refusals show, "being saved to /x"). Replies and returns
 * -errno on failure; the operation calls hyp_domain_release when done. */
int ctl__domain_claim(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
		      const char *verb, enum hyp_op op, const char *detail);
/* Any thread: -EPERM and err when a domain named name would be a second
 * copy of a fenced NAME--migratedaway (restore), else 0. */
int ctl__name_check(struct ctl_server *srv, const char *name, char *err, size_t errlen);
void ctl__reply_error(struct ctl_client *cl, long long id, bool has_id, int err,
		      const char *fmt, ...) PRINTF_FMT(5, 6);
/* Domain records in <state_dir>/domains/<domid>.json. */
void ctl__record_write(struct ctl_server *srv, uint32_t domid,
		       const struct hyp_dom_config *cfg);
void ctl__record_remove(struct ctl_server *srv, uint32_t domid);

/* ctl-save.c: save and restore run on libuv's thread pool. */
void ctl__op_save(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_restore(struct ctl_client *cl, const struct xlm_req *req);
/* Frees a client closed while busy; called when its last op finishes. */
void ctl__client_release(struct ctl_client *cl);

/* ctl-sched.c: the scheduler and cpupool verbs */
void ctl__op_sched(struct ctl_client *cl, const struct xlm_req *req);

/* ctl-migrate.c */
/* Loads the TLS context and starts the listener when opts->listen is set;
 * logs and returns -errno on failure. */
int ctl_migrate_start(struct ctl_server *srv);
/* From the SIGTERM path: closes the listener and the progress async. */
void ctl_migrate_stop(struct ctl_server *srv);
/* After the loop has ended. */
void ctl_migrate_fini(struct ctl_server *srv);
void ctl__op_migrate(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_migrate_cancel(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_migrate_resolve(struct ctl_client *cl, const struct xlm_req *req);
/* Loop thread: the host fenced domid was migrated to, or -ENOENT. */
int ctl__fence_host(struct ctl_server *srv, uint32_t domid, char *host, size_t size);

/* xs-server.c */
/* Creates the store and listens on RUN_DIR/xenstored/socket{,_ro}; logs and
 * returns a negative errno on failure (srv->xs is NULL then). */
int ctl_xs_start(struct ctl_server *srv);
/* From the SIGTERM path: closes the sockets, the clients and the async. */
void ctl_xs_stop(struct ctl_server *srv);
/* After the loop has ended (and every thread that creates domains has
 * finished): frees the store. */
void ctl_xs_fini(struct ctl_server *srv);
/* Any thread: domid was created (create, restore, incoming migration);
 * the loop makes /local/domain/<domid> from its name and memory. */
void ctl__xs_domain_add(struct ctl_server *srv, uint32_t domid);
/* Any thread but the loop's waits for it (opaque: the ctl_server). For
 * streams (mig_xenstore_fn): domid's subtree as pairs. For restores
 * (rst_xenstore_fn): makes domid's entries and ring before it runs, then
 * writes the stream's pairs (if any) over them. */
int ctl__xs_stream_read(void *srv, uint32_t domid, char **pairs, size_t *len);
int ctl__xs_stream_write(void *srv, uint32_t domid, const char *pairs, size_t len);
/* Loop thread: domid is gone; removes /local/domain/<domid>. */
void ctl__xs_domain_gone(struct ctl_server *srv, uint32_t domid);
/* Loop thread: domid runs; makes its entries and ring if nothing did (a
 * domain hyp restarted on its own). */
void ctl__xs_domain_running(struct ctl_server *srv, uint32_t domid);
/* Loop thread: writes control/shutdown = "poweroff" or "reboot" in the
 * domain's directory (Xen's request); -ENODEV without a store. */
int ctl__xs_shutdown_request(struct ctl_server *srv, uint32_t domid, bool reboot);
/* Loop thread: writes rel (e.g. "memory/target") under the domain's
 * directory; -ENODEV without a store. */
int ctl__xs_domain_write(struct ctl_server *srv, uint32_t domid, const char *rel,
			 const char *v);

/* ctl-events.c */
int ctl__events_init(struct ctl_server *srv, struct hyp_events *ev);
/* Delivers everything queued so far (also run by the async callback). */
void ctl__events_drain(struct ctl_server *srv);
/* After this, hyp callbacks drop their events; closes the async handle. */
void ctl__events_close(struct ctl_server *srv);
void ctl__events_fini(struct ctl_server *srv);

#endif
