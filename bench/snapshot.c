// SPDX-License-Identifier: MIT
/*
 * The snapshot repository (snapshot/repo.h) at the library level, for a
 * 1 GiB memory image: a 24-snapshot chain whose steps each change 64 MiB
 * (repository size against 24 full saves), the 64 MiB incremental's bytes
 * and duration (targets: at most 70 MiB written, at most 0.3 s), and the
 * read-back a revert does (every page resolved through the chain and its
 * SHA-256 checked); beside this machine's limits (research/limits.md) and
 * the peers' published figures (research/features.md, checkpoint-ha.md).
 * Then live snapshots (snap_take) of a 1 GiB soft guest, idle and
 * dirtying 256 MiB at 50 and at 200 MiB/s: a full one then incremental
 * ones 2 s apart, each's pause, duration and bytes, and the guest's own
 * write rate during it against the 2 s before (targets: pause at most
 * 5 ms at 50 MiB/s and 10 ms at 200 MiB/s, the guest above half its rate);
 * and one that changed 64 MiB, paused by its user, snapshotted
 * incrementally (at most 70 MiB written, at most 0.3 s).
 * Then reverts of a full snapshot of a 1 GiB soft guest, full and lazy,
 * each timed from the request until the guest runs (the packs in the page
 * cache, then dropped), the lazy one also until every page is in; beside
 * Cloud Hypervisor's and Firecracker's published restore figures.
 * Usage: bench-snapshot [DIR] [repo|live|revert] (default /var/tmp, all)
 * Figures, not a test.
 *
 * The image is data=mix (guests/workloads/mix.c, research/limits.md's
 * mix: 40 % zero pages, code-, text-like and random runs); a step writes
 * 64 MiB of it at a new generation, as a guest rewriting its working set
 * would. A second incremental of 64 MiB of random pages (nothing zero,
 * nothing deduplicated) is the worst case for the 70 MiB / 0.3 s target.
 */
#define _FILE_OFFSET_BITS 64
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "guests/soft.h"
#include "guests/workload.h"
#include "hyp/gmem.h"
#include "hyp/hyp.h"
#include "restore/lazy.h"
#include "restore/restore.h"
#include "snapshot/repo.h"
#include "snapshot/source.h"
#include "snapshot/stream.h"
#include "snapshot/take.h"
#include "bench.h"

/* Only for wl_mix_page: the realistic page contents the workloads use. */
#include "../guests/workloads/internal.h"

#define PG	   SNAP_PAGE_SIZE
#define NPAGES	   (1ull << 18) /* 1 GiB */
#define STEP_PAGES (1ull << 14) /* 64 MiB */
#define CHAIN	   24
#define MIB(x)	   ((double)(x) / (1 << 20))

static const uint8_t uuid[16] = {0xbe, 0x4c};
static char err[1024];

/* A repository a part made under DIR, gone. */
static void rm_repo(const char *repo)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", repo);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", repo);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Bytes the file system holds for the tree at path (st_blocks). */
static uint64_t tree_bytes;
static int tree_add(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)path;
	(void)flag;
	(void)f;
	tree_bytes += (uint64_t)st->st_blocks * 512;
	return 0;
}

static uint64_t du(const char *path)
{
	tree_bytes = 0;
	nftw(path, tree_add, 16, FTW_PHYS);
	return tree_bytes;
}

/* Drops the page cache of the repository's packs (only those files): the
 * read-back then comes from the disk, as a revert after a while does. */
static void drop_packs(const char *repo)
{
	char path[4096];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/packs", repo);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd;

		snprintf(path, sizeof(path), "%s/packs/%s", repo, e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	closedir(d);
}

struct step {
	double secs, commit; /* begin to committed; of which snap_commit */
	struct snap_write_stats st;
};

/* Puts the listed pfns of mem (all when pfns is NULL) as snapshot name. */
static int take(struct snap_repo *r, const char *name, const char *parent, const uint8_t *mem,
		const uint64_t *pfns, uint64_t n, struct step *out)
{
	struct snap_writer *w;
	double t0 = ferry_now_s();
	int rc;

	rc = snap_begin(r, uuid, name, parent, NPAGES, &w, err, sizeof(err));
	if (rc)
		return rc;
	for (uint64_t i = 0; i < n; i += 64) {
		const void *pages[64];
		uint64_t batch[64];
		uint32_t c = n - i < 64 ? (uint32_t)(n - i) : 64;

		for (uint32_t k = 0; k < c; k++) {
			batch[k] = pfns ? pfns[i + k] : i + k;
			pages[k] = mem + batch[k] * PG;
		}
		rc = snap_put(w, batch, pages, c);
		if (rc) {
			snap_abort(w);
			return rc;
		}
	}
	out->commit = ferry_now_s();
	rc = snap_commit(w, &out->st);
	out->secs = ferry_now_s() - t0;
	out->commit = ferry_now_s() - out->commit;
	return rc;
}

/* 64 MiB of the image at generation gen: runs of 16-256 pages, as a
 * working set is laid out, into pfns (STEP_PAGES of them, distinct). */
static void dirty_step(uint8_t *mem, uint8_t *seen, uint64_t *pfns, uint32_t gen)
{
	uint64_t n = 0;

	memset(seen, 0, NPAGES);
	while (n < STEP_PAGES) {
		uint64_t start = next() % NPAGES, run = 16 + next() % 241;

		for (uint64_t p = start; p < start + run && p < NPAGES && n < STEP_PAGES; p++) {
			if (seen[p])
				continue;
			seen[p] = 1;
			wl_mix_page(mem + p * PG, p, gen);
			pfns[n++] = p;
		}
	}
}

/* Reads every page of name and compares it with want; seconds, or < 0;
 * *open_s: of which opening the view (what a lazy restore waits for). */
static double read_back(struct snap_repo *r, const char *name, const uint8_t *want,
			uint64_t *data_pages, double *open_s)
{
	static uint8_t buf[PG];
	enum snap_page_kind kind;
	struct snap_view *v;
	double t0 = ferry_now_s();

	*data_pages = 0;
	if (snap_view_open(r, uuid, name, &v, err, sizeof(err)))
		return -1;
	*open_s = ferry_now_s() - t0;
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (snap_view_read(v, p, buf, &kind, err, sizeof(err)))
			goto fail;
		if (memcmp(buf, want + p * PG, PG)) {
			snprintf(err, sizeof(err), "%s: pfn %#llx differs", name,
				 (unsigned long long)p);
			goto fail;
		}
		*data_pages += kind == SNAP_PAGE_DATA;
	}
	snap_view_close(v);
	return ferry_now_s() - t0;
fail:
	snap_view_close(v);
	return -1;
}

static void print_limits(void)
{
	printf("limits here (research/limits.md): SHA-256 (OpenSSL, SHA-NI) 0.96 GiB/s per page; "
	       "disk write buffered+fsync, mix 0.95 GiB/s (0.86-1.39 by data); read with the "
	       "cache dropped 1.64 GiB/s, direct 1.95 GiB/s; memcpy 3.83 GiB/s\n"
	       "peers (research/features.md, checkpoint-ha.md): QEMU has no incremental RAM "
	       "snapshot (always full; background-snapshot 16 GB in about 30 s); Firecracker "
	       "diff snapshots (developer preview) write the dirty pages but must be merged onto "
	       "the base (snapshot-editor rebase) to resume, a full one pauses about 260 ms per "
	       "512 MiB; Cloud Hypervisor and Xen have no incremental snapshots; CRIU pre-dump "
	       "chains (--prev-images-dir, --auto-dedup), no published figures\n\n");
}

/* One read-back, printed; with cold, the packs' page cache dropped first. */
static int read_figure(struct snap_repo *r, const char *repo, const char *name, const uint8_t *want,
		       bool cold, const char *label)
{
	uint64_t data;
	double t, open_s;

	if (cold)
		drop_packs(repo);
	t = read_back(r, name, want, &data, &open_s);
	if (t < 0)
		return fprintf(stderr, "read-back: %s\n", err), 1;
	printf("  read-back of %s (every page, SHA-256 checked), %s: %.3f s = %.2f GiB/s of "
	       "image, %.2f GiB/s of stored pages (SHA-256 alone: 0.96); the view opened in "
	       "%.1f ms\n",
	       label, cold ? "cache dropped" : "from the page cache", t, 1.0 / t,
	       (double)data * PG / (1 << 30) / t, open_s * 1e3);
	return 0;
}

/* What a revert reads: the last snapshot (resolved through every index of
 * the chain) from the disk and from the page cache, the first from the
 * disk; through a reopened repository, *r. */
static int revert_reads(const char *repo, const uint8_t *last, const uint8_t *first,
			struct snap_repo **r)
{
	struct snap_repo_opts o = {.create = true};

	if (snap_repo_open(repo, &o, r, err, sizeof(err)))
		return fprintf(stderr, "open: %s\n", err), 1;
	return read_figure(*r, repo, "random", last, true, "the last") ||
	       read_figure(*r, repo, "random", last, false, "the last") ||
	       read_figure(*r, repo, "s00", first, true, "the first");
}

/* The chain, its size and the incremental's figures (a run of timed
 * steps one after another, printed as they come). */
static int chain(const char *repo, uint8_t *mem, uint8_t *seen, uint64_t *pfns)
{
	struct snap_repo_opts o = {.create = true};
	struct step steps[CHAIN], worst;
	double inc[CHAIN], com[CHAIN], wbytes = 0, wsecs = 0, t;
	uint64_t nonzero = 0;
	struct snap_repo *r;
	char name[16], parent[16];
	struct bench_stat s;
	uint8_t *first;

	if (snap_repo_open(repo, &o, &r, err, sizeof(err)))
		return fprintf(stderr, "open: %s\n", err), 1;
	for (uint64_t p = 0; p < NPAGES; p++) {
		wl_mix_page(mem + p * PG, p, 0);
		for (size_t k = 0; k < PG; k += 8)
			if (*(uint64_t *)(mem + p * PG + k)) {
				nonzero++;
				break;
			}
	}
	first = malloc(NPAGES * PG);
	if (!first)
		return 1;
	memcpy(first, mem, NPAGES * PG);
	for (int i = 0; i < CHAIN; i++) {
		snprintf(name, sizeof(name), "s%02d", i);
		snprintf(parent, sizeof(parent), "s%02d", i - 1);
		if (i)
			dirty_step(mem, seen, pfns, (uint32_t)i);
		if (take(r, name, i ? parent : NULL, mem, i ? pfns : NULL, i ? STEP_PAGES : NPAGES,
			 &steps[i]))
			return fprintf(stderr, "%s: %s\n", name, err), 1;
		if (i) {
			inc[i - 1] = steps[i].secs;
			com[i - 1] = steps[i].commit;
			wbytes += (double)steps[i].st.bytes;
			wsecs += steps[i].secs;
		}
	}
	printf("1 GiB image (data=mix: %.1f %% zero pages), a chain of %d snapshots, each step "
	       "rewriting 64 MiB:\n",
	       100.0 * (double)(NPAGES - nonzero) / NPAGES, CHAIN);
	printf("  full (s00)     %6.3f s   %7.1f MiB written (%llu stored, %llu zero, %llu "
	       "deduplicated)  %.2f GiB/s of image\n",
	       steps[0].secs, MIB(steps[0].st.bytes), (unsigned long long)steps[0].st.stored,
	       (unsigned long long)steps[0].st.zero, (unsigned long long)steps[0].st.deduped,
	       1.0 / steps[0].secs);
	s = bench_stat(inc, CHAIN - 1);
	printf("  incremental    %6.3f s median (%.3f-%.3f)   %5.1f MiB written on average "
	       "(stored %llu, zero %llu, deduplicated %llu of %llu pages in the last)   "
	       "%.0f MiB/s written\n",
	       s.med, s.min, s.max, MIB(wbytes / (CHAIN - 1)),
	       (unsigned long long)steps[CHAIN - 1].st.stored,
	       (unsigned long long)steps[CHAIN - 1].st.zero,
	       (unsigned long long)steps[CHAIN - 1].st.deduped, STEP_PAGES, MIB(wbytes) / wsecs);
	s = bench_stat(com, CHAIN - 1);
	printf("                 of which snap_commit (fsyncs, indices, manifest): %.3f s median "
	       "(%.3f-%.3f); the rest is hashing, dedup and buffered writes\n",
	       s.med, s.min, s.max);
	s = bench_stat(inc, CHAIN - 1);
	printf("  repository     %7.1f MiB on disk for %d snapshots; 24 full saves: %.0f MiB "
	       "(every page, as xl save writes them), %.0f MiB (zero pages left out): %.1fx / "
	       "%.1fx smaller\n",
	       MIB(du(repo)), CHAIN, 24.0 * 1024, 24.0 * MIB(nonzero * PG),
	       24.0 * 1024 / MIB(du(repo)), 24.0 * MIB(nonzero * PG) / MIB(du(repo)));

	/* the worst case: 64 MiB of pages nothing else holds */
	for (uint64_t i = 0; i < STEP_PAGES; i++) {
		uint64_t p = pfns[i];

		for (size_t k = 0; k < PG; k += 8)
			*(uint64_t *)(mem + p * PG + k) = next() | 1;
	}
	if (take(r, "random", "s23", mem, pfns, STEP_PAGES, &worst))
		return fprintf(stderr, "random: %s\n", err), 1;
	printf("  incremental, 64 MiB of random pages: %.3f s (commit %.3f s), %.1f MiB written "
	       "(%llu stored)  [<= 70 MiB: %s] [<= 0.3 s: %s]\n",
	       worst.secs, worst.commit, MIB(worst.st.bytes), (unsigned long long)worst.st.stored,
	       MIB(worst.st.bytes) <= 70 ? "met" : "MISSED", worst.secs <= 0.3 ? "met" : "MISSED");
	printf("  incremental, 64 MiB of mix (median above): [<= 70 MiB: %s] [<= 0.3 s: %s]\n",
	       MIB(wbytes / (CHAIN - 1)) <= 70 ? "met" : "MISSED", s.med <= 0.3 ? "met" : "MISSED");

	snap_repo_close(r);
	if (revert_reads(repo, mem, first, &r))
		return 1;

	/* pruning as a schedule does: the 12 oldest */
	t = ferry_now_s();
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "s%02d", i);
		if (snap_delete(r, uuid, name, err, sizeof(err)))
			return fprintf(stderr, "delete %s: %s\n", name, err), 1;
	}
	printf("  pruning the 12 oldest: %.3f s (%.3f s each), repository then %.1f MiB\n",
	       ferry_now_s() - t, (ferry_now_s() - t) / 12, MIB(du(repo)));
	snap_repo_close(r);
	free(first);
	return 0;
}

/* ---- live snapshots of a running guest (snap_take) ---------------------- */

#define LIVE_SNAPS 4

/* The dirty workload's write counter: the sum of its pages' generations,
 * read from guest memory (a resumed wl_ctx; the platform is not called). */
static uint64_t guest_writes(const struct hyp_gmem *gm)
{
	static const struct wl_platform plat;
	struct wl_ctx c;
	uint64_t n = 0;

	if (wl_attach(&c, &plat, (uintptr_t)gm->hva, gm->size, ""))
		return 0;
	for (uint64_t i = 0; i < wl_ws_pages(&c); i++)
		n += wl_page_gen(&c, i);
	return n;
}

/* A 1 GiB soft guest running cmdline, ready once its console says so; the
 * pool holds that many 1 GiB guests. */
static int live_guest(struct hyp **h, uint32_t *id, const char *cmdline, unsigned guests)
{
	struct hyp_params p = {.backend = "soft",
			       .memory_bytes = ((uint64_t)guests * 1024 + 128) << 20,
			       .soft_guest = &wl_soft_guest_ops,
			       .pv_backend = &dev_pv_backend_ops,
			       .pv_backend_opaque = bench_pv()};
	struct hyp_dom_config cfg;
	char buf[4096];

	if (hyp_create(&p, h))
		return -1;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "snap");
	snprintf(cfg.backend, sizeof(cfg.backend), "soft");
	snprintf(cfg.cmdline, sizeof(cfg.cmdline), "%s", cmdline);
	cfg.memory_mb = cfg.maxmem_mb = 1024;
	cfg.vcpus = 1;
	if (hyp_domain_create(*h, &cfg, false, id))
		return -1;
	for (int i = 0; i < 500; i++) {
		size_t got = 0;

		if (!hyp_console_read(*h, *id, buf, sizeof(buf) - 1, &got)) {
			buf[got] = 0;
			if (strstr(buf, "workload:") || strstr(buf, "idle:"))
				return 0;
		}
		bench_sleep(0.02);
	}
	fprintf(stderr, "%s: the workload did not start\n", cmdline);
	return -1;
}

/* One snap_take's figures on a line (the caller may add to it). */
static void print_live(const char *label, const char *name, const struct snap_take_report *rep)
{
	printf("  %-12s %s %-4s pause %6.2f ms  duration %6.3f s  %7.1f MiB written "
	       "(%llu pages: %llu stored, %llu zero, %llu deduplicated; %u rounds + %llu paused "
	       "pages)",
	       label, name, rep->incremental ? "inc" : "full", rep->pause_s * 1e3, rep->seconds,
	       MIB(rep->bytes), (unsigned long long)rep->pages, (unsigned long long)rep->stored,
	       (unsigned long long)rep->zero, (unsigned long long)rep->deduped, rep->rounds,
	       (unsigned long long)rep->final_pages);
}

/*
 * One scenario: LIVE_SNAPS snapshots 2 s apart through one chain, each
 * printed; the worst pause and the lowest rate ratio against the target
 * (long: a timed sequence, printed as it goes).
 */
static int live(const char *dir, const char *label, const char *cmdline, double warm_s,
		double pause_ms_target)
{
	struct snap_repo_opts ro = {.create = true};
	struct snap_take_report rep;
	double worst = 0, ratio = 1e9, quiet = 0;
	struct snap_chain *c = NULL;
	struct hyp_domain *d = NULL;
	struct snap_repo *r = NULL;
	struct hyp_gmem gm;
	struct hyp *h = NULL;
	char repo[4096], name[16];
	uint32_t id;
	int rc = 1;

	snprintf(repo, sizeof(repo), "%s/ferry-bench-snaplive.XXXXXX", dir);
	if (!mkdtemp(repo) || live_guest(&h, &id, cmdline, 1) || hyp_domain_get(h, id, &d) ||
	    snap_repo_open(repo, &ro, &r, err, sizeof(err)) || snap_chain_new(&c))
		goto out;
	hyp_domain_gmem(d, &gm);
	bench_sleep(warm_s);
	for (int i = 0; i < LIVE_SNAPS; i++) {
		struct snap_take_opts o = {.name = name, .config_json = "{}", .chain = c};
		uint64_t w0 = guest_writes(&gm), w1;
		double t0 = ferry_now_s(), t1, during;

		snprintf(name, sizeof(name), "l%d", i);
		if (snap_take(h, id, r, uuid, &o, &rep, err, sizeof(err))) {
			fprintf(stderr, "%s %s: %s\n", label, name, err);
			goto out;
		}
		t1 = ferry_now_s();
		w1 = guest_writes(&gm);
		during = (double)(w1 - w0) * PG / (1 << 20) / (t1 - t0);
		print_live(label, name, &rep);
		if (quiet > 0)
			printf("  guest %.0f MiB/s during, %.0f before", during, quiet);
		printf("\n");
		if (rep.pause_s > worst)
			worst = rep.pause_s;
		if (quiet > 0 && during / quiet < ratio)
			ratio = during / quiet;
		bench_sleep(2);
		quiet = (double)(guest_writes(&gm) - w1) * PG / (1 << 20) / (ferry_now_s() - t1);
	}
	printf("  %-12s worst pause %.2f ms [<= %.0f ms: %s]", label, worst * 1e3, pause_ms_target,
	       worst * 1e3 <= pause_ms_target ? "met" : "MISSED");
	if (ratio < 1e9)
		printf("  guest rate during a snapshot >= half of without: %.2f [%s]", ratio,
		       ratio >= 0.5 ? "met" : "MISSED");
	printf("\n");
	rc = 0;
out:
	snap_chain_free(c);
	snap_repo_close(r);
	if (d)
		hyp_domain_put(d);
	hyp_destroy(h);
	rm_repo(repo);
	return rc;
}

/*
 * The incremental case live: a 1 GiB guest that changed 64 MiB
 * (verify pages: none zero, none alike) since its full snapshot, then
 * paused by the user, snapshotted incrementally (targets: at most 70 MiB
 * written, at most 0.3 s).
 */
static int live_changed(const char *dir)
{
	struct snap_repo_opts ro = {.create = true};
	struct snap_take_report full, rep;
	struct snap_chain *c = NULL;
	struct snap_repo *r = NULL;
	struct hyp *h = NULL;
	char repo[4096];
	uint32_t id;
	int rc = 1;

	snprintf(repo, sizeof(repo), "%s/ferry-bench-snapchanged.XXXXXX", dir);
	if (!mkdtemp(repo) || live_guest(&h, &id, "workload=verify ws=64M rate=64M", 1) ||
	    snap_repo_open(repo, &ro, &r, err, sizeof(err)) || snap_chain_new(&c))
		goto out;
	bench_sleep(1.5); /* the working set written whole */
	if (snap_take(h, id, r, uuid,
		      &(struct snap_take_opts){.name = "c0", .config_json = "{}", .chain = c},
		      &full, err, sizeof(err)))
		goto fail;
	print_live("changed 64M", "c0", &full);
	printf("\n");
	bench_sleep(1.2); /* all of it written again */
	if (hyp_domain_pause(h, id) ||
	    snap_take(h, id, r, uuid,
		      &(struct snap_take_opts){.name = "c1", .config_json = "{}", .chain = c},
		      &rep, err, sizeof(err)))
		goto fail;
	print_live("changed 64M", "c1", &rep);
	printf("  [<= 70 MiB: %s] [<= 0.3 s: %s]\n", MIB(rep.bytes) <= 70 ? "met" : "MISSED",
	       rep.seconds <= 0.3 ? "met" : "MISSED");
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "changed 64M: %s\n", err);
out:
	snap_chain_free(c);
	snap_repo_close(r);
	hyp_destroy(h);
	rm_repo(repo);
	return rc;
}

static int live_all(const char *dir)
{
	printf("\nlive snapshots (snap_take) of a 1 GiB soft guest, a full one then incremental "
	       "ones 2 s apart:\n"
	       "peers: QEMU background-snapshot pauses only to write-protect and save devices, "
	       "then copies the whole RAM (16 GB in about 30 s, write faults < 1 ms for 99 %%); "
	       "Firecracker pauses for the whole snapshot (about 260 ms per 512 MiB, full); "
	       "Cloud Hypervisor pauses for the whole snapshot\n");
	return live(dir, "idle", "workload=idle", 1, 5) ||
	       live(dir, "50 MiB/s", "workload=dirty ws=256M rate=50M data=mix", 6, 5) ||
	       live(dir, "200 MiB/s", "workload=dirty ws=256M rate=200M data=mix", 2, 10) ||
	       live_changed(dir);
}

/* ---- revert: from the request to a running guest ------------------------- */

/* The 1 GiB guest the reverts start from, writing data=mix pages (the
 * snapshot's line says how many it holds). */
#define REV_CMDLINE "workload=dirty ws=896M rate=512M data=mix"

/* rst_config_fn: the bench's own config for the copy (opaque: its name),
 * a UUID of its own; the stream's config JSON is the "{}" it was given. */
static int rev_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *e,
		      size_t elen)
{
	const char *name = opaque;

	(void)json;
	(void)e;
	(void)elen;
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->name, sizeof(cfg->name), "%s", name);
	snprintf(cfg->backend, sizeof(cfg->backend), "soft");
	snprintf(cfg->cmdline, sizeof(cfg->cmdline), "%s", REV_CMDLINE);
	cfg->memory_mb = cfg->maxmem_mb = 1024;
	cfg->vcpus = 1;
	cfg->uuid[0] = 0x7e;
	cfg->uuid[1] = (uint8_t)strlen(name);
	return 0;
}

/* A full revert as ferryd's does it (the snapshot's whole stream through
 * rst_restore_domain), timed from the request (the stream opened) until
 * the guest runs; the copy destroyed. Seconds, or < 0. */
static double revert_full(struct hyp *h, struct snap_repo *r, uint64_t *pages)
{
	struct rst_opts o = {.config = rev_config, .opaque = "rev-full"};
	struct strm_io *io = NULL;
	struct rst_stats st;
	double t0 = ferry_now_s(), t;
	uint32_t nid;
	int rc = snap_stream_open(r, uuid, "r0", 0, &io, err, sizeof(err));

	if (!rc)
		rc = rst_restore_domain(h, io, &o, &nid, &st, err, sizeof(err));
	t = ferry_now_s() - t0;
	strm_io_close(io);
	if (rc)
		return -1;
	*pages = st.pages;
	hyp_domain_destroy(h, nid);
	return t;
}

/* A lazy revert as ferryd's does it (the source and the state opened,
 * rst_lazy_restore), timed the same way; then until every page is in. */
static double revert_lazy(struct hyp *h, struct snap_repo *r, struct rst_lazy_stats *st)
{
	struct rst_lazy_opts o = {.restore = {.config = rev_config, .opaque = "rev-lazy"}};
	struct snap_source *src;
	struct strm_io *state;
	struct rst_lazy *l;
	double t0 = ferry_now_s(), t;
	uint32_t nid;
	int rc;

	if (snap_source_open_with_state(r, uuid, "r0", &src, &state, err, sizeof(err)))
		return -1;
	rc = rst_lazy_restore(h, state, &snap_page_source_ops, src, &o, &nid, &l, err, sizeof(err));
	t = ferry_now_s() - t0;
	strm_io_close(state);
	if (rc)
		return rc == -ENOTSUP ? -2 : -1;
	rc = rst_lazy_wait(l, err, sizeof(err));
	rst_lazy_stats(l, st);
	hyp_domain_destroy(h, nid); /* destroyed first: rst_lazy_free does not wait */
	rst_lazy_free(l);
	return rc ? -1 : t;
}

static int revert_all(const char *dir)
{
	struct snap_repo_opts ro = {.create = true};
	struct snap_take_opts to = {.name = "r0", .config_json = "{}"};
	struct snap_take_report rep;
	struct rst_lazy_stats ls;
	struct snap_repo *r = NULL;
	struct hyp *h = NULL;
	char repo[4096];
	uint64_t pages = 0;
	double t;
	uint32_t id;
	int rc = 1;

	printf("\nrevert of a full snapshot of a 1 GiB soft guest (%s, 2 s in), from the request "
	       "to a running guest, the packs in the page cache and then dropped:\n"
	       "peers (research/checkpoint-ha.md): Cloud Hypervisor 1 GiB copy (full) restore "
	       "about 727 ms, on-demand (lazy) about 6 ms; Firecracker resume under 8 ms "
	       "(512 MB, memory mapped or served by UFFD, not read first)\n",
	       REV_CMDLINE);
	snprintf(repo, sizeof(repo), "%s/ferry-bench-snaprevert.XXXXXX", dir);
	if (!mkdtemp(repo) || live_guest(&h, &id, REV_CMDLINE, 2) ||
	    snap_repo_open(repo, &ro, &r, err, sizeof(err)))
		goto out;
	bench_sleep(2);
	if (snap_take(h, id, r, uuid, &to, &rep, err, sizeof(err)))
		goto out;
	printf("  the snapshot: %.1f MiB written (%llu stored, %llu zero, %llu deduplicated)\n",
	       MIB(rep.bytes), (unsigned long long)rep.stored, (unsigned long long)rep.zero,
	       (unsigned long long)rep.deduped);
	/* As a revert of a domain that is gone: nothing else runs meanwhile. */
	hyp_domain_destroy(h, id);
	for (int cold = 0; cold < 2; cold++) {
		const char *how = cold ? "cache dropped" : "page cache";

		if (cold)
			drop_packs(repo);
		t = revert_full(h, r, &pages);
		if (t < 0)
			goto out;
		printf("  full revert, %-13s: running after %8.2f ms (%llu pages read)\n", how,
		       t * 1e3, (unsigned long long)pages);
		if (cold)
			drop_packs(repo);
		t = revert_lazy(h, r, &ls);
		if (t == -2) {
			printf("  lazy revert: not here (%s)\n", err);
			continue;
		}
		if (t < 0)
			goto out;
		printf("  lazy revert, %-13s: running after %8.2f ms (rst_lazy_restore %.2f ms), "
		       "every page in after %.3f s, %llu faults p50 %.1f us p99 %.1f us\n",
		       how, t * 1e3, ls.to_running_s * 1e3, ls.all_in_s,
		       (unsigned long long)ls.faults, ls.fault_p50_us, ls.fault_p99_us);
	}
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "revert: %s\n", err);
	snap_repo_close(r);
	hyp_destroy(h);
	rm_repo(repo);
	return rc;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	uint8_t *mem = malloc(NPAGES * PG), *seen = malloc(NPAGES);
	uint64_t *pfns = malloc(STEP_PAGES * sizeof(*pfns));
	char repo[4096];
	int rc;

	const char *part = argc > 2 ? argv[2] : "";

	bench_help(argc, argv, "bench-snapshot [DIR] [repo|live|revert]   (default /var/tmp, all)");
	log_set_level(LOG_WARN);
	if (!mem || !seen || !pfns)
		return 1;
	snprintf(repo, sizeof(repo), "%s/ferry-bench-snapshot.XXXXXX", dir);
	if (!mkdtemp(repo))
		return fprintf(stderr, "%s: %s\n", repo, strerror(errno)), 1;
	print_limits();
	rc = !*part || !strcmp(part, "repo") ? chain(repo, mem, seen, pfns) : 0;
	rm_repo(repo);
	free(mem);
	free(seen);
	free(pfns);
	if (!rc && (!*part || !strcmp(part, "live")))
		rc = live_all(dir);
	if (!rc && (!*part || !strcmp(part, "revert")))
		rc = revert_all(dir);
	return rc;
}
