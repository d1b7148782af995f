/* SPDX-License-Identifier: MIT */
/* Helpers of the restore suite (header-only): a soft hyp, a config, and
 * checks of a paused domain's memory against the checkpointed fixture. */
#ifndef TESTS_RESTORE_SESSION_H
#define TESTS_RESTORE_SESSION_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>

#include "ckpt-bytes.h"
#include "harness.h"
#include "hyp/gmem.h"
#include "restore/restore.h"

#define DOM_MB 8

static inline int ckpt_config(void *opaque, const char *json, struct hyp_dom_config *cfg,
			      char *err, size_t errlen)
{
	(void)opaque;
	(void)err;
	(void)errlen;
	cr_assert_str_eq(json, CKPT_JSON);
	*cfg = harness_cfg("ckpt", DOM_MB, "");
	snprintf(cfg->backend, sizeof(cfg->backend), "soft");
	return 0;
}

/* Asserts domid's memory is the fixture's after epoch e (pfns 0..15). */
static inline void expect_epoch(struct hyp *h, uint32_t domid, unsigned e)
{
	uint64_t holes[DOM_MB * 256 / 64];
	struct hyp_domain *d;
	struct hyp_gmem gm;

	cr_assert_eq(hyp_domain_get(h, domid, &d), 0);
	hyp_domain_gmem(d, &gm);
	cr_assert_eq(hyp_gmem_holes(d, holes, NULL), 0);
	for (unsigned p = 0; p < CKPT_PAGES; p++) {
		int want = ckpt_fixture_byte(e, p);
		bool hole = holes[p / 64] >> (p % 64) & 1;
		const uint8_t *pg = gm.hva + (size_t)p * 4096;

		cr_assert_eq(hole, want < 0, "epoch %u: pfn %u %s a hole", e, p,
			     hole ? "is" : "is not");
		if (want < 0)
			continue;
		for (unsigned i = 0; i < 4096; i++)
			cr_assert_eq(pg[i], (uint8_t)want,
				     "epoch %u: pfn %u byte %u is 0x%02x, expected 0x%02x", e,
				     p, i, pg[i], want);
	}
	hyp_domain_put(d);
}

static inline bool domain_paused(struct hyp *h, uint32_t domid)
{
	struct hyp_dom_info di;

	cr_assert_eq(hyp_domain_info(h, domid, &di), 0);
	return di.state == HYP_DOM_PAUSED;
}

#endif
