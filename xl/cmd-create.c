// SPDX-License-Identifier: MIT
/* xl create [-c] [-p] [-n] CFG [KEY=VALUE...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "toolstack/config.h"
#include "xl.h"

struct create_args {
	const struct hyp_dom_config *cfg;
	const struct xlm_cfg_snapshot *snapshot;
	bool paused;
};

static int args_create(yajl_gen g, void *opaque)
{
	const struct create_args *a = opaque;

	return xlm_gen_map_open(g) ?: xlm_cfg_gen_fields(g, a->cfg) ?:
	       xlm_cfg_gen_snapshot(g, a->snapshot) ?:
	       xlm_gen_kv_bool(g, "paused", a->paused) ?: xlm_gen_map_close(g);
}

int xlm_cmd_create(int argc, char **argv)
{
	bool console = false, paused = false, dryrun = false;
	const char *file = NULL;
	struct hyp_dom_config dom;
	struct xlm_client c;
	struct xlm_cfg cfg;
	yajl_val root, result;
	long long domid;
	char domstr[16];
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, "create", "cpn", 1, &status)) != -1) {
		switch (opt) {
		case -2: return status;
		case 'c': console = true; break;
		case 'p': paused = true; break;
		case 'n': dryrun = true; break;
		}
	}
	xlm_cfg_init(&cfg);
	/* The first argument without '=' is the file; the rest override it. */
	for (int i = optind; i < argc; i++) {
		if (!strchr(argv[i], '=')) {
			if (file)
				return xlm_fail("more than one config file: '%s' and '%s'", file,
						argv[i]);
			file = argv[i];
		}
	}
	if (!file)
		return xlm_fail("create: expected a config file");
	fprintf(stderr, "Parsing config from %s\n", file);
	if (xlm_cfg_parse_file(&cfg, file))
		return xlm_fail("%s", cfg.err);
	for (int i = optind; i < argc; i++)
		if (strchr(argv[i], '=') && xlm_cfg_parse_override(&cfg, argv[i]))
			return xlm_fail("%s", cfg.err);
	if (xlm_cfg_finish(&cfg, &dom))
		return xlm_fail("%s", cfg.err);
	if (dryrun) {
		char *json;

		if (xlm_cfg_to_json(&dom, &json))
			return xlm_fail("cannot encode the configuration");
		printf("%s\n", json);
		free(json);
		return 0;
	}
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, "create", args_create,
		      &(struct create_args){ .cfg = &dom, .snapshot = &cfg.snapshot,
					     .paused = paused },
		      &root, &result);
	if (rc) {
		xlm_client_close(&c);
		return XL_EXIT_FAIL;
	}
	if (!xlm_json_int(result, "domid", &domid))
		domid = -1;
	yajl_tree_free(root);
	if (!console) {
		xlm_client_close(&c);
		return 0;
	}
	snprintf(domstr, sizeof(domstr), "%lld", domid);
	rc = xlm_console_run(&c, domstr);
	xlm_client_close(&c);
	return rc;
}
