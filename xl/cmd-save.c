// SPDX-License-Identifier: MIT
/*
 * xl save [-c] [-p] D FILE [--compress C]
 * xl restore [-p] [-e] [-n NAME] FILE [CFG]
 * xl stream-dump [-v] FILE            (local: no daemon needed)
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stream/dump.h"
#include "toolstack/config.h"
#include "xl.h"

struct save_args {
	const char *domain, *path, *compress;
	bool checkpoint, paused;
};

static int args_save(yajl_gen g, void *opaque)
{
	const struct save_args *a = opaque;

	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", a->domain) ?:
	       xlm_gen_kv_str(g, "path", a->path) ?:
	       xlm_gen_kv_str(g, "compress", a->compress) ?:
	       xlm_gen_kv_bool(g, "checkpoint", a->checkpoint) ?:
	       xlm_gen_kv_bool(g, "paused", a->paused) ?: xlm_gen_map_close(g);
}

/* ferryd opens the file itself: give it an absolute path. */
static int absolute(const char *path, char *out, size_t len, bool must_exist)
{
	char dir[PATH_MAX];

	if (must_exist) {
		if (!realpath(path, out))
			return -1;
		return 0;
	}
	int n;

	if (path[0] == '/')
		n = snprintf(out, len, "%s", path);
	else if (!getcwd(dir, sizeof(dir)))
		return -1;
	else
		n = snprintf(out, len, "%s/%s", dir, path);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void report(yajl_val result, const char *what)
{
	long long pages = 0, bytes = 0;
	double secs = 0;
	yajl_val v = yajl_tree_get(result, (const char *[]){ "seconds", NULL }, yajl_t_number);

	xlm_json_int(result, "pages", &pages);
	xlm_json_int(result, "bytes", &bytes);
	if (v)
		secs = YAJL_GET_DOUBLE(v);
	if (isatty(STDERR_FILENO) || getenv("FERRY_VERBOSE"))
		fprintf(stderr, "%s: %lld pages, %.1f MiB in %.3f s (%.2f GiB/s)\n", what, pages,
			(double)bytes / (1 << 20), secs,
			secs > 0 ? (double)pages * 4096 / secs / (1 << 30) : 0.0);
}

int xlm_cmd_save(int argc, char **argv)
{
	struct save_args a = { .compress = "none" };
	char path[PATH_MAX];
	struct xlm_client c;
	yajl_val root, result;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, "save", "cpz:", 2, &status)) != -1) {
		switch (opt) {
		case -2: return status;
		case 'c': a.checkpoint = true; break;
		case 'p': a.paused = true; break;
		case 'z': a.compress = optarg; break;
		}
	}
	if (argc - optind != 2)
		return xlm_fail("save: expected a domain and a file");
	if (a.checkpoint && a.paused)
		return xlm_fail("save: -c and -p cannot be combined");
	a.domain = argv[optind];
	if (absolute(argv[optind + 1], path, sizeof(path), false))
		return xlm_fail("save: cannot resolve '%s'", argv[optind + 1]);
	a.path = path;
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, "save", args_save, &a, &root, &result);
	xlm_client_close(&c);
	if (rc)
		return XL_EXIT_FAIL;
	report(result, "saved");
	yajl_tree_free(root);
	return 0;
}

struct restore_args {
	const char *path, *name;
	const struct hyp_dom_config *cfg;
	bool paused, lazy;
};

static int args_restore(yajl_gen g, void *opaque)
{
	const struct restore_args *a = opaque;
	int rc = xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "path", a->path) ?:
		 xlm_gen_kv_bool(g, "paused", a->paused);

	if (!rc && a->lazy)
		rc = xlm_gen_kv_bool(g, "lazy", true);
	if (!rc && a->name)
		rc = xlm_gen_kv_str(g, "name", a->name);
	if (!rc && a->cfg)
		rc = xlm_gen_str(g, "config") ?: xlm_gen_map_open(g) ?:
		     xlm_cfg_gen_fields(g, a->cfg) ?: xlm_gen_map_close(g);
	return rc ?: xlm_gen_map_close(g);
}

int xlm_cmd_restore(int argc, char **argv)
{
	struct restore_args a = { 0 };
	struct hyp_dom_config dom;
	char path[PATH_MAX];
	struct xlm_client c;
	yajl_val root, result;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, "restore", "pen:L", 1, &status)) != -1) {
		switch (opt) {
		case -2: return status;
		case 'p': a.paused = true; break;
		case 'e': break;
		case 'n': a.name = optarg; break;
		case 'L': a.lazy = true; break;
		}
	}
	if (a.lazy && argc - optind > 1)
		return xlm_fail("restore: --lazy takes no config file: the saved one is used");
	if (argc - optind > 2)
		return xlm_fail("restore: expected a file and at most one config file");
	if (absolute(argv[optind], path, sizeof(path), true))
		return xlm_fail("restore: cannot open '%s': %m", argv[optind]);
	a.path = path;
	if (argc - optind == 2) {
		struct xlm_cfg cfg;

		xlm_cfg_init(&cfg);
		fprintf(stderr, "Parsing config from %s\n", argv[optind + 1]);
		if (xlm_cfg_parse_file(&cfg, argv[optind + 1]) || xlm_cfg_finish(&cfg, &dom))
			return xlm_fail("%s", cfg.err);
		a.cfg = &dom;
	}
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, "restore", args_restore, &a, &root, &result);
	xlm_client_close(&c);
	if (rc)
		return XL_EXIT_FAIL;
	report(result, "restored");
	yajl_tree_free(root);
	return 0;
}

int xlm_cmd_stream_dump(int argc, char **argv)
{
	bool verbose = false;
	int opt, status, fd, rc;

	while ((opt = xlm_getopt(argc, argv, "stream-dump", "v", 1, &status)) != -1) {
		switch (opt) {
		case -2: return status;
		case 'v': verbose = true; break;
		}
	}
	fd = open(argv[optind], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return xlm_fail("stream-dump: cannot open '%s': %m", argv[optind]);
	rc = strm_dump(stdout, fd, verbose);
	close(fd);
	return rc ? XL_EXIT_FAIL : 0;
}
