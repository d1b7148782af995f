// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the restore path on a whole stream, as `xl restore`
 * reads a file. rst_restore_domain gets each input through a memory io and
 * restores it into a soft-backend hyp that lives for the whole run, with
 * ferryd's config reader (xlm_cfg_from_json) and a xenstore to import the
 * subtree into: the decoder, then what restore does with each record
 * (domain creation, PAGE_DATA with its XTAB holes, HVM_CONTEXT entries and
 * load_done, FERRY_CONSOLE, EMULATOR_XENSTORE_DATA). A restore that works
 * is destroyed; one that fails must say why and leave no domain and no
 * frames behind, else abort().
 *
 * Harness limits, not restore's: every stream is restored on soft (a kvm
 * stream's entries then meet soft's loader, a hostile stream's lie), paused
 * (soft runs its workload inside ferryd), and a config asking for more than
 * MAX_MB of address space is refused here (the pool is POOL_MB; restore
 * bounds memory by the pool, but a large maxmem still costs a p2m and an
 * address-space reservation per input).
 *
 * Seeds (tests/fuzz/corpus/restore/): `xl save` of 8 MiB soft domains (idle;
 * a 2-vCPU verify with xenstore keys and mem-max, plain with the 512 XTABs of
 * a ballooned kvm save spliced in before X86_TSC_INFO, and lz4-framed), and
 * that kvm save (`xl mem-set` 6 of 8 MiB) with its data pages cut out;
 * the idle one again without its pages and with a space in a xenstore key.
 * Each input is also restored as a checkpointed stream (rst_session_*, as
 * HA's backup reads one): whatever the outcome, a session that committed
 * an epoch leaves its domain paused and not runnable, one that committed
 * none says why, and freeing the session leaves no domain and no frames.
 * Seeds ckpt-*: tests/restore/test-fixture.c.
 * FERRY_FUZZ_VERBOSE=1 prints ferryd's log and each input's outcome.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "devices/pv.h"
#include "guests/soft.h"
#include "hyp/hyp.h"
#include "restore/restore.h"
#include "stream/io.h"
#include "toolstack/config.h"
#include "xenstore/xenstore.h"

#define POOL_MB 64
#define MAX_MB 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static struct hyp *h;
static struct xs_store *store;
static uint32_t xs_domid; /* the entries the last restore made, 0: none */
static bool verbose;	   /* FERRY_FUZZ_VERBOSE: each input's outcome */

static int config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
		  size_t errlen)
{
	int rc = xlm_cfg_from_json_text(json, cfg, err, errlen);

	if (rc)
		return rc;
	if (cfg->maxmem_mb > MAX_MB) {
		snprintf(err, errlen, "harness: maxmem over %u MiB", MAX_MB);
		return -E2BIG;
	}
	snprintf(cfg->backend, sizeof(cfg->backend), "soft");
	return 0;
}

/* ferryd's call_import: the domain's entries, then the stream's pairs. */
static int xenstore(void *opaque, uint32_t domid, const char *pairs, size_t len)
{
	int err = xs_domain_create(store, domid, "restored", 1024);

	if (err)
		return err;
	xs_domid = domid;
	return len ? xs_import_pairs(store, domid, pairs, len) : 0;
}

static void setup(void)
{
	struct hyp_params p = { .backend = "soft", .pcpus = 1,
				.memory_bytes = (uint64_t)POOL_MB << 20,
				.soft_guest = &wl_soft_guest_ops,
				.pv_backend = &dev_pv_backend_ops };

	verbose = getenv("FERRY_FUZZ_VERBOSE") != NULL;
	log_set_stderr(verbose ? 1 : 0);
	if (hyp_create(&p, &h) || xs_store_new(NULL, &store))
		abort();
}

static void check_empty(const char *after)
{
	struct hyp_info i;

	if (hyp_get_info(h, &i))
		abort();
	if (i.ndomains || i.free_bytes != i.total_bytes) {
		fprintf(stderr, "fuzz-restore: after %s: %u domains, %llu of %llu bytes free\n",
			after, i.ndomains, (unsigned long long)i.free_bytes,
			(unsigned long long)i.total_bytes);
		abort();
	}
}

static void checkpointed(const uint8_t *data, size_t len)
{
	const struct rst_session_opts o = { .config = config, .max_epoch_bytes = 4 << 20 };
	struct rst_session *s;
	struct hyp_dom_info di;
	uint32_t domid;
	int rc;

	if (rst_session_new(h, &o, &s))
		abort();
	rc = rst_session_feed(s, data, len);
	if (!rc)
		rc = rst_session_finish(s);
	if (rc && !rst_session_error(s)[0])
		abort(); /* every failure says why */
	if (rst_session_committed(s)) {
		if (rst_session_domid(s, &domid) || hyp_domain_info(h, domid, &di) ||
		    di.state != HYP_DOM_PAUSED || !di.restoring)
			abort(); /* the last committed epoch waits, paused */
		if (hyp_domain_unpause(h, domid) != -EINVAL)
			abort();
	}
	if (verbose)
		fprintf(stderr, "fuzz-restore: checkpointed: %llu epochs%s%s\n",
			(unsigned long long)rst_session_committed(s), rc ? ": " : "",
			rc ? rst_session_error(s) : "");
	rst_session_free(s);
	check_empty("a checkpointed session");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const struct rst_opts o = { .paused = true, .config = config,
				    .xenstore = xenstore };
	struct strm_io *io;
	char err[512];
	uint32_t domid = 0;
	int rc;

	if (!h)
		setup();
	if (strm_io_mem_reader(data, len, &io))
		abort();
	xs_domid = 0;
	rc = rst_restore_domain(h, io, &o, &domid, NULL, err, sizeof(err));
	strm_io_close(io);
	if (rc && (!err[0] || !memchr(err, 0, sizeof(err))))
		abort(); /* every failure says why */
	if (verbose)
		fprintf(stderr, "fuzz-restore: %s\n", rc ? err : "restored");
	if (!rc && hyp_domain_destroy(h, domid))
		abort();
	check_empty(rc ? "a failed restore" : "destroying the restored domain");
	if (xs_domid)
		xs_domain_release(store, xs_domid);
	checkpointed(data, len);
	return 0;
}
