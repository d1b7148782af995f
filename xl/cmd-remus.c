// SPDX-License-Identifier: MIT
/*
 * xl remus [-i MS] [-b] [-n] [-F] [--timeout MS] [--insecure] [--json] D HOST[:PORT]
 * xl remus-status [--json] D
 * xl remus-stop D
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xl.h"

struct remus_args {
	const char *domain, *host, *witness;
	long interval_ms, timeout_ms;
	bool blackhole, no_buffer, unsafe, insecure;
};

static int args_remus(yajl_gen g, void *opaque)
{
	const struct remus_args *a = opaque;

	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", a->domain) ?:
	       xlm_gen_kv_str(g, "host", a->host) ?:
	       (a->interval_ms ? xlm_gen_kv_int(g, "interval_ms", a->interval_ms) : 0) ?:
	       (a->timeout_ms ? xlm_gen_kv_int(g, "timeout_ms", a->timeout_ms) : 0) ?:
	       xlm_gen_kv_bool(g, "blackhole", a->blackhole) ?:
	       xlm_gen_kv_bool(g, "no_buffer", a->no_buffer) ?:
	       xlm_gen_kv_bool(g, "unsafe", a->unsafe) ?:
	       xlm_gen_kv_bool(g, "insecure", a->insecure) ?:
	       (a->witness ? xlm_gen_kv_str(g, "witness", a->witness) : 0) ?: xlm_gen_map_close(g);
}

static long ms_arg(const char *s, const char *what)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v <= 0) {
		xlm_fail("%s: expected a number of milliseconds, not '%s'", what, s);
		return -1;
	}
	return v;
}

/* The figures remus and remus-status print. */
static void print_stats(yajl_val r)
{
	long long epochs = 0, late = 0, merged = 0, throttle = 100;
	const char *w = xlm_json_str(r, "witness") ?: "";

	xlm_json_int(r, "epochs", &epochs);
	xlm_json_int(r, "throttle_pct", &throttle);
	xlm_json_int(r, "late", &late);
	xlm_json_int(r, "merged", &merged);
	printf("%s: %s, backup %s%s\n", xlm_json_str(r, "domain") ?: "?",
	       xlm_json_str(r, "state") ?: "?", xlm_json_str(r, "host") ?: "?",
	       !strcmp(w, "held")   ? "; witness lease held"
	       : !strcmp(w, "away") ? "; the witness cannot be reached: running on the backup's "
				      "word (a cut link now pauses it)"
	       : !strcmp(w, "lost") ? "; the witness lease was lost"
				    : "");
	printf("  epochs %lld (%.1f/s), last acknowledged %.0f ms ago; %lld late, %lld merged%s\n",
	       epochs, xlm_json_double(r, "epochs_per_s"), xlm_json_double(r, "last_ack_age_ms"),
	       late, merged, throttle < 100 ? "; guest CPU capped (epochs outrun the link)" : "");
	printf("  pause p50 %.2f ms, p99 %.2f ms; %.1f KiB per epoch; output delay p50 %.1f ms, "
	       "p99 %.1f ms\n",
	       xlm_json_double(r, "pause_p50_ms"), xlm_json_double(r, "pause_p99_ms"),
	       xlm_json_double(r, "bytes_per_epoch") / 1024,
	       xlm_json_double(r, "output_delay_p50_ms"),
	       xlm_json_double(r, "output_delay_p99_ms"));
}

int xlm_cmd_remus(int argc, char **argv)
{
	enum { O_TIMEOUT = 256, O_INSECURE, O_JSON, O_WITNESS };
	static const struct option longopts[] = {
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"insecure", no_argument, NULL, O_INSECURE},
		{"witness", required_argument, NULL, O_WITNESS},
		{"json", no_argument, NULL, O_JSON},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct remus_args a = {0};
	struct xlm_client c;
	yajl_val root, result;
	bool json = false;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "hi:bnF", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': xlm_cmd_usage("remus", false); return 0;
		case 'i':
			a.interval_ms = ms_arg(optarg, "-i");
			if (a.interval_ms < 0)
				return XL_EXIT_USAGE;
			break;
		case 'b': a.blackhole = true; break;
		case 'n': a.no_buffer = true; break;
		case 'F': a.unsafe = true; break;
		case O_TIMEOUT:
			a.timeout_ms = ms_arg(optarg, "--timeout");
			if (a.timeout_ms < 0)
				return XL_EXIT_USAGE;
			break;
		case O_WITNESS: a.witness = optarg; break;
		case O_INSECURE: a.insecure = true; break;
		case O_JSON: json = true; break;
		default: xlm_cmd_usage("remus", true); return XL_EXIT_USAGE;
		}
	}
	if (argc - optind != 2 && !(a.blackhole && argc - optind == 1)) {
		xlm_cmd_usage("remus", true);
		return XL_EXIT_USAGE;
	}
	a.domain = argv[optind];
	a.host = argc - optind == 2 ? argv[optind + 1] : "";
	if ((a.blackhole || a.no_buffer) && !a.unsafe)
		return xlm_fail("remus: -b and -n are unsafe (a failover can lose the guest's "
				"state or show output it never had): give them with -F, as in Xen");
	if (!a.blackhole && !a.witness)
		fprintf(stderr, "xl: remus: no --witness: if the link between the hosts is cut "
				"while both run, both copies run (a partition)\n");
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, "remus", args_remus, &a, &root, &result);
	xlm_client_close(&c);
	if (rc)
		return XL_EXIT_FAIL;
	if (json)
		xlm_print_json(result);
	else
		print_stats(result);
	yajl_tree_free(root);
	return 0;
}

static int args_domain(yajl_gen g, void *opaque)
{
	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", opaque) ?: xlm_gen_map_close(g);
}

static int one_domain(int argc, char **argv, const char *verb, bool *json)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 256},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (opt == 'h') {
			xlm_cmd_usage(verb, false);
			return -1;
		}
		if (opt != 256 || !json) {
			xlm_cmd_usage(verb, true);
			return XL_EXIT_USAGE;
		}
		*json = true;
	}
	if (argc - optind != 1) {
		xlm_cmd_usage(verb, true);
		return XL_EXIT_USAGE;
	}
	return 0;
}

int xlm_cmd_remus_status(int argc, char **argv)
{
	struct xlm_client c;
	yajl_val root, result;
	bool json = false;
	const char *role;
	int rc = one_domain(argc, argv, "remus-status", &json);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, "remus-status", args_domain, argv[optind], &root, &result);
	xlm_client_close(&c);
	if (rc)
		return XL_EXIT_FAIL;
	role = xlm_json_str(result, "role");
	if (json) {
		xlm_print_json(result);
	} else if (role && !strcmp(role, "backup")) {
		long long epochs = 0;

		xlm_json_int(result, "epochs", &epochs);
		printf("%s: backup of %s's domain, epoch %lld committed\n",
		       xlm_json_str(result, "domain") ?: "?",
		       xlm_json_str(result, "primary") ?: "?", epochs);
	} else {
		print_stats(result);
	}
	yajl_tree_free(root);
	return 0;
}

int xlm_cmd_remus_stop(int argc, char **argv)
{
	struct xlm_client c;
	yajl_val root, result;
	int rc = one_domain(argc, argv, "remus-stop", NULL);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, "remus-stop", args_domain, argv[optind], &root, &result);
	xlm_client_close(&c);
	if (rc)
		return XL_EXIT_FAIL;
	yajl_tree_free(root);
	return 0;
}
