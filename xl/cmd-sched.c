// SPDX-License-Identifier: MIT
/*
 * The scheduler verbs, with Xen's output: sched-credit2, vcpu-pin,
 * vcpu-list, cpupool-create, cpupool-list, cpupool-migrate,
 * cpupool-destroy. All go through ferryd's "sched" op (ctl-sched.c).
 */
#include <stdio.h>
#include <string.h>

#include "xl.h"

#define KV_MAX 8

struct kv {
	const char *k[KV_MAX], *v[KV_MAX];
	int n;
};

static void kv_add(struct kv *kv, const char *k, const char *v)
{
	if (v && kv->n < KV_MAX) {
		kv->k[kv->n] = k;
		kv->v[kv->n++] = v;
	}
}

static int args_kv(yajl_gen g, void *opaque)
{
	const struct kv *kv = opaque;
	int rc = xlm_gen_map_open(g);

	for (int i = 0; !rc && i < kv->n; i++)
		rc = xlm_gen_kv_str(g, kv->k[i], kv->v[i]);
	return rc ?: xlm_gen_map_close(g);
}

/* Calls sched with kv; *root to free on success. */
static int call(const struct kv *kv, yajl_val *root, yajl_val *result)
{
	struct xlm_client c;
	int rc;

	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, "sched", args_kv, (void *)kv, root, result);
	xlm_client_close(&c);
	return rc ? XL_EXIT_FAIL : 0;
}

static long long num(yajl_val o, const char *key)
{
	long long v = 0;

	xlm_json_int(o, key, &v);
	return v;
}

static const char *str(yajl_val o, const char *key)
{
	const char *s = xlm_json_str(o, key);

	return s ? s : "";
}

static int simple(const struct kv *kv)
{
	yajl_val root, result;
	int rc = call(kv, &root, &result);

	if (!rc)
		yajl_tree_free(root);
	return rc;
}

int xlm_cmd_sched_credit2(int argc, char **argv)
{
	struct kv kv = { .n = 0 };
	const char *dom = NULL, *w = NULL, *cap = NULL;
	yajl_val root, result;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, "sched-credit2", "d:w:c:", 0, &status)) != -1) {
		switch (opt) {
		case -2: return status;
		case 'd': dom = optarg; break;
		case 'w': w = optarg; break;
		case 'c': cap = optarg; break;
		}
	}
	if (argc > optind)
		return xlm_fail("sched-credit2: unexpected argument '%s'", argv[optind]);
	if ((w || cap) && !dom)
		return xlm_fail("sched-credit2: -w and -c need -d <Domain>");
	kv_add(&kv, "cmd", "credit2");
	kv_add(&kv, "domain", dom);
	kv_add(&kv, "weight", w);
	kv_add(&kv, "cap", cap);
	if (w || cap)
		return simple(&kv);
	rc = call(&kv, &root, &result);
	if (rc)
		return rc;
	if (!dom) {
		/* Xen lists per cpupool; ferryd's pools share the parameters. */
		printf("Cpupool %s: tslice=10ms ratelimit=0us migr_resist=0us\n",
		       YAJL_IS_ARRAY(result) && result->u.array.len ?
			       str(result->u.array.values[0], "pool") : "Pool-0");
	}
	printf("%-33s %4s %6s %4s\n", "Name", "ID", "Weight", "Cap");
	for (size_t i = 0; YAJL_IS_ARRAY(result) && i < result->u.array.len; i++) {
		yajl_val d = result->u.array.values[i];

		printf("%-33s %4lld %6lld %4lld\n", str(d, "name"), num(d, "domid"),
		       num(d, "weight"), num(d, "cap"));
	}
	yajl_tree_free(root);
	return 0;
}

int xlm_cmd_vcpu_pin(int argc, char **argv)
{
	struct kv kv = { .n = 0 };
	int opt, status;

	while ((opt = xlm_getopt(argc, argv, "vcpu-pin", "", 3, &status)) != -1)
		if (opt == -2)
			return status;
	if (argc - optind > 4)
		return xlm_fail("vcpu-pin: too many arguments");
	kv_add(&kv, "cmd", "vcpu-pin");
	kv_add(&kv, "domain", argv[optind]);
	kv_add(&kv, "vcpu", argv[optind + 1]);
	kv_add(&kv, "hard", argv[optind + 2]);
	kv_add(&kv, "soft", argc - optind > 3 ? argv[optind + 3] : NULL);
	return simple(&kv);
}

int xlm_cmd_vcpu_list(int argc, char **argv)
{
	struct kv kv = { .n = 0 };
	yajl_val root, result;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, "vcpu-list", "", 0, &status)) != -1)
		if (opt == -2)
			return status;
	if (argc - optind > 1)
		return xlm_fail("vcpu-list: expected at most one domain");
	kv_add(&kv, "cmd", "vcpu-list");
	kv_add(&kv, "domain", argc > optind ? argv[optind] : NULL);
	rc = call(&kv, &root, &result);
	if (rc)
		return rc;
	printf("%-32s %5s %5s %5s %5s %9s %s\n", "Name", "ID", "VCPU", "CPU", "State",
	       "Time(s)", "Affinity (Hard / Soft)");
	for (size_t i = 0; YAJL_IS_ARRAY(result) && i < result->u.array.len; i++) {
		yajl_val v = result->u.array.values[i];
		char cpu[16];

		if (num(v, "cpu") < 0)
			snprintf(cpu, sizeof(cpu), "-");
		else
			snprintf(cpu, sizeof(cpu), "%lld", num(v, "cpu"));
		printf("%-32s %5lld %5lld %5s %5s %9.1f  %s / %s\n", str(v, "name"),
		       num(v, "domid"), num(v, "vcpu"), cpu, str(v, "state"),
		       xlm_json_double(v, "time"), str(v, "hard"), str(v, "soft"));
	}
	yajl_tree_free(root);
	return 0;
}

int xlm_cmd_cpupool_create(int argc, char **argv)
{
	struct kv kv = { .n = 0 };
	const char *name = NULL;
	int opt, status;

	while ((opt = xlm_getopt(argc, argv, "cpupool-create", "", 1, &status)) != -1)
		if (opt == -2)
			return status;
	kv_add(&kv, "cmd", "pool-create");
	for (int i = optind; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		const char *val = eq ? eq + 1 : NULL;
		size_t klen = eq ? (size_t)(eq - argv[i]) : 0;

		/* Quotes as in a cpupool config file are accepted. */
		if (val && *val == '"' && strlen(val) >= 2 && val[strlen(val) - 1] == '"') {
			val++;
			eq[strlen(eq) - 1] = 0;
		}
		if (!eq) {
			if (name)
				return xlm_fail("cpupool-create: unexpected argument '%s'",
						argv[i]);
			name = argv[i];
		} else if (klen == 4 && !strncmp(argv[i], "name", 4)) {
			name = val;
		} else if (klen == 5 && !strncmp(argv[i], "sched", 5)) {
			kv_add(&kv, "sched", val);
		} else if (klen == 4 && !strncmp(argv[i], "cpus", 4)) {
			kv_add(&kv, "cpus", val);
		} else {
			return xlm_fail("cpupool-create: unknown key in '%s' (name, sched, cpus)",
					argv[i]);
		}
	}
	if (!name || !*name)
		return xlm_fail("cpupool-create: no pool name given");
	kv_add(&kv, "name", name);
	return simple(&kv);
}

int xlm_cmd_cpupool_list(int argc, char **argv)
{
	struct kv kv = { .n = 0 };
	yajl_val root, result;
	bool cpus = false;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, "cpupool-list", "c", 0, &status)) != -1) {
		if (opt == -2)
			return status;
		if (opt == 'c')
			cpus = true;
	}
	kv_add(&kv, "cmd", "pool-list");
	rc = call(&kv, &root, &result);
	if (rc)
		return rc;
	if (cpus)
		printf("%-19s CPU list\n", "Name");
	else
		printf("%-19sCPUs   Sched     Active   Domain count\n", "Name");
	for (size_t i = 0; YAJL_IS_ARRAY(result) && i < result->u.array.len; i++) {
		yajl_val p = result->u.array.values[i];
		const char *name = str(p, "name");

		if (argc > optind && strcmp(argv[optind], name))
			continue;
		if (cpus)
			printf("%-19s %s\n", name, str(p, "cpus"));
		else
			printf("%-19s%4lld %9s       y     %4lld\n", name, num(p, "ncpus"),
			       str(p, "sched"), num(p, "ndoms"));
	}
	yajl_tree_free(root);
	return 0;
}

int xlm_cmd_cpupool_migrate(int argc, char **argv)
{
	struct kv kv = { .n = 0 };
	int opt, status;

	while ((opt = xlm_getopt(argc, argv, "cpupool-migrate", "", 2, &status)) != -1)
		if (opt == -2)
			return status;
	kv_add(&kv, "cmd", "pool-migrate");
	kv_add(&kv, "domain", argv[optind]);
	kv_add(&kv, "pool", argv[optind + 1]);
	return simple(&kv);
}

int xlm_cmd_cpupool_destroy(int argc, char **argv)
{
	struct kv kv = { .n = 0 };
	int opt, status;

	while ((opt = xlm_getopt(argc, argv, "cpupool-destroy", "", 1, &status)) != -1)
		if (opt == -2)
			return status;
	kv_add(&kv, "cmd", "pool-destroy");
	kv_add(&kv, "name", argv[optind]);
	return simple(&kv);
}
