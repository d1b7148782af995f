// SPDX-License-Identifier: MIT
/*
 * The repository on a full disk and its write-fsync-rename order:
 * - a loop-mounted ext4 and a small tmpfs, each made by the test (root)
 *   in a mount namespace of its own, filled with snapshots until one
 *   fails: -ENOSPC naming the file, the partial snapshot gone, its space
 *   back, every complete one reading page for page after a reopen, and a
 *   new one working once a snapshot is deleted; ENOSPC at begin and at
 *   commit too (the disk filled to a chosen margin);
 * - snap-trace-helper run under strace: every file a rename makes visible
 *   was fsynced first and its directory after, and what a complete
 *   manifest names (pack, pack index, snapshot index, the directories
 *   holding them, the parent) is durable before the manifest is renamed
 *   in; a delete removes only what no manifest names.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "snapshot/repo.h"

#define PG SNAP_PAGE_SIZE

static const uint8_t uuid[16] = {0xd1, 0x5c};
static char err[1024];
static char base[PATH_MAX / 4]; /* the test's directory */
static char mnt[PATH_MAX / 4];	/* the file system under test, mounted here */
static char repo[PATH_MAX / 4];
static bool mounted;

/* snprintf through a va_list: paths here are far below their buffers. */
static void pathf(char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

static void setup(void)
{
	pathf(base, sizeof(base), "/var/tmp/test-snapdisk.XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	pathf(mnt, sizeof(mnt), "%s/mnt", base);
	pathf(repo, sizeof(repo), "%s/repo", mnt);
	cr_assert_eq(mkdir(mnt, 0700), 0);
}

static void teardown(void)
{
	char cmd[PATH_MAX];

	if (mounted) {
		umount2(mnt, MNT_DETACH);
		pathf(cmd, sizeof(cmd), "%s/thin", base);
		umount2(cmd, MNT_DETACH); /* FS_THIN's; EINVAL otherwise */
	}
	pathf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(snapshot_disk, .init = setup, .fini = teardown, .timeout = 300);

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

enum fs_kind {
	FS_EXT4,
	FS_TMPFS,
	/* ext4 (no journal) on a 64 MiB sparse image in a 4 MiB tmpfs: the
	 * file system sees room that is not there, so writes succeed and
	 * the writeback at fsync fails (the loop device's ENOSPC) */
	FS_THIN,
};

/*
 * Mounts the file system under test in a mount namespace of this test's
 * process alone: a test that dies cannot leave it mounted on the host.
 * Skips (with the reason) where mounting is not allowed.
 */
static void mount_fs(enum fs_kind kind)
{
	char img[PATH_MAX];

	if (unshare(CLONE_NEWNS) < 0)
		cr_skip_test("cannot make a mount namespace (%s): not root?", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		cr_skip_test("cannot make / private in the namespace: %s", strerror(errno));
	if (kind == FS_TMPFS) {
		if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m") < 0)
			cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
		mounted = true;
		return;
	}
	pathf(img, sizeof(img), "%s/img", base);
	if (kind == FS_THIN) {
		pathf(img, sizeof(img), "%s/thin", base);
		cr_assert_eq(mkdir(img, 0700), 0);
		if (mount("tmpfs", img, "tmpfs", 0, "size=4m") < 0)
			cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
		pathf(img, sizeof(img), "%s/thin/img", base);
	}
	if (run("truncate -s 64M '%s' && mkfs.ext4 -q -F -m 0 %s '%s' >/dev/null 2>&1", img,
		kind == FS_THIN ? "-O ^has_journal" : "", img))
		cr_skip_test("mkfs.ext4 failed (e2fsprogs missing?)");
	/* discard: what ext4 frees goes back to the thin image's tmpfs */
	if (run("mount -o loop,discard '%s' '%s' 2>/dev/null", img, mnt))
		cr_skip_test("cannot mount a loop ext4 here (no loop devices?)");
	mounted = true;
}

/* Free bytes once what was freed is accounted (ext4 frees at commit). */
static uint64_t free_bytes(void)
{
	struct statvfs sv;
	int fd = open(mnt, O_RDONLY | O_DIRECTORY);

	cr_assert_geq(fd, 0);
	syncfs(fd);
	close(fd);
	cr_assert_eq(statvfs(mnt, &sv), 0);
	return (uint64_t)sv.f_bfree * sv.f_frsize;
}

static void fill(uint8_t *mem, uint64_t npages, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;

	for (uint64_t i = 0; i < npages * PG / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(mem + i * 8, &x, 8);
	}
}

static struct snap_repo *open_repo(void)
{
	struct snap_repo_opts o = {.create = true};
	struct snap_repo *r;

	cr_assert_eq(snap_repo_open(repo, &o, &r, err, sizeof(err)), 0, "open: %s", err);
	return r;
}

/* Takes name (parent may be NULL) of npages, putting mem's first put
 * pages (a multiple of 64); the first failure's -errno. */
static int take_part(struct snap_repo *r, const char *name, const char *parent, const uint8_t *mem,
		     uint64_t npages, uint64_t put)
{
	struct snap_writer *w;
	int rc;

	rc = snap_begin(r, uuid, name, parent, npages, &w, err, sizeof(err));
	if (rc)
		return rc;
	for (uint64_t p = 0; p < put; p += 64) {
		const void *pages[64];
		uint64_t pfns[64];

		for (uint32_t k = 0; k < 64; k++) {
			pfns[k] = p + k;
			pages[k] = mem + (p + k) * PG;
		}
		rc = snap_put(w, pfns, pages, 64);
		if (rc) {
			snap_abort(w);
			return rc;
		}
	}
	return snap_commit(w, NULL);
}

static int take(struct snap_repo *r, const char *name, const char *parent, const uint8_t *mem,
		uint64_t npages)
{
	return take_part(r, name, parent, mem, npages, npages);
}

static void expect(struct snap_repo *r, const char *name, const uint8_t *mem, uint64_t npages)
{
	static uint8_t buf[PG];
	enum snap_page_kind kind;
	struct snap_view *v;

	cr_assert_eq(snap_view_open(r, uuid, name, &v, err, sizeof(err)), 0, "%s", err);
	for (uint64_t pfn = 0; pfn < npages; pfn++) {
		cr_assert_eq(snap_view_read(v, pfn, buf, &kind, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(memcmp(buf, mem + pfn * PG, PG), 0, "%s: pfn %lu differs", name,
			     (unsigned long)pfn);
	}
	snap_view_close(v);
}

static void expect_list(struct snap_repo *r, int first, int n)
{
	struct snap_info *list;
	char want[16];
	size_t got;

	cr_assert_eq(snap_list(r, uuid, &list, &got), 0);
	cr_assert_eq(got, (size_t)n, "%zu snapshots listed, want %d", got, n);
	for (int i = 0; i < n; i++) {
		pathf(want, sizeof(want), "s%d", first + i);
		cr_assert_str_eq(list[i].name, want);
		cr_assert(list[i].complete, "%s listed incomplete", want);
	}
	free(list);
}

static void expect_enospc(int rc)
{
	cr_assert_eq(rc, -ENOSPC, "rc %d (%s), want -ENOSPC", rc, err);
	cr_assert_not_null(strstr(err, repo), "the message names no file: %s", err);
	cr_assert_not_null(strstr(err, strerror(ENOSPC)), "%s", err);
	cr_log_info("%s", err);
}

/*
 * Snapshots s0, s1, ... of npages each (every page new: a chain whose
 * steps change all memory) until the disk is full; then the checks.
 */
static void fill_the_disk(uint64_t npages)
{
	size_t size = npages * PG;
	uint8_t *mem[64];
	struct snap_repo *r = open_repo();
	uint64_t before, after;
	char name[16], parent[16];
	int n = 0, rc;

	for (;; n++) {
		cr_assert_lt(n, 64, "the disk never filled");
		mem[n] = malloc(size);
		cr_assert_not_null(mem[n]);
		fill(mem[n], npages, (uint64_t)n + 1);
		pathf(name, sizeof(name), "s%d", n);
		pathf(parent, sizeof(parent), "s%d", n - 1);
		before = free_bytes();
		rc = take(r, name, n ? parent : NULL, mem[n], npages);
		if (rc)
			break;
	}
	cr_log_info("%d snapshots of %.1f MiB fit; s%d failed: %s", n, (double)size / (1 << 20), n,
		    err);
	cr_assert_geq(n, 2, "only %d snapshots fit", n);
	expect_enospc(rc);
	expect_list(r, 0, n);
	after = free_bytes();
	cr_assert_geq(after + 64 * 1024, before,
		      "the failed snapshot kept %.1f KiB (free %lu before, %lu after)",
		      (double)(before - after) / 1024, (unsigned long)before, (unsigned long)after);
	snap_repo_close(r);

	r = open_repo();
	expect_list(r, 0, n);
	for (int i = 0; i < n; i++)
		expect(r, (pathf(name, sizeof(name), "s%d", i), name), mem[i], npages);
	/* Deleting the oldest frees its pages (s1 replaced all of them). */
	cr_assert_eq(snap_delete(r, uuid, "s0", err, sizeof(err)), 0, "%s", err);
	pathf(name, sizeof(name), "s%d", n);
	pathf(parent, sizeof(parent), "s%d", n - 1);
	rc = take(r, name, parent, mem[n], npages);
	cr_assert_eq(rc, 0, "after freeing space: %s", err);
	expect_list(r, 1, n);
	snap_repo_close(r);
	r = open_repo();
	for (int i = 1; i <= n; i++)
		expect(r, (pathf(name, sizeof(name), "s%d", i), name), mem[i], npages);
	snap_repo_close(r);
	for (int i = 0; i <= n; i++)
		free(mem[i]);
}

/* Fills the disk with a file, then frees all but margin bytes of it. */
static int fill_but(uint64_t margin)
{
	static uint8_t chunk[1 << 16];
	char path[PATH_MAX];
	int fd;
	off_t size = 0;

	memset(chunk, 0x5a, sizeof(chunk));
	pathf(path, sizeof(path), "%s/filler", mnt);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	/* big writes, then blocks: the last ones fit where a big one failed */
	for (size_t len = sizeof(chunk); len >= PG; len /= 16) {
		for (;;) {
			ssize_t n = write(fd, chunk, len);

			if (n <= 0)
				break;
			size += n;
		}
		cr_assert_eq(errno, ENOSPC);
		fsync(fd);
	}
	cr_assert_eq(ftruncate(fd, size - (off_t)margin), 0);
	fsync(fd);
	return fd;
}

static void filler_free(int fd)
{
	cr_assert_eq(ftruncate(fd, 0), 0);
	close(fd);
}

/*
 * ENOSPC at snap_begin (no room for the manifest) and at snap_commit
 * (pages all deduplicated, so the pack takes nothing, but no room for
 * the snapshot index): refused naming the file, nothing left behind.
 */
static void full_at_begin_and_commit(uint64_t npages)
{
	uint8_t *mem = malloc(npages * PG);
	struct snap_repo *r;
	uint64_t before;
	int fd, rc;

	fill(mem, npages, 42);
	r = open_repo();
	cr_assert_eq(take(r, "s0", NULL, mem, npages), 0, "%s", err);

	fd = fill_but(0);
	before = free_bytes();
	rc = take(r, "s1", "s0", mem, npages);
	expect_enospc(rc);
	cr_assert_not_null(strstr(err, "s1.manifest"), "not the manifest: %s", err);
	expect_list(r, 0, 1);
	cr_assert_geq(free_bytes(), before);
	filler_free(fd);

	/* room for the manifest and the pack index (a block each), not for
	 * the snapshot index (16 bytes per pfn, 16 KiB or more) */
	fd = fill_but(12 * 1024);
	before = free_bytes();
	rc = take(r, "s1", "s0", mem, npages);
	expect_enospc(rc);
	cr_assert_not_null(strstr(err, "s1.1.idx"), "not the snapshot index: %s", err);
	expect_list(r, 0, 1);
	cr_assert_geq(free_bytes(), before);
	filler_free(fd);

	snap_repo_close(r);
	r = open_repo();
	expect_list(r, 0, 1);
	expect(r, "s0", mem, npages);
	cr_assert_eq(take(r, "s1", "s0", mem, npages), 0, "%s", err);
	expect(r, "s1", mem, npages);
	snap_repo_close(r);
	free(mem);
}

/*
 * A delete on a full disk (a schedule pruning when the disk filled): the
 * child's merged index cannot be written, so the delete fails naming it
 * and both snapshots read as before; with room again it succeeds.
 */
static void full_at_delete(uint64_t npages)
{
	uint8_t *mem = malloc(npages * PG);
	struct snap_repo *r;
	int fd, rc;

	fill(mem, npages, 7);
	r = open_repo();
	cr_assert_eq(take(r, "s0", NULL, mem, npages), 0, "%s", err);
	fill(mem, 64, 8); /* s1 sets 64 pfns, s0 the rest */
	cr_assert_eq(take_part(r, "s1", "s0", mem, npages, 64), 0, "%s", err);
	fill(mem, 64, 7);

	fd = fill_but(12 * 1024); /* the merged index is 16 bytes a pfn */
	rc = snap_delete(r, uuid, "s0", err, sizeof(err));
	expect_enospc(rc);
	cr_assert_not_null(strstr(err, "s1.2.idx"), "not the merged index: %s", err);
	expect_list(r, 0, 2);
	expect(r, "s0", mem, npages);
	snap_repo_close(r);
	r = open_repo();
	expect_list(r, 0, 2);
	expect(r, "s0", mem, npages);
	fill(mem, 64, 8);
	expect(r, "s1", mem, npages);
	filler_free(fd);

	cr_assert_eq(snap_delete(r, uuid, "s0", err, sizeof(err)), 0, "%s", err);
	expect_list(r, 1, 1);
	expect(r, "s1", mem, npages);
	snap_repo_close(r);
	free(mem);
}

Test(snapshot_disk, ext4_full_at_delete_keeps_both)
{
	mount_fs(FS_EXT4);
	full_at_delete(4096);
}

Test(snapshot_disk, tmpfs_full_at_delete_keeps_both)
{
	mount_fs(FS_TMPFS);
	full_at_delete(1024);
}

Test(snapshot_disk, ext4_filled_by_snapshots_keeps_every_complete_one)
{
	mount_fs(FS_EXT4);
	fill_the_disk(2048); /* 8 MiB each on 54 MiB */
}

Test(snapshot_disk, tmpfs_filled_by_snapshots_keeps_every_complete_one)
{
	mount_fs(FS_TMPFS);
	fill_the_disk(256); /* 1 MiB each on 8 MiB */
}

Test(snapshot_disk, ext4_full_at_begin_and_at_commit_leaves_nothing_behind)
{
	mount_fs(FS_EXT4);
	full_at_begin_and_commit(4096);
}

Test(snapshot_disk, tmpfs_full_at_begin_and_at_commit_leaves_nothing_behind)
{
	mount_fs(FS_TMPFS);
	full_at_begin_and_commit(1024);
}

/* The trace checker: a model of what is durable, fed strace -y lines. */

#define TPATH  512
#define TNODES 512

struct tnode {
	char path[TPATH];
	char text[TPATH]; /* a manifest's contents (strace's escapes kept) */
	bool exists;
	bool dirty;   /* written since its last fsync */
	bool data;    /* ever written */
	bool pending; /* its entry in its directory not synced since it changed */
};

struct tmodel {
	struct tnode n[TNODES];
	int count;
	char root[TPATH];  /* the repository: checked up to its own entry */
	char await[TPATH]; /* a directory owed an fsync after a rename */
	char why[1024];	   /* the first violation */
	int bad;
	int manifests, packs_removed; /* complete manifests checked, packs removed */
	int states;		      /* of which naming a state */
};

static void violation(struct tmodel *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(struct tmodel *m, const char *fmt, ...)
{
	va_list ap;

	if (!m->bad++) {
		va_start(ap, fmt);
		vsnprintf(m->why, sizeof(m->why), fmt, ap);
		va_end(ap);
	}
}

static struct tnode *node(struct tmodel *m, const char *path)
{
	for (int i = 0; i < m->count; i++)
		if (!strcmp(m->n[i].path, path))
			return &m->n[i];
	cr_assert_lt(m->count, TNODES);
	memset(&m->n[m->count], 0, sizeof(m->n[0]));
	pathf(m->n[m->count].path, TPATH, "%s", path);
	return &m->n[m->count++];
}

static void dir_of(const char *path, char *out)
{
	const char *slash = strrchr(path, '/');

	pathf(out, TPATH, "%.*s", slash ? (int)(slash - path) : 0, path);
}

/* path's data and its entry, and every directory's up to and including
 * the repository's own entry, are on disk. */
static bool durable(struct tmodel *m, const char *path, char *what)
{
	char p[TPATH];
	size_t rl = strlen(m->root);

	pathf(p, sizeof(p), "%s", path);
	if (node(m, p)->dirty) {
		pathf(what, TPATH, "%s was not fsynced after its last write", p);
		return false;
	}
	for (;;) {
		struct tnode *n = node(m, p);

		if (n->pending) {
			pathf(what, TPATH,
			      "the entry of %s was not made durable (no fsync of its "
			      "directory after it changed)",
			      p);
			return false;
		}
		if (strlen(p) <= rl)
			return true;
		dir_of(n->path, p);
	}
}

/* The value of "key " in an escaped manifest text ("...\\nkey value\\n..."). */
static bool field(const char *text, const char *key, char *out, size_t len)
{
	char k[64];
	const char *s, *e;

	pathf(k, sizeof(k), "\\n%s ", key);
	s = strstr(text, k);
	if (!s)
		return false;
	s += strlen(k);
	e = strstr(s, "\\n");
	pathf(out, len, "%.*s", e ? (int)(e - s) : (int)strlen(s), s);
	return true;
}

static bool complete(const struct tnode *n)
{
	return n->exists && strstr(n->text, "\\nstate complete\\n");
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

/* A complete manifest renamed in: what it names is durable. */
static void check_manifest(struct tmodel *m, const char *path, const struct tnode *mf)
{
	char dir[TPATH], f[TPATH], what[TPATH], name[SNAP_NAME_MAX + 1], pack[16], gen[24];
	struct tnode *n;

	m->manifests++;
	dir_of(path, dir);
	if (!field(mf->text, "name", name, sizeof(name)) ||
	    !field(mf->text, "pack", pack, sizeof(pack)) ||
	    !field(mf->text, "index-gen", gen, sizeof(gen))) {
		violation(m, "%s: a manifest without name, pack or index-gen: %s", path, mf->text);
		return;
	}
	pathf(f, sizeof(f), "%s/%s.%s.idx", dir, name, gen);
	if (!node(m, f)->exists)
		violation(m, "%s renamed in before its index %s exists", path, f);
	else if (!durable(m, f, what))
		violation(m, "%s renamed in before its index was durable: %s", path, what);
	if (strcmp(pack, "none")) {
		pathf(f, sizeof(f), "%s/packs/%s.idx", m->root, pack);
		if (!node(m, f)->exists)
			violation(m, "%s renamed in before its pack index %s exists", path, f);
		else if (!durable(m, f, what))
			violation(m, "%s renamed in before its pack index was durable: %s", path,
				  what);
		pathf(f, sizeof(f), "%s/packs/%s.pack", m->root, pack);
		n = node(m, f);
		if (n->data && !durable(m, f, what))
			violation(m, "%s renamed in before its pages were durable: %s", path, what);
	}
	if (strstr(mf->text, "\\ndomain-state-sha256 ")) {
		pathf(f, sizeof(f), "%s/%s.state", dir, name);
		m->states++;
		if (!node(m, f)->exists || !durable(m, f, what))
			violation(m, "%s renamed in naming a state %s that is not durable", path,
				  f);
	}
	if (field(mf->text, "parent", name, sizeof(name))) {
		pathf(f, sizeof(f), "%s/%s.manifest", dir, name);
		if (!complete(node(m, f)) || !durable(m, f, what))
			violation(m,
				  "%s renamed in naming parent %s, which is not complete and "
				  "durable",
				  path, f);
	}
}

static void on_rename(struct tmodel *m, const char *a, const char *b)
{
	struct tnode *from = node(m, a), *to;

	if (from->dirty)
		violation(m, "rename %s -> %s before %s was fsynced", a, b, a);
	if (ends_with(b, ".idx") && strstr(b, "/packs/")) {
		char pack[TPATH];

		pathf(pack, sizeof(pack), "%.*s.pack", (int)(strlen(b) - 4), b);
		/* its entry may wait for the directory sync that follows: a pack
		 * index without a complete manifest is reclaimed at open */
		if (node(m, pack)->dirty)
			violation(m, "pack index %s renamed in before its pack %s was fsynced", b,
				  pack);
	}
	to = node(m, b);
	pathf(to->text, TPATH, "%s", from->text);
	to->exists = true;
	to->dirty = from->dirty;
	to->data = from->data;
	to->pending = true;
	from->exists = false;
	from->pending = true;
	from->dirty = from->data = false;
	if (ends_with(b, ".manifest") && complete(to))
		check_manifest(m, b, to);
	dir_of(b, m->await);
}

static void on_unlink(struct tmodel *m, const char *p)
{
	char dir[TPATH], f[TPATH], what[TPATH], v[SNAP_NAME_MAX + 1], base_[TPATH];
	struct tnode *n = node(m, p);

	dir_of(p, dir);
	pathf(base_, sizeof(base_), "%s", p + strlen(dir) + 1);
	for (int i = 0; i < m->count; i++) {
		struct tnode *mf = &m->n[i];

		if (!complete(mf) || !ends_with(mf->path, ".manifest") || mf == n)
			continue;
		/* a pack with pages that a complete manifest names */
		if (ends_with(p, ".pack") && n->data && field(mf->text, "pack", v, sizeof(v)) &&
		    !strncmp(base_, v, strlen(v)) && base_[strlen(v)] == '.')
			violation(m, "%s removed while %s names its pack", p, mf->path);
		/* a snapshot index its manifest names */
		if (ends_with(p, ".idx") && !strstr(p, "/packs/") &&
		    field(mf->text, "name", v, sizeof(v))) {
			char g[24];

			pathf(f, sizeof(f), "%s/%s.", dir, v);
			if (field(mf->text, "index-gen", g, sizeof(g)) &&
			    !strncmp(p, f, strlen(f)) && !strncmp(p + strlen(f), g, strlen(g)) &&
			    !strcmp(p + strlen(f) + strlen(g), ".idx"))
				violation(m, "%s removed while %s names it", p, mf->path);
		}
		/* a state its manifest names */
		if (ends_with(p, ".state") && strstr(mf->text, "\\ndomain-state-sha256 ") &&
		    field(mf->text, "name", v, sizeof(v))) {
			pathf(f, sizeof(f), "%s/%s.state", dir, v);
			if (!strcmp(f, p))
				violation(m, "%s removed while %s names it", p, mf->path);
		}
		/* a manifest: its children took over its entries, durably */
		if (ends_with(p, ".manifest") && mf->exists && !durable(m, mf->path, what))
			violation(m, "%s removed before %s was durable: %s", p, mf->path, what);
		if (ends_with(p, ".manifest") && field(mf->text, "parent", v, sizeof(v))) {
			pathf(f, sizeof(f), "%s/%s.manifest", dir, v);
			if (!strcmp(f, p))
				violation(m, "%s removed while %s names it as parent", p, mf->path);
		}
	}
	if (ends_with(p, ".pack")) {
		m->packs_removed++;
		pathf(f, sizeof(f), "%.*s.idx", (int)(strlen(p) - 5), p);
		if (node(m, f)->exists)
			violation(m,
				  "%s removed before its index %s (a pack without an index is "
				  "partial: the index goes first)",
				  p, f);
	}
	n->exists = false;
	n->pending = true;
	n->dirty = n->data = false;
}

static void on_fsync(struct tmodel *m, const char *p)
{
	struct tnode *n = node(m, p);

	n->dirty = false;
	for (int i = 0; i < m->count; i++) {
		char d[TPATH];

		dir_of(m->n[i].path, d);
		if (!strcmp(d, p))
			m->n[i].pending = false;
	}
	if (!strcmp(m->await, p))
		m->await[0] = 0;
}

/* The text between the first '<' after start and its '>'. */
static bool fd_path(const char *start, char *out)
{
	const char *s = strchr(start, '<'), *e;

	if (!s || !(e = strchr(s, '>')))
		return false;
	pathf(out, TPATH, "%.*s", (int)(e - s - 1), s + 1);
	return true;
}

/* The i-th (0-based) quoted string's raw (escaped) text. */
static bool quoted(const char *line, int i, char *out, size_t len)
{
	const char *s = line;

	for (;;) {
		const char *e;

		s = strchr(s, '"');
		if (!s)
			return false;
		for (e = s + 1; *e && *e != '"'; e++)
			if (*e == '\\' && e[1])
				e++;
		if (!*e)
			return false;
		if (!i--) {
			pathf(out, len, "%.*s", (int)(e - s - 1), s + 1);
			return true;
		}
		s = e + 1;
	}
}

static bool in_repo(const struct tmodel *m, const char *p)
{
	size_t n = strlen(m->root);

	return !strncmp(p, m->root, n) && (!p[n] || p[n] == '/');
}

/* One line of `strace -f -y -s 4096`: "PID name(args) = result". */
static void trace_line(struct tmodel *m, const char *line)
{
	char name[32], a[TPATH], b[TPATH];
	const char *args, *res;
	int n = 0;

	if (sscanf(line, "%*d %31[a-z0-9_](%n", name, &n) != 1 || !n)
		return;
	args = line + n;
	res = strstr(line, ") = ");
	if (!res || res[4] == '-' || res[4] == '?')
		return; /* failed, or unfinished */
	if (!strcmp(name, "openat")) {
		if (strstr(args, "O_CREAT") && fd_path(res, a) && in_repo(m, a)) {
			struct tnode *t = node(m, a);

			if (!t->exists) {
				t->exists = t->pending = true;
				t->text[0] = 0;
			}
		}
	} else if (!strcmp(name, "write") || !strcmp(name, "pwrite64")) {
		if (fd_path(args, a) && in_repo(m, a)) {
			struct tnode *t = node(m, a);

			t->dirty = t->data = true;
			if (!t->text[0])
				quoted(args, 0, t->text, sizeof(t->text));
		}
	} else if (!strcmp(name, "fsync") || !strcmp(name, "fdatasync")) {
		if (fd_path(args, a))
			on_fsync(m, a);
	} else if (!strncmp(name, "rename", 6) || !strncmp(name, "unlink", 6) ||
		   !strncmp(name, "mkdir", 5)) {
		bool ren = name[0] == 'r';

		if (!quoted(args, 0, a, sizeof(a)) || (ren && !quoted(args, 1, b, sizeof(b))) ||
		    !in_repo(m, ren ? b : a)) {
			if (!strcmp(a, m->root)) /* the repository made: its parent owes a sync */
				node(m, a)->pending = node(m, a)->exists = true;
			return;
		}
		if (m->await[0])
			violation(m, "%s(%s) before %s was fsynced after the last rename into it",
				  name, a, m->await);
		if (ren)
			on_rename(m, a, b);
		else if (name[0] == 'u')
			on_unlink(m, a);
		else
			node(m, a)->pending = node(m, a)->exists = true;
	}
}

/* Feeds a trace to a fresh model of root; the count of violations. */
static int trace_check(struct tmodel *m, const char *root, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;

	memset(m, 0, sizeof(*m));
	pathf(m->root, sizeof(m->root), "%s", root);
	while (getline(&line, &cap, f) > 0)
		trace_line(m, line);
	free(line);
	if (m->await[0])
		violation(m, "the trace ends before %s was fsynced after a rename", m->await);
	for (int i = 0; i < m->count; i++)
		if (m->n[i].pending && !ends_with(m->n[i].path, "/lock") &&
		    strcmp(m->n[i].path, m->root))
			violation(m, "the trace ends with the entry of %s not durable",
				  m->n[i].path);
	return m->bad;
}

static struct tmodel model;

/* A trace of the expected shape, with one line left out or moved. */
static const char *const good_trace[] = {
	"1 mkdir(\"/r/packs\", 0700) = 0",
	"1 mkdir(\"/r/snaps\", 0700) = 0",
	"1 openat(AT_FDCWD</>, \"/r\", O_RDONLY|O_DIRECTORY) = 3</r>",
	"1 fsync(3</r>) = 0",
	"1 mkdir(\"/r/snaps/u\", 0700) = 0",
	"1 fsync(4</r/snaps>) = 0",
	"1 openat(AT_FDCWD</>, \"/r/packs/00000001.pack\", O_WRONLY|O_CREAT|O_EXCL) = "
	"4</r/packs/00000001.pack>",
	"1 pwrite64(4</r/packs/00000001.pack>, \"\\1\\2\"..., 4096, 0) = 4096",
	"1 fsync(4</r/packs/00000001.pack>) = 0",
	"1 openat(AT_FDCWD</>, \"/r/packs/.00000001.idx.tmp-a\", O_RDWR|O_CREAT|O_EXCL) = "
	"5</r/packs/.00000001.idx.tmp-a>",
	"1 write(5</r/packs/.00000001.idx.tmp-a>, \"FRSNPAK1\", 8) = 8",
	"1 fsync(5</r/packs/.00000001.idx.tmp-a>) = 0",
	"1 rename(\"/r/packs/.00000001.idx.tmp-a\", \"/r/packs/00000001.idx\") = 0",
	"1 fsync(6</r/packs>) = 0",
	"1 openat(AT_FDCWD</>, \"/r/snaps/u/.s.1.idx.tmp-b\", O_RDWR|O_CREAT|O_EXCL) = "
	"5</r/snaps/u/.s.1.idx.tmp-b>",
	"1 write(5</r/snaps/u/.s.1.idx.tmp-b>, \"FRSNIDX1\", 8) = 8",
	"1 fsync(5</r/snaps/u/.s.1.idx.tmp-b>) = 0",
	"1 rename(\"/r/snaps/u/.s.1.idx.tmp-b\", \"/r/snaps/u/s.1.idx\") = 0",
	"1 fsync(6</r/snaps/u>) = 0",
	"1 openat(AT_FDCWD</>, \"/r/snaps/u/.s.manifest.tmp-c\", O_RDWR|O_CREAT|O_EXCL) = "
	"5</r/snaps/u/.s.manifest.tmp-c>",
	"1 write(5</r/snaps/u/.s.manifest.tmp-c>, \"ferry-snapshot-manifest 1\\nname s\\nstate "
	"complete\\npack 00000001\\nindex-gen 1\\n\", 70) = 70",
	"1 fsync(5</r/snaps/u/.s.manifest.tmp-c>) = 0",
	"1 rename(\"/r/snaps/u/.s.manifest.tmp-c\", \"/r/snaps/u/s.manifest\") = 0",
	"1 fsync(6</r/snaps/u>) = 0",
};
#define GOOD_LINES (sizeof(good_trace) / sizeof(good_trace[0]))

static int check_lines(int skip, int move_to_end)
{
	FILE *f = tmpfile();

	cr_assert_not_null(f);
	for (int i = 0; i < (int)GOOD_LINES; i++)
		if (i != skip && i != move_to_end)
			fprintf(f, "%s\n", good_trace[i]);
	if (move_to_end >= 0)
		fprintf(f, "%s\n", good_trace[move_to_end]);
	rewind(f);
	trace_check(&model, "/r", f);
	fclose(f);
	return model.bad;
}

Test(snapshot_trace, the_checker_finds_each_missing_or_late_fsync)
{
	/* every fsync line of the good trace, and the rename-then-sync pairs */
	static const int fsyncs[] = {3, 5, 8, 11, 13, 16, 18, 21, 23};

	cr_assert_eq(check_lines(-1, -1), 0, "the good trace: %s", model.why);
	for (size_t i = 0; i < sizeof(fsyncs) / sizeof(fsyncs[0]); i++) {
		cr_assert_gt(check_lines(fsyncs[i], -1), 0, "without \"%s\": no violation",
			     good_trace[fsyncs[i]]);
		cr_log_info("without line %d: %s", fsyncs[i], model.why);
	}
	/* the pack synced only after its index is in */
	cr_assert_gt(check_lines(-1, 8), 0);
	cr_assert_not_null(strstr(model.why, "00000001.pack"), "%s", model.why);
}

/* base (setup's, removed by teardown even when an assertion fails) */
Test(snapshot_trace, commit_and_delete_sync_before_each_rename_and_the_directory_after,
     .init = setup, .fini = teardown)
{
	char root[PATH_MAX / 4], trace[PATH_MAX], err2[256];
	struct snap_repo *r;
	struct snap_info *list;
	size_t n;
	FILE *f;
	int rc;

	pathf(root, sizeof(root), "%s/repo", base);
	pathf(trace, sizeof(trace), "%s/trace", base);
	if (run("strace -V >/dev/null 2>&1"))
		cr_skip_test("no strace (scripts/deps.sh installs it)");
	/* LeakSanitizer cannot run under ptrace: an ASan build's helper
	 * would fail at exit */
	rc = run("ASAN_OPTIONS=detect_leaks=0 strace -f -y -s 4096 -e "
		 "trace=openat,write,pwrite64,fsync,fdatasync,rename,"
		 "renameat,renameat2,unlink,unlinkat,mkdir,mkdirat -o '%s' "
		 "'%s/tests/snap-trace-helper' '%s'",
		 trace, FERRY_BUILD_DIR, root);
	cr_assert_eq(rc, 0, "snap-trace-helper under strace: %d", rc);

	f = fopen(trace, "r");
	cr_assert_not_null(f);
	rc = trace_check(&model, root, f);
	fclose(f);
	cr_assert_eq(rc, 0, "%d violations; the first: %s", rc, model.why);
	/* the trace saw what it should: four commits and c2's adoption, two
	 * packs gone (c1's, and same's that stored nothing) */
	cr_assert_eq(model.manifests, 5);
	cr_assert_eq(model.states, 2, "c2's manifest named its state %d times", model.states);
	cr_assert_eq(model.packs_removed, 2);

	/* and the repository it left reads as the helper wrote it */
	cr_assert_eq(snap_repo_open(root, NULL, &r, err2, sizeof(err2)), 0, "%s", err2);
	cr_assert_eq(snap_list(r, NULL, &list, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(list[0].name, "base");
	cr_assert_str_eq(list[1].name, "c2");
	cr_assert_str_eq(list[1].parent, "base");
	cr_assert_str_eq(list[2].name, "same");
	free(list);
	snap_repo_close(r);
}

/*
 * ENOSPC at fsync, as a thin-provisioned or network disk gives it: the
 * pages went into the page cache, the commit's fsync of the pack fails.
 * The commit says so naming the pack; the snapshot is gone, the one
 * before reads page for page, and once the space is back (the partial
 * pack's blocks discarded) a new snapshot works.
 */
Test(snapshot_disk, enospc_at_fsync_fails_the_commit_naming_the_pack)
{
	uint8_t *small = malloc(64 * PG), *big = malloc(2048 * PG);
	struct snap_repo *r;
	int rc;

	mount_fs(FS_THIN);
	fill(small, 64, 1);
	fill(big, 2048, 2); /* 8 MiB: more than the 4 MiB below */
	r = open_repo();
	cr_assert_eq(take(r, "s0", NULL, small, 64), 0, "%s", err);
	rc = take(r, "s1", "s0", big, 2048);
	expect_enospc(rc);
	cr_assert_not_null(strstr(err, ".pack"), "not the pack: %s", err);
	cr_assert_not_null(strstr(err, "syncing"), "not at fsync: %s", err);
	expect_list(r, 0, 1);
	snap_repo_close(r);

	r = open_repo();
	expect_list(r, 0, 1);
	expect(r, "s0", small, 64);
	fill(small, 64, 3);
	cr_assert_eq(take(r, "s1", "s0", small, 64), 0, "after the space came back: %s", err);
	expect(r, "s1", small, 64);
	snap_repo_close(r);
	free(small);
	free(big);
}
