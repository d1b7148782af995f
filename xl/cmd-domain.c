// SPDX-License-Identifier: MIT
/* The one-domain verbs: destroy, pause, unpause, shutdown [-w], reboot. */
#include <stdio.h>

#include "xl.h"

/* Parses "<Domain>" (no options but -h) and runs op on it. */
static int domain_verb(int argc, char **argv, const char *verb, const char *op)
{
	struct xlm_client c;
	yajl_val root;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, verb, "", 1, &status)) != -1)
		if (opt == -2)
			return status;
	if (argc - optind > 1)
		return xlm_fail("%s: expected one domain, got %d", verb, argc - optind);
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call_domain(&c, op, argv[optind], &root, NULL);
	if (!rc)
		yajl_tree_free(root);
	xlm_client_close(&c);
	return rc ? XL_EXIT_FAIL : 0;
}

int xlm_cmd_destroy(int argc, char **argv)
{
	return domain_verb(argc, argv, "destroy", "destroy");
}

int xlm_cmd_pause(int argc, char **argv)
{
	return domain_verb(argc, argv, "pause", "pause");
}

int xlm_cmd_unpause(int argc, char **argv)
{
	return domain_verb(argc, argv, "unpause", "unpause");
}

int xlm_cmd_reboot(int argc, char **argv)
{
	return domain_verb(argc, argv, "reboot", "reboot");
}

static int args_shutdown_wait(yajl_gen g, void *opaque)
{
	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", opaque) ?:
	       xlm_gen_kv_bool(g, "wait", true) ?: xlm_gen_map_close(g);
}

int xlm_cmd_shutdown(int argc, char **argv)
{
	struct xlm_client c;
	bool wait = false;
	yajl_val root, result;
	long long domid = -1;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, "shutdown", "w", 1, &status)) != -1) {
		switch (opt) {
		case -2: return status;
		case 'w': wait = true; break;
		}
	}
	if (!wait)
		return domain_verb(argc, argv, "shutdown", "shutdown");
	if (argc - optind > 1)
		return xlm_fail("shutdown: expected one domain, got %d", argc - optind);
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	fprintf(stderr, "Waiting for 1 domains\n");
	rc = xlm_call(&c, "shutdown", args_shutdown_wait, argv[optind], &root, &result);
	if (!rc) {
		xlm_json_int(result, "domid", &domid);
		fprintf(stderr, "Domain %lld has been shut down\n", domid);
		yajl_tree_free(root);
	}
	xlm_client_close(&c);
	return rc ? XL_EXIT_FAIL : 0;
}
