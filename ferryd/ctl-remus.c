// SPDX-License-Identifier: MIT
/*
 * Replication pairs in ferryd (ha/ha.h has the engine, formats/SPEC.md 11
 * the link). Primary: the "remus" op is a job that connects to the backup's
 * migration listener (TLS), asks it to hold NAME, runs the initial sync and
 * replies to xl once the pair is protected; the job then runs the pair on
 * its thread until the backup is lost, remus-stop, or ferryd stops (which
 * hands the domain over to the backup). Backup: the migration receiver
 * hands a connection that opens with "ferry-remus " here; the copy is
 * NAME--backup, paused, until it takes over as NAME.
 *
 * ctl_remus (srv->remus) lists the pairs of this host for remus-status,
 * remus-stop and xl list; its lock guards the list.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "ha/ha.h"
#include "internal.h"
#include "migrate/handshake.h"
#include "stream/net.h"
#include "toolstack/config.h"

#define REPLY_ERR(cl, req, err, ...)                                                               \
	ctl__reply_error((cl), (req)->id, (req)->has_id, (err), __VA_ARGS__)

/* The backup accepts a pair with this line; a refusal is STRM_HS_ERROR. */
#define REMUS_OK "ferry-remus-ok\n"

enum pair_role { PAIR_PRIMARY, PAIR_BACKUP };

struct pair {
	struct pair *next;
	enum pair_role role;
	uint32_t domid;
	char name[HYP_NAME_MAX];
	char peer[256];
	struct ha_primary *p; /* primary, once synced */
	enum ha_state state;  /* primary: the last one reported */
	uint64_t committed;   /* backup: the last epoch committed */
	bool lost;	      /* a primary's record after its backup was lost (malloc'd) */
};

struct ctl_remus {
	pthread_mutex_t lock;
	struct pair *pairs;
};

static struct ctl_remus *remus_get(struct ctl_server *srv)
{
	static pthread_mutex_t init = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&init);
	if (!srv->remus) {
		srv->remus = calloc(1, sizeof(*srv->remus));
		if (srv->remus)
			pthread_mutex_init(&srv->remus->lock, NULL);
	}
	pthread_mutex_unlock(&init);
	return srv->remus;
}

static void pair_add(struct ctl_remus *r, struct pair *pr)
{
	pthread_mutex_lock(&r->lock);
	pr->next = r->pairs;
	r->pairs = pr;
	pthread_mutex_unlock(&r->lock);
}

static void pair_remove(struct ctl_remus *r, struct pair *pr)
{
	pthread_mutex_lock(&r->lock);
	for (struct pair **pp = &r->pairs; *pp; pp = &(*pp)->next) {
		if (*pp == pr) {
			*pp = pr->next;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

/* Under r->lock. */
static struct pair *pair_find_locked(struct ctl_remus *r, uint32_t domid)
{
	for (struct pair *pr = r->pairs; pr; pr = pr->next)
		if (pr->domid == domid)
			return pr;
	return NULL;
}

const char *ctl__remus_role(struct ctl_server *srv, uint32_t domid, char *buf, size_t len)
{
	struct ctl_remus *r = srv->remus;
	struct pair *pr;

	if (!r)
		return NULL;
	pthread_mutex_lock(&r->lock);
	pr = pair_find_locked(r, domid);
	if (pr)
		snprintf(buf, len, "%s",
			 pr->role == PAIR_BACKUP ? "backup" : ha_state_name(pr->state));
	pthread_mutex_unlock(&r->lock);
	return pr ? buf : NULL;
}

bool ctl__remus_primary(struct ctl_server *srv, uint32_t domid)
{
	struct ctl_remus *r = srv->remus;
	struct pair *pr;
	bool yes;

	if (!r)
		return false;
	pthread_mutex_lock(&r->lock);
	pr = pair_find_locked(r, domid);
	yes = pr && pr->role == PAIR_PRIMARY && !pr->lost;
	pthread_mutex_unlock(&r->lock);
	return yes;
}

/* ---- events ------------------------------------------------------------------ */

struct remus_ev {
	struct ctl_call call;
	struct ctl_server *srv;
	uint32_t domid;
	char *line;
	size_t len;
};

/* Loop thread: the "remus" event to the clients attached to the domain
 * (xl console, as for its "domain" events). */
static void ev_send(struct ctl_call *c)
{
	struct remus_ev *e = container_of(c, struct remus_ev, call);

	ctl__send_attached(e->srv, e->domid, e->line, e->len);
	free(e);
}

static void event(struct ctl_server *srv, uint32_t domid, const char *name, const char *state,
		  const char *why)
{
	yajl_gen g = xlm_event_begin("remus");
	struct remus_ev *e;

	if (!g)
		return;
	if (xlm_gen_kv_int(g, "domid", domid) || xlm_gen_kv_str(g, "domain", name) ||
	    xlm_gen_kv_str(g, "state", state) || xlm_gen_kv_str(g, "why", why)) {
		yajl_gen_free(g);
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e || xlm_gen_finish(g, &e->line, &e->len)) {
		free(e);
		return;
	}
	e->srv = srv;
	e->domid = domid;
	e->call.fn = ev_send;
	if (ctl__loop_call(srv, &e->call)) {
		free(e->line);
		free(e);
	}
}

/* ---- primary ------------------------------------------------------------------- */

/* TLS to an https witness: ferryd's --tls-dir, its CA and this host's
 * certificate (the witness's certificate from the same CA). */
struct witness_tls {
	char ca[4096], cert[4096], key[4096];
};

struct remus_job {
	struct ctl_job job;
	struct ctl_server *srv;
	long long id;
	bool has_id;
	uint32_t domid;
	char host[256];
	bool insecure;
	struct ha_primary_opts o;
	struct pair pair;
	char what[HYP_NAME_MAX + 64];
	char err[1024];
	int rc;
	bool replied; /* the sync's reply went out from the job's thread */
	struct ha_stats st;
	char witness[256]; /* "" for none */
	char pair_key[40]; /* the domain's UUID: the pair's keys at the witness */
	char me[300];	   /* this host at the witness */
	struct witness_tls wtls;
};

static void witness_tls(struct ctl_server *srv, struct witness_tls *b, struct ha_witness_tls *t)
{
	const struct ferryd_opts *o = srv->opts;

	*t = (struct ha_witness_tls){0};
	if (!o->tls_dir || o->insecure || !o->tls_name)
		return;
	snprintf(b->ca, sizeof(b->ca), "%s/ca.pem", o->tls_dir);
	snprintf(b->cert, sizeof(b->cert), "%s/%s.pem", o->tls_dir, o->tls_name);
	snprintf(b->key, sizeof(b->key), "%s/%s.key", o->tls_dir, o->tls_name);
	*t = (struct ha_witness_tls){b->ca, b->cert, b->key};
}

/* This host's name at the witness: its migration listener, or "ferryd". */
static void host_me(struct ctl_server *srv, char *out, size_t len)
{
	snprintf(out, len, "%s", srv->opts->listen ? srv->opts->listen : "ferryd");
}

static void on_state(void *opaque, enum ha_state st, const char *why)
{
	struct remus_job *j = opaque;
	struct ctl_remus *r = j->srv->remus;

	pthread_mutex_lock(&r->lock);
	j->pair.state = st;
	pthread_mutex_unlock(&r->lock);
	event(j->srv, j->domid, j->pair.name, ha_state_name(st), why);
}

static int gen_stats(yajl_gen g, const char *name, const char *host, const struct ha_stats *s)
{
	return xlm_gen_kv_str(g, "domain", name) ?: xlm_gen_kv_str(g, "host", host) ?:
	       xlm_gen_kv_str(g, "state", ha_state_name(s->state)) ?:
	       xlm_gen_kv_int(g, "epochs", (long long)s->epochs_acked) ?:
	       xlm_gen_kv_double(g, "epochs_per_s", s->epochs_per_s) ?:
	       xlm_gen_kv_double(g, "last_ack_age_ms", s->last_ack_age_ms) ?:
	       xlm_gen_kv_double(g, "pause_p50_ms", s->pause_p50_ms) ?:
	       xlm_gen_kv_double(g, "pause_p99_ms", s->pause_p99_ms) ?:
	       xlm_gen_kv_double(g, "bytes_per_epoch", s->bytes_per_epoch) ?:
	       xlm_gen_kv_double(g, "output_delay_p50_ms", s->output_delay_p50_ms) ?:
	       xlm_gen_kv_double(g, "output_delay_p99_ms", s->output_delay_p99_ms) ?:
	       xlm_gen_kv_int(g, "late", (long long)s->late) ?:
	       xlm_gen_kv_int(g, "merged", (long long)s->merged) ?:
	       xlm_gen_kv_double(g, "sync_s", s->sync_s) ?:
	       xlm_gen_kv_int(g, "throttle_pct", s->throttle_pct) ?:
	       xlm_gen_kv_str(g, "witness", s->witness ? s->witness : "");
}

struct reply_call {
	struct ctl_call call;
	struct remus_job *j;
};

/* Loop thread: the sync's outcome to the client that asked. */
static void reply_now(struct ctl_call *c)
{
	struct reply_call *rc = container_of(c, struct reply_call, call);
	struct remus_job *j = rc->j;
	struct ctl_client *cl = j->job.cl;
	yajl_gen g;
	char *buf;
	size_t len;

	free(rc);
	if (!cl || cl->closing || cl->dead)
		return;
	if (j->rc) {
		ctl__reply_error(cl, j->id, j->has_id, j->rc, "%s", j->err);
		return;
	}
	g = xlm_reply_begin(j->id, j->has_id);
	if (!g)
		return;
	if (!(xlm_gen_map_open(g) ?: xlm_gen_kv_int(g, "domid", j->domid) ?:
	      gen_stats(g, j->pair.name, j->host, &j->st) ?:
	      xlm_gen_kv_int(g, "interval_ms", j->o.interval_ms) ?:
	      xlm_gen_kv_int(g, "timeout_ms", j->o.timeout_ms) ?: xlm_gen_map_close(g)) &&
	    !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
}

static void reply_from_thread(struct remus_job *j)
{
	struct reply_call *c = calloc(1, sizeof(*c));

	j->replied = true;
	if (!c)
		return;
	c->j = j;
	c->call.fn = reply_now;
	if (ctl__loop_call(j->srv, &c->call))
		free(c);
}

/* The request after the banner: "ferry-remus NAME\n", then the answer. */
static int ask_backup(struct remus_job *j, struct strm_io *io)
{
	char line[HYP_NAME_MAX + 320], why[512] = "";
	int n, rc;

	n = snprintf(line, sizeof(line), "ferry-remus %s\t%s\t%s\n", j->pair.name, j->pair_key,
		     j->witness);
	rc = strm_hs_write(io, line, (size_t)n);
	if (!rc)
		rc = strm_hs_read(io, REMUS_OK, strlen(REMUS_OK), "waiting for the backup's answer",
				  why, sizeof(why));
	if (rc)
		snprintf(j->err, sizeof(j->err), "%s: %s", j->host,
			 why[0] ? why : strm_io_error(io));
	return rc;
}

/* xl list and remus-status go on saying "unprotected" after the backup was
 * lost, until xl remus again, remus-stop or the domain's end. */
static void keep_lost(struct ctl_remus *r, const struct pair *from)
{
	struct pair *pr = calloc(1, sizeof(*pr));

	if (!pr)
		return;
	*pr = *from;
	pr->next = NULL;
	pr->p = NULL;
	pr->state = HA_UNPROTECTED;
	pr->lost = true;
	pair_add(r, pr);
}

/* Drops domid's record of a lost backup; true if there was one. */
static bool drop_lost(struct ctl_remus *r, uint32_t domid)
{
	struct pair *found = NULL;

	pthread_mutex_lock(&r->lock);
	for (struct pair **pp = &r->pairs; *pp; pp = &(*pp)->next) {
		if ((*pp)->domid == domid && (*pp)->lost) {
			found = *pp;
			*pp = found->next;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	free(found);
	return found != NULL;
}

void ctl__remus_domain_gone(struct ctl_server *srv, uint32_t domid)
{
	if (srv->remus)
		drop_lost(srv->remus, domid);
}

static void do_remus(struct ctl_job *job)
{
	struct remus_job *j = container_of(job, struct remus_job, job);
	struct mig_hs_conf c = {.h = j->srv->hyp,
				.domid = j->domid,
				.name = j->pair.name,
				.host = j->host,
				.tls = j->insecure ? NULL : ctl__mig_tls(j->srv),
				.net_ms = ctl__mig_net_ms(j->srv),
				.cancel = job->cancel};
	struct ctl_remus *r = j->srv->remus;
	struct hyp_dom_config cfg;
	struct strm_io *io = NULL;
	struct ha_primary *p = NULL;
	char *json = NULL;
	int rc;

	rc = hyp_domain_config(j->srv->hyp, j->domid, &cfg) ?: xlm_cfg_to_json(&cfg, &json);
	if (rc) {
		snprintf(j->err, sizeof(j->err), "cannot encode the config of '%s': %s",
			 j->pair.name, ferry_strerror(rc));
		goto out;
	}
	/* A blackhole makes its epochs and drops them: no backup to ask. */
	if (!j->o.blackhole) {
		rc = mig_hs_connect(&c, &io, j->err, sizeof(j->err)) ?: ask_backup(j, io);
		if (rc)
			goto out;
	}
	j->o.config_json = json;
	j->o.xenstore = (struct mig_xenstore){ctl__xs_stream_read, j->srv};
	j->o.event = on_state;
	j->o.opaque = j;
	j->o.cancel = job->cancel;
	if (j->witness[0]) {
		j->o.witness_url = j->witness;
		j->o.witness_pair = j->pair_key;
		j->o.witness_me = j->me;
		witness_tls(j->srv, &j->wtls, &j->o.witness_tls);
	}
	rc = ha_primary_new(j->srv->hyp, j->domid, io, &j->o, j->err, sizeof(j->err), &p);
	if (rc)
		goto out;
	pair_add(r, &j->pair);
	rc = ha_primary_sync(p);
	ha_primary_stats(p, &j->st);
	if (rc)
		goto out_pair;
	/* xl returns now; only stopping ferryd ends the pair from here on
	 * (it hands the domain over), or remus-stop. */
	ctl__job_no_return(job);
	pthread_mutex_lock(&r->lock);
	j->pair.p = p;
	pthread_mutex_unlock(&r->lock);
	reply_from_thread(j);
	rc = ha_primary_run(p);
	ha_primary_stats(p, &j->st);
	if (j->st.state == HA_HANDED_OVER) {
		/* The backup runs it: this paused copy goes. */
		int drc = hyp_domain_destroy(j->srv->hyp, j->domid);

		if (drc)
			log_err("d%u: remus: handed over, but destroying the copy here failed: %s",
				j->domid, ferry_strerror(drc));
	}
out_pair:
	pthread_mutex_lock(&r->lock);
	j->pair.p = NULL;
	pthread_mutex_unlock(&r->lock);
	pair_remove(r, &j->pair);
	if (j->st.state == HA_UNPROTECTED)
		keep_lost(r, &j->pair);
out:
	j->rc = rc;
	ha_primary_free(p);
	strm_io_close(io);
	free(json);
	if (!j->replied)
		reply_from_thread(j);
}

static void remus_done(struct ctl_job *job)
{
	free(container_of(job, struct remus_job, job));
}

static bool args_uint(const struct xlm_req *req, const char *key, unsigned *out)
{
	long long v;

	if (!xlm_args_int(req, key, &v) || v < 0 || v > 1000000)
		return false;
	*out = (unsigned)v;
	return true;
}

void ctl__op_remus(struct ctl_client *cl, const struct xlm_req *req)
{
	struct ctl_server *srv = cl->srv;
	const char *dom = xlm_args_str(req, "domain"), *host = xlm_args_str(req, "host");
	struct ctl_remus *r = remus_get(srv);
	struct hyp_dom_info info;
	struct remus_job *j;
	bool busy;
	int rc;

	if (!dom || !host || (!*host && !xlm_args_bool(req, "blackhole"))) {
		REPLY_ERR(cl, req, -EINVAL, "remus: expected \"domain\" and \"host\"");
		return;
	}
	if (!r) {
		REPLY_ERR(cl, req, -ENOMEM, "out of memory");
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		REPLY_ERR(cl, req, -ENOMEM, "out of memory");
		return;
	}
	j->srv = srv;
	j->id = req->id;
	j->has_id = req->has_id;
	if (hyp_domain_lookup(srv->hyp, dom, &j->domid) ||
	    hyp_domain_info(srv->hyp, j->domid, &info)) {
		REPLY_ERR(cl, req, -ENOENT, "domain '%s' does not exist", dom);
		goto fail;
	}
	if (ctl__domain_check(cl, req, j->domid, "protect"))
		goto fail;
	if (info.state != HYP_DOM_RUNNING && info.state != HYP_DOM_BLOCKED) {
		REPLY_ERR(cl, req, -EINVAL, "domain '%s' is %s; only a running domain is protected",
			  info.name, hyp_state_name(info.state));
		goto fail;
	}
	drop_lost(r, j->domid); /* protected again */
	pthread_mutex_lock(&r->lock);
	busy = pair_find_locked(r, j->domid) != NULL;
	pthread_mutex_unlock(&r->lock);
	if (busy) {
		REPLY_ERR(cl, req, -EBUSY, "domain '%s' is in a pair already (xl remus-status)",
			  info.name);
		goto fail;
	}
	j->insecure = xlm_args_bool(req, "insecure") || srv->opts->insecure;
	if (!j->insecure && !ctl__mig_tls(srv) && !xlm_args_bool(req, "blackhole")) {
		REPLY_ERR(cl, req, -EINVAL,
			  "ferryd has no TLS certificate (start it with "
			  "--tls-dir), or use --insecure on both ends");
		goto fail;
	}
	if (!args_uint(req, "interval_ms", &j->o.interval_ms))
		j->o.interval_ms = HA_DEFAULT_INTERVAL_MS;
	if (!args_uint(req, "timeout_ms", &j->o.timeout_ms))
		j->o.timeout_ms = HA_DEFAULT_TIMEOUT_MS;
	if (j->o.interval_ms < HA_MIN_INTERVAL_MS || j->o.timeout_ms < 50 ||
	    j->o.timeout_ms > HA_MAX_TIMEOUT_MS) {
		REPLY_ERR(cl, req, -EINVAL,
			  "remus: interval %u ms (at least %u) or timeout %u ms "
			  "(50 to %u) out of range",
			  j->o.interval_ms, HA_MIN_INTERVAL_MS, j->o.timeout_ms, HA_MAX_TIMEOUT_MS);
		goto fail;
	}
	j->o.blackhole = xlm_args_bool(req, "blackhole");
	j->o.no_buffer = xlm_args_bool(req, "no_buffer");
	if ((j->o.blackhole || j->o.no_buffer) && !xlm_args_bool(req, "unsafe")) {
		REPLY_ERR(cl, req, -EINVAL,
			  "remus: blackhole and no output buffering are unsafe: "
			  "give them with -F, as in Xen");
		goto fail;
	}
	j->o.codec = STRM_CODEC_LZ4;
	if (xlm_args_str(req, "witness")) {
		const char *w = xlm_args_str(req, "witness");

		if (strlen(w) >= sizeof(j->witness) || strchr(w, '\t') || strchr(w, '\n') ||
		    (strncmp(w, "etcd://", 7) && strncmp(w, "http://", 7) &&
		     strncmp(w, "https://", 8))) {
			REPLY_ERR(cl, req, -EINVAL,
				  "remus: witness '%s': expected etcd://HOST:PORT, "
				  "http://HOST:PORT or https://HOST:PORT",
				  w);
			goto fail;
		}
		snprintf(j->witness, sizeof(j->witness), "%s", w);
	}
	{
		struct hyp_dom_config cfg;

		if (hyp_domain_config(srv->hyp, j->domid, &cfg)) {
			REPLY_ERR(cl, req, -ENOENT, "domain '%s' does not exist", dom);
			goto fail;
		}
		xlm_uuid_format(cfg.uuid, j->pair_key);
	}
	host_me(srv, j->me, sizeof(j->me));
	snprintf(j->pair.name, sizeof(j->pair.name), "%s", info.name);
	snprintf(j->pair.peer, sizeof(j->pair.peer), "%s", host);
	snprintf(j->host, sizeof(j->host), "%s", host);
	j->pair.role = PAIR_PRIMARY;
	j->pair.domid = j->domid;
	j->pair.state = HA_SYNCING;
	snprintf(j->what, sizeof(j->what), "protection of '%s'", info.name);
	j->job.cl = cl;
	j->job.what = j->what;
	j->job.run = do_remus;
	j->job.done = remus_done;
	rc = ctl__job_start(srv, &j->job);
	if (rc) {
		REPLY_ERR(cl, req, rc, "cannot start the protection of '%s': %s", info.name,
			  ferry_strerror(rc));
		goto fail;
	}
	return;
fail:
	free(j);
}

/* remus-status and remus-stop find the pair by the domain's name. */
static struct pair *find_named_locked(struct ctl_server *srv, const char *dom)
{
	uint32_t domid;

	if (hyp_domain_lookup(srv->hyp, dom, &domid))
		return NULL;
	return pair_find_locked(srv->remus, domid);
}

void ctl__op_remus_status(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *dom = xlm_args_str(req, "domain");
	struct ctl_remus *r = remus_get(cl->srv);
	struct ha_stats st = {0};
	struct pair *pr;
	char name[HYP_NAME_MAX], peer[256];
	enum pair_role role = PAIR_PRIMARY;
	uint64_t committed = 0;
	yajl_gen g;
	char *buf;
	size_t len;
	int rc;

	if (!dom || !r) {
		REPLY_ERR(cl, req, -EINVAL, "remus-status: expected \"domain\"");
		return;
	}
	pthread_mutex_lock(&r->lock);
	pr = find_named_locked(cl->srv, dom);
	if (pr) {
		role = pr->role;
		committed = pr->committed;
		st.state = pr->state;
		if (pr->p)
			ha_primary_stats(pr->p, &st);
		snprintf(name, sizeof(name), "%s", pr->name);
		snprintf(peer, sizeof(peer), "%s", pr->peer);
	}
	pthread_mutex_unlock(&r->lock);
	if (!pr) {
		REPLY_ERR(cl, req, -ENOENT, "domain '%s' is not in a pair here", dom);
		return;
	}
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		return;
	if (role == PAIR_BACKUP)
		rc = xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", name) ?:
		     xlm_gen_kv_str(g, "role", "backup") ?: xlm_gen_kv_str(g, "primary", peer) ?:
		     xlm_gen_kv_int(g, "epochs", (long long)committed) ?: xlm_gen_map_close(g);
	else
		rc = xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "role", "primary") ?:
		     gen_stats(g, name, peer, &st) ?: xlm_gen_map_close(g);
	if (!rc && !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
}

void ctl__op_remus_stop(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *dom = xlm_args_str(req, "domain");
	struct ctl_remus *r = remus_get(cl->srv);
	struct pair *pr;
	uint32_t domid;
	int rc = 0;
	yajl_gen g;
	char *buf;
	size_t len;

	if (!dom || !r) {
		REPLY_ERR(cl, req, -EINVAL, "remus-stop: expected \"domain\"");
		return;
	}
	if (!hyp_domain_lookup(cl->srv->hyp, dom, &domid) && drop_lost(r, domid))
		goto stopped; /* the backup was lost already: only the record goes */
	pthread_mutex_lock(&r->lock);
	pr = find_named_locked(cl->srv, dom);
	if (!pr)
		rc = -ENOENT;
	else if (pr->role != PAIR_PRIMARY || !pr->p)
		rc = -EINVAL;
	else
		ha_primary_request_stop(pr->p);
	pthread_mutex_unlock(&r->lock);
	if (rc == -ENOENT) {
		REPLY_ERR(cl, req, rc, "domain '%s' is not protected here", dom);
		return;
	}
	if (rc) {
		REPLY_ERR(cl, req, rc,
			  "domain '%s' is not the protected primary here (stop "
			  "protection on the primary's host)",
			  dom);
		return;
	}
stopped:
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		return;
	if (!(xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", dom) ?:
	      xlm_gen_kv_bool(g, "stopping", true) ?: xlm_gen_map_close(g)) &&
	    !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
}

/* ---- backup ---------------------------------------------------------------------- */

struct backup_ctx {
	struct ctl_server *srv;
	struct pair pair;
};

static int backup_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
			 size_t errlen)
{
	struct backup_ctx *b = opaque;
	int rc = xlm_cfg_from_json_text(json, cfg, err, errlen);

	if (rc)
		return rc;
	if (strcmp(cfg->name, b->pair.name)) {
		snprintf(err, errlen, "the stream is of '%s', the pair of '%s'", cfg->name,
			 b->pair.name);
		return -EINVAL;
	}
	/* ctl__remus_serve refused names too long for the suffix. */
	snprintf(cfg->name, sizeof(cfg->name), "%.*s%s",
		 (int)(sizeof(cfg->name) - sizeof(CTL_BACKUP_SUFFIX)), b->pair.name,
		 CTL_BACKUP_SUFFIX);
	return 0;
}

static int backup_epoch(void *opaque, uint32_t domid, uint64_t epoch)
{
	struct backup_ctx *b = opaque;
	struct ctl_remus *r = b->srv->remus;

	pthread_mutex_lock(&r->lock);
	b->pair.committed = epoch;
	if (epoch == 1) {
		b->pair.domid = domid;
		pthread_mutex_unlock(&r->lock);
		event(b->srv, domid, b->pair.name, "backup", "epoch 1 committed: protecting");
		return 0;
	}
	b->pair.committed = epoch;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* The copy becomes the domain: its name, its record, its xenstore. */
static int backup_takeover(void *opaque, uint32_t domid)
{
	struct backup_ctx *b = opaque;
	struct hyp_dom_config cfg;
	uint32_t other;
	int rc;

	if (!hyp_domain_lookup(b->srv->hyp, b->pair.name, &other)) {
		log_err("d%u: remus backup: a domain named '%s' exists here: the copy stays "
			"paused as '%s%s'",
			domid, b->pair.name, b->pair.name, CTL_BACKUP_SUFFIX);
		return -EEXIST;
	}
	rc = hyp_domain_rename(b->srv->hyp, domid, b->pair.name);
	if (rc)
		return rc;
	if (!hyp_domain_config(b->srv->hyp, domid, &cfg))
		ctl__record_write(b->srv, domid, &cfg);
	ctl__xs_domain_add(b->srv, domid);
	return 0;
}

bool ctl__remus_serve(struct ctl_server *srv, struct strm_io *io, const char *peer,
		      struct strm_cancel *cancel)
{
	struct ctl_remus *r = remus_get(srv);
	struct ha_backup_opts o = {.config = backup_config,
				   .epoch = backup_epoch,
				   .takeover = backup_takeover,
				   .xenstore = ctl__xs_stream_write,
				   .xs_opaque = srv,
				   .cancel = cancel};
	struct ha_backup_result res;
	struct backup_ctx *b;
	char line[HYP_NAME_MAX + 320], refuse[HYP_NAME_MAX * 2 + 96] = "";
	char backup_name[HYP_NAME_MAX + 16], me[300];
	char *name = line, *key = NULL, *witness = NULL, *tab;
	struct witness_tls wtls;
	size_t n = 0;
	uint32_t id;

	/* NAME TAB UUID TAB WITNESS, up to the newline ("ferry-remus " was
	 * read); the witness may be empty. */
	while (n < sizeof(line) - 1) {
		if (strm_io_read_full(io, line + n, 1))
			return false;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	if ((tab = strchr(line, '\t'))) {
		*tab = '\0';
		key = tab + 1;
		if ((tab = strchr(key, '\t'))) {
			*tab = '\0';
			witness = tab + 1;
		}
	}
	n = strlen(name);
	snprintf(backup_name, sizeof(backup_name), "%.*s%s", HYP_NAME_MAX, name, CTL_BACKUP_SUFFIX);
	if (!key || !witness)
		snprintf(refuse, sizeof(refuse), "a request this ferryd does not understand");
	else if (!n || n + sizeof(CTL_BACKUP_SUFFIX) > HYP_NAME_MAX)
		snprintf(refuse, sizeof(refuse),
			 "a domain name that is empty or too long for "
			 "its backup's name");
	else if (!r)
		snprintf(refuse, sizeof(refuse), "out of memory");
	else if (!hyp_domain_lookup(srv->hyp, name, &id) ||
		 !hyp_domain_lookup(srv->hyp, backup_name, &id))
		snprintf(refuse, sizeof(refuse), "a domain named '%.*s' exists here", HYP_NAME_MAX,
			 name);
	if (refuse[0]) {
		char msg[sizeof(refuse) + 32];
		int len = snprintf(msg, sizeof(msg), STRM_HS_ERROR "%s\n", refuse);

		log_warn("remus: refused to back up '%s' for %s: %s", name, peer, refuse);
		strm_hs_write(io, msg, (size_t)len);
		return true;
	}
	b = calloc(1, sizeof(*b));
	if (!b || strm_hs_write(io, REMUS_OK, strlen(REMUS_OK))) {
		free(b);
		return true;
	}
	b->srv = srv;
	b->pair.role = PAIR_BACKUP;
	b->pair.domid = UINT32_MAX;
	snprintf(b->pair.name, sizeof(b->pair.name), "%.*s", HYP_NAME_MAX - 1, name);
	snprintf(b->pair.peer, sizeof(b->pair.peer), "%s", peer);
	o.opaque = b;
	host_me(srv, me, sizeof(me));
	if (witness[0]) {
		o.witness_url = witness;
		o.witness_pair = key;
		o.witness_me = me;
		witness_tls(srv, &wtls, &o.witness_tls);
	}
	pair_add(r, &b->pair);
	log_info("remus: backing up '%s' for %s", name, peer);
	ha_backup_run(srv->hyp, io, &o, &res);
	pair_remove(r, &b->pair);
	if (res.outcome == HA_BACKUP_FAILED_OVER || res.outcome == HA_BACKUP_HANDED_OVER)
		event(srv, res.domid, name, "running",
		      res.outcome == HA_BACKUP_HANDED_OVER ? "handed over by the primary"
							   : res.err);
	else
		event(srv, UINT32_MAX, name, ha_backup_outcome_name(res.outcome),
		      res.err[0] ? res.err : "the primary ended protection");
	free(b);
	return true;
}

void ctl_remus_fini(struct ctl_server *srv)
{
	if (!srv->remus)
		return;
	/* Every pair's thread (jobs, receivers) has ended: what is left are
	 * records of lost backups. */
	while (srv->remus->pairs) {
		struct pair *pr = srv->remus->pairs;

		srv->remus->pairs = pr->next;
		if (pr->lost)
			free(pr);
	}
	pthread_mutex_destroy(&srv->remus->lock);
	free(srv->remus);
	srv->remus = NULL;
}
