// SPDX-License-Identifier: MIT
/* xl mem-set and mem-max: a domain's memory target and maximum. */
#include <inttypes.h>
#include <stdio.h>

#include "common/size.h"
#include "xl.h"

struct mem_args {
	const char *domain;
	char kib[24];
};

static int args_mem(yajl_gen g, void *opaque)
{
	const struct mem_args *a = opaque;

	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", a->domain) ?:
	       xlm_gen_kv_str(g, "memory_kb", a->kib) ?: xlm_gen_map_close(g);
}

/* "<Domain> <Mem>", Mem in MiB unless it has a unit (Xen's xl's rule). */
static int mem_verb(int argc, char **argv, const char *verb)
{
	struct mem_args a;
	struct xlm_client c;
	yajl_val root;
	uint64_t bytes;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, verb, "", 2, &status)) != -1)
		if (opt == -2)
			return status;
	if (argc - optind != 2)
		return xlm_fail("%s: expected <Domain> <Mem>", verb);
	if (size_parse(argv[optind + 1], 1 << 20, &bytes) || bytes < 1024)
		return xlm_fail("%s: invalid memory size '%s'", verb, argv[optind + 1]);
	a.domain = argv[optind];
	snprintf(a.kib, sizeof(a.kib), "%" PRIu64, bytes >> 10);
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, verb, args_mem, &a, &root, NULL);
	if (!rc)
		yajl_tree_free(root);
	xlm_client_close(&c);
	return rc ? XL_EXIT_FAIL : 0;
}

int xlm_cmd_mem_set(int argc, char **argv)
{
	return mem_verb(argc, argv, "mem-set");
}

int xlm_cmd_mem_max(int argc, char **argv)
{
	return mem_verb(argc, argv, "mem-max");
}
