// SPDX-License-Identifier: MIT
/*
 * The scheduler op: {"op": "sched", "args": {"cmd": C, ...}} with C one of
 * credit2 (domain?, weight?, cap?: get or set), vcpu-pin (domain, vcpu,
 * hard, soft?), vcpu-list (domain?), pool-list, pool-create (name, sched?,
 * cpus?), pool-destroy (name), pool-migrate (domain, pool). Numbers and
 * cpu lists travel as strings, as the user typed them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h" /* before uv.h's <sys/param.h> */
#include "common/err.h"
#include "hyp/sched.h"
#include "internal.h"

#define SCHED_LIST_MAX 1024

#define REPLY_ERR(cl, req, err, ...) \
	ctl__reply_error(cl, (req)->id, (req)->has_id, err, __VA_ARGS__)

static void reply_gen(struct ctl_client *cl, const struct xlm_req *req, yajl_gen g, int rc)
{
	char *buf;
	size_t len;

	rc = rc ?: xlm_gen_finish(g, &buf, &len);
	if (rc) {
		if (g)
			yajl_gen_free(g);
		REPLY_ERR(cl, req, rc, "cannot encode the reply: %s", ferry_strerror(rc));
		return;
	}
	ctl__send(cl, buf, len);
}

static void reply_ok(struct ctl_client *cl, const struct xlm_req *req)
{
	yajl_gen g = xlm_reply_begin(req->id, req->has_id);
	char *buf;
	size_t len;

	if (!g)
		return;
	if (xlm_gen_map_open(g) || xlm_gen_map_close(g) || xlm_gen_finish(g, &buf, &len))
		return;
	ctl__send(cl, buf, len);
}

static int lookup(struct ctl_client *cl, const struct xlm_req *req, const char *name,
		  uint32_t *domid)
{
	int rc;

	if (!name) {
		REPLY_ERR(cl, req, -EINVAL, "sched: expected a \"domain\"");
		return -EINVAL;
	}
	rc = hyp_domain_lookup(cl->srv->hyp, name, domid);
	if (rc)
		REPLY_ERR(cl, req, rc, "domain '%s' does not exist", name);
	return rc;
}

/* A decimal argument; *out untouched when absent. */
static int num_arg(const struct xlm_req *req, const char *key, long *out, bool *given)
{
	const char *s = xlm_args_str(req, key);
	char *end;

	*given = false;
	if (!s)
		return 0;
	*out = strtol(s, &end, 10);
	if (!*s || *end)
		return -EINVAL;
	*given = true;
	return 0;
}

/* A JSON array of gen(domid), or of gen for every domain. */
static int gen_each(yajl_gen g, struct hyp *h, const uint32_t *domid,
		    int (*gen)(yajl_gen g, struct hyp *h, uint32_t domid))
{
	uint32_t ids[SCHED_LIST_MAX];
	int n, rc = xlm_gen_array_open(g);

	if (domid) {
		rc = rc ?: gen(g, h, *domid);
	} else {
		n = hyp_domain_list(h, ids, SCHED_LIST_MAX);
		for (int i = 0; !rc && i < n; i++)
			rc = gen(g, h, ids[i]);
	}
	return rc ?: xlm_gen_array_close(g);
}

static int gen_credit2(yajl_gen g, struct hyp *h, uint32_t domid)
{
	struct sched_dom_params sp;
	struct hyp_dom_info di;

	if (sched_credit2_get(h, domid, &sp) || hyp_domain_info(h, domid, &di))
		return 0; /* gone meanwhile */
	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "name", di.name) ?:
	       xlm_gen_kv_int(g, "domid", domid) ?: xlm_gen_kv_int(g, "weight", sp.weight) ?:
	       xlm_gen_kv_int(g, "cap", sp.cap) ?: xlm_gen_kv_str(g, "pool", sp.pool) ?:
	       xlm_gen_map_close(g);
}

static void do_credit2(struct ctl_client *cl, const struct xlm_req *req)
{
	struct hyp *h = cl->srv->hyp;
	const char *dom = xlm_args_str(req, "domain");
	long weight = -1, cap = -1;
	bool hw, hc;
	uint32_t domid;
	yajl_gen g;
	int rc;

	if (num_arg(req, "weight", &weight, &hw) || num_arg(req, "cap", &cap, &hc)) {
		REPLY_ERR(cl, req, -EINVAL, "weight and cap must be numbers");
		return;
	}
	if (dom && lookup(cl, req, dom, &domid))
		return;
	if (hw || hc) {
		if (!dom) {
			REPLY_ERR(cl, req, -EINVAL, "setting weight or cap needs -d <Domain>");
			return;
		}
		if ((hw && (weight < 1 || weight > SCHED_MAX_WEIGHT)) || (hc && cap < 0)) {
			REPLY_ERR(cl, req, -EINVAL, "weight must be 1..%d and cap >= 0",
				  SCHED_MAX_WEIGHT);
			return;
		}
		rc = sched_credit2_set(h, domid, hw ? (int)weight : -1, hc ? (int)cap : -1);
		if (rc == -EINVAL)
			REPLY_ERR(cl, req, rc, "cap %ld is over 100 x the domain's vCPUs", cap);
		else if (rc)
			REPLY_ERR(cl, req, rc, "cannot set the parameters of domain %u: %s",
				  domid, ferry_strerror(rc));
		else
			reply_ok(cl, req);
		return;
	}
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		return;
	reply_gen(cl, req, g, gen_each(g, h, dom ? &domid : NULL, gen_credit2));
}

static int parse_list(struct ctl_client *cl, const struct xlm_req *req, const char *s,
		      uint64_t *mask)
{
	int rc = sched_parse_cpulist(s, sched_npcpus(cl->srv->hyp), mask);

	if (rc)
		REPLY_ERR(cl, req, rc, "invalid cpu list '%s' (pCPUs 0-%u, e.g. 0-1,3 or all)",
			  s, sched_npcpus(cl->srv->hyp) - 1);
	return rc;
}

static void do_vcpu_pin(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *vcpu = xlm_args_str(req, "vcpu"), *hard = xlm_args_str(req, "hard");
	const char *soft = xlm_args_str(req, "soft");
	uint64_t hm = 0, sm = 0;
	uint32_t domid;
	long v = -1;
	char *end;
	int rc;

	if (lookup(cl, req, xlm_args_str(req, "domain"), &domid))
		return;
	if (!vcpu || !hard) {
		REPLY_ERR(cl, req, -EINVAL, "vcpu-pin: expected a vCPU and a hard affinity");
		return;
	}
	if (strcmp(vcpu, "all")) {
		v = strtol(vcpu, &end, 10);
		if (!*vcpu || *end || v < 0) {
			REPLY_ERR(cl, req, -EINVAL, "invalid vCPU '%s'", vcpu);
			return;
		}
	}
	/* Xen's "-" leaves that affinity alone. */
	if (strcmp(hard, "-") && parse_list(cl, req, hard, &hm))
		return;
	if (soft && strcmp(soft, "-") && parse_list(cl, req, soft, &sm))
		return;
	rc = sched_vcpu_pin(cl->srv->hyp, domid, (int)v, strcmp(hard, "-") ? &hm : NULL,
			    soft && strcmp(soft, "-") ? &sm : NULL);
	if (rc == -EINVAL)
		REPLY_ERR(cl, req, rc, "domain %u has no vCPU %s", domid, vcpu);
	else if (rc)
		REPLY_ERR(cl, req, rc, "cannot pin: %s", ferry_strerror(rc));
	else
		reply_ok(cl, req);
}

static int gen_vcpus(yajl_gen g, struct hyp *h, uint32_t domid)
{
	static struct sched_vcpu_info vi[64];
	struct hyp_dom_info di;
	unsigned np = sched_npcpus(h);
	char hard[256], soft[256];
	int n, rc = 0;

	if (hyp_domain_info(h, domid, &di))
		return 0;
	n = sched_vcpu_list(h, domid, vi, 64);
	for (int i = 0; !rc && i < n; i++) {
		sched_format_cpulist(vi[i].hard, np, hard, sizeof(hard));
		sched_format_cpulist(vi[i].soft, np, soft, sizeof(soft));
		rc = xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "name", di.name) ?:
		     xlm_gen_kv_int(g, "domid", domid) ?: xlm_gen_kv_int(g, "vcpu", vi[i].vcpu) ?:
		     xlm_gen_kv_int(g, "cpu", vi[i].cpu) ?: xlm_gen_kv_str(g, "state", vi[i].state) ?:
		     xlm_gen_kv_double(g, "time", vi[i].time_s) ?: xlm_gen_kv_str(g, "hard", hard) ?:
		     xlm_gen_kv_str(g, "soft", soft) ?: xlm_gen_map_close(g);
	}
	return rc;
}

static void do_vcpu_list(struct ctl_client *cl, const struct xlm_req *req)
{
	struct hyp *h = cl->srv->hyp;
	const char *dom = xlm_args_str(req, "domain");
	uint32_t domid;
	yajl_gen g;

	if (dom && lookup(cl, req, dom, &domid))
		return;
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		return;
	reply_gen(cl, req, g, gen_each(g, h, dom ? &domid : NULL, gen_vcpus));
}

static void do_pool_list(struct ctl_client *cl, const struct xlm_req *req)
{
	struct sched_pool_info pi[SCHED_MAX_POOLS];
	char cpus[256];
	yajl_gen g;
	int n, rc;

	n = sched_pool_list(cl->srv->hyp, pi, SCHED_MAX_POOLS);
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		return;
	rc = xlm_gen_array_open(g);
	for (int i = 0; !rc && i < n; i++) {
		sched_format_cpulist(pi[i].cpus, 0, cpus, sizeof(cpus));
		rc = xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "name", pi[i].name) ?:
		     xlm_gen_kv_int(g, "id", pi[i].id) ?: xlm_gen_kv_str(g, "sched", pi[i].sched) ?:
		     xlm_gen_kv_int(g, "ncpus", pi[i].ncpus) ?: xlm_gen_kv_str(g, "cpus", cpus) ?:
		     xlm_gen_kv_int(g, "ndoms", pi[i].ndoms) ?: xlm_gen_map_close(g);
	}
	rc = rc ?: xlm_gen_array_close(g);
	reply_gen(cl, req, g, rc);
}

static void do_pool_create(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *name = xlm_args_str(req, "name"), *sched = xlm_args_str(req, "sched");
	const char *cpus = xlm_args_str(req, "cpus");
	uint64_t mask = 0;
	int rc;

	if (!name || !*name) {
		REPLY_ERR(cl, req, -EINVAL, "cpupool-create: expected a name");
		return;
	}
	if (sched && *sched && strcmp(sched, "credit2") && strcmp(sched, "null")) {
		REPLY_ERR(cl, req, -EINVAL, "unknown scheduler '%s' (credit2 or null)", sched);
		return;
	}
	if (cpus && parse_list(cl, req, cpus, &mask))
		return;
	rc = sched_pool_create(cl->srv->hyp, name, sched, mask);
	if (rc == -EEXIST)
		REPLY_ERR(cl, req, rc, "cpupool '%s' already exists", name);
	else if (rc == -EBUSY)
		REPLY_ERR(cl, req, rc, "cpus %s are not free (another pool's, or Pool-0's last)",
			  cpus);
	else if (rc == -EINVAL)
		REPLY_ERR(cl, req, rc, "invalid cpupool name '%s'", name);
	else if (rc)
		REPLY_ERR(cl, req, rc, "cannot create cpupool '%s': %s", name, ferry_strerror(rc));
	else
		reply_ok(cl, req);
}

static void do_pool_destroy(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *name = xlm_args_str(req, "name");
	int rc;

	if (!name) {
		REPLY_ERR(cl, req, -EINVAL, "cpupool-destroy: expected a name");
		return;
	}
	rc = sched_pool_destroy(cl->srv->hyp, name);
	if (rc == -ENOENT)
		REPLY_ERR(cl, req, rc, "cpupool '%s' does not exist", name);
	else if (rc == -EBUSY)
		REPLY_ERR(cl, req, rc, "cpupool '%s' still has domains", name);
	else if (rc == -EPERM)
		REPLY_ERR(cl, req, rc, "Pool-0 cannot be destroyed");
	else if (rc)
		REPLY_ERR(cl, req, rc, "cannot destroy '%s': %s", name, ferry_strerror(rc));
	else
		reply_ok(cl, req);
}

static void do_pool_migrate(struct ctl_client *cl, const struct xlm_req *req)
{
	const char *pool = xlm_args_str(req, "pool");
	uint32_t domid;
	int rc;

	if (lookup(cl, req, xlm_args_str(req, "domain"), &domid))
		return;
	if (!pool) {
		REPLY_ERR(cl, req, -EINVAL, "cpupool-migrate: expected a pool");
		return;
	}
	rc = sched_pool_migrate(cl->srv->hyp, domid, pool);
	if (rc == -ENOENT)
		REPLY_ERR(cl, req, rc, "cpupool '%s' does not exist", pool);
	else if (rc)
		REPLY_ERR(cl, req, rc, "cannot move domain %u: %s", domid, ferry_strerror(rc));
	else
		reply_ok(cl, req);
}

void ctl__op_sched(struct ctl_client *cl, const struct xlm_req *req)
{
	static const struct {
		const char *cmd;
		void (*fn)(struct ctl_client *cl, const struct xlm_req *req);
	} cmds[] = {
		{ "credit2", do_credit2 },	   { "vcpu-pin", do_vcpu_pin },
		{ "vcpu-list", do_vcpu_list },	   { "pool-list", do_pool_list },
		{ "pool-create", do_pool_create }, { "pool-destroy", do_pool_destroy },
		{ "pool-migrate", do_pool_migrate },
	};
	const char *cmd = xlm_args_str(req, "cmd");

	for (size_t i = 0; cmd && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmds[i].cmd, cmd)) {
			cmds[i].fn(cl, req);
			return;
		}
	REPLY_ERR(cl, req, -EINVAL, "sched: unknown cmd '%s'", cmd ? cmd : "");
}
