// SPDX-License-Identifier: MIT
/*
 * Periodic snapshots: the schedules (snapshot/schedule.h) kept in
 * STATE_DIR/snapshot-schedules, a libuv timer that takes each due
 * snapshot through ctl-snapshot.c's job, and the "snapshot-schedule" op.
 *
 * Once a second the timer looks for each schedule's domain by UUID. A
 * domain that is not here (destroyed, migrated away and fenced, still
 * being received or restored, shut down) leaves its schedule idle, stored;
 * it resumes when the domain comes back. A due run that meets another
 * operation holding the domain or a full disk is skipped and recorded
 * (last result, missed, a log line), never queued; after a snapshot the
 * oldest auto snapshots beyond keep are pruned on a job's thread.
 *
 * The schedule files are written on the loop thread: a small file, once
 * per run, and writes from one thread stay in order.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/compiler.h" /* before uv.h's <sys/param.h> */
#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "snapshot/schedule.h"
#include "snapshot/take.h"
#include "toolstack/config.h"

#define TICK_MS	 1000
#define DOMS_MAX 4096
#define ERR_MAX	 512

struct ss_entry {
	struct snap_sched s;
	struct ss_entry *next;
	struct ctl_server *srv;
	bool seen;	/* looked for once since ferryd started */
	bool present;	/* its domain was here at the last look */
	bool running;	/* a run (snapshot, then prune) is under way */
	bool removed;	/* turned off while running: freed when the run ends */
	uint32_t domid; /* the last domain found */
	int64_t started;
	char name[SNAP_NAME_MAX + 1]; /* the running snapshot's */
};

struct ctl_snapsched {
	char dir[4200];
	uv_timer_t timer;
	struct ss_entry *list;
};

struct ss_prune {
	struct ctl_job job;
	struct ss_entry *e;
	uint8_t uuid[16];
	uint32_t keep, pruned;
	int rc;
	char err[ERR_MAX];
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static struct ss_entry *find(struct ctl_snapsched *ss, const uint8_t uuid[16])
{
	for (struct ss_entry *e = ss->list; e; e = e->next)
		if (!e->removed && !memcmp(e->s.uuid, uuid, 16))
			return e;
	return NULL;
}

static void unlink_entry(struct ctl_snapsched *ss, struct ss_entry *e)
{
	for (struct ss_entry **p = &ss->list; *p; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			return;
		}
	}
}

/* Logs a failure: the schedule in memory goes on, the file is as before. */
static int save(struct ctl_server *srv, const struct ss_entry *e)
{
	char err[ERR_MAX], u[37];
	int rc = snap_sched_save(srv->snapsched->dir, &e->s, err, sizeof(err));

	if (rc) {
		xlm_uuid_format(e->s.uuid, u);
		log_err("snapshot schedule of %s: cannot store it: %s", u, err);
	}
	return rc;
}

/* ---- where the domain is ---------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/*
 * The domain a schedule snapshots: the one with uuid that runs here, not a
 * copy being received or restored, a fenced one (migrated away) or one
 * that has shut down. 0 with *domid, or -ENOENT.
 */
static int domain_of(struct ctl_server *srv, const uint32_t *ids, int n, const uint8_t uuid[16],
		     uint32_t *domid)
{
	struct hyp_dom_config cfg;
	struct hyp_dom_info info;

	for (int i = 0; i < n; i++) {
		if (hyp_domain_config(srv->hyp, ids[i], &cfg) || memcmp(cfg.uuid, uuid, 16) ||
		    hyp_domain_info(srv->hyp, ids[i], &info))
			continue;
		if (info.fenced || info.restoring || ends_with(info.name, CTL_INCOMING_SUFFIX) ||
		    info.state == HYP_DOM_SHUTDOWN || info.state == HYP_DOM_CRASHED ||
		    info.state == HYP_DOM_DYING)
			continue;
		*domid = ids[i];
		return 0;
	}
	return -ENOENT;
}

/* ---- runs ------------------------------------------------------------- */

/* Loop thread: records a run's end, and frees a removed entry. */
static void run_end(struct ss_entry *e)
{
	struct ctl_snapsched *ss = e->srv->snapsched;

	e->running = false;
	if (e->removed) {
		unlink_entry(ss, e);
		free(e);
	}
}

static void prune_run(struct ctl_job *job)
{
	struct ss_prune *p = container_of(job, struct ss_prune, job);
	struct snap_repo *r;

	p->rc = ctl__snap_lock(job->srv, &r, p->err, sizeof(p->err));
	if (p->rc)
		return;
	p->rc = snap_sched_prune(r, p->uuid, p->keep, &p->pruned, p->err, sizeof(p->err));
	ctl__snap_unlock(job->srv);
}

static void prune_done(struct ctl_job *job)
{
	struct ss_prune *p = container_of(job, struct ss_prune, job);
	struct ss_entry *e = p->e;

	if (p->rc)
		log_warn("d%u: snapshot schedule: pruning to the newest %u failed (%u pruned): %s",
			 e->domid, p->keep, p->pruned, p->err);
	else if (p->pruned)
		log_info("d%u: snapshot schedule: pruned %u auto snapshot%s (keeping the newest "
			 "%u)",
			 e->domid, p->pruned, p->pruned == 1 ? "" : "s", p->keep);
	run_end(e);
	free(p);
}

/* Loop thread: prunes beyond keep on a job's thread (the repository's
 * deletes sync files), then ends the run. */
static void prune_start(struct ss_entry *e)
{
	struct ss_prune *p = calloc(1, sizeof(*p));
	int rc = p ? 0 : -ENOMEM;

	if (p) {
		p->e = e;
		memcpy(p->uuid, e->s.uuid, 16);
		p->keep = e->s.keep;
		p->job.what = "snapshot schedule prune";
		p->job.run = prune_run;
		p->job.done = prune_done;
		rc = ctl__job_start(e->srv, &p->job);
	}
	if (rc) {
		log_warn("d%u: snapshot schedule: cannot prune now (%s); the next run will",
			 e->domid, ferry_strerror(rc));
		free(p);
		run_end(e);
	}
}

/* Skipped: another operation holds the domain, the disk is full, ferryd
 * stops. Anything else failed. */
static enum snap_sched_result classify(int rc)
{
	switch (rc) {
	case -EBUSY:
	case -ENOSPC:
	case -EDQUOT:
	case -ECANCELED:
	case -ESHUTDOWN: return SNAP_SCHED_SKIPPED;
	default: return SNAP_SCHED_FAILED;
	}
}

static void record_miss(struct ss_entry *e, int64_t started, int rc, const char *err)
{
	enum snap_sched_result res = classify(rc);
	char why[SNAP_SCHED_REASON_MAX];
	uint64_t extra;

	if (rc == -ENOSPC || rc == -EDQUOT)
		snprintf(why, sizeof(why), "disk full: %s", err[0] ? err : ferry_strerror(rc));
	else
		snprintf(why, sizeof(why), "%s", err[0] ? err : ferry_strerror(rc));
	extra = snap_sched_done(&e->s, started, now_s(), res, why);
	log_warn("d%u: scheduled snapshot %s (%" PRIu64 " missed so far): %s", e->domid,
		 res == SNAP_SCHED_SKIPPED ? "skipped" : "failed", e->s.missed, why);
	if (extra)
		log_warn("d%u: snapshot schedule: %" PRIu64 " more run%s fell due meanwhile: "
			 "missed, not queued",
			 e->domid, extra, extra == 1 ? "" : "s");
	save(e->srv, e);
}

/* Loop thread: ctl-snapshot.c's job has ended. */
static void run_done(void *opaque, int rc, const char *err, const struct snap_take_report *rep)
{
	struct ss_entry *e = opaque;
	uint64_t extra;

	if (rc || !rep) {
		if (!e->removed)
			record_miss(e, e->started, rc ? rc : -EIO, err ? err : "");
		run_end(e);
		return;
	}
	log_info("d%u: scheduled snapshot '%s' taken: %s%s%s, %.3f s, pause %.1f ms, "
		 "%" PRIu64 " KiB written",
		 e->domid, e->name, rep->incremental ? "incremental on '" : "full",
		 rep->incremental ? rep->parent : "", rep->incremental ? "'" : "", rep->seconds,
		 rep->pause_s * 1e3, rep->bytes >> 10);
	if (!e->removed) {
		extra = snap_sched_done(&e->s, e->started, now_s(), SNAP_SCHED_OK, e->name);
		if (extra)
			log_warn("d%u: snapshot schedule: %" PRIu64
				 " run%s fell due while this one "
				 "ran: missed, not queued",
				 e->domid, extra, extra == 1 ? "" : "s");
		save(e->srv, e);
	}
	/* Taken under its keep: pruned to it even if turned off meanwhile. */
	prune_start(e);
}

static void run(struct ss_entry *e, int64_t now)
{
	char err[ERR_MAX] = "";
	int rc = -EEXIST;

	/* A name is taken when a run was due twice in one second. */
	for (unsigned seq = 0; rc == -EEXIST && seq < 4; seq++) {
		rc = snap_sched_auto_name(now, seq, e->name, sizeof(e->name));
		if (rc)
			break;
		err[0] = 0;
		rc = ctl__snapshot_start(e->srv, e->domid, e->name, NULL, run_done, e, err,
					 sizeof(err));
	}
	if (rc) {
		record_miss(e, now, rc, err);
		return;
	}
	e->running = true;
	e->started = now;
}

/* ---- the timer -------------------------------------------------------- */

static void tick_one(struct ctl_server *srv, struct ss_entry *e, const uint32_t *ids, int n,
		     int64_t now)
{
	uint32_t domid;
	uint64_t missed;

	if (domain_of(srv, ids, n, e->s.uuid, &domid)) {
		if (e->present)
			log_info("d%u: snapshot schedule idle: the domain is not here (it is kept "
				 "and resumes when the domain comes back)",
				 e->domid);
		e->present = false;
		e->seen = true;
		return;
	}
	e->domid = domid;
	if (!e->seen) {
		missed = snap_sched_restart(&e->s, now);
		if (missed) {
			log_warn("d%u: snapshot schedule: %" PRIu64 " run%s fell due while ferryd "
				 "was down: missed; one is taken now",
				 domid, missed, missed == 1 ? "" : "s");
			save(srv, e);
		}
		log_info("d%u: snapshot schedule: the first snapshot since ferryd started is a "
			 "full one",
			 domid);
	} else if (!e->present) {
		snap_sched_resume(&e->s, now);
		log_info("d%u: snapshot schedule resumes (its first snapshot is a full one)",
			 domid);
	}
	e->seen = e->present = true;
	if (e->s.next_due <= now)
		run(e, now);
}

static void on_tick(uv_timer_t *t)
{
	struct ctl_server *srv = t->data;
	struct ctl_snapsched *ss = srv->snapsched;
	int64_t now = now_s();
	uint32_t *ids;
	int n;

	if (srv->stopping) {
		uv_timer_stop(t);
		return;
	}
	if (!ss->list)
		return;
	ids = malloc(DOMS_MAX * sizeof(*ids));
	n = ids ? hyp_domain_list(srv->hyp, ids, DOMS_MAX) : -ENOMEM;
	if (n < 0) {
		log_warn("snapshot schedules: cannot list domains: %s", ferry_strerror(n));
		free(ids);
		return;
	}
	for (struct ss_entry *e = ss->list; e; e = e->next)
		if (!e->running && !e->removed)
			tick_one(srv, e, ids, n, now);
	free(ids);
}

static void on_bad(void *opaque, const char *path, int rc, const char *msg)
{
	log_err("snapshot schedule %s not loaded (the file is left as it is): %s", path, msg);
}

int ctl_snapsched_start(struct ctl_server *srv)
{
	struct ctl_snapsched *ss = calloc(1, sizeof(*ss));
	struct snap_sched *v = NULL;
	char err[ERR_MAX];
	size_t n = 0;
	int rc;

	if (!ss)
		return -ENOMEM;
	snprintf(ss->dir, sizeof(ss->dir), "%s/snapshot-schedules", srv->opts->state_dir);
	rc = snap_sched_load_all(ss->dir, &v, &n, on_bad, NULL, err, sizeof(err));
	if (rc) {
		/* ferryd runs on; the schedules wait for the directory's fix. */
		log_err("snapshot schedules: %s", err);
		n = 0;
	}
	for (size_t i = n; i-- > 0;) {
		struct ss_entry *e = calloc(1, sizeof(*e));

		if (!e) {
			rc = -ENOMEM;
			break;
		}
		e->s = v[i];
		e->srv = srv;
		e->next = ss->list;
		ss->list = e;
	}
	free(v);
	if (rc == -ENOMEM)
		goto err;
	if (n)
		log_info("snapshot schedules: %zu loaded from %s", n, ss->dir);
	rc = uv_timer_init(srv->loop, &ss->timer);
	if (rc)
		goto err;
	ss->timer.data = srv;
	srv->snapsched = ss;
	uv_timer_start(&ss->timer, on_tick, TICK_MS, TICK_MS);
	/* The loop ends at stop whatever the schedules say. */
	uv_unref((uv_handle_t *)&ss->timer);
	return 0;
err:
	while (ss->list) {
		struct ss_entry *e = ss->list;

		ss->list = e->next;
		free(e);
	}
	free(ss);
	log_err("snapshot schedules: %s", ferry_strerror(rc));
	return rc;
}

static void on_timer_closed(uv_handle_t *h)
{
	free(container_of((uv_timer_t *)h, struct ctl_snapsched, timer));
}

void ctl_snapsched_fini(struct ctl_server *srv)
{
	struct ctl_snapsched *ss = srv->snapsched;

	if (!ss)
		return;
	srv->snapsched = NULL;
	while (ss->list) {
		struct ss_entry *e = ss->list;

		ss->list = e->next;
		free(e);
	}
	uv_close((uv_handle_t *)&ss->timer, on_timer_closed);
}

/* ---- setting a schedule ----------------------------------------------- */

/* Sets or changes uuid's schedule; logs, and returns -errno with err. */
static int set(struct ctl_server *srv, const uint8_t uuid[16], uint64_t every_s, uint32_t keep,
	       struct ss_entry **out, char *err, size_t errlen)
{
	struct ctl_snapsched *ss = srv->snapsched;
	struct ss_entry *e = find(ss, uuid);
	struct snap_sched old;
	bool fresh = !e;
	int rc;

	if (fresh) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->srv = srv;
		/* Set now: nothing was missed, and a present domain runs at
		 * once (the tick says so if it is not here). */
		e->seen = e->present = true;
		rc = snap_sched_init(&e->s, uuid, every_s, keep, now_s(), err, errlen);
	} else {
		old = e->s;
		rc = snap_sched_change(&e->s, every_s, keep, now_s(), err, errlen);
	}
	if (!rc) {
		rc = snap_sched_save(ss->dir, &e->s, err, errlen);
		if (rc && !fresh)
			e->s = old;
	}
	if (rc) {
		if (fresh)
			free(e);
		return rc;
	}
	if (fresh) {
		e->next = ss->list;
		ss->list = e;
	}
	*out = e;
	return 0;
}

void ctl__snapsched_created(struct ctl_server *srv, uint32_t domid, const uint8_t uuid[16],
			    const struct xlm_cfg_snapshot *c)
{
	char err[ERR_MAX], every[32];
	struct ss_entry *e;

	if (!c->every_s || !srv->snapsched)
		return;
	snap_sched_format_interval(c->every_s, every, sizeof(every));
	if (set(srv, uuid, c->every_s, c->keep, &e, err, sizeof(err)))
		log_err("d%u: cannot set the snapshot schedule of its config (every %s, keep "
			"%u): %s",
			domid, every, c->keep, err);
	else
		log_info("d%u: snapshot schedule from its config: every %s, keep %u", domid, every,
			 c->keep);
}

/* ---- the op ----------------------------------------------------------- */

#define REPLY_ERR(cl, req, err, ...)                                                               \
	ctl__reply_error(cl, (req)->id, (req)->has_id, err, __VA_ARGS__)

static int gen_entry(yajl_gen g, struct ctl_server *srv, const struct ss_entry *e,
		     const uint32_t *ids, int n)
{
	const struct snap_sched *s = &e->s;
	struct hyp_dom_info info;
	char u[37], every[32];
	uint32_t domid = 0;
	bool here = !domain_of(srv, ids, n, s->uuid, &domid) &&
		    !hyp_domain_info(srv->hyp, domid, &info);
	const char *state = e->running ? "running" : here ? "active" : "idle";

	xlm_uuid_format(s->uuid, u);
	snap_sched_format_interval(s->every_s, every, sizeof(every));
	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "uuid", u) ?:
	       xlm_gen_kv_str(g, "name", here ? info.name : "") ?:
	       xlm_gen_kv_int(g, "domid", here ? (long long)domid : -1) ?:
	       xlm_gen_kv_str(g, "state", state) ?: xlm_gen_kv_str(g, "every", every) ?:
	       xlm_gen_kv_int(g, "every_s", (long long)s->every_s) ?:
	       xlm_gen_kv_int(g, "keep", s->keep) ?:
	       xlm_gen_kv_int(g, "last_run", s->last_run) ?:
	       xlm_gen_kv_str(g, "last_result", snap_sched_result_name(s->last_result)) ?:
	       xlm_gen_kv_str(g, "last_reason", s->last_reason) ?:
	       xlm_gen_kv_str(g, "last_name", s->last_name) ?:
	       xlm_gen_kv_int(g, "next_due", s->next_due) ?:
	       xlm_gen_kv_int(g, "runs", (long long)s->runs) ?:
	       xlm_gen_kv_int(g, "missed", (long long)s->missed) ?: xlm_gen_map_close(g);
}

/* Replies with the schedules (only of uuid, when not NULL) as an array. */
static void reply_list(struct ctl_client *cl, const struct xlm_req *req, const uint8_t *uuid)
{
	struct ctl_server *srv = cl->srv;
	uint32_t *ids = malloc(DOMS_MAX * sizeof(*ids));
	int n = ids ? hyp_domain_list(srv->hyp, ids, DOMS_MAX) : -ENOMEM;
	yajl_gen g;
	char *buf;
	size_t len;
	int rc;

	if (n < 0) {
		REPLY_ERR(cl, req, n, "cannot list domains: %s", ferry_strerror(n));
		free(ids);
		return;
	}
	g = xlm_reply_begin(req->id, req->has_id);
	rc = g ? xlm_gen_array_open(g) : -ENOMEM;
	for (struct ss_entry *e = srv->snapsched->list; !rc && e; e = e->next)
		if (!e->removed && (!uuid || !memcmp(uuid, e->s.uuid, 16)))
			rc = gen_entry(g, srv, e, ids, n);
	free(ids);
	rc = rc ?: xlm_gen_array_close(g);
	if (!rc)
		rc = xlm_gen_finish(g, &buf, &len); /* frees g */
	else if (g)
		yajl_gen_free(g);
	if (!rc)
		ctl__send(cl, buf, len);
	else
		REPLY_ERR(cl, req, rc, "cannot encode the reply: %s", ferry_strerror(rc));
}

/* args.domain: a domain's name or id, or a UUID (a schedule whose domain is
 * not here). Replies and returns -errno on failure. */
static int uuid_arg(struct ctl_client *cl, const struct xlm_req *req, const char *dom,
		    uint8_t uuid[16])
{
	struct hyp_dom_config cfg;
	uint32_t domid;
	int rc;

	if (!xlm_uuid_parse(dom, uuid))
		return 0;
	rc = hyp_domain_lookup(cl->srv->hyp, dom, &domid)
		     ?: hyp_domain_config(cl->srv->hyp, domid, &cfg);
	if (rc) {
		REPLY_ERR(cl, req, rc,
			  rc == -ENOENT ? "domain '%s' does not exist (a schedule whose domain is "
					  "not here is named by its UUID)"
					: "cannot look up domain '%s'",
			  dom);
		return rc;
	}
	memcpy(uuid, cfg.uuid, 16);
	return 0;
}

/*
 * {"op": "snapshot-schedule", "args": {domain?, every?, keep?, off?}}:
 * every and/or keep set or change the domain's schedule (a new one needs
 * both), off removes it (its snapshots stay), neither lists the schedules
 * (the domain's, or all). Replies with the schedules as an array ([] after
 * off).
 */
void ctl__op_snapshot_schedule(struct ctl_client *cl, const struct xlm_req *req)
{
	struct ctl_snapsched *ss = cl->srv->snapsched;
	const char *dom = xlm_args_str(req, "domain"), *every = xlm_args_str(req, "every");
	const char *keep = xlm_args_str(req, "keep");
	bool off = xlm_args_bool(req, "off");
	char err[ERR_MAX], u[37];
	uint64_t every_s = 0, k = 0;
	struct ss_entry *e;
	uint8_t uuid[16];
	char *end;
	int rc;

	if (!ss) {
		REPLY_ERR(cl, req, -ENODEV, "snapshot schedules are not available (see the log)");
		return;
	}
	if (!dom) {
		if (every || keep || off)
			REPLY_ERR(cl, req, -EINVAL, "snapshot-schedule: expected a domain");
		else
			reply_list(cl, req, NULL);
		return;
	}
	if (uuid_arg(cl, req, dom, uuid))
		return;
	e = find(ss, uuid);
	xlm_uuid_format(uuid, u);
	if (off) {
		if (every || keep) {
			REPLY_ERR(cl, req, -EINVAL,
				  "snapshot-schedule: --off takes no --every "
				  "or --keep");
			return;
		}
		if (!e) {
			REPLY_ERR(cl, req, -ENOENT, "domain '%s' has no snapshot schedule", dom);
			return;
		}
		rc = snap_sched_remove(ss->dir, uuid, err, sizeof(err));
		if (rc && rc != -ENOENT) {
			REPLY_ERR(cl, req, rc, "cannot turn the schedule off: %s", err);
			return;
		}
		log_info("snapshot schedule of '%s' (%s) off; its snapshots are kept", dom, u);
		if (e->running) {
			e->removed = true; /* freed when its run ends */
		} else {
			unlink_entry(ss, e);
			free(e);
		}
		reply_list(cl, req, uuid);
		return;
	}
	if (!every && !keep) {
		reply_list(cl, req, uuid);
		return;
	}
	if (every && snap_sched_parse_interval(every, &every_s, err, sizeof(err))) {
		REPLY_ERR(cl, req, -EINVAL, "%s", err);
		return;
	}
	if (keep) {
		k = strtoull(keep, &end, 10);
		if (!*keep || *end || *keep == '-' || !k || k > SNAP_SCHED_KEEP_MAX) {
			REPLY_ERR(cl, req, -EINVAL, "keep '%s': expected 1 to %u snapshots", keep,
				  SNAP_SCHED_KEEP_MAX);
			return;
		}
	}
	if (!e && (!every || !keep)) {
		REPLY_ERR(cl, req, -EINVAL,
			  "domain '%s' has no snapshot schedule yet: a new one needs both "
			  "--every and --keep",
			  dom);
		return;
	}
	rc = set(cl->srv, uuid, every ? every_s : e->s.every_s, keep ? (uint32_t)k : e->s.keep, &e,
		 err, sizeof(err));
	if (rc) {
		REPLY_ERR(cl, req, rc, "%s", err);
		return;
	}
	snap_sched_format_interval(e->s.every_s, err, sizeof(err));
	log_info("snapshot schedule of '%s' (%s): every %s, keep %u", dom, u, err, e->s.keep);
	reply_list(cl, req, uuid);
}
