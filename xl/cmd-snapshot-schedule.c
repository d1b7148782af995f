// SPDX-License-Identifier: MIT
/*
 * xl snapshot-schedule D --every INTERVAL --keep COUNT
 * xl snapshot-schedule D --off
 * xl snapshot-schedule [--json] [D]
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "xl.h"

/* Name, every, keep, runs, missed, last run, next run; the result follows. */
#define ROW "%-20s %-6s %5s %5s %6s  %-19s  %-19s  "

struct sched_args {
	const char *domain, *every, *keep;
	bool off;
};

static int args_sched(yajl_gen g, void *opaque)
{
	const struct sched_args *a = opaque;

	return xlm_gen_map_open(g) ?: (a->domain ? xlm_gen_kv_str(g, "domain", a->domain) : 0) ?:
	       (a->every ? xlm_gen_kv_str(g, "every", a->every) : 0) ?:
	       (a->keep ? xlm_gen_kv_str(g, "keep", a->keep) : 0) ?:
	       (a->off ? xlm_gen_kv_bool(g, "off", true) : 0) ?: xlm_gen_map_close(g);
}

/* Seconds since the epoch as local time; "-" for none. */
static void when(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "-");
}

static void print_one(yajl_val s)
{
	const char *name = xlm_json_str(s, "name"), *state = xlm_json_str(s, "state");
	const char *res = xlm_json_str(s, "last_result"), *why = xlm_json_str(s, "last_reason");
	long long keep = 0, runs = 0, missed = 0, last = 0, next = 0;
	char lastbuf[32], nextbuf[32], k[24], r[24], m[24];

	xlm_json_int(s, "keep", &keep);
	xlm_json_int(s, "runs", &runs);
	xlm_json_int(s, "missed", &missed);
	xlm_json_int(s, "last_run", &last);
	xlm_json_int(s, "next_due", &next);
	snprintf(k, sizeof(k), "%lld", keep);
	snprintf(r, sizeof(r), "%lld", runs);
	snprintf(m, sizeof(m), "%lld", missed);
	when(last, lastbuf, sizeof(lastbuf));
	if (state && !strcmp(state, "idle"))
		snprintf(nextbuf, sizeof(nextbuf), "idle (no domain)");
	else if (state && !strcmp(state, "running"))
		snprintf(nextbuf, sizeof(nextbuf), "running now");
	else
		when(next, nextbuf, sizeof(nextbuf));
	printf(ROW "%s%s%s\n", name && *name ? name : xlm_json_str(s, "uuid"),
	       xlm_json_str(s, "every"), k, r, m, lastbuf, nextbuf, res ? res : "?",
	       why && *why ? ": " : "", why ? why : "");
}

static int show(yajl_val result, bool json)
{
	if (json) {
		xlm_print_json(result);
		return 0;
	}
	if (!YAJL_IS_ARRAY(result))
		return xlm_fail("unexpected reply from ferryd");
	printf(ROW "%s\n", "Name", "Every", "Keep", "Runs", "Missed", "Last run", "Next run",
	       "Last result");
	for (size_t i = 0; i < result->u.array.len; i++)
		print_one(result->u.array.values[i]);
	return 0;
}

/* One try of the snapshot-schedule op listing domain's schedules (NULL:
 * all); 0 with *root to free, or -errno. */
static int sched_list(const char *domain, yajl_val *root, yajl_val *result)
{
	struct sched_args a = {.domain = domain};
	struct xlm_client c;
	int rc = xlm_client_connect(&c, xlm_socket_path);

	if (rc)
		return rc;
	rc = xlm_client_call(&c, "snapshot-schedule", args_sched, &a, root, result);
	xlm_client_close(&c);
	return rc;
}

int xlm_snapshot_schedules(const char *domain, yajl_val snaps, yajl_val *root, yajl_val *result)
{
	const char *uuid = NULL;
	int rc = sched_list(domain, root, result);

	if (!rc || !domain)
		return rc;
	/* A domain that is gone is known to the schedules by its UUID only,
	 * which its snapshots carry. */
	if (YAJL_IS_ARRAY(snaps) && snaps->u.array.len)
		uuid = xlm_json_str(snaps->u.array.values[0], "uuid");
	return uuid ? sched_list(uuid, root, result) : rc;
}

void xlm_snapshot_schedule_note(const char *domain, yajl_val snaps)
{
	char last[32], next[32], every[16];
	long long keep = 0, runs = 0, missed = 0, t = 0;
	yajl_val root, result, s;
	const char *state, *res, *why, *name;

	if (xlm_snapshot_schedules(domain, snaps, &root, &result))
		return;
	for (size_t i = 0; YAJL_IS_ARRAY(result) && i < result->u.array.len; i++) {
		s = result->u.array.values[i];
		state = xlm_json_str(s, "state");
		res = xlm_json_str(s, "last_result");
		why = xlm_json_str(s, "last_reason");
		name = xlm_json_str(s, "name");
		snprintf(every, sizeof(every), "%s", xlm_json_str(s, "every") ?: "?");
		xlm_json_int(s, "keep", &keep);
		xlm_json_int(s, "runs", &runs);
		xlm_json_int(s, "missed", &missed);
		xlm_json_int(s, "last_run", &t);
		when(t, last, sizeof(last));
		t = 0;
		xlm_json_int(s, "next_due", &t);
		if (state && strcmp(state, "active"))
			snprintf(next, sizeof(next), "%s", state);
		else
			when(t, next, sizeof(next));
		printf("%sschedule of %s: every %s, keep %lld; last run %s (%s%s%s), next %s; "
		       "%lld taken, %lld missed\n",
		       i ? "" : "\n", name && *name ? name : xlm_json_str(s, "uuid"), every, keep,
		       last, res ?: "?", why && *why ? ": " : "", why ?: "", next, runs, missed);
	}
	yajl_tree_free(root);
}

int xlm_cmd_snapshot_schedule(int argc, char **argv)
{
	enum { O_EVERY = 256, O_KEEP, O_OFF, O_JSON };
	static const struct option longopts[] = {
		{ "every", required_argument, NULL, O_EVERY },
		{ "keep", required_argument, NULL, O_KEEP },
		{ "off", no_argument, NULL, O_OFF },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sched_args a = { 0 };
	struct xlm_client c;
	yajl_val root, result;
	bool json = false;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': xlm_cmd_usage("snapshot-schedule", false); return 0;
		case O_EVERY: a.every = optarg; break;
		case O_KEEP: a.keep = optarg; break;
		case O_OFF: a.off = true; break;
		case O_JSON: json = true; break;
		default: xlm_cmd_usage("snapshot-schedule", true); return XL_EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		xlm_cmd_usage("snapshot-schedule", true);
		return XL_EXIT_USAGE;
	}
	a.domain = optind < argc ? argv[optind] : NULL;
	if (!a.domain && (a.every || a.keep || a.off))
		return xlm_fail("snapshot-schedule: --every, --keep and --off need a domain");
	if (a.off && (a.every || a.keep))
		return xlm_fail("snapshot-schedule: --off takes no --every or --keep");
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_call(&c, "snapshot-schedule", args_sched, &a, &root, &result);
	xlm_client_close(&c);
	if (rc)
		return XL_EXIT_FAIL;
	/* Setting or turning off prints nothing, as xl's setters do. */
	rc = a.every || a.keep || a.off ? (json ? show(result, true) : 0) : show(result, json);
	yajl_tree_free(root);
	return rc;
}
