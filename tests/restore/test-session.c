// SPDX-License-Identifier: MIT
/*
 * Checkpointed streams into a paused soft domain (rst_session_*), from the
 * hand-built fixture (tests/common/ckpt-bytes.h): epochs committed in order
 * with the domain paused and unrunnable after each; a truncated or damaged
 * epoch discarded whole, at every byte of the last one; resume once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "abi/guest.h"
#include "hyp/context.h"
#include "session.h"

struct seen {
	struct hyp *h;
	uint64_t epochs[CKPT_MAX_EPOCHS];
	unsigned n;
};

/* After each commit: the epoch's memory, paused, unpause refused. */
static int on_epoch(void *opaque, uint32_t domid, uint64_t epoch)
{
	struct seen *s = opaque;

	cr_assert_lt(s->n, CKPT_MAX_EPOCHS);
	s->epochs[s->n++] = epoch;
	expect_epoch(s->h, domid, (unsigned)epoch);
	cr_expect(domain_paused(s->h, domid));
	cr_expect_eq(hyp_domain_unpause(s->h, domid), -EINVAL, "ran after epoch %llu",
		     (unsigned long long)epoch);
	return 0;
}

static struct rst_session *session(struct hyp *h, struct seen *seen, uint64_t max_epoch)
{
	struct rst_session_opts o = { .config = ckpt_config, .epoch = seen ? on_epoch : NULL,
				      .epoch_opaque = seen, .max_epoch_bytes = max_epoch };
	struct rst_session *s;

	cr_assert_eq(rst_session_new(h, &o, &s), 0);
	return s;
}

/* Feeds p[0, len) in chunks of chunk bytes; the first error. */
static int feed(struct rst_session *s, const uint8_t *p, size_t len, size_t chunk)
{
	int err = 0;

	for (size_t off = 0; !err && off < len; off += chunk)
		err = rst_session_feed(s, p + off, len - off < chunk ? len - off : chunk);
	return err;
}

static void whole_stream(size_t chunk)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct seen seen = { .h = h };
	struct ckpt c;
	struct rst_session *s;
	uint32_t domid;

	ckpt_fixture(&c);
	s = session(h, &seen, 0);
	cr_assert_eq(feed(s, c.p, c.len, chunk), 0, "%s", rst_session_error(s));
	cr_assert_eq(rst_session_finish(s), 0, "%s", rst_session_error(s));
	cr_assert_eq(seen.n, 3);
	for (unsigned i = 0; i < 3; i++)
		cr_expect_eq(seen.epochs[i], i + 1, "epoch %u came as %llu", i + 1,
			     (unsigned long long)seen.epochs[i]);
	cr_expect_eq(rst_session_committed(s), 3);
	cr_assert_eq(rst_session_domid(s, &domid), 0);
	expect_epoch(h, domid, 3);
	rst_session_free(s);
	cr_expect_neq(hyp_domain_info(h, domid, &(struct hyp_dom_info){ 0 }), 0,
		      "the domain of a session not resumed survived it");
	free(c.p);
	hyp_destroy(h);
}

Test(session, epochs_commit_in_order, .timeout = 60)
{
	whole_stream(1 << 20);
}

Test(session, byte_at_a_time, .timeout = 60)
{
	whole_stream(1);
}

/* Cut at every byte from the end of epoch 2 to the end of epoch 3: exactly
 * epoch 2 stands until the last byte of epoch 3's CHECKPOINT_END. */
Test(session, truncated_last_epoch_at_every_byte, .timeout = 300)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct ckpt c;

	ckpt_fixture(&c);
	for (size_t cut = c.epoch_end[2]; cut <= c.epoch_end[3]; cut++) {
		struct rst_session *s = session(h, NULL, 0);
		unsigned want = cut == c.epoch_end[3] ? 3 : 2;
		uint32_t domid;

		cr_assert_eq(rst_session_feed(s, c.p, cut), 0, "cut at %zu: %s", cut,
			     rst_session_error(s));
		cr_assert_eq(rst_session_finish(s), -ENODATA, "cut at %zu", cut);
		cr_assert(strstr(rst_session_error(s), "truncated"), "cut at %zu: %s", cut,
			  rst_session_error(s));
		cr_assert_eq(rst_session_committed(s), want, "cut at %zu", cut);
		cr_assert_eq(rst_session_domid(s, &domid), 0);
		expect_epoch(h, domid, want);
		cr_assert(domain_paused(h, domid));
		rst_session_free(s);
	}
	free(c.p);
	hyp_destroy(h);
}

/* The fixture with epoch 3 replaced: pages, then bad state of some kind. */
static void bad_third_epoch(struct ckpt *c, int how)
{
	ckpt_fixture_two(c);
	ckpt_fixture_third(c);
	if (how == 0)
		c->p[c->len - 8 - 16] = 2; /* SOFT_VCPU version 2: hyp refuses it */
	else
		ckpt_state(c, 3); /* a second HVM_CONTEXT in the epoch */
	ckpt_close(c, 3, 1);
	ckpt_tail(c);
}

/* Refused after its pages were staged: nothing of epoch 3 reaches memory. */
Test(session, damaged_epoch_never_half_applied, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 64);

	for (int how = 0; how < 2; how++) {
		struct ckpt c;
		struct rst_session *s = session(h, NULL, 0);
		uint32_t domid;
		int err;

		bad_third_epoch(&c, how);
		err = rst_session_feed(s, c.p, c.len);
		cr_assert_neq(err, 0, "case %d: accepted", how);
		cr_expect(strstr(rst_session_error(s), how ? "second HVM_CONTEXT" : "SOFT_VCPU"),
			  "case %d: %s", how, rst_session_error(s));
		cr_assert_eq(rst_session_committed(s), 2, "case %d", how);
		cr_assert_eq(rst_session_domid(s, &domid), 0);
		expect_epoch(h, domid, 2);
		cr_assert_eq(rst_session_finish(s), err, "errors are sticky");
		rst_session_free(s);
		free(c.p);
	}
	hyp_destroy(h);
}

/* Over the bound on one epoch: refused, the previous epoch stands. */
Test(session, epoch_over_the_limit, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct ckpt c;
	/* Epoch 2 holds 2 pages and some records: 3 pages do not fit 8 KiB. */
	struct rst_session *s = session(h, NULL, 8192);
	uint32_t domid;

	ckpt_fixture(&c);
	cr_assert_eq(rst_session_feed(s, c.p, c.len), -E2BIG);
	cr_expect(strstr(rst_session_error(s), "limit"), "%s", rst_session_error(s));
	cr_assert_eq(rst_session_committed(s), 1);
	cr_assert_eq(rst_session_domid(s, &domid), 0);
	expect_epoch(h, domid, 1);
	rst_session_free(s);
	free(c.p);
	hyp_destroy(h);
}

struct xs_seen {
	char pairs[64];
	size_t len;
};

static int on_xs(void *opaque, uint32_t domid, const char *pairs, size_t len)
{
	struct xs_seen *x = opaque;

	(void)domid;
	cr_assert_leq(len, sizeof(x->pairs));
	memcpy(x->pairs, pairs, len);
	x->len = len;
	return 0;
}

static uint32_t resume_count(struct hyp *h, uint32_t domid)
{
	struct hyp_domain *d;
	struct hyp_gmem gm;
	struct ferry_ctl ctl;

	cr_assert_eq(hyp_domain_get(h, domid, &d), 0);
	hyp_domain_gmem(d, &gm);
	memcpy(&ctl, gm.hva + FERRY_CTL_GPA, sizeof(ctl));
	hyp_domain_put(d);
	return ctl.resume_count;
}

/* Failover after the sender died in epoch 3: epoch 2 runs, with the
 * xenstore data of epoch 1 (the last that carried some), resumed once. */
Test(session, resume_the_last_committed_epoch, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct xs_seen xs = { 0 };
	struct ckpt c;
	struct rst_session *s = session(h, NULL, 0);
	uint32_t domid, before;
	struct hyp_dom_info di;

	ckpt_fixture(&c);
	cr_assert_eq(rst_session_feed(s, c.p, c.epoch_end[3] - 9), 0);
	cr_assert_eq(rst_session_finish(s), -ENODATA);
	cr_assert_eq(rst_session_committed(s), 2);
	cr_assert_eq(rst_session_domid(s, &domid), 0);
	before = resume_count(h, domid);
	cr_assert_eq(rst_session_resume(s, on_xs, &xs, false), 0, "%s", rst_session_error(s));
	cr_expect_eq(xs.len, 8);
	cr_expect_eq(memcmp(xs.pairs, "epoch\0" "1", 8), 0);
	cr_expect_eq(resume_count(h, domid), before + 1);
	cr_expect_eq(rst_session_resume(s, NULL, NULL, false), -ENODATA, "resumed twice");
	rst_session_free(s);
	/* The domain is the caller's now: restored, paused, runnable. */
	cr_assert_eq(hyp_domain_info(h, domid, &di), 0);
	cr_expect(!di.restoring);
	cr_expect_eq(hyp_domain_destroy(h, domid), 0);
	free(c.p);
	hyp_destroy(h);
}

/* Cut inside epoch 1: nothing stands, nothing to resume, nothing left. */
Test(session, no_epoch_no_domain, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct ckpt c;
	struct rst_session *s = session(h, NULL, 0);
	uint32_t domid;

	ckpt_fixture(&c);
	cr_assert_eq(rst_session_feed(s, c.p, c.epoch_end[1] - 1), 0);
	cr_assert_eq(rst_session_finish(s), -ENODATA);
	cr_assert_eq(rst_session_committed(s), 0);
	cr_assert_eq(rst_session_domid(s, &domid), 0);
	cr_assert_eq(rst_session_resume(s, NULL, NULL, false), -ENODATA);
	rst_session_free(s);
	cr_expect_neq(hyp_domain_info(h, domid, &(struct hyp_dom_info){ 0 }), 0);
	free(c.p);
	hyp_destroy(h);
}

/* A plain restore refuses a checkpointed stream, naming why. */
Test(session, plain_restore_refuses_checkpoints, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct rst_opts o = { .paused = true, .config = ckpt_config };
	struct strm_io *io;
	struct ckpt c;
	char err[512];
	uint32_t domid;

	ckpt_fixture(&c);
	cr_assert_eq(strm_io_mem_reader(c.p, c.len, &io), 0);
	cr_assert_eq(rst_restore_domain(h, io, &o, &domid, NULL, err, sizeof(err)), -EPROTO);
	cr_expect(strstr(err, "CHECKPOINT in a plain stream"), "%s", err);
	strm_io_close(io);
	free(c.p);
	hyp_destroy(h);
}

/* A plain stream read as checkpointed: it ends with no epoch to stand. */
Test(session, plain_stream_has_no_epoch, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct ckpt c;
	struct rst_session *s = session(h, NULL, 0);

	ckpt_head(&c);
	ckpt_pages(&c, 1, (const uint32_t[]){ 0 }, 1, NULL, 0);
	ckpt_state(&c, 1);
	ckpt_tail(&c);
	cr_assert_eq(rst_session_feed(s, c.p, c.len), 0, "%s", rst_session_error(s));
	cr_assert_eq(rst_session_finish(s), -EPROTO);
	cr_expect(strstr(rst_session_error(s), "without a complete epoch"), "%s",
		  rst_session_error(s));
	cr_assert_eq(rst_session_committed(s), 0);
	rst_session_free(s);
	free(c.p);
	hyp_destroy(h);
}
