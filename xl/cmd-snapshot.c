// SPDX-License-Identifier: MIT
/*
 * xl snapshot-create [-n NAME] [-p|--pause] [--json] D
 * xl snapshot-list [-l] [--json] [D]
 * xl snapshot-delete D NAME
 * xl snapshot-verify [--json] D [NAME]
 * xl snapshot-export D NAME FILE
 * xl snapshot-revert [-p] [-n NEWNAME] [--lazy] [--json] D NAME
 *
 * Thin clients of ferryd's snapshot-* ops (docs/control-protocol.md); D is
 * a domain here, or one that is gone by the name it had at its last
 * snapshot or by its UUID.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "xl.h"

enum { O_JSON = 256, O_LAZY };

struct snap_args {
	const char *domain, *name, *newname, *path;
	bool paused, lazy, json, longfmt;
};

static int args_snap(yajl_gen g, void *opaque)
{
	const struct snap_args *a = opaque;

	return xlm_gen_map_open(g) ?:
	       (a->domain ? xlm_gen_kv_str(g, "domain", a->domain) : 0) ?:
	       (a->name ? xlm_gen_kv_str(g, "name", a->name) : 0) ?:
	       (a->newname ? xlm_gen_kv_str(g, "new_name", a->newname) : 0) ?:
	       (a->path ? xlm_gen_kv_str(g, "path", a->path) : 0) ?:
	       xlm_gen_kv_bool(g, "paused", a->paused) ?: xlm_gen_kv_bool(g, "lazy", a->lazy) ?:
	       xlm_gen_map_close(g);
}

/*
 * Parses verb's options (shorts: a subset of "n:pl", plus --json, --pause,
 * --lazy, --help) into a, then between min and max positionals into pos.
 * -1 to go on, else the exit status.
 */
static int parse(int argc, char **argv, const char *verb, const char *shorts, int min, int max,
		 struct snap_args *a, char **pos)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, O_JSON}, {"lazy", no_argument, NULL, O_LAZY},
		{"pause", no_argument, NULL, 'p'},   {"long", no_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},    {0},
	};
	char opts[16];
	int opt;

	snprintf(opts, sizeof(opts), "h%s", shorts);
	while ((opt = getopt_long(argc, argv, opts, longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': xlm_cmd_usage(verb, false); return 0;
		case 'n': a->newname = optarg; break;
		case 'p': a->paused = true; break;
		case 'l': a->longfmt = true; break;
		case O_JSON: a->json = true; break;
		case O_LAZY:
			if (strcmp(verb, "snapshot-revert")) {
				xlm_cmd_usage(verb, true);
				return XL_EXIT_USAGE;
			}
			a->lazy = true;
			break;
		default: xlm_cmd_usage(verb, true); return XL_EXIT_USAGE;
		}
		/* --pause and friends are long forms of the verb's shorts only */
		if (opt < 256 && opt != 'h' && !strchr(shorts, opt)) {
			xlm_cmd_usage(verb, true);
			return XL_EXIT_USAGE;
		}
	}
	if (argc - optind < min || argc - optind > max) {
		fprintf(stderr, "'xl %s' expects %d%s argument%s.\n\n", verb, min,
			max > min ? " or more" : "", min == 1 && max == 1 ? "" : "s");
		xlm_cmd_usage(verb, true);
		return XL_EXIT_USAGE;
	}
	for (int i = 0; i < argc - optind; i++)
		pos[i] = argv[optind + i];
	return -1;
}

/* Calls op with a; on success prints the result as JSON with --json or
 * through show. */
/* op's reply: 0 with *root to free and *result in it, or XL_EXIT_FAIL
 * (xlm_call said why). */
static int request(const char *op, const struct snap_args *a, xlm_event_fn on_event,
		   void *ev_opaque, yajl_val *root, yajl_val *result)
{
	struct xlm_client c;
	int rc;

	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	c.on_event = on_event;
	c.event_opaque = ev_opaque;
	rc = xlm_call(&c, op, args_snap, (void *)a, root, result);
	xlm_client_close(&c);
	return rc ? XL_EXIT_FAIL : 0;
}

static int call(const char *op, const struct snap_args *a, void (*show)(yajl_val r),
		xlm_event_fn on_event, void *ev_opaque)
{
	yajl_val root, result;

	if (request(op, a, on_event, ev_opaque, &root, &result))
		return XL_EXIT_FAIL;
	if (a->json)
		xlm_print_json(result);
	else if (show)
		show(result);
	yajl_tree_free(root);
	return 0;
}

/* ---- snapshot-create ----------------------------------------------------- */

/* A progress line is on the terminal (stderr). */
static bool progress_shown;

static void progress_clear(void)
{
	if (progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = false;
}

static void on_progress(void *opaque, yajl_val msg)
{
	const char *ev = xlm_json_str(msg, "event");
	long long round = 0, left = 0;

	if (!ev || strcmp(ev, "snapshot-progress"))
		return;
	xlm_json_int(msg, "round", &round);
	xlm_json_int(msg, "pages_left", &left);
	fprintf(stderr, "\r\033[Ksnapshot '%s': %s %lld, %lld pages left, dirty %.1f MiB/s",
		xlm_json_str(msg, "name") ?: "?", xlm_json_str(msg, "phase") ?: "round", round,
		left, xlm_json_double(msg, "dirty_mib_s"));
	fflush(stderr);
	progress_shown = true;
}

static void show_create(yajl_val r)
{
	long long bytes = 0, pages = 0, fresh = 0, dup = 0, zero = 0;
	const char *parent = xlm_json_str(r, "parent");

	progress_clear();
	xlm_json_int(r, "bytes", &bytes);
	xlm_json_int(r, "pages", &pages);
	xlm_json_int(r, "pages_new", &fresh);
	xlm_json_int(r, "pages_deduplicated", &dup);
	xlm_json_int(r, "pages_zero", &zero);
	printf("snapshot '%s' of '%s' taken\n", xlm_json_str(r, "name") ?: "?",
	       xlm_json_str(r, "domain") ?: "?");
	printf("  parent            %s\n", parent && parent[0] ? parent : "(none: full)");
	printf("  pause             %.2f ms\n", xlm_json_double(r, "pause_ms"));
	printf("  duration          %.3f s\n", xlm_json_double(r, "seconds"));
	printf("  bytes written     %lld (%.1f MiB)\n", bytes, (double)bytes / (1 << 20));
	printf("  pages             %lld: %lld new, %lld deduplicated, %lld zero\n", pages, fresh,
	       dup, zero);
}

int xlm_cmd_snapshot_create(int argc, char **argv)
{
	struct snap_args a = {0};
	bool tty = isatty(STDERR_FILENO);
	char *pos[1];
	int rc = parse(argc, argv, "snapshot-create", "n:p", 1, 1, &a, pos);

	if (rc >= 0)
		return rc;
	a.domain = pos[0];
	a.name = a.newname; /* -n is the snapshot's name here */
	a.newname = NULL;
	rc = call("snapshot-create", &a, show_create, tty ? on_progress : NULL, NULL);
	progress_clear();
	return rc;
}

/* ---- snapshot-list ------------------------------------------------------- */

static bool list_long;

static void show_list(yajl_val r)
{
	char when[32];

	if (!r || !YAJL_IS_ARRAY(r))
		return;
	printf("%-20s %-24s %-19s %-24s %10s %10s %s%s\n", "Domain", "Name", "Time (UTC)", "Parent",
	       "Own(MiB)", "Mem(MiB)", "State", list_long ? "          UUID" : "");
	for (size_t i = 0; i < r->u.array.len; i++) {
		yajl_val s = r->u.array.values[i];
		long long t = 0, own = 0, mem = 0;
		const char *parent = xlm_json_str(s, "parent");
		time_t tt;
		struct tm tm;

		xlm_json_int(s, "time", &t);
		xlm_json_int(s, "own_pages", &own);
		xlm_json_int(s, "memory_pages", &mem);
		tt = (time_t)t;
		gmtime_r(&tt, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		printf("%-20s %-24s %-19s %-24s %10.1f %10.1f %s", xlm_json_str(s, "domain") ?: "",
		       xlm_json_str(s, "name") ?: "?", when, parent && parent[0] ? parent : "-",
		       (double)own / 256, (double)mem / 256, xlm_json_str(s, "state") ?: "?");
		if (list_long)
			printf("  %s", xlm_json_str(s, "uuid") ?: "");
		printf("\n");
	}
}

/* --json: {"snapshots": the snapshot-list op's array, "schedules": the
 * snapshot-schedule op's array for the same domain (or all)}, what the
 * text shows. A schedule ferryd cannot list fails it rather than looking
 * like none. */
static int print_list_json(const char *domain, yajl_val snaps)
{
	yajl_val root, scheds;
	yajl_gen g;
	const unsigned char *buf;
	size_t len;
	int rc = xlm_snapshot_schedules(domain, snaps, &root, &scheds);

	if (rc)
		return xlm_fail("cannot list the snapshot schedules: %s", ferry_strerror(rc));
	g = yajl_gen_alloc(NULL);
	rc = g ? 0 : -ENOMEM;
	rc = rc ?: xlm_gen_map_open(g) ?: xlm_gen_str(g, "snapshots") ?: xlm_gen_tree(g, snaps) ?:
	     xlm_gen_str(g, "schedules") ?: xlm_gen_tree(g, scheds) ?: xlm_gen_map_close(g);
	if (!rc && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
		printf("%.*s\n", (int)len, (const char *)buf);
	else
		rc = xlm_fail("cannot encode the list: %s", ferry_strerror(rc ?: -EINVAL));
	if (g)
		yajl_gen_free(g);
	yajl_tree_free(root);
	return rc;
}

int xlm_cmd_snapshot_list(int argc, char **argv)
{
	struct snap_args a = {0};
	char *pos[1] = {NULL};
	yajl_val root, result;
	int rc = parse(argc, argv, "snapshot-list", "l", 0, 1, &a, pos);

	if (rc >= 0)
		return rc;
	a.domain = pos[0];
	list_long = a.longfmt;
	if (request("snapshot-list", &a, NULL, NULL, &root, &result))
		return XL_EXIT_FAIL;
	if (a.json) {
		rc = print_list_json(a.domain, result);
	} else {
		show_list(result);
		xlm_snapshot_schedule_note(a.domain, result);
		rc = 0;
	}
	yajl_tree_free(root);
	return rc;
}

/* ---- delete, verify, export ---------------------------------------------- */

/* A verb whose positionals are D and NAME (min..max of them). */
static int domain_name_verb(int argc, char **argv, const char *verb, const char *shorts, int min,
			    int max, void (*show)(yajl_val r))
{
	struct snap_args a = {0};
	char *pos[2] = {NULL, NULL};
	int rc = parse(argc, argv, verb, shorts, min, max, &a, pos);

	if (rc >= 0)
		return rc;
	a.domain = pos[0];
	a.name = pos[1];
	return call(verb, &a, show, NULL, NULL);
}

int xlm_cmd_snapshot_delete(int argc, char **argv)
{
	return domain_name_verb(argc, argv, "snapshot-delete", "", 2, 2, NULL);
}

static void show_verify(yajl_val r)
{
	long long n = 0, pages = 0;

	xlm_json_int(r, "snapshots", &n);
	xlm_json_int(r, "pages", &pages);
	printf("%lld snapshot%s of '%s' verified: %lld stored pages read, none damaged\n", n,
	       n == 1 ? "" : "s", xlm_json_str(r, "domain") ?: "?", pages);
}

int xlm_cmd_snapshot_verify(int argc, char **argv)
{
	return domain_name_verb(argc, argv, "snapshot-verify", "", 1, 2, show_verify);
}

static void show_export(yajl_val r)
{
	long long bytes = 0;

	xlm_json_int(r, "bytes", &bytes);
	printf("snapshot '%s' exported to %s (%.1f MiB); 'xl restore' it on any host\n",
	       xlm_json_str(r, "name") ?: "?", xlm_json_str(r, "path") ?: "?",
	       (double)bytes / (1 << 20));
}

int xlm_cmd_snapshot_export(int argc, char **argv)
{
	struct snap_args a = {0};
	char *pos[3], path[PATH_MAX], dir[PATH_MAX];
	int n, rc = parse(argc, argv, "snapshot-export", "", 3, 3, &a, pos);

	if (rc >= 0)
		return rc;
	a.domain = pos[0];
	a.name = pos[1];
	/* ferryd writes the file itself: an absolute path. */
	if (pos[2][0] == '/')
		n = snprintf(path, sizeof(path), "%s", pos[2]);
	else if (!getcwd(dir, sizeof(dir)))
		return xlm_fail("snapshot-export: cannot resolve '%s': %m", pos[2]);
	else
		n = snprintf(path, sizeof(path), "%s/%s", dir, pos[2]);
	if (n < 0 || (size_t)n >= sizeof(path))
		return xlm_fail("snapshot-export: path too long: '%s'", pos[2]);
	a.path = path;
	return call("snapshot-export", &a, show_export, NULL, NULL);
}

/* ---- snapshot-revert ----------------------------------------------------- */

static void show_revert(yajl_val r)
{
	long long domid = 0;

	xlm_json_int(r, "domid", &domid);
	printf("'%s' (domain %lld) runs from snapshot '%s'%s\n", xlm_json_str(r, "new_name") ?: "?",
	       domid, xlm_json_str(r, "name") ?: "?",
	       YAJL_IS_TRUE(yajl_tree_get(r, (const char *[]){"replaced", NULL}, yajl_t_any))
		       ? " (the running domain was replaced)"
		       : "");
	printf("  running after     %.2f ms (from ferryd's receipt of the request)\n",
	       xlm_json_double(r, "to_running_ms"));
}

int xlm_cmd_snapshot_revert(int argc, char **argv)
{
	return domain_name_verb(argc, argv, "snapshot-revert", "n:p", 2, 2, show_revert);
}
