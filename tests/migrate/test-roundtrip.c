// SPDX-License-Identifier: MIT
/*
 * A checkpointed stream end to end: the save side's session
 * (migrate/session.h) on a soft domain running the verify workload, the
 * receive side's epoch-by-epoch restore (restore/restore.h) on a second
 * hyp. The stream is fed up to each epoch's end as it is written: every
 * epoch is committed in order, and the copy's memory then equals the
 * source's as it was at that epoch's pause (page hashes taken while the
 * session holds the source paused). The copy resumed from the last epoch
 * passes the guest's own check. Then the real stream is cut inside its last
 * checkpoint: the epoch before stands, nothing of the cut one is applied.
 * Plain and framed (lz4) streams.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "hyp/gmem.h"
#include "migrate/session.h"
#include "restore/restore.h"
#include "stream/io.h"

#define PG 4096
#define DOM_MB 32
#define CKPTS 3			 /* CHECKPOINT epochs, then END */
#define CMDLINE "workload=verify ws=4M rate=4M"
#define JSON "{\"c_info\":{\"name\":\"rt\"}}"

struct rt {
	struct hyp *src, *dst;
	uint32_t sid;
	uint64_t npages;
	/* hash[e][pfn]: the source's pages at the pause of decoder epoch e */
	uint64_t *hash[CKPTS + 2];
	size_t bound[CKPTS + 2]; /* stream bytes at the end of epoch e */
	uint64_t seen[CKPTS + 2];
	unsigned nseen;
};

static uint64_t page_hash(const uint8_t *p)
{
	uint64_t h = 0xcbf29ce484222325ull, w;

	for (unsigned i = 0; i < PG; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	return h;
}

/* Hashes every page of domid into out (npages), or compares with want:
 * returns how many pages differ (0 when hashing). */
static uint64_t dom_hash(struct hyp *h, uint32_t domid, uint64_t npages, uint64_t *out,
			 const uint64_t *want)
{
	struct hyp_domain *d;
	struct hyp_gmem gm;
	uint64_t diff = 0;

	cr_assert_eq(hyp_domain_get(h, domid, &d), 0);
	hyp_domain_gmem(d, &gm);
	cr_assert_eq(gm.npages, npages);
	for (uint64_t pfn = 0; pfn < npages; pfn++) {
		uint64_t v = page_hash(gm.hva + pfn * PG);

		if (out)
			out[pfn] = v;
		else
			diff += v != want[pfn];
	}
	hyp_domain_put(d);
	return diff;
}

static int rt_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
		     size_t errlen)
{
	(void)opaque;
	(void)err;
	(void)errlen;
	cr_assert_str_eq(json, JSON);
	*cfg = harness_cfg("rt", DOM_MB, CMDLINE);
	snprintf(cfg->backend, sizeof(cfg->backend), "soft");
	return 0;
}

/* After each commit: in order, and the source's memory of that epoch. */
static int on_epoch(void *opaque, uint32_t domid, uint64_t epoch)
{
	struct rt *t = opaque;
	struct hyp_dom_info di;
	uint64_t diff;

	cr_assert_lt(t->nseen, CKPTS + 1);
	t->seen[t->nseen++] = epoch;
	cr_assert_eq(epoch, t->nseen, "epoch %llu committed as number %u",
		     (unsigned long long)epoch, t->nseen);
	cr_assert_eq(hyp_domain_info(t->dst, domid, &di), 0);
	cr_assert_eq(di.state, HYP_DOM_PAUSED, "the copy runs after epoch %llu",
		     (unsigned long long)epoch);
	diff = dom_hash(t->dst, domid, t->npages, NULL, t->hash[epoch]);
	cr_assert_eq(diff, 0, "epoch %llu: %llu pages differ from the source's",
		     (unsigned long long)epoch, (unsigned long long)diff);
	return 0;
}

static struct rst_session *rst_new(struct rt *t, bool check)
{
	struct rst_session_opts o = { .config = rt_config, .epoch = check ? on_epoch : NULL,
				      .epoch_opaque = t };
	struct rst_session *s;

	cr_assert_eq(rst_session_new(t->dst, &o, &s), 0);
	return s;
}

/* Feeds what io holds past *fed. */
static void feed_new(struct rst_session *r, struct strm_io *io, size_t *fed)
{
	size_t len;
	const uint8_t *b = strm_io_mem_data(io, &len);

	cr_assert_eq(rst_session_feed(r, b + *fed, len - *fed), 0, "%s", rst_session_error(r));
	*fed = len;
}

/* One epoch of the session, held paused while the source is hashed. */
static void epoch(struct rt *t, struct mig_session *s, unsigned flags, unsigned e, char *err)
{
	cr_assert_eq(mig_session_epoch(s, flags, NULL), 0, "epoch %u: %s", e, err);
	t->hash[e] = malloc(t->npages * sizeof(uint64_t));
	cr_assert(t->hash[e]);
	dom_hash(t->src, t->sid, t->npages, t->hash[e], NULL);
}

/* Runs the source through pre-copy, CKPTS checkpoints and END into the
 * copy; returns the stream (malloc'd) in *bytes. */
static void round_trip(struct rt *t, enum strm_codec codec, uint8_t **bytes, size_t *len)
{
	struct mig_session_opts so = { .checkpointed = true, .codec = codec,
				       .config_json = JSON };
	struct hyp_dom_config cfg = harness_cfg("rt", DOM_MB, CMDLINE);
	struct mig_precopy_opts po = { 0 };
	struct rst_session *r = rst_new(t, true);
	struct mig_session *s;
	struct strm_io *io;
	const void *b;
	size_t fed = 0;
	uint32_t copy;
	char err[256];

	cr_assert_eq(hyp_domain_create(t->src, &cfg, false, &t->sid), 0);
	cr_assert(harness_wait_console(t->src, t->sid, "verify: sweep", 1, 20));
	t->npages = (uint64_t)DOM_MB << 8;
	cr_assert_eq(strm_io_mem_writer(&io), 0);
	cr_assert_eq(mig_session_create(t->src, t->sid, io, &so, err, sizeof(err), &s), 0, "%s",
		     err);
	cr_assert_eq(mig_session_precopy(s, &po), 0, "%s", err);
	for (unsigned e = 1; e <= CKPTS; e++) {
		if (e > 1)
			usleep(80 * 1000);
		epoch(t, s, MIG_EPOCH_CHECKPOINT | MIG_EPOCH_HOLD, e, err);
		feed_new(r, io, &fed);
		t->bound[e] = fed;
		cr_assert_eq(rst_session_committed(r), e, "after epoch %u", e);
		cr_assert_eq(hyp_domain_op_unpause(t->src, t->sid), 0);
	}
	usleep(80 * 1000);
	epoch(t, s, MIG_EPOCH_END, CKPTS + 1, err);
	mig_session_close(s);
	feed_new(r, io, &fed);
	cr_assert_eq(rst_session_finish(r), 0, "%s", rst_session_error(r));
	cr_assert_eq(rst_session_committed(r), CKPTS + 1, "the last epoch is not standing");
	cr_assert_eq(t->nseen, rst_session_committed(r));
	b = strm_io_mem_data(io, len);
	*bytes = malloc(*len);
	cr_assert(*bytes);
	memcpy(*bytes, b, *len);
	strm_io_close(io);

	/* The last epoch standing runs on: the guest finds its pages. */
	cr_assert_eq(rst_session_domid(r, &copy), 0);
	cr_assert_eq(rst_session_resume(r, NULL, NULL, true), 0, "%s", rst_session_error(r));
	rst_session_free(r);
	cr_assert(harness_wait_console(t->dst, copy, "verify: resume", 1, 20), "console:\n%s",
		  harness_console(t->dst, copy));
	cr_assert(strstr(harness_console(t->dst, copy), "verify: resume pages=1024 mismatches=0\n"),
		  "console:\n%s", harness_console(t->dst, copy));
	cr_assert_eq(hyp_domain_destroy(t->dst, copy), 0);
	cr_assert_eq(hyp_domain_destroy(t->src, t->sid), 0);
}

/* Cut at cut: epoch want stands with the source's memory of then. */
static void cut_at(struct rt *t, const uint8_t *b, size_t cut, uint64_t want)
{
	struct rst_session *r = rst_new(t, false);
	uint32_t domid;
	uint64_t diff;

	cr_assert_eq(rst_session_feed(r, b, cut), 0, "cut at %zu: %s", cut,
		     rst_session_error(r));
	cr_assert_eq(rst_session_finish(r), -ENODATA, "cut at %zu", cut);
	cr_assert_eq(rst_session_committed(r), want, "cut at %zu", cut);
	cr_assert_eq(rst_session_domid(r, &domid), 0);
	diff = dom_hash(t->dst, domid, t->npages, NULL, t->hash[want]);
	cr_assert_eq(diff, 0, "cut at %zu: %llu pages are not epoch %llu's", cut,
		     (unsigned long long)diff, (unsigned long long)want);
	rst_session_free(r);
}

static void run(enum strm_codec codec)
{
	struct rt t = { .src = harness_hyp("soft", 64), .dst = harness_hyp("soft", 64) };
	size_t lo, hi, len;
	uint8_t *b;

	round_trip(&t, codec, &b, &len);
	lo = t.bound[CKPTS - 1];
	hi = t.bound[CKPTS];
	/* The cut epoch changed pages: a copy that took them would show. */
	cr_assert_neq(memcmp(t.hash[CKPTS - 1], t.hash[CKPTS], t.npages * sizeof(uint64_t)), 0,
		      "the guest changed nothing in the last checkpoint");
	for (unsigned i = 0; i < 20; i++)
		cut_at(&t, b, lo + (hi - lo) * i / 20, CKPTS - 1);
	cut_at(&t, b, hi - 8, CKPTS - 1); /* just before CHECKPOINT_END (plain) */
	cut_at(&t, b, hi - 1, CKPTS - 1);
	cut_at(&t, b, hi, CKPTS);
	free(b);
	for (unsigned e = 0; e < CKPTS + 2; e++)
		free(t.hash[e]);
	hyp_destroy(t.src);
	hyp_destroy(t.dst);
}

Test(roundtrip, plain, .timeout = 60)
{
	run(STRM_CODEC_NONE);
}

Test(roundtrip, lz4, .timeout = 60)
{
	run(STRM_CODEC_LZ4);
}
