// SPDX-License-Identifier: MIT
/* snapshot/schedule.h: intervals, due times, retention and schedule files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/repo.h"
#include "snapshot/schedule.h"
#include "tmpdir.h"

static char err[1024];
static const uint8_t uuid_a[16] = { 0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
static const uint8_t uuid_b[16] = { 0xbb, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

TestSuite(schedule);
TestSuite(schedule_files, .init = setup, .fini = teardown);

static uint64_t interval(const char *s)
{
	uint64_t v = 0;
	int rc = snap_sched_parse_interval(s, &v, err, sizeof(err));

	cr_assert_eq(rc, 0, "\"%s\": %d %s", s, rc, err);
	return v;
}

static void interval_bad(const char *s, int want, const char *msg)
{
	uint64_t v = 12345;
	int rc = snap_sched_parse_interval(s, &v, err, sizeof(err));

	cr_assert_eq(rc, want, "\"%s\": %d, want %d", s, rc, want);
	cr_assert_eq(v, 12345, "\"%s\" changed the result", s);
	cr_assert_not_null(strstr(err, msg), "\"%s\": message \"%s\" lacks \"%s\"", s, err, msg);
}

Test(schedule, interval_units)
{
	cr_assert_eq(interval("30s"), 30);
	cr_assert_eq(interval("5m"), 300);
	cr_assert_eq(interval("2h"), 7200);
	cr_assert_eq(interval("1d"), 86400);
	cr_assert_eq(interval("45"), 45);
	cr_assert_eq(interval("1s"), 1);
	cr_assert_eq(interval("366d"), SNAP_SCHED_EVERY_MAX);
}

Test(schedule, interval_refused)
{
	interval_bad("0", -EINVAL, "0 would never end");
	interval_bad("0m", -EINVAL, "0 would never end");
	interval_bad("", -EINVAL, "unit s, m, h or d");
	interval_bad("m", -EINVAL, "unit s, m, h or d");
	interval_bad("5x", -EINVAL, "unit s, m, h or d");
	interval_bad("5mm", -EINVAL, "unit s, m, h or d");
	interval_bad("5 m", -EINVAL, "unit s, m, h or d");
	interval_bad(" 5m", -EINVAL, "unit s, m, h or d");
	interval_bad("-5m", -EINVAL, "unit s, m, h or d");
	interval_bad("1.5h", -EINVAL, "unit s, m, h or d");
	interval_bad("367d", -ERANGE, "longer than");
	interval_bad("31622401", -ERANGE, "longer than");
	interval_bad("99999999999999999999999999d", -ERANGE, "longer than");
	interval_bad("18446744073709551617s", -ERANGE, "longer than");
	interval_bad(NULL, -EINVAL, "unit");
}

Test(schedule, interval_format)
{
	static const uint64_t v[] = { 1, 59, 60, 90, 300, 3600, 5400, 7200, 86400, 90000 };
	static const char *const want[] = { "1s", "59s", "1m", "90s", "5m",
					    "1h", "90m", "2h", "1d",  "25h" };
	char buf[32];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		snap_sched_format_interval(v[i], buf, sizeof(buf));
		cr_assert_str_eq(buf, want[i]);
		cr_assert_eq(interval(buf), v[i]);
	}
}

Test(schedule, init_checks)
{
	struct snap_sched s;

	cr_assert_eq(snap_sched_init(&s, uuid_a, 0, 3, 1000, err, sizeof(err)), -EINVAL);
	cr_assert_eq(snap_sched_init(&s, uuid_a, 10, 0, 1000, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "keep 0"), "%s", err);
	cr_assert_eq(snap_sched_init(&s, uuid_a, SNAP_SCHED_EVERY_MAX + 1, 3, 0, err, sizeof(err)),
		     -EINVAL);
	cr_assert_eq(snap_sched_init(&s, uuid_a, 10, SNAP_SCHED_KEEP_MAX + 1, 0, err, sizeof(err)),
		     -EINVAL);
	cr_assert_eq(snap_sched_init(&s, uuid_a, 10, 3, 1000, err, sizeof(err)), 0);
	cr_assert_eq(s.next_due, 1000, "the first run is due at once");
	cr_assert_eq(s.last_result, SNAP_SCHED_NONE);
	cr_assert_eq(s.runs + s.missed + (uint64_t)s.last_run, 0);
	cr_assert_arr_eq(s.uuid, uuid_a, 16);
}

Test(schedule, due_times)
{
	struct snap_sched s;

	snap_sched_init(&s, uuid_a, 10, 3, 1000, err, sizeof(err));
	/* On time: the next is one interval after the one due. */
	cr_assert_eq(snap_sched_done(&s, 1000, 1002, SNAP_SCHED_OK, "auto-1"), 0);
	cr_assert_eq(s.next_due, 1010);
	cr_assert_eq(s.runs, 1);
	cr_assert_eq(s.last_run, 1000);
	cr_assert_str_eq(s.last_name, "auto-1");
	/* A timer a little late still keeps the grid. */
	cr_assert_eq(snap_sched_done(&s, 1011, 1012, SNAP_SCHED_OK, "auto-2"), 0);
	cr_assert_eq(s.next_due, 1020);
	/* A run that outlasts two due times: they are not queued but missed. */
	cr_assert_eq(snap_sched_done(&s, 1020, 1041, SNAP_SCHED_OK, "auto-3"), 2);
	cr_assert_eq(s.next_due, 1050);
	cr_assert_eq(s.missed, 2);
	cr_assert_eq(s.runs, 3);
	/* Ending exactly on a due time: that one is still taken. */
	cr_assert_eq(snap_sched_done(&s, 1050, 1060, SNAP_SCHED_OK, "auto-4"), 0);
	cr_assert_eq(s.next_due, 1060);
}

Test(schedule, skipped_and_failed)
{
	struct snap_sched s;

	snap_sched_init(&s, uuid_a, 60, 3, 1000, err, sizeof(err));
	snap_sched_done(&s, 1000, 1000, SNAP_SCHED_OK, "auto-a");
	cr_assert_eq(snap_sched_done(&s, 1060, 1060, SNAP_SCHED_SKIPPED,
				     "the domain is being migrated\nto x"),
		     0);
	cr_assert_eq(s.last_result, SNAP_SCHED_SKIPPED);
	cr_assert_str_eq(s.last_reason, "the domain is being migrated to x");
	cr_assert_str_eq(s.last_name, "auto-a", "the last snapshot taken stays");
	cr_assert_eq(s.missed, 1);
	cr_assert_eq(s.runs, 1);
	cr_assert_eq(s.next_due, 1120);
	snap_sched_done(&s, 1120, 1121, SNAP_SCHED_FAILED, NULL);
	cr_assert_eq(s.missed, 2);
	cr_assert_str_eq(s.last_reason, "");
	snap_sched_done(&s, 1180, 1181, SNAP_SCHED_OK, "auto-b");
	cr_assert_eq(s.last_reason[0], 0, "an ok run clears the reason");
	cr_assert_str_eq(snap_sched_result_name(s.last_result), "ok");
}

Test(schedule, restart_counts_missed_once)
{
	struct snap_sched s;

	snap_sched_init(&s, uuid_a, 10, 3, 1000, err, sizeof(err));
	/* Back before it was due: nothing missed, nothing moves. */
	cr_assert_eq(snap_sched_restart(&s, 995), 0);
	cr_assert_eq(s.next_due, 1000);
	cr_assert_eq(snap_sched_restart(&s, 1000), 0);
	cr_assert_eq(s.next_due, 1000);
	/* Down over 1000, 1010, 1020, 1030: four missed, one run at once. */
	cr_assert_eq(snap_sched_restart(&s, 1035), 4);
	cr_assert_eq(s.missed, 4);
	cr_assert_eq(s.next_due, 1035);
	/* That run then goes back to a grid from where it was taken. */
	snap_sched_done(&s, 1035, 1036, SNAP_SCHED_OK, "auto-x");
	cr_assert_eq(s.next_due, 1045);
	cr_assert_eq(s.missed, 4);
	/* Just past due: one missed. */
	snap_sched_restart(&s, 1046);
	cr_assert_eq(s.missed, 5);
	cr_assert_eq(s.next_due, 1046);
}

Test(schedule, clock_set_back)
{
	struct snap_sched s;

	snap_sched_init(&s, uuid_a, 60, 3, 1000000, err, sizeof(err));
	cr_assert_eq(snap_sched_restart(&s, 1000), 0);
	cr_assert_eq(s.next_due, 1060, "a due time far ahead is pulled back");
	s.next_due = 1000000;
	snap_sched_resume(&s, 1000);
	cr_assert_eq(s.next_due, 1060);
}

Test(schedule, resume_counts_nothing)
{
	struct snap_sched s;

	snap_sched_init(&s, uuid_a, 10, 3, 1000, err, sizeof(err));
	snap_sched_resume(&s, 5000);
	cr_assert_eq(s.next_due, 5000);
	cr_assert_eq(s.missed, 0);
	snap_sched_resume(&s, 4000);
	cr_assert_eq(s.next_due, 4010, "not later than an interval from now");
}

Test(schedule, change_keeps_history)
{
	struct snap_sched s;

	snap_sched_init(&s, uuid_a, 10, 3, 1000, err, sizeof(err));
	cr_assert_eq(snap_sched_change(&s, 60, 5, 1001, err, sizeof(err)), 0);
	cr_assert_eq(s.next_due, 1001, "none ran: due at once");
	snap_sched_done(&s, 1001, 1002, SNAP_SCHED_OK, "auto-a");
	cr_assert_eq(snap_sched_change(&s, 3600, 2, 1010, err, sizeof(err)), 0);
	cr_assert_eq(s.next_due, 1001 + 3600);
	cr_assert_eq(s.keep, 2);
	cr_assert_eq(s.runs, 1);
	cr_assert_eq(snap_sched_change(&s, 5, 2, 1100, err, sizeof(err)), 0);
	cr_assert_eq(s.next_due, 1100, "passed already: at once");
	cr_assert_eq(snap_sched_change(&s, 0, 2, 1100, err, sizeof(err)), -EINVAL);
	cr_assert_eq(s.every_s, 5, "a refused change changes nothing");
}

Test(schedule, auto_names)
{
	char buf[SNAP_NAME_MAX + 1];

	cr_assert_eq(snap_sched_auto_name(0, 0, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "auto-19700101-000000");
	cr_assert_eq(snap_sched_auto_name(1796529600, 2, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "auto-20261206-040000-2");
	cr_assert(snap_sched_is_auto(buf));
	cr_assert_eq(snap_sched_auto_name(0, 0, buf, 10), -ENAMETOOLONG);
	cr_assert(snap_sched_is_auto("auto-20261206-040000"));
	cr_assert_not(snap_sched_is_auto("auto-20261206-04000"));
	cr_assert_not(snap_sched_is_auto("auto-2026120-040000"));
	cr_assert_not(snap_sched_is_auto("auto-20261206-040000-"));
	cr_assert_not(snap_sched_is_auto("auto-20261206-040000x"));
	cr_assert_not(snap_sched_is_auto("auto-20261206-040000-1x"));
	cr_assert_not(snap_sched_is_auto("auto-mine"));
	cr_assert_not(snap_sched_is_auto("Auto-20261206-040000"));
	cr_assert_not(snap_sched_is_auto("before-upgrade"));
	cr_assert_not(snap_sched_is_auto(""));
}

static struct snap_info info(const char *name, int64_t t, bool complete)
{
	struct snap_info i = { .time = t, .complete = complete };

	snprintf(i.name, sizeof(i.name), "%s", name);
	return i;
}

Test(schedule, prune_pick)
{
	struct snap_info list[] = {
		info("auto-20261206-040002", 2, true),	info("mine", 0, true),
		info("auto-20261206-040000", 0, true),	info("auto-20261206-040003", 3, true),
		info("auto-20261206-040001", 1, true),	info("auto-20261206-040001-1", 1, true),
		info("auto-20261206-040009", 9, false), info("auto-later", 10, true),
	};
	size_t pick[8], n;

	snap_sched_prune_pick(list, 8, 2, pick, &n);
	/* Five complete autos (the one being written does not count): all but
	 * the newest two go, oldest first; "mine" and "auto-later" are not
	 * ours. */
	cr_assert_eq(n, 3);
	cr_assert_str_eq(list[pick[0]].name, "auto-20261206-040000");
	cr_assert_str_eq(list[pick[1]].name, "auto-20261206-040001");
	cr_assert_str_eq(list[pick[2]].name, "auto-20261206-040001-1");
	snap_sched_prune_pick(list, 8, 5, pick, &n);
	cr_assert_eq(n, 0);
	snap_sched_prune_pick(list, 8, 4, pick, &n);
	cr_assert_eq(n, 1);
	snap_sched_prune_pick(NULL, 0, 1, pick, &n);
	cr_assert_eq(n, 0);
}

#define NPAGES 16

/* Snapshot name of uuid_a, parent as given, every page holding seed+pfn. */
static void take(struct snap_repo *r, const char *name, const char *parent, unsigned seed)
{
	static uint8_t page[SNAP_PAGE_SIZE];
	struct snap_writer *w;
	const void *pages[1] = { page };
	int rc = snap_begin(r, uuid_a, name, parent, NPAGES, &w, err, sizeof(err));

	cr_assert_eq(rc, 0, "begin %s: %s", name, err);
	/* A chain: each snapshot changes pfn seed % NPAGES only, the first sets all. */
	for (uint64_t pfn = parent ? seed % NPAGES : 0; pfn < (parent ? seed % NPAGES + 1 : NPAGES);
	     pfn++) {
		memset(page, (int)(seed + pfn + 1), sizeof(page));
		cr_assert_eq(snap_put(w, &pfn, pages, 1), 0);
	}
	cr_assert_eq(snap_commit(w, NULL), 0, "commit %s: %s", name, err);
}

static uint8_t page_of(struct snap_repo *r, const char *name, uint64_t pfn)
{
	static uint8_t buf[SNAP_PAGE_SIZE];
	enum snap_page_kind kind;
	int rc = snap_read_page(r, uuid_a, name, pfn, buf, &kind, err, sizeof(err));

	cr_assert_eq(rc, 0, "read %s pfn %lu: %s", name, (unsigned long)pfn, err);
	return buf[0];
}

Test(schedule_files, prune_keeps_the_rest_whole)
{
	struct snap_repo_opts o = { .create = true };
	char names[6][SNAP_NAME_MAX + 1];
	uint8_t want[6][NPAGES];
	struct snap_verify_report rep;
	struct snap_info *list;
	struct snap_repo *r;
	uint32_t pruned;
	size_t n;

	cr_assert_eq(snap_repo_open(dir, &o, &r, err, sizeof(err)), 0, "%s", err);
	/* auto 0, auto 1, the user's "mine", auto 2..4: one chain. */
	for (unsigned i = 0; i < 6; i++) {
		if (i == 2)
			snprintf(names[i], sizeof(names[i]), "mine");
		else
			snap_sched_auto_name(1796529600 + i, 0, names[i], sizeof(names[i]));
		take(r, names[i], i ? names[i - 1] : NULL, i * 5);
		for (uint64_t p = 0; p < NPAGES; p++)
			want[i][p] = page_of(r, names[i], p);
	}
	cr_assert_eq(snap_sched_prune(r, uuid_a, 2, &pruned, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pruned, 3);
	cr_assert_eq(snap_list(r, uuid_a, &list, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(list[0].name, "mine");
	cr_assert_str_eq(list[1].name, names[4]);
	cr_assert_str_eq(list[2].name, names[5]);
	free(list);
	/* The survivors read as before, inherited pages included. */
	for (unsigned i = 2; i < 6; i += (i == 2 ? 2 : 1))
		for (uint64_t p = 0; p < NPAGES; p++)
			cr_assert_eq(page_of(r, names[i], p), want[i][p], "%s pfn %lu", names[i],
				     (unsigned long)p);
	/* Nothing more to prune; another domain's are not looked at. */
	cr_assert_eq(snap_sched_prune(r, uuid_a, 2, &pruned, err, sizeof(err)), 0);
	cr_assert_eq(pruned, 0);
	cr_assert_eq(snap_sched_prune(r, uuid_b, 1, &pruned, err, sizeof(err)), 0);
	cr_assert_eq(pruned, 0);
	cr_assert_eq(snap_verify(r, uuid_a, NULL, &rep, err, sizeof(err)), 0, "%s", err);
	snap_repo_close(r);
}

static void sched_dir(char *out, size_t len)
{
	snprintf(out, len, "%s/schedules", dir);
}

Test(schedule_files, save_load_round_trip)
{
	struct snap_sched s, t;
	char sd[PATH_MAX / 2 + 16], path[PATH_MAX];
	struct stat st;

	sched_dir(sd, sizeof(sd));
	snap_sched_init(&s, uuid_a, 300, 12, 1796529600, err, sizeof(err));
	snap_sched_done(&s, 1796529600, 1796529601, SNAP_SCHED_OK, "auto-20261206-040000");
	snap_sched_done(&s, 1796529900, 1796530800, SNAP_SCHED_SKIPPED,
			"domain 'vm1' is being migrated");
	cr_assert_eq(snap_sched_save(sd, &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stat(sd, &st), 0, "the directory is made");
	cr_assert_eq(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/aa010203-0405-0607-0809-0a0b0c0d0e0f.sched", sd);
	cr_assert_eq(snap_sched_load(path, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(memcmp(&s, &t, sizeof(s)), 0, "the record comes back as it was");
	cr_assert_eq(t.missed, 1 + 2);
	cr_assert_str_eq(t.last_reason, "domain 'vm1' is being migrated");
	/* Saved again over itself: still one file. */
	t.keep = 3;
	cr_assert_eq(snap_sched_save(sd, &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_sched_load(path, &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(s.keep, 3);
	cr_assert_eq(snap_sched_remove(sd, uuid_a, err, sizeof(err)), 0, "%s", err);
	cr_assert_neq(access(path, F_OK), 0);
	cr_assert_eq(snap_sched_remove(sd, uuid_a, err, sizeof(err)), -ENOENT);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

static int load_text(const char *name, const char *text)
{
	char sd[PATH_MAX / 2 + 16], path[PATH_MAX];
	struct snap_sched s;

	sched_dir(sd, sizeof(sd));
	mkdir(sd, 0700);
	snprintf(path, sizeof(path), "%s/%s", sd, name);
	write_file(path, text);
	err[0] = 0;
	return snap_sched_load(path, &s, err, sizeof(err));
}

#define UA   "aa010203-0405-0607-0809-0a0b0c0d0e0f"
#define HEAD "ferry-snapshot-schedule 1\nuuid " UA "\n"

Test(schedule_files, corrupt_files_refused)
{
	cr_assert_eq(load_text(UA ".sched", HEAD "every 10\nkeep 2\nnext-due 5\n"), 0, "%s", err);
	cr_assert_eq(load_text(UA ".sched", HEAD "every 10\nkeep 2\nnext-due 5\nfuture x y\n"), 0,
		     "unknown keys are skipped: %s", err);
	cr_assert_eq(load_text(UA ".sched", "ferry-snapshot-schedule 2\nuuid " UA "\n"),
		     -EPROTONOSUPPORT);
	cr_assert_not_null(strstr(err, "newer"), "%s", err);
	cr_assert_eq(load_text(UA ".sched", "hello\n"), -EINVAL);
	cr_assert_eq(load_text(UA ".sched", HEAD "every 10\nkeep 2\n"), -EINVAL);
	cr_assert_not_null(strstr(err, "missing"), "%s", err);
	cr_assert_eq(load_text(UA ".sched", HEAD "every 0\nkeep 2\nnext-due 5\n"), -EINVAL);
	cr_assert_eq(load_text(UA ".sched", HEAD "every 10\nkeep 0\nnext-due 5\n"), -EINVAL);
	cr_assert_eq(load_text(UA ".sched", HEAD "every 10x\nkeep 2\nnext-due 5\n"), -EINVAL);
	cr_assert_not_null(strstr(err, "every 10x"), "%s", err);
	cr_assert_eq(load_text(UA ".sched", HEAD "every 10\nkeep 2\nnext-due -5\n"), -EINVAL);
	cr_assert_eq(
		load_text(UA ".sched", HEAD "every 10\nkeep 2\nnext-due 5\nlast-result maybe\n"),
		-EINVAL);
	cr_assert_eq(load_text(UA ".sched", HEAD "every 10\nkeep 2\nnext-due 5\nlast-name a/b\n"),
		     -EINVAL);
	cr_assert_eq(load_text(UA ".sched", "ferry-snapshot-schedule 1\nuuid aa0102030405\n"),
		     -EINVAL);
	/* Another uuid's record under this name. */
	cr_assert_eq(load_text("bb010203-0405-0607-0809-0a0b0c0d0e0f.sched",
			       HEAD "every 10\nkeep 2\nnext-due 5\n"),
		     -EINVAL);
	cr_assert_not_null(strstr(err, "not its file's name"), "%s", err);
}

struct bad_seen {
	unsigned n;
	char path[PATH_MAX];
};

static void on_bad(void *opaque, const char *path, int rc, const char *msg)
{
	struct bad_seen *b = opaque;

	cr_assert_eq(rc, -EINVAL, "%s: %s", path, msg);
	b->n++;
	snprintf(b->path, sizeof(b->path), "%s", path);
}

Test(schedule_files, load_all_skips_bad_files)
{
	struct snap_sched a, b, *v;
	struct bad_seen seen = { 0 };
	char sd[PATH_MAX / 2 + 16], path[PATH_MAX];
	size_t n;

	sched_dir(sd, sizeof(sd));
	cr_assert_eq(snap_sched_load_all(sd, &v, &n, on_bad, &seen, err, sizeof(err)), 0);
	cr_assert_eq(n, 0, "no directory: no schedules");
	free(v);
	snap_sched_init(&b, uuid_b, 60, 2, 100, err, sizeof(err));
	snap_sched_init(&a, uuid_a, 30, 4, 100, err, sizeof(err));
	cr_assert_eq(snap_sched_save(sd, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_sched_save(sd, &a, err, sizeof(err)), 0, "%s", err);
	snprintf(path, sizeof(path), "%s/cc010203-0405-0607-0809-0a0b0c0d0e0f.sched", sd);
	write_file(path, "ferry-snapshot-schedule 1\ngarbage\n");
	/* A crash's leftover temporary and foreign files are not schedules. */
	snprintf(path, sizeof(path), "%s/." UA ".sched.tmp-x", sd);
	write_file(path, "junk");
	snprintf(path, sizeof(path), "%s/notes.txt", sd);
	write_file(path, "junk");
	cr_assert_eq(snap_sched_load_all(sd, &v, &n, on_bad, &seen, err, sizeof(err)), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(memcmp(&v[0], &a, sizeof(a)), 0, "sorted by uuid");
	cr_assert_eq(memcmp(&v[1], &b, sizeof(b)), 0);
	cr_assert_eq(seen.n, 1);
	cr_assert_not_null(strstr(seen.path, "cc010203"));
	free(v);
}
