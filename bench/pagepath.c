// SPDX-License-Identifier: MIT
/*
 * The page path alone over loopback: a 1 GiB "mix" buffer (research/
 * limits.md: runs of 1-16 pages, 40 % zero, 15 % binary-like, 15 % text,
 * 30 % random) sent by sender threads and applied by receiver threads into
 * a destination buffer, through
 *   tcp          plain TCP (strm_io_fd)
 *   tls          TLS 1.3 (strm_io_tls_*)
 *   none+tls     frames without compression over TLS (the frame layer's cost)
 *   lz4+tls      frames lz4 over TLS
 *   zstd+tls     frames zstd (level -1) over TLS
 * each over 1 and 2 parallel connections (channel c sends batches c, c+n...),
 * and beside them
 *   raw-tls      TLS 1.3 alone: the whole buffer in 1 MiB strm_io_writes
 *                read back in 1 MiB reads, no zero check, no pages
 * which is the ceiling the page path is held to: its wire rate (bytes into
 * the lowest io) as a percentage of raw-tls's, met at 80 %. The paths take
 * turns run by run (run 1 of each, then run 2...), so a neighbour's load
 * falls on all of them alike.
 *
 * The sender checks each page for zeros and elides zero pages: per 64 pages
 * (256 KiB of guest memory) it writes one strm_io_writev of a 16-byte header
 * (first pfn, 64-bit presence mask) and the present pages, a run of them
 * one iovec (as the real encoder gives them). The receiver
 * reads each run of present pages straight into the destination.
 * "Effective" GiB/s counts guest bytes (1 GiB per run) over wall time from
 * the first byte to the last page applied; CPU is getrusage(RUSAGE_THREAD)
 * summed over each side's threads. Every run is checked with memcmp.
 *
 * Usage: bench-pagepath [RUNS (3)] [GiB (1)] [PATH]   Figures, not a test.
 * PATH limits the run to one path name ("tls", "lz4+tls"...) and raw-tls.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "stream/io.h"
#include "stream/net.h"
#include "bench.h"

#define USAGE	"bench-pagepath [RUNS (3; 1-50)] [GiB (1)] [PATH (one path only: tls, lz4+tls...)]"
#define PG	4096u
#define BATCH	64u /* pages per write: 256 KiB of guest memory */
#define END_PFN UINT64_MAX
#define MAX_CH	2
#define ERRLEN	512
#define HOST	"127.0.0.1"

#define RAW_CHUNK (1u << 20)
#define RAW_GOAL  0.80 /* the page path's wire rate against raw-tls's */

enum path { P_RAW_TLS, P_TCP, P_TLS, P_NONE_TLS, P_LZ4_TLS, P_ZSTD_TLS };
static const char *const path_names[] = {"raw-tls",  "tcp",	"tls",
					 "none+tls", "lz4+tls", "zstd+tls"};
/* research/limits.md section 4, 1 stream, effective GiB/s, zero-skip;
 * 0: no figure there. */
static const double limit_gibs[] = {0, 2.26, 1.08, 1.08, 0.40, 0.43};

struct hdr {
	uint64_t pfn;
	uint64_t mask; /* bit i: page pfn + i follows */
};

static uint8_t *src, *dst;
static uint64_t npages;
static struct strm_tls *tls;
static int lfd, port;

static double thread_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill_mix(uint8_t *mem, uint64_t pages, uint64_t *nzero)
{
	static const char *const words[] = {
		"static ", "int ", "return ", "struct ", "if (", "domain", "page",     "->",
		"= ",	   "0;\n", "\t",      "memory ", "the ", "guest ", "log_err(", "ferry"};
	uint64_t p = 0;

	*nzero = 0;
	while (p < pages) {
		uint64_t run = 1 + next() % 16, kind = next() % 100;

		for (uint64_t i = 0; i < run && p < pages; i++, p++) {
			uint8_t *pg = mem + p * PG;

			if (kind < 40) {
				memset(pg, 0, PG);
				(*nzero)++;
			} else if (kind < 55) {
				uint32_t *w = (uint32_t *)pg;

				for (int k = 0; k < 1024; k++)
					w[k] = (next() % 4 == 0) ? (uint32_t)next()
								 : (uint32_t)(next() % 256);
			} else if (kind < 70) {
				size_t o = 0;

				while (o < PG) {
					const char *w = words[next() % 16];
					size_t l = strlen(w);

					if (o + l > PG)
						l = PG - o;
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

static bool page_is_zero(const uint8_t *pg)
{
	const uint64_t *w = (const uint64_t *)pg;

	if (w[0] | w[511])
		return false;
	for (unsigned i = 0; i < PG / 8; i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	}
	return true;
}

struct job {
	enum path path;
	int ch, nch;
	bool sender;
	pthread_barrier_t *go;
	/* results */
	int rc;
	double cpu;
	uint64_t wire; /* bytes through the lowest io */
	char err[ERRLEN];
};

/* Opens this side's io for the path; the frame layer sits on the TLS io. */
static int open_io(struct job *j, struct strm_io **out, struct strm_io **low)
{
	char host[64], addr[64];
	struct strm_io *io;
	int fd, rc;

	*out = NULL;
	if (j->sender) {
		snprintf(addr, sizeof(addr), HOST ":%d", port);
		rc = strm_tcp_connect(addr, 5000, &fd, host, sizeof(host), j->err, sizeof(j->err));
	} else {
		rc = strm_tcp_accept(lfd, 10000, &fd, NULL, 0, j->err, sizeof(j->err));
	}
	if (rc)
		return rc;
	if (j->path == P_TCP) {
		rc = strm_io_fd(fd, true, &io);
		if (rc)
			close(fd);
	} else if (j->sender) {
		rc = strm_io_tls_client(tls, fd, host, &io, j->err, sizeof(j->err));
	} else {
		rc = strm_io_tls_server(tls, fd, &io, NULL, 0, j->err, sizeof(j->err));
	}
	if (rc)
		return rc;
	*low = io;
	if (j->path >= P_NONE_TLS) {
		enum strm_codec c = j->path == P_LZ4_TLS    ? STRM_CODEC_LZ4
				    : j->path == P_ZSTD_TLS ? STRM_CODEC_ZSTD
							    : STRM_CODEC_NONE;
		struct strm_io *f;

		rc = j->sender ? strm_io_frame_writer(io, c, 0, &f) : strm_io_frame_reader(io, &f);
		if (rc) {
			strm_io_close(io);
			return rc;
		}
		io = f;
	}
	*out = io;
	return 0;
}

static int send_pages(struct job *j, struct strm_io *io)
{
	struct iovec iov[1 + BATCH];
	uint64_t nb = (npages + BATCH - 1) / BATCH;
	struct hdr h;
	int rc;

	for (uint64_t b = (uint64_t)j->ch; b < nb; b += (uint64_t)j->nch) {
		uint64_t first = b * BATCH, n = npages - first < BATCH ? npages - first : BATCH;
		int k = 1;

		h.pfn = first;
		h.mask = 0;
		for (uint64_t i = 0; i < n; i++) {
			const uint8_t *pg = src + (first + i) * PG;

			if (page_is_zero(pg))
				continue;
			h.mask |= 1ull << i;
			/* Adjacent pages share one iovec, as strm_enc_page_data
			 * gives them to the real path's io. */
			if (k > 1 &&
			    (const uint8_t *)iov[k - 1].iov_base + iov[k - 1].iov_len == pg)
				iov[k - 1].iov_len += PG;
			else
				iov[k++] = (struct iovec){.iov_base = (void *)pg, .iov_len = PG};
		}
		iov[0] = (struct iovec){.iov_base = &h, .iov_len = sizeof(h)};
		rc = strm_io_writev(io, iov, k);
		if (rc)
			return rc;
	}
	h.pfn = END_PFN;
	h.mask = 0;
	return strm_io_write(io, &h, sizeof(h));
}

/* raw-tls: the buffer as it is, in large writes and reads. */
static int raw_pass(struct strm_io *io, bool sender)
{
	uint64_t bytes = npages * PG;
	int rc;

	for (uint64_t off = 0; off < bytes; off += RAW_CHUNK) {
		size_t n = MIN(RAW_CHUNK, bytes - off);

		rc = sender ? strm_io_write(io, src + off, n) : strm_io_read_full(io, dst + off, n);
		if (rc)
			return rc;
	}
	return 0;
}

static int recv_pages(struct job *j, struct strm_io *io)
{
	struct hdr h;
	int rc;

	(void)j;
	for (;;) {
		rc = strm_io_read_full(io, &h, sizeof(h));
		if (rc)
			return rc;
		if (h.pfn == END_PFN)
			return 0;
		if (h.pfn >= npages || h.pfn + BATCH > ((npages + BATCH - 1) / BATCH) * BATCH)
			return -EBADMSG;
		/* Runs of present pages are contiguous in the destination too. */
		for (unsigned i = 0; i < BATCH;) {
			unsigned r;

			if (!(h.mask >> i & 1)) {
				i++;
				continue;
			}
			for (r = i; r < BATCH && (h.mask >> r & 1); r++)
				;
			if (h.pfn + r > npages)
				return -EBADMSG;
			rc = strm_io_read_full(io, dst + (h.pfn + i) * PG, (size_t)(r - i) * PG);
			if (rc)
				return rc;
			i = r;
		}
	}
}

static void *run_side(void *arg)
{
	struct job *j = arg;
	struct strm_io *io = NULL, *low = NULL;
	struct strm_frame_stats st;
	char name[16];
	double c0;
	int rc;

	/* perf report --comm s:tls: one path's sender alone */
	snprintf(name, sizeof(name), "%c:%s", j->sender ? 's' : 'r', path_names[j->path]);
	pthread_setname_np(pthread_self(), name);
	rc = open_io(j, &io, &low);
	pthread_barrier_wait(j->go);
	if (rc) {
		j->rc = rc;
		return NULL;
	}
	c0 = thread_cpu();
	if (j->path == P_RAW_TLS)
		rc = raw_pass(io, j->sender);
	else
		rc = j->sender ? send_pages(j, io) : recv_pages(j, io);
	if (rc && !j->err[0])
		snprintf(j->err, sizeof(j->err), "%s", strm_io_error(io));
	if (j->path >= P_NONE_TLS && strm_io_frame_stats(io, &st) == 0)
		j->wire = st.stored_bytes;
	else
		j->wire = strm_io_offset(io);
	if (j->sender) {
		int crc = strm_io_close(io); /* end frame, close_notify */

		rc = rc ? rc : crc;
	} else {
		strm_io_close(io);
	}
	j->cpu = thread_cpu() - c0;
	j->rc = rc;
	return NULL;
}

struct result {
	double secs, scpu, rcpu, wire;
};

static int run_once(enum path p, int nch, struct result *res)
{
	struct job jobs[2 * MAX_CH];
	pthread_t th[2 * MAX_CH];
	pthread_barrier_t go;
	double t0;
	int rc = 0;

	memset(jobs, 0, sizeof(jobs));
	memset(res, 0, sizeof(*res));
	pthread_barrier_init(&go, NULL, (unsigned)(2 * nch + 1));
	/* Receivers first so that accept order matches connect order per
	 * pair; channels are symmetric anyway. */
	for (int i = 0; i < 2 * nch; i++) {
		jobs[i] = (struct job){
			.path = p, .ch = i / 2, .nch = nch, .sender = i % 2, .go = &go};
		pthread_create(&th[i], NULL, run_side, &jobs[i]);
	}
	pthread_barrier_wait(&go);
	t0 = ferry_now_s();
	for (int i = 0; i < 2 * nch; i++)
		pthread_join(th[i], NULL);
	res->secs = ferry_now_s() - t0;
	pthread_barrier_destroy(&go);
	for (int i = 0; i < 2 * nch; i++) {
		if (jobs[i].rc && !rc) {
			fprintf(stderr, "%s %s ch%d: %s\n", path_names[p],
				jobs[i].sender ? "sender" : "receiver", jobs[i].ch, jobs[i].err);
			rc = jobs[i].rc;
		}
		if (jobs[i].sender) {
			res->scpu += jobs[i].cpu;
			res->wire += (double)jobs[i].wire;
		} else {
			res->rcpu += jobs[i].cpu;
		}
	}
	if (rc)
		return rc;
	if (memcmp(src, dst, npages * PG) != 0) {
		fprintf(stderr, "%s x%d: destination differs from source\n", path_names[p], nch);
		return -EIO;
	}
	memset(dst, 0, npages * PG);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_RUNS 50

/* Each configuration in the printed order; raw-tls first, the ceiling. */
static const struct {
	enum path p;
	int nch;
} plan[] = {
	{P_RAW_TLS, 1},	 {P_TCP, 1}, {P_TLS, 1}, {P_NONE_TLS, 1}, {P_LZ4_TLS, 1},
	{P_ZSTD_TLS, 1}, {P_TCP, 2}, {P_TLS, 2}, {P_LZ4_TLS, 2},  {P_ZSTD_TLS, 2},
};
#define NPLAN (sizeof(plan) / sizeof(plan[0]))

/* PATH on the command line limits the run to it, and raw-tls beside it. */
static bool planned(enum path p, const char *only)
{
	return !only || p == P_RAW_TLS || !strcmp(only, path_names[p]);
}

struct summary {
	double eff, eff_min, eff_max; /* effective GiB/s */
	double wire_ratio;	      /* guest bytes / wire bytes */
	double scpu, rcpu;	      /* s per guest GiB */
	double wire_gibs;	      /* wire GiB/s */
	double scpu_w, rcpu_w;	      /* s per wire GiB */
};

/* Medians over the runs of one configuration. */
static void summarize(const struct result *r, int runs, double guest_gib, struct summary *s)
{
	double eff[MAX_RUNS], scpu[MAX_RUNS], rcpu[MAX_RUNS], ratio[MAX_RUNS], wg[MAX_RUNS],
		sw[MAX_RUNS], rw[MAX_RUNS];

	for (int i = 0; i < runs; i++) {
		double wgib = r[i].wire / (double)(1ull << 30);

		eff[i] = guest_gib / r[i].secs;
		scpu[i] = r[i].scpu / guest_gib;
		rcpu[i] = r[i].rcpu / guest_gib;
		ratio[i] = guest_gib / wgib;
		wg[i] = wgib / r[i].secs;
		sw[i] = r[i].scpu / wgib;
		rw[i] = r[i].rcpu / wgib;
	}
	s->eff_min = s->eff_max = eff[0];
	for (int i = 1; i < runs; i++) {
		s->eff_min = eff[i] < s->eff_min ? eff[i] : s->eff_min;
		s->eff_max = eff[i] > s->eff_max ? eff[i] : s->eff_max;
	}
	s->eff = median(eff, runs);
	s->scpu = median(scpu, runs);
	s->rcpu = median(rcpu, runs);
	s->wire_ratio = median(ratio, runs);
	s->wire_gibs = median(wg, runs);
	s->scpu_w = median(sw, runs);
	s->rcpu_w = median(rw, runs);
}

static void print_row(enum path p, int nch, const struct summary *s)
{
	char lim[16] = "-", ratio[16] = "-";

	if (limit_gibs[p] > 0) {
		snprintf(lim, sizeof(lim), "%.2f", limit_gibs[p]);
		snprintf(ratio, sizeof(ratio), "%.2f", s->eff / limit_gibs[p]);
	}
	printf("%-9s %2d  %5.2f (%5.2f-%5.2f)    %5.2fx  %8.2f %8.2f  %7s  %5s  %6.2f %6.2f "
	       "%6.2f\n",
	       path_names[p], nch, s->eff, s->eff_min, s->eff_max, s->wire_ratio, s->scpu, s->rcpu,
	       lim, ratio, s->wire_gibs, s->scpu_w, s->rcpu_w);
}

/* Options, then each configuration in the printed order: a long list of
 * steps, kept in one place so the table's rows match the code's. */
int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 3;
	double gib = argc > 2 ? atof(argv[2]) : 1.0, guest_gib;
	const char *only = argc > 3 ? argv[3] : NULL;
	char dir[] = "/tmp/ferry-pagepath-XXXXXX", err[ERRLEN], cmd[128];
	const char *hosts[] = {HOST};
	static struct result res[NPLAN][MAX_RUNS];
	struct summary sum[NPLAN];
	int rcs[NPLAN] = {0};
	uint64_t nzero;
	size_t bytes;

	bench_help(argc, argv, USAGE);
	if (runs < 1 || runs > MAX_RUNS || gib <= 0 || gib > 16) {
		fprintf(stderr, "usage: %s\n", USAGE);
		return 2;
	}
	log_set_level(LOG_WARN);
	npages = (uint64_t)(gib * (1ull << 30)) / PG;
	bytes = npages * PG;
	guest_gib = (double)bytes / (double)(1ull << 30);
	src = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	fill_mix(src, npages, &nzero);
	memset(dst, 0, bytes); /* fault it in: a restore target exists already */
	if (!mkdtemp(dir) || strm_tls_setup(dir, hosts, 1, 1, err, sizeof(err)) ||
	    strm_tls_new(dir, HOST, &tls, err, sizeof(err)) ||
	    strm_tcp_listen(HOST ":0", &lfd, err, sizeof(err))) {
		fprintf(stderr, "setup: %s\n", err);
		return 1;
	}
	port = strm_tcp_local_port(lfd);
	printf("page path, loopback, %.2f GiB mix (%.1f %% zero pages, elided by the sender),\n"
	       "64-page writes, median of %d runs (min-max), the paths taking turns;\n"
	       "cpu = s per GiB of guest memory, summed over each side's threads;\n"
	       "ratio = effective / research/limits.md; wire = bytes into the lowest io\n\n",
	       guest_gib, 100.0 * (double)nzero / (double)npages, runs);
	for (int i = 0; i < runs; i++) {
		for (size_t k = 0; k < NPLAN; k++) {
			struct result *r = &res[k][i];

			if (!planned(plan[k].p, only) || rcs[k])
				continue;
			rcs[k] = run_once(plan[k].p, plan[k].nch, r);
		}
	}
	printf("%-9s %2s  %-22s %6s  %8s %8s  %7s  %5s  %6s %6s %6s\n", "path", "ch",
	       "effective GiB/s", "wire", "snd cpu", "rcv cpu", "limits", "ratio", "wire", "snd",
	       "rcv");
	printf("%-9s %2s  %-22s %6s  %8s %8s  %7s  %5s  %6s %6s %6s\n", "", "", "", "", "", "", "",
	       "", "GiB/s", "s/wGiB", "s/wGiB");
	for (size_t k = 0; k < NPLAN; k++) {
		if (!planned(plan[k].p, only))
			continue;
		if (rcs[k]) {
			printf("%-9s %2d  failed: %s\n", path_names[plan[k].p], plan[k].nch,
			       ferry_strerror(-rcs[k]));
			continue;
		}
		summarize(res[k], runs, guest_gib, &sum[k]);
		print_row(plan[k].p, plan[k].nch, &sum[k]);
	}
	printf("\nwire = guest bytes / bytes written to the lowest io (frame headers count);\n"
	       "s/wGiB = CPU s per GiB written to the lowest io\n");
	printf("limits for none+tls: the TLS zero-skip figure (no frame layer there)\n");
	if (!rcs[0]) {
		printf("\nraw-tls x1 (the ceiling): %.2f GiB/s on the wire; the page path's "
		       "wire rate against it (target %.0f %%):\n",
		       sum[0].wire_gibs, 100 * RAW_GOAL);
		for (size_t k = 1; k < NPLAN; k++) {
			double pct = 100 * sum[k].wire_gibs / sum[0].wire_gibs;

			if (!planned(plan[k].p, only) || rcs[k] || plan[k].nch != 1 ||
			    (plan[k].p != P_TLS && plan[k].p != P_NONE_TLS))
				continue;
			printf("  [%s] %-8s x1: %.2f GiB/s = %3.0f %% of raw-tls\n",
			       pct >= 100 * RAW_GOAL ? "met" : "MISSED", path_names[plan[k].p],
			       sum[k].wire_gibs, pct);
		}
	}
	close(lfd);
	strm_tls_free(tls);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	munmap(src, bytes);
	munmap(dst, bytes);
	return 0;
}
