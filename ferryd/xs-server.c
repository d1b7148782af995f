// SPDX-License-Identifier: MIT
/*
 * ferryd's xenstore: one struct xs_store (xenstore/xenstore.h) per ferryd, owned
 * here, served on two AF_UNIX stream sockets on the libuv loop, as Xen's
 * xenstored serves them:
 *   RUN_DIR/xenstored/socket     the privileged toolstack interface: each
 *                                client is an xs_conn acting as dom0
 *   RUN_DIR/xenstored/socket_ro  the same, but requests that change the
 *                                store (WRITE, MKDIR, RM, SET_PERMS,
 *                                INTRODUCE, RELEASE, RESUME, SET_TARGET,
 *                                CONTROL) are answered EROFS
 * The directory is 0700 and both sockets 0600 (root, or ferryd's own user,
 * as for the control socket); Xen's clients find the socket through
 * XENSTORED_PATH.
 *
 * Domains: every domain create (ctl-ops.c), restore (ctl-save.c) and
 * incoming migration (ctl-migrate.c) calls ctl__xs_domain_add(), which may
 * run on any thread: the domid is queued (one drain call in ctl-jobs.c's
 * queue, ctl__loop_call, carries it and guests' kicks) and the loop thread makes
 * /local/domain/<domid> (xs_domain_create) from the domain's current name
 * and memory. ctl__on_gone() releases it.
 *
 * Guest rings (devices/xs-ring.h): with its entries each domain gets a
 * connection over its xenstore ring page (dev_xs_ring_new), acting as the
 * guest's domid. The guest's notify arrives on a vCPU thread as a kick: the domid
 * is queued and the loop services the ring (dev_xs_ring_service). Watch
 * events for a guest are written into its ring from whatever store call
 * fires them.
 *
 * Everything else runs on the loop thread; the store is single-threaded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "devices/pv.h"
#include "devices/xs-ring.h"
#include "xenstore/xenstore.h"
#include "internal.h"

/* A client whose unsent replies and watch events exceed this is dropped. */
#define XS_WRITE_QUEUE_MAX (16u << 20)
#define XS_READ_BUF 65536

struct xs_pending {
	struct xs_pending *next;
	uint32_t domid;
};

/* Runs on the loop thread for another thread, which waits (the store is
 * the loop's alone). */
struct xs_call {
	struct xs_call *next;
	int (*fn)(struct xs_server *xs, struct xs_call *c);
	uint32_t domid;
	const char *in;
	size_t inlen;
	char **out;
	size_t *outlen;
	int rc;
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

struct xs_client {
	uv_pipe_t pipe; /* pipe.data points back here */
	struct xs_server *xs;
	struct xs_conn *conn;
	struct xs_client *prev, *next;
	bool ro;
	bool closing;
	struct xs_wire_rx *rx; /* read-only clients: requests are vetted whole */
};

struct xs_ring_client {
	struct xs_ring_client *next;
	struct dev_xs_ring *ring;
	uint32_t domid;
};

struct xs_listener {
	uv_pipe_t pipe;
	struct xs_server *xs;
	char path[4200];
	bool ro;
	bool open;
};

struct xs_server {
	struct ctl_server *srv;
	struct xs_store *store;
	char dir[4096];
	struct xs_listener rw, ro;
	struct xs_client *clients;
	struct xs_ring_client *rings; /* one per domain with entries */
	/* domains created off the loop thread and rings kicked by their
	 * guests reach the loop through drain_call in ctl-jobs.c's queue
	 * (ctl__loop_call); lock guards pend, kicks, calls, posted and closed */
	struct ctl_call drain_call;
	bool posted; /* drain_call is queued and has not run yet */
	pthread_mutex_t lock;
	struct xs_pending *pend;
	struct xs_pending *kicks; /* each domid at most once */
	struct xs_call *calls;
	bool closed;
	pthread_t loop_thread;
};

static void drain(struct xs_server *xs);

/* ---- clients ------------------------------------------------------------ */

static void client_closed(uv_handle_t *h)
{
	struct xs_client *cl = h->data;

	if (cl->conn)
		xs_conn_free(cl->conn);
	free(cl->rx);
	free(cl);
}

/* Safe from inside out_fn: the conn is freed in the close callback, at a
 * later turn of the loop, never inside a store call. */
static void client_close(struct xs_client *cl)
{
	struct xs_server *xs = cl->xs;

	if (cl->closing)
		return;
	cl->closing = true;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		xs->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	cl->prev = cl->next = NULL;
	uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

struct xs_write_req {
	uv_write_t req;
	char buf[];
};

static void write_done(uv_write_t *req, int status)
{
	free(container_of(req, struct xs_write_req, req));
}

static int client_out(void *opaque, const void *msg, size_t len)
{
	struct xs_client *cl = opaque;
	uv_stream_t *s = (uv_stream_t *)&cl->pipe;
	struct xs_write_req *w;
	uv_buf_t b = uv_buf_init((char *)msg, (unsigned)len);
	int n;

	if (cl->closing)
		return -EPIPE;
	n = uv_try_write(s, &b, 1);
	if (n == (int)len)
		return 0;
	if (n < 0 && n != UV_EAGAIN) {
		client_close(cl);
		return -EPIPE;
	}
	if (n < 0)
		n = 0;
	if (uv_stream_get_write_queue_size(s) + len - (size_t)n > XS_WRITE_QUEUE_MAX) {
		log_warn("xenstore client not reading (over %u MiB queued); dropping it",
			 XS_WRITE_QUEUE_MAX >> 20);
		client_close(cl);
		return -ENOBUFS;
	}
	w = malloc(sizeof(*w) + len - (size_t)n);
	if (!w) {
		client_close(cl);
		return -ENOMEM;
	}
	memcpy(w->buf, (const char *)msg + n, len - (size_t)n);
	b = uv_buf_init(w->buf, (unsigned)(len - (size_t)n));
	if (uv_write(&w->req, s, &b, 1, write_done)) {
		free(w);
		client_close(cl);
		return -EPIPE;
	}
	return 0;
}

static bool ro_allowed(uint32_t type)
{
	switch (type) {
	case XS_DIRECTORY:
	case XS_DIRECTORY_PART:
	case XS_READ:
	case XS_GET_PERMS:
	case XS_WATCH:
	case XS_UNWATCH:
	case XS_TRANSACTION_START:
	case XS_TRANSACTION_END:
	case XS_GET_DOMAIN_PATH:
	case XS_IS_DOMAIN_INTRODUCED:
	case XS_RESET_WATCHES:
		return true;
	default:
		return false;
	}
}

/* Read-only socket: frame the stream here, pass on what only reads. */
static int feed_ro(struct xs_client *cl, const char *data, size_t len)
{
	while (len && !cl->closing) {
		long used = xs_wire_rx_feed(cl->rx, data, len);

		if (used < 0)
			return (int)used;
		data += used;
		len -= (size_t)used;
		if (!cl->rx->complete)
			continue;
		if (ro_allowed(cl->rx->hdr.type)) {
			int rc = xs_conn_feed(cl->conn, cl->rx->buf, cl->rx->have);

			if (rc)
				return rc;
		} else {
			static const char err[] = "EROFS";
			struct xs_iov part = { err, sizeof(err) };
			uint8_t out[64];
			long n = xs_wire_build(out, XS_ERROR, cl->rx->hdr.req_id,
					       cl->rx->hdr.tx_id, &part, 1);

			if (n > 0 && client_out(cl, out, (size_t)n))
				return -EPIPE;
		}
		xs_wire_rx_next(cl->rx);
	}
	return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	buf->base = malloc(XS_READ_BUF);
	buf->len = buf->base ? XS_READ_BUF : 0;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct xs_client *cl = s->data;

	if (n > 0 && !cl->closing) {
		int rc;

		/* Domains created on other threads are visible to every
		 * request that follows their creation. */
		drain(cl->xs);
		rc = cl->ro ? feed_ro(cl, buf->base, (size_t)n)
				: xs_conn_feed(cl->conn, buf->base, (size_t)n);

		if (rc && !cl->closing) {
			log_warn("xenstore client dropped: %s",
				 rc == -E2BIG ? "message over 4096 bytes" : ferry_strerror(-rc));
			client_close(cl);
		}
	} else if (n < 0) {
		client_close(cl);
	}
	free(buf->base);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct xs_listener *l = listener->data;
	struct xs_server *xs = l->xs;
	struct xs_client *cl;

	if (status < 0) {
		log_warn("xenstore socket: %s", uv_strerror(status));
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return;
	cl->xs = xs;
	cl->ro = l->ro;
	uv_pipe_init(xs->srv->loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	cl->next = xs->clients;
	if (xs->clients)
		xs->clients->prev = cl;
	xs->clients = cl;
	if (uv_accept(listener, (uv_stream_t *)&cl->pipe) ||
	    ctl__peer_allowed(&cl->pipe, "xenstore")) {
		client_close(cl);
		return;
	}
	if (cl->ro) {
		cl->rx = malloc(sizeof(*cl->rx));
		if (!cl->rx) {
			client_close(cl);
			return;
		}
		xs_wire_rx_init(cl->rx);
	}
	if (xs_conn_new(xs->store, 0, client_out, cl, &cl->conn)) {
		client_close(cl);
		return;
	}
	uv_read_start((uv_stream_t *)&cl->pipe, alloc_cb, read_cb);
}

/* ---- guest rings -------------------------------------------------------- */

static struct xs_ring_client **ring_find(struct xs_server *xs, uint32_t domid)
{
	struct xs_ring_client **pp;

	for (pp = &xs->rings; *pp && (*pp)->domid != domid; pp = &(*pp)->next)
		;
	return pp;
}

static void ring_detach(struct xs_server *xs, uint32_t domid)
{
	struct xs_ring_client **pp = ring_find(xs, domid), *rc = *pp;

	if (!rc)
		return;
	*pp = rc->next;
	dev_xs_ring_free(rc->ring);
	free(rc);
}

static void ring_attach(struct xs_server *xs, uint32_t domid)
{
	struct xs_ring_client *rc;
	int err;

	ring_detach(xs, domid); /* a stale one */
	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return;
	rc->domid = domid;
	err = dev_xs_ring_new(xs->srv->hyp, domid, xs->store, &rc->ring);
	if (err) {
		if (err != -ENOENT)
			log_warn("d%u: no xenstore ring: %s", domid, ferry_strerror(-err));
		free(rc);
		return;
	}
	rc->next = xs->rings;
	xs->rings = rc;
	/* Requests the guest wrote before we were here. */
	dev_xs_ring_service(rc->ring);
}

static void ring_service(struct xs_server *xs, uint32_t domid)
{
	struct xs_ring_client *rc = *ring_find(xs, domid);

	if (rc)
		dev_xs_ring_service(rc->ring);
}

/* Under xs->lock: drain_call joins the loop's queue unless it is there
 * already (it then drains this too). Never allocates: a guest's kick is a
 * hot path. */
static int post_locked(struct xs_server *xs)
{
	int rc;

	if (xs->posted)
		return 0;
	rc = ctl__loop_call(xs->srv, &xs->drain_call);
	if (!rc)
		xs->posted = true;
	return rc;
}

/* Any thread (a guest's vCPU): the loop services the ring soon. */
static void ring_kick(void *opaque, uint32_t domid)
{
	struct xs_server *xs = opaque;
	struct xs_pending *p;

	pthread_mutex_lock(&xs->lock);
	if (xs->closed)
		goto out;
	for (p = xs->kicks; p; p = p->next)
		if (p->domid == domid)
			goto out; /* already queued */
	p = malloc(sizeof(*p));
	if (!p)
		goto out;
	p->domid = domid;
	p->next = xs->kicks;
	xs->kicks = p;
	post_locked(xs);
out:
	pthread_mutex_unlock(&xs->lock);
}

/* ---- domains ------------------------------------------------------------ */

static void domain_add(struct xs_server *xs, uint32_t domid)
{
	struct hyp_dom_info info;
	int rc;

	if (hyp_domain_info(xs->srv->hyp, domid, &info))
		return; /* gone already */
	if (xs_domain_introduced(xs->store, domid)) {
		/* Made by its restore before it ran; it may have been renamed
		 * since (NAME--incoming becomes NAME). */
		char p[64];

		snprintf(p, sizeof(p), "/local/domain/%u/name", domid);
		xs_write(xs->store, p, info.name, strlen(info.name));
		return;
	}
	rc = xs_domain_create(xs->store, domid, info.name, info.memory_kb);
	if (rc == -EEXIST) {
		/* A stale entry for a reused domid. */
		xs_domain_release(xs->store, domid);
		rc = xs_domain_create(xs->store, domid, info.name, info.memory_kb);
	}
	if (rc) {
		log_warn("d%u: cannot make its xenstore entries: %s", domid, ferry_strerror(-rc));
		return;
	}
	log_debug("d%u: /local/domain/%u made", domid, domid);
	ring_attach(xs, domid);
}

static void call_finish(struct xs_call *c, int rc)
{
	pthread_mutex_lock(&c->lock);
	c->rc = rc;
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock); /* c may be gone from here on */
}

/* Everything queued so far, in order; on the loop thread. */
static void drain(struct xs_server *xs)
{
	struct xs_pending *p, *next, *rev = NULL, *kicks;
	struct xs_call *calls, *cn;

	pthread_mutex_lock(&xs->lock);
	p = xs->pend;
	xs->pend = NULL;
	kicks = xs->kicks;
	xs->kicks = NULL;
	calls = xs->calls;
	xs->calls = NULL;
	pthread_mutex_unlock(&xs->lock);
	for (; p; p = next) { /* pushed newest first: restore the order */
		next = p->next;
		p->next = rev;
		rev = p;
	}
	for (p = rev; p; p = next) {
		next = p->next;
		domain_add(xs, p->domid);
		free(p);
	}
	for (p = kicks; p; p = next) {
		next = p->next;
		ring_service(xs, p->domid);
		free(p);
	}
	/* After the domains queued before them: a restore's call finds the
	 * entries its domain's creation queued. */
	for (; calls; calls = cn) {
		cn = calls->next;
		call_finish(calls, calls->fn(xs, calls));
	}
}

/* On the loop: drain_call's turn in the queue. Only here is posted
 * cleared, so drain_call is never queued twice. */
static void drain_call(struct ctl_call *call)
{
	struct xs_server *xs = container_of(call, struct xs_server, drain_call);
	bool closed;

	pthread_mutex_lock(&xs->lock);
	xs->posted = false;
	closed = xs->closed;
	pthread_mutex_unlock(&xs->lock);
	if (!closed)
		drain(xs);
}

static int call_on_loop(struct xs_server *xs, struct xs_call *c)
{
	int rc;

	if (!xs)
		return -ENODEV;
	if (pthread_equal(pthread_self(), xs->loop_thread)) {
		drain(xs); /* keep the order */
		return c->fn(xs, c);
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_mutex_lock(&xs->lock);
	if (xs->closed) {
		pthread_mutex_unlock(&xs->lock);
		rc = -ESHUTDOWN;
		goto out;
	}
	c->next = xs->calls;
	xs->calls = c;
	rc = post_locked(xs);
	if (rc) { /* the loop's queue is closed: nothing would run it */
		xs->calls = c->next;
		pthread_mutex_unlock(&xs->lock);
		goto out;
	}
	pthread_mutex_unlock(&xs->lock);
	pthread_mutex_lock(&c->lock);
	while (!c->done)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	rc = c->rc;
out:
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	return rc;
}

static int call_export(struct xs_server *xs, struct xs_call *c)
{
	int rc = xs_export_pairs(xs->store, c->domid, c->out, c->outlen);

	if (rc == -ENOENT) { /* no entries (made without a store): nothing to carry */
		*c->out = NULL;
		*c->outlen = 0;
		rc = 0;
	}
	return rc;
}

/* The domain's entries and ring now, then the stream's subtree over them. */
static int call_import(struct xs_server *xs, struct xs_call *c)
{
	domain_add(xs, c->domid);
	if (!xs_domain_introduced(xs->store, c->domid))
		return -EIO;
	return c->inlen ? xs_import_pairs(xs->store, c->domid, c->in, c->inlen) : 0;
}

int ctl__xs_stream_read(void *srv, uint32_t domid, char **pairs, size_t *len)
{
	struct xs_call c = { .fn = call_export, .domid = domid, .out = pairs, .outlen = len };

	return call_on_loop(((struct ctl_server *)srv)->xs, &c);
}

int ctl__xs_stream_write(void *srv, uint32_t domid, const char *pairs, size_t len)
{
	struct xs_call c = { .fn = call_import, .domid = domid, .in = pairs, .inlen = len };

	return call_on_loop(((struct ctl_server *)srv)->xs, &c);
}

void ctl__xs_domain_add(struct ctl_server *srv, uint32_t domid)
{
	struct xs_server *xs = srv->xs;
	struct xs_pending *p;

	if (!xs)
		return;
	if (pthread_equal(pthread_self(), xs->loop_thread)) {
		drain(xs); /* keep the order */
		domain_add(xs, domid);
		return;
	}
	p = malloc(sizeof(*p));
	if (!p)
		return;
	p->domid = domid;
	pthread_mutex_lock(&xs->lock);
	if (xs->closed) {
		pthread_mutex_unlock(&xs->lock);
		free(p);
		return;
	}
	p->next = xs->pend;
	xs->pend = p;
	post_locked(xs);
	pthread_mutex_unlock(&xs->lock);
}

void ctl__xs_domain_gone(struct ctl_server *srv, uint32_t domid)
{
	if (!srv->xs)
		return;
	/* A create still queued must not resurrect the entry. */
	drain(srv->xs);
	ring_detach(srv->xs, domid);
	xs_domain_release(srv->xs->store, domid);
}

void ctl__xs_domain_running(struct ctl_server *srv, uint32_t domid)
{
	struct xs_server *xs = srv->xs;
	bool queued = false;

	if (!xs)
		return;
	pthread_mutex_lock(&xs->lock);
	for (struct xs_pending *p = xs->pend; p; p = p->next)
		if (p->domid == domid)
			queued = true;
	pthread_mutex_unlock(&xs->lock);
	/* Domains hyp restarted itself (on_reboot = "restart") come this way. */
	if (!queued && !xs_domain_introduced(xs->store, domid))
		domain_add(xs, domid);
}

int ctl__xs_domain_write(struct ctl_server *srv, uint32_t domid, const char *rel,
			 const char *v)
{
	char path[128];
	int rc;

	if (!srv->xs)
		return -ENODEV;
	drain(srv->xs); /* its entries first */
	snprintf(path, sizeof(path), "/local/domain/%u/%s", domid, rel);
	rc = xs_write(srv->xs->store, path, v, strlen(v));
	if (rc)
		log_warn("d%u: cannot write %s: %s", domid, path, ferry_strerror(-rc));
	return rc;
}

int ctl__xs_shutdown_request(struct ctl_server *srv, uint32_t domid, bool reboot)
{
	return ctl__xs_domain_write(srv, domid, "control/shutdown",
				    reboot ? "reboot" : "poweroff");
}

/* ---- start and stop ----------------------------------------------------- */

static int listen_on(struct xs_server *xs, struct xs_listener *l, const char *name, bool ro)
{
	mode_t old;
	int rc;

	l->xs = xs;
	l->ro = ro;
	snprintf(l->path, sizeof(l->path), "%s/%s", xs->dir, name);
	if (strlen(l->path) >= 108) {
		log_err("xenstore socket path %s is too long for AF_UNIX", l->path);
		return -ENAMETOOLONG;
	}
	rc = uv_pipe_init(xs->srv->loop, &l->pipe, 0);
	if (rc)
		return rc;
	l->pipe.data = l;
	l->open = true;
	unlink(l->path); /* we hold the pidfile lock: a socket here is stale */
	old = umask(0177);
	rc = uv_pipe_bind(&l->pipe, l->path);
	umask(old);
	if (!rc && chmod(l->path, 0600))
		rc = -errno;
	if (!rc)
		rc = uv_listen((uv_stream_t *)&l->pipe, 64, on_connection);
	if (rc) {
		log_err("xenstore socket %s: %s", l->path, uv_strerror(rc));
		return rc;
	}
	log_info("xenstore listening on %s", l->path);
	return 0;
}

static void listener_close(struct xs_listener *l)
{
	if (!l->open)
		return;
	l->open = false;
	uv_close((uv_handle_t *)&l->pipe, NULL);
	unlink(l->path);
}

/* Dom0's own entries, as Xen's toolstack makes them. */
static void dom0_entries(struct xs_store *s)
{
	static const char name[] = "Domain-0";

	if (xs_write(s, "/local/domain/0/name", name, strlen(name)) ||
	    xs_write(s, "/local/domain/0/domid", "0", 1))
		log_warn("xenstore: cannot write /local/domain/0");
}

int ctl_xs_start(struct ctl_server *srv)
{
	struct xs_server *xs;
	int rc;

	xs = calloc(1, sizeof(*xs));
	if (!xs)
		return -ENOMEM;
	xs->srv = srv;
	xs->loop_thread = pthread_self();
	snprintf(xs->dir, sizeof(xs->dir), "%s/xenstored", srv->opts->run_dir);
	rc = xs_store_new(NULL, &xs->store);
	if (rc) {
		log_err("cannot create the xenstore: %s", ferry_strerror(-rc));
		free(xs);
		return rc;
	}
	dom0_entries(xs->store);
	pthread_mutex_init(&xs->lock, NULL);
	if (mkdir(xs->dir, 0700) && errno != EEXIST) {
		rc = -errno;
		log_err("cannot create %s: %s", xs->dir, strerror(errno));
		goto fail;
	}
	if (chmod(xs->dir, 0700)) {
		rc = -errno;
		log_err("cannot chmod %s: %s", xs->dir, strerror(errno));
		goto fail;
	}
	xs->drain_call.fn = drain_call;
	srv->xs = xs;
	rc = listen_on(xs, &xs->rw, "socket", false) ?: listen_on(xs, &xs->ro, "socket_ro", true);
	if (rc)
		goto fail;
	/* Last: a guest's kick queues xs's drain, which must not outlive a
	 * start that failed. */
	dev_pv_set_xs_kick(srv->devs, ring_kick, xs);
	return 0;
fail:
	srv->xs = xs; /* stop and fini clean up */
	ctl_xs_stop(srv);
	uv_run(srv->loop, UV_RUN_NOWAIT);
	ctl_xs_fini(srv);
	return rc;
}

void ctl_xs_stop(struct ctl_server *srv)
{
	struct xs_server *xs = srv->xs;
	struct xs_call *calls, *next;

	if (!xs)
		return;
	/* No kick is in flight once this returns. */
	dev_pv_set_xs_kick(srv->devs, NULL, NULL);
	listener_close(&xs->rw);
	listener_close(&xs->ro);
	while (xs->clients)
		client_close(xs->clients);
	while (xs->rings)
		ring_detach(xs, xs->rings->domid);
	pthread_mutex_lock(&xs->lock);
	xs->closed = true;
	calls = xs->calls;
	xs->calls = NULL;
	pthread_mutex_unlock(&xs->lock);
	for (; calls; calls = next) {
		next = calls->next;
		call_finish(calls, -ESHUTDOWN);
	}
}

void ctl_xs_fini(struct ctl_server *srv)
{
	struct xs_server *xs = srv->xs;

	if (!xs)
		return;
	srv->xs = NULL;
	while (xs->pend) {
		struct xs_pending *p = xs->pend;

		xs->pend = p->next;
		free(p);
	}
	while (xs->kicks) {
		struct xs_pending *p = xs->kicks;

		xs->kicks = p->next;
		free(p);
	}
	while (xs->rings)
		ring_detach(xs, xs->rings->domid);
	xs_store_free(xs->store);
	pthread_mutex_destroy(&xs->lock);
	rmdir(xs->dir);
	free(xs);
}
