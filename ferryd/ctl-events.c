// SPDX-License-Identifier: MIT
/*
 * The bridge from hyp's event callbacks, which run on vCPU threads (or any
 * thread), to the loop: pending events wait in a list (so console bytes can
 * join a pending entry), and one call through ctl-jobs.c's queue to the
 * loop (ctl__loop_call, the one way threads reach it) delivers them.
 *
 * Console bytes are coalesced per domain: new bytes join the newest pending
 * console entry of that domain unless a state change of that domain was
 * queued after it, so each domain's output and state changes keep their
 * order. At most CTL_CONSOLE_PENDING_MAX bytes wait per entry; beyond that
 * the oldest are dropped (the full output is in the console log).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"

enum ctl_event_type { EV_CONSOLE, EV_STATE, EV_GONE };

struct ctl_event {
	struct ctl_event *next;
	enum ctl_event_type type;
	uint32_t domid;
	enum hyp_dom_state state;
	char *data; /* EV_CONSOLE */
	size_t len, cap;
};

static void event_free(struct ctl_event *e)
{
	free(e->data);
	free(e);
}

/* Caller holds ev_lock: asks the loop to deliver what is pending, unless
 * it was asked already. Before the jobs' queue exists (no domain yet) or
 * after it closed (the stop drains by hand), the events wait. */
static void post_locked(struct ctl_server *srv)
{
	if (srv->ev_posted)
		return;
	srv->ev_posted = true;
	if (ctl__loop_call(srv, &srv->ev_call))
		srv->ev_posted = false;
}

/* Caller holds ev_lock. */
static void queue_push(struct ctl_server *srv, struct ctl_event *e)
{
	if (srv->ev_tail)
		srv->ev_tail->next = e;
	else
		srv->ev_head = e;
	srv->ev_tail = e;
	post_locked(srv);
}

/* The newest console entry of domid not followed by a state event of domid. */
static struct ctl_event *console_entry(struct ctl_server *srv, uint32_t domid)
{
	struct ctl_event *found = NULL;

	for (struct ctl_event *e = srv->ev_head; e; e = e->next) {
		if (e->domid != domid)
			continue;
		found = e->type == EV_CONSOLE ? e : NULL;
	}
	return found;
}

static int console_append(struct ctl_event *e, const char *buf, size_t len)
{
	if (len > CTL_CONSOLE_PENDING_MAX) {
		buf += len - CTL_CONSOLE_PENDING_MAX;
		len = CTL_CONSOLE_PENDING_MAX;
	}
	if (e->len + len > CTL_CONSOLE_PENDING_MAX) {
		size_t drop = e->len + len - CTL_CONSOLE_PENDING_MAX;

		memmove(e->data, e->data + drop, e->len - drop);
		e->len -= drop;
	}
	if (e->len + len > e->cap) {
		size_t cap = e->cap ? e->cap : 256;
		char *d;

		while (cap < e->len + len)
			cap *= 2;
		d = realloc(e->data, cap);
		if (!d)
			return -ENOMEM;
		e->data = d;
		e->cap = cap;
	}
	memcpy(e->data + e->len, buf, len);
	e->len += len;
	return 0;
}

static void on_console(void *opaque, uint32_t domid, const char *buf, size_t len)
{
	struct ctl_server *srv = opaque;
	struct ctl_event *e;

	pthread_mutex_lock(&srv->ev_lock);
	if (srv->ev_closed || !len)
		goto out;
	e = console_entry(srv, domid);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			goto out;
		e->type = EV_CONSOLE;
		e->domid = domid;
		queue_push(srv, e);
	}
	console_append(e, buf, len);
	post_locked(srv);
out:
	pthread_mutex_unlock(&srv->ev_lock);
}

static void push_simple(struct ctl_server *srv, enum ctl_event_type type, uint32_t domid,
			enum hyp_dom_state st)
{
	struct ctl_event *e;

	pthread_mutex_lock(&srv->ev_lock);
	if (!srv->ev_closed) {
		e = calloc(1, sizeof(*e));
		if (e) {
			e->type = type;
			e->domid = domid;
			e->state = st;
			queue_push(srv, e);
		} else {
			log_err("d%u: out of memory queueing an event", domid);
		}
	}
	pthread_mutex_unlock(&srv->ev_lock);
}

static void on_state(void *opaque, uint32_t domid, enum hyp_dom_state st)
{
	push_simple(opaque, EV_STATE, domid, st);
}

static void on_gone(void *opaque, uint32_t domid)
{
	push_simple(opaque, EV_GONE, domid, HYP_DOM_DYING);
}

/* --run-log: one line per start or stop, written at once from the thread
 * that made it (O_APPEND: lines from threads do not mix); the times, not
 * the order of the lines, say what came first. */
static void on_run(void *opaque, uint32_t domid, bool running, uint64_t ns)
{
	struct ctl_server *srv = opaque;
	char line[64];
	int n = snprintf(line, sizeof(line), "%" PRIu64 " d%" PRIu32 " %s\n", ns, domid,
			 running ? "run" : "stop");

	if (write(srv->run_log_fd, line, (size_t)n) != n)
		log_warn("d%u: cannot write the run log: %s", domid, ferry_strerror(errno));
}

void ctl__events_drain(struct ctl_server *srv)
{
	struct ctl_event *e, *next;

	pthread_mutex_lock(&srv->ev_lock);
	e = srv->ev_head;
	srv->ev_head = srv->ev_tail = NULL;
	pthread_mutex_unlock(&srv->ev_lock);

	for (; e; e = next) {
		next = e->next;
		switch (e->type) {
		case EV_CONSOLE:
			ctl__on_console(srv, e->domid, e->data, e->len);
			break;
		case EV_STATE:
			ctl__on_state(srv, e->domid, e->state);
			break;
		case EV_GONE:
			ctl__on_gone(srv, e->domid);
			break;
		}
		event_free(e);
	}
}

/* On the loop: ev_call's turn in the queue. Only here is ev_posted
 * cleared, so ev_call is never queued twice. */
static void deliver_call(struct ctl_call *c)
{
	struct ctl_server *srv = container_of(c, struct ctl_server, ev_call);

	pthread_mutex_lock(&srv->ev_lock);
	srv->ev_posted = false;
	pthread_mutex_unlock(&srv->ev_lock);
	ctl__events_drain(srv);
}

int ctl__events_init(struct ctl_server *srv, struct hyp_events *ev)
{
	pthread_mutex_init(&srv->ev_lock, NULL);
	srv->ev_call.fn = deliver_call;
	ev->console = on_console;
	ev->state = on_state;
	ev->gone = on_gone;
	ev->run = srv->run_log_fd >= 0 ? on_run : NULL;
	ev->opaque = srv;
	return 0;
}

void ctl__events_close(struct ctl_server *srv)
{
	pthread_mutex_lock(&srv->ev_lock);
	srv->ev_closed = true;
	pthread_mutex_unlock(&srv->ev_lock);
}

void ctl__events_fini(struct ctl_server *srv)
{
	struct ctl_event *e, *next;

	for (e = srv->ev_head; e; e = next) {
		next = e->next;
		event_free(e);
	}
	srv->ev_head = srv->ev_tail = NULL;
	pthread_mutex_destroy(&srv->ev_lock);
}
