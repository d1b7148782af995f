// SPDX-License-Identifier: MIT
/*
 * save and restore ops. They take seconds, so they run as jobs on threads
 * of their own (ctl-jobs.c) and reply from the loop when done; the loop
 * keeps serving meanwhile, and a job blocked (a FIFO without a reader)
 * holds up no other.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "migrate/save.h"
#include "restore/restore.h"
#include "toolstack/config.h"

struct job {
	struct ctl_job job; /* its cancel token: job.cancel */
	char what[HYP_NAME_MAX + 32];
	long long id;
	bool has_id;
	struct hyp *h;
	/* inputs */
	char path[4096];
	char name[HYP_NAME_MAX];	/* restore -n */
	struct hyp_dom_config override; /* restore CFG-OVERRIDE */
	bool have_override;
	uint32_t domid; /* save */
	bool checkpoint, paused;
	bool claimed; /* save: holds domid (HYP_OP_SAVE) */
	enum strm_codec codec;
	/* outputs */
	int rc;
	char err[4096 + 512];
	uint64_t pages, bytes;
	double seconds;
	struct ctl_server *srv;
};

static void job_free(struct job *j)
{
	free(j);
}

static int gen_stats(yajl_gen g, const void *arg)
{
	const struct job *j = arg;

	return xlm_gen_map_open(g) ?: xlm_gen_kv_int(g, "domid", j->domid) ?:
	       xlm_gen_kv_int(g, "pages", (long long)j->pages) ?:
	       xlm_gen_kv_int(g, "bytes", (long long)j->bytes) ?:
	       xlm_gen_kv_double(g, "seconds", j->seconds) ?: xlm_gen_map_close(g);
}

/* Loop thread, the job's done: the framework releases the client after. */
static void job_reply(struct ctl_job *job)
{
	struct job *j = container_of(job, struct job, job);
	struct ctl_job_reply r = { .id = j->id, .has_id = j->has_id, .domid = j->domid,
				   .claim = j->claimed ? HYP_OP_SAVE : HYP_OP_NONE,
				   .rc = j->rc, .err = j->err, .gen = gen_stats, .arg = j };

	ctl__job_reply(job, &r);
	job_free(j);
}

static struct job *job_new(struct ctl_client *cl, const struct xlm_req *req)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j) {
		ctl__reply_error(cl, req->id, req->has_id, -ENOMEM, "out of memory");
		return NULL;
	}
	j->job.cl = cl;
	j->job.what = j->what;
	j->job.done = job_reply;
	j->id = req->id;
	j->has_id = req->has_id;
	j->h = cl->srv->hyp;
	j->srv = cl->srv;
	return j;
}

/* Loop thread. On failure replies and frees j. */
static void job_start(struct job *j, const struct xlm_req *req, const char *what,
		      void (*fn)(struct ctl_job *job))
{
	int rc;

	snprintf(j->what, sizeof(j->what), "%s", what);
	j->job.run = fn;
	rc = ctl__job_start(j->srv, &j->job);
	if (rc) {
		ctl__reply_error(j->job.cl, req->id, req->has_id, rc, "cannot start the %s: %s",
				 what, ferry_strerror(rc));
		if (j->claimed)
			hyp_domain_release(j->h, j->domid, HYP_OP_SAVE);
		job_free(j);
		return;
	}
}

/* ---- save ---------------------------------------------------------------- */

static void do_save(struct ctl_job *job)
{
	struct job *j = container_of(job, struct job, job);
	struct mig_save_stats st;

	j->rc = ctl__save_file(j->srv, j->domid, j->path, j->codec, j->job.cancel, &st, j->err,
			       sizeof(j->err));
	if (j->rc)
		return;
	j->pages = st.pages;
	j->bytes = st.bytes;
	j->seconds = st.seconds;
	/* The save is durable: only now may the domain go. */
	if (j->checkpoint) {
		hyp_domain_op_unpause(j->h, j->domid); /* paused before: still paused */
	} else if (j->paused) {
		/* save -p: paused by the toolstack, so xl unpause resumes it. */
		struct hyp_dom_info di;

		if (!hyp_domain_info(j->h, j->domid, &di) && !di.pause_count)
			hyp_domain_pause(j->h, j->domid);
		hyp_domain_op_unpause(j->h, j->domid);
	} else {
		hyp_domain_destroy(j->h, j->domid);
	}
}

void ctl__op_save(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *dom = xlm_args_str(req, "domain"), *path = xlm_args_str(req, "path");
	const char *codec = xlm_args_str(req, "compress");
	char what[HYP_OP_DETAIL_MAX];
	struct job *j;
	int rc;

	if (!dom || !path || path[0] != '/') {
		ctl__reply_error(cl, req->id, req->has_id, -EINVAL,
				 "save: expected \"domain\" and an absolute \"path\"");
		return;
	}
	j = job_new(cl, req);
	if (!j)
		return;
	rc = hyp_domain_lookup(j->h, dom, &j->domid);
	if (rc) {
		ctl__reply_error(cl, req->id, req->has_id, rc, "domain '%s' does not exist", dom);
		job_free(j);
		return;
	}
	if (codec && strm_codec_parse(codec, &j->codec)) {
		ctl__reply_error(cl, req->id, req->has_id, -EINVAL,
				 "unknown compression '%s' (expected none, lz4 or zstd)", codec);
		job_free(j);
		return;
	}
	snprintf(j->path, sizeof(j->path), "%s", path);
	j->checkpoint = xlm_args_bool(req, "checkpoint");
	j->paused = xlm_args_bool(req, "paused");
	/* The whole save holds the domain: no pause, unpause, destroy or
	 * migration gets in (a user's unpause tore saves). */
	snprintf(what, sizeof(what), "being saved to %s", path);
	if (ctl__domain_claim(cl, req, j->domid, "save", HYP_OP_SAVE, what)) {
		free(j);
		return;
	}
	j->claimed = true;
	job_start(j, req, "save", do_save);
}

/* ---- restore ------------------------------------------------------------- */

static int restore_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
			  size_t errlen)
{
	struct job *j = opaque;
	int rc;

	/* The last moment before the domain exists: a client gone by now
	 * gets no domain. */
	if (strm_cancel_fired(j->job.cancel)) {
		snprintf(err, errlen, "cancelled: the client went away");
		return -ECANCELED;
	}
	rc = xlm_cfg_from_json_text(json, cfg, err, errlen);
	if (rc)
		return rc;
	if (j->have_override) {
		if (j->override.backend[0] && strcmp(j->override.backend, cfg->backend)) {
			snprintf(err, errlen,
				 "the stream is from a %s domain; the override asks for %s",
				 cfg->backend, j->override.backend);
			return -EINVAL;
		}
		if (j->override.memory_mb != cfg->memory_mb) {
			snprintf(err, errlen,
				 "the override's memory (%" PRIu64 " MiB) differs from the "
				 "saved domain's %" PRIu64 " MiB",
				 j->override.memory_mb, cfg->memory_mb);
			return -EINVAL;
		}
		/* The stream's vCPU contexts make the domain: it cannot gain or
		 * lose one on the way back. */
		if (j->override.vcpus != cfg->vcpus) {
			snprintf(err, errlen,
				 "the override's vcpus (%u) differs from the saved domain's %u: a "
				 "restore brings back the vCPUs it saved",
				 j->override.vcpus, cfg->vcpus);
			return -EINVAL;
		}
		snprintf(j->override.backend, sizeof(j->override.backend), "%s", cfg->backend);
		*cfg = j->override;
	}
	if (j->name[0])
		snprintf(cfg->name, sizeof(cfg->name), "%s", j->name);
	return ctl__name_check(j->srv, cfg->name, err, errlen);
}

static void restore_job(struct job *j)
{
	struct rst_opts o = {.paused = j->paused,
			     .config = restore_config,
			     .opaque = j,
			     .xenstore = ctl__xs_stream_write,
			     .xenstore_opaque = j->srv};
	struct rst_stats st = {0};
	struct strm_io *io;
	int fd;

	j->rc = ctl__open_restore(j->path, j->job.cancel, &fd, j->err, sizeof(j->err));
	if (j->rc)
		return;
	j->rc = strm_io_fd(fd, true, &io);
	if (j->rc) {
		close(fd);
		snprintf(j->err, sizeof(j->err), "out of memory");
		return;
	}
	j->rc = strm_io_set_cancel(io, j->job.cancel, 0)
			?: rst_restore_domain(j->h, io, &o, &j->domid, &st, j->err, sizeof(j->err));
	strm_io_close(io);
	j->pages = st.pages;
	j->bytes = st.bytes;
	j->seconds = st.seconds;
	if (!j->rc && strm_cancel_fired(j->job.cancel)) {
		/* Its client left while the last bytes came in: nobody would
		 * learn of this domain, so it goes (the file stays). */
		hyp_domain_destroy(j->h, j->domid);
		j->rc = -ECANCELED;
		snprintf(j->err, sizeof(j->err), "cancelled: the client went away");
	} else if (!j->rc) {
		struct hyp_dom_config cfg;

		if (!hyp_domain_config(j->h, j->domid, &cfg))
			ctl__record_write(j->srv, j->domid, &cfg);
		ctl__xs_domain_add(j->srv, j->domid);
	} else if (!j->err[0]) {
		snprintf(j->err, sizeof(j->err), "restore failed: %s", ferry_strerror(j->rc));
	}
}

static void do_restore(struct ctl_job *job)
{
	restore_job(container_of(job, struct job, job));
}

int ctl__restore_path(struct ctl_server *srv, const char *path, bool paused, uint32_t *domid,
		      char *err, size_t errlen)
{
	struct job *j = calloc(1, sizeof(*j));
	int rc;

	if (!j) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	j->h = srv->hyp;
	j->srv = srv;
	j->paused = paused;
	snprintf(j->path, sizeof(j->path), "%s", path);
	restore_job(j);
	rc = j->rc;
	*domid = j->domid;
	snprintf(err, errlen, "%s", j->err);
	free(j);
	return rc;
}

void ctl__op_restore(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *path = xlm_args_str(req, "path"), *name = xlm_args_str(req, "name");
	yajl_val cfg = req->args ? yajl_tree_get(req->args, (const char *[]){"config", NULL},
						 yajl_t_object)
				 : NULL;
	char err[XLM_CFG_ERR_MAX];
	struct job *j;

	if (xlm_args_bool(req, "lazy")) {
		ctl__op_restore_lazy(cl, req);
		return;
	}
	if (!path || path[0] != '/') {
		ctl__reply_error(cl, req->id, req->has_id, -EINVAL,
				 "restore: expected an absolute \"path\"");
		return;
	}
	if (name && xlm_name_check(name, err, sizeof(err))) {
		ctl__reply_error(cl, req->id, req->has_id, -EINVAL, "restore: %s", err);
		return;
	}
	j = job_new(cl, req);
	if (!j)
		return;
	snprintf(j->path, sizeof(j->path), "%s", path);
	if (name)
		snprintf(j->name, sizeof(j->name), "%s", name);
	j->paused = xlm_args_bool(req, "paused");
	if (cfg) {
		if (xlm_cfg_from_json(cfg, &j->override, j->err, sizeof(j->err))) {
			ctl__reply_error(cl, req->id, req->has_id, -EINVAL, "%s", j->err);
			job_free(j);
			return;
		}
		j->have_override = true;
	}
	job_start(j, req, "restore", do_restore);
}
