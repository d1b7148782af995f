// SPDX-License-Identifier: MIT
/*
 * The snapshot verbs: snapshot-create, -list, -delete, -verify, -export and
 * -revert, over the host's one repository (STATE_DIR/snapshots,
 * snapshot/repo.h). The repository is used by one thread at a time: every
 * job takes ctl__snap_lock, so a verify or a create waits for the one
 * before. The loop never takes that lock: it lists from a copy of the
 * listing refreshed at every ctl__snap_unlock, plus the creates under way
 * ("being written"), so xl snapshot-list answers while a snapshot runs.
 *
 * Snapshots belong to a domain's UUID. To find them once the domain is
 * gone (a revert of a destroyed domain, or a list by name), ferryd keeps
 * STATE_DIR/snapshot-owners: one "UUID NAME" line per UUID with the name
 * its domain had at its last snapshot.
 *
 * --lazy (snapshot-revert, and xl restore of an uncompressed save, which
 * ctl-save.c hands over) goes through restore/lazy.h: the reply comes once
 * the domain runs, and a job of its own waits for the last page.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "restore/lazy.h"
#include "restore/restore.h"
#include "snapshot/repo.h"
#include "snapshot/source.h"
#include "snapshot/stream.h"
#include "snapshot/take.h"
#include "toolstack/config.h"

/* Where a replacing revert builds the new copy before the old one goes. */
#define REVERT_SUFFIX "--reverting"
/* Where a lazy revert keeps the old one until every page is in. */
#define REVERT_OLD_SUFFIX "--reverted"

struct owner {
	uint8_t uuid[16];
	char name[HYP_NAME_MAX];
};

/* A create under way, for the listing. */
struct active {
	struct active *next;
	uint8_t uuid[16];
	char name[SNAP_NAME_MAX + 1];
	char dname[HYP_NAME_MAX];
	int64_t time;
	uint64_t memory_pages;
};

/* A domain's chain for snapshots asked without one (loop thread). */
struct chain_ent {
	struct chain_ent *next;
	uint32_t domid;
	struct snap_chain *c;
	bool busy; /* a create uses it */
	bool gone; /* the domain went meanwhile: freed when the create ends */
};

struct ctl_snap {
	pthread_mutex_t lock; /* the repository */
	struct snap_repo *repo;
	int open_rc; /* repo NULL: why */
	char open_err[1024];
	/* cache_lock: the listing as of the last unlock, owners, actives */
	pthread_mutex_t cache_lock;
	struct snap_info *cache;
	size_t ncache;
	struct owner *owners;
	size_t nowners;
	struct active *active;
	char *owners_path; /* STATE_DIR/snapshot-owners (malloc'd) */
	struct chain_ent *chains;
};

/* ---- the repository and the loop's copy of its listing ------------------ */

static void owners_load(struct ctl_snap *s)
{
	FILE *f = fopen(s->owners_path, "re");
	char line[HYP_NAME_MAX + 64];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		struct owner o = {0}, *n;
		size_t len = strcspn(line, "\n");

		line[len] = 0;
		if (len < 38 || line[36] != ' ')
			continue;
		line[36] = 0;
		if (xlm_uuid_parse(line, o.uuid))
			continue;
		snprintf(o.name, sizeof(o.name), "%.*s", (int)sizeof(o.name) - 1, line + 37);
		n = realloc(s->owners, (s->nowners + 1) * sizeof(*n));
		if (!n)
			break;
		s->owners = n;
		s->owners[s->nowners++] = o;
	}
	fclose(f);
}

/* Under cache_lock. Crash-safe: a new file renamed over the old. */
static int owners_save(struct ctl_snap *s, char *err, size_t errlen)
{
	struct afile *af;
	FILE *f;
	int rc = afile_open(s->owners_path, &af, err, errlen);

	if (rc)
		return rc;
	f = fdopen(dup(afile_fd(af)), "w");
	if (!f) {
		afile_abort(af);
		snprintf(err, errlen, "%s: %s", s->owners_path, ferry_strerror(errno));
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->nowners; i++) {
		char u[37];

		xlm_uuid_format(s->owners[i].uuid, u);
		fprintf(f, "%s %s\n", u, s->owners[i].name);
	}
	if (fclose(f)) {
		rc = -errno;
		afile_abort(af);
		snprintf(err, errlen, "writing %s: %s", s->owners_path, ferry_strerror(-rc));
		return rc;
	}
	return afile_commit(af, err, errlen);
}

/* Any thread: uuid's domain is called name now. */
static void owners_note(struct ctl_snap *s, const uint8_t uuid[16], const char *name)
{
	char err[512];
	size_t i;

	pthread_mutex_lock(&s->cache_lock);
	for (i = 0; i < s->nowners; i++)
		if (!memcmp(s->owners[i].uuid, uuid, 16))
			break;
	if (i < s->nowners && !strcmp(s->owners[i].name, name))
		goto out;
	if (i == s->nowners) {
		struct owner *n = realloc(s->owners, (s->nowners + 1) * sizeof(*n));

		if (!n)
			goto out;
		s->owners = n;
		memcpy(s->owners[s->nowners++].uuid, uuid, 16);
	}
	snprintf(s->owners[i].name, sizeof(s->owners[i].name), "%s", name);
	if (owners_save(s, err, sizeof(err)))
		log_warn("snapshots: cannot record the owner names: %s", err);
out:
	pthread_mutex_unlock(&s->cache_lock);
}

/* Under s->lock, with the repository open. */
static void cache_refresh(struct ctl_snap *s)
{
	struct snap_info *list = NULL;
	size_t n = 0;
	int rc = snap_list(s->repo, NULL, &list, &n);

	if (rc) {
		log_warn("snapshots: cannot list the repository: %s", ferry_strerror(rc));
		return;
	}
	pthread_mutex_lock(&s->cache_lock);
	free(s->cache);
	s->cache = list;
	s->ncache = n;
	pthread_mutex_unlock(&s->cache_lock);
}

int ctl_snapshot_start(struct ctl_server *srv)
{
	struct snap_repo_opts o = {.create = true,
				   .cross_domain_dedup = srv->opts->snapshot_dedup_host};
	struct ctl_snap *s = calloc(1, sizeof(*s));
	char dir[4200];

	if (!s)
		return -ENOMEM;
	if (asprintf(&s->owners_path, "%s/snapshot-owners", srv->opts->state_dir) < 0) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->cache_lock, NULL);
	owners_load(s);
	snprintf(dir, sizeof(dir), "%s/snapshots", srv->opts->state_dir);
	/* A damaged or newer repository does not stop ferryd: the snapshot
	 * verbs say what is wrong with it, everything else works. */
	s->open_rc = snap_repo_open(dir, &o, &s->repo, s->open_err, sizeof(s->open_err));
	if (s->open_rc) {
		log_err("snapshot repository %s unusable: %s", dir, s->open_err);
		s->repo = NULL;
	} else {
		cache_refresh(s);
	}
	srv->snap = s;
	return 0;
}

void ctl_snapshot_fini(struct ctl_server *srv)
{
	struct ctl_snap *s = srv->snap;

	if (!s)
		return;
	snap_repo_close(s->repo);
	while (s->active) {
		struct active *a = s->active;

		s->active = a->next;
		free(a);
	}
	while (s->chains) {
		struct chain_ent *e = s->chains;

		s->chains = e->next;
		snap_chain_free(e->c);
		free(e);
	}
	free(s->cache);
	free(s->owners);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->cache_lock);
	free(s->owners_path);
	free(s);
	srv->snap = NULL;
}

static int repo_unusable(const struct ctl_snap *s, char *err, size_t errlen)
{
	snprintf(err, errlen, "the snapshot repository is unusable: %.900s", s->open_err);
	return s->open_rc ?: -EIO;
}

int ctl__snap_lock(struct ctl_server *srv, struct snap_repo **r, char *err, size_t errlen)
{
	struct ctl_snap *s = srv->snap;

	*r = NULL;
	if (!s->repo)
		return repo_unusable(s, err, errlen);
	pthread_mutex_lock(&s->lock);
	*r = s->repo;
	return 0;
}

void ctl__snap_unlock(struct ctl_server *srv)
{
	cache_refresh(srv->snap);
	pthread_mutex_unlock(&srv->snap->lock);
}

/* ---- which domain's snapshots (loop thread) ----------------------------- */

struct target {
	uint8_t uuid[16];
	char name[HYP_NAME_MAX]; /* the domain's, or its owner name */
	uint32_t domid;
	bool exists;
};

/*
 * D is a domain here (by name or id), a UUID, or the name a domain had at
 * its last snapshot. 0, or -errno with err set.
 */
static int target_find(struct ctl_server *srv, const char *dom, struct target *t, char *err,
		       size_t errlen)
{
	struct ctl_snap *s = srv->snap;
	struct hyp_dom_config cfg;
	unsigned found = 0;
	char u[37];

	memset(t, 0, sizeof(*t));
	if (!hyp_domain_lookup(srv->hyp, dom, &t->domid) &&
	    !hyp_domain_config(srv->hyp, t->domid, &cfg)) {
		memcpy(t->uuid, cfg.uuid, 16);
		snprintf(t->name, sizeof(t->name), "%s", cfg.name);
		t->exists = true;
		return 0;
	}
	pthread_mutex_lock(&s->cache_lock);
	if (!xlm_uuid_parse(dom, t->uuid)) {
		found = 1;
		snprintf(t->name, sizeof(t->name), "%s", dom);
		for (size_t i = 0; i < s->nowners; i++)
			if (!memcmp(s->owners[i].uuid, t->uuid, 16))
				snprintf(t->name, sizeof(t->name), "%s", s->owners[i].name);
	}
	for (size_t i = 0; !found && i < s->nowners; i++) {
		if (strcmp(s->owners[i].name, dom))
			continue;
		if (found++) {
			xlm_uuid_format(s->owners[i].uuid, u);
			snprintf(err, errlen,
				 "domain '%s' does not exist and several domains of that name "
				 "have snapshots; give its UUID instead (e.g. %s, see "
				 "'xl snapshot-list -l')",
				 dom, u);
			pthread_mutex_unlock(&s->cache_lock);
			return -EINVAL;
		}
		memcpy(t->uuid, s->owners[i].uuid, 16);
		snprintf(t->name, sizeof(t->name), "%s", dom);
	}
	pthread_mutex_unlock(&s->cache_lock);
	if (!found) {
		snprintf(err, errlen, "domain '%s' does not exist and has no snapshots", dom);
		return -ENOENT;
	}
	return 0;
}

/* Loop thread: 0 if t's domain has a complete snapshot name; else -ENOENT
 * (or -EBUSY while it is written) with err saying whose it is, if any. */
static int snap_find(struct ctl_server *srv, const struct target *t, const char *name, char *err,
		     size_t errlen)
{
	struct ctl_snap *s = srv->snap;
	const uint8_t *other = NULL;
	int rc = -ENOENT;

	pthread_mutex_lock(&s->cache_lock);
	for (size_t i = 0; i < s->ncache; i++) {
		if (strcmp(s->cache[i].name, name))
			continue;
		if (!memcmp(s->cache[i].uuid, t->uuid, 16)) {
			rc = s->cache[i].complete ? 0 : -EBUSY;
			break;
		}
		other = s->cache[i].uuid;
	}
	for (struct active *a = s->active; rc == -ENOENT && a; a = a->next)
		if (!memcmp(a->uuid, t->uuid, 16) && !strcmp(a->name, name))
			rc = -EBUSY;
	if (rc == -EBUSY) {
		snprintf(err, errlen, "snapshot '%s' of domain '%s' is still being written", name,
			 t->name);
	} else if (rc && other) {
		char u[37], owner[HYP_NAME_MAX] = "";

		xlm_uuid_format(other, u);
		for (size_t i = 0; i < s->nowners; i++)
			if (!memcmp(s->owners[i].uuid, other, 16))
				snprintf(owner, sizeof(owner), "%s", s->owners[i].name);
		snprintf(err, errlen,
			 "domain '%s' has no snapshot '%s': that snapshot belongs to another "
			 "domain (uuid %s, named '%s' at its last snapshot)",
			 t->name, name, u, owner[0] ? owner : "?");
	} else if (rc) {
		snprintf(err, errlen,
			 "domain '%s' has no snapshot '%s' (see 'xl snapshot-list %s')", t->name,
			 name, t->name);
	}
	pthread_mutex_unlock(&s->cache_lock);
	return rc;
}

/* ---- jobs --------------------------------------------------------------- */

enum sjob_kind { SJ_CREATE, SJ_DELETE, SJ_VERIFY, SJ_EXPORT, SJ_REVERT, SJ_LAZY_FILE };

struct sjob {
	struct ctl_job job;
	enum sjob_kind kind;
	char what[64];
	long long id;
	bool has_id;
	struct ctl_server *srv;
	struct target t;
	char name[SNAP_NAME_MAX + 1];
	bool claimed; /* holds t.domid (HYP_OP_SNAPSHOT) */
	/* create */
	bool paused;
	struct snap_chain *chain;    /* borrowed */
	struct chain_ent *own_chain; /* ferryd's, when the caller gave none */
	struct active *active;
	struct snap_take_report rep;
	void (*done)(void *opaque, int rc, const char *err, const struct snap_take_report *rep);
	void *opaque;
	/* verify */
	struct snap_verify_report vrep;
	bool all; /* verify: every snapshot of the domain */
	/* export */
	char path[4096];
	uint64_t bytes;
	/* revert */
	char newname[HYP_NAME_MAX];
	uint32_t new_domid;
	bool replaced;
	struct rst_stats rst;
	/* --lazy (revert, restore): the domain's pages still arriving; a
	 * job of its own waits for them once the reply is out */
	bool lazy;
	struct rst_lazy *lz;
	double t_req;	     /* ferry_now_s() at the request's arrival */
	double to_running_s; /* from t_req until the domain runs */
	bool held_old; /* lazy replace: the old domain kept, paused, until
			* every page is in (the wait job owns its claim) */
	int rc;
	char err[4096];
};

struct snap_ev {
	struct ctl_call call;
	struct ctl_client *cl;
	char *line;
	size_t len;
};

/* Loop thread: a progress line to the job's client (the job's done comes
 * later through the same queue, so the client is still there). */
static void ev_send(struct ctl_call *c)
{
	struct snap_ev *e = container_of(c, struct snap_ev, call);

	if (!e->cl->closing && !e->cl->dead)
		ctl__send(e->cl, e->line, e->len);
	else
		free(e->line);
	free(e);
}

static void on_progress(void *opaque, const struct mig_progress *p)
{
	struct sjob *j = opaque;
	yajl_gen g;
	struct snap_ev *e;

	if (!j->job.cl)
		return;
	g = xlm_event_begin("snapshot-progress");
	if (!g)
		return;
	if (xlm_gen_kv_str(g, "domain", j->t.name) || xlm_gen_kv_str(g, "name", j->name) ||
	    xlm_gen_kv_str(g, "phase", p->phase ? p->phase : "round") ||
	    xlm_gen_kv_int(g, "round", p->round) ||
	    xlm_gen_kv_int(g, "pages_left", (long long)p->pages_left) ||
	    xlm_gen_kv_double(g, "dirty_mib_s", p->dirty_rate * 4096 / (1 << 20))) {
		yajl_gen_free(g);
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e || xlm_gen_finish(g, &e->line, &e->len)) {
		free(e);
		return;
	}
	e->cl = j->job.cl;
	e->call.fn = ev_send;
	if (ctl__loop_call(j->srv, &e->call)) {
		free(e->line);
		free(e);
	}
}

static void do_create(struct sjob *j)
{
	struct snap_take_opts o = {.name = j->name,
				   .xenstore = {ctl__xs_stream_read, j->srv},
				   .leave_paused = j->paused,
				   .cancel = &j->job.cancelled,
				   .progress = on_progress,
				   .opaque = j,
				   .chain = j->chain};
	struct hyp *h = j->srv->hyp;
	struct hyp_dom_config cfg;
	struct snap_repo *r;
	char *json = NULL;

	j->rc = hyp_domain_config(h, j->t.domid, &cfg) ?: xlm_cfg_to_json(&cfg, &json);
	if (j->rc) {
		snprintf(j->err, sizeof(j->err), "domain '%s': cannot encode its config: %s",
			 j->t.name, ferry_strerror(j->rc));
		return;
	}
	o.config_json = json;
	j->rc = ctl__snap_lock(j->srv, &r, j->err, sizeof(j->err));
	if (!j->rc) {
		j->rc = snap_take(h, j->t.domid, r, j->t.uuid, &o, &j->rep, j->err, sizeof(j->err));
		ctl__snap_unlock(j->srv);
	}
	free(json);
	if (j->rc) {
		if (!j->err[0])
			snprintf(j->err, sizeof(j->err), "snapshot failed: %s",
				 ferry_strerror(j->rc));
		return;
	}
	owners_note(j->srv->snap, j->t.uuid, cfg.name);
	log_info("d%u: snapshot '%s' taken (%s, pause %.1f ms, %.3f s, %" PRIu64 " bytes)",
		 j->t.domid, j->name, j->rep.incremental ? "incremental" : "full",
		 j->rep.pause_s * 1e3, j->rep.seconds, j->rep.bytes);
}

static void do_delete(struct sjob *j)
{
	struct snap_repo *r;

	j->rc = ctl__snap_lock(j->srv, &r, j->err, sizeof(j->err));
	if (j->rc)
		return;
	j->rc = snap_delete(r, j->t.uuid, j->name, j->err, sizeof(j->err));
	ctl__snap_unlock(j->srv);
	if (!j->rc)
		log_info("snapshot '%s' of '%s' deleted", j->name, j->t.name);
}

static void do_verify(struct sjob *j)
{
	struct snap_repo *r;

	j->rc = ctl__snap_lock(j->srv, &r, j->err, sizeof(j->err));
	if (j->rc)
		return;
	j->rc = snap_verify(r, j->t.uuid, j->all ? NULL : j->name, &j->vrep, j->err,
			    sizeof(j->err));
	ctl__snap_unlock(j->srv);
}

static void do_export(struct sjob *j)
{
	struct snap_repo *r;
	struct afile *af;

	j->rc = afile_open(j->path, &af, j->err, sizeof(j->err));
	if (j->rc)
		return;
	j->rc = ctl__snap_lock(j->srv, &r, j->err, sizeof(j->err));
	if (!j->rc) {
		j->rc = snap_export(r, j->t.uuid, j->name, afile_fd(af), &j->bytes, j->err,
				    sizeof(j->err));
		ctl__snap_unlock(j->srv);
	}
	if (j->rc) {
		afile_abort(af);
		return;
	}
	j->rc = afile_commit(af, j->err, sizeof(j->err));
}

static void uuid_new(uint8_t u[16])
{
	struct timespec ts;

	if (getrandom(u, 16, GRND_NONBLOCK) != 16) {
		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(u, &ts, sizeof(ts) < 16 ? sizeof(ts) : 16);
		u[15] ^= (uint8_t)getpid();
	}
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
}

/* The config of a revert's or a lazy restore's domain (rst_config_fn). */
static int revert_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
			 size_t errlen)
{
	struct sjob *j = opaque;
	int rc = xlm_cfg_from_json_text(json, cfg, err, errlen);

	if (rc)
		return rc;
	/* The last moment before the domain exists: a client gone by now
	 * gets none. */
	if (strm_cancel_fired(j->job.cancel)) {
		snprintf(err, errlen, "cancelled: the client went away");
		return -ECANCELED;
	}
	if (j->kind == SJ_LAZY_FILE) {
		/* restore -n: another name, the same domain (as xl restore) */
		if (j->newname[0])
			snprintf(cfg->name, sizeof(cfg->name), "%s", j->newname);
	} else if (j->newname[0]) {
		/* A second domain beside the first: its own identity, so its
		 * snapshots are its own. */
		snprintf(cfg->name, sizeof(cfg->name), "%s", j->newname);
		uuid_new(cfg->uuid);
	} else if (j->t.exists) {
		/* Temporary: a long name is cut to leave room for the suffix. */
		snprintf(cfg->name, sizeof(cfg->name), "%.*s%s",
			 (int)(sizeof(cfg->name) - sizeof(REVERT_SUFFIX)), j->t.name,
			 REVERT_SUFFIX);
	} else {
		snprintf(cfg->name, sizeof(cfg->name), "%s", j->t.name);
	}
	return ctl__name_check(j->srv, cfg->name, err, errlen);
}

/* A lazily restored domain's source failed (fault thread or fetcher): it
 * is paused already; say so once. */
static void lazy_failed(void *opaque, uint32_t domid, const char *msg)
{
	log_err("d%u: lazy restore failed, the domain stays paused (never run on missing "
		"memory): %s",
		domid, msg);
}

/* Under the repository's lock: the domain from snapshot j->name, its
 * memory served lazily from the repository's packs (snapshot/source.h). */
static int lazy_start_snapshot(struct sjob *j, struct snap_repo *r, const struct rst_opts *o)
{
	struct rst_lazy_opts lo = {.restore = *o, .failed = lazy_failed};
	struct snap_source *src;
	struct strm_io *state;
	int rc;

	rc = snap_source_open_with_state(r, j->t.uuid, j->name, &src, &state, j->err,
					 sizeof(j->err));
	if (rc)
		return rc;
	rc = rst_lazy_restore(j->srv->hyp, state, &snap_page_source_ops, src, &lo, &j->new_domid,
			      &j->lz, j->err, sizeof(j->err));
	strm_io_close(state); /* it holds a view of the repository */
	return rc;
}

/* A lazy revert whose source failed (its lazy restore freed): the new
 * domain goes, the old one it set aside runs again under its name. */
static void lazy_old_back(struct ctl_server *srv, uint32_t new_domid, uint32_t old_domid,
			  const char *old_name)
{
	struct hyp *h = srv->hyp;
	struct hyp_dom_config cfg;

	log_err("d%u: the lazy revert failed: destroying it, '%s' (d%u) runs again as it was",
		new_domid, old_name, old_domid);
	hyp_domain_destroy(h, new_domid);
	for (int i = 0; i < 200 && hyp_domain_rename(h, old_domid, old_name) == -EEXIST; i++)
		usleep(10000);
	if (!hyp_domain_config(h, old_domid, &cfg))
		ctl__record_write(srv, old_domid, &cfg);
	ctl__xs_domain_add(srv, old_domid);
	hyp_domain_op_unpause(h, old_domid);
}

/*
 * The snapshot's stream restored paused under a temporary name; only once
 * it is whole does the old domain go and the new one take its name, then
 * run: never two copies running, and a failed restore leaves the old
 * domain as it was.
 */
static void do_revert(struct sjob *j)
{
	struct rst_opts o = {.paused = true,
			     .config = revert_config,
			     .opaque = j,
			     .xenstore = ctl__xs_stream_write,
			     .xenstore_opaque = j->srv};
	bool replace = j->t.exists && !j->newname[0];
	struct hyp *h = j->srv->hyp;
	struct hyp_dom_config cfg;
	struct strm_io *io = NULL;
	struct snap_repo *r;
	const char *name;
	int rc;

	j->rc = ctl__snap_lock(j->srv, &r, j->err, sizeof(j->err));
	if (j->rc)
		return;
	if (j->lazy) {
		/* A replacing revert stops the old domain first: what it does
		 * from here on the revert throws away, and its vCPUs off the
		 * CPUs leave them to the restore (on 2 cores the old guest, the
		 * restore and its fetcher took turns: 2-10 ms more). A failed
		 * revert lets it run on. */
		if (replace) {
			j->rc = hyp_domain_op_pause(h, j->t.domid);
			if (j->rc) {
				ctl__snap_unlock(j->srv);
				snprintf(j->err, sizeof(j->err),
					 "cannot pause domain '%s' for the lazy revert: %s; it is "
					 "unchanged",
					 j->t.name, ferry_strerror(j->rc));
				return;
			}
		}
		j->rc = lazy_start_snapshot(j, r, &o);
		ctl__snap_unlock(j->srv);
		if (j->rc && replace)
			hyp_domain_op_unpause(h, j->t.domid);
		goto restored;
	}
	j->rc = snap_stream_open(r, j->t.uuid, j->name, 0, &io, j->err, sizeof(j->err));
	/* The stream is read from the repository, never waits on a peer:
	 * a client gone is seen at the config (revert_config), the last
	 * moment before a domain exists, and at the point of no return. */
	if (!j->rc)
		j->rc = rst_restore_domain(h, io, &o, &j->new_domid, &j->rst, j->err,
					   sizeof(j->err));
	if (j->rc && io && strm_io_error(io)[0] && !strstr(j->err, strm_io_error(io))) {
		/* A damaged page: the io names the snapshot, pack and pfn. */
		size_t n = strlen(j->err);

		snprintf(j->err + n, sizeof(j->err) - n, "%s%s", n ? ": " : "", strm_io_error(io));
	}
	strm_io_close(io);
	ctl__snap_unlock(j->srv);
restored:
	if (j->rc) {
		if (!j->err[0])
			snprintf(j->err, sizeof(j->err), "revert failed: %s",
				 ferry_strerror(j->rc));
		return;
	}
	if (ctl__job_no_return(&j->job)) {
		hyp_domain_destroy(h, j->new_domid);
		if (replace && j->lz)
			hyp_domain_op_unpause(h, j->t.domid); /* paused above */
		rst_lazy_free(j->lz); /* destroyed first: it does not wait */
		j->lz = NULL;
		j->rc = -ECANCELED;
		snprintf(j->err, sizeof(j->err), "cancelled: the client went away");
		return;
	}
	name = j->newname[0] ? j->newname : j->t.name;
	if (replace && j->lz) {
		/* Lazily, damage shows only as pages arrive: the old domain
		 * stays, paused and held, under another name until the last
		 * page is in; a failing source brings it back (lazy_wait_run).
		 * It was paused before the restore. */
		char tmp[HYP_NAME_MAX];

		snprintf(tmp, sizeof(tmp), "%.*s%s",
			 (int)(sizeof(tmp) - sizeof(REVERT_OLD_SUFFIX)), j->t.name,
			 REVERT_OLD_SUFFIX);
		rc = hyp_domain_rename(h, j->t.domid, tmp);
		if (!rc) {
			rc = hyp_domain_rename(h, j->new_domid, name);
			if (rc)
				hyp_domain_rename(h, j->t.domid, j->t.name);
		}
		if (rc) {
			hyp_domain_destroy(h, j->new_domid);
			rst_lazy_free(j->lz);
			j->lz = NULL;
			hyp_domain_op_unpause(h, j->t.domid);
			j->rc = rc;
			snprintf(j->err, sizeof(j->err),
				 "cannot set domain '%s' aside for the lazy revert: %s; it is "
				 "unchanged",
				 j->t.name, ferry_strerror(rc));
			return;
		}
		ctl__xs_domain_add(j->srv, j->t.domid);
		j->held_old = true;
		j->claimed = false; /* the wait job releases it */
		j->replaced = true;
	} else if (replace) {
		rc = hyp_domain_destroy(h, j->t.domid);
		if (rc && rc != -ENOENT) {
			hyp_domain_destroy(h, j->new_domid);
			rst_lazy_free(j->lz);
			j->lz = NULL;
			j->rc = rc;
			snprintf(j->err, sizeof(j->err),
				 "cannot destroy domain '%s' to replace it: %s; it is unchanged",
				 j->t.name, ferry_strerror(rc));
			return;
		}
		j->replaced = true;
		/* The old name is free once its domain is gone; a dying
		 * domain may hold it a moment longer. */
		for (int i = 0; i < 200; i++) {
			rc = hyp_domain_rename(h, j->new_domid, name);
			if (rc != -EEXIST)
				break;
			usleep(10000);
		}
		if (rc)
			log_warn("d%u: cannot rename the reverted copy to '%s': %s", j->new_domid,
				 name, ferry_strerror(rc));
	}
	ctl__xs_domain_add(j->srv, j->new_domid);
	if (!j->paused) {
		rc = hyp_domain_unpause(h, j->new_domid);
		if (rc && !j->lz)
			log_warn("d%u: cannot unpause after the revert: %s", j->new_domid,
				 ferry_strerror(rc));
	}
	j->to_running_s = ferry_now_s() - j->t_req;
	/* Bookkeeping, with its fsyncs, once the guest runs. */
	if (!hyp_domain_config(h, j->new_domid, &cfg)) {
		ctl__record_write(j->srv, j->new_domid, &cfg);
		owners_note(j->srv->snap, cfg.uuid, cfg.name);
	}
	if (j->held_old) {
		struct rst_lazy_stats st;

		rst_lazy_stats(j->lz, &st);
		if (st.failed) {
			/* Damage found already: the reply says so. */
			char why[2048] = "";

			rst_lazy_wait(j->lz, why, sizeof(why)); /* at once: it failed */
			rst_lazy_free(j->lz);
			j->lz = NULL;
			lazy_old_back(j->srv, j->new_domid, j->t.domid, j->t.name);
			j->held_old = false;
			j->claimed = true; /* released by the reply */
			j->replaced = false;
			j->rc = -EIO;
			snprintf(j->err, sizeof(j->err), "revert failed: %s; '%s' is unchanged",
				 why, j->t.name);
			return;
		}
	}
	log_info("d%u: '%s' reverted to snapshot '%s'%s", j->new_domid, name, j->name,
		 j->replaced ? " (replacing the running domain)" : "");
}

/* xl restore --lazy FILE: an uncompressed save, indexed, its pages served
 * from the file as the guest touches them (restore/lazy.h). */
static void do_lazy_file(struct sjob *j)
{
	struct rst_lazy_opts lo = {.restore = {.paused = j->paused,
					       .config = revert_config,
					       .opaque = j,
					       .xenstore = ctl__xs_stream_write,
					       .xenstore_opaque = j->srv},
				   .failed = lazy_failed};
	struct hyp *h = j->srv->hyp;
	struct rst_file_source *fs;
	struct hyp_dom_config cfg;
	struct strm_io *state;

	j->rc = rst_file_source_open(j->path, &fs, &state, j->err, sizeof(j->err));
	if (j->rc)
		return;
	j->rc = rst_lazy_restore(h, state, &rst_file_source_ops, fs, &lo, &j->new_domid, &j->lz,
				 j->err, sizeof(j->err));
	strm_io_close(state);
	j->to_running_s = ferry_now_s() - j->t_req;
	if (j->rc)
		return;
	if (strm_cancel_fired(j->job.cancel)) {
		/* Its client left: nobody would learn of this domain. */
		hyp_domain_destroy(h, j->new_domid);
		rst_lazy_free(j->lz);
		j->lz = NULL;
		j->rc = -ECANCELED;
		snprintf(j->err, sizeof(j->err), "cancelled: the client went away");
		return;
	}
	if (!hyp_domain_config(h, j->new_domid, &cfg))
		ctl__record_write(j->srv, j->new_domid, &cfg);
	ctl__xs_domain_add(j->srv, j->new_domid);
	log_info("d%u: restored lazily from %s, running after %.2f ms", j->new_domid, j->path,
		 j->to_running_s * 1e3);
}

static void sjob_run(struct ctl_job *job)
{
	struct sjob *j = container_of(job, struct sjob, job);

	switch (j->kind) {
	case SJ_CREATE: do_create(j); break;
	case SJ_DELETE: do_delete(j); break;
	case SJ_VERIFY: do_verify(j); break;
	case SJ_EXPORT: do_export(j); break;
	case SJ_REVERT: do_revert(j); break;
	case SJ_LAZY_FILE: do_lazy_file(j); break;
	}
}

static int gen_take(yajl_gen g, const struct sjob *j)
{
	const struct snap_take_report *r = &j->rep;

	return xlm_gen_kv_str(g, "parent", r->parent) ?:
	       xlm_gen_kv_bool(g, "incremental", r->incremental) ?:
	       xlm_gen_kv_double(g, "pause_ms", r->pause_s * 1e3) ?:
	       xlm_gen_kv_double(g, "seconds", r->seconds) ?:
	       xlm_gen_kv_int(g, "bytes", (long long)r->bytes) ?:
	       xlm_gen_kv_int(g, "pages", (long long)r->pages) ?:
	       xlm_gen_kv_int(g, "pages_new", (long long)r->stored) ?:
	       xlm_gen_kv_int(g, "pages_deduplicated", (long long)r->deduped) ?:
	       xlm_gen_kv_int(g, "pages_zero", (long long)r->zero) ?:
	       xlm_gen_kv_int(g, "holes", (long long)r->holes);
}

static int gen_result(yajl_gen g, const void *arg)
{
	const struct sjob *j = arg;
	char u[37];
	int rc;

	xlm_uuid_format(j->t.uuid, u);
	rc = xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", j->t.name) ?:
	     xlm_gen_kv_str(g, "uuid", u) ?: xlm_gen_kv_str(g, "name", j->name);
	if (rc)
		return rc;
	switch (j->kind) {
	case SJ_CREATE: rc = xlm_gen_kv_int(g, "domid", j->t.domid) ?: gen_take(g, j); break;
	case SJ_DELETE: break;
	case SJ_VERIFY:
		rc = xlm_gen_kv_int(g, "snapshots", (long long)j->vrep.snapshots) ?:
		     xlm_gen_kv_int(g, "pages", (long long)j->vrep.pages) ?:
		     xlm_gen_kv_int(g, "bad", (long long)j->vrep.bad);
		break;
	case SJ_EXPORT:
		rc = xlm_gen_kv_str(g, "path", j->path)
			     ?: xlm_gen_kv_int(g, "bytes", (long long)j->bytes);
		break;
	case SJ_REVERT:
		rc = xlm_gen_kv_int(g, "domid", j->new_domid) ?:
		     xlm_gen_kv_str(g, "new_name", j->newname[0] ? j->newname : j->t.name) ?:
		     xlm_gen_kv_bool(g, "replaced", j->replaced) ?:
		     xlm_gen_kv_int(g, "pages", (long long)j->rst.pages) ?:
		     xlm_gen_kv_double(g, "seconds", j->rst.seconds) ?:
		     xlm_gen_kv_bool(g, "lazy", j->lazy) ?:
		     xlm_gen_kv_double(g, "to_running_ms", j->to_running_s * 1e3);
		break;
	case SJ_LAZY_FILE:
		rc = xlm_gen_kv_int(g, "domid", j->new_domid) ?: xlm_gen_kv_bool(g, "lazy", true) ?:
		     xlm_gen_kv_double(g, "to_running_ms", j->to_running_s * 1e3) ?:
		     xlm_gen_kv_double(g, "seconds", j->to_running_s);
		break;
	}
	return rc ?: xlm_gen_map_close(g);
}

static void active_drop(struct ctl_snap *s, struct active *a)
{
	pthread_mutex_lock(&s->cache_lock);
	for (struct active **p = &s->active; *p; p = &(*p)->next) {
		if (*p == a) {
			*p = a->next;
			break;
		}
	}
	pthread_mutex_unlock(&s->cache_lock);
	free(a);
}

/* Loop thread: ferryd's chain for domid, created on first use; NULL
 * (a full snapshot) without memory. */
static struct chain_ent *chain_get(struct ctl_snap *s, uint32_t domid)
{
	struct chain_ent *e;

	for (e = s->chains; e; e = e->next)
		if (e->domid == domid && !e->gone)
			return e->busy ? NULL : e;
	e = calloc(1, sizeof(*e));
	if (!e || snap_chain_new(&e->c)) {
		free(e);
		return NULL;
	}
	e->domid = domid;
	e->next = s->chains;
	s->chains = e;
	return e;
}

static void chain_drop(struct ctl_snap *s, struct chain_ent *e)
{
	for (struct chain_ent **p = &s->chains; *p; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			break;
		}
	}
	snap_chain_free(e->c);
	free(e);
}

void ctl__snapshot_domain_gone(struct ctl_server *srv, uint32_t domid)
{
	struct ctl_snap *s = srv->snap;

	if (!s)
		return;
	for (struct chain_ent *e = s->chains, *next; e; e = next) {
		next = e->next;
		if (e->domid != domid)
			continue;
		if (e->busy)
			e->gone = true;
		else
			chain_drop(s, e);
	}
}

/* A lazily restored domain's pages arriving: a job waits for the last,
 * logs the figures and frees the lazy restore. */
struct lazy_wait {
	struct ctl_job job;
	char what[48];
	uint32_t domid;
	struct rst_lazy *l;
	/* a lazy revert's old domain, paused and claimed (HYP_OP_SNAPSHOT) */
	bool old;
	uint32_t old_domid;
	char old_name[HYP_NAME_MAX];
	struct ctl_server *srv;
};

/* The lazy revert's old domain: gone once the new one has every page, or
 * back under its name and running when the new one's source failed. */
static void lazy_old_settle(struct lazy_wait *w, int rc)
{
	struct hyp *h = w->srv->hyp;

	if (rc != -EIO) {
		hyp_domain_destroy(h, w->old_domid);
		return;
	}
	lazy_old_back(w->srv, w->domid, w->old_domid, w->old_name);
	hyp_domain_release(h, w->old_domid, HYP_OP_SNAPSHOT);
}

static void lazy_wait_run(struct ctl_job *job)
{
	struct lazy_wait *w = container_of(job, struct lazy_wait, job);
	struct rst_lazy_stats st;
	char err[1024] = "";
	int rc = rst_lazy_wait(w->l, err, sizeof(err));

	rst_lazy_stats(w->l, &st);
	if (!rc)
		log_info("d%u: lazy restore: every page in after %.3f s (running after %.2f ms; "
			 "%" PRIu64 " faults, p50 %.1f us, p99 %.1f us; %" PRIu64 " fetched)",
			 w->domid, st.all_in_s, st.to_running_s * 1e3, st.faults, st.fault_p50_us,
			 st.fault_p99_us, st.fetched);
	else if (rc != -ENOENT)
		log_err("d%u: lazy restore: %s", w->domid, err[0] ? err : ferry_strerror(rc));
	if (w->old && rc == -EIO) {
		/* Failed: its threads released into the pause first, then
		 * it goes (restore/lazy.h's order) and the old one returns. */
		rst_lazy_free(w->l);
		lazy_old_settle(w, rc);
		return;
	}
	if (w->old)
		lazy_old_settle(w, rc);
	/* Otherwise a failed one stays paused (its threads released into the
	 * pause) for the user to see and destroy. */
	rst_lazy_free(w->l);
}

static void lazy_wait_done(struct ctl_job *job)
{
	free(container_of(job, struct lazy_wait, job));
}

/* Loop thread. j: the revert or restore that made domid (its old domain,
 * if held, goes with the wait). */
static void lazy_wait_start(struct ctl_server *srv, uint32_t domid, struct rst_lazy *l,
			    const struct sjob *j)
{
	struct lazy_wait *w = calloc(1, sizeof(*w));
	int rc = w ? 0 : -ENOMEM;

	if (w) {
		w->srv = srv;
		if (j->held_old) {
			w->old = true;
			w->old_domid = j->t.domid;
			snprintf(w->old_name, sizeof(w->old_name), "%s", j->t.name);
		}
		snprintf(w->what, sizeof(w->what), "lazy restore of d%u", domid);
		w->job.what = w->what;
		w->job.run = lazy_wait_run;
		w->job.done = lazy_wait_done;
		w->domid = domid;
		w->l = l;
		rc = ctl__job_start(srv, &w->job);
	}
	if (rc) {
		/* Nobody could wait for its pages: it cannot be left half in. */
		log_err("d%u: cannot wait for its lazy restore (%s): destroying it", domid,
			ferry_strerror(rc));
		hyp_domain_destroy(srv->hyp, domid);
		rst_lazy_free(l);
		if (j->held_old) {
			/* its replacement is gone: the old one runs again */
			hyp_domain_rename(srv->hyp, j->t.domid, j->t.name);
			hyp_domain_op_unpause(srv->hyp, j->t.domid);
			hyp_domain_release(srv->hyp, j->t.domid, HYP_OP_SNAPSHOT);
		}
		free(w);
	}
}

/* Loop thread, the job's done. */
static void sjob_done(struct ctl_job *job)
{
	struct sjob *j = container_of(job, struct sjob, job);
	struct ctl_job_reply r = {.id = j->id,
				  .has_id = j->has_id,
				  .domid = j->t.domid,
				  .claim = j->claimed ? HYP_OP_SNAPSHOT : HYP_OP_NONE,
				  .rc = j->rc,
				  .err = j->err,
				  .gen = gen_result,
				  .arg = j};

	if (j->active)
		active_drop(j->srv->snap, j->active);
	if (j->own_chain) {
		j->own_chain->busy = false;
		if (j->own_chain->gone)
			chain_drop(j->srv->snap, j->own_chain);
	}
	ctl__job_reply(job, &r);
	if (j->lz)
		lazy_wait_start(j->srv, j->new_domid, j->lz, j);
	if (j->done)
		j->done(j->opaque, j->rc, j->err, j->rc ? NULL : &j->rep);
	free(j);
}

/* Loop thread. On failure replies (if there is a client), undoes the claim
 * and frees j. */
static int sjob_start(struct sjob *j, enum sjob_kind kind, const char *what)
{
	int rc;

	j->kind = kind;
	snprintf(j->what, sizeof(j->what), "%s", what);
	j->job.what = j->what;
	j->job.run = sjob_run;
	j->job.done = sjob_done;
	rc = ctl__job_start(j->srv, &j->job);
	if (!rc)
		return 0;
	snprintf(j->err, sizeof(j->err), "cannot start the %s: %s", what, ferry_strerror(rc));
	if (j->job.cl)
		ctl__reply_error(j->job.cl, j->id, j->has_id, rc, "%s", j->err);
	if (j->claimed)
		hyp_domain_release(j->srv->hyp, j->t.domid, HYP_OP_SNAPSHOT);
	if (j->active)
		active_drop(j->srv->snap, j->active);
	if (j->own_chain)
		j->own_chain->busy = false;
	free(j);
	return rc;
}

#define REPLY_ERR(cl, req, err, ...)                                                               \
	ctl__reply_error(cl, (req)->id, (req)->has_id, err, __VA_ARGS__)

/* Loop thread: a job for request req on args.domain and args.name (needed
 * with need_name; an existing snapshot's with existing), or NULL (replied). */
static struct sjob *sjob_new(struct ctl_client *cl, const struct xlm_req *req, bool need_name,
			     bool existing)
{
	const char *dom = xlm_args_str(req, "domain"), *name = xlm_args_str(req, "name");
	struct ctl_snap *s = cl->srv->snap;
	struct sjob *j;
	char err[1024];
	int rc;

	if (!dom) {
		REPLY_ERR(cl, req, -EINVAL, "%s: expected a string \"domain\"", req->op);
		return NULL;
	}
	if (need_name && !name) {
		REPLY_ERR(cl, req, -EINVAL, "%s: expected a string \"name\"", req->op);
		return NULL;
	}
	if (name && snap_name_check(name, err, sizeof(err))) {
		REPLY_ERR(cl, req, -EINVAL, "%s: bad snapshot name: %s", req->op, err);
		return NULL;
	}
	if (!s->repo) {
		rc = repo_unusable(s, err, sizeof(err));
		REPLY_ERR(cl, req, rc, "%s", err);
		return NULL;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		REPLY_ERR(cl, req, -ENOMEM, "out of memory");
		return NULL;
	}
	j->t_req = ferry_now_s();
	j->job.cl = cl;
	j->id = req->id;
	j->has_id = req->has_id;
	j->srv = cl->srv;
	if (name)
		snprintf(j->name, sizeof(j->name), "%s", name);
	rc = target_find(cl->srv, dom, &j->t, err, sizeof(err));
	if (!rc && existing && name)
		rc = snap_find(cl->srv, &j->t, j->name, err, sizeof(err));
	if (rc) {
		REPLY_ERR(cl, req, rc, "%s", err);
		free(j);
		return NULL;
	}
	return j;
}

/* ---- snapshot-create ---------------------------------------------------- */

/* Loop thread: a free default name, the time like 20261206-034500. */
static void default_name(struct ctl_snap *s, const uint8_t uuid[16], char *out, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;
	char base[32];
	bool taken = true;

	gmtime_r(&now, &tm);
	strftime(base, sizeof(base), "%Y%m%d-%H%M%S", &tm);
	pthread_mutex_lock(&s->cache_lock);
	for (unsigned n = 1; taken; n++) {
		if (n == 1)
			snprintf(out, size, "%s", base);
		else
			snprintf(out, size, "%s-%u", base, n);
		taken = false;
		for (size_t i = 0; i < s->ncache && !taken; i++)
			taken = !memcmp(s->cache[i].uuid, uuid, 16) &&
				!strcmp(s->cache[i].name, out);
		for (struct active *a = s->active; a && !taken; a = a->next)
			taken = !memcmp(a->uuid, uuid, 16) && !strcmp(a->name, out);
	}
	pthread_mutex_unlock(&s->cache_lock);
}

/* Loop thread: the checks a snapshot of domid passes before its claim
 * (ctl__domain_check's, for callers without a client). */
static int create_check(struct ctl_server *srv, uint32_t domid, char *err, size_t errlen)
{
	struct hyp_op_holder hold;
	struct hyp_dom_info info;
	size_t n, il = strlen(CTL_INCOMING_SUFFIX);
	int rc = hyp_domain_info(srv->hyp, domid, &info)
			 ?: hyp_domain_holder(srv->hyp, domid, &hold);

	if (rc) {
		snprintf(err, errlen, "domain %u: %s", domid, ferry_strerror(rc));
		return rc;
	}
	n = strlen(info.name);
	if (hold.op != HYP_OP_NONE || info.restoring ||
	    (n > il && !strcmp(info.name + n - il, CTL_INCOMING_SUFFIX))) {
		snprintf(err, errlen, "cannot snapshot domain '%s': it is %s", info.name,
			 hold.op != HYP_OP_NONE ? (hold.detail[0] ? hold.detail : "held")
			 : info.restoring	? "being restored"
						: "being received by a migration");
		return -EBUSY;
	}
	if (info.fenced) {
		snprintf(err, errlen, "cannot snapshot domain '%s': it is fenced after a migration",
			 info.name);
		return -EPERM;
	}
	return 0;
}

/* Loop thread: the create j (holding its domain) is listed as under way. */
static void active_add(struct sjob *j)
{
	struct ctl_snap *s = j->srv->snap;
	struct hyp_dom_info info;
	struct active *a = calloc(1, sizeof(*a));

	if (!a)
		return; /* listed only once complete */
	memcpy(a->uuid, j->t.uuid, 16);
	snprintf(a->name, sizeof(a->name), "%s", j->name);
	snprintf(a->dname, sizeof(a->dname), "%s", j->t.name);
	a->time = time(NULL);
	if (!hyp_domain_info(j->srv->hyp, j->t.domid, &info))
		a->memory_pages = info.maxmem_kb / 4;
	pthread_mutex_lock(&s->cache_lock);
	a->next = s->active;
	s->active = a;
	pthread_mutex_unlock(&s->cache_lock);
	j->active = a;
	if (!j->chain) {
		/* Log-dirty stays on between a domain's snapshots, so the
		 * next one is incremental. */
		j->own_chain = chain_get(s, j->t.domid);
		if (j->own_chain) {
			j->own_chain->busy = true;
			j->chain = j->own_chain->c;
		}
	}
}

/* Loop thread: is name taken by uuid's domain? */
static bool name_taken(struct ctl_snap *s, const uint8_t uuid[16], const char *name)
{
	bool taken = false;

	pthread_mutex_lock(&s->cache_lock);
	for (size_t i = 0; i < s->ncache && !taken; i++)
		taken = !memcmp(s->cache[i].uuid, uuid, 16) && !strcmp(s->cache[i].name, name);
	for (struct active *a = s->active; a && !taken; a = a->next)
		taken = !memcmp(a->uuid, uuid, 16) && !strcmp(a->name, name);
	pthread_mutex_unlock(&s->cache_lock);
	return taken;
}

int ctl__snapshot_start(struct ctl_server *srv, uint32_t domid, const char *name,
			struct snap_chain *chain,
			void (*done)(void *opaque, int rc, const char *err,
				     const struct snap_take_report *rep),
			void *opaque, char *err, size_t errlen)
{
	char detail[HYP_OP_DETAIL_MAX];
	struct hyp_dom_config cfg;
	struct sjob *j;
	int rc;

	err[0] = 0;
	if (!srv->snap->repo)
		return repo_unusable(srv->snap, err, errlen);
	if (name && (rc = snap_name_check(name, err, errlen)))
		return rc;
	rc = create_check(srv, domid, err, errlen) ?: hyp_domain_config(srv->hyp, domid, &cfg);
	if (rc) {
		if (!err[0])
			snprintf(err, errlen, "domain %u: %s", domid, ferry_strerror(rc));
		return rc;
	}
	if (name && name_taken(srv->snap, cfg.uuid, name)) {
		snprintf(err, errlen, "domain '%s' has a snapshot '%s' already", cfg.name, name);
		return -EEXIST;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->srv = srv;
	j->t.domid = domid;
	j->t.exists = true;
	memcpy(j->t.uuid, cfg.uuid, 16);
	snprintf(j->t.name, sizeof(j->t.name), "%s", cfg.name);
	if (name)
		snprintf(j->name, sizeof(j->name), "%s", name);
	j->chain = chain;
	j->done = done;
	j->opaque = opaque;
	if (!j->name[0])
		default_name(srv->snap, j->t.uuid, j->name, sizeof(j->name));
	snprintf(detail, sizeof(detail), "being snapshotted as '%s'", j->name);
	rc = hyp_domain_claim(srv->hyp, domid, HYP_OP_SNAPSHOT, detail, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot snapshot domain '%s': %s", cfg.name,
			 ferry_strerror(rc));
		free(j);
		return rc;
	}
	j->claimed = true;
	active_add(j);
	rc = sjob_start(j, SJ_CREATE, "snapshot");
	if (rc)
		snprintf(err, errlen, "cannot start the snapshot: %s", ferry_strerror(rc));
	return rc;
}

void ctl__op_snapshot_create(struct ctl_client *cl, const struct xlm_req *req)
{
	struct sjob *j = sjob_new(cl, req, false, false);
	char detail[HYP_OP_DETAIL_MAX];

	if (!j)
		return;
	if (!j->t.exists) {
		REPLY_ERR(cl, req, -ENOENT, "domain '%s' does not exist",
			  xlm_args_str(req, "domain"));
		free(j);
		return;
	}
	if (j->name[0] && name_taken(cl->srv->snap, j->t.uuid, j->name)) {
		REPLY_ERR(cl, req, -EEXIST, "domain '%s' has a snapshot '%s' already", j->t.name,
			  j->name);
		free(j);
		return;
	}
	if (!j->name[0])
		default_name(cl->srv->snap, j->t.uuid, j->name, sizeof(j->name));
	j->paused = xlm_args_bool(req, "paused");
	/* The snapshot holds the domain as a save does: no pause, unpause,
	 * save or migration gets in meanwhile. */
	snprintf(detail, sizeof(detail), "being snapshotted as '%s'", j->name);
	if (ctl__domain_claim(cl, req, j->t.domid, "snapshot", HYP_OP_SNAPSHOT, detail)) {
		free(j);
		return;
	}
	j->claimed = true;
	active_add(j);
	sjob_start(j, SJ_CREATE, "snapshot");
}

/* ---- the others --------------------------------------------------------- */

void ctl__op_snapshot_delete(struct ctl_client *cl, const struct xlm_req *req)
{
	struct sjob *j = sjob_new(cl, req, true, true);

	if (j)
		sjob_start(j, SJ_DELETE, "snapshot-delete");
}

void ctl__op_snapshot_verify(struct ctl_client *cl, const struct xlm_req *req)
{
	struct sjob *j = sjob_new(cl, req, false, true);

	if (!j)
		return;
	j->all = !j->name[0];
	sjob_start(j, SJ_VERIFY, "snapshot-verify");
}

void ctl__op_snapshot_export(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *path = xlm_args_str(req, "path");
	struct sjob *j;

	if (!path || path[0] != '/') {
		REPLY_ERR(cl, req, -EINVAL, "snapshot-export: expected an absolute \"path\"");
		return;
	}
	j = sjob_new(cl, req, true, true);
	if (!j)
		return;
	snprintf(j->path, sizeof(j->path), "%s", path);
	sjob_start(j, SJ_EXPORT, "snapshot-export");
}

void ctl__op_snapshot_revert(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *newname = xlm_args_str(req, "new_name");
	char err[1024], detail[HYP_OP_DETAIL_MAX];
	struct sjob *j;
	uint32_t other;

	if (newname && xlm_name_check(newname, err, sizeof(err))) {
		REPLY_ERR(cl, req, -EINVAL, "snapshot-revert: %s", err);
		return;
	}
	if (newname && !hyp_domain_lookup(cl->srv->hyp, newname, &other)) {
		REPLY_ERR(cl, req, -EEXIST, "snapshot-revert: domain '%s' already exists", newname);
		return;
	}
	j = sjob_new(cl, req, true, true);
	if (!j)
		return;
	if (newname)
		snprintf(j->newname, sizeof(j->newname), "%s", newname);
	j->paused = xlm_args_bool(req, "paused");
	j->lazy = xlm_args_bool(req, "lazy");
	if (j->t.exists && !newname) {
		/* The domain it replaces is held until it goes: no migration,
		 * save or snapshot of it meanwhile. */
		snprintf(detail, sizeof(detail), "being reverted to snapshot '%s'", j->name);
		if (ctl__domain_claim(cl, req, j->t.domid, "revert", HYP_OP_SNAPSHOT, detail)) {
			free(j);
			return;
		}
		j->claimed = true;
	} else if (j->t.exists && ctl__domain_check(cl, req, j->t.domid, "revert")) {
		free(j);
		return;
	}
	sjob_start(j, SJ_REVERT, "snapshot-revert");
}

void ctl__op_restore_lazy(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *path = xlm_args_str(req, "path"), *name = xlm_args_str(req, "name");
	char err[1024];
	struct sjob *j;

	if (!path || path[0] != '/') {
		REPLY_ERR(cl, req, -EINVAL, "restore: expected an absolute \"path\"");
		return;
	}
	if (name && xlm_name_check(name, err, sizeof(err))) {
		REPLY_ERR(cl, req, -EINVAL, "restore: %s", err);
		return;
	}
	if (req->args &&
	    yajl_tree_get(req->args, (const char *[]){"config", NULL}, yajl_t_object)) {
		REPLY_ERR(cl, req, -EINVAL,
			  "restore --lazy takes no replacement config: the saved one is used");
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		REPLY_ERR(cl, req, -ENOMEM, "out of memory");
		return;
	}
	j->job.cl = cl;
	j->id = req->id;
	j->has_id = req->has_id;
	j->srv = cl->srv;
	j->lazy = true;
	j->paused = xlm_args_bool(req, "paused");
	snprintf(j->path, sizeof(j->path), "%s", path);
	if (name)
		snprintf(j->newname, sizeof(j->newname), "%s", name);
	sjob_start(j, SJ_LAZY_FILE, "lazy restore");
}

/* ---- snapshot-list (loop thread, from the copy) ------------------------- */

static const char *owner_name(struct ctl_snap *s, const uint8_t uuid[16])
{
	for (size_t i = 0; i < s->nowners; i++)
		if (!memcmp(s->owners[i].uuid, uuid, 16))
			return s->owners[i].name;
	return "";
}

static int gen_info(yajl_gen g, const char *dname, const uint8_t uuid[16], const char *name,
		    const char *parent, int64_t t, uint64_t memory_pages, uint64_t own,
		    const char *state)
{
	char u[37];

	xlm_uuid_format(uuid, u);
	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", dname) ?:
	       xlm_gen_kv_str(g, "uuid", u) ?: xlm_gen_kv_str(g, "name", name) ?:
	       xlm_gen_kv_int(g, "time", (long long)t) ?: xlm_gen_kv_str(g, "parent", parent) ?:
	       xlm_gen_kv_int(g, "own_pages", (long long)own) ?:
	       xlm_gen_kv_int(g, "memory_pages", (long long)memory_pages) ?:
	       xlm_gen_kv_str(g, "state", state) ?: xlm_gen_map_close(g);
}

void ctl__op_snapshot_list(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *dom = xlm_args_str(req, "domain");
	struct ctl_snap *s = cl->srv->snap;
	struct target t;
	char err[1024], *buf;
	size_t len;
	yajl_gen g;
	int rc;

	if (!s->repo) {
		rc = repo_unusable(s, err, sizeof(err));
		REPLY_ERR(cl, req, rc, "%s", err);
		return;
	}
	if (dom && (rc = target_find(cl->srv, dom, &t, err, sizeof(err)))) {
		REPLY_ERR(cl, req, rc, "%s", err);
		return;
	}
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		return;
	pthread_mutex_lock(&s->cache_lock);
	rc = xlm_gen_array_open(g);
	for (size_t i = 0; !rc && i < s->ncache; i++) {
		const struct snap_info *in = &s->cache[i];

		if (dom && memcmp(in->uuid, t.uuid, 16))
			continue;
		rc = gen_info(g, owner_name(s, in->uuid), in->uuid, in->name, in->parent, in->time,
			      in->memory_pages, in->own_entries,
			      in->complete ? "complete" : "being written");
	}
	for (struct active *a = s->active; !rc && a; a = a->next) {
		if (dom && memcmp(a->uuid, t.uuid, 16))
			continue;
		rc = gen_info(g, a->dname, a->uuid, a->name, "", a->time, a->memory_pages, 0,
			      "being written");
	}
	pthread_mutex_unlock(&s->cache_lock);
	rc = rc ?: xlm_gen_array_close(g);
	if (rc || xlm_gen_finish(g, &buf, &len)) {
		if (rc)
			yajl_gen_free(g);
		REPLY_ERR(cl, req, -ENOMEM, "cannot encode the reply");
		return;
	}
	ctl__send(cl, buf, len);
}
