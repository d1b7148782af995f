// SPDX-License-Identifier: MIT
/*
 * Lazy restore (restore/lazy.h): the stream's state through restore/'s
 * record handling, the memory through userfaultfd faults served from a
 * page source, and a fetcher thread bringing in the rest.
 *
 * Where the kernel has minor faults on shared memory the domain's frames
 * are taken unscrubbed (hyp_domain_create_lazy: punching warm frames cost
 * more than the whole time to a running guest). A page is then written
 * into its frame by hyp_gmem_fill_pending, which only the first of the
 * fault handler and the fetcher does, and mapped by UFFDIO_CONTINUE: a
 * hole faults as missing, a warm frame as minor, and neither is mapped
 * before it holds the image's page. Without minor faults the frames are
 * scrubbed holes and a page is installed with UFFDIO_COPY, atomic and
 * never over a present page (EEXIST). Either way a page the guest wrote
 * after it arrived is never replaced by the image's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bitmap.h"
#include "common/err.h"
#include "common/log.h"
#include "hyp/uffd.h"
#include "internal.h"
#include "restore/lazy.h"

#define LAZY_PAGE    4096
#define LAZY_MSG_MAX 512
/* The fetcher looks whether the domain still exists this often (pages). */
#define LAZY_ALIVE_EVERY 1024

struct rst_lazy {
	struct hyp *h;
	uint32_t domid;
	struct hyp_domain *d; /* a reference, while the memory is ours to fill */
	struct hyp_uffd *u;
	uint64_t npages;
	bool attached;
	bool minor; /* unscrubbed frames: fill, then UFFDIO_CONTINUE */

	const struct rst_page_source_ops *ops;
	void *src;
	uint8_t *fault_buf, *fetch_buf;

	rst_lazy_failed_fn failed_fn;
	void *failed_opaque;

	pthread_mutex_t lock; /* what follows */
	pthread_cond_t cond;  /* done, failed or gone changed */
	bool started;	      /* the domain may run: never a zero page now */
	bool failed, done, gone;
	bool reported; /* a failure's pause and callback are done */
	char msg[LAZY_MSG_MAX];
	uint32_t *lat_ns; /* service time of each fault */
	uint64_t nlat, caplat;
	uint64_t faults, fetched, pages;
	double t0, t_created, t_running, t_all;

	pthread_t thread;
	bool thread_on;
};

static const uint8_t zero_page[LAZY_PAGE] __attribute__((aligned(LAZY_PAGE)));

static void record_fault(struct rst_lazy *l, double t)
{
	uint32_t ns = (uint32_t)((rst_now() - t) * 1e9);

	pthread_mutex_lock(&l->lock);
	l->faults++;
	if (l->nlat == l->caplat) {
		uint64_t cap = l->caplat ? 2 * l->caplat : 4096;
		uint32_t *p = realloc(l->lat_ns, cap * sizeof(*p));

		if (p) {
			l->lat_ns = p;
			l->caplat = cap;
		}
	}
	if (l->nlat < l->caplat)
		l->lat_ns[l->nlat++] = ns;
	pthread_mutex_unlock(&l->lock);
}

/*
 * The source failed at pfn: the first failure is kept, logged and, once
 * the domain may run, makes it paused for good (its faulting thread gets
 * no page). Before that, the restore itself fails (rst_lazy_restore).
 */
static void fail(struct rst_lazy *l, const char *msg)
{
	bool first, started;

	pthread_mutex_lock(&l->lock);
	first = !l->failed;
	started = l->started;
	if (first) {
		l->failed = true;
		snprintf(l->msg, sizeof(l->msg), "%s", msg);
	}
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	if (!first)
		return;
	log_err("d%u: lazy restore: %s", l->domid, msg);
	if (started) {
		hyp_domain_mem_lost(l->h, l->domid);
		if (l->failed_fn)
			l->failed_fn(l->failed_opaque, l->domid, msg);
	}
	pthread_mutex_lock(&l->lock);
	l->reported = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static bool has_failed(struct rst_lazy *l)
{
	bool f;

	pthread_mutex_lock(&l->lock);
	f = l->failed;
	pthread_mutex_unlock(&l->lock);
	return f;
}

/* One page from the source into buf; on failure the source's message. */
static int fetch(struct rst_lazy *l, uint64_t pfn, uint8_t *buf)
{
	char msg[LAZY_MSG_MAX] = "";
	int err;

	err = l->ops->fetch(l->src, pfn, buf, msg, sizeof(msg));
	if (err) {
		if (!msg[0])
			snprintf(msg, sizeof(msg), "pfn %#llx: %s", (unsigned long long)pfn,
				 ferry_strerror(err));
		fail(l, msg);
	}
	return err;
}

/* The image's page buf for pfn in its place, unless it arrived already,
 * and mapped. */
static int install(struct rst_lazy *l, uint64_t pfn, const uint8_t *buf)
{
	int err;

	if (!l->minor) {
		err = hyp_uffd_copy(l->u, pfn, buf);
		if (!err)
			hyp_p2m_set_arrived(l->d, pfn, 1);
		return err;
	}
	err = hyp_gmem_fill_pending(l->d, pfn, buf);
	if (err && err != -EEXIST)
		return err;
	return hyp_uffd_continue(l->u, pfn, 1);
}

/* The fault kinds on_created attached leave (none attached: nothing). */
static void detach_faults(struct rst_lazy *l)
{
	hyp_uffd_detach(l->u, HYP_UFFD_MISSING);
	if (l->minor)
		hyp_uffd_detach(l->u, HYP_UFFD_MINOR);
}

/* The fault thread (hyp/uffd.h): one page not mapped yet. */
static int on_fault(void *opaque, struct hyp_uffd *u, enum hyp_uffd_kind kind, uint64_t pfn)
{
	struct rst_lazy *l = opaque;
	double t = rst_now();
	int err;

	(void)kind;
	if (hyp_p2m_type(l->d, pfn) != HYP_P2M_PENDING) {
		/* Arrived (a frame with its page: map it), or a balloon's
		 * hole or a frame populated since: zeros, as ever. */
		if (l->minor && !hyp_uffd_continue(u, pfn, 1))
			return 0;
		return hyp_uffd_copy(u, pfn, zero_page);
	}
	if (has_failed(l) || fetch(l, pfn, l->fault_buf)) {
		bool started;

		pthread_mutex_lock(&l->lock);
		started = l->started;
		pthread_mutex_unlock(&l->lock);
		/* The restore's own thread (loading the state) goes on and the
		 * restore then fails: the guest never runs. */
		return started ? -EIO : install(l, pfn, zero_page);
	}
	err = install(l, pfn, l->fault_buf);
	if (err)
		return err;
	record_fault(l, t);
	return 0;
}

static bool domain_alive(struct rst_lazy *l)
{
	struct hyp_dom_info di;

	return !hyp_domain_info(l->h, l->domid, &di) && di.state != HYP_DOM_DYING;
}

/* The fetcher: every page still to come, in pfn order. */
static void *fetcher(void *arg)
{
	struct rst_lazy *l = arg;
	uint64_t pfn;
	int err = 0;

	for (pfn = 0; pfn < l->npages && !err; pfn++) {
		if (pfn % LAZY_ALIVE_EVERY == 0 && (has_failed(l) || !domain_alive(l)))
			break;
		if (hyp_p2m_type(l->d, pfn) != HYP_P2M_PENDING)
			continue;
		err = fetch(l, pfn, l->fetch_buf);
		if (err)
			break;
		err = install(l, pfn, l->fetch_buf);
		if (err) {
			char msg[LAZY_MSG_MAX];

			snprintf(msg, sizeof(msg), "installing pfn %#llx: %s",
				 (unsigned long long)pfn, ferry_strerror(err));
			fail(l, msg);
			break;
		}
		pthread_mutex_lock(&l->lock);
		l->fetched++;
		pthread_mutex_unlock(&l->lock);
	}
	pthread_mutex_lock(&l->lock);
	if (pfn >= l->npages && !err && !l->failed) {
		l->done = true;
		l->t_all = rst_now();
	} else if (!l->failed) {
		l->gone = true;
	}
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	/* Nothing is missing any more: the kernel's own zero fill serves a
	 * balloon's new frames, and log-dirty may replace the fd safely. */
	if (l->done)
		detach_faults(l);
	return NULL;
}

/* restore/'s hook: the domain exists, nothing of the stream is in it yet. */
static int on_created(void *opaque, struct rst *r)
{
	struct rst_lazy *l = opaque;
	int err;

	l->t_created = rst_now();
	l->domid = r->domid;
	err = hyp_domain_get(r->h, r->domid, &l->d);
	if (err)
		return rst_fail(r, err, "domain %u vanished while restoring", r->domid);
	l->u = hyp_domain_uffd(l->d);
	l->npages = r->gm.npages;
	/* Fresh frames are holes of the pool: every page reads as missing.
	 * hyp_domain_create_lazy made them all pending already. */
	err = l->minor ? 0 : hyp_p2m_set_pending(l->d, 0, l->npages);
	if (!err)
		err = hyp_uffd_attach(l->u, HYP_UFFD_MISSING, on_fault, l);
	if (!err && l->minor) {
		err = hyp_uffd_attach(l->u, HYP_UFFD_MINOR, on_fault, l);
		if (err)
			detach_faults(l);
	}
	if (err)
		return rst_fail(r, err, "registering the domain's memory for missing pages: %s",
				ferry_strerror(err));
	l->attached = true;
	return 0;
}

/* Lets the memory go: stops serving faults, drops the domain, closes the
 * source. The fetcher has stopped. */
static void release(struct rst_lazy *l)
{
	if (l->attached)
		detach_faults(l);
	if (l->d)
		hyp_domain_put(l->d);
	if (l->ops->close)
		l->ops->close(l->src);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l->fault_buf);
	free(l->fetch_buf);
	free(l->lat_ns);
	free(l);
}

static struct rst_lazy *lazy_new(struct hyp *h, const struct rst_page_source_ops *ops, void *src,
				 const struct rst_lazy_opts *o)
{
	struct rst_lazy *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->h = h;
	l->ops = ops;
	l->src = src;
	l->failed_fn = o->failed;
	l->failed_opaque = o->failed_opaque;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	if (posix_memalign((void **)&l->fault_buf, LAZY_PAGE, LAZY_PAGE))
		l->fault_buf = NULL;
	if (posix_memalign((void **)&l->fetch_buf, LAZY_PAGE, LAZY_PAGE))
		l->fetch_buf = NULL;
	if (!l->fault_buf || !l->fetch_buf) {
		release(l);
		return NULL;
	}
	return l;
}

/* The restored, still paused domain may run now: from here on a failed
 * page pauses it instead of failing the restore. */
static int start(struct rst_lazy *l, const struct rst_lazy_opts *o, char *err, size_t errlen)
{
	uint64_t *map;
	int rc;

	pthread_mutex_lock(&l->lock);
	if (l->failed) {
		snprintf(err, errlen, "%s", l->msg);
		pthread_mutex_unlock(&l->lock);
		return -EIO;
	}
	l->started = true;
	pthread_mutex_unlock(&l->lock);
	rc = -pthread_create(&l->thread, NULL, fetcher, l);
	if (rc) {
		snprintf(err, errlen, "cannot start the page fetcher: %s", ferry_strerror(rc));
		return rc;
	}
	l->thread_on = true;
	if (!o->restore.paused) {
		rc = hyp_domain_unpause(l->h, l->domid);
		if (rc) {
			snprintf(err, errlen, "cannot unpause the restored domain: %s",
				 has_failed(l) ? l->msg : ferry_strerror(rc));
			return rc;
		}
	}
	l->t_running = rst_now();
	/* For the figures only, after the domain runs. */
	map = malloc(BITMAP_BYTES(l->npages) + 8);
	if (map) {
		uint64_t n = 0;

		hyp_p2m_find(l->d, HYP_P2M_PENDING, map, &n);
		pthread_mutex_lock(&l->lock);
		l->pages = n + l->fetched + l->faults;
		pthread_mutex_unlock(&l->lock);
		free(map);
	}
	return 0;
}

int rst_lazy_restore(struct hyp *h, struct strm_io *state_io, const struct rst_page_source_ops *ops,
		     void *src, const struct rst_lazy_opts *o, uint32_t *domid,
		     struct rst_lazy **out, char *err, size_t errlen)
{
	struct rst_opts ro = o->restore;
	char why[256];
	struct rst_lazy *l;
	int rc;

	err[0] = 0;
	rc = hyp_uffd_supported(HYP_UFFD_MISSING, why, sizeof(why));
	if (rc) {
		snprintf(err, errlen,
			 "a lazy restore needs missing-page faults on guest "
			 "memory, which this kernel lacks (%s): restore without --lazy",
			 why);
		if (ops->close)
			ops->close(src);
		return rc;
	}
	l = lazy_new(h, ops, src, o);
	if (!l) {
		snprintf(err, errlen, "no memory for a lazy restore");
		if (ops->close)
			ops->close(src);
		return -ENOMEM;
	}
	l->t0 = rst_now();
	l->minor = !o->scrubbed && !hyp_uffd_supported(HYP_UFFD_MINOR, NULL, 0);
	/* Paused until the fetcher runs and a failure can no longer hand the
	 * guest a zero page (start). */
	ro.paused = true;
	rc = rst_restore_hooked(h, state_io, &ro, on_created, l, l->minor, domid, NULL, err, errlen);
	if (rc) {
		/* What the state load tripped over may be the zeros it was
		 * given for a page the source could not read: that is why. */
		if (has_failed(l)) {
			snprintf(err, errlen, "%s", l->msg);
			rc = -EIO;
		}
		goto err_free; /* restore/ destroyed the domain */
	}
	rc = start(l, o, err, errlen);
	if (rc)
		goto err_destroy;
	log_info("d%u: lazy restore: running after %.3f ms", l->domid,
		 (l->t_running - l->t0) * 1e3);
	*out = l;
	return 0;

err_destroy:
	if (l->thread_on) {
		/* No vCPU ran: nothing waits on a missing page but the fetcher,
		 * which ends with the domain. */
		hyp_domain_destroy(h, l->domid);
		pthread_join(l->thread, NULL);
		l->thread_on = false;
	} else {
		hyp_domain_destroy(h, l->domid);
	}
err_free:
	release(l);
	return rc;
}

int rst_lazy_wait(struct rst_lazy *l, char *err, size_t errlen)
{
	int rc = 0;

	pthread_mutex_lock(&l->lock);
	while (!l->done && !l->reported && !l->gone)
		pthread_cond_wait(&l->cond, &l->lock);
	if (l->failed) {
		snprintf(err, errlen, "%s", l->msg);
		rc = -EIO;
	} else if (!l->done) {
		snprintf(err, errlen, "domain %u went away before all its pages were in", l->domid);
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&l->lock);
	return rc;
}

bool rst_lazy_done(struct rst_lazy *l)
{
	bool done;

	pthread_mutex_lock(&l->lock);
	done = l->done;
	pthread_mutex_unlock(&l->lock);
	return done;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

void rst_lazy_stats(struct rst_lazy *l, struct rst_lazy_stats *out)
{
	uint32_t *lat = NULL;
	uint64_t n;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&l->lock);
	out->to_running_s = l->t_running ? l->t_running - l->t0 : 0;
	out->created_s = l->t_created ? l->t_created - l->t0 : 0;
	out->pages = l->pages;
	out->faults = l->faults;
	out->fetched = l->fetched;
	out->left = l->pages > l->faults + l->fetched ? l->pages - l->faults - l->fetched : 0;
	if (l->done)
		out->left = 0;
	out->all_in_s = l->done ? l->t_all - l->t0 : 0;
	out->failed = l->failed;
	n = l->nlat;
	if (n)
		lat = malloc(n * sizeof(*lat));
	if (lat)
		memcpy(lat, l->lat_ns, n * sizeof(*lat));
	pthread_mutex_unlock(&l->lock);
	if (!lat)
		return;
	qsort(lat, n, sizeof(*lat), cmp_u32);
	out->fault_p50_us = lat[n / 2] / 1e3;
	out->fault_p99_us = lat[n * 99 / 100] / 1e3;
	out->fault_max_us = lat[n - 1] / 1e3;
	free(lat);
}

void rst_lazy_free(struct rst_lazy *l)
{
	if (!l)
		return;
	/* The fetcher ends by itself: every page in, the source failed, or
	 * the domain gone. */
	if (l->thread_on)
		pthread_join(l->thread, NULL);
	release(l);
}
