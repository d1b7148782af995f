// SPDX-License-Identifier: MIT
/* xl list [-l] [DOMAIN...]: Xen's columns, or the configs as JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xl.h"

/* Xen's six state columns: r b p s c d, one per enum hyp_dom_state. */
static void state_letters(const char *state, char out[7])
{
	static const char *const names[] = { "running", "blocked", "paused",
					     "shutdown", "crashed", "dying" };

	memcpy(out, "------", 7);
	for (unsigned i = 0; i < ARRAY_SIZE(names); i++)
		if (state && !strcmp(state, names[i]))
			out[i] = "rbpscd"[i];
}

static bool matches(yajl_val dom, const char *want)
{
	long long id;
	char idstr[24];
	const char *name = xlm_json_str(dom, "name");

	if (name && !strcmp(name, want))
		return true;
	if (!xlm_json_int(dom, "domid", &id))
		return false;
	snprintf(idstr, sizeof(idstr), "%lld", id);
	return !strcmp(idstr, want);
}

/* Returns true when the domain is to be shown (no filter, or named). */
static bool selected(yajl_val dom, int n, char **want)
{
	if (!n)
		return true;
	for (int i = 0; i < n; i++)
		if (matches(dom, want[i]))
			return true;
	return false;
}

static int list_long(struct xlm_client *c, yajl_val doms, int n, char **want)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	size_t len;
	int rc = 0;

	if (!g)
		return xlm_fail("out of memory");
	yajl_gen_config(g, yajl_gen_beautify, 1);
	yajl_gen_config(g, yajl_gen_indent_string, "    ");
	xlm_gen_array_open(g);
	for (size_t i = 0; i < doms->u.array.len; i++) {
		yajl_val d = doms->u.array.values[i], root, cfg;
		const char *name = xlm_json_str(d, "name");
		long long id = 0;

		if (!selected(d, n, want) || !name)
			continue;
		xlm_json_int(d, "domid", &id);
		if (xlm_call_domain(c, "domain-config", name, &root, &cfg)) {
			rc = XL_EXIT_FAIL;
			break;
		}
		xlm_gen_map_open(g);
		xlm_gen_kv_int(g, "domid", id);
		xlm_gen_str(g, "config");
		xlm_gen_tree(g, cfg);
		xlm_gen_map_close(g);
		yajl_tree_free(root);
	}
	xlm_gen_array_close(g);
	if (!rc && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
		fwrite(buf, 1, len, stdout);
	yajl_gen_free(g);
	return rc;
}

int xlm_cmd_list(int argc, char **argv)
{
	struct xlm_client c;
	yajl_val root, doms;
	bool details = false;
	int opt, status, rc = 0, nwant;
	char **want;

	while ((opt = xlm_getopt(argc, argv, "list", "l", 0, &status)) != -1) {
		switch (opt) {
		case -2: return status;
		case 'l': details = true; break;
		}
	}
	nwant = argc - optind;
	want = argv + optind;
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	if (xlm_call_domain(&c, "list", NULL, &root, &doms)) {
		xlm_client_close(&c);
		return XL_EXIT_FAIL;
	}
	if (!YAJL_IS_ARRAY(doms)) {
		rc = xlm_fail("malformed reply from ferryd: expected a list of domains");
		goto out;
	}
	for (int i = 0; i < nwant; i++) {
		bool found = false;

		for (size_t j = 0; j < doms->u.array.len && !found; j++)
			found = matches(doms->u.array.values[j], want[i]);
		if (!found) {
			rc = xlm_fail("domain '%s' does not exist", want[i]);
			goto out;
		}
	}
	if (details) {
		rc = list_long(&c, doms, nwant, want);
		goto out;
	}
	printf("Name                                        ID   Mem VCPUs\tState\tTime(s)\n");
	for (size_t i = 0; i < doms->u.array.len; i++) {
		yajl_val d = doms->u.array.values[i];
		long long id = 0, mem_kb = 0, vcpus = 0;
		const char *name = xlm_json_str(d, "name");
		char st[7];

		if (!selected(d, nwant, want))
			continue;
		xlm_json_int(d, "domid", &id);
		xlm_json_int(d, "memory_kb", &mem_kb);
		xlm_json_int(d, "vcpus", &vcpus);
		state_letters(xlm_json_str(d, "state"), st);
		/* Fenced after a migration: paused, and unpause is refused. */
		if (YAJL_IS_TRUE(yajl_tree_get(d, (const char *[]){ "fenced", NULL }, yajl_t_any)))
			st[2] = 'f';
		printf("%-40s %5lld %5llu %5lld     %s  %8.1f%s%s\n", name ? name : "?", id,
		       (unsigned long long)mem_kb / 1024, vcpus, st, xlm_json_double(d, "cpu_time"),
		       /* a replication pair's role, after Xen's columns */
		       xlm_json_str(d, "remus") ? "  " : "", xlm_json_str(d, "remus") ?: "");
	}
out:
	yajl_tree_free(root);
	xlm_client_close(&c);
	return rc;
}
