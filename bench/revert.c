// SPDX-License-Identifier: MIT
/*
 * bench-revert: going back to a snapshot of a 1 GiB guest, whole and
 * lazily (issue 12's revert figures). A running verify guest (768 MiB of
 * it written) is snapshotted into a repository; then
 *  - full: the snapshot restored whole (snap_stream_open into
 *    rst_restore_domain), from the call to a running guest;
 *  - lazy: rst_lazy_restore with the repository as page source, into
 *    fresh frames and then into warm ones (a destroyed domain's, which
 *    hold its data and must never show): time to running, the fault
 *    service p50/p99 while the guest runs, time until every page is in.
 * Each copy's own check must resume with zero mismatches. Printed beside
 * the targets and the peers' published figures.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi/guest.h"
#include "bench.h"
#include "common/clock.h"
#include "common/log.h"
#include "hyp/hyp.h"
#include "restore/lazy.h"
#include "restore/restore.h"
#include "snapshot/repo.h"
#include "snapshot/source.h"
#include "snapshot/stream.h"
#include "snapshot/take.h"
#include "stream/io.h"
#include "guests/soft.h"

#define MEM_MB	1024
#define CMDLINE "workload=verify ws=768M rate=16M"
#define JSON	"{\"c_info\":{\"name\":\"rv\"}}"

static const uint8_t uuid[16] = {0xbe, 0x4c};
static unsigned copies;

static double now(void)
{
	return (double)ferry_now_ns() / 1e9;
}

static int rv_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
		     size_t errlen)
{
	(void)opaque;
	(void)json;
	(void)err;
	(void)errlen;
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->name, sizeof(cfg->name), "copy%u", ++copies);
	snprintf(cfg->backend, sizeof(cfg->backend), "soft");
	snprintf(cfg->cmdline, sizeof(cfg->cmdline), "%s", CMDLINE);
	cfg->memory_mb = cfg->maxmem_mb = MEM_MB;
	cfg->vcpus = 1;
	return 0;
}

/* Up to s seconds for pattern on domid's console; 0 if it came. */
static int wait_console(struct hyp *h, uint32_t domid, const char *pattern, double s)
{
	static char buf[1 << 16];

	for (double t0 = now(); now() - t0 < s; bench_sleep(0.05)) {
		size_t got = 0;

		if (!hyp_console_read(h, domid, buf, sizeof(buf) - 1, &got)) {
			buf[got] = 0;
			if (strstr(buf, pattern))
				return 0;
		}
	}
	return -1;
}

/* The copy's own check after its resume: zero mismatches, or -1. */
static int resumed_clean(struct hyp *h, uint32_t domid, const char *what)
{
	if (!wait_console(h, domid, "verify: resume pages=196608 mismatches=0", 120))
		return 0;
	fprintf(stderr, "%s: the copy's check did not resume clean\n", what);
	return -1;
}

static int full(struct hyp *h, struct snap_repo *r)
{
	struct rst_opts ro = {.config = rv_config};
	struct strm_io *io;
	char err[512] = "";
	double t0 = now(), t;
	uint32_t id;
	int rc;

	rc = snap_stream_open(r, uuid, "s", 0, &io, err, sizeof(err));
	if (!rc)
		rc = rst_restore_domain(h, io, &ro, &id, NULL, err, sizeof(err));
	t = now() - t0;
	if (rc) {
		fprintf(stderr, "full revert: %s\n", err);
		return -1;
	}
	strm_io_close(io);
	printf("full revert: running after %.0f ms (the whole image read and written first)\n",
	       t * 1e3);
	rc = resumed_clean(h, id, "full revert");
	hyp_domain_destroy(h, id);
	return rc;
}

static int lazy(struct hyp *h, struct snap_repo *r, const char *label)
{
	struct rst_lazy_opts lo = {.restore = {.config = rv_config}};
	struct rst_lazy_stats st;
	struct snap_source *src;
	struct strm_io *state;
	struct rst_lazy *l;
	char err[512] = "";
	uint32_t id;
	int rc;

	rc = snap_source_open(r, uuid, "s", &src, err, sizeof(err)) ?:
	     snap_stream_open(r, uuid, "s", SNAP_STREAM_NO_DATA, &state, err, sizeof(err));
	if (!rc)
		rc = rst_lazy_restore(h, state, &snap_page_source_ops, src, &lo, &id, &l, err,
				      sizeof(err));
	if (rc) {
		fprintf(stderr, "lazy revert (%s): %s\n", label, err);
		return -1;
	}
	strm_io_close(state);
	rc = rst_lazy_wait(l, err, sizeof(err));
	rst_lazy_stats(l, &st);
	printf("lazy revert, %s: running after %.2f ms (target 10; hyp built the domain in "
	       "%.2f ms of it); %llu faults served, p50 %.1f us (target 50), p99 %.1f us "
	       "(target 1000); every page in after %.2f s (%llu by the fetcher)\n",
	       label, st.to_running_s * 1e3, st.created_s * 1e3, (unsigned long long)st.faults,
	       st.fault_p50_us, st.fault_p99_us, st.all_in_s, (unsigned long long)st.fetched);
	if (rc)
		fprintf(stderr, "lazy revert (%s): %s\n", label, err);
	rst_lazy_free(l);
	rc = rc ?: resumed_clean(h, id, label);
	hyp_domain_destroy(h, id);
	return rc;
}

int main(int argc, char **argv)
{
	struct hyp_params p = {.backend = "soft",
			       /* the original and one copy at a time, and no more:
				* the second lazy copy gets the first's frames */
			       .memory_bytes = 3ull * MEM_MB << 20,
			       .soft_guest = &wl_soft_guest_ops,
			       .pv_backend = &dev_pv_backend_ops,
			       .pv_backend_opaque = bench_pv()};
	struct snap_take_opts to = {.name = "s", .config_json = JSON};
	struct snap_repo_opts ro = {.create = true};
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	struct snap_take_report rep;
	struct hyp_dom_config cfg;
	struct snap_repo *r = NULL;
	char repo[4096], cmd[4200], err[512] = "";
	struct hyp *h = NULL;
	uint32_t id;
	int rc = 1;

	bench_help(argc, argv, "bench-revert [DIR]   (the repository goes under DIR, default /var/tmp)");
	log_set_level(LOG_WARN);
	printf("bench-revert: a 1 GiB soft guest (%s) snapshotted, then reverted whole and "
	       "lazily\n",
	       CMDLINE);
	printf("peers: Firecracker resumes a 512 MiB snapshot with UFFD in under 8 ms (its "
	       "target); Cloud Hypervisor's on-demand restore of 1 GiB about 6 ms; CRIU "
	       "lazy-pages serves faults over a socket; QEMU has no lazy restore of a "
	       "snapshot (postcopy only between hosts)\n");
	snprintf(repo, sizeof(repo), "%s/ferry-bench-revert.XXXXXX", dir);
	if (!mkdtemp(repo))
		return fprintf(stderr, "%s: %s\n", repo, strerror(errno)), 1;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "orig");
	snprintf(cfg.backend, sizeof(cfg.backend), "soft");
	snprintf(cfg.cmdline, sizeof(cfg.cmdline), "%s", CMDLINE);
	cfg.memory_mb = cfg.maxmem_mb = MEM_MB;
	cfg.vcpus = 1;
	if (hyp_create(&p, &h) || hyp_domain_create(h, &cfg, false, &id)) {
		fprintf(stderr, "cannot start the guest\n");
		goto out;
	}
	if (wait_console(h, id, "verify: sweep", 300)) {
		fprintf(stderr, "the guest never filled its memory\n");
		goto out;
	}
	if (snap_repo_open(repo, &ro, &r, err, sizeof(err)) ||
	    snap_take(h, id, r, uuid, &to, &rep, err, sizeof(err))) {
		fprintf(stderr, "snapshot: %s\n", err);
		goto out;
	}
	printf("snapshot: %.0f MiB in %.2f s, pause %.2f ms\n", (double)rep.bytes / (1 << 20),
	       rep.seconds, rep.pause_s * 1e3);
	/* The original stays, as a revert's old domain does until the copy
	 * is whole; its vCPU is paused so the figures are the copy's. */
	hyp_domain_pause(h, id);
	rc = full(h, r) || lazy(h, r, "fresh frames") || lazy(h, r, "warm frames (a destroyed copy's)");
out:
	snap_repo_close(r);
	if (h)
		hyp_destroy(h);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", repo);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", repo);
	return rc;
}
