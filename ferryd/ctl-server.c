// SPDX-License-Identifier: MIT
/*
 * The control socket: an AF_UNIX stream listener on the libuv loop, one
 * struct ctl_client per connection, the byte stream fed through
 * struct xlm_proto into ctl__dispatch(). Also the signal handlers that shut
 * ferryd down cleanly.
 *
 * Entry points from outside: ctl_server_start(); the loop then runs until
 * SIGTERM or SIGINT, which closes the control socket, has ctl-lifetime.c
 * save (or leave) every domain, then destroys what is left and closes every
 * handle.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"

struct ctl_write {
	uv_write_t req;
	char *buf;
};

static void write_done(uv_write_t *req, int status)
{
	struct ctl_write *w = container_of(req, struct ctl_write, req);

	free(w->buf);
	free(w);
}

void ctl__send(struct ctl_client *cl, char *buf, size_t len)
{
	struct ctl_write *w;
	uv_buf_t b;

	if (cl->closing || cl->finishing) {
		free(buf);
		return;
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)&cl->pipe) > CTL_WRITE_QUEUE_MAX) {
		log_warn("control client not reading (over %u MiB queued); dropping it",
			 CTL_WRITE_QUEUE_MAX >> 20);
		free(buf);
		ctl__client_close(cl);
		return;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		free(buf);
		ctl__client_close(cl);
		return;
	}
	w->buf = buf;
	b = uv_buf_init(buf, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&cl->pipe, &b, 1, write_done)) {
		free(buf);
		free(w);
		ctl__client_close(cl);
	}
}

static void client_closed(uv_handle_t *h)
{
	struct ctl_client *cl = h->data;

	if (cl->busy) {
		cl->dead = true; /* the op still running frees it */
		return;
	}
	xlm_proto_fini(&cl->proto);
	free(cl);
}

void ctl__client_release(struct ctl_client *cl)
{
	if (cl->dead && !cl->busy) {
		xlm_proto_fini(&cl->proto);
		free(cl);
	}
}

void ctl__client_close(struct ctl_client *cl)
{
	struct ctl_server *srv = cl->srv;

	if (cl->closing)
		return;
	cl->closing = true;
	/* A client that goes away cancels its jobs short of no return. */
	ctl__jobs_client_gone(cl);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		srv->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	cl->prev = cl->next = NULL;
	uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

static void shutdown_done(uv_shutdown_t *req, int status)
{
	struct ctl_client *cl = req->handle->data;

	free(req);
	ctl__client_close(cl);
}

/* Closes once the queued writes are out (the peer gets its last reply). */
static void client_finish(struct ctl_client *cl)
{
	uv_shutdown_t *req;

	if (cl->closing || cl->finishing)
		return;
	cl->finishing = true;
	uv_read_stop((uv_stream_t *)&cl->pipe);
	req = malloc(sizeof(*req));
	if (!req || uv_shutdown(req, (uv_stream_t *)&cl->pipe, shutdown_done)) {
		free(req);
		ctl__client_close(cl);
	}
}

static void proto_send(void *opaque, char *buf, size_t len)
{
	ctl__send(opaque, buf, len);
}

static void proto_request(void *opaque, const struct xlm_req *req)
{
	struct ctl_client *cl = opaque;

	if (cl->closing)
		return;
	if (cl->srv->stopping)
		ctl__reply_error(cl, req->id, req->has_id, -ESHUTDOWN,
				 "ferryd is stopping: %s every domain",
				 cl->srv->opts->on_stop_destroy ? "destroying" : "saving");
	else
		ctl__dispatch(cl, req);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	buf->base = malloc(65536);
	buf->len = buf->base ? 65536 : 0;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct ctl_client *cl = s->data;

	if (n > 0 && !cl->closing) {
		int rc = xlm_proto_feed(&cl->proto, buf->base, (size_t)n);

		if (rc) {
			log_warn("control client dropped: %s", ferry_strerror(-rc));
			client_finish(cl);
		}
	} else if (n < 0) {
		ctl__client_close(cl);
	}
	free(buf->base);
}

/* Root, or ferryd's own user (an unprivileged test daemon), only; what
 * names the socket in the refusal. */
int ctl__peer_allowed(uv_pipe_t *p, const char *what)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)p, &fd) ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return -errno;
	if (cred.uid != 0 && cred.uid != getuid()) {
		log_warn("%s connection from uid %u (pid %d) refused", what, cred.uid,
			 cred.pid);
		return -EACCES;
	}
	return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct ctl_server *srv = listener->data;
	struct ctl_client *cl;

	if (status < 0) {
		log_warn("control socket: %s", uv_strerror(status));
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return;
	cl->srv = srv;
	xlm_proto_init(&cl->proto, XLM_LINE_MAX, proto_request, proto_send, cl);
	uv_pipe_init(srv->loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	cl->next = srv->clients;
	if (srv->clients)
		srv->clients->prev = cl;
	srv->clients = cl;
	if (uv_accept(listener, (uv_stream_t *)&cl->pipe)) {
		ctl__client_close(cl);
		return;
	}
	if (ctl__peer_allowed(&cl->pipe, "control")) {
		char *buf;
		size_t len;

		if (!xlm_reply_error(0, false, -EACCES,
				     "permission denied: the control socket is root-only",
				     &buf, &len))
			ctl__send(cl, buf, len);
		client_finish(cl);
		return;
	}
	uv_read_start((uv_stream_t *)&cl->pipe, alloc_cb, read_cb);
}

/* ---- hyp events, on the loop thread ------------------------------------- */

static void send_domain_event(struct ctl_client *cl, uint32_t domid, const char *state)
{
	yajl_gen g = xlm_event_begin("domain");
	char *buf;
	size_t len;

	if (g && (xlm_gen_kv_int(g, "domid", domid) || xlm_gen_kv_str(g, "state", state))) {
		yajl_gen_free(g);
		return;
	}
	if (!xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
}

void ctl__send_attached(struct ctl_server *srv, uint32_t domid, char *line, size_t len)
{
	for (struct ctl_client *cl = srv->clients; cl; cl = cl->next) {
		char *copy;

		if (!cl->attached || cl->attach_domid != domid || cl->closing || cl->dead)
			continue;
		copy = malloc(len);
		if (!copy)
			break;
		memcpy(copy, line, len);
		ctl__send(cl, copy, len);
	}
	free(line);
}

static void reply_waiter(struct ctl_client *cl)
{
	yajl_gen g = xlm_reply_begin(cl->wait_id, true);
	char *buf;
	size_t len;

	cl->waiting = false;
	if (g && (xlm_gen_map_open(g) || xlm_gen_kv_int(g, "domid", cl->wait_domid) ||
		  xlm_gen_map_close(g))) {
		yajl_gen_free(g);
		return;
	}
	if (!xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
}

void ctl__on_console(struct ctl_server *srv, uint32_t domid, const char *data, size_t len)
{
	char *clean = NULL;

	for (struct ctl_client *cl = srv->clients, *next; cl; cl = next) {
		yajl_gen g;
		char *buf;
		size_t n;

		next = cl->next;
		if (!cl->attached || cl->attach_domid != domid)
			continue;
		if (!clean) {
			/* JSON strings are UTF-8: guest bytes above 0x7f become '?'. */
			clean = malloc(len);
			if (!clean)
				return;
			for (size_t i = 0; i < len; i++)
				clean[i] = (unsigned char)data[i] < 0x80 ? data[i] : '?';
		}
		g = xlm_event_begin("console");
		if (g && (xlm_gen_kv_int(g, "domid", domid) || xlm_gen_str(g, "data") ||
			  xlm_gen_strn(g, clean, len))) {
			yajl_gen_free(g);
			continue;
		}
		if (!xlm_gen_finish(g, &buf, &n))
			ctl__send(cl, buf, n);
	}
	free(clean);
}

void ctl__on_state(struct ctl_server *srv, uint32_t domid, enum hyp_dom_state st)
{
	log_debug("d%u: %s", domid, hyp_state_name(st));
	if (st == HYP_DOM_RUNNING)
		ctl__xs_domain_running(srv, domid);
	for (struct ctl_client *cl = srv->clients, *next; cl; cl = next) {
		next = cl->next;
		if (cl->attached && cl->attach_domid == domid)
			send_domain_event(cl, domid, hyp_state_name(st));
		if (cl->waiting && cl->wait_domid == domid &&
		    (st == HYP_DOM_SHUTDOWN || st == HYP_DOM_CRASHED))
			reply_waiter(cl);
	}
}

void ctl__on_gone(struct ctl_server *srv, uint32_t domid)
{
	log_info("d%u: destroyed", domid);
	ctl__record_remove(srv, domid);
	ctl__xs_domain_gone(srv, domid);
	ctl__snapshot_domain_gone(srv, domid);
	ctl__remus_domain_gone(srv, domid);
	for (struct ctl_client *cl = srv->clients, *next; cl; cl = next) {
		next = cl->next;
		if (cl->attached && cl->attach_domid == domid) {
			send_domain_event(cl, domid, "destroyed");
			cl->attached = false;
		}
		if (cl->waiting && cl->wait_domid == domid)
			reply_waiter(cl);
	}
}

/* ---- start and stop ----------------------------------------------------- */

static void destroy_all_domains(struct ctl_server *srv)
{
	uint32_t ids[1024];
	int n = hyp_domain_list(srv->hyp, ids, 1024);

	if (n < 0) {
		log_err("cannot list domains: %s", ferry_strerror(-n));
		return;
	}
	if (n)
		log_info("destroying %d domain%s", n, n == 1 ? "" : "s");
	for (int i = 0; i < n; i++) {
		struct hyp_dom_info info;
		int rc;

		if (hyp_domain_info(srv->hyp, ids[i], &info))
			continue;
		log_info("d%u: destroying '%s'", ids[i], info.name);
		rc = hyp_domain_destroy(srv->hyp, ids[i]);
		if (rc)
			log_err("d%u: destroy failed: %s", ids[i], ferry_strerror(-rc));
	}
}

/* Once every domain is saved (or the stop's time is up): the rest. */
static void stop_finish(struct ctl_server *srv)
{
	/* Every job ends now or within CTL_STOP_JOBS_MS (ctl-jobs.c): the
	 * saves are done, jobs were cancelled when the stop began. */
	ctl_jobs_stop(srv);
	destroy_all_domains(srv);
	/* Deliver the destroyed events to attached consoles before closing. */
	ctl__events_drain(srv);
	for (struct ctl_client *cl = srv->clients, *next; cl; cl = next) {
		next = cl->next;
		client_finish(cl);
	}
	ctl_migrate_stop(srv);
	ctl_xs_stop(srv);
	/*
	 * The signal handlers stay installed (a second SIGTERM, e.g. from
	 * timeout(1) signalling its process group, must not kill us halfway
	 * through); unreferenced, they let the loop end. ctl_server_fini()
	 * closes them.
	 */
	uv_unref((uv_handle_t *)&srv->sigterm);
	uv_unref((uv_handle_t *)&srv->sigint);
	ctl__events_close(srv);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct ctl_server *srv = s->data;

	if (srv->stopping)
		return;
	srv->stopping = true;
	log_info("caught %s, stopping: %s", signum == SIGTERM ? "SIGTERM" : "SIGINT",
		 srv->opts->on_stop_destroy ? "destroying every domain (--on-stop destroy)"
					    : "saving every domain (--on-stop save)");
	/* No new clients; connected ones are refused from now on. */
	uv_close((uv_handle_t *)&srv->listener, NULL);
	unlink(srv->sock_path);
	/* Saves need the loop (the xenstore): they run beside it. */
	ctl_lifetime_stop(srv, stop_finish);
}

void ctl_server_fini(struct ctl_server *srv)
{
	if (!srv->signals_started)
		return;
	uv_close((uv_handle_t *)&srv->sigterm, NULL);
	uv_close((uv_handle_t *)&srv->sigint, NULL);
	/* Closing restored the default action; we are nearly gone anyway. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	uv_run(srv->loop, UV_RUN_NOWAIT);
}

int ctl_server_start(struct ctl_server *srv)
{
	mode_t old;
	int rc;

	rc = uv_pipe_init(srv->loop, &srv->listener, 0);
	if (rc)
		return rc;
	srv->listener.data = srv;
	/* We hold the pidfile lock, so a socket left here is stale. */
	unlink(srv->sock_path);
	old = umask(0177);
	rc = uv_pipe_bind(&srv->listener, srv->sock_path);
	umask(old);
	if (!rc && chmod(srv->sock_path, 0600))
		rc = -errno;
	if (!rc)
		rc = uv_listen((uv_stream_t *)&srv->listener, 64, on_connection);
	if (rc) {
		log_err("control socket %s: %s", srv->sock_path, uv_strerror(rc));
		uv_close((uv_handle_t *)&srv->listener, NULL);
		return rc;
	}
	uv_signal_init(srv->loop, &srv->sigterm);
	uv_signal_init(srv->loop, &srv->sigint);
	srv->sigterm.data = srv->sigint.data = srv;
	uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
	uv_signal_start(&srv->sigint, on_signal, SIGINT);
	srv->signals_started = true;
	log_info("listening on %s", srv->sock_path);
	return 0;
}
