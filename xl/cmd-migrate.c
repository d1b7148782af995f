// SPDX-License-Identifier: MIT
/*
 * xl migrate [options] D HOST[:PORT]
 * xl migrate-cancel D
 * xl migrate-resolve [--resume|--destroy] D
 * xl tls-setup --dir DIR [--host NAME]... [--days N]   (local: no daemon)
 *
 * migrate keeps its connection open while ferryd runs the migration: the
 * daemon sends "migrate-progress" events, shown as one line rewritten with
 * \r on a terminal; Ctrl-C sends migrate-cancel on the same connection and
 * waits for the migration's reply.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/size.h"
#include "migrate/defaults.h"
#include "stream/net.h"
#include "xl.h"

struct migrate_args {
	const char *domain, *host, *no_converge, *compress;
	long long downtime_ms, max_rounds, bandwidth, channels;
	bool insecure;
};

static int args_migrate(yajl_gen g, void *opaque)
{
	const struct migrate_args *a = opaque;

	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", a->domain) ?:
	       xlm_gen_kv_str(g, "host", a->host) ?:
	       xlm_gen_kv_int(g, "downtime_ms", a->downtime_ms) ?:
	       xlm_gen_kv_str(g, "no_converge", a->no_converge) ?:
	       xlm_gen_kv_int(g, "max_rounds", a->max_rounds) ?:
	       xlm_gen_kv_int(g, "bandwidth", a->bandwidth) ?:
	       xlm_gen_kv_str(g, "compress", a->compress) ?:
	       xlm_gen_kv_int(g, "channels", a->channels) ?:
	       xlm_gen_kv_bool(g, "insecure", a->insecure) ?: xlm_gen_map_close(g);
}

static int args_domain_only(yajl_gen g, void *opaque)
{
	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", opaque) ?:
	       xlm_gen_map_close(g);
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	interrupted = 1;
}

/* Sends one request without waiting; returns 0 or -errno. */
static int send_request(struct xlm_client *c, long long id, const char *op, xlm_args_fn fn,
			void *opaque)
{
	yajl_gen g = xlm_request_begin(id, op);
	char *line;
	size_t len, off = 0;
	int rc;

	if (!g)
		return -ENOMEM;
	rc = fn(g, opaque);
	if (rc) {
		yajl_gen_free(g);
		return rc;
	}
	rc = xlm_gen_finish(g, &line, &len);
	if (rc)
		return rc;
	while (off < len) {
		ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	free(line);
	return rc;
}

struct progress {
	bool tty;
	bool shown; /* a line is on the terminal */
};

static void progress_event(struct progress *p, yajl_val msg)
{
	const char *ev = xlm_json_str(msg, "event"), *phase = xlm_json_str(msg, "phase");
	long long round = 0, left = 0, thr = 100;
	char line[256];

	if (!p->tty || !ev || strcmp(ev, "migrate-progress"))
		return;
	if (phase && (!strcmp(phase, "handshake") || !strcmp(phase, "go") ||
		      !strcmp(phase, "query"))) {
		snprintf(line, sizeof(line), "%s",
			 !strcmp(phase, "handshake") ? "stream sent; waiting for the target"
			 : !strcmp(phase, "go") ? "switching over (go sent)"
						: "connection lost after go; asking the target");
	} else {
		xlm_json_int(msg, "round", &round);
		xlm_json_int(msg, "pages_left", &left);
		xlm_json_int(msg, "throttle_pct", &thr);
		snprintf(line, sizeof(line),
			 "%s %lld: %lld pages left, dirty %.1f MiB/s, link %.1f MiB/s, "
			 "predicted downtime %.0f ms, throttle %lld%%",
			 phase && strcmp(phase, "round") ? phase : "round", round, left,
			 xlm_json_double(msg, "dirty_mib_s"), xlm_json_double(msg, "bandwidth_mib_s"),
			 xlm_json_double(msg, "predicted_downtime_ms"), thr);
	}
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
	p->shown = true;
}

static void progress_end(struct progress *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = false;
}

/* "auto, per round: zstd 97% lz4 100% none 0%" (the codec most frames of
 * the round went in, and the share of its frames sent compressed) */
static void print_codec(yajl_val r)
{
	static const char *cpr_path[] = { "compressed_pct_per_round", NULL };
	static const char *names_path[] = { "codec_per_round", NULL };
	yajl_val cpr = yajl_tree_get(r, cpr_path, yajl_t_array);
	yajl_val names = yajl_tree_get(r, names_path, yajl_t_array);
	const char *codec = xlm_json_str(r, "codec") ?: "none";
	bool is_auto = YAJL_IS_TRUE(yajl_tree_get(r, (const char *[]){ "codec_auto", NULL },
						  yajl_t_any));

	if (!strcmp(codec, "none") && !is_auto) {
		printf("  compression       none\n");
		return;
	}
	printf("  compression       %s, per round:", is_auto ? "auto" : codec);
	for (size_t i = 0; cpr && names && i < cpr->u.array.len && i < names->u.array.len; i++) {
		yajl_val v = cpr->u.array.values[i], n = names->u.array.values[i];

		printf(" %s %.0f%%", YAJL_IS_STRING(n) ? YAJL_GET_STRING(n) : "?",
		       YAJL_IS_NUMBER(v) ? YAJL_GET_DOUBLE(v) : 0);
	}
	printf("\n");
}

static void print_report(yajl_val r)
{
	static const char *ppr_path[] = { "pages_per_round", NULL };
	yajl_val ppr = yajl_tree_get(r, ppr_path, yajl_t_array);
	long long bytes = 0, rounds = 0, thr = 100, zero = 0, chans = 1;
	const char *outcome = xlm_json_str(r, "outcome");

	xlm_json_int(r, "bytes_sent", &bytes);
	xlm_json_int(r, "rounds", &rounds);
	xlm_json_int(r, "throttle_pct", &thr);
	xlm_json_int(r, "zero_pages", &zero);
	printf("migrated '%s' to %s%s\n", xlm_json_str(r, "domain") ?: "?",
	       xlm_json_str(r, "host") ?: "?",
	       outcome && YAJL_IS_TRUE(yajl_tree_get(r, (const char *[]){ "resolved_by_query",
									   NULL }, yajl_t_any))
		       ? " (confirmed by query after the connection was lost)" : "");
	printf("  total time        %.3f s\n", xlm_json_double(r, "total_s"));
	printf("  downtime          %.1f ms (predicted %.1f ms)\n",
	       xlm_json_double(r, "downtime_ms"), xlm_json_double(r, "predicted_downtime_ms"));
	printf("  bytes sent        %lld (%.1f MiB)\n", bytes, (double)bytes / (1 << 20));
	printf("  rounds            %lld\n", rounds);
	printf("  pages per round  ");
	for (size_t i = 0; ppr && i < ppr->u.array.len; i++) {
		yajl_val v = ppr->u.array.values[i];

		printf(" %lld%s", YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : 0,
		       i + 1 == ppr->u.array.len && i > 0 ? " (stop-and-copy)" : "");
	}
	printf("\n  throttle          %lld%%\n", thr);
	printf("  zero pages        %lld\n", zero);
	print_codec(r);
	xlm_json_int(r, "channels", &chans);
	printf("  page channels     %lld%s\n", chans,
	       chans > 1 ? " (connections besides the main one)" : " (the main connection)");
	printf("  switched over     %s\n", xlm_json_str(r, "decision") ?: "?");
}

enum { O_DOWNTIME = 256, O_NC, O_ROUNDS, O_BW, O_COMPRESS, O_CHANNELS, O_JSON, O_INSECURE };

/* One option of xl migrate's: 0, or an exit status (said on stderr). */
static int migrate_opt(int opt, const char *arg, struct migrate_args *a, bool *json)
{
	uint64_t bw;
	char *end;

	switch (opt) {
	case O_DOWNTIME:
		a->downtime_ms = strtoll(arg, &end, 10);
		if (*end || a->downtime_ms < 1)
			return xlm_fail("migrate: --downtime: expected milliseconds, not '%s'", arg);
		return 0;
	case O_NC:
		if (strcmp(arg, "throttle") && strcmp(arg, "abort") && strcmp(arg, "force"))
			return xlm_fail("migrate: --no-converge: expected throttle, abort or "
					"force, not '%s'", arg);
		a->no_converge = arg;
		return 0;
	case O_ROUNDS:
		a->max_rounds = strtoll(arg, &end, 10);
		if (*end || a->max_rounds < 1)
			return xlm_fail("migrate: --max-rounds: expected a number, not '%s'", arg);
		return 0;
	case O_BW:
		if (size_parse(arg, 1, &bw) || bw > (uint64_t)1 << 62)
			return xlm_fail("migrate: --bandwidth: expected bytes/s like 100M, "
					"not '%s'", arg);
		a->bandwidth = (long long)bw;
		return 0;
	case O_COMPRESS:
		if (strcmp(arg, "none") && strcmp(arg, "lz4") && strcmp(arg, "zstd") &&
		    strcmp(arg, "auto"))
			return xlm_fail("migrate: --compress: expected none, lz4, zstd or "
					"auto, not '%s'", arg);
		a->compress = arg;
		return 0;
	case O_CHANNELS:
		a->channels = strtoll(arg, &end, 10);
		if (*end || end == arg || a->channels < 1 || a->channels > STRM_HS_CHANNELS_MAX)
			return xlm_fail("migrate: --channels: expected 1 to %d, not '%s'",
					STRM_HS_CHANNELS_MAX, arg);
		return 0;
	case O_JSON: *json = true; return 0;
	case O_INSECURE: a->insecure = true; return 0;
	default:
		xlm_cmd_usage("migrate", true);
		return XL_EXIT_USAGE;
	}
}

/* The command line into a; -1 to go on, else the exit status. */
static int migrate_args_parse(int argc, char **argv, struct migrate_args *a, bool *json)
{
	static const struct option longopts[] = {
		{ "downtime", required_argument, NULL, O_DOWNTIME },
		{ "no-converge", required_argument, NULL, O_NC },
		{ "max-rounds", required_argument, NULL, O_ROUNDS },
		{ "bandwidth", required_argument, NULL, O_BW },
		{ "compress", required_argument, NULL, O_COMPRESS },
		{ "channels", required_argument, NULL, O_CHANNELS },
		{ "json", no_argument, NULL, O_JSON },
		{ "insecure", no_argument, NULL, O_INSECURE },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (opt == 'h') {
			xlm_cmd_usage("migrate", false);
			return 0;
		}
		rc = migrate_opt(opt, optarg, a, json);
		if (rc)
			return rc;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "'xl migrate' requires a domain and a host.\n\n");
		xlm_cmd_usage("migrate", true);
		return XL_EXIT_USAGE;
	}
	a->domain = argv[optind];
	a->host = argv[optind + 1];
	return -1;
}

/* Shows progress lines until the migration's reply (request 1) comes, and
 * asks ferryd to cancel (request 2) on SIGINT or SIGTERM. The reply, or
 * NULL when the connection failed (said on stderr). */
static yajl_val migrate_wait(struct xlm_client *c, const struct migrate_args *a,
			     struct progress *prog)
{
	bool cancel_sent = false;

	for (;;) {
		yajl_val msg;
		long long id;
		int rc;

		if (interrupted && !cancel_sent) {
			cancel_sent = true;
			progress_end(prog);
			fprintf(stderr, "xl: cancelling the migration of '%s'...\n", a->domain);
			if (send_request(c, 2, "migrate-cancel", args_domain_only,
					 (void *)a->domain))
				fprintf(stderr, "xl: cannot send the cancel request\n");
		}
		rc = xlm_client_next(c, 200, &msg);
		if (rc < 0) {
			progress_end(prog);
			xlm_fail("%s", c->err[0] ? c->err : ferry_strerror(-rc));
			return NULL;
		}
		if (rc == 0)
			continue;
		if (!xlm_json_int(msg, "id", &id)) {
			progress_event(prog, msg);
			yajl_tree_free(msg);
			continue;
		}
		if (id == 1)
			return msg;
		if (id == 2 && !YAJL_IS_TRUE(yajl_tree_get(msg, (const char *[]){ "ok", NULL },
							    yajl_t_any))) {
			progress_end(prog);
			fprintf(stderr, "xl: %s\n", xlm_json_str(msg, "error") ?: "cancel refused");
		}
		yajl_tree_free(msg);
	}
}

int xlm_cmd_migrate(int argc, char **argv)
{
	struct migrate_args a = { .no_converge = "throttle", .compress = "none",
				  .downtime_ms = MIG_DEFAULT_DOWNTIME_MS,
				  .max_rounds = MIG_DEFAULT_MAX_ROUNDS, .channels = 1 };
	struct progress prog = { .tty = isatty(STDERR_FILENO) };
	struct sigaction sa = { .sa_handler = on_sigint }, old_int, old_term;
	bool json = false;
	struct xlm_client c;
	yajl_val reply, r;
	int rc, status = XL_EXIT_FAIL;

	rc = migrate_args_parse(argc, argv, &a, &json);
	if (rc >= 0)
		return rc;
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = send_request(&c, 1, "migrate", args_migrate, &a);
	if (rc) {
		xlm_client_close(&c);
		return xlm_fail("cannot send to ferryd: %s", ferry_strerror(-rc));
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	reply = migrate_wait(&c, &a, &prog);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	progress_end(&prog);
	xlm_client_close(&c);
	if (!reply)
		return XL_EXIT_FAIL;
	if (!YAJL_IS_TRUE(yajl_tree_get(reply, (const char *[]){ "ok", NULL }, yajl_t_any))) {
		xlm_fail("%s", xlm_json_str(reply, "error") ?: "migration failed");
	} else {
		r = yajl_tree_get(reply, (const char *[]){ "result", NULL }, yajl_t_object);
		if (json)
			xlm_print_json(r);
		else if (r)
			print_report(r);
		status = 0;
	}
	yajl_tree_free(reply);
	return status;
}

int xlm_cmd_migrate_cancel(int argc, char **argv)
{
	struct xlm_client c;
	yajl_val root, result;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, "migrate-cancel", "", 1, &status)) != -1)
		if (opt == -2)
			return status;
	if (argc - optind != 1)
		return xlm_fail("migrate-cancel: expected one domain");
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call_domain(&c, "migrate-cancel", argv[optind], &root, &result);
	xlm_client_close(&c);
	if (rc)
		return XL_EXIT_FAIL;
	yajl_tree_free(root);
	return 0;
}

struct resolve_args {
	const char *domain, *action;
};

static int args_resolve(yajl_gen g, void *opaque)
{
	const struct resolve_args *a = opaque;

	return xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", a->domain) ?:
	       xlm_gen_kv_str(g, "action", a->action) ?: xlm_gen_map_close(g);
}

int xlm_cmd_migrate_resolve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "resume", no_argument, NULL, 'r' },
		{ "destroy", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct resolve_args a = { .action = "query" };
	struct xlm_client c;
	yajl_val root, result;
	const char *outcome;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': xlm_cmd_usage("migrate-resolve", false); return 0;
		case 'r': a.action = "resume"; break;
		case 'd': a.action = "destroy"; break;
		default: xlm_cmd_usage("migrate-resolve", true); return XL_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		xlm_cmd_usage("migrate-resolve", true);
		return XL_EXIT_USAGE;
	}
	a.domain = argv[optind];
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, "migrate-resolve", args_resolve, &a, &root, &result);
	xlm_client_close(&c);
	if (rc)
		return XL_EXIT_FAIL;
	outcome = xlm_json_str(result, "outcome");
	if (outcome && !strcmp(outcome, "migrated"))
		printf("'%s' runs on %s; the copy here was destroyed\n", a.domain,
		       xlm_json_str(result, "host") ?: "the target");
	else if (outcome && !strcmp(outcome, "resumed"))
		printf("'%s' runs here again\n", a.domain);
	else if (outcome)
		printf("'%s': %s\n", a.domain, outcome);
	yajl_tree_free(root);
	return 0;
}

int xlm_cmd_tls_setup(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'D' },
		{ "host", required_argument, NULL, 'H' },
		{ "days", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char **hosts = calloc((size_t)argc + 1, sizeof(*hosts));
	const char *dir = NULL;
	unsigned nhosts = 0;
	unsigned long days = 365;
	char err[1024] = "", *end;
	int opt, rc;

	if (!hosts)
		return xlm_fail("out of memory");
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			free(hosts);
			xlm_cmd_usage("tls-setup", false);
			return 0;
		case 'D': dir = optarg; break;
		case 'H': hosts[nhosts++] = optarg; break;
		case 'n':
			days = strtoul(optarg, &end, 10);
			if (*end || !days || days > 36500) {
				free(hosts);
				return xlm_fail("tls-setup: --days: expected 1 to 36500, not '%s'",
						optarg);
			}
			break;
		default:
			free(hosts);
			xlm_cmd_usage("tls-setup", true);
			return XL_EXIT_USAGE;
		}
	}
	if (!dir || optind != argc) {
		free(hosts);
		xlm_cmd_usage("tls-setup", true);
		return XL_EXIT_USAGE;
	}
	rc = strm_tls_setup(dir, hosts, nhosts, (unsigned)days, err, sizeof(err));
	free(hosts);
	if (rc)
		return xlm_fail("tls-setup: %s", err[0] ? err : ferry_strerror(-rc));
	return 0;
}
