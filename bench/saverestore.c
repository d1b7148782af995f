// SPDX-License-Identifier: MIT
/*
 * Save and restore throughput and file size, for a 1 GiB and a 4 GiB guest
 * whose memory is a realistic mix, for each compression, to a file on local
 * disk; beside memcpy's and the disk's throughput on this machine.
 * Usage: bench-saverestore [DIR] (default /var/tmp)   Figures, not a test.
 *
 * The mix is research/limits.md's "mix": runs of 1-16 pages, 40 % zero
 * pages (written with zeros: a guest's freed memory), 15 % binary-like
 * (small integers and pointers), 15 % text-like, 30 % random.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "guests/soft.h"
#include "hyp/gmem.h"
#include "hyp/hyp.h"
#include "migrate/save.h"
#include "restore/restore.h"
#include "bench.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill_mix(uint8_t *mem, uint64_t pages)
{
	static const char *const words[] = { "static ", "int ", "return ", "struct ", "if (",
					     "domain", "page", "->", "= ", "0;\n", "\t",
					     "memory ", "the ", "guest ", "log_err(", "ferry" };
	uint64_t p = 16384; /* leave the kernel/workload area to the guest */

	while (p < pages) {
		uint64_t run = 1 + next() % 16, kind = next() % 100;

		for (uint64_t i = 0; i < run && p < pages; i++, p++) {
			uint8_t *pg = mem + p * 4096;

			if (kind < 40) {
				memset(pg, 0, 4096); /* written with zeros */
			} else if (kind < 55) {
				uint32_t *w = (uint32_t *)pg;

				for (int k = 0; k < 1024; k++)
					w[k] = (next() % 4 == 0) ? (uint32_t)next()
								 : (uint32_t)(next() % 256);
			} else if (kind < 70) {
				size_t o = 0;

				while (o < 4096) {
					const char *w = words[next() % 16];
					size_t l = strlen(w);

					if (o + l > 4096)
						l = 4096 - o;
					memcpy(pg + o, w, l);
					o += l;
				}
			} else {
				for (int k = 0; k < 512; k++)
					((uint64_t *)pg)[k] = next();
			}
		}
	}
}

static int json_cfg(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
		    size_t errlen)
{
	/* The bench restores what it saved: take the config from the caller. */
	*cfg = *(const struct hyp_dom_config *)opaque;
	snprintf(cfg->name, sizeof(cfg->name), "restored");
	(void)json;
	(void)err;
	(void)errlen;
	return 0;
}

static double memcpy_gibs(void)
{
	size_t n = 1UL << 30;
	uint8_t *a = malloc(n), *b = malloc(n);
	double t0, t;

	memset(a, 1, n);
	memset(b, 2, n);
	t0 = ferry_now_s();
	memcpy(b, a, n);
	t = ferry_now_s() - t0;
	/* Use the copy, or the compiler drops it. */
	__asm__ volatile("" : : "r"(b) : "memory");
	free(a);
	free(b);
	return t > 0 ? 1.0 / t : 0;
}

static double disk_gibs(const char *dir)
{
	char path[4096];
	size_t chunk = 1 << 20, total = 1UL << 30;
	uint8_t *buf = malloc(chunk);
	double t0, t;
	int fd;

	snprintf(path, sizeof(path), "%s/ferry-bench-disk.tmp", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || !buf)
		return 0;
	for (size_t i = 0; i < chunk; i++)
		buf[i] = (uint8_t)next();
	t0 = ferry_now_s();
	for (size_t o = 0; o < total; o += chunk)
		if (write(fd, buf, chunk) != (ssize_t)chunk)
			break;
	fsync(fd);
	t = ferry_now_s() - t0;
	close(fd);
	unlink(path);
	free(buf);
	return 1.0 / t;
}

/* Save, restore and their limits for one size, in the order of the report
 * (long: one timed step after another, nothing to share between them). */
static int bench(const char *dir, uint64_t mem_mb)
{
	static const enum strm_codec codecs[] = { STRM_CODEC_NONE, STRM_CODEC_LZ4,
						  STRM_CODEC_ZSTD };
	struct hyp_params p = { .backend = "soft", .memory_bytes = (2 * mem_mb + 64) << 20,
				.soft_guest = &wl_soft_guest_ops,
				.pv_backend = &dev_pv_backend_ops, .pv_backend_opaque = bench_pv() };
	struct hyp_dom_config cfg;
	struct hyp_domain *d;
	struct hyp_gmem gm;
	struct hyp *h;
	uint32_t id;
	uint64_t none_size = 0;

	if (hyp_create(&p, &h))
		return 1;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "bench");
	snprintf(cfg.backend, sizeof(cfg.backend), "soft");
	snprintf(cfg.cmdline, sizeof(cfg.cmdline), "workload=idle");
	cfg.memory_mb = cfg.maxmem_mb = mem_mb;
	cfg.vcpus = 1;
	if (hyp_domain_create(h, &cfg, false, &id))
		return 1;
	usleep(100000);
	hyp_domain_pause(h, id);
	hyp_domain_get(h, id, &d);
	hyp_domain_gmem(d, &gm);
	fill_mix(gm.hva, gm.npages);
	hyp_domain_put(d);

	for (unsigned c = 0; c < 3; c++) {
		struct mig_save_opts o = { .codec = codecs[c], .config_json = "{}" };
		struct rst_opts ro = { .config = json_cfg, .opaque = &cfg };
		struct mig_save_stats st;
		struct rst_stats rs;
		struct strm_io *io;
		char path[4096], err[512];
		struct stat sb;
		uint32_t rid;
		double t0, ts, tr;
		int fd;

		snprintf(path, sizeof(path), "%s/ferry-bench-%llu.save", dir,
			 (unsigned long long)mem_mb);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || strm_io_fd(fd, true, &io))
			return 1;
		t0 = ferry_now_s();
		if (mig_save_domain(h, id, io, &o, &st, err, sizeof(err))) {
			fprintf(stderr, "save: %s\n", err);
			return 1;
		}
		ts = ferry_now_s() - t0;
		stat(path, &sb);
		if (!c)
			none_size = (uint64_t)sb.st_size;
		fd = open(path, O_RDONLY);
		if (fd < 0 || strm_io_fd(fd, true, &io))
			return 1;
		t0 = ferry_now_s();
		if (rst_restore_domain(h, io, &ro, &rid, &rs, err, sizeof(err))) {
			fprintf(stderr, "restore: %s\n", err);
			return 1;
		}
		tr = ferry_now_s() - t0;
		strm_io_close(io);
		hyp_domain_destroy(h, rid);
		unlink(path);
		printf("%5llu MiB  %-4s  save %6.3f s = %5.2f GiB/s   restore %6.3f s = %5.2f "
		       "GiB/s   file %7.1f MiB (%.2fx smaller than none)%s\n",
		       (unsigned long long)mem_mb, strm_codec_name(codecs[c]), ts,
		       (double)mem_mb / 1024 / ts, tr, (double)mem_mb / 1024 / tr,
		       (double)sb.st_size / (1 << 20),
		       sb.st_size ? (double)none_size / (double)sb.st_size : 0.0,
		       !c && mem_mb == 1024 ? (ts <= 1.0 ? "  [save >= 1 GiB/s: met]"
							 : "  [save >= 1 GiB/s: MISSED]")
					   : "");
		if (mem_mb == 1024 && !c)
			printf("           restore of 1 GiB under 1 s: %s\n",
			       tr < 1.0 ? "met" : "MISSED");
		if (c && mem_mb == 1024)
			printf("           compressed at least 2x smaller than none: %s\n",
			       none_size >= 2 * (uint64_t)sb.st_size ? "met" : "MISSED");
	}
	hyp_domain_destroy(h, id);
	hyp_destroy(h);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	int err = 0;

	bench_help(argc, argv, "bench-saverestore [DIR]   (default /var/tmp)");
	log_set_level(LOG_WARN);
	printf("limits on this machine: memcpy %.2f GiB/s, disk write+fsync %.2f GiB/s (%s)\n",
	       memcpy_gibs(), disk_gibs(dir), dir);
	err |= bench(dir, 1024);
	if (!getenv("FERRY_BENCH_QUICK"))
		err |= bench(dir, 4096);
	return err;
}
