// SPDX-License-Identifier: MIT
/* snapshot/repo.h: the snapshot repository on a real file system. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migrate/session.h"
#include "snapshot/repo.h"
#include "tmpdir.h"

#define PG SNAP_PAGE_SIZE
#define NPAGES 512

static char err[1024];
static const uint8_t uuid_a[16] = { 0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
static const uint8_t uuid_b[16] = { 0xbb, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

TestSuite(snapshot, .init = setup, .fini = teardown);

static struct snap_repo *open_repo(bool xdedup)
{
	struct snap_repo_opts o = { .create = true, .cross_domain_dedup = xdedup };
	struct snap_repo *r;
	int rc = snap_repo_open(dir, &o, &r, err, sizeof(err));

	cr_assert_eq(rc, 0, "open: %d %s", rc, err);
	return r;
}

/* Non-zero pseudo-random contents from seed. */
static void fill(uint8_t *page, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < PG; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(page + i, &x, 8);
	}
	page[0] |= 1;
}

/* Puts pages [pfns] of mem in batches of up to 64, as a session would. */
static void put_pfns(struct snap_writer *w, uint8_t *mem, const uint64_t *pfns, size_t n)
{
	for (size_t i = 0; i < n; i += 64) {
		const void *pages[64];
		uint32_t c = n - i < 64 ? (uint32_t)(n - i) : 64;

		for (uint32_t k = 0; k < c; k++)
			pages[k] = mem + pfns[i + k] * PG;
		cr_assert_eq(snap_put(w, pfns + i, pages, c), 0, "put: %s", err);
	}
}

static void put_all(struct snap_writer *w, uint8_t *mem, uint64_t npages)
{
	uint64_t *pfns = malloc(npages * sizeof(*pfns));

	for (uint64_t i = 0; i < npages; i++)
		pfns[i] = i;
	put_pfns(w, mem, pfns, npages);
	free(pfns);
}

/* Every pfn of the snapshot reads back as mem (holes: pfns >= nholes_from). */
static void expect_snap(struct snap_repo *r, const uint8_t *uuid, const char *name,
			const uint8_t *mem, uint64_t holes_from)
{
	static uint8_t buf[PG], zero[PG];
	enum snap_page_kind kind;
	struct snap_view *v;
	int rc;

	rc = snap_view_open(r, uuid, name, &v, err, sizeof(err));
	cr_assert_eq(rc, 0, "view %s: %s", name, err);
	cr_assert_eq(snap_view_pages(v), NPAGES);
	for (uint64_t pfn = 0; pfn < NPAGES; pfn++) {
		rc = snap_view_read(v, pfn, buf, &kind, err, sizeof(err));
		cr_assert_eq(rc, 0, "%s pfn %lu: %s", name, (unsigned long)pfn, err);
		if (pfn >= holes_from) {
			cr_assert_eq(kind, SNAP_PAGE_HOLE, "%s pfn %lu", name, (unsigned long)pfn);
			cr_assert_eq(memcmp(buf, zero, PG), 0);
			continue;
		}
		cr_assert_eq(memcmp(buf, mem + pfn * PG, PG), 0, "%s: pfn %lu differs", name,
			     (unsigned long)pfn);
		cr_assert_eq(kind, memcmp(buf, zero, PG) ? SNAP_PAGE_DATA : SNAP_PAGE_ZERO);
	}
	cr_assert_eq(snap_view_read(v, NPAGES, buf, &kind, err, sizeof(err)), -ERANGE);
	snap_view_close(v);
}

#define HOLES_FROM 500

/* Snapshot i of the chain: changes 40 pages (and zeroes one) from i - 1. */
static void chain_step(struct snap_repo *r, uint8_t *mem, int i, char names[][8])
{
	struct snap_write_stats st;
	struct snap_writer *w;
	uint64_t pfns[41];

	snprintf(names[i], 8, "s%d", i);
	cr_assert_eq(snap_begin(r, uuid_a, names[i], i ? names[i - 1] : NULL, NPAGES, &w, err,
				sizeof(err)), 0, "begin: %s", err);
	if (!i) {
		for (uint64_t p = 0; p < HOLES_FROM; p++)
			if (p % 7) /* every 7th page stays zero */
				fill(mem + p * PG, p);
		put_all(w, mem, HOLES_FROM);
		for (uint64_t p = HOLES_FROM; p < NPAGES; p++)
			cr_assert_eq(snap_holes(w, &p, 1), 0);
	} else {
		for (int k = 0; k < 40; k++) {
			pfns[k] = (uint64_t)(i * 37 + k * 11) % HOLES_FROM;
			fill(mem + pfns[k] * PG, 1000 * (uint64_t)i + (uint64_t)k);
		}
		pfns[40] = (uint64_t)i + 1;
		memset(mem + pfns[40] * PG, 0, PG);
		put_pfns(w, mem, pfns, 41);
	}
	cr_assert_eq(snap_commit(w, &st), 0, "commit %s: %s", names[i], err);
	if (i)
		cr_assert_leq(st.stored, 40, "%s stored %lu", names[i], (unsigned long)st.stored);
}

Test(snapshot, chain_of_five_reads_exactly_and_survives_deleting_the_middle)
{
	uint8_t *mem = calloc(NPAGES, PG), *want[5];
	struct snap_verify_report rep;
	char names[5][8];
	struct snap_repo *r = open_repo(false);
	struct snap_info *list;
	size_t n;

	for (int i = 0; i < 5; i++) {
		chain_step(r, mem, i, names);
		want[i] = malloc(NPAGES * PG);
		memcpy(want[i], mem, NPAGES * PG);
	}
	for (int i = 0; i < 5; i++)
		expect_snap(r, uuid_a, names[i], want[i], HOLES_FROM);
	cr_assert_eq(snap_list(r, uuid_a, &list, &n), 0);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(list[3].parent, "s2");
	cr_assert(list[3].own_entries <= 41 && list[0].own_entries == NPAGES);
	free(list);

	cr_assert_eq(snap_delete(r, uuid_a, "s2", err, sizeof(err)), 0, "delete: %s", err);
	snap_repo_close(r);
	r = open_repo(false);
	cr_assert_eq(snap_list(r, uuid_a, &list, &n), 0);
	cr_assert_eq(n, 4);
	cr_assert_str_eq(list[2].name, "s3");
	cr_assert_str_eq(list[2].parent, "s1");
	free(list);
	for (int i = 0; i < 5; i++)
		if (i != 2)
			expect_snap(r, uuid_a, names[i], want[i], HOLES_FROM);
	cr_assert_eq(snap_view_open(r, uuid_a, "s2", &(struct snap_view *){ NULL }, err,
				    sizeof(err)), -ENOENT);
	cr_assert_eq(snap_verify(r, NULL, NULL, &rep, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rep.snapshots, 4);
	cr_assert_eq(rep.bad, 0);
	cr_assert_gt(rep.pages, 4 * 400);

	/* the root too: everything left is whole */
	cr_assert_eq(snap_delete(r, uuid_a, "s0", err, sizeof(err)), 0, "delete: %s", err);
	for (int i = 1; i < 5; i++)
		if (i != 2)
			expect_snap(r, uuid_a, names[i], want[i], HOLES_FROM);
	snap_repo_close(r);
	for (int i = 0; i < 5; i++)
		free(want[i]);
	free(mem);
}

/* A snapshot named name of uuid holding mem's first npages. */
static void take(struct snap_repo *r, const uint8_t *uuid, const char *name, uint8_t *mem,
		 uint64_t npages, struct snap_write_stats *st)
{
	struct snap_writer *w;

	cr_assert_eq(snap_begin(r, uuid, name, NULL, NPAGES, &w, err, sizeof(err)), 0, "%s",
		     err);
	put_all(w, mem, npages);
	cr_assert_eq(snap_commit(w, st), 0, "commit: %s", err);
}

static struct snap_repo_stats stats(struct snap_repo *r)
{
	struct snap_repo_stats s;

	cr_assert_eq(snap_repo_stats(r, &s), 0);
	return s;
}

#define DEDUP_PAGES 256
#define MIB(x) ((double)(x) / (1 << 20))

Test(snapshot, identical_pages_cost_one_and_a_byte_apart_cost_two)
{
	uint8_t *mem = calloc(NPAGES, PG), *ctl = calloc(NPAGES, PG);
	uint64_t one = DEDUP_PAGES * (uint64_t)PG;
	struct snap_write_stats st;
	struct snap_repo_stats s1, s2, s3, s4;
	struct snap_repo *r = open_repo(false);

	for (uint64_t p = 0; p < DEDUP_PAGES; p++)
		fill(mem + p * PG, p + 7);
	memcpy(ctl, mem, DEDUP_PAGES * PG);
	for (uint64_t p = 0; p < DEDUP_PAGES; p++)
		ctl[p * PG + 2049] ^= 0x40;

	take(r, uuid_a, "one", mem, DEDUP_PAGES, &st);
	cr_assert_eq(st.stored, DEDUP_PAGES);
	s1 = stats(r);
	cr_assert_eq(s1.live_pages, DEDUP_PAGES);
	cr_assert(s1.disk_bytes >= one && s1.disk_bytes <= one + one / 10, "%.2f MiB",
		  MIB(s1.disk_bytes));

	take(r, uuid_a, "same", mem, DEDUP_PAGES, &st);
	cr_assert_eq(st.stored, 0);
	cr_assert_eq(st.deduped, DEDUP_PAGES);
	s2 = stats(r);
	cr_assert_eq(s2.live_pages, DEDUP_PAGES);
	cr_assert_leq(s2.disk_bytes, s1.disk_bytes + one / 10, "%.2f MiB", MIB(s2.disk_bytes));

	take(r, uuid_a, "control", ctl, DEDUP_PAGES, &st);
	cr_assert_eq(st.stored, DEDUP_PAGES);
	s3 = stats(r);
	cr_assert_eq(s3.live_pages, 2 * DEDUP_PAGES);
	cr_assert_geq(s3.disk_bytes, 2 * one, "%.2f MiB", MIB(s3.disk_bytes));

	/* another domain: not shared by default */
	take(r, uuid_b, "other", mem, DEDUP_PAGES, &st);
	cr_assert_eq(st.stored, DEDUP_PAGES);
	s4 = stats(r);
	cr_assert_eq(s4.live_pages, 3 * DEDUP_PAGES);

	/* deleting a snapshot whose pages another shares keeps them */
	cr_assert_eq(snap_delete(r, uuid_a, "one", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stats(r).live_pages, 3 * DEDUP_PAGES);
	expect_snap(r, uuid_a, "same", mem, NPAGES);
	/* deleting the control frees its pages: punched out of the pack */
	cr_assert_eq(snap_delete(r, uuid_a, "control", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stats(r).live_pages, 2 * DEDUP_PAGES);
	cr_assert_leq(stats(r).disk_bytes, 2 * one + one / 5, "%.2f MiB",
		      MIB(stats(r).disk_bytes));
	snap_repo_close(r);
	free(mem);
	free(ctl);
}

Test(snapshot, cross_domain_dedup_is_a_repository_option)
{
	uint8_t *mem = calloc(NPAGES, PG);
	struct snap_write_stats st;
	struct snap_repo *r = open_repo(true);

	for (uint64_t p = 0; p < DEDUP_PAGES; p++)
		fill(mem + p * PG, p + 3);
	take(r, uuid_a, "a", mem, DEDUP_PAGES, &st);
	take(r, uuid_b, "b", mem, DEDUP_PAGES, &st);
	cr_assert_eq(st.deduped, DEDUP_PAGES);
	cr_assert_eq(stats(r).live_pages, DEDUP_PAGES);
	/* two domains with the same memory cost about one */
	cr_assert_leq(stats(r).disk_bytes, DEDUP_PAGES * (uint64_t)PG * 11 / 10, "%.2f MiB",
		      MIB(stats(r).disk_bytes));
	snap_repo_close(r);
	/* kept in the repository: a plain open still shares */
	cr_assert_eq(snap_repo_open(dir, NULL, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_delete(r, uuid_a, "a", err, sizeof(err)), 0, "%s", err);
	expect_snap(r, uuid_b, "b", mem, NPAGES);
	snap_repo_close(r);
	free(mem);
}

/*
 * A pfn put twice in one snapshot leaves its first page unreferenced: it
 * is reclaimed at commit, and a later snapshot holding that page again
 * stores it anew instead of deduplicating against the reclaimed slot.
 */
Test(snapshot, a_page_put_twice_is_reclaimed_and_never_deduplicated_against)
{
	uint8_t *mem = calloc(NPAGES, PG), *first = malloc(PG);
	const void *pg[1];
	struct snap_write_stats st;
	struct snap_writer *w;
	struct snap_repo *r = open_repo(false);
	uint64_t pfn = 3;

	fill(first, 99);
	for (uint64_t p = 0; p < 8; p++)
		fill(mem + p * PG, p + 1);
	cr_assert_eq(snap_begin(r, uuid_a, "twice", NULL, NPAGES, &w, err, sizeof(err)), 0);
	pg[0] = first;
	cr_assert_eq(snap_put(w, &pfn, pg, 1), 0, "%s", err);
	put_all(w, mem, 8);
	cr_assert_eq(snap_commit(w, &st), 0, "%s", err);
	cr_assert_eq(st.stored, 9);
	cr_assert_eq(stats(r).live_pages, 8);
	expect_snap(r, uuid_a, "twice", mem, NPAGES);

	memcpy(mem + 3 * PG, first, PG);
	take(r, uuid_a, "again", mem, 8, &st);
	cr_assert_eq(st.stored, 1, "stored %lu", (unsigned long)st.stored);
	snap_repo_close(r);
	r = open_repo(false);
	expect_snap(r, uuid_a, "again", mem, NPAGES);
	cr_assert_eq(snap_verify(r, NULL, NULL, &(struct snap_verify_report){ 0 }, err,
				 sizeof(err)), 0, "%s", err);
	snap_repo_close(r);
	free(mem);
	free(first);
}

/* The number a shell command prints about sub (a path under dir). */
static uint64_t shell_num(const char *fmt, const char *sub)
{
	char cmd[PATH_MAX], path[PATH_MAX];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	snprintf(cmd, sizeof(cmd), fmt, path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%llu", &v), 1, "%s", cmd);
	pclose(f);
	return v;
}

static uint64_t dir_bytes(const char *sub)
{
	return shell_num("du -sk '%s'", sub) * 1024;
}

static int count_files(const char *sub)
{
	return (int)shell_num("find '%s' -type f | wc -l", sub);
}

Test(snapshot, a_snapshot_never_committed_is_gone_at_open_and_its_space_reclaimed)
{
	uint8_t *mem = malloc(NPAGES * PG), *base = calloc(NPAGES, PG);
	struct snap_repo *r = open_repo(false);
	struct snap_info *list;
	uint64_t before;
	int files, status;
	size_t n;
	pid_t pid;

	for (uint64_t p = 0; p < NPAGES; p++)
		fill(mem + p * PG, p);
	memcpy(base, mem, 64 * PG);
	take(r, uuid_a, "base", mem, 64, NULL);
	snap_repo_close(r);
	before = dir_bytes("packs");
	files = count_files(".");

	/* A writer that dies without committing: pages on disk, no commit. */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		struct snap_writer *w;

		r = open_repo(false);
		if (snap_begin(r, uuid_a, "partial", "base", NPAGES, &w, err, sizeof(err)))
			_exit(2);
		put_all(w, mem, NPAGES);
		if (snap_flush(w) || snap_list(r, uuid_a, &list, &n) || n != 2 ||
		    list[1].complete)
			_exit(3);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && !WEXITSTATUS(status), "child: %d", status);
	cr_assert_geq(dir_bytes("packs"), before + (NPAGES - 64) * (uint64_t)PG);

	r = open_repo(false);
	cr_assert_eq(snap_list(r, NULL, &list, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(list[0].name, "base");
	free(list);
	cr_assert_eq(dir_bytes("packs"), before);
	cr_assert_eq(count_files("."), files);
	expect_snap(r, uuid_a, "base", base, NPAGES);
	/* and the name is free again */
	take(r, uuid_a, "partial", mem, NPAGES, NULL);
	expect_snap(r, uuid_a, "partial", mem, NPAGES);
	snap_repo_close(r);
	free(mem);
	free(base);
}

static void pack_file(char *out, size_t len)
{
	char cmd[PATH_MAX];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ls '%s'/packs/*.pack", dir);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(out, (int)len, f));
	out[strcspn(out, "\n")] = 0;
	pclose(f);
}

Test(snapshot, a_flipped_byte_is_found_by_verify_and_by_read_naming_the_pfn)
{
	uint8_t *mem = calloc(NPAGES, PG), buf[PG];
	struct snap_verify_report rep;
	enum snap_page_kind kind;
	char pack[PATH_MAX];
	struct snap_repo *r = open_repo(false);
	int fd;

	for (uint64_t p = 0; p < 64; p++)
		fill(mem + p * PG, p + 100);
	take(r, uuid_a, "good", mem, 64, NULL);
	cr_assert_eq(snap_verify(r, uuid_a, "good", &rep, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rep.pages, 64);
	snap_repo_close(r);

	/* pages are stored in put order: slot 0x2a is pfn 0x2a */
	pack_file(pack, sizeof(pack));
	fd = open(pack, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, buf, 1, 0x2a * PG + 123), 1);
	buf[0] ^= 0x01;
	cr_assert_eq(pwrite(fd, buf, 1, 0x2a * PG + 123), 1);
	close(fd);

	r = open_repo(false);
	cr_assert_eq(snap_verify(r, NULL, NULL, &rep, err, sizeof(err)), -EIO);
	cr_assert_eq(rep.bad, 1);
	cr_assert_eq(rep.pages, 64);
	cr_assert_not_null(strstr(err, "pfn 0x2a"), "%s", err);
	cr_assert_not_null(strstr(err, pack), "%s", err);
	cr_assert_not_null(strstr(err, "/good"), "%s", err);
	err[0] = 0;
	cr_assert_eq(snap_read_page(r, uuid_a, "good", 0x2a, buf, &kind, err, sizeof(err)), -EIO);
	cr_assert_not_null(strstr(err, "pfn 0x2a"), "%s", err);
	cr_assert_not_null(strstr(err, "damaged"), "%s", err);
	cr_assert_eq(snap_read_page(r, uuid_a, "good", 0x29, buf, &kind, err, sizeof(err)), 0);
	cr_assert_eq(memcmp(buf, mem + 0x29 * PG, PG), 0);
	snap_repo_close(r);
	free(mem);
}

Test(snapshot, bad_names_are_refused_and_nothing_is_created)
{
	const char *bad[] = { "", "a/b", "/", ".hidden", "..", "tab\there", "new\nline" };
	char longname[SNAP_NAME_MAX + 2];
	struct snap_repo *r = open_repo(false);
	struct snap_writer *w;
	struct snap_info *list;
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		cr_assert_eq(snap_begin(r, uuid_a, bad[i], NULL, NPAGES, &w, err, sizeof(err)),
			     -EINVAL, "name \"%s\"", bad[i]);
		cr_assert_not_null(strstr(err, "snapshot name"), "%s", err);
	}
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	cr_assert_eq(snap_name_check(longname, err, sizeof(err)), -EINVAL);
	cr_assert_eq(snap_name_check("daily-2026.12.06", err, sizeof(err)), 0);
	cr_assert_eq(snap_begin(r, uuid_a, "p", "nope", NPAGES, &w, err, sizeof(err)), -ENOENT);
	cr_assert_eq(snap_list(r, NULL, &list, &n), 0);
	cr_assert_eq(n, 0);
	free(list);
	cr_assert_eq(count_files("snaps"), 0);
	cr_assert_eq(count_files("packs"), 0);
	snap_repo_close(r);
}

static void write_file(const char *sub, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(snapshot, a_newer_format_or_a_corrupt_manifest_is_refused_naming_the_file)
{
	uint8_t *mem = calloc(NPAGES, PG);
	struct snap_repo *r = open_repo(false);
	char path[PATH_MAX];

	fill(mem, 1);
	take(r, uuid_a, "s", mem, 1, NULL);
	snap_repo_close(r);

	cr_assert_eq(snap_repo_open(dir, NULL, &r, err, sizeof(err)), 0, "%s", err);
	snap_repo_close(r);
	write_file("FORMAT", "ferry-snapshot-repository 2\ncross-domain-dedup 0\n");
	cr_assert_eq(snap_repo_open(dir, NULL, &r, err, sizeof(err)), -EPROTONOSUPPORT);
	cr_assert_not_null(strstr(err, "FORMAT"), "%s", err);
	cr_assert_not_null(strstr(err, "newer"), "%s", err);
	write_file("FORMAT", "ferry-snapshot-repository 1\ncross-domain-dedup 0\n");

	snprintf(path, sizeof(path), "snaps/aa010203-0405-0607-0809-0a0b0c0d0e0f/s.manifest");
	write_file(path, "ferry-snapshot-manifest 1\nname s\nstate complete\nbogus 1\n");
	cr_assert_eq(snap_repo_open(dir, NULL, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "s.manifest"), "%s", err);
	cr_assert_not_null(strstr(err, "bogus"), "%s", err);
	write_file(path, "ferry-snapshot-manifest 1\nname s\nstate complete\nindex-gen 1\n"
			 "uuid aa010203-0405-0607-0809-0a0b0c0d0e0f\n");
	cr_assert_eq(snap_repo_open(dir, NULL, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "memory-pages"), "%s", err);
	write_file(path, "ferry-snapshot-manifest 1\nname s\nstate complete\nindex-gen 1\n"
			 "memory-pages 1\nuuid bb010203-0405-0607-0809-0a0b0c0d0e0f\n");
	cr_assert_eq(snap_repo_open(dir, NULL, &r, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "directory"), "%s", err);
	write_file(path, "ferry-snapshot-manifest 9\nname s\n");
	cr_assert_eq(snap_repo_open(dir, NULL, &r, err, sizeof(err)), -EPROTONOSUPPORT);
	cr_assert_not_null(strstr(err, "s.manifest"), "%s", err);

	/* a missing repository is not made without create */
	snprintf(path, sizeof(path), "%s/none", dir);
	cr_assert_eq(snap_repo_open(path, NULL, &r, err, sizeof(err)), -ENOENT);
	free(mem);
}

Test(snapshot, a_second_process_cannot_hold_the_repository)
{
	struct snap_repo *r = open_repo(false), *r2;
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid)
		_exit(snap_repo_open(dir, NULL, &r2, err, sizeof(err)) == -EBUSY ? 0 : 1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && !WEXITSTATUS(status));
	snap_repo_close(r);
}

/* The session's page-sink table driven as a session drives it: rounds of
 * epoch 0 (a page sent again), holes, then the final epoch. */
Test(snapshot, the_page_sink_writes_a_session_s_pages_into_a_snapshot)
{
	uint8_t *mem = calloc(NPAGES, PG);
	struct snap_repo *r = open_repo(false);
	struct snap_writer *w;
	uint64_t pfns[MIG_SINK_BATCH_MAX], hole = HOLES_FROM;
	const void *pages[MIG_SINK_BATCH_MAX];

	cr_assert_eq(snap_begin(r, uuid_a, "live", NULL, NPAGES, &w, err, sizeof(err)), 0);
	cr_assert_eq(snap_sink_ops.begin(w, 0), 0);
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < MIG_SINK_BATCH_MAX; i++) {
			pfns[i] = i * 2 + (uint64_t)round;
			fill(mem + pfns[i] * PG, pfns[i] + 77 * (uint64_t)round);
			pages[i] = mem + pfns[i] * PG;
		}
		cr_assert_eq(snap_sink_ops.put(w, pfns, pages, MIG_SINK_BATCH_MAX), 0, "%s", err);
		cr_assert_eq(snap_sink_ops.flush(w), 0);
	}
	/* dirtied again before the pause: the latest contents win */
	fill(mem + 4 * PG, 4444);
	pfns[0] = 4;
	pages[0] = mem + 4 * PG;
	cr_assert_eq(snap_sink_ops.put(w, pfns, pages, 1), 0);
	for (uint64_t p = HOLES_FROM; p < NPAGES; p++) {
		hole = p;
		cr_assert_eq(snap_sink_ops.holes(w, &hole, 1), 0);
	}
	cr_assert_eq(snap_sink_ops.end(w, 0), 0);
	cr_assert_eq(snap_commit(w, NULL), 0, "%s", err);
	expect_snap(r, uuid_a, "live", mem, HOLES_FROM);
	snap_repo_close(r);
	free(mem);
}

Test(snapshot, the_list_keeps_creation_order_across_a_reopen)
{
	const char *names[] = { "zeta", "alpha", "mid" };
	uint8_t *mem = calloc(NPAGES, PG);
	struct snap_repo *r = open_repo(false);
	struct snap_info *list;
	size_t n;

	for (int i = 0; i < 3; i++) {
		fill(mem, (uint64_t)i);
		take(r, uuid_a, names[i], mem, 1, NULL);
	}
	snap_repo_close(r);
	r = open_repo(false);
	cr_assert_eq(snap_list(r, uuid_a, &list, &n), 0);
	cr_assert_eq(n, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(list[i].name, names[i]);
		cr_assert(list[i].complete);
		cr_assert_eq(list[i].memory_pages, NPAGES);
	}
	free(list);
	snap_repo_close(r);
	free(mem);
}
