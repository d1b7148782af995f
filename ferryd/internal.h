/* SPDX-License-Identifier: MIT */
/*
 * ferryd internals shared by its files:
 *   ferryd.c      flags, run/state directories, pidfile lock, daemonizing
 *   ctl-server.c  the control socket on the libuv loop: clients, writes,
 *                 signals, clean shutdown
 *   ctl-ops.c     one handler per control op
 *   ctl-events.c  hyp events (any thread) -> the loop, coalesced, through
 *                 ctl-jobs.c's queue (ctl__loop_call)
 *   xs-server.c   the xenstore (one struct xs_store) and its xenstored
 *                 sockets RUN_DIR/xenstored/socket and socket_ro; other
 *                 threads' work reaches it through ctl__loop_call
 *   ctl-jobs.c    long jobs on their own threads, with cancel tokens, and
 *                 the one queue of calls from threads to the loop
 *   ctl-save.c    save and restore, jobs of ctl-jobs.c
 *   save-file.c   where saves go (crash-safe file replacement, or a stream
 *                 to a device, FIFO or socket) and restores come from
 *   ctl-lifetime.c what ferryd's stop and start do to domains: save them
 *                 all at SIGTERM (--on-stop), restore them at start
 *   ctl-snapsched.c periodic snapshots: the schedules, their timer and
 *                 the snapshot-schedule op
 *   ctl-migrate.c live migration: the migrate/-cancel/-resolve ops (source
 *                 side, migrate/handshake.h) and the migration listener
 *                 (target side, one receiver per connection,
 *                 restore/receive.h), all jobs of ctl-jobs.c
 *   ctl-snapshot.c the snapshot verbs over the host's repository
 *                 (STATE_DIR/snapshots), jobs of ctl-jobs.c
 * Everything here runs on the loop thread except the hyp_events callbacks
 * in ctl-events.c and the jobs' run functions.
 */
#ifndef FERRYD_INTERNAL_H
#define FERRYD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "common/compiler.h"
#include "hyp/hyp.h"
#include "migrate/handshake.h"
#include "restore/receive.h"
#include "stream/io.h"
#include "toolstack/proto.h"

#define FERRYD_VERSION "0.1"
#define FERRYD_PROTOCOL 1
/* A client whose unsent replies and events exceed this is dropped. */
#define CTL_WRITE_QUEUE_MAX (16u << 20)
/* Console bytes held per domain between two turns of the loop. */
#define CTL_CONSOLE_PENDING_MAX (1u << 20)
/* SIGTERM: how long cancelled jobs get to end before ferryd exits without
 * them (README, ferryd --help). */
#define CTL_STOP_JOBS_MS 10000
/* --net-timeout default: a migration peer silent this long is dead. */
#define CTL_NET_TIMEOUT_S 30

struct ferryd_opts {
	const char *run_dir;
	const char *state_dir;
	const char *backend;
	unsigned pcpus;
	uint64_t memory_bytes;
	bool prealloc; /* --prealloc: back the pool's free frames from the start */
	const char *pool_file; /* --pool-file: the pool in a tmpfs file, kept */
	bool foreground;
	char guest[4096];
	/* migration (ctl-migrate.c) */
	const char *listen;   /* ADDR[:PORT]; NULL: no listener */
	const char *tls_dir;  /* ca.pem, NAME.pem, NAME.key */
	const char *tls_name; /* default: the ADDR of listen */
	bool insecure;	      /* plain TCP, no TLS */
	bool no_xenstore;     /* --no-xenstore: no store, no xenstored sockets */
	/* --net-timeout: a migration peer moving no byte this long is dead */
	unsigned net_timeout_s;
	/* stop (ctl-lifetime.c) */
	bool on_stop_destroy;	 /* --on-stop destroy; default save */
	unsigned stop_timeout_s; /* --stop-timeout */
	/* --snapshot-dedup host: pages shared across domains in a new repository */
	bool snapshot_dedup_host;
	const char *run_log; /* --run-log FILE; NULL: none */
};

struct ctl_event;
struct ctl_jobs;
struct ctl_life;
struct ctl_mig;
struct ctl_snap;
struct mig_save_stats;
struct snap_chain;
struct snap_repo;
struct snap_take_report;
struct xs_server;
struct ctl_snapsched;
struct xlm_cfg_snapshot;

struct ctl_client {
	uv_pipe_t pipe; /* pipe.data points back here */
	struct ctl_server *srv;
	struct xlm_proto proto;
	struct ctl_client *prev, *next;
	bool closing;   /* uv_close() called: gone at the next loop turn */
	unsigned busy;  /* its jobs running (ctl-jobs.c) */
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

/* A call from any thread to the loop (ctl__loop_call): fn runs there, in
 * the order posted; c is the caller's (fn frees what holds it). */
struct ctl_call {
	struct ctl_call *next;
	void (*fn)(struct ctl_call *c);
};

struct ctl_server {
	uv_loop_t *loop;
	const struct ferryd_opts *opts;
	struct hyp *hyp;
	struct dev_pv *devs; /* the PV rings' backends (devices/pv.h) */
	int run_log_fd;	     /* --run-log, or -1 (ctl-events.c writes it) */
	char sock_path[4096];
	uv_pipe_t listener;
	uv_signal_t sigterm, sigint;
	struct ctl_client *clients;
	bool stopping;
	bool signals_started;
	/* event bridge (ctl-events.c): pending events, delivered on the loop
	 * by ev_call (ctl__loop_call); ev_lock guards them and the flags */
	pthread_mutex_t ev_lock;
	struct ctl_event *ev_head, *ev_tail;
	struct ctl_call ev_call;
	bool ev_posted; /* ev_call is queued and has not run yet */
	bool ev_closed;
	/* long jobs and the threads -> loop queue (ctl-jobs.c) */
	struct ctl_jobs *jobs;
	/* migration state (ctl-migrate.c) */
	struct ctl_mig *mig;
	/* xenstore (xs-server.c); NULL with --no-xenstore */
	struct xs_server *xs;
	/* start and stop (ctl-lifetime.c) */
	struct ctl_life *life;
	/* periodic snapshots (ctl-snapsched.c); NULL until started */
	struct ctl_snapsched *snapsched;
	/* the snapshot repository (ctl-snapshot.c) */
	struct ctl_snap *snap;
	/* replication pairs (ctl-remus.c); NULL until the first */
	struct ctl_remus *remus;
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
/* Loop thread: line (an event, taken) to the clients attached to domid. */
void ctl__send_attached(struct ctl_server *srv, uint32_t domid, char *line, size_t len);

/* Migration's names: the target receives NAME as NAME--incoming until go;
 * the source's copy is NAME--migratedaway after go. */
#define CTL_INCOMING_SUFFIX RST_INCOMING_SUFFIX
/* A replication pair's backup holds NAME as NAME--backup until it takes over. */
#define CTL_BACKUP_SUFFIX   "--backup"
#define CTL_AWAY_SUFFIX	    MIG_AWAY_SUFFIX

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
/* The same, but a domain held by operation allowed passes while that
 * operation has not paused it (mem-set during a migration's rounds). */
int ctl__domain_check_during(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
			     const char *verb, enum hyp_op allowed);
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

/* ctl-save.c: save and restore run as jobs (ctl-jobs.c): a client that
 * goes away cancels them (a cancelled save leaves its target as it was and
 * the domain running; a cancelled restore creates no domain). */
void ctl__op_save(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_restore(struct ctl_client *cl, const struct xlm_req *req);
/*
 * Any thread but the loop's: restores the domain saved in path as xl
 * restore [-p] does (its record and xenstore entries made). 0 with *domid,
 * or -errno with err (errlen bytes) saying why; nothing is left behind.
 */
int ctl__restore_path(struct ctl_server *srv, const char *path, bool paused, uint32_t *domid,
		      char *err, size_t errlen);
/* Frees a client closed while busy; called when its last op finishes. */
void ctl__client_release(struct ctl_client *cl);

/* save-file.c */
/*
 * Saves domain domid to path crash-safely: pauses it and writes the stream
 * to a new file beside path (a symlink at path followed; an existing file's
 * owner and mode kept, else 0600), fsyncs it, renames it over path and
 * fsyncs the directory. A device, FIFO or socket at path is written as a
 * stream instead, never truncated or removed; a FIFO without a reader is
 * waited for. cancel (borrowed; may be NULL) fired stops the wait or the
 * writes with -ECANCELED. The caller holds the domain (hyp_domain_claim,
 * HYP_OP_SAVE). On success (0) the domain is left paused by the save's own
 * count (the caller lifts it with hyp_domain_op_unpause or destroys the
 * domain) and st (may be NULL) filled; on failure (-errno, message in err)
 * the temporary file is removed, path is exactly as it was and the domain
 * is as it was found (running, or paused by the toolstack).
 * Any thread but the loop's (it waits for the loop for the xenstore).
 */
int ctl__save_file(struct ctl_server *srv, uint32_t domid, const char *path,
		   enum strm_codec codec, struct strm_cancel *cancel,
		   struct mig_save_stats *st, char *err, size_t errlen);
/*
 * Opens path for a restore into *fd: a regular file at once; a FIFO
 * waiting, while cancel (may be NULL) has not fired, for a writer to send
 * its first bytes (non-blocking then; a socket is connected to). -errno
 * with err set.
 */
int ctl__open_restore(const char *path, struct strm_cancel *cancel, int *fd, char *err,
		      size_t errlen);

/* ctl-sched.c: the scheduler and cpupool verbs */
void ctl__op_sched(struct ctl_client *cl, const struct xlm_req *req);

/* ctl-jobs.c */
/* struct ctl_call: above, with struct ctl_server. */
/*
 * A long job on its own thread. The owner embeds it, sets cl (may be NULL),
 * what (for logs; lives as long as the job), run (on the job's thread) and
 * done (on the loop once run has returned; frees the owner; cl, if any, is
 * still valid there and released after), then calls ctl__job_start.
 */
struct ctl_job {
	struct ctl_client *cl;
	const char *what;
	void (*run)(struct ctl_job *j);
	void (*done)(struct ctl_job *j);
	/* the framework's: */
	struct ctl_server *srv;
	struct strm_cancel *cancel; /* for the job's I/O (strm_io_set_cancel) */
	volatile int cancelled;	    /* the same as a flag, for APIs that poll one */
	bool no_return;		    /* under the framework's lock */
	pthread_t thread;
	struct ctl_job *next;
	struct ctl_call call;
};
int ctl_jobs_start(struct ctl_server *srv);
/* Loop thread. 0, or -errno (logged) and the job did not start. */
int ctl__job_start(struct ctl_server *srv, struct ctl_job *j);
/* Any thread: fires j's token; -EBUSY if j has passed its point of no
 * return. */
int ctl__job_cancel(struct ctl_job *j);
/* j's thread: from here on ctl__job_cancel refuses (only SIGTERM stops it,
 * and then only its waits); -ECANCELED if the token has fired already. */
int ctl__job_no_return(struct ctl_job *j);
bool ctl__job_cancelled(const struct ctl_job *j);
/*
 * A job's reply (from its done, on the loop): the claim the job holds on
 * domid (claim: HYP_OP_NONE for none) is released first, so whoever the
 * reply reaches finds the domain free; then, unless the client is going,
 * the error rc with err, or on success the map gen writes (arg is its).
 */
struct ctl_job_reply {
	long long id;
	bool has_id;
	uint32_t domid;
	enum hyp_op claim;
	int rc;
	const char *err;
	int (*gen)(yajl_gen g, const void *arg);
	const void *arg;
};
void ctl__job_reply(struct ctl_job *j, const struct ctl_job_reply *r);
/* Loop thread: cl is closing; cancels its jobs short of no return. */
void ctl__jobs_client_gone(struct ctl_client *cl);
/* Any thread: queues c; -ESHUTDOWN once the loop takes no more (c is the
 * caller's again). */
int ctl__loop_call(struct ctl_server *srv, struct ctl_call *c);
/* Loop thread: fires every job's token, past the point of no return too
 * (those only stop waiting); new jobs may still start. */
void ctl_jobs_cancel_all(struct ctl_server *srv);
/* SIGTERM path: refuses new jobs, fires every token and gives the jobs
 * CTL_STOP_JOBS_MS from now to end; then (or if anything else keeps the
 * loop busy that long) stops the loop without them, and ctl_jobs_abandoned
 * says so. */
void ctl_jobs_stop(struct ctl_server *srv);
bool ctl_jobs_abandoned(const struct ctl_server *srv);
/* After the loop has ended. */
void ctl_jobs_fini(struct ctl_server *srv);

/* ctl-migrate.c */
/* Loads the TLS context and starts the listener when opts->listen is set;
 * logs and returns -errno on failure. */
int ctl_migrate_start(struct ctl_server *srv);
/* Cancels every outgoing migration short of go and makes every receiver
 * give up (one that has taken go keeps its domain). */
void ctl_migrate_cancel_all(struct ctl_server *srv);
/* From the SIGTERM path: closes the listener, then ctl_migrate_cancel_all. */
void ctl_migrate_stop(struct ctl_server *srv);
/* After the loop has ended. */
void ctl_migrate_fini(struct ctl_server *srv);
/* The migration listener's TLS context (NULL without --tls-dir) and
 * --net-timeout in ms, for other host-to-host connections (HA pairs). */
struct strm_tls *ctl__mig_tls(struct ctl_server *srv);
int ctl__mig_net_ms(struct ctl_server *srv);

/* ---- replication pairs (ctl-remus.c) ---- */
void ctl__op_remus(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_remus_status(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_remus_stop(struct ctl_client *cl, const struct xlm_req *req);
/* A receiver's connection that opened with "ferry-remus " (its 12 bytes
 * read): serves the backup's side of the pair on io (borrowed) until it
 * ends. cancel: the receiver job's token (ferryd stops). */
bool ctl__remus_serve(struct ctl_server *srv, struct strm_io *io, const char *peer,
		      struct strm_cancel *cancel);
/* The pair role of domid here ("protected", "unprotected", "backup", ...)
 * in buf, or NULL when it is in none. Any thread. */
const char *ctl__remus_role(struct ctl_server *srv, uint32_t domid, char *buf, size_t len);
/* Loop thread: domid is gone; its pair records go too. */
void ctl__remus_domain_gone(struct ctl_server *srv, uint32_t domid);
/* domid is a pair's primary here (syncing, protected or fenced). */
bool ctl__remus_primary(struct ctl_server *srv, uint32_t domid);
void ctl_remus_fini(struct ctl_server *srv);

void ctl__op_migrate(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_migrate_cancel(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_migrate_resolve(struct ctl_client *cl, const struct xlm_req *req);
/* Where a fenced domain went (migrate-resolve asks there). */
struct ctl_fence {
	char name[HYP_NAME_MAX]; /* its name before it was fenced */
	char host[256];
	bool insecure;
};
/* Any thread: the fence record of domid (-ENOENT if none), or a new one
 * (a fenced domain restored at start). */
int ctl__fence_get(struct ctl_server *srv, uint32_t domid, struct ctl_fence *out);
int ctl__fence_put(struct ctl_server *srv, uint32_t domid, const struct ctl_fence *in);
/* Any thread: a migration or migrate-resolve job holds domid. */
bool ctl__mig_busy(struct ctl_server *srv, uint32_t domid);

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

/* ctl-snapshot.c */
/* Opens (or makes) STATE_DIR/snapshots. A damaged or newer repository is
 * logged and refused by the snapshot verbs, naming the problem; ferryd
 * runs on. -ENOMEM only. */
int ctl_snapshot_start(struct ctl_server *srv);
/* After the jobs have ended. */
void ctl_snapshot_fini(struct ctl_server *srv);
/*
 * Any thread but the loop's: the repository, for one thread at a time
 * (snapshot/repo.h); *r is valid until ctl__snap_unlock. -errno with err
 * set when the repository could not be opened at start.
 */
int ctl__snap_lock(struct ctl_server *srv, struct snap_repo **r, char *err, size_t errlen);
void ctl__snap_unlock(struct ctl_server *srv);
/*
 * Loop thread: starts a snapshot of domid named name (NULL: the time, as
 * 20261206-034500, UTC) as a job holding the domain (HYP_OP_SNAPSHOT),
 * incremental on chain (borrowed until done; NULL: ferryd's own chain for
 * the domain, as xl snapshot-create uses, kept until it goes). 0 and
 * done is called later on the loop thread (rep NULL on failure, err saying
 * why; both valid during the call only), or -errno with err set and done
 * never called: -EBUSY when an operation holds the domain, -EEXIST for a
 * taken name.
 */
int ctl__snapshot_start(struct ctl_server *srv, uint32_t domid, const char *name,
			struct snap_chain *chain,
			void (*done)(void *opaque, int rc, const char *err,
				     const struct snap_take_report *rep),
			void *opaque, char *err, size_t errlen);
/* Loop thread: domid is gone; its chain goes (log-dirty off). */
void ctl__snapshot_domain_gone(struct ctl_server *srv, uint32_t domid);
void ctl__op_snapshot_create(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_snapshot_list(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_snapshot_delete(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_snapshot_verify(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_snapshot_export(struct ctl_client *cl, const struct xlm_req *req);
void ctl__op_snapshot_revert(struct ctl_client *cl, const struct xlm_req *req);
/* restore with args.lazy (ctl-save.c hands it over): an uncompressed save
 * restored lazily (restore/lazy.h), running before its pages are read. */
void ctl__op_restore_lazy(struct ctl_client *cl, const struct xlm_req *req);

/* ctl-lifetime.c */
/* Default --stop-timeout: time to save a few GiB of guests to local disk. */
#define CTL_STOP_TIMEOUT_S 120
/* A stop still running this long after --stop-timeout exits anyway. */
#define CTL_STOP_GRACE_S 15
/*
 * Loop thread, before the control socket exists: removes the records of
 * domains a crash lost, then restores the domains the last stop saved in
 * STATE_DIR/saved/ (running the loop meanwhile: restores use the
 * xenstore), each in the pause and fence state it had. A restore that
 * fails is logged and its file kept as NAME.save.failed. Returns 0, or
 * -errno when the saved/ directory cannot be made or read.
 */
int ctl_lifetime_start(struct ctl_server *srv);
/*
 * Loop thread, from the SIGTERM/SIGINT handler: cancels what has not
 * reached a migration's go, then saves (--on-stop save) every domain on a
 * thread; calls done on the loop once each is saved or given up at
 * --stop-timeout (done destroys what is left). With --on-stop destroy,
 * calls done at once.
 */
void ctl_lifetime_stop(struct ctl_server *srv, void (*done)(struct ctl_server *srv));
/* After the loop has ended: joins the thread, closes the timers, frees. */
void ctl_lifetime_fini(struct ctl_server *srv);

/* ctl-snapsched.c */
/* Loop thread, after the domains of the last stop are back: loads the
 * schedules of STATE_DIR/snapshot-schedules and starts their timer. */
int ctl_snapsched_start(struct ctl_server *srv);
/* After the jobs have ended. NULL-safe. */
void ctl_snapsched_fini(struct ctl_server *srv);
/* Loop thread: domid was created with xl.cfg's schedule keys (c->every_s
 * 0: none); sets the schedule of uuid, logging a failure. */
void ctl__snapsched_created(struct ctl_server *srv, uint32_t domid, const uint8_t uuid[16],
			    const struct xlm_cfg_snapshot *c);
void ctl__op_snapshot_schedule(struct ctl_client *cl, const struct xlm_req *req);

/* ctl-events.c */
int ctl__events_init(struct ctl_server *srv, struct hyp_events *ev);
/* Delivers everything queued so far (also run by ev_call on the loop). */
void ctl__events_drain(struct ctl_server *srv);
/* After this, hyp callbacks drop their events. */
void ctl__events_close(struct ctl_server *srv);
void ctl__events_fini(struct ctl_server *srv);

#endif
