// SPDX-License-Identifier: MIT
/*
 * snapshot/stream.h on a real domain: a soft domain running the built-in
 * guest's verify workload (with a balloon hole) is snapshotted through a
 * session (pages into the repository, the state from a memory writer),
 * then restored from the snapshot's stream and from an exported file: the
 * copies hold every page of the snapshot and the same holes, and resume
 * with verify finding no mismatch. A stream without data carries only the
 * holes; a damaged page fails the stream naming the pfn, and the restore
 * leaves nothing behind.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi/guest.h"
#include "formats/libxc-stream.h"
#include "harness.h"
#include "hyp/gmem.h"
#include "migrate/session.h"
#include "restore/restore.h"
#include "snapshot/repo.h"
#include "snapshot/stream.h"
#include "stream/codec.h"
#include "stream/io.h"
#include "tmpdir.h"

#define MEM_MB	 64
#define CMDLINE	 "workload=verify ws=4M rate=4M"
#define HOLE_GFN 0x3000u /* 48 MiB: above the verify guest's arena */
#define NHOLES	 64

TestSuite(snapshot_stream, .init = setup, .fini = teardown);

static const uint8_t uuid[16] = {0x5e, 0x57, 0x12};
static char err[1024];

static int copy_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *e,
		       size_t elen)
{
	(void)json;
	(void)e;
	(void)elen;
	*cfg = harness_cfg((const char *)opaque, MEM_MB, CMDLINE);
	snprintf(cfg->backend, sizeof(cfg->backend), "soft");
	return 0;
}

/* A live snapshot through a session, its state from the session's io. */
static void take(struct hyp *h, uint32_t id, struct snap_repo *r, const char *name, uint64_t npages)
{
	struct mig_session_opts so = {.config_json = "{\"c_info\":{\"name\":\"snap\"}}",
				      .sink_ops = &snap_sink_ops};
	struct mig_precopy_opts po = {0};
	struct mig_session *s;
	struct snap_writer *w;
	struct strm_io *io;
	const void *state;
	size_t len;

	cr_assert_eq(snap_begin(r, uuid, name, NULL, npages, &w, err, sizeof(err)), 0, "%s", err);
	so.sink = w;
	cr_assert_eq(strm_io_mem_writer(&io), 0);
	cr_assert_eq(mig_session_create(h, id, io, &so, err, sizeof(err), &s), 0, "%s", err);
	cr_assert_eq(mig_session_precopy(s, &po), 0, "%s", err);
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_END, NULL), 0, "%s", err);
	mig_session_close(s);
	state = strm_io_mem_data(io, &len);
	cr_assert_gt(len, 0);
	cr_assert_eq(snap_set_state(w, state, len), 0, "%s", err);
	strm_io_close(io);
	cr_assert_eq(snap_commit(w, NULL), 0, "%s", err);
}

/* Restores from io (paused) as a domain called name. */
static int restore(struct hyp *h, struct strm_io *io, const char *name, uint32_t *domid)
{
	struct rst_opts o = {.paused = true, .config = copy_config, .opaque = (void *)name};

	return rst_restore_domain(h, io, &o, domid, NULL, err, sizeof(err));
}

/* Every pfn of domid's memory is the snapshot's: its page, or a hole. */
static void expect_snapshot(struct hyp *h, uint32_t domid, struct snap_repo *r, const char *name)
{
	static uint8_t buf[SNAP_PAGE_SIZE];
	uint64_t holes[MEM_MB * 256 / 64], nholes = 0, data = 0;
	enum snap_page_kind kind;
	struct hyp_domain *d;
	struct snap_view *v;
	struct hyp_gmem gm;

	cr_assert_eq(hyp_domain_get(h, domid, &d), 0);
	hyp_domain_gmem(d, &gm);
	cr_assert_eq(gm.npages, MEM_MB * 256);
	cr_assert_eq(hyp_gmem_holes(d, holes, NULL), 0);
	cr_assert_eq(snap_view_open(r, uuid, name, &v, err, sizeof(err)), 0, "%s", err);
	for (uint64_t pfn = 0; pfn < gm.npages; pfn++) {
		bool hole = holes[pfn / 64] >> (pfn % 64) & 1;

		cr_assert_eq(snap_view_read(v, pfn, buf, &kind, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(hole, kind == SNAP_PAGE_HOLE, "pfn %#lx: hole %d, snapshot kind %d",
			     (unsigned long)pfn, hole, kind);
		nholes += hole;
		data += kind == SNAP_PAGE_DATA;
		if (pfn == FERRY_CTL_GPA >> 12) {
			/* restore bumps the guest's resume count, as a resume does */
			struct ferry_ctl *ctl = (struct ferry_ctl *)buf;

			cr_assert_eq(kind, SNAP_PAGE_DATA);
			ctl->resume_count++;
		}
		if (!hole)
			cr_assert_eq(memcmp(buf, gm.hva + pfn * SNAP_PAGE_SIZE, SNAP_PAGE_SIZE), 0,
				     "pfn %#lx differs from the snapshot's", (unsigned long)pfn);
	}
	cr_assert_eq(nholes, NHOLES);
	cr_assert_geq(data, 1024, "the working set is 1024 pages");
	snap_view_close(v);
	hyp_domain_put(d);
}

/* The copy runs and verify finds its working set whole. */
static void expect_resumes(struct hyp *h, uint32_t domid)
{
	cr_assert_eq(hyp_domain_unpause(h, domid), 0);
	cr_assert(harness_wait_console(h, domid, "verify: resume pages=1024 mismatches=0", 1, 30),
		  "the copy did not resume clean; console:\n%s", harness_console(h, domid));
	cr_assert(harness_wait_console(h, domid, "mismatches=0", 2, 30),
		  "no sweep after the resume; console:\n%s", harness_console(h, domid));
	cr_assert_null(strstr(harness_console(h, domid), "verify: mismatch "), "%s",
		       harness_console(h, domid));
	cr_assert_eq(hyp_domain_destroy(h, domid), 0);
}

/* The whole stream of a snapshot, read in odd-sized pieces. */
static uint8_t *read_stream(struct snap_repo *r, const char *name, unsigned flags, size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	uint8_t *buf = malloc(cap);
	struct strm_io *io;
	ssize_t got;

	cr_assert_eq(snap_stream_open(r, uuid, name, flags, &io, err, sizeof(err)), 0, "%s", err);
	for (size_t step = 1;; step = step * 3 % 100003 + 1) {
		if (cap - n < step) {
			cap = 2 * cap + step;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		got = strm_io_read(io, buf + n, step);
		cr_assert_geq(got, 0, "%s", strm_io_error(io));
		if (!got)
			break;
		n += (size_t)got;
	}
	cr_assert_eq(strm_io_close(io), 0);
	*len = n;
	return buf;
}

struct census {
	uint64_t data_pages, xtabs, records, max_batch;
	uint64_t hole[NHOLES];
};

static int count_rec(void *opaque, const struct strm_rec *rec)
{
	struct census *c = opaque;

	if (rec->layer != STRM_LIBXC || rec->type != REC_TYPE_PAGE_DATA)
		return 0;
	c->records++;
	if (rec->page_count > c->max_batch)
		c->max_batch = rec->page_count;
	for (uint32_t i = 0; i < rec->page_count; i++) {
		uint64_t t = rec->page_pfns[i] >> PAGE_DATA_TYPE_SHIFT;

		if (t == PAGE_TYPE_XTAB) {
			cr_assert_lt(c->xtabs, NHOLES);
			c->hole[c->xtabs++] = rec->page_pfns[i] & PAGE_DATA_PFN_MASK;
		} else {
			c->data_pages++;
		}
	}
	return 0;
}

static struct census decode(const uint8_t *buf, size_t len)
{
	struct strm_dec_limits lim = {.max_pfn = MEM_MB * 256};
	struct census c = {0};
	struct strm_dec *dec;

	cr_assert_eq(strm_dec_new(&lim, &dec), 0);
	cr_assert_eq(strm_dec_feed(dec, buf, len, count_rec, &c), 0, "%s", strm_dec_error(dec));
	cr_assert_eq(strm_dec_finish(dec), 0, "%s", strm_dec_error(dec));
	strm_dec_free(dec);
	return c;
}

static unsigned ndomains(struct hyp *h)
{
	uint32_t ids[16];

	return (unsigned)hyp_domain_list(h, ids, 16);
}

/* Flips one byte of the first page stored (slot 0) of the only pack. */
static void damage_pack(void)
{
	char cmd[PATH_MAX], pack[PATH_MAX];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ls '%s'/packs/*.pack", dir);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(pack, sizeof(pack), f));
	pack[strcspn(pack, "\n")] = 0;
	pclose(f);
	flip_byte(pack, 777, 0x40);
}

/*
 * Xen's own verifier (verify-stream-v2 from xen-utils-4.17) on an exported
 * file, when it is unpacked where tests/integration/xen-verify.sh keeps it
 * (or FERRY_XENLIB names its usr/lib/xen-4.17): that script fetches it.
 */
static void xen_verify(const char *file)
{
	const char *lib = getenv("FERRY_XENLIB"), *home = getenv("HOME");
	char xenlib[PATH_MAX], cmd[5 * PATH_MAX];
	int rc;

	if (lib)
		snprintf(xenlib, sizeof(xenlib), "%s", lib);
	else
		snprintf(xenlib, sizeof(xenlib),
			 "%s/.cache/ferry/xen-utils-4.17/root/usr/lib/xen-4.17",
			 home ? home : "/tmp");
	snprintf(cmd, sizeof(cmd), "%s/bin/verify-stream-v2", xenlib);
	if (access(cmd, X_OK)) {
		fprintf(stderr,
			"Xen's verify-stream-v2 is not in %s: not run (run "
			"tests/integration/xen-verify.sh once to fetch it)\n",
			xenlib);
		return;
	}
	snprintf(cmd, sizeof(cmd),
		 "PYTHONPATH='%s/lib/python' timeout 300 python3 '%s/bin/verify-stream-v2' "
		 "-f xl -v -i '%s' >'%s.verify' 2>&1",
		 xenlib, xenlib, file, file);
	rc = system(cmd);
	snprintf(cmd, sizeof(cmd), "tail -5 '%s.verify' >&2", file);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(rc, 0, "Xen's verify-stream-v2 refused %s (its report above)", file);
}

Test(snapshot_stream, a_snapshot_restores_from_its_stream_and_its_export, .timeout = 240)
{
	struct hyp_dom_config cfg = harness_cfg("snap", MEM_MB, CMDLINE);
	struct snap_repo_opts o = {.create = true};
	char path[PATH_MAX], pfn_msg[64];
	uint8_t *s1, *s2, *nd;
	size_t l1, l2, lnd;
	struct snap_verify_report rep;
	struct hyp_domain *d;
	struct snap_repo *r;
	struct strm_io *io;
	struct census c;
	struct stat st;
	uint64_t bytes;
	uint32_t id, copy;
	struct hyp *h;
	unsigned before;
	const char *at;
	int fd;

	h = harness_hyp("soft", 256);
	cr_assert_eq(hyp_domain_create(h, &cfg, false, &id), 0);
	cr_assert(harness_wait_console(h, id, "verify: sweep", 1, 30), "no sweep; console:\n%s",
		  harness_console(h, id));
	/* a balloon hole, which must come back as one */
	cr_assert_eq(hyp_domain_pause(h, id), 0);
	cr_assert_eq(hyp_domain_get(h, id, &d), 0);
	cr_assert_eq(hyp_gmem_unpopulate(d, HOLE_GFN, NHOLES), 0);
	hyp_domain_put(d);
	cr_assert_eq(hyp_domain_unpause(h, id), 0);
	cr_assert_eq(snap_repo_open(dir, &o, &r, err, sizeof(err)), 0, "%s", err);
	take(h, id, r, "s1", MEM_MB * 256);
	/* the source stays paused in the snapshot's state; it is not needed */
	cr_assert_eq(hyp_domain_destroy(h, id), 0);

	/* the stream, straight into a restore */
	cr_assert_eq(snap_stream_open(r, uuid, "s1", 0, &io, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(restore(h, io, "copy1", &copy), 0, "restore: %s", err);
	cr_assert_eq(strm_io_close(io), 0);
	expect_snapshot(h, copy, r, "s1");
	expect_resumes(h, copy);

	/* the same bytes every time, a plain stream in batches of at most 1024 */
	s1 = read_stream(r, "s1", 0, &l1);
	s2 = read_stream(r, "s1", 0, &l2);
	cr_assert_eq(l1, l2);
	cr_assert_eq(memcmp(s1, s2, l1), 0);
	c = decode(s1, l1);
	cr_assert_eq(c.xtabs, NHOLES);
	for (unsigned i = 0; i < NHOLES; i++)
		cr_assert_eq(c.hole[i], HOLE_GFN + i);
	cr_assert_geq(c.data_pages, 1024);
	cr_assert_eq(c.max_batch, PAGE_DATA_BATCH_MAX, "Xen's batches of 1024");

	/* exported to a file: the same bytes, and they restore the same */
	snprintf(path, sizeof(path), "%s/s1.save", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(snap_export(r, uuid, "s1", fd, &bytes, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(bytes, l1);
	cr_assert_eq((uint64_t)st.st_size, l1);
	cr_assert_eq(pread(fd, s2, l2, 0), (ssize_t)l2);
	cr_assert_eq(memcmp(s1, s2, l1), 0);
	xen_verify(path);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(strm_io_fd(fd, true, &io), 0);
	cr_assert_eq(restore(h, io, "copy2", &copy), 0, "restore: %s", err);
	cr_assert_eq(strm_io_close(io), 0);
	expect_snapshot(h, copy, r, "s1");
	expect_resumes(h, copy);

	/* without data: the state and the holes only */
	nd = read_stream(r, "s1", SNAP_STREAM_NO_DATA, &lnd);
	c = decode(nd, lnd);
	cr_assert_eq(c.data_pages, 0);
	cr_assert_eq(c.xtabs, NHOLES);
	cr_assert_eq(c.records, 1);
	for (unsigned i = 0; i < NHOLES; i++)
		cr_assert_eq(c.hole[i], HOLE_GFN + i);
	cr_assert_lt(lnd, l1 - 1024 * SNAP_PAGE_SIZE);

	/* a damaged page: the stream fails naming it; restore leaves nothing */
	damage_pack();
	cr_assert_eq(snap_verify(r, uuid, "s1", &rep, err, sizeof(err)), -EIO);
	at = strstr(err, "pfn 0x");
	cr_assert_not_null(at, "%s", err);
	snprintf(pfn_msg, sizeof(pfn_msg), "%.*s", (int)strcspn(at, ":"), at);
	before = ndomains(h);
	cr_assert_eq(snap_stream_open(r, uuid, "s1", 0, &io, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(restore(h, io, "copy3", &copy), -EIO);
	cr_assert_not_null(strstr(err, pfn_msg), "%s (want %s)", err, pfn_msg);
	cr_assert_not_null(strstr(strm_io_error(io), pfn_msg), "%s", strm_io_error(io));
	cr_assert_not_null(strstr(strm_io_error(io), "/packs/"), "%s", strm_io_error(io));
	cr_assert_not_null(strstr(strm_io_error(io), "/s1"), "%s", strm_io_error(io));
	cr_assert_eq(strm_io_close(io), -EIO);
	cr_assert_eq(ndomains(h), before, "the failed restore left a domain");
	cr_assert_eq(snap_export(r, uuid, "s1", fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC),
				 &bytes, err, sizeof(err)),
		     -EIO);
	close(fd);
	cr_assert_not_null(strstr(err, pfn_msg), "%s", err);
	/* the holes-only stream reads no page: it still works */
	free(read_stream(r, "s1", SNAP_STREAM_NO_DATA, &lnd));

	free(s1);
	free(s2);
	free(nd);
	snap_repo_close(r);
	hyp_destroy(h);
}

Test(snapshot_stream, a_snapshot_without_state_or_with_a_bad_one_has_no_stream)
{
	struct snap_repo_opts o = {.create = true};
	static uint8_t page[SNAP_PAGE_SIZE];
	const void *pages[1] = {page};
	uint64_t pfn = 1;
	struct snap_writer *w;
	struct snap_repo *r;
	struct strm_io *io;

	page[5] = 1;
	cr_assert_eq(snap_repo_open(dir, &o, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_begin(r, uuid, "bare", NULL, 16, &w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_put(w, &pfn, pages, 1), 0, "%s", err);
	cr_assert_eq(snap_commit(w, NULL), 0, "%s", err);
	cr_assert_eq(snap_stream_open(r, uuid, "bare", 0, &io, err, sizeof(err)), -ENOENT);
	cr_assert_not_null(strstr(err, "no state"), "%s", err);
	cr_assert_eq(snap_stream_open(r, uuid, "none", 0, &io, err, sizeof(err)), -ENOENT);

	cr_assert_eq(snap_begin(r, uuid, "junk", NULL, 16, &w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_set_state(w, "not a stream", 12), 0, "%s", err);
	cr_assert_eq(snap_commit(w, NULL), 0, "%s", err);
	cr_assert_eq(snap_stream_open(r, uuid, "junk", 0, &io, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "not a stream"), "%s", err);
	snap_repo_close(r);
}
