// SPDX-License-Identifier: MIT
/*
 * ferryd's lifetime is every domain's lifetime: what its stop and start do
 * to domains, as Xen's xendomains does at a host's shutdown and boot.
 *
 * Stop (SIGTERM or SIGINT; ctl-server.c calls ctl_lifetime_stop): what has
 * not reached a migration's go is cancelled (a migration past go ends
 * fenced). With --on-stop save (the default) a thread then saves every
 * domain into STATE_DIR/saved/ and destroys it. --stop-timeout, counted
 * from the signal for the whole stop, bounds that: the save under way is
 * cancelled, and each domain not saved by then is named in the log and
 * destroyed. With --on-stop destroy every domain is destroyed at once. A
 * stop still running CTL_STOP_GRACE_S after the timeout exits anyway.
 *
 * Start (ferryd.c calls ctl_lifetime_start before the control socket
 * exists, so nothing can touch a domain before it is back as it was): the
 * saved domains are restored, each paused or running as it was, a fenced
 * one fenced with its fence record.
 *
 * Files under STATE_DIR:
 *   domains/N.json   the config of domain N while it exists (ctl-ops.c).
 *                    A clean stop removes them all (destroying a domain
 *                    removes its record), so at start any left name the
 *                    domains a crash of ferryd (kill -9, OOM) lost: each is
 *                    reported and removed.
 *   saved/NAME.json  a saved domain's stop record (its pause and fence
 *                    state, when): written before the save and removed
 *                    after the restore. One without its NAME.save is a save
 *                    that did not finish: reported and removed.
 *   saved/NAME.save  the domain, a Xen stream as xl save writes it
 *                    (ctl__save_file: crash-safe, complete or absent).
 *   saved/NAME.save.failed, saved/NAME.json.failed: a restore at start
 *                    that failed, kept aside and reported at every start
 *                    until someone restores or removes it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "migrate/save.h"
#include "stream/io.h"
#include "toolstack/config.h"

#define INCOMING_SUFFIX CTL_INCOMING_SUFFIX
#define MAX_DOMAINS	1024

struct ctl_life {
	struct ctl_server *srv;
	char dir[4096]; /* STATE_DIR/saved */
	pthread_t thread;
	bool thread_started;
	/* the thread is done: its last act queues end_call (ctl__loop_call) */
	struct ctl_call end_call;
	bool ended; /* loop thread: end_call has run */
	/* stop */
	void (*done)(struct ctl_server *srv);
	uv_timer_t deadline, hard;
	bool timers_open;
	struct strm_cancel *cancel; /* fired at the deadline */
	int late;		    /* __atomic: past --stop-timeout */
	/* start: the stop records to restore, sorted */
	char (*names)[HYP_NAME_MAX];
	unsigned nnames;
};

/* What a stop record holds. */
struct stop_rec {
	bool paused;
	bool fenced;
	bool has_fence;
	struct ctl_fence fence;
	char saved_at[64];
};

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* ---- stop records ---------------------------------------------------------- */

static int rec_write(struct ctl_life *l, const char *name, const struct stop_rec *r)
{
	char path[4400], err[4600] = "";
	const unsigned char *buf;
	struct afile *f = NULL;
	size_t len;
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc;

	if (!g)
		return -ENOMEM;
	rc = xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "name", name) ?:
	     xlm_gen_kv_bool(g, "paused", r->paused) ?: xlm_gen_kv_bool(g, "fenced", r->fenced) ?:
	     xlm_gen_kv_str(g, "saved_at", r->saved_at);
	if (!rc && r->has_fence)
		rc = xlm_gen_str(g, "fence") ?: xlm_gen_map_open(g) ?:
		     xlm_gen_kv_str(g, "name", r->fence.name) ?:
		     xlm_gen_kv_str(g, "host", r->fence.host) ?:
		     xlm_gen_kv_bool(g, "insecure", r->fence.insecure) ?: xlm_gen_map_close(g);
	rc = rc ?: xlm_gen_map_close(g);
	if (!rc && yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
		rc = -ENOMEM;
	snprintf(path, sizeof(path), "%s/%s.json", l->dir, name);
	if (!rc)
		rc = afile_open(path, &f, err, sizeof(err));
	if (!rc) {
		if (write(afile_fd(f), buf, len) != (ssize_t)len) {
			rc = errno ? -errno : -EIO;
			snprintf(err, sizeof(err), "writing %s: %s", path, ferry_strerror(rc));
			afile_abort(f);
		} else {
			rc = afile_commit(f, err, sizeof(err));
		}
	}
	yajl_gen_free(g);
	if (rc)
		log_err("cannot write the stop record of '%s': %s", name,
			err[0] ? err : ferry_strerror(rc));
	return rc;
}

static bool tree_bool(yajl_val v, const char *key)
{
	yajl_val b = yajl_tree_get(v, (const char *[]){ key, NULL }, yajl_t_any);

	return b && YAJL_IS_TRUE(b);
}

static void tree_str(yajl_val v, const char *key, char *out, size_t size)
{
	yajl_val s = yajl_tree_get(v, (const char *[]){ key, NULL }, yajl_t_string);

	snprintf(out, size, "%s", s ? YAJL_GET_STRING(s) : "");
}

/* Reads a small JSON file (a record) into a tree; NULL with err set. */
static yajl_val read_json(const char *path, char *err, size_t errlen)
{
	char buf[16384];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	yajl_val v;

	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	buf[n] = 0;
	v = yajl_tree_parse(buf, err, errlen);
	if (v && !YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		snprintf(err, errlen, "not a JSON object");
		return NULL;
	}
	return v;
}

static int rec_read(struct ctl_life *l, const char *name, struct stop_rec *r, char *err,
		    size_t errlen)
{
	char path[4400];
	yajl_val v, f;

	snprintf(path, sizeof(path), "%s/%s.json", l->dir, name);
	v = read_json(path, err, errlen);
	if (!v)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->paused = tree_bool(v, "paused");
	r->fenced = tree_bool(v, "fenced");
	tree_str(v, "saved_at", r->saved_at, sizeof(r->saved_at));
	f = yajl_tree_get(v, (const char *[]){ "fence", NULL }, yajl_t_object);
	if (f) {
		r->has_fence = true;
		tree_str(f, "name", r->fence.name, sizeof(r->fence.name));
		tree_str(f, "host", r->fence.host, sizeof(r->fence.host));
		r->fence.insecure = tree_bool(f, "insecure");
	}
	yajl_tree_free(v);
	return 0;
}

/* ---- the thread's end, on the loop ---------------------------------------- */

static void on_thread_done(struct ctl_call *c)
{
	struct ctl_life *l = container_of(c, struct ctl_life, end_call);

	l->ended = true;
	if (l->done) {
		void (*done)(struct ctl_server *) = l->done;

		l->done = NULL;
		if (l->timers_open)
			uv_timer_stop(&l->deadline);
		done(l->srv);
	}
}

static int thread_start(struct ctl_life *l, void *(*fn)(void *))
{
	int rc;

	l->ended = false;
	l->end_call.fn = on_thread_done;
	rc = -pthread_create(&l->thread, NULL, fn, l);
	if (rc)
		return rc;
	l->thread_started = true;
	return 0;
}

static void *thread_end(struct ctl_life *l)
{
	/* The queue stays open until the stop's done calls ctl_jobs_stop. */
	if (ctl__loop_call(l->srv, &l->end_call))
		log_err("the loop is gone: the end of ferryd's %s is lost",
			l->done ? "stop" : "start");
	return NULL;
}

static void thread_join(struct ctl_life *l)
{
	if (l->thread_started) {
		pthread_join(l->thread, NULL);
		l->thread_started = false;
	}
}

/* ---- start ----------------------------------------------------------------- */

/* domains/N.json left by a ferryd that did not stop: report, remove. */
static void remove_lost_records(struct ctl_server *srv)
{
	char dir[4200], path[4500], name[HYP_NAME_MAX], err[256];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/domains", srv->opts->state_dir);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		yajl_val v;

		if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		v = read_json(path, err, sizeof(err));
		name[0] = 0;
		if (v)
			tree_str(v, "name", name, sizeof(name));
		yajl_tree_free(v);
		log_warn("domain '%s' (was domain %.*s) was lost: ferryd ended without a stop "
			 "(a crash, kill -9 or the OOM killer) while it ran; removing its record %s",
			 name[0] ? name : "?", (int)(strlen(e->d_name) - 5), e->d_name, path);
		unlink(path);
	}
	closedir(d);
	fsync_dir(dir);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Lists saved/: reports kept failures, drops records without a save,
 * collects the names to restore. */
static int scan_saved(struct ctl_life *l)
{
	char path[4400];
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(l->dir);

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char name[HYP_NAME_MAX];
		size_t n = strlen(e->d_name);

		if (e->d_name[0] == '.') {
			if (strstr(e->d_name, ".tmp-")) {
				/* a save or record a crash interrupted */
				snprintf(path, sizeof(path), "%s/%s", l->dir, e->d_name);
				unlink(path);
			}
			continue;
		}
		if (has_suffix(e->d_name, ".save.failed")) {
			log_warn("%s/%s: kept from a restore that failed at an earlier start (see "
				 "the log then); restore it with xl restore (its stop record is "
				 "beside it) or remove it",
				 l->dir, e->d_name);
			continue;
		}
		if (!has_suffix(e->d_name, ".json") || n - 5 >= sizeof(name))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 5), e->d_name);
		snprintf(path, sizeof(path), "%s/%s.save", l->dir, name);
		if (stat(path, &st)) {
			snprintf(path, sizeof(path), "%s/%s", l->dir, e->d_name);
			log_warn("'%s': stop record %s without its save (the save at the last "
				 "stop did not finish): removing it",
				 name, path);
			unlink(path);
			continue;
		}
		if (l->nnames % 16 == 0) {
			void *p = realloc(l->names, (l->nnames + 16) * sizeof(*l->names));

			if (!p) {
				closedir(d);
				return -ENOMEM;
			}
			l->names = p;
		}
		snprintf(l->names[l->nnames++], HYP_NAME_MAX, "%s", name);
	}
	closedir(d);
	if (l->nnames) /* names is NULL when none: qsort's is nonnull */
		qsort(l->names, l->nnames, sizeof(*l->names), cmp_names);
	return 0;
}

/* Renames NAME.save and NAME.json aside as *.failed (.failed.N if taken). */
static void keep_aside(struct ctl_life *l, const char *name, char *kept, size_t keptlen)
{
	char from[4400], to[4500], sfx[16] = "";
	struct stat st;

	for (unsigned i = 1; i < 100; i++) {
		snprintf(to, sizeof(to), "%s/%s.save.failed%s", l->dir, name, sfx);
		if (stat(to, &st))
			break;
		snprintf(sfx, sizeof(sfx), ".%u", i);
	}
	snprintf(from, sizeof(from), "%s/%s.save", l->dir, name);
	if (rename(from, to))
		snprintf(to, sizeof(to), "%s", from); /* then it stays where it is */
	snprintf(kept, keptlen, "%s", to);
	snprintf(from, sizeof(from), "%s/%s.json", l->dir, name);
	snprintf(to, sizeof(to), "%s/%s.json.failed%s", l->dir, name, sfx);
	rename(from, to);
	fsync_dir(l->dir);
}

static void restore_one(struct ctl_life *l, const char *name)
{
	struct ctl_server *srv = l->srv;
	char save[4400], rec[4400], err[4096 + 512] = "", kept[4500];
	struct stop_rec r;
	uint32_t domid;
	int rc;

	snprintf(save, sizeof(save), "%s/%s.save", l->dir, name);
	snprintf(rec, sizeof(rec), "%s/%s.json", l->dir, name);
	rc = rec_read(l, name, &r, err, sizeof(err));
	if (rc) {
		keep_aside(l, name, kept, sizeof(kept));
		log_err("cannot restore '%s': its stop record %s is unreadable (%s); kept the "
			"save as %s",
			name, rec, err, kept);
		return;
	}
	/* Paused until its fence is back: nothing runs it before. */
	rc = ctl__restore_path(srv, save, true, &domid, err, sizeof(err));
	if (rc) {
		keep_aside(l, name, kept, sizeof(kept));
		log_err("cannot restore '%s' saved at stop %s: %s; kept the save as %s", name,
			r.saved_at, err, kept);
		return;
	}
	if (r.fenced) {
		struct hyp_dom_info info;

		/* Fenced first, then its fenced name back (see stop_one). */
		rc = hyp_domain_set_fenced(srv->hyp, domid, true) ?:
		     hyp_domain_info(srv->hyp, domid, &info);
		if (!rc && strcmp(info.name, name))
			rc = hyp_domain_rename(srv->hyp, domid, name);
		if (!rc && r.has_fence)
			rc = ctl__fence_put(srv, domid, &r.fence);
		if (rc) {
			/* It must not run: take it down and keep the file. */
			hyp_domain_destroy(srv->hyp, domid);
			keep_aside(l, name, kept, sizeof(kept));
			log_err("cannot fence '%s' again: %s; destroyed it and kept the save as %s",
				name, ferry_strerror(rc), kept);
			return;
		}
	} else if (!r.paused) {
		rc = hyp_domain_unpause(srv->hyp, domid);
		if (rc)
			log_err("d%u: restored '%s' but cannot unpause it: %s", domid, name,
				ferry_strerror(rc));
	}
	unlink(save);
	unlink(rec);
	fsync_dir(l->dir);
	if (r.fenced)
		log_info("restored %s from %s saved at stop %s, as d%u: fenced, as it was (it "
			 "went to %s; settle it with xl migrate-resolve)",
			 name, save, r.saved_at, domid,
			 r.has_fence ? r.fence.host : "an unknown host");
	else
		log_info("restored %s from %s saved at stop %s, as d%u%s", name, save, r.saved_at,
			 domid, r.paused ? ": paused, as it was" : "");
}

static void *start_main(void *arg)
{
	struct ctl_life *l = arg;

	for (unsigned i = 0; i < l->nnames; i++)
		restore_one(l, l->names[i]);
	return thread_end(l);
}

static struct ctl_life *life_get(struct ctl_server *srv)
{
	struct ctl_life *l = srv->life;

	if (l)
		return l;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->srv = srv;
	snprintf(l->dir, sizeof(l->dir), "%s/saved", srv->opts->state_dir);
	srv->life = l;
	return l;
}

int ctl_lifetime_start(struct ctl_server *srv)
{
	struct ctl_life *l = life_get(srv);
	int rc;

	if (!l)
		return -ENOMEM;
	remove_lost_records(srv);
	if (mkdir(l->dir, 0700) && errno != EEXIST) {
		rc = -errno;
		log_err("cannot create %s: %s", l->dir, strerror(errno));
		return rc;
	}
	rc = scan_saved(l);
	if (rc) {
		log_err("cannot read %s: %s", l->dir, ferry_strerror(rc));
		return rc;
	}
	if (!l->nnames)
		return 0;
	log_info("restoring %u domain%s saved at the last stop from %s", l->nnames,
		 l->nnames == 1 ? "" : "s", l->dir);
	rc = thread_start(l, start_main);
	if (rc) {
		log_err("cannot start the restore thread: %s", ferry_strerror(rc));
		return rc;
	}
	/* Restores use the xenstore, which the loop serves. */
	while (!l->ended)
		uv_run(srv->loop, UV_RUN_ONCE);
	thread_join(l);
	free(l->names);
	l->names = NULL;
	l->nnames = 0;
	return 0;
}

/* ---- stop ------------------------------------------------------------------ */

static bool is_late(struct ctl_life *l)
{
	return __atomic_load_n(&l->late, __ATOMIC_ACQUIRE);
}

/* Why domid is destroyed unsaved, in the log, and its end. */
static void give_up(struct ctl_life *l, uint32_t domid, const char *name, const char *why)
{
	log_err("'%s' (d%u) not saved: %s; destroying it", name, domid, why);
	hyp_domain_destroy(l->srv->hyp, domid);
}

static void stop_one(struct ctl_life *l, uint32_t domid)
{
	struct ctl_server *srv = l->srv;
	char path[4400], why[128], err[4096 + 512] = "";
	struct hyp_dom_info info;
	struct stop_rec r = { 0 };
	struct mig_save_stats st = { 0 };
	double t0, t1;
	bool renamed;
	time_t now;
	int rc;

	snprintf(why, sizeof(why), "--stop-timeout %u s passed", srv->opts->stop_timeout_s);
	/* A migration cancelled by the stop resumes its domain or fences it. */
	while (!is_late(l) && ctl__mig_busy(srv, domid))
		usleep(50000);
	if (hyp_domain_info(srv->hyp, domid, &info))
		return; /* gone meanwhile */
	if (has_suffix(info.name, INCOMING_SUFFIX)) {
		log_info("d%u: '%s' is an incoming migration that did not finish: not saved "
			 "(its source keeps the domain)",
			 domid, info.name);
		return; /* the stop's end destroys it */
	}
	if (info.state == HYP_DOM_SHUTDOWN || info.state == HYP_DOM_DYING ||
	    info.state == HYP_DOM_CRASHED) {
		log_info("d%u: '%s' is %s: not saved", domid, info.name,
			 hyp_state_name(info.state));
		return;
	}
	if (is_late(l)) {
		give_up(l, domid, info.name, why);
		return;
	}
	/* The toolstack's pause (xl pause, save -p), not an operation's. */
	r.paused = info.pause_count && !info.fenced;
	r.fenced = info.fenced;
	r.has_fence = info.fenced && !ctl__fence_get(srv, domid, &r.fence);
	now = time(NULL);
	strftime(r.saved_at, sizeof(r.saved_at), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
	if (rec_write(l, info.name, &r)) {
		give_up(l, domid, info.name, "its stop record cannot be written");
		return;
	}
	/*
	 * A fenced domain's stream carries the name it had before the fence
	 * (NAME--migratedaway is ferryd's rename, which a config may not
	 * hold); it is fenced all the while, and the restore renames it back.
	 */
	renamed = r.has_fence && strcmp(r.fence.name, info.name) &&
		  !hyp_domain_rename(srv->hyp, domid, r.fence.name);
	snprintf(path, sizeof(path), "%s/%s.save", l->dir, info.name);
	t0 = ferry_now_s();
	/* Another operation holds it: wait for it, up to the deadline. */
	while ((rc = hyp_domain_claim(srv->hyp, domid, HYP_OP_SAVE, "being saved at stop",
				      NULL)) == -EBUSY &&
	       !is_late(l))
		usleep(100000);
	if (!rc) {
		err[0] = 0;
		rc = ctl__save_file(srv, domid, path, STRM_CODEC_NONE, l->cancel, &st, err,
				    sizeof(err));
		hyp_domain_release(srv->hyp, domid, HYP_OP_SAVE);
	} else if (rc == -EBUSY) {
		snprintf(err, sizeof(err), "another operation held it until --stop-timeout");
	}
	t1 = ferry_now_s();
	if (rc && renamed)
		hyp_domain_rename(srv->hyp, domid, info.name);
	if (rc) {
		snprintf(path, sizeof(path), "%s/%s.json", l->dir, info.name);
		unlink(path);
		give_up(l, domid, info.name, rc == -ECANCELED || is_late(l) ? why : err);
		return;
	}
	log_info("d%u: saved '%s'%s to %s: %" PRIu64 " MiB in %.1f s", domid, info.name,
		 r.fenced ? " (fenced)" : r.paused ? " (paused)" : "", path, st.bytes >> 20,
		 t1 - t0);
	hyp_domain_destroy(srv->hyp, domid);
}

static void *stop_main(void *arg)
{
	struct ctl_life *l = arg;
	uint32_t ids[MAX_DOMAINS];
	int n = hyp_domain_list(l->srv->hyp, ids, MAX_DOMAINS);

	if (n < 0)
		log_err("cannot list domains: %s", ferry_strerror(n));
	else if (n)
		log_info("saving %d domain%s into %s (--on-stop save, --stop-timeout %u s)", n,
			 n == 1 ? "" : "s", l->dir, l->srv->opts->stop_timeout_s);
	for (int i = 0; i < n; i++)
		stop_one(l, ids[i]);
	return thread_end(l);
}

static void on_deadline(uv_timer_t *t)
{
	struct ctl_life *l = t->data;

	__atomic_store_n(&l->late, 1, __ATOMIC_RELEASE);
	if (!l->cancel)
		return; /* --on-stop destroy: nothing to cancel */
	strm_cancel_fire(l->cancel);
	log_warn("--stop-timeout %u s passed: cancelling the save under way; every domain not "
		 "saved yet is destroyed",
		 l->srv->opts->stop_timeout_s);
}

static void on_hard_deadline(uv_timer_t *t)
{
	log_err("ferryd has not stopped %u s after --stop-timeout (something is stuck): exiting "
		"now; what still runs is lost",
		CTL_STOP_GRACE_S);
	_exit(1);
}

static void timers_start(struct ctl_life *l)
{
	uint64_t ms = (uint64_t)l->srv->opts->stop_timeout_s * 1000;

	if (uv_timer_init(l->srv->loop, &l->deadline) || uv_timer_init(l->srv->loop, &l->hard))
		return;
	l->timers_open = true;
	l->deadline.data = l->hard.data = l;
	uv_timer_start(&l->deadline, on_deadline, ms, 0);
	uv_timer_start(&l->hard, on_hard_deadline, ms + CTL_STOP_GRACE_S * 1000ull, 0);
	/* Neither keeps the loop alive: the hard one only ends a stop that
	 * hangs. */
	uv_unref((uv_handle_t *)&l->deadline);
	uv_unref((uv_handle_t *)&l->hard);
}

void ctl_lifetime_stop(struct ctl_server *srv, void (*done)(struct ctl_server *srv))
{
	struct ctl_life *l = life_get(srv);
	int rc;

	/*
	 * Cancel every job (ctl-jobs.c) without stopping the framework: save
	 * and restore jobs, migrations short of go (past go they stop waiting
	 * and stay fenced), receivers. ctl_migrate_stop also closes the
	 * migration listener. ctl-server.c's stop_finish calls ctl_jobs_stop
	 * once the domains are saved, which bounds what is left.
	 */
	ctl_migrate_stop(srv);
	ctl_jobs_cancel_all(srv);
	if (!l) {
		done(srv);
		return;
	}
	timers_start(l);
	if (srv->opts->on_stop_destroy) {
		done(srv);
		return;
	}
	l->done = done;
	rc = strm_cancel_new(&l->cancel);
	if (!rc)
		rc = thread_start(l, stop_main);
	if (rc) {
		log_err("cannot start saving the domains: %s; destroying them", ferry_strerror(rc));
		l->done = NULL;
		done(srv);
	}
}

static void timer_closed(uv_handle_t *h)
{
}

void ctl_lifetime_fini(struct ctl_server *srv)
{
	struct ctl_life *l = srv->life;

	if (!l)
		return;
	thread_join(l);
	if (l->timers_open) {
		uv_close((uv_handle_t *)&l->deadline, timer_closed);
		uv_close((uv_handle_t *)&l->hard, timer_closed);
		l->timers_open = false;
	}
	uv_run(srv->loop, UV_RUN_NOWAIT);
	strm_cancel_free(l->cancel);
	free(l->names);
	free(l);
	srv->life = NULL;
}
