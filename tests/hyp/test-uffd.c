// SPDX-License-Identifier: MIT
/*
 * The userfaultfd owner (hyp/uffd.h) over a memfd mapped shared, as guest
 * RAM is: asynchronous write-protect harvests, also across a remap of part
 * of the range (what the balloon does), and each synchronous kind
 * delivering its fault to its handler, which resolves it. A kind this
 * kernel lacks is skipped with the reason.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/bitmap.h"
#include "common/compiler.h"
#include "hyp/uffd.h"

#define NPAGES 64u

struct area {
	int memfd;
	uint8_t *base;
	struct hyp_uffd *u;
};

static void skip_unless(enum hyp_uffd_kind kind)
{
	char why[160];

	if (hyp_uffd_supported(kind, why, sizeof(why)))
		cr_skip_test("%s", why);
}

/* NPAGES pages of a 2 * NPAGES memfd (the rest for remaps), mapped shared. */
static void area_up(struct area *a)
{
	a->memfd = memfd_create("uffd-test", MFD_CLOEXEC);
	cr_assert_geq(a->memfd, 0);
	cr_assert_eq(ftruncate(a->memfd, 2 * NPAGES * PAGE_SIZE), 0);
	a->base = mmap(NULL, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, a->memfd, 0);
	cr_assert_neq(a->base, MAP_FAILED);
	cr_assert_eq(hyp_uffd_new(a->base, NPAGES, &a->u), 0);
}

static void area_down(struct area *a)
{
	hyp_uffd_free(a->u);
	munmap(a->base, NPAGES * PAGE_SIZE);
	close(a->memfd);
}

/* Pages written since the last harvest, as a word (NPAGES = 64). */
static uint64_t harvest(struct area *a)
{
	uint64_t map[BITMAP_WORDS(NPAGES)] = { 0 };

	cr_assert_eq(hyp_uffd_written(a->u, map, true), 0);
	return map[0];
}

/* Pages [pfn, pfn + n) shown from the memfd's second half, as populate
 * maps fresh frames over the range. */
static void remap(struct area *a, uint64_t pfn, uint64_t n)
{
	void *at = mmap(a->base + pfn * PAGE_SIZE, n * PAGE_SIZE, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_FIXED, a->memfd, (off_t)((NPAGES + pfn) * PAGE_SIZE));

	cr_assert_neq(at, MAP_FAILED);
}

Test(uffd, wp_async_reports_writes_since_last_harvest)
{
	struct area a;

	skip_unless(HYP_UFFD_WP_ASYNC);
	area_up(&a);
	a.base[0] = 1; /* before: not reported */
	cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_WP_ASYNC, NULL, NULL), 0);
	cr_assert_eq(harvest(&a), 0);
	a.base[3 * PAGE_SIZE] = 1;
	a.base[10 * PAGE_SIZE + 7] = 1;
	a.base[63 * PAGE_SIZE] = 1; /* never populated before: a pte marker */
	cr_assert_eq(harvest(&a), (1ull << 3) | (1ull << 10) | (1ull << 63));
	cr_assert_eq(harvest(&a), 0, "the harvest protects the pages again");
	hyp_uffd_detach(a.u, HYP_UFFD_WP_ASYNC);
	area_down(&a);
}

Test(uffd, wp_async_follows_a_remap)
{
	struct area a;

	skip_unless(HYP_UFFD_WP_ASYNC);
	area_up(&a);
	cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_WP_ASYNC, NULL, NULL), 0);
	hyp__uffd_remap_begin(a.u);
	remap(&a, 16, 16);
	hyp__uffd_remap_end(a.u, 16, 16);
	a.base[20 * PAGE_SIZE] = 1;
	a.base[40 * PAGE_SIZE] = 1;
	cr_assert_eq(harvest(&a), (1ull << 20) | (1ull << 40));
	cr_assert_eq(harvest(&a), 0);
	area_down(&a);
}

/* What the balloon did before the owner: the scan refuses the range. */
Test(uffd, wp_async_remap_behind_the_owner_fails_the_harvest)
{
	uint64_t map[BITMAP_WORDS(NPAGES)] = { 0 };
	struct area a;

	skip_unless(HYP_UFFD_WP_ASYNC);
	area_up(&a);
	cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_WP_ASYNC, NULL, NULL), 0);
	remap(&a, 16, 16);
	cr_assert_eq(hyp_uffd_written(a.u, map, true), -EPERM);
	area_down(&a);
}

/* ---- the synchronous kinds: a thread faults, the handler resolves ---- */

struct seen {
	struct area *a;
	enum hyp_uffd_kind kind;
	uint64_t pfn;
	int calls;
	uint8_t before;		/* WP_SYNC: the page's byte when it faulted */
	uint8_t page[PAGE_SIZE]; /* MISSING: what to fill in */
};

static int on_fault(void *opaque, struct hyp_uffd *u, enum hyp_uffd_kind kind, uint64_t pfn)
{
	struct seen *s = opaque;

	s->kind = kind;
	s->pfn = pfn;
	s->calls++;
	switch (kind) {
	case HYP_UFFD_WP_SYNC: /* copy-before-write: the old contents first */
		s->before = s->a->base[pfn * PAGE_SIZE];
		return hyp_uffd_unprotect(u, pfn, 1);
	case HYP_UFFD_MISSING:
		return hyp_uffd_copy(u, pfn, s->page);
	case HYP_UFFD_MINOR:
		return hyp_uffd_continue(u, pfn, 1);
	default:
		return -EINVAL;
	}
}

struct access {
	volatile uint8_t *p;
	int write;	/* else read into got */
	uint8_t got;
};

static void *accessor(void *arg)
{
	struct access *x = arg;

	if (x->write)
		*x->p = 0x5a;
	else
		x->got = *x->p;
	return NULL;
}

static void access_page(struct area *a, uint64_t pfn, int write, uint8_t *got)
{
	struct access x = { .p = a->base + pfn * PAGE_SIZE, .write = write };
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, accessor, &x), 0);
	pthread_join(t, NULL);
	if (got)
		*got = x.got;
}

Test(uffd, wp_sync_stops_the_writer_until_the_handler_copied, .timeout = 30)
{
	struct area a;
	struct seen s = { .a = &a };

	skip_unless(HYP_UFFD_WP_SYNC);
	area_up(&a);
	a.base[5 * PAGE_SIZE] = 0x11;
	cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_WP_SYNC, on_fault, &s), 0);
	cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_WP_ASYNC, NULL, NULL), -EBUSY,
		     "one fd: async and sync write-protect exclude each other");
	access_page(&a, 5, 1, NULL);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.kind, HYP_UFFD_WP_SYNC);
	cr_assert_eq(s.pfn, 5);
	cr_assert_eq(s.before, 0x11, "the handler saw the page before the write");
	cr_assert_eq(a.base[5 * PAGE_SIZE], 0x5a, "then the write went through");
	access_page(&a, 5, 1, NULL);
	cr_assert_eq(s.calls, 1, "an unprotected page does not fault again");
	hyp_uffd_detach(a.u, HYP_UFFD_WP_SYNC);
	area_down(&a);
}

Test(uffd, missing_pages_come_from_the_handler, .timeout = 30)
{
	struct area a;
	struct seen s = { .a = &a };
	uint8_t got;

	skip_unless(HYP_UFFD_MISSING);
	area_up(&a);
	memset(s.page, 0xa7, sizeof(s.page));
	cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_MISSING, on_fault, &s), 0);
	/* and log-dirty on the same fd at once, as lazy restore will need */
	if (!hyp_uffd_supported(HYP_UFFD_WP_ASYNC, NULL, 0))
		cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_WP_ASYNC, NULL, NULL), 0);
	access_page(&a, 7, 0, &got);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.kind, HYP_UFFD_MISSING);
	cr_assert_eq(s.pfn, 7);
	cr_assert_eq(got, 0xa7, "the reader got the handler's page");
	cr_assert_eq(a.base[7 * PAGE_SIZE + 100], 0xa7);
	hyp_uffd_detach(a.u, HYP_UFFD_MISSING);
	area_down(&a);
}

Test(uffd, minor_faults_map_pages_that_are_there, .timeout = 30)
{
	struct area a;
	struct seen s = { .a = &a };
	uint8_t *other, got;

	skip_unless(HYP_UFFD_MINOR);
	area_up(&a);
	/* The page exists in the memfd, written through another mapping;
	 * never touched through the owner's: a minor fault there. */
	other = mmap(NULL, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, a.memfd, 0);
	cr_assert_neq(other, MAP_FAILED);
	other[9 * PAGE_SIZE] = 0x3c;
	cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_MINOR, on_fault, &s), 0);
	access_page(&a, 9, 0, &got);
	cr_assert_eq(s.calls, 1);
	cr_assert_eq(s.kind, HYP_UFFD_MINOR);
	cr_assert_eq(s.pfn, 9);
	cr_assert_eq(got, 0x3c, "the page the frame held");
	hyp_uffd_detach(a.u, HYP_UFFD_MINOR);
	munmap(other, NPAGES * PAGE_SIZE);
	area_down(&a);
}

/* Another kind leaving registers the range anew: log-dirty loses nothing
 * written before and sees what is written after. */
Test(uffd, wp_async_survives_another_kind_leaving, .timeout = 30)
{
	struct area a;
	struct seen s = { .a = &a };

	skip_unless(HYP_UFFD_WP_ASYNC);
	skip_unless(HYP_UFFD_MISSING);
	area_up(&a);
	memset(a.base, 0, NPAGES * PAGE_SIZE); /* no missing faults below */
	cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_WP_ASYNC, NULL, NULL), 0);
	cr_assert_eq(hyp_uffd_attach(a.u, HYP_UFFD_MISSING, on_fault, &s), 0);
	cr_assert_eq(harvest(&a), 0);
	a.base[3 * PAGE_SIZE] = 1;
	hyp_uffd_detach(a.u, HYP_UFFD_MISSING);
	a.base[5 * PAGE_SIZE] = 1;
	cr_assert_eq(harvest(&a), (1ull << 3) | (1ull << 5));
	cr_assert_eq(harvest(&a), 0, "protected again, the carried pages reported once");
	cr_assert_eq(s.calls, 0);
	area_down(&a);
}

/* ---- a writer that never stops while MISSING leaves ---- */

#define BIG_PAGES 32768u /* 128 MiB: the detach takes a while */

struct writer {
	uint8_t *base;
	volatile int stop;
	uint64_t done; /* writes done, stored after each */
};

/* Writes the pages in order, round and round, as the verify guest does. */
static void *write_all_the_time(void *arg)
{
	struct writer *w = arg;

	for (uint64_t i = 0; !w->stop; i++) {
		uint64_t p = i % BIG_PAGES;

		((volatile uint8_t *)w->base)[p * PAGE_SIZE] = (uint8_t)i;
		__atomic_store_n(&w->done, i + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * A lazy restore ends (MISSING leaves) while log-dirty runs and the guest
 * writes: not one write may go unseen. Unregistering the range for a new
 * registration dropped the protection for a moment, and the pages written
 * then read as clean once protected again: a snapshot taken across the
 * end of a lazy restore stored stale pages.
 */
Test(uffd, wp_async_sees_every_write_while_missing_leaves, .timeout = 60)
{
	uint64_t words = BITMAP_WORDS(BIG_PAGES), lost = 0, want = 0;
	uint64_t *map = calloc(words, 8);
	struct writer *w = calloc(1, sizeof(*w));
	struct hyp_uffd *u;
	struct seen s = { 0 };
	int memfd;
	pthread_t t;

	skip_unless(HYP_UFFD_WP_ASYNC);
	skip_unless(HYP_UFFD_MISSING);
	uint64_t from;

	cr_assert(map && w);
	memfd = memfd_create("uffd-big", MFD_CLOEXEC);
	cr_assert_geq(memfd, 0);
	cr_assert_eq(fallocate(memfd, 0, 0, (off_t)BIG_PAGES * PAGE_SIZE), 0);
	w->base = mmap(NULL, (size_t)BIG_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		       memfd, 0);
	cr_assert_neq(w->base, MAP_FAILED);
	cr_assert_eq(hyp_uffd_new(w->base, BIG_PAGES, &u), 0);
	/* Every page is in the memfd: no missing fault below. */
	cr_assert_eq(hyp_uffd_attach(u, HYP_UFFD_MISSING, on_fault, &s), 0);
	cr_assert_eq(hyp_uffd_attach(u, HYP_UFFD_WP_ASYNC, NULL, NULL), 0);
	cr_assert_eq(pthread_create(&t, NULL, write_all_the_time, w), 0);
	usleep(20000);
	cr_assert_eq(hyp_uffd_written(u, map, true), 0);
	/* Write number from on began after the harvest ended. */
	from = __atomic_load_n(&w->done, __ATOMIC_ACQUIRE) + 1;
	hyp_uffd_detach(u, HYP_UFFD_MISSING);
	/* Writes after it too, so there are always some: a page is written
	 * once a lap of 128 MiB, so one written inside the detach is not
	 * written again before the writer stops. */
	for (int i = 0; i < 5000 && __atomic_load_n(&w->done, __ATOMIC_ACQUIRE) < from + 64; i++)
		usleep(1000);
	w->stop = 1;
	pthread_join(t, NULL);
	cr_assert_eq(hyp_uffd_written(u, map, true), 0);
	for (uint64_t i = from; i < w->done; i++) {
		uint64_t p = i % BIG_PAGES;

		want++;
		if (!bitmap_test(map, p) && ++lost <= 3)
			cr_log_info("page %#llx written since the harvest, not reported",
				    (unsigned long long)p);
	}
	cr_log_info("%llu pages written since the harvest", (unsigned long long)want);
	cr_expect_gt(want, 0, "the writer never ran after the harvest");
	cr_expect_eq(lost, 0, "%llu of %llu pages written since the harvest not reported",
		     (unsigned long long)lost, (unsigned long long)want);
	cr_assert_eq(s.calls, 0);
	/* A balloon's new frame after MISSING left: it reads as zeros. */
	cr_assert_eq(fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 9 * PAGE_SIZE,
			       PAGE_SIZE), 0);
	cr_assert_eq(w->base[9 * PAGE_SIZE + 1], 0);
	hyp_uffd_free(u);
	munmap(w->base, (size_t)BIG_PAGES * PAGE_SIZE);
	close(memfd);
	free(map);
	free(w);
}
