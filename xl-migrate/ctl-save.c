// SPDX-License-Identifier: MIT
/*
 * save and restore ops. They take seconds, so they run on libuv's thread
 * pool and reply from the loop when done; the loop keeps serving meanwhile.
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
#include "xl-migrate/config.h"

struct job {
	uv_work_t work;
	struct ctl_client *cl;
	long long id;
	bool has_id;
	struct hyp *h;
	/* inputs */
	char path[4096];
	char name[HYP_NAME_MAX];	/* restore -n */
	struct hyp_dom_config override; /* restore CFG-OVERRIDE */
	bool have_override;
	uint32_t domid;			/* save */
	bool checkpoint, paused;
	enum strm_codec codec;
	/* outputs */
	int rc;
	char err[4096 + 512];
	uint64_t pages, bytes;
	double seconds;
	struct ctl_server *srv;
};

static void job_reply(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct ctl_client *cl = j->cl;
	yajl_gen g;
	char *buf;
	size_t len;

	cl->busy--;
	if (cl->closing || cl->dead)
		goto out;
	if (j->rc) {
		ctl__reply_error(cl, j->id, j->has_id, j->rc, "%s", j->err);
		goto out;
	}
	g = xlm_reply_begin(j->id, j->has_id);
	if (!g)
		goto out;
	if (!(xlm_gen_map_open(g) ?: xlm_gen_kv_int(g, "domid", j->domid) ?:
	      xlm_gen_kv_int(g, "pages", (long long)j->pages) ?:
	      xlm_gen_kv_int(g, "bytes", (long long)j->bytes) ?:
	      xlm_gen_kv_double(g, "seconds", j->seconds) ?: xlm_gen_map_close(g)) &&
	    !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
out:
	ctl__client_release(cl);
	free(j);
}

static struct job *job_new(struct ctl_client *cl, const struct xlm_req *req)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j) {
		ctl__reply_error(cl, req->id, req->has_id, -ENOMEM, "out of memory");
		return NULL;
	}
	j->cl = cl;
	j->id = req->id;
	j->has_id = req->has_id;
	j->h = cl->srv->hyp;
	j->srv = cl->srv;
	j->work.data = j;
	return j;
}

static void job_start(struct job *j, uv_work_cb fn)
{
	j->cl->busy++;
	uv_queue_work(j->srv->loop, &j->work, fn, job_reply);
}

/* ---- save ---------------------------------------------------------------- */

static void do_save(uv_work_t *w)
{
	struct job *j = w->data;
	struct hyp_dom_config cfg;
	struct mig_save_opts o = { .codec = j->codec,
				   .xenstore = { ctl__xs_stream_read, j->srv } };
	struct mig_save_stats st = { 0 };
	struct strm_io *io;
	struct stat sb;
	char *json = NULL;
	int fd, rc;

	rc = hyp_domain_config(j->h, j->domid, &cfg);
	if (!rc)
		rc = xlm_cfg_to_json(&cfg, &json);
	if (rc) {
		snprintf(j->err, sizeof(j->err), "domain %u: cannot encode its config", j->domid);
		j->rc = rc;
		return;
	}
	o.config_json = json;
	fd = open(j->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		j->rc = -errno;
		snprintf(j->err, sizeof(j->err), "cannot create %s: %s", j->path, strerror(errno));
		free(json);
		return;
	}
	rc = hyp_domain_pause(j->h, j->domid);
	if (rc) {
		snprintf(j->err, sizeof(j->err), "cannot pause domain %u: %s", j->domid,
			 ferry_strerror(rc));
		close(fd);
		unlink(j->path);
		j->rc = rc;
		free(json);
		return;
	}
	/* The io borrows fd so it can be synced once the stream is done: a
	 * save that reports success is on disk. */
	rc = strm_io_fd(fd, false, &io);
	if (!rc)
		rc = mig_save_domain(j->h, j->domid, io, &o, &st, j->err, sizeof(j->err));
	if (!rc && fsync(fd) < 0) {
		rc = -errno;
		snprintf(j->err, sizeof(j->err), "syncing %s: %s", j->path, strerror(errno));
	}
	close(fd);
	free(json);
	if (rc) {
		/* As Xen's xl: a failed save leaves the domain running. */
		unlink(j->path);
		hyp_domain_unpause(j->h, j->domid);
		j->rc = rc;
		if (!j->err[0])
			snprintf(j->err, sizeof(j->err), "save failed: %s", ferry_strerror(rc));
		return;
	}
	j->pages = st.pages;
	j->bytes = stat(j->path, &sb) ? st.bytes : (uint64_t)sb.st_size;
	j->seconds = st.seconds;
	log_info("d%u: saved to %s: %" PRIu64 " pages, %" PRIu64 " bytes in %.3f s (%s)",
		 j->domid, j->path, j->pages, j->bytes, j->seconds, strm_codec_name(j->codec));
	if (j->checkpoint)
		hyp_domain_unpause(j->h, j->domid);
	else if (!j->paused)
		hyp_domain_destroy(j->h, j->domid);
}

void ctl__op_save(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *dom = xlm_args_str(req, "domain"), *path = xlm_args_str(req, "path");
	const char *codec = xlm_args_str(req, "compress");
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
		free(j);
		return;
	}
	if (codec && strm_codec_parse(codec, &j->codec)) {
		ctl__reply_error(cl, req->id, req->has_id, -EINVAL,
				 "unknown compression '%s' (expected none, lz4 or zstd)", codec);
		free(j);
		return;
	}
	snprintf(j->path, sizeof(j->path), "%s", path);
	j->checkpoint = xlm_args_bool(req, "checkpoint");
	j->paused = xlm_args_bool(req, "paused");
	job_start(j, do_save);
}

/* ---- restore ------------------------------------------------------------- */

static int restore_config(void *opaque, const char *json, struct hyp_dom_config *cfg,
			  char *err, size_t errlen)
{
	struct job *j = opaque;
	int rc = xlm_cfg_from_json_text(json, cfg, err, errlen);

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
	return 0;
}

static void do_restore(uv_work_t *w)
{
	struct job *j = w->data;
	struct rst_opts o = { .paused = j->paused, .config = restore_config, .opaque = j,
			      .xenstore = ctl__xs_stream_write, .xenstore_opaque = j->srv };
	struct rst_stats st = { 0 };
	struct strm_io *io;
	int fd = open(j->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		j->rc = -errno;
		snprintf(j->err, sizeof(j->err), "cannot open %s: %s", j->path, strerror(errno));
		return;
	}
	j->rc = strm_io_fd(fd, true, &io);
	if (j->rc) {
		close(fd);
		snprintf(j->err, sizeof(j->err), "out of memory");
		return;
	}
	j->rc = rst_restore_domain(j->h, io, &o, &j->domid, &st, j->err, sizeof(j->err));
	strm_io_close(io);
	j->pages = st.pages;
	j->bytes = st.bytes;
	j->seconds = st.seconds;
	if (!j->rc) {
		struct hyp_dom_config cfg;

		if (!hyp_domain_config(j->h, j->domid, &cfg))
			ctl__record_write(j->srv, j->domid, &cfg);
		ctl__xs_domain_add(j->srv, j->domid);
	} else if (!j->err[0]) {
		snprintf(j->err, sizeof(j->err), "restore failed: %s", ferry_strerror(j->rc));
	}
}

void ctl__op_restore(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *path = xlm_args_str(req, "path"), *name = xlm_args_str(req, "name");
	yajl_val cfg = req->args ? yajl_tree_get(req->args, (const char *[]){ "config", NULL },
						 yajl_t_object)
				 : NULL;
	char err[XLM_CFG_ERR_MAX];
	struct job *j;

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
			free(j);
			return;
		}
		j->have_override = true;
	}
	job_start(j, do_restore);
}
