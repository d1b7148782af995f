// SPDX-License-Identifier: MIT
/*
 * The migration session (migrate/session.h) on a soft domain running the
 * built-in guest's verify workload: pre-copy, then checkpoints, then END,
 * into memory. A record walker written here (not stream/'s decoder) reads
 * the result: each epoch carries exactly the pages log-dirty saw dirtied
 * since the previous one (every page whose bytes changed among them, and
 * nothing while the domain stayed paused), the records come in Xen's
 * order (libxc CHECKPOINT, then libxl's subtree and CHECKPOINT_END), and
 * log-dirty stays on between epochs and is off after close.
 *
 * With FERRY_SESSION_STREAM=FILE the checkpointed stream is also written
 * to FILE, for Xen's verifier (tests/integration/xen-verify.sh).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/compiler.h"
#include "formats/libxc-stream.h"
#include "formats/libxl-stream.h"
#include "harness.h"
#include "hyp/gmem.h"
#include "logdirty/logdirty.h"
#include "migrate/session.h"
#include "stream/io.h"

#define MAX_EPOCHS 8
#define PG 4096

/* ---- a minimal record walker for plain streams ------------------------- */

struct w_epoch {
	char trace[64];	  /* one letter a record, PAGE_DATA runs as one 'P' */
	uint64_t npages;  /* PAGE_DATA entries with data */
	uint64_t nholes;  /* XTAB entries */
	uint64_t *pfns;	  /* the data entries' pfns, in order */
	const uint8_t **data; /* and their bytes in the stream */
};

struct walk {
	char head[16];	  /* records before the first page */
	unsigned nepochs; /* epochs closed by CHECKPOINT or END */
	struct w_epoch ep[MAX_EPOCHS + 1];
	bool libxl_end;
};

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void trace(char *t, char c)
{
	size_t n = strlen(t);

	if (c == 'P' && n && t[n - 1] == 'P')
		return;
	cr_assert_lt(n + 1, 64, "trace overflow: %s", t);
	t[n] = c;
	t[n + 1] = 0;
}

static void walk_page_data(struct w_epoch *e, const uint8_t *body, uint32_t len)
{
	uint32_t count = rd32(body);
	const uint8_t *data = body + 8 + (uint64_t)count * 8;

	cr_assert_leq(8 + (uint64_t)count * 8, len);
	e->pfns = realloc(e->pfns, (e->npages + count) * sizeof(*e->pfns));
	e->data = realloc(e->data, (e->npages + count) * sizeof(*e->data));
	cr_assert(e->pfns && e->data);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t v = rd64(body + 8 + i * 8);
		uint32_t type = (uint32_t)(v >> PAGE_DATA_TYPE_SHIFT);

		if (type == PAGE_TYPE_XTAB) {
			e->nholes++;
			continue;
		}
		cr_assert_eq(type, PAGE_TYPE_NOTAB, "entry type %#x", type);
		e->pfns[e->npages] = v & ((1ull << PAGE_DATA_TYPE_SHIFT) - 1);
		e->data[e->npages++] = data;
		data += PG;
	}
	cr_assert_leq((uint64_t)(data - body), len, "PAGE_DATA data past its record");
}

static char xc_letter(uint32_t type)
{
	switch (type) {
	case REC_TYPE_END: return 'E';
	case REC_TYPE_PAGE_DATA: return 'P';
	case REC_TYPE_X86_TSC_INFO: return 'T';
	case REC_TYPE_HVM_CONTEXT: return 'C';
	case REC_TYPE_HVM_PARAMS: return 'H';
	case REC_TYPE_CHECKPOINT: return 'K';
	case REC_TYPE_STATIC_DATA_END: return 'S';
	default: return '?';
	}
}

static char xl_letter(uint32_t type)
{
	switch (type) {
	case LIBXL_REC_END: return 'e';
	case LIBXL_REC_LIBXC_CONTEXT: return 'x';
	case LIBXL_REC_EMULATOR_XENSTORE_DATA: return 'd';
	case LIBXL_REC_CHECKPOINT_END: return 'k';
	default: return '?';
	}
}

/*
 * Walks b: the xl header, the libxl header, libxl records; LIBXC_CONTEXT
 * starts libxc's part, which runs to CHECKPOINT (libxl records to
 * CHECKPOINT_END, then libxc's next epoch, without headers) or END (libxl
 * records to the libxl END). Epoch i's trace has its libxc records then
 * its libxl ones.
 */
static void walk(const uint8_t *b, size_t len, struct walk *w)
{
	size_t p = 48 + rd32(b + 44); /* xl header, optional data */
	bool in_xc = false, headers = false;
	char *t = w->head;

	memset(w, 0, sizeof(*w));
	cr_assert_eq(memcmp(b + p, "LibxlFmt", 8), 0, "no libxl header at %zu", p);
	p += 16;
	while (p < len) {
		uint32_t type, rlen;

		if (in_xc && !headers) {
			cr_assert_eq(rd64(b + p), IHDR_MARKER, "no libxc image header");
			p += 40; /* image header, domain header */
			headers = true;
		}
		cr_assert_leq(p + 8, len, "record header past the end");
		type = rd32(b + p);
		rlen = rd32(b + p + 4);
		cr_assert_leq(p + 8 + ((rlen + 7ull) & ~7ull), len, "record past the end");
		if (in_xc) {
			trace(t, xc_letter(type));
			if (type == REC_TYPE_PAGE_DATA)
				walk_page_data(&w->ep[w->nepochs], b + p + 8, rlen);
			if (type == REC_TYPE_STATIC_DATA_END)
				t = w->ep[0].trace;
			in_xc = type != REC_TYPE_CHECKPOINT && type != REC_TYPE_END;
		} else {
			trace(t, xl_letter(type));
			/* libxc's part resumes after CHECKPOINT_END, no headers */
			in_xc = type == LIBXL_REC_LIBXC_CONTEXT || type == LIBXL_REC_CHECKPOINT_END;
			if (type == LIBXL_REC_CHECKPOINT_END || type == LIBXL_REC_END) {
				cr_assert_lt(w->nepochs, MAX_EPOCHS);
				t = w->ep[++w->nepochs].trace;
			}
			w->libxl_end = type == LIBXL_REC_END;
		}
		p += 8 + ((rlen + 7ull) & ~7ull);
	}
	cr_assert_eq(p, len, "the stream ends inside a record");
}

static void walk_free(struct walk *w)
{
	for (unsigned i = 0; i <= MAX_EPOCHS; i++) {
		free(w->ep[i].pfns);
		free(w->ep[i].data);
	}
}

/* ---- the domain -------------------------------------------------------- */

struct dom {
	struct hyp *h;
	uint32_t id;
	struct hyp_domain *d;
	struct hyp_gmem gm;
};

static void dom_start(struct dom *x, const char *cmdline)
{
	struct hyp_dom_config cfg = harness_cfg("ses", 64, cmdline);

	x->h = harness_hyp("soft", 256);
	cr_assert_eq(hyp_domain_create(x->h, &cfg, false, &x->id), 0);
	cr_assert(harness_wait_console(x->h, x->id, "verify: sweep", 1, 20),
		  "no sweep; console:\n%s", harness_console(x->h, x->id));
	cr_assert_eq(hyp_domain_get(x->h, x->id, &x->d), 0);
	hyp_domain_gmem(x->d, &x->gm);
}

static void dom_stop(struct dom *x)
{
	hyp_domain_put(x->d);
	hyp_destroy(x->h);
}

static enum hyp_dom_state dom_state(struct dom *x)
{
	struct hyp_dom_info info;

	cr_assert_eq(hyp_domain_info(x->h, x->id, &info), 0);
	return info.state;
}

/* The soft backend's write tracking is a userfaultfd: how many we hold. */
static int uffds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	char path[300], link[64];
	int n = 0;

	cr_assert(dir);
	while ((de = readdir(dir))) {
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = 0;
		n += !strcmp(link, "anon_inode:[userfaultfd]");
	}
	closedir(dir);
	return n;
}

static int xs_read(void *opaque, uint32_t domid, char **pairs, size_t *len)
{
	static const char kv[] = "name\0ses\0memory/target\0" "65536"; /* + its NUL */

	(void)opaque;
	(void)domid;
	*pairs = malloc(sizeof(kv));
	if (!*pairs)
		return -ENOMEM;
	memcpy(*pairs, kv, sizeof(kv));
	*len = sizeof(kv);
	return 0;
}

static bool listed(const struct w_epoch *e, uint64_t pfn)
{
	for (uint64_t i = 0; i < e->npages; i++)
		if (e->pfns[i] == pfn)
			return true;
	return false;
}

/*
 * Epoch e against guest memory now (paused) and before (the copy at the
 * previous epoch): every page whose bytes changed is in e, and every page
 * in e carries the memory's bytes now. Returns how many changed.
 */
static uint64_t check_epoch(const struct dom *x, const struct w_epoch *e, const uint8_t *before)
{
	uint64_t changed = 0;

	for (uint64_t pfn = 0; pfn < x->gm.npages; pfn++) {
		if (!memcmp(x->gm.hva + pfn * PG, before + pfn * PG, PG))
			continue;
		changed++;
		cr_assert(listed(e, pfn), "pfn %#llx changed but is not in the epoch",
			  (unsigned long long)pfn);
	}
	for (uint64_t i = 0; i < e->npages; i++)
		cr_assert_eq(memcmp(e->data[i], x->gm.hva + e->pfns[i] * PG, PG), 0,
			     "pfn %#llx: the stream's bytes are not the guest's",
			     (unsigned long long)e->pfns[i]);
	return changed;
}

static void save_copy(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* A domain running cmdline and a session on it writing to *io (memory). */
static struct mig_session *session_start(struct dom *x, const char *cmdline,
					 const struct mig_session_opts *so, char *err,
					 size_t errlen, struct strm_io **io)
{
	struct mig_session *s;

	dom_start(x, cmdline);
	cr_assert_eq(strm_io_mem_writer(io), 0);
	cr_assert_eq(mig_session_create(x->h, x->id, *io, so, err, errlen, &s), 0, "%s", err);
	return s;
}

/* After END: the domain is held paused by the session's last epoch. */
static void session_finish(struct dom *x, struct strm_io *io)
{
	strm_io_close(io);
	cr_assert_eq(hyp_domain_op_unpause(x->h, x->id), 0);
	dom_stop(x);
}

/* ---- tests ------------------------------------------------------------- */

Test(session, checkpoints_carry_what_changed, .timeout = 120)
{
	struct mig_session_opts so = { .checkpointed = true,
				       .config_json = "{\"c_info\":{\"name\":\"ses\"}}",
				       .xenstore = { .read = xs_read } };
	struct mig_precopy_opts po = { 0 };
	struct mig_epoch_stats st[4];
	struct mig_report rep;
	uint64_t precopied = 0;
	struct mig_session *s;
	struct strm_io *io;
	struct walk w;
	struct dom x;
	char err[256], tail[16];
	const uint8_t *bytes;
	uint8_t *before;
	uint64_t changed;
	size_t len;
	int u0;

	s = session_start(&x, "workload=verify ws=4M rate=4M", &so, err, sizeof(err), &io);
	u0 = uffds(); /* log-dirty is not on yet (asserted below) */
	before = malloc(x.gm.npages * PG);
	cr_assert(before);
	cr_assert_null(mig_session_logdirty(s), "log-dirty on before any round");
	cr_assert_eq(mig_session_precopy(s, &po), 0, "%s", err);

	/* Epoch 0: the rest of pre-copy; log-dirty stays on, the domain is
	 * held paused for the copy. */
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_CHECKPOINT | MIG_EPOCH_HOLD, &st[0]), 0,
		     "%s", err);
	cr_assert_not_null(mig_session_logdirty(s));
	cr_assert_eq(uffds(), u0 + 1, "log-dirty is not on between epochs");
	cr_assert_eq(dom_state(&x), HYP_DOM_PAUSED);
	memcpy(before, x.gm.hva, x.gm.npages * PG);

	/* Epoch 1, the domain paused all along: nothing was dirtied. */
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_CHECKPOINT | MIG_EPOCH_HOLD, &st[1]), 0,
		     "%s", err);
	cr_assert_eq(st[1].pages, 0, "%llu pages while paused",
		     (unsigned long long)st[1].pages);
	cr_assert_eq(hyp_domain_op_unpause(x.h, x.id), 0);
	cr_assert_eq(hyp_domain_op_unpause(x.h, x.id), 0);
	cr_assert_neq(dom_state(&x), HYP_DOM_PAUSED);

	/* Epoch 2 after 200 ms of the workload (about 1024 pages/s). */
	usleep(200 * 1000);
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_CHECKPOINT | MIG_EPOCH_HOLD, &st[2]), 0,
		     "%s", err);
	cr_assert_eq(uffds(), u0 + 1);
	bytes = strm_io_mem_data(io, &len);
	walk(bytes, len, &w);
	cr_assert_eq(w.nepochs, 3);
	changed = check_epoch(&x, &w.ep[2], before);
	fprintf(stderr, "  epoch 2: %llu pages sent, %llu changed, paused %.2f ms\n",
		(unsigned long long)st[2].pages, (unsigned long long)changed,
		st[2].paused_s * 1e3);
	cr_assert_eq(w.ep[2].npages, st[2].pages);
	cr_assert_geq(changed, 50, "the workload wrote %llu pages in 200 ms",
		      (unsigned long long)changed);
	/* Only what was dirtied: pages written without a change of bytes
	 * (the kernel's stack and counters) are few. */
	cr_assert_leq(st[2].pages, changed + 64, "%llu pages sent, %llu changed",
		      (unsigned long long)st[2].pages, (unsigned long long)changed);
	memcpy(before, x.gm.hva, x.gm.npages * PG);
	walk_free(&w);
	cr_assert_eq(hyp_domain_op_unpause(x.h, x.id), 0);

	/* The last epoch: END, the domain stays paused for the caller. */
	usleep(100 * 1000);
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_END, &st[3]), 0, "%s", err);
	cr_assert_eq(dom_state(&x), HYP_DOM_PAUSED);
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_CHECKPOINT, NULL), -EINVAL,
		     "an epoch after END");
	cr_assert_not_null(mig_session_logdirty(s));
	mig_session_report(s, &rep);
	mig_session_close(s);
	cr_assert_eq(uffds(), u0, "log-dirty is still on after close");

	bytes = strm_io_mem_data(io, &len);
	walk(bytes, len, &w);
	cr_assert_str_eq(w.head, "xS", "before the pages: %s", w.head);
	cr_assert_eq(w.nepochs, 5);
	cr_assert(w.libxl_end, "no libxl END");
	/* Xen's order: PAGE_DATA, X86_TSC_INFO, HVM_CONTEXT, HVM_PARAMS,
	 * then CHECKPOINT, the subtree, CHECKPOINT_END; the last epoch closes
	 * the same way, then END, the subtree, libxl END, nothing between. */
	cr_assert_str_eq(w.ep[4].trace, "Ede");
	cr_assert_eq(w.ep[4].npages, 0);
	/* Epoch 0 has the pre-copy rounds, then the paused part. */
	for (unsigned r = 0; r < rep.rounds; r++)
		precopied += rep.pages_per_round[r];
	snprintf(tail, sizeof(tail), "TC%s", hyp_domain_callback_param(x.d) ? "H" : "");
	for (unsigned i = 0; i < 4; i++) {
		char want[32];

		snprintf(want, sizeof(want), "%s%sKdk", i == 1 ? "" : "P", tail);
		cr_assert_str_eq(w.ep[i].trace, want, "epoch %u: %s, want %s", i, w.ep[i].trace,
				 want);
		cr_assert_eq(w.ep[i].npages, st[i].pages + (i ? 0 : precopied), "epoch %u", i);
		cr_assert_eq(w.ep[i].nholes, 0);
	}
	changed = check_epoch(&x, &w.ep[3], before);
	cr_assert_geq(changed, 20);
	cr_assert_leq(st[3].pages, changed + 64);
	/* Epoch 0 has every populated page of the guest (nothing elided),
	 * more than the 1024 of the working set. */
	cr_assert_gt(w.ep[0].npages, 1024);
	if (getenv("FERRY_SESSION_STREAM"))
		save_copy(getenv("FERRY_SESSION_STREAM"), bytes, len);
	walk_free(&w);
	free(before);
	session_finish(&x, io);
}

Test(session, a_plain_session_refuses_checkpoints, .timeout = 60)
{
	struct mig_session_opts so = { .config_json = "{}" };
	struct mig_session *s;
	struct strm_io *io;
	struct dom x;
	char err[256];
	int u0;

	s = session_start(&x, "workload=verify ws=1M rate=1M", &so, err, sizeof(err), &io);
	u0 = uffds();
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_CHECKPOINT, NULL), -EINVAL);
	cr_assert_neq(dom_state(&x), HYP_DOM_PAUSED, "a refused epoch paused the domain");
	/* Without pre-copy, END sends every populated page, no log-dirty. */
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_END, NULL), 0, "%s", err);
	cr_assert_eq(uffds(), u0);
	cr_assert_null(mig_session_logdirty(s));
	mig_session_close(s);
	session_finish(&x, io);
}

/* A sink that checks and counts what it is given (a snapshot image's
 * place): the calls come in order, the pages are the guest's. */
struct count_sink {
	struct dom *x;
	unsigned begins, ends, flushes, last_epoch;
	bool open;
	uint64_t pages, holes, bad;
};

static int cs_begin(void *sink, unsigned epoch)
{
	struct count_sink *c = sink;

	c->begins++;
	c->open = true;
	c->last_epoch = epoch;
	return 0;
}

static int cs_put(void *sink, const uint64_t *pfns, const void *const *pages, uint32_t count)
{
	struct count_sink *c = sink;

	if (!c->open || !count || count > MIG_SINK_BATCH_MAX)
		c->bad++;
	for (uint32_t i = 0; i < count; i++)
		if (pages[i] != c->x->gm.hva + pfns[i] * PG)
			c->bad++; /* borrowed from guest memory, not copied */
	c->pages += count;
	return 0;
}

static int cs_holes(void *sink, const uint64_t *pfns, uint32_t count)
{
	struct count_sink *c = sink;

	(void)pfns;
	c->holes += count;
	return 0;
}

static int cs_flush(void *sink)
{
	((struct count_sink *)sink)->flushes++;
	return 0;
}

static int cs_end(void *sink, unsigned epoch)
{
	struct count_sink *c = sink;

	if (!c->open || epoch != c->last_epoch)
		c->bad++;
	c->open = false;
	c->ends++;
	return 0;
}

static const struct mig_page_sink_ops count_sink_ops = {
	.begin = cs_begin, .put = cs_put, .holes = cs_holes, .flush = cs_flush, .end = cs_end,
};

Test(session, pages_go_to_the_page_sink, .timeout = 60)
{
	struct count_sink c = { 0 };
	struct mig_session_opts so = { .config_json = "{}", .checkpointed = true,
				       .sink_ops = &count_sink_ops, .sink = &c };
	struct mig_epoch_stats st[2];
	struct mig_session *s;
	struct strm_io *io;
	struct walk w;
	struct dom x;
	char err[256];
	const uint8_t *bytes;
	uint64_t populated;
	size_t len;

	s = session_start(&x, "workload=verify ws=1M rate=1M", &so, err, sizeof(err), &io);
	c.x = &x;
	/* No pre-copy: the first epoch, paused, has every populated page. */
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_CHECKPOINT | MIG_EPOCH_HOLD, &st[0]), 0,
		     "%s", err);
	cr_assert_eq(hyp_gmem_populated(x.d, (uint64_t[1024]){ 0 }, &populated), 0);
	cr_assert_eq(st[0].pages, populated);
	cr_assert_eq(c.pages, populated);
	cr_assert_not_null(mig_session_logdirty(s));
	cr_assert_eq(hyp_domain_op_unpause(x.h, x.id), 0);
	usleep(100 * 1000);
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_END, &st[1]), 0, "%s", err);
	cr_assert_gt(st[1].pages, 0);
	cr_assert_lt(st[1].pages, populated / 2, "the second epoch resent everything");
	cr_assert_eq(c.pages, st[0].pages + st[1].pages);
	cr_assert_eq(c.begins, 2);
	cr_assert_eq(c.ends, 2);
	cr_assert_eq(c.bad, 0, "%llu calls out of order or pages copied",
		     (unsigned long long)c.bad);
	mig_session_close(s);
	/* The stream has the state records and no page. */
	bytes = strm_io_mem_data(io, &len);
	walk(bytes, len, &w);
	cr_assert_eq(w.nepochs, 3);
	cr_assert_eq(w.ep[0].npages + w.ep[1].npages, 0);
	cr_assert_eq(w.ep[0].trace[0], 'T', "%s", w.ep[0].trace);
	cr_assert_eq(w.ep[1].trace[0], 'T', "%s", w.ep[1].trace);
	walk_free(&w);
	session_finish(&x, io);
}

struct unframed {
	uint8_t *buf;
	size_t len;
};

static int unframe_out(void *opaque, const void *raw, size_t len)
{
	struct unframed *u = opaque;

	u->buf = realloc(u->buf, u->len + len);
	cr_assert(u->buf);
	memcpy(u->buf + u->len, raw, len);
	u->len += len;
	return 0;
}

/* The xl header as written, then the frames' raw bytes; *done: end frame. */
static void unframe(const uint8_t *b, size_t len, struct unframed *u, bool *done)
{
	size_t hdr = 48 + rd32(b + 44);
	struct strm_frame_dec *fd;

	u->len = 0;
	unframe_out(u, b, hdr);
	cr_assert_eq(strm_frame_dec_new(&fd), 0);
	cr_assert_eq(strm_frame_dec_feed(fd, b + hdr, len - hdr, unframe_out, u), 0);
	*done = strm_frame_dec_done(fd);
	strm_frame_dec_free(fd);
}

/* With frames, each checkpoint ends its frame: a receiver has the whole
 * epoch without waiting for the next. */
Test(session, a_framed_checkpoint_is_whole_on_the_wire, .timeout = 60)
{
	struct mig_session_opts so = { .config_json = "{}", .checkpointed = true,
				       .codec = STRM_CODEC_LZ4 };
	struct mig_precopy_opts po = { 0 };
	struct unframed u = { 0 };
	struct mig_session *s;
	struct strm_io *io;
	struct walk w;
	struct dom x;
	char err[256];
	const uint8_t *bytes;
	size_t len;
	bool done;

	s = session_start(&x, "workload=verify ws=1M rate=1M", &so, err, sizeof(err), &io);
	cr_assert_eq(mig_session_precopy(s, &po), 0, "%s", err);
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_CHECKPOINT, NULL), 0, "%s", err);
	bytes = strm_io_mem_data(io, &len);
	unframe(bytes, len, &u, &done);
	cr_assert_not(done);
	/* Everything written so far came out of whole frames, up to and
	 * including CHECKPOINT_END. */
	cr_assert_geq(u.len, 8);
	cr_assert_eq(rd32(u.buf + u.len - 8), LIBXL_REC_CHECKPOINT_END);
	cr_assert_eq(rd32(u.buf + u.len - 4), 0);
	usleep(50 * 1000);
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_END, NULL), 0, "%s", err);
	mig_session_close(s);
	bytes = strm_io_mem_data(io, &len);
	unframe(bytes, len, &u, &done);
	cr_assert(done, "no end frame");
	walk(u.buf, u.len, &w);
	cr_assert_eq(w.nepochs, 3);
	cr_assert(w.libxl_end);
	cr_assert_eq(w.ep[0].trace[0], 'P', "%s", w.ep[0].trace);
	cr_assert_eq(w.ep[0].trace[strlen(w.ep[0].trace) - 1], 'k', "%s", w.ep[0].trace);
	cr_assert_eq(w.ep[1].trace[strlen(w.ep[1].trace) - 1], 'k', "%s", w.ep[1].trace);
	cr_assert_str_eq(w.ep[2].trace, "Ee", "%s", w.ep[2].trace);
	walk_free(&w);
	free(u.buf);
	session_finish(&x, io);
}
