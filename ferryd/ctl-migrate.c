// SPDX-License-Identifier: MIT
/*
 * Live migration in ferryd: the wiring (docs/migration.md has the protocol
 * and the failure states). The handshake's halves are libraries:
 * migrate/handshake.h (the source's) and restore/receive.h (the target's).
 *
 * Source side: the "migrate" op is a job on its own thread (ctl-jobs.c)
 * that runs mig_hs_migrate with progress forwarded to the requesting
 * client as "migrate-progress" events; its cancel token is the job's
 * (migrate-cancel, the client going away, SIGTERM) and the job's point of
 * no return is go. A source left fenced is recorded here (mig->fences)
 * for migrate-resolve, which runs mig_hs_resolve as a job.
 *
 * Target side: a listener on the loop (uv_poll on strm_tcp_listen's fd);
 * each accepted connection gets a receiver job (no client) that runs
 * rst_rcv_serve with the job's token (ctl_migrate_cancel_all).
 *
 * Threads: progress events go to the loop, which alone writes to control
 * clients, through ctl__loop_call. mig->lock guards the job, fence and
 * receiver lists.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "migrate/handshake.h"
#include "restore/receive.h"
#include "stream/net.h"
#include "toolstack/config.h"

struct mig_ev {
	struct ctl_call call;
	struct mig_job *job;
	char *line;
	size_t len;
};

struct fence_rec {
	struct fence_rec *next;
	uint32_t domid;
	char name[HYP_NAME_MAX]; /* its name before it was fenced */
	char host[256];
	bool insecure;
};

struct rcv_entry {
	struct rcv_entry *next;
	struct ctl_job *job;
};

struct ctl_mig {
	struct ctl_server *srv;
	struct strm_tls *tls;
	int net_ms; /* --net-timeout */
	int listen_fd;
	uv_poll_t poll;
	bool polling;
	pthread_mutex_t lock;
	struct mig_job *jobs;
	struct fence_rec *fences;
	struct rcv_entry *rcvs;
	struct rst_rcv_set *rcv_set;
	bool stopping;
};

enum job_kind { JOB_MIGRATE, JOB_QUERY };

struct mig_job {
	struct ctl_job job;
	struct mig_job *next;
	enum job_kind kind;
	long long id;
	bool has_id;
	struct ctl_server *srv;
	struct ctl_mig *mig;
	struct hyp *h;
	uint32_t domid;
	char name[HYP_NAME_MAX];
	char away[HYP_NAME_MAX]; /* JOB_QUERY: the fenced copy's name */
	char host[256];
	bool insecure;
	struct mig_live_opts o;
	char what[HYP_NAME_MAX + 64]; /* job.what */
	struct mig_hs_result res;
	bool claimed; /* holds the domain (HYP_OP_MIGRATE) */
};

/* ---- progress events (worker -> loop) ----------------------------------- */

/* Loop thread: one progress line to the job's client. */
static void send_line(struct ctl_call *c)
{
	struct mig_ev *e = container_of(c, struct mig_ev, call);
	struct ctl_client *cl = e->job->job.cl;

	if (!cl->closing && !cl->dead)
		ctl__send(cl, e->line, e->len);
	else
		free(e->line);
	free(e);
}

/* The job's completion follows the same queue, so its lines arrive first. */
static void push_line(struct mig_job *j, yajl_gen g)
{
	struct mig_ev *e;
	char *buf;
	size_t len;

	if (xlm_gen_finish(g, &buf, &len))
		return;
	e = calloc(1, sizeof(*e));
	if (!e) {
		free(buf);
		return;
	}
	e->job = j;
	e->line = buf;
	e->len = len;
	e->call.fn = send_line;
	if (ctl__loop_call(j->srv, &e->call)) {
		free(buf);
		free(e);
	}
}

static void on_progress(void *opaque, const struct mig_progress *p)
{
	struct mig_job *j = opaque;
	yajl_gen g = xlm_event_begin("migrate-progress");

	if (!g)
		return;
	if (xlm_gen_kv_str(g, "domain", j->name) ||
	    xlm_gen_kv_str(g, "phase", p->phase ? p->phase : "round") ||
	    xlm_gen_kv_int(g, "round", p->round) ||
	    xlm_gen_kv_int(g, "pages_left", (long long)p->pages_left) ||
	    xlm_gen_kv_double(g, "dirty_rate", p->dirty_rate) ||
	    xlm_gen_kv_double(g, "dirty_mib_s", p->dirty_rate * 4096 / (1 << 20)) ||
	    xlm_gen_kv_double(g, "bandwidth", p->bandwidth) ||
	    xlm_gen_kv_double(g, "bandwidth_mib_s", p->bandwidth / (1 << 20)) ||
	    xlm_gen_kv_double(g, "predicted_downtime_ms", p->predicted_downtime_ms) ||
	    xlm_gen_kv_int(g, "throttle_pct", p->throttle_pct) ||
	    xlm_gen_kv_int(g, "bytes_sent", (long long)p->bytes_sent)) {
		yajl_gen_free(g);
		return;
	}
	push_line(j, g);
}

/* A handshake step, for the client's progress line (mig_hs_ops.phase). */
static void on_phase(void *opaque, const char *phase)
{
	struct mig_job *j = opaque;
	yajl_gen g = xlm_event_begin("migrate-progress");

	if (!g)
		return;
	if (xlm_gen_kv_str(g, "domain", j->name) || xlm_gen_kv_str(g, "phase", phase)) {
		yajl_gen_free(g);
		return;
	}
	push_line(j, g);
}

/* ---- the source's jobs (their own threads) -------------------------------- */

static int on_no_return(void *opaque)
{
	struct mig_job *j = opaque;

	return ctl__job_no_return(&j->job);
}

/* The conf of j's calls; ops (the caller's, with opaque j) outlives them. */
static struct mig_hs_conf hs_conf(struct mig_job *j, const struct mig_hs_ops *ops)
{
	return (struct mig_hs_conf){ .h = j->h, .domid = j->domid, .name = j->name,
				     .host = j->host,
				     .tls = j->insecure ? NULL : j->mig->tls,
				     .net_ms = j->mig->net_ms, .cancel = j->job.cancel,
				     .ops = ops };
}

static void do_migrate(struct ctl_job *job)
{
	struct mig_job *j = container_of(job, struct mig_job, job);
	struct mig_hs_ops ops = { .phase = on_phase, .no_return = on_no_return, .opaque = j };
	struct mig_hs_conf c = hs_conf(j, &ops);
	struct hyp_dom_config cfg;
	char *json = NULL;
	int rc;

	rc = hyp_domain_config(j->h, j->domid, &cfg) ?: xlm_cfg_to_json(&cfg, &json);
	if (rc) {
		j->res.rc = rc;
		snprintf(j->res.err, sizeof(j->res.err), "domain '%s': cannot encode its "
			 "config: %s", j->name, ferry_strerror(rc));
		return;
	}
	j->o.config_json = json;
	j->o.xenstore = (struct mig_xenstore){ ctl__xs_stream_read, j->mig->srv };
	j->o.cancel = &j->job.cancelled;
	j->o.progress = on_progress;
	j->o.opaque = j;
	mig_hs_migrate(&c, &j->o, &j->res);
	free(json);
	j->o.config_json = NULL;
	/* Give the thread's malloc arena back: a daemon that migrates all
	 * day must not keep every worker's high-water mark. */
	malloc_trim(0);
}

static void do_query(struct ctl_job *job)
{
	struct mig_job *j = container_of(job, struct mig_job, job);
	struct mig_hs_ops ops = { .phase = on_phase, .opaque = j };
	struct mig_hs_conf c = hs_conf(j, &ops);

	/* Bounded by the query phase; only SIGTERM cuts it short. */
	ctl__job_no_return(job);
	mig_hs_resolve(&c, j->away, &j->res);
}

static void fence_put(struct ctl_mig *mig, struct fence_rec *f)
{
	pthread_mutex_lock(&mig->lock);
	f->next = mig->fences;
	mig->fences = f;
	pthread_mutex_unlock(&mig->lock);
}

static void fence_record(struct ctl_mig *mig, const struct mig_job *j)
{
	struct fence_rec *f = calloc(1, sizeof(*f));

	if (!f)
		return;
	f->domid = j->domid;
	snprintf(f->name, sizeof(f->name), "%s", j->name);
	snprintf(f->host, sizeof(f->host), "%s", j->host);
	f->insecure = j->insecure;
	fence_put(mig, f);
}

/* Removes and returns the record of domid (caller frees), or NULL. */
static struct fence_rec *fence_take(struct ctl_mig *mig, uint32_t domid)
{
	struct fence_rec **pp, *f = NULL;

	pthread_mutex_lock(&mig->lock);
	for (pp = &mig->fences; *pp; pp = &(*pp)->next) {
		if ((*pp)->domid == domid) {
			f = *pp;
			*pp = f->next;
			break;
		}
	}
	pthread_mutex_unlock(&mig->lock);
	return f;
}

/* Per round as pages_per_round: the codec most of its frames went in
 * (none when most went raw) and the share sent compressed. */
static int gen_codec_rounds(yajl_gen g, const struct mig_report *rep)
{
	unsigned n = rep->rounds < MIG_MAX_ROUNDS_LIMIT ? rep->rounds : MIG_MAX_ROUNDS_LIMIT;
	int rc = xlm_gen_str(g, "codec_per_round") ?: xlm_gen_array_open(g);

	for (unsigned i = 0; !rc && i <= n; i++) {
		const uint32_t *f = rep->frames_per_round[i];
		enum strm_codec top = STRM_CODEC_NONE;

		for (unsigned c = 1; c <= STRM_CODEC_ZSTD; c++)
			if (f[c] > f[top])
				top = (enum strm_codec)c;
		rc = xlm_gen_str(g, strm_codec_name(top));
	}
	rc = rc ?: xlm_gen_array_close(g) ?: xlm_gen_str(g, "compressed_pct_per_round") ?:
	     xlm_gen_array_open(g);
	for (unsigned i = 0; !rc && i <= n; i++) {
		const uint32_t *f = rep->frames_per_round[i];
		uint32_t all = f[STRM_CODEC_NONE] + f[STRM_CODEC_LZ4] + f[STRM_CODEC_ZSTD];
		double pct = all ? 100.0 * (all - f[STRM_CODEC_NONE]) / all : 0;

		rc = yajl_gen_double(g, pct) ? -EINVAL : 0;
	}
	return rc ?: xlm_gen_array_close(g);
}

static int gen_report(yajl_gen g, const void *arg)
{
	const struct mig_job *j = arg;
	const struct mig_hs_result *r = &j->res;
	int rc = xlm_gen_map_open(g) ?:
		 xlm_gen_kv_int(g, "domid", j->domid) ?:
		 xlm_gen_kv_str(g, "domain", j->name) ?:
		 xlm_gen_kv_str(g, "host", j->host) ?:
		 xlm_gen_kv_str(g, "outcome", r->outcome ? r->outcome : "migrated") ?:
		 xlm_gen_kv_bool(g, "resolved_by_query", r->resolved_by_query);

	if (rc || j->kind != JOB_MIGRATE)
		return rc ?: xlm_gen_map_close(g);
	rc = xlm_gen_kv_double(g, "total_s", r->rep.total_s) ?:
	     xlm_gen_kv_double(g, "downtime_ms", r->downtime_ms) ?:
	     xlm_gen_kv_double(g, "predicted_downtime_ms", r->rep.predicted_downtime_ms) ?:
	     xlm_gen_kv_int(g, "bytes_sent", (long long)r->rep.bytes_sent) ?:
	     xlm_gen_kv_int(g, "rounds", r->rep.rounds) ?:
	     xlm_gen_str(g, "pages_per_round") ?: xlm_gen_array_open(g);
	/* Live rounds 0..rounds-1, then stop-and-copy. */
	for (unsigned i = 0; !rc && i <= r->rep.rounds && i <= MIG_MAX_ROUNDS_LIMIT; i++)
		rc = yajl_gen_integer(g, (long long)r->rep.pages_per_round[i]) ? -EINVAL : 0;
	rc = rc ?: xlm_gen_array_close(g) ?:
	     xlm_gen_kv_int(g, "throttle_pct", r->rep.throttle_pct) ?:
	     xlm_gen_kv_int(g, "zero_pages", (long long)r->rep.zero_pages) ?:
	     xlm_gen_kv_str(g, "decision", r->rep.decision ? r->rep.decision : "") ?:
	     xlm_gen_kv_str(g, "codec", r->rep.codec ? r->rep.codec : "none") ?:
	     xlm_gen_kv_bool(g, "codec_auto", r->rep.codec_auto) ?:
	     xlm_gen_kv_int(g, "channels", j->o.nchannels ? j->o.nchannels : 1) ?:
	     gen_codec_rounds(g, &r->rep);
	return rc ?: xlm_gen_map_close(g);
}

static void job_unlink(struct mig_job *j)
{
	struct mig_job **pp;

	pthread_mutex_lock(&j->mig->lock);
	for (pp = &j->mig->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	pthread_mutex_unlock(&j->mig->lock);
}

/* Loop thread; the job's progress lines went out before (ctl__loop_call). */
/* Loop thread; the job's progress lines went out before (ctl__loop_call). */
static void job_done(struct ctl_job *job)
{
	struct mig_job *j = container_of(job, struct mig_job, job);
	struct ctl_job_reply r = { .id = j->id, .has_id = j->has_id, .domid = j->domid,
				   .claim = j->claimed ? HYP_OP_MIGRATE : HYP_OP_NONE,
				   .rc = j->res.rc, .err = j->res.err, .gen = gen_report,
				   .arg = j };

	job_unlink(j);
	if (j->res.fenced)
		fence_record(j->mig, j);
	ctl__job_reply(job, &r);
	free(j);
}

static struct mig_job *job_new(struct ctl_client *cl, const struct xlm_req *req,
			       enum job_kind kind)
{
	struct mig_job *j = calloc(1, sizeof(*j));

	if (!j) {
		ctl__reply_error(cl, req->id, req->has_id, -ENOMEM, "out of memory");
		return NULL;
	}
	j->kind = kind;
	j->job.cl = cl;
	j->job.what = j->what;
	j->job.done = job_done;
	j->id = req->id;
	j->has_id = req->has_id;
	j->srv = cl->srv;
	j->mig = cl->srv->mig;
	j->h = cl->srv->hyp;
	return j;
}

/* Loop thread. On failure replies, frees j and returns -errno. */
static int job_start(struct mig_job *j, const struct xlm_req *req, void (*fn)(struct ctl_job *job))
{
	int rc;

	snprintf(j->what, sizeof(j->what), "%s of '%s'",
		 j->kind == JOB_MIGRATE ? "migration" : "migrate-resolve", j->name);
	j->job.run = fn;
	pthread_mutex_lock(&j->mig->lock);
	j->next = j->mig->jobs;
	j->mig->jobs = j;
	pthread_mutex_unlock(&j->mig->lock);
	rc = ctl__job_start(j->srv, &j->job);
	if (rc) {
		job_unlink(j);
		ctl__reply_error(j->job.cl, req->id, req->has_id, rc, "cannot start the %s: %s",
				 j->what, ferry_strerror(rc));
		if (j->claimed)
			hyp_domain_release(j->h, j->domid, HYP_OP_MIGRATE);
		free(j);
	}
	return rc;
}

/* Under mig->lock. */
static struct mig_job *job_find_locked(struct ctl_mig *mig, uint32_t domid)
{
	for (struct mig_job *j = mig->jobs; j; j = j->next)
		if (j->domid == domid)
			return j;
	return NULL;
}

/* ---- ops ---------------------------------------------------------------- */

#define REPLY_ERR(cl, req, err, ...) \
	ctl__reply_error(cl, (req)->id, (req)->has_id, err, __VA_ARGS__)

/* Parses the tuning args into j->o; replies and returns -EINVAL if bad. */
static int migrate_opts(struct ctl_client *cl, const struct xlm_req *req, struct mig_job *j)
{
	const char *nc = xlm_args_str(req, "no_converge"), *comp = xlm_args_str(req, "compress");
	long long v;

	j->o.downtime_ms = MIG_DEFAULT_DOWNTIME_MS;
	j->o.max_rounds = MIG_DEFAULT_MAX_ROUNDS;
	j->o.no_converge = MIG_NC_THROTTLE;
	if (xlm_args_int(req, "downtime_ms", &v)) {
		if (v < 1 || v > 600000) {
			REPLY_ERR(cl, req, -EINVAL, "downtime_ms: expected 1 to 600000");
			return -EINVAL;
		}
		j->o.downtime_ms = (uint32_t)v;
	}
	if (xlm_args_int(req, "max_rounds", &v)) {
		if (v < 1 || v > MIG_MAX_ROUNDS_LIMIT) {
			REPLY_ERR(cl, req, -EINVAL, "max_rounds: expected 1 to %d",
				  MIG_MAX_ROUNDS_LIMIT);
			return -EINVAL;
		}
		j->o.max_rounds = (unsigned)v;
	}
	if (xlm_args_int(req, "channels", &v)) {
		if (v < 0 || v > STRM_HS_CHANNELS_MAX) {
			REPLY_ERR(cl, req, -EINVAL, "channels: expected 0 to %d",
				  STRM_HS_CHANNELS_MAX);
			return -EINVAL;
		}
		/* 1 is today's single connection: pages on the main stream. */
		j->o.nchannels = v > 1 ? (unsigned)v : 0;
	}
	if (xlm_args_int(req, "bandwidth", &v)) {
		if (v < 0) {
			REPLY_ERR(cl, req, -EINVAL, "bandwidth: expected bytes/s >= 0");
			return -EINVAL;
		}
		j->o.bandwidth = (uint64_t)v;
	}
	if (nc) {
		if (!strcmp(nc, "throttle")) {
			j->o.no_converge = MIG_NC_THROTTLE;
		} else if (!strcmp(nc, "abort")) {
			j->o.no_converge = MIG_NC_ABORT;
		} else if (!strcmp(nc, "force")) {
			j->o.no_converge = MIG_NC_FORCE;
		} else {
			REPLY_ERR(cl, req, -EINVAL, "no_converge: expected throttle, abort or "
				  "force, not '%s'", nc);
			return -EINVAL;
		}
	}
	if (comp && !strcmp(comp, "auto")) {
		j->o.codec = STRM_CODEC_LZ4;
		j->o.codec_auto = true;
	} else if (comp && strm_codec_parse(comp, &j->o.codec)) {
		REPLY_ERR(cl, req, -EINVAL, "compress: expected none, lz4, zstd or auto, not '%s'",
			  comp);
		return -EINVAL;
	}
	return 0;
}

void ctl__op_migrate(struct ctl_client *cl, const struct xlm_req *req)
{
	struct ctl_mig *mig = cl->srv->mig;
	const char *dom = xlm_args_str(req, "domain"), *host = xlm_args_str(req, "host");
	char what[HYP_OP_DETAIL_MAX];
	struct hyp_dom_info info;
	struct mig_job *j;

	if (!dom || !host || !*host) {
		REPLY_ERR(cl, req, -EINVAL, "migrate: expected \"domain\" and \"host\"");
		return;
	}
	j = job_new(cl, req, JOB_MIGRATE);
	if (!j)
		return;
	if (hyp_domain_lookup(j->h, dom, &j->domid) || hyp_domain_info(j->h, j->domid, &info)) {
		REPLY_ERR(cl, req, -ENOENT, "domain '%s' does not exist", dom);
		goto fail;
	}
	if (ctl__domain_check(cl, req, j->domid, "migrate"))
		goto fail;
	if (info.state != HYP_DOM_RUNNING && info.state != HYP_DOM_BLOCKED) {
		REPLY_ERR(cl, req, -EINVAL, "domain '%s' is %s; only a running domain migrates",
			  info.name, hyp_state_name(info.state));
		goto fail;
	}
	snprintf(j->name, sizeof(j->name), "%s", info.name);
	snprintf(j->host, sizeof(j->host), "%s", host);
	j->insecure = xlm_args_bool(req, "insecure") || cl->srv->opts->insecure;
	if (!j->insecure && !mig->tls) {
		REPLY_ERR(cl, req, -EINVAL, "ferryd has no TLS certificate (start it with "
			  "--tls-dir), or migrate with --insecure on both ends");
		goto fail;
	}
	if (migrate_opts(cl, req, j))
		goto fail;
	/* Holds it for the whole migration. */
	snprintf(what, sizeof(what), "being migrated to %.200s", j->host);
	if (ctl__domain_claim(cl, req, j->domid, "migrate", HYP_OP_MIGRATE, what))
		goto fail;
	j->claimed = true;
	job_start(j, req, do_migrate);
	return;
fail:
	free(j);
}

void ctl__op_migrate_cancel(struct ctl_client *cl, const struct xlm_req *req)
{
	struct ctl_mig *mig = cl->srv->mig;
	const char *dom = xlm_args_str(req, "domain");
	char away[HYP_NAME_MAX + 32];
	struct mig_job *j;
	uint32_t domid;
	yajl_gen g;
	char *buf;
	size_t len;
	int rc = 0;

	if (!dom) {
		REPLY_ERR(cl, req, -EINVAL, "migrate-cancel: expected \"domain\"");
		return;
	}
	/* After go the source copy is renamed NAME--migratedaway. */
	snprintf(away, sizeof(away), "%s%s", dom, CTL_AWAY_SUFFIX);
	if (hyp_domain_lookup(cl->srv->hyp, dom, &domid) &&
	    hyp_domain_lookup(cl->srv->hyp, away, &domid)) {
		REPLY_ERR(cl, req, -ENOENT, "domain '%s' does not exist", dom);
		return;
	}
	pthread_mutex_lock(&mig->lock);
	j = job_find_locked(mig, domid);
	if (!j || j->kind != JOB_MIGRATE)
		rc = -ENOENT;
	else /* a blocked read or write of the job ends at once */
		rc = ctl__job_cancel(&j->job);
	pthread_mutex_unlock(&mig->lock);
	if (rc == -ENOENT) {
		REPLY_ERR(cl, req, rc, "no migration of '%s' is running", dom);
		return;
	}
	if (rc) {
		REPLY_ERR(cl, req, rc, "too late to cancel the migration of '%s': the "
			  "switchover has begun (go was sent)", dom);
		return;
	}
	log_info("d%u: migration cancel requested", domid);
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		return;
	if (!(xlm_gen_map_open(g) ?: xlm_gen_kv_int(g, "domid", domid) ?:
	      xlm_gen_kv_bool(g, "cancelled", true) ?: xlm_gen_map_close(g)) &&
	    !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
}

static void reply_resolved(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
			   const char *outcome)
{
	yajl_gen g = xlm_reply_begin(req->id, req->has_id);
	char *buf;
	size_t len;

	if (!g)
		return;
	if (!(xlm_gen_map_open(g) ?: xlm_gen_kv_int(g, "domid", domid) ?:
	      xlm_gen_kv_str(g, "outcome", outcome) ?: xlm_gen_map_close(g)) &&
	    !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
}

/* --destroy and --resume: the operator knows where the domain runs. */
static void resolve_by_hand(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
			    const struct hyp_dom_info *info, const char *name, bool destroy)
{
	struct ctl_mig *mig = cl->srv->mig;
	struct hyp *h = cl->srv->hyp;
	int rc;

	if (destroy) {
		rc = hyp_domain_destroy(h, domid);
		if (rc) {
			REPLY_ERR(cl, req, rc, "cannot destroy '%s': %s", info->name,
				  ferry_strerror(rc));
			return;
		}
		free(fence_take(mig, domid));
		log_info("d%u: fenced '%s' destroyed by the operator", domid, info->name);
		reply_resolved(cl, req, domid, "destroyed");
		return;
	}
	rc = hyp_domain_rename(h, domid, name);
	if (rc) {
		REPLY_ERR(cl, req, rc, "cannot rename '%s' back to '%s': %s; it stays "
			  "fenced", info->name, name, ferry_strerror(rc));
		return;
	}
	free(fence_take(mig, domid));
	/* Nothing else holds it paused: lifting the fence runs it. */
	rc = hyp_domain_set_fenced(h, domid, false);
	if (rc) {
		REPLY_ERR(cl, req, rc, "cannot unpause '%s': %s", name, ferry_strerror(rc));
		return;
	}
	log_info("d%u: fenced '%s' resumed as '%s' by the operator", domid, info->name, name);
	reply_resolved(cl, req, domid, "resumed");
}

/* The automatic resolution once more, as a job. */
static void resolve_query(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
			  const struct hyp_dom_info *info)
{
	struct ctl_mig *mig = cl->srv->mig;
	struct fence_rec *f = fence_take(mig, domid);
	struct mig_job *j;

	if (!f) {
		REPLY_ERR(cl, req, -ENOENT, "no record of where '%s' went; decide with --resume "
			  "or --destroy", info->name);
		return;
	}
	if (!f->insecure && !mig->tls) {
		fence_put(mig, f);
		REPLY_ERR(cl, req, -EINVAL, "ferryd has no TLS certificate to ask the target with");
		return;
	}
	j = job_new(cl, req, JOB_QUERY);
	if (!j) {
		fence_put(mig, f);
		return;
	}
	j->domid = domid;
	snprintf(j->name, sizeof(j->name), "%s", f->name);
	snprintf(j->away, sizeof(j->away), "%s", info->name);
	snprintf(j->host, sizeof(j->host), "%s", f->host);
	j->insecure = f->insecure;
	if (job_start(j, req, do_query))
		fence_put(mig, f); /* it stays as it was */
	else
		free(f);
}

void ctl__op_migrate_resolve(struct ctl_client *cl, const struct xlm_req *req)
{
	struct ctl_mig *mig = cl->srv->mig;
	struct hyp *h = cl->srv->hyp;
	const char *dom = xlm_args_str(req, "domain"), *action = xlm_args_str(req, "action");
	char away[HYP_NAME_MAX + 32], name[HYP_NAME_MAX];
	struct hyp_dom_info info;
	uint32_t domid;
	size_t n, sl = strlen(CTL_AWAY_SUFFIX);
	bool busy;

	if (!action)
		action = "query";
	if (!dom || (strcmp(action, "query") && strcmp(action, "resume") &&
		     strcmp(action, "destroy"))) {
		REPLY_ERR(cl, req, -EINVAL, "migrate-resolve: expected \"domain\" and \"action\" "
			  "query, resume or destroy");
		return;
	}
	snprintf(away, sizeof(away), "%s%s", dom, CTL_AWAY_SUFFIX);
	if ((hyp_domain_lookup(h, dom, &domid) && hyp_domain_lookup(h, away, &domid)) ||
	    hyp_domain_info(h, domid, &info)) {
		REPLY_ERR(cl, req, -ENOENT, "domain '%s' does not exist", dom);
		return;
	}
	if (!info.fenced) {
		REPLY_ERR(cl, req, -EINVAL, "domain '%s' is not fenced: nothing to resolve",
			  info.name);
		return;
	}
	pthread_mutex_lock(&mig->lock);
	busy = job_find_locked(mig, domid) != NULL;
	pthread_mutex_unlock(&mig->lock);
	if (busy) {
		REPLY_ERR(cl, req, -EBUSY, "domain '%s': its migration is still resolving",
			  info.name);
		return;
	}
	n = strlen(info.name);
	snprintf(name, sizeof(name), "%.*s",
		 (int)(n > sl && !strcmp(info.name + n - sl, CTL_AWAY_SUFFIX) ? n - sl : n),
		 info.name);
	if (!strcmp(action, "query"))
		resolve_query(cl, req, domid, &info);
	else
		resolve_by_hand(cl, req, domid, &info, name, !strcmp(action, "destroy"));
}

/* ---- target side: the receiver jobs ---------------------------------------- */

struct rcv {
	struct ctl_job job;
	struct ctl_mig *mig;
	int fd;
	struct rcv_entry ent; /* in mig->rcvs while the job runs */
	char peer[INET6_ADDRSTRLEN + 8];
	char what[INET6_ADDRSTRLEN + 32]; /* job.what */
};

static bool mig_stopping(struct ctl_mig *mig)
{
	bool s;

	pthread_mutex_lock(&mig->lock);
	s = mig->stopping;
	pthread_mutex_unlock(&mig->lock);
	return s;
}

static int rcv_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
		      size_t errlen)
{
	return xlm_cfg_from_json_text(json, cfg, err, errlen);
}

/* The domain runs here now: its record and xenstore entries. */
static void rcv_arrived(void *opaque, uint32_t domid)
{
	struct ctl_server *srv = opaque;
	struct hyp_dom_config cfg;

	if (!hyp_domain_config(srv->hyp, domid, &cfg))
		ctl__record_write(srv, domid, &cfg);
	ctl__xs_domain_add(srv, domid);
}

/* HA pairs open with "ferry-remus " (ctl-remus.c). */
static bool rcv_other(void *opaque, struct strm_io *io, const char *first, const char *peer,
		      struct strm_cancel *cancel)
{
	if (memcmp(first, "ferry-remus ", STRM_HS_PEEK_LEN))
		return false;
	return ctl__remus_serve(opaque, io, peer, cancel);
}

static const struct rst_rcv_ops rcv_ops = {
	.config = rcv_config,
	.xenstore = ctl__xs_stream_write,
	.arrived = rcv_arrived,
	.other = rcv_other,
};

static void rcv_unregister(struct rcv *r)
{
	struct rcv_entry **pp;

	pthread_mutex_lock(&r->mig->lock);
	for (pp = &r->mig->rcvs; *pp; pp = &(*pp)->next) {
		if (*pp == &r->ent) {
			*pp = r->ent.next;
			break;
		}
	}
	pthread_mutex_unlock(&r->mig->lock);
}

static void rcv_main(struct ctl_job *job)
{
	struct rcv *r = container_of(job, struct rcv, job);
	struct ctl_mig *mig = r->mig;
	struct rst_rcv_ops ops = rcv_ops;
	struct rst_rcv_conf c = { .h = mig->srv->hyp, .set = mig->rcv_set, .tls = mig->tls,
				  .net_ms = mig->net_ms, .cancel = job->cancel,
				  .peer = r->peer, .ops = &ops };

	ops.opaque = mig->srv;
	rst_rcv_serve(&c, r->fd, NULL);
	rcv_unregister(r);
	malloc_trim(0); /* as in do_migrate */
}

static void rcv_done(struct ctl_job *job)
{
	free(container_of(job, struct rcv, job));
}

/* "ADDR:PORT" of sa into out. */
static void peer_name(const struct sockaddr_storage *sa, char *out, size_t len)
{
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		port = ntohs(s4->sin_port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		port = ntohs(s6->sin6_port);
	}
	snprintf(out, len, "%s:%d", addr, port);
}

static void rcv_spawn(struct ctl_mig *mig, int fd, const struct sockaddr_storage *sa)
{
	struct rcv *r = calloc(1, sizeof(*r));

	if (!r) {
		close(fd);
		return;
	}
	peer_name(sa, r->peer, sizeof(r->peer));
	snprintf(r->what, sizeof(r->what), "receiver for %s", r->peer);
	r->mig = mig;
	r->fd = fd;
	r->ent.job = &r->job;
	r->job.what = r->what;
	r->job.run = rcv_main;
	r->job.done = rcv_done;
	pthread_mutex_lock(&mig->lock);
	r->ent.next = mig->rcvs;
	mig->rcvs = &r->ent;
	pthread_mutex_unlock(&mig->lock);
	if (ctl__job_start(mig->srv, &r->job)) {
		rcv_unregister(r);
		close(fd);
		free(r);
	}
}

static void on_listen(uv_poll_t *p, int status, int events)
{
	struct ctl_mig *mig = p->data;

	if (status < 0) {
		log_warn("migration listener: %s", uv_strerror(status));
		return;
	}
	for (;;) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof(sa);
		int fd = accept4(mig->listen_fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("migration listener: accept: %s", strerror(errno));
			return;
		}
		if (mig_stopping(mig)) {
			close(fd);
			continue;
		}
		rcv_spawn(mig, fd, &sa);
	}
}

struct strm_tls *ctl__mig_tls(struct ctl_server *srv)
{
	return srv->mig ? srv->mig->tls : NULL;
}

int ctl__mig_net_ms(struct ctl_server *srv)
{
	return srv->mig ? srv->mig->net_ms : CTL_NET_TIMEOUT_S * 1000;
}

/* ---- start and stop ----------------------------------------------------- */

int ctl_migrate_start(struct ctl_server *srv)
{
	const struct ferryd_opts *o = srv->opts;
	struct ctl_mig *mig = calloc(1, sizeof(*mig));
	char err[1024] = "";
	int rc, fl;

	if (!mig)
		return -ENOMEM;
	mig->srv = srv;
	mig->listen_fd = -1;
	pthread_mutex_init(&mig->lock, NULL);
	mig->net_ms = (int)(o->net_timeout_s ? o->net_timeout_s : CTL_NET_TIMEOUT_S) * 1000;
	srv->mig = mig;
	rc = rst_rcv_set_new(&mig->rcv_set);
	if (rc)
		return rc;
	if (o->tls_dir && !o->insecure) {
		rc = strm_tls_new(o->tls_dir, o->tls_name, &mig->tls, err, sizeof(err));
		if (rc) {
			log_err("migration TLS: %s", err[0] ? err : ferry_strerror(rc));
			return rc;
		}
		log_info("migration TLS: %s/%s.pem", o->tls_dir, o->tls_name);
	}
	if (!o->listen)
		return 0;
	rc = strm_tcp_listen(o->listen, &mig->listen_fd, err, sizeof(err));
	if (rc) {
		log_err("migration listener %s: %s", o->listen, err[0] ? err : ferry_strerror(rc));
		return rc;
	}
	fl = fcntl(mig->listen_fd, F_GETFL);
	if (fl < 0 || fcntl(mig->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		rc = -errno;
		log_err("migration listener: %s", strerror(errno));
		return rc;
	}
	rc = uv_poll_init(srv->loop, &mig->poll, mig->listen_fd);
	if (!rc) {
		mig->poll.data = mig;
		mig->polling = true;
		rc = uv_poll_start(&mig->poll, UV_READABLE, on_listen);
	}
	if (rc) {
		log_err("migration listener: %s", uv_strerror(rc));
		return rc;
	}
	log_info("migration listener on %s (%s)", o->listen,
		 mig->tls ? "TLS 1.3" : "plain TCP, --insecure");
	return 0;
}

void ctl_migrate_cancel_all(struct ctl_server *srv)
{
	struct ctl_mig *mig = srv->mig;
	unsigned n = 0;

	if (!mig)
		return;
	pthread_mutex_lock(&mig->lock);
	for (struct mig_job *j = mig->jobs; j; j = j->next)
		if (j->kind == JOB_MIGRATE && !ctl__job_cancel(&j->job))
			n++;
	for (struct rcv_entry *e = mig->rcvs; e; e = e->next)
		if (!ctl__job_cancel(e->job))
			n++;
	pthread_mutex_unlock(&mig->lock);
	/* Queries waiting for a receiver to decide see their token. */
	rst_rcv_set_wake(mig->rcv_set);
	if (n)
		log_info("migration: cancelled %u migration%s short of go", n, n == 1 ? "" : "s");
}

void ctl_migrate_stop(struct ctl_server *srv)
{
	struct ctl_mig *mig = srv->mig;

	if (!mig)
		return;
	pthread_mutex_lock(&mig->lock);
	mig->stopping = true;
	pthread_mutex_unlock(&mig->lock);
	if (mig->polling) {
		uv_poll_stop(&mig->poll);
		uv_close((uv_handle_t *)&mig->poll, NULL);
		mig->polling = false;
	}
	/* Past go, ctl_jobs_stop makes the jobs stop waiting too. */
	ctl_migrate_cancel_all(srv);
}

void ctl_migrate_fini(struct ctl_server *srv)
{
	struct ctl_mig *mig = srv->mig;

	if (!mig)
		return;
	/* The jobs, receivers included, have ended (ctl-jobs.c). */
	while (mig->fences) {
		struct fence_rec *f = mig->fences;

		mig->fences = f->next;
		free(f);
	}
	if (mig->listen_fd >= 0)
		close(mig->listen_fd);
	strm_tls_free(mig->tls);
	rst_rcv_set_free(mig->rcv_set);
	pthread_mutex_destroy(&mig->lock);
	free(mig);
	srv->mig = NULL;
}

/* ---- for ferryd's stop and start (ctl-lifetime.c) ------------------------ */

int ctl__fence_get(struct ctl_server *srv, uint32_t domid, struct ctl_fence *out)
{
	struct ctl_mig *mig = srv->mig;
	int rc = -ENOENT;

	pthread_mutex_lock(&mig->lock);
	for (struct fence_rec *f = mig->fences; f; f = f->next) {
		if (f->domid != domid)
			continue;
		snprintf(out->name, sizeof(out->name), "%s", f->name);
		snprintf(out->host, sizeof(out->host), "%s", f->host);
		out->insecure = f->insecure;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&mig->lock);
	return rc;
}

int ctl__fence_put(struct ctl_server *srv, uint32_t domid, const struct ctl_fence *in)
{
	struct fence_rec *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->domid = domid;
	snprintf(f->name, sizeof(f->name), "%s", in->name);
	snprintf(f->host, sizeof(f->host), "%s", in->host);
	f->insecure = in->insecure;
	fence_put(srv->mig, f);
	return 0;
}

bool ctl__mig_busy(struct ctl_server *srv, uint32_t domid)
{
	struct ctl_mig *mig = srv->mig;
	bool busy;

	pthread_mutex_lock(&mig->lock);
	busy = job_find_locked(mig, domid) != NULL;
	pthread_mutex_unlock(&mig->lock);
	return busy;
}

