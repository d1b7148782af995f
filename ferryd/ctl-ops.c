// SPDX-License-Identifier: MIT
/*
 * Control ops: one handler per "op", each replying exactly once (or, for
 * shutdown with "wait", once the domain is gone). See
 * docs/control-protocol.md for the arguments and results.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "devices/pv.h"
#include "internal.h"
#include "toolstack/config.h"

#define CONSOLE_RECENT_MAX (64u * 1024)
#define DMESG_MAX (64u * 1024 + 1)
#define LIST_MAX 4096

void ctl__reply_error(struct ctl_client *cl, long long id, bool has_id, int err,
		      const char *fmt, ...)
{
	char msg[XLM_ERR_MAX];
	char *buf;
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!xlm_reply_error(id, has_id, err, msg, &buf, &len))
		ctl__send(cl, buf, len);
}

#define REPLY_ERR(cl, req, err, ...) \
	ctl__reply_error(cl, (req)->id, (req)->has_id, err, __VA_ARGS__)

/* Finishes and sends a reply whose result the handler wrote into g. */
static void reply_gen(struct ctl_client *cl, const struct xlm_req *req, yajl_gen g, int rc)
{
	char *buf;
	size_t len;

	if (rc) {
		yajl_gen_free(g);
		REPLY_ERR(cl, req, rc, "cannot encode the reply: %s", ferry_strerror(rc));
		return;
	}
	rc = xlm_gen_finish(g, &buf, &len);
	if (rc)
		REPLY_ERR(cl, req, rc, "cannot encode the reply: %s", ferry_strerror(rc));
	else
		ctl__send(cl, buf, len);
}

static void reply_domid(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid)
{
	yajl_gen g = xlm_reply_begin(req->id, req->has_id);

	if (!g)
		return;
	reply_gen(cl, req, g, xlm_gen_map_open(g) ?: xlm_gen_kv_int(g, "domid", domid) ?:
			      xlm_gen_map_close(g));
}

/* Resolves args.domain; replies with the error and returns it on failure. */
static int lookup(struct ctl_client *cl, const struct xlm_req *req, uint32_t *domid)
{
	const char *name = xlm_args_str(req, "domain");
	int rc;

	if (!name) {
		REPLY_ERR(cl, req, -EINVAL, "%s: expected a string \"domain\" in args", req->op);
		return -EINVAL;
	}
	rc = hyp_domain_lookup(cl->srv->hyp, name, domid);
	if (rc == -ENOENT)
		REPLY_ERR(cl, req, rc, "domain '%s' does not exist", name);
	else if (rc)
		REPLY_ERR(cl, req, rc, "cannot look up domain '%s': %s", name, ferry_strerror(rc));
	return rc;
}

/* ---- the owner rule and the fence -------------------------------------- */

/* "vm1--migratedaway" -> "vm1" */
static void name_unfenced(const char *name, char *out, size_t size)
{
	size_t n = strlen(name), sl = strlen(CTL_AWAY_SUFFIX);

	if (n > sl && !strcmp(name + n - sl, CTL_AWAY_SUFFIX))
		n -= sl;
	snprintf(out, size, "%.*s", (int)n, name);
}

int ctl__domain_check(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
		      const char *verb)
{
	return ctl__domain_check_during(cl, req, domid, verb, HYP_OP_NONE);
}

int ctl__domain_check_during(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
			     const char *verb, enum hyp_op allowed)
{
	struct hyp *h = cl->srv->hyp;
	struct ctl_fence fence;
	char name[HYP_NAME_MAX];
	struct hyp_op_holder hold;
	struct hyp_dom_info info;
	size_t n, il = strlen(CTL_INCOMING_SUFFIX);
	int rc;

	rc = hyp_domain_info(h, domid, &info) ?: hyp_domain_holder(h, domid, &hold);
	if (rc) {
		REPLY_ERR(cl, req, rc, "domain %u: %s", domid, ferry_strerror(rc));
		return rc;
	}
	/* An allowed operation that paused the domain is past the point where
	 * the change would travel (its state is being written). */
	if (hold.op != HYP_OP_NONE && (hold.op != allowed || info.op_pause_count)) {
		REPLY_ERR(cl, req, -EBUSY,
			  "cannot %s domain '%s': it is %s; try again when that "
			  "%s ends",
			  verb, info.name, hold.detail[0] ? hold.detail : "held",
			  hyp_op_name(hold.op));
		return -EBUSY;
	}
	n = strlen(info.name);
	if (n > il && !strcmp(info.name + n - il, CTL_INCOMING_SUFFIX)) {
		/* A migration receives it; it claims the domain once built. */
		REPLY_ERR(cl, req, -EBUSY,
			  "cannot %s domain '%s': it is being received by a "
			  "migration; try again when that migration ends",
			  verb, info.name);
		return -EBUSY;
	}
	if (info.restoring) {
		/* Half built: a save of it would be garbage, a pause would
		 * outlast the restore's unpause. */
		REPLY_ERR(cl, req, -EBUSY,
			  "cannot %s domain '%s': it is being restored; try again when that "
			  "restore ends",
			  verb, info.name);
		return -EBUSY;
	}
	/* A protected domain's state is the pair's: moving or replacing it
	 * here would leave the backup to take over a domain that went on
	 * elsewhere. */
	if ((!strcmp(verb, "migrate") || !strcmp(verb, "save") || !strcmp(verb, "revert")) &&
	    ctl__remus_primary(cl->srv, domid)) {
		REPLY_ERR(cl, req, -EBUSY,
			  "cannot %s domain '%s': it is protected by a replication pair (xl "
			  "remus-status); end that first with 'xl remus-stop %s'",
			  verb, info.name, info.name);
		return -EBUSY;
	}
	if (info.fenced) {
		name_unfenced(info.name, name, sizeof(name));
		if (ctl__fence_get(cl->srv, domid, &fence))
			snprintf(fence.host, sizeof(fence.host), "its target");
		REPLY_ERR(cl, req, -EPERM,
			  "cannot %s domain '%s': it is fenced after its migration "
			  "to %s and may be running there, so nothing that could run it or a copy "
			  "of it is allowed here; resolve it first: 'xl migrate-resolve %s' asks "
			  "%s again, or once you know, 'xl migrate-resolve --resume %s' (it does "
			  "not run there) or 'xl migrate-resolve --destroy %s' (it does)",
			  verb, info.name, fence.host, name, fence.host, name, name);
		return -EPERM;
	}
	return 0;
}

int ctl__domain_claim(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
		      const char *verb, enum hyp_op op, const char *detail)
{
	int rc = ctl__domain_check(cl, req, domid, verb);

	if (rc)
		return rc;
	/* The loop thread is the only claimer of a free domain: no one got
	 * in since the check. */
	rc = hyp_domain_claim(cl->srv->hyp, domid, op, detail, NULL);
	if (rc)
		REPLY_ERR(cl, req, rc, "cannot %s domain %u: %s", verb, domid, ferry_strerror(rc));
	return rc;
}

int ctl__name_check(struct ctl_server *srv, const char *name, char *err, size_t errlen)
{
	char away[HYP_NAME_MAX + 32];
	struct hyp_dom_info info;
	uint32_t domid;

	snprintf(away, sizeof(away), "%s%s", name, CTL_AWAY_SUFFIX);
	if (hyp_domain_lookup(srv->hyp, away, &domid) || hyp_domain_info(srv->hyp, domid, &info) ||
	    !info.fenced)
		return 0;
	snprintf(err, errlen,
		 "domain '%s' may be running elsewhere: it was migrated away and "
		 "its copy here is fenced as '%s'; resolve that first with 'xl migrate-resolve "
		 "%s'",
		 name, away, name);
	return -EPERM;
}

/* ---- domain records ----------------------------------------------------- */

static void record_path(struct ctl_server *srv, uint32_t domid, char *path, size_t size)
{
	snprintf(path, size, "%s/domains/%u.json", srv->opts->state_dir, domid);
}

void ctl__record_write(struct ctl_server *srv, uint32_t domid, const struct hyp_dom_config *cfg)
{
	char path[4200], *json;
	int fd;

	if (xlm_cfg_to_json(cfg, &json))
		return;
	record_path(srv, domid, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, json, strlen(json)) != (ssize_t)strlen(json) ||
	    write(fd, "\n", 1) != 1)
		log_warn("d%u: cannot write %s: %s", domid, path, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(json);
}

void ctl__record_remove(struct ctl_server *srv, uint32_t domid)
{
	char path[4200];

	record_path(srv, domid, path, sizeof(path));
	unlink(path);
}

/* ---- ops ---------------------------------------------------------------- */

static void op_create(struct ctl_client *cl, const struct xlm_req *req)
{
	struct ctl_server *srv = cl->srv;
	struct hyp_dom_config cfg;
	struct xlm_cfg_snapshot snap;
	struct hyp_info info;
	char err[XLM_ERR_MAX] = "";
	uint32_t domid;
	int rc;

	rc = xlm_cfg_from_json(req->args, &cfg, err, sizeof(err)) ?:
	     xlm_cfg_snapshot_from_json(req->args, &snap, err, sizeof(err));
	if (rc) {
		REPLY_ERR(cl, req, rc, "%s", err);
		return;
	}
	rc = hyp_get_info(srv->hyp, &info);
	if (!rc)
		rc = xlm_cfg_check_create(&cfg, cfg.backend[0] ? cfg.backend : info.backend, err,
					  sizeof(err));
	if (rc) {
		REPLY_ERR(cl, req, rc, "%s", err[0] ? err : ferry_strerror(rc));
		return;
	}
	rc = hyp_domain_create(srv->hyp, &cfg, xlm_args_bool(req, "paused"), &domid);
	if (rc == -EEXIST) {
		REPLY_ERR(cl, req, rc, "domain '%s' already exists", cfg.name);
		return;
	}
	if ((rc == -ENOMEM || rc == -FERRY_ENOMEMPOOL) && !hyp_get_info(srv->hyp, &info)) {
		REPLY_ERR(cl, req, rc,
			  "not enough memory for domain '%s': domain needs %" PRIu64
			  " MiB, %" PRIu64 " MiB free of %" PRIu64 " MiB",
			  cfg.name, cfg.memory_mb, info.free_bytes >> 20, info.total_bytes >> 20);
		return;
	}
	if (rc) {
		REPLY_ERR(cl, req, rc, "cannot create domain '%s': %s", cfg.name,
			  ferry_strerror(rc));
		return;
	}
	log_info("d%u: created '%s' (%" PRIu64 " MiB, %u vCPU%s)%s", domid, cfg.name,
		 cfg.memory_mb, cfg.vcpus, cfg.vcpus == 1 ? "" : "s",
		 xlm_args_bool(req, "paused") ? ", paused" : "");
	ctl__record_write(srv, domid, &cfg);
	ctl__xs_domain_add(srv, domid);
	ctl__snapsched_created(srv, domid, cfg.uuid, &snap);
	reply_domid(cl, req, domid);
}

static void op_simple(struct ctl_client *cl, const struct xlm_req *req,
		      int (*fn)(struct hyp *, uint32_t), const char *verb)
{
	uint32_t domid;
	int rc;

	if (lookup(cl, req, &domid) || ctl__domain_check(cl, req, domid, verb))
		return;
	rc = fn(cl->srv->hyp, domid);
	if (rc) {
		REPLY_ERR(cl, req, rc, "cannot %s domain %u: %s", verb, domid, ferry_strerror(rc));
		return;
	}
	log_info("d%u: %s", domid, verb);
	reply_domid(cl, req, domid);
}

static void op_destroy(struct ctl_client *cl, const struct xlm_req *req)
{
	op_simple(cl, req, hyp_domain_destroy, "destroy");
}

static void op_pause(struct ctl_client *cl, const struct xlm_req *req)
{
	op_simple(cl, req, hyp_domain_pause, "pause");
}

static void op_unpause(struct ctl_client *cl, const struct xlm_req *req)
{
	op_simple(cl, req, hyp_domain_unpause, "unpause");
}

static void shutdown_common(struct ctl_client *cl, const struct xlm_req *req, bool reboot)
{
	uint32_t domid;
	int rc;

	if (lookup(cl, req, &domid) ||
	    ctl__domain_check(cl, req, domid, reboot ? "reboot" : "shut down"))
		return;
	if (!reboot && xlm_args_bool(req, "wait")) {
		if (cl->waiting) {
			REPLY_ERR(cl, req, -EBUSY, "this connection already waits for a domain");
			return;
		}
		cl->waiting = true;
		cl->wait_id = req->id;
		cl->wait_domid = domid;
	}
	/* Xen's request, for guests with a xenstore driver; the ferry_ctl
	 * request below stays until every guest has one. */
	ctl__xs_shutdown_request(cl->srv, domid, reboot);
	rc = hyp_domain_shutdown(cl->srv->hyp, domid, reboot);
	if (rc) {
		cl->waiting = false;
		REPLY_ERR(cl, req, rc, "cannot %s domain %u: %s", reboot ? "reboot" : "shut down",
			  domid, ferry_strerror(rc));
		return;
	}
	log_info("d%u: %s requested", domid, reboot ? "reboot" : "shutdown");
	if (!cl->waiting)
		reply_domid(cl, req, domid);
}

static void op_shutdown(struct ctl_client *cl, const struct xlm_req *req)
{
	shutdown_common(cl, req, false);
}

static void op_reboot(struct ctl_client *cl, const struct xlm_req *req)
{
	shutdown_common(cl, req, true);
}

static int gen_dom_info(yajl_gen g, const struct hyp_dom_info *i, const char *remus)
{
	return xlm_gen_map_open(g) ?:
	       (remus ? xlm_gen_kv_str(g, "remus", remus) : 0) ?:
	       xlm_gen_kv_int(g, "domid", i->domid) ?:
	       xlm_gen_kv_str(g, "name", i->name) ?:
	       xlm_gen_kv_int(g, "memory_kb", (long long)i->memory_kb) ?:
	       xlm_gen_kv_int(g, "maxmem_kb", (long long)i->maxmem_kb) ?:
	       xlm_gen_kv_int(g, "vcpus", i->vcpus) ?:
	       xlm_gen_kv_str(g, "state", hyp_state_name(i->state)) ?:
	       xlm_gen_kv_double(g, "cpu_time", i->cpu_time_s) ?:
	       xlm_gen_kv_str(g, "backend", i->backend ? i->backend : "") ?:
	       xlm_gen_kv_int(g, "shutdown_reason", i->shutdown_reason) ?:
	       xlm_gen_kv_bool(g, "fenced", i->fenced) ?:
	       xlm_gen_map_close(g);
}

static void op_list(struct ctl_client *cl, const struct xlm_req *req)
{
	uint32_t *ids = malloc(LIST_MAX * sizeof(*ids));
	yajl_gen g;
	int n, rc;

	if (!ids) {
		REPLY_ERR(cl, req, -ENOMEM, "out of memory");
		return;
	}
	n = hyp_domain_list(cl->srv->hyp, ids, LIST_MAX);
	if (n < 0) {
		REPLY_ERR(cl, req, n, "cannot list domains: %s", ferry_strerror(n));
		free(ids);
		return;
	}
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g) {
		free(ids);
		return;
	}
	rc = xlm_gen_array_open(g);
	for (int i = 0; !rc && i < n; i++) {
		struct hyp_dom_info info;

		char role[32];

		if (hyp_domain_info(cl->srv->hyp, ids[i], &info))
			continue; /* destroyed meanwhile */
		rc = gen_dom_info(g, &info, ctl__remus_role(cl->srv, ids[i], role, sizeof(role)));
	}
	rc = rc ?: xlm_gen_array_close(g);
	free(ids);
	reply_gen(cl, req, g, rc);
}

static void op_domain_config(struct ctl_client *cl, const struct xlm_req *req)
{
	struct hyp_dom_config cfg;
	uint32_t domid;
	yajl_gen g;
	int rc;

	if (lookup(cl, req, &domid))
		return;
	rc = hyp_domain_config(cl->srv->hyp, domid, &cfg);
	if (rc) {
		REPLY_ERR(cl, req, rc, "domain %u: %s", domid, ferry_strerror(rc));
		return;
	}
	g = xlm_reply_begin(req->id, req->has_id);
	if (g)
		reply_gen(cl, req, g, xlm_gen_map_open(g) ?: xlm_cfg_gen_fields(g, &cfg) ?:
				      xlm_gen_map_close(g));
}

static void op_info(struct ctl_client *cl, const struct xlm_req *req)
{
	struct hyp_info info;
	struct utsname un;
	yajl_gen g;
	int rc;

	rc = hyp_get_info(cl->srv->hyp, &info);
	if (rc) {
		REPLY_ERR(cl, req, rc, "cannot get host info: %s", ferry_strerror(rc));
		return;
	}
	if (uname(&un))
		memset(&un, 0, sizeof(un));
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		return;
	rc = xlm_gen_map_open(g) ?:
	     xlm_gen_kv_str(g, "host", un.nodename) ?:
	     xlm_gen_kv_str(g, "release", un.release) ?:
	     xlm_gen_kv_str(g, "version", un.version) ?:
	     xlm_gen_kv_str(g, "machine", un.machine) ?:
	     xlm_gen_kv_int(g, "nr_cpus", info.pcpus) ?:
	     xlm_gen_kv_int(g, "total_memory", (long long)(info.total_bytes >> 20)) ?:
	     xlm_gen_kv_int(g, "free_memory", (long long)(info.free_bytes >> 20)) ?:
	     xlm_gen_kv_str(g, "backend", info.backend ? info.backend : "") ?:
	     xlm_gen_kv_str(g, "kvm_version", info.kvm_version) ?:
	     xlm_gen_kv_str(g, "ferry_version", FERRYD_VERSION) ?:
	     xlm_gen_kv_int(g, "nr_domains", info.ndomains) ?:
	     xlm_gen_kv_str(g, "run_dir", cl->srv->opts->run_dir) ?:
	     xlm_gen_kv_str(g, "state_dir", cl->srv->opts->state_dir) ?:
	     xlm_gen_map_close(g);
	reply_gen(cl, req, g, rc);
}

static void op_dmesg(struct ctl_client *cl, const struct xlm_req *req)
{
	char *text = malloc(DMESG_MAX);
	yajl_gen g;
	size_t n;

	if (!text) {
		REPLY_ERR(cl, req, -ENOMEM, "out of memory");
		return;
	}
	n = log_ring_read(text, DMESG_MAX);
	g = xlm_reply_begin(req->id, req->has_id);
	if (g)
		reply_gen(cl, req, g, xlm_gen_map_open(g) ?: xlm_gen_str(g, "text") ?:
				      xlm_gen_strn(g, text, n) ?: xlm_gen_map_close(g));
	free(text);
}

static void op_console_attach(struct ctl_client *cl, const struct xlm_req *req)
{
	char *buf = malloc(CONSOLE_RECENT_MAX);
	size_t got = 0;
	uint32_t domid;
	yajl_gen g;
	int rc;

	if (!buf) {
		REPLY_ERR(cl, req, -ENOMEM, "out of memory");
		return;
	}
	if (lookup(cl, req, &domid))
		goto out;
	/* Events queued so far predate the snapshot read below. */
	ctl__events_drain(cl->srv);
	rc = hyp_console_read(cl->srv->hyp, domid, buf, CONSOLE_RECENT_MAX, &got);
	if (rc) {
		REPLY_ERR(cl, req, rc, "domain %u: cannot read its console: %s", domid,
			  ferry_strerror(rc));
		goto out;
	}
	for (size_t i = 0; i < got; i++)
		if ((unsigned char)buf[i] >= 0x80)
			buf[i] = '?';
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		goto out;
	rc = xlm_gen_map_open(g) ?: xlm_gen_kv_int(g, "domid", domid) ?:
	     xlm_gen_str(g, "output") ?: xlm_gen_strn(g, buf, got) ?: xlm_gen_map_close(g);
	reply_gen(cl, req, g, rc);
	if (!rc) {
		cl->attached = true;
		cl->attach_domid = domid;
	}
out:
	free(buf);
}

#define CONSOLE_INPUT_MAX 4096

/* {domain, data: "text"} or {domain, bytes: [0..255, ...]}: keystrokes for
 * the guest's PV console ring. */
static void op_console_input(struct ctl_client *cl, const struct xlm_req *req)
{
	static const char *bytes_path[] = { "bytes", NULL };
	const char *data = xlm_args_str(req, "data");
	yajl_val bytes = req->args ? yajl_tree_get(req->args, bytes_path, yajl_t_array) : NULL;
	char buf[CONSOLE_INPUT_MAX];
	size_t len = 0;
	uint32_t domid;
	int rc;

	if (data) {
		len = strlen(data);
		if (len > sizeof(buf))
			len = sizeof(buf);
		memcpy(buf, data, len);
	} else if (bytes) {
		for (size_t i = 0; i < bytes->u.array.len && len < sizeof(buf); i++) {
			yajl_val b = bytes->u.array.values[i];

			if (!YAJL_IS_INTEGER(b) || YAJL_GET_INTEGER(b) < 0 ||
			    YAJL_GET_INTEGER(b) > 255) {
				REPLY_ERR(cl, req, -EINVAL, "console-input: bytes must be 0..255");
				return;
			}
			buf[len++] = (char)YAJL_GET_INTEGER(b);
		}
	} else {
		REPLY_ERR(cl, req, -EINVAL,
			  "console-input: expected a string \"data\" or an array \"bytes\"");
		return;
	}
	if (lookup(cl, req, &domid))
		return;
	rc = dev_console_input(cl->srv->hyp, domid, buf, len);
	if (rc) {
		REPLY_ERR(cl, req, rc, "domain %u: cannot send console input: %s", domid,
			  ferry_strerror(rc));
		return;
	}
	reply_domid(cl, req, domid);
}

/* ---- memory: mem-set, mem-max ------------------------------------------ */

/* args.memory_kb, a decimal string; replies and returns -EINVAL if bad. */
static int kib_arg(struct ctl_client *cl, const struct xlm_req *req, uint64_t *kib)
{
	const char *s = xlm_args_str(req, "memory_kb");
	char *end;

	if (s && *s >= '0' && *s <= '9') {
		*kib = strtoull(s, &end, 10);
		if (!*end && *kib && *kib < (1ULL << 50))
			return 0;
	}
	REPLY_ERR(cl, req, -EINVAL, "%s: expected a positive decimal \"memory_kb\"", req->op);
	return -EINVAL;
}

/* Xen's xl mem-set: the new memory/target for the guest's balloon, which
 * gets there on its own (the reply does not wait). */
static void op_mem_set(struct ctl_client *cl, const struct xlm_req *req)
{
	struct hyp_dom_info di;
	char val[24];
	uint32_t domid;
	uint64_t kib;
	int rc;

	/* Ballooning goes on during a live migration, as on Xen: log-dirty
	 * follows the guest's remaps (hyp/uffd.c) and the rounds carry it. */
	if (lookup(cl, req, &domid) || kib_arg(cl, req, &kib) ||
	    ctl__domain_check_during(cl, req, domid, "set the memory target of",
				     HYP_OP_MIGRATE))
		return;
	rc = hyp_domain_info(cl->srv->hyp, domid, &di);
	if (!rc && kib > di.maxmem_kb)
		rc = -EINVAL;
	if (rc) {
		REPLY_ERR(cl, req, rc, "cannot set the memory target of domain %u to %llu KiB: %s",
			  domid, (unsigned long long)kib,
			  rc == -EINVAL ? "above its maxmem (xl mem-max first)" : ferry_strerror(rc));
		return;
	}
	snprintf(val, sizeof(val), "%llu", (unsigned long long)kib);
	rc = ctl__xs_domain_write(cl->srv, domid, "memory/target", val);
	if (rc) {
		REPLY_ERR(cl, req, rc, "cannot write memory/target of domain %u: %s", domid,
			  rc == -ENODEV ? "ferryd runs without xenstore" : ferry_strerror(rc));
		return;
	}
	log_info("d%u: memory target %llu KiB", domid, (unsigned long long)kib);
	reply_domid(cl, req, domid);
}

static void op_mem_max(struct ctl_client *cl, const struct xlm_req *req)
{
	struct hyp_dom_config cfg;
	char why[128];
	uint32_t domid;
	uint64_t kib;
	int rc;

	if (lookup(cl, req, &domid) || kib_arg(cl, req, &kib) ||
	    ctl__domain_check(cl, req, domid, "set the maxmem of"))
		return;
	rc = hyp_domain_set_maxmem(cl->srv->hyp, domid, kib);
	if (rc == -ERANGE && !hyp_domain_config(cl->srv->hyp, domid, &cfg))
		snprintf(why, sizeof(why),
			 "above the %llu MiB it was created with (a domain cannot grow past it)",
			 (unsigned long long)cfg.memory_mb);
	else
		snprintf(why, sizeof(why), "%s",
			 rc == -EINVAL ? "below what it holds (xl mem-set first)"
				       : ferry_strerror(rc));
	if (rc) {
		REPLY_ERR(cl, req, rc, "cannot set the maxmem of domain %u to %llu KiB: %s", domid,
			  (unsigned long long)kib, why);
		return;
	}
	reply_domid(cl, req, domid);
}

static void op_version(struct ctl_client *cl, const struct xlm_req *req)
{
	yajl_gen g = xlm_reply_begin(req->id, req->has_id);

	if (g)
		reply_gen(cl, req, g, xlm_gen_map_open(g) ?:
				      xlm_gen_kv_str(g, "version", FERRYD_VERSION) ?:
				      xlm_gen_kv_int(g, "protocol", FERRYD_PROTOCOL) ?:
				      xlm_gen_map_close(g));
}

static const struct {
	const char *name;
	void (*fn)(struct ctl_client *cl, const struct xlm_req *req);
} ops[] = {
	{ "create", op_create },
	{ "destroy", op_destroy },
	{ "pause", op_pause },
	{ "unpause", op_unpause },
	{ "shutdown", op_shutdown },
	{ "reboot", op_reboot },
	{ "list", op_list },
	{ "domain-config", op_domain_config },
	{ "info", op_info },
	{ "dmesg", op_dmesg },
	{ "console-attach", op_console_attach },
	{ "console-input", op_console_input },
	{ "version", op_version },
	{ "mem-set", op_mem_set },
	{ "mem-max", op_mem_max },
	{ "save", ctl__op_save },
	{ "restore", ctl__op_restore },
	{ "migrate", ctl__op_migrate },
	{ "remus", ctl__op_remus },
	{ "remus-status", ctl__op_remus_status },
	{ "remus-stop", ctl__op_remus_stop },
	{ "migrate-cancel", ctl__op_migrate_cancel },
	{ "migrate-resolve", ctl__op_migrate_resolve },
	{ "sched", ctl__op_sched },
	{ "snapshot-create", ctl__op_snapshot_create },
	{ "snapshot-list", ctl__op_snapshot_list },
	{ "snapshot-delete", ctl__op_snapshot_delete },
	{ "snapshot-verify", ctl__op_snapshot_verify },
	{ "snapshot-export", ctl__op_snapshot_export },
	{ "snapshot-revert", ctl__op_snapshot_revert },
	{ "snapshot-schedule", ctl__op_snapshot_schedule },
};

void ctl__dispatch(struct ctl_client *cl, const struct xlm_req *req)
{
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		if (!strcmp(req->op, ops[i].name)) {
			ops[i].fn(cl, req);
			return;
		}
	}
	REPLY_ERR(cl, req, -EOPNOTSUPP, "unknown op '%s'", req->op);
}
