// SPDX-License-Identifier: MIT
/*
 * xl: the Ferry toolstack CLI, a thin client of ferryd's control socket.
 * Verbs, flags, columns and messages follow Xen's xl.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "xl.h"

const char *xlm_socket_path = XLM_SOCKET_DEFAULT;

int xlm_fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("xl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return XL_EXIT_FAIL;
}

int xlm_getopt(int argc, char **argv, const char *verb, const char *opts, int min_args,
	       int *status)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "long", no_argument, NULL, 'l' },
		{ "wait", no_argument, NULL, 'w' },
		{ "dryrun", no_argument, NULL, 'n' },
		{ "compress", required_argument, NULL, 'z' },
		{ "lazy", no_argument, NULL, 'L' },
		{ 0 },
	};
	char shortopts[32];
	int opt;

	snprintf(shortopts, sizeof(shortopts), "h%s", opts);
	opt = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (opt == 'h') {
		xlm_cmd_usage(verb, false);
		*status = 0;
		return -2;
	}
	if (opt == '?' || (opt != -1 && !strchr(opts, opt))) {
		xlm_cmd_usage(verb, true);
		*status = XL_EXIT_USAGE;
		return -2;
	}
	if (opt == -1 && argc - optind < min_args) {
		fprintf(stderr, "'xl %s' requires at least %d argument%s.\n\n", verb, min_args,
			min_args == 1 ? "" : "s");
		xlm_cmd_usage(verb, true);
		*status = XL_EXIT_USAGE;
		return -2;
	}
	return opt;
}

int xlm_connect(struct xlm_client *c)
{
	int rc = xlm_client_connect(c, xlm_socket_path);

	if (rc)
		xlm_fail("%s", c->err);
	return rc;
}

int xlm_call(struct xlm_client *c, const char *op, xlm_args_fn args, void *opaque,
	     yajl_val *root, yajl_val *result)
{
	int rc = xlm_client_call(c, op, args, opaque, root, result);

	if (rc)
		xlm_fail("%s", c->err[0] ? c->err : ferry_strerror(rc));
	return rc;
}

void xlm_print_json(yajl_val v)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	size_t len;

	if (!g)
		return;
	if (!xlm_gen_tree(g, v) && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
		printf("%.*s\n", (int)len, (const char *)buf);
	yajl_gen_free(g);
}

static int args_domain(yajl_gen g, void *opaque)
{
	const char *domain = opaque;

	return xlm_gen_map_open(g) ?:
	       (domain ? xlm_gen_kv_str(g, "domain", domain) : 0) ?:
	       xlm_gen_map_close(g);
}

int xlm_call_domain(struct xlm_client *c, const char *op, const char *domain,
		    yajl_val *root, yajl_val *result)
{
	return xlm_call(c, op, args_domain, (void *)domain, root, result);
}

int main(int argc, char **argv)
{
	const struct xlm_cmd *cmd;
	const char *env = getenv("FERRY_SOCKET");
	int opt;

	if (env && *env)
		xlm_socket_path = env;
	if (argc > 1 && !strcmp(argv[1], "--help")) {
		xlm_cmd_usage(NULL, false);
		return 0;
	}
	while ((opt = getopt(argc, argv, "+S:h")) != -1) {
		switch (opt) {
		case 'S':
			xlm_socket_path = optarg;
			break;
		case 'h':
			xlm_cmd_usage(NULL, false);
			return 0;
		default:
			xlm_cmd_usage(NULL, true);
			return XL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		xlm_cmd_usage(NULL, true);
		return XL_EXIT_USAGE;
	}
	if (!strcmp(argv[optind], "--help")) {
		xlm_cmd_usage(NULL, false);
		return 0;
	}
	cmd = xlm_cmd_find(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "xl: command not implemented: '%s'\n", argv[optind]);
		xlm_cmd_usage(NULL, true);
		return XL_EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* reset getopt: the verb parses its own options */
	return cmd->fn(argc, argv);
}
