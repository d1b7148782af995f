// SPDX-License-Identifier: MIT
/*
 * The one userfaultfd owner of a guest mapping (hyp/uffd.h).
 *
 * The fd asks at UFFDIO_API for every shared-memory feature the kernel
 * has, so that attaching another kind only registers the range again with
 * one more mode; only WP_ASYNC, which changes what WP means for the whole
 * fd, takes a new fd (attach) or gives it up (detach). A remap with
 * MAP_FIXED gives the pages new VMAs the kernel knows nothing of: the
 * owner's lock is held across the remap and its registration, so a
 * PAGEMAP_SCAN (which refuses a range not under async WP) never runs in
 * between.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/bitmap.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "hyp/uffd.h"
#include "uffd-compat.h"

#define UFFD_SCAN_VEC 1024
#define KIND_BIT(k) (1u << (k))
#define SYNC_KINDS (KIND_BIT(HYP_UFFD_WP_SYNC) | KIND_BIT(HYP_UFFD_MISSING) | \
		    KIND_BIT(HYP_UFFD_MINOR))

struct hyp_uffd {
	uint8_t *base;
	uint64_t npages;
	pthread_mutex_t lock;
	int fd;			/* -1 until a kind is attached */
	uint64_t features;	/* the fd's, from UFFDIO_API */
	unsigned kinds;		/* KIND_BIT()s attached */
	hyp_uffd_fault_fn fn[HYP_UFFD_NKINDS];
	void *opaque[HYP_UFFD_NKINDS];
	int pagemap;		/* /proc/self/pagemap, for WP_ASYNC */
	/* the fault thread, while a sync kind is attached */
	pthread_t thread;
	bool thread_on;
	int stop[2];		/* a pipe: written to stop the thread */
	/* WP_ASYNC: pages written before the range was registered anew
	 * (another kind detached), for the next harvest; NULL: none */
	uint64_t *carry;
	/* MISSING or MINOR detached while WP_ASYNC stays: still registered,
	 * their faults resolved here as the kernel would without them */
	unsigned leftover;
	struct page_region vec[UFFD_SCAN_VEC];
};

/* What each kind needs of the fd for a shared memfd mapping. */
static const uint64_t kind_features[HYP_UFFD_NKINDS] = {
	[HYP_UFFD_WP_ASYNC] = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED |
			      UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	[HYP_UFFD_WP_SYNC] = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED |
			     UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	[HYP_UFFD_MISSING] = UFFD_FEATURE_MISSING_SHMEM,
	[HYP_UFFD_MINOR] = UFFD_FEATURE_MINOR_SHMEM,
};
static const char *const kind_name[HYP_UFFD_NKINDS] = {
	"async write-protect", "write-protect", "missing-page faults", "minor faults",
};

static uint64_t kernel_features;
static int kernel_err;
static pthread_once_t kernel_once = PTHREAD_ONCE_INIT;

/* Asks a throwaway fd what the kernel offers: an fd's features are fixed
 * by its one UFFDIO_API call. */
static void probe_kernel(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		kernel_err = -errno;
		return;
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		kernel_err = -errno;
	else
		kernel_features = api.features;
	close(fd);
}

int hyp_uffd_supported(enum hyp_uffd_kind kind, char *why, size_t len)
{
	pthread_once(&kernel_once, probe_kernel);
	if (kernel_err) {
		if (why)
			snprintf(why, len, "userfaultfd: %s", ferry_strerror(-kernel_err));
		return -ENOTSUP;
	}
	if ((kernel_features & kind_features[kind]) != kind_features[kind]) {
		if (why)
			snprintf(why, len, "userfaultfd lacks %s on shared memory (features %#llx)",
				 kind_name[kind], (unsigned long long)kernel_features);
		return -ENOTSUP;
	}
	return 0;
}

int hyp_uffd_new(void *base, uint64_t npages, struct hyp_uffd **out)
{
	struct hyp_uffd *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->base = base;
	u->npages = npages;
	u->fd = u->pagemap = -1;
	u->stop[0] = u->stop[1] = -1;
	pthread_mutex_init(&u->lock, NULL);
	*out = u;
	return 0;
}

static uint64_t reg_mode(unsigned kinds)
{
	uint64_t m = 0;

	if (kinds & (KIND_BIT(HYP_UFFD_WP_ASYNC) | KIND_BIT(HYP_UFFD_WP_SYNC)))
		m |= UFFDIO_REGISTER_MODE_WP;
	if (kinds & KIND_BIT(HYP_UFFD_MISSING))
		m |= UFFDIO_REGISTER_MODE_MISSING;
	if (kinds & KIND_BIT(HYP_UFFD_MINOR))
		m |= UFFDIO_REGISTER_MODE_MINOR;
	return m;
}

static struct uffdio_range range_of(const struct hyp_uffd *u, uint64_t pfn, uint64_t n)
{
	return (struct uffdio_range){ .start = (uint64_t)(uintptr_t)(u->base + (pfn << PAGE_SHIFT)),
				      .len = n << PAGE_SHIFT };
}

/* Registers pages [pfn, pfn + n) of fd for kinds. A range remapped to
 * anonymous memory (a balloon hole) cannot take minor faults, which only
 * a frame of the pool can have: it is registered without. */
static int do_register(struct hyp_uffd *u, int fd, unsigned kinds, uint64_t pfn, uint64_t n)
{
	struct uffdio_register reg = { .range = range_of(u, pfn, n), .mode = reg_mode(kinds) };

	if (!reg.mode || !n)
		return 0;
	if (ioctl(fd, UFFDIO_REGISTER, &reg) == 0)
		return 0;
	if (errno == EINVAL && (kinds & KIND_BIT(HYP_UFFD_MINOR)))
		return do_register(u, fd, kinds & ~KIND_BIT(HYP_UFFD_MINOR), pfn, n);
	return -errno;
}

static int wp_ioctl(struct hyp_uffd *u, uint64_t pfn, uint64_t n, bool on)
{
	struct uffdio_writeprotect wp = { .range = range_of(u, pfn, n),
					  .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };

	if (pfn > u->npages || n > u->npages - pfn)
		return -EFAULT;
	return ioctl(u->fd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

/* ---- the fault thread -------------------------------------------------- */

/* Set on the fault thread while a handler runs: its resolving calls must
 * not take the lock that attach and detach hold while joining it. */
static __thread bool in_handler;

static void dispatch(struct hyp_uffd *u, const struct uffd_msg *m)
{
	uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(PAGE_SIZE - 1);
	uint64_t pfn = (addr - (uint64_t)(uintptr_t)u->base) >> PAGE_SHIFT;
	enum hyp_uffd_kind k = HYP_UFFD_MISSING;
	int err;

	if (m->event != UFFD_EVENT_PAGEFAULT)
		return;
	if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
		k = HYP_UFFD_WP_SYNC;
	else if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR)
		k = HYP_UFFD_MINOR;
	if (!u->fn[k]) {
		log_err("uffd: %s at page 0x%llx with no handler", kind_name[k],
			(unsigned long long)pfn);
		return;
	}
	in_handler = true;
	err = u->fn[k](u->opaque[k], u, k, pfn);
	in_handler = false;
	if (err)
		log_err("uffd: resolving %s at page 0x%llx: %s", kind_name[k],
			(unsigned long long)pfn, ferry_strerror(-err));
}

static void *fault_thread(void *arg)
{
	struct hyp_uffd *u = arg;
	struct pollfd p[2] = { { .fd = u->fd, .events = POLLIN },
			       { .fd = u->stop[0], .events = POLLIN } };
	struct uffd_msg m;

	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		while (read(u->fd, &m, sizeof(m)) == (ssize_t)sizeof(m))
			dispatch(u, &m);
	}
	return NULL;
}

static void thread_stop(struct hyp_uffd *u)
{
	if (!u->thread_on)
		return;
	if (write(u->stop[1], "x", 1) != 1)
		log_warn("uffd: stopping the fault thread: %s", strerror(errno));
	pthread_join(u->thread, NULL);
	close(u->stop[0]);
	close(u->stop[1]);
	u->stop[0] = u->stop[1] = -1;
	u->thread_on = false;
}

static int thread_start(struct hyp_uffd *u)
{
	int err;

	if (u->thread_on || !(u->kinds & SYNC_KINDS))
		return 0;
	if (pipe2(u->stop, O_CLOEXEC) < 0)
		return -errno;
	err = -pthread_create(&u->thread, NULL, fault_thread, u);
	if (err) {
		close(u->stop[0]);
		close(u->stop[1]);
		u->stop[0] = u->stop[1] = -1;
		return err;
	}
	u->thread_on = true;
	return 0;
}

/* ---- attach and detach ------------------------------------------------- */

/* Whether the fd's features make WP asynchronous. */
static bool fd_async(const struct hyp_uffd *u)
{
	return u->features & UFFD_FEATURE_WP_ASYNC;
}

/*
 * A new fd for kinds, registered over the whole range, replacing the old
 * one (whose registration goes: the kernel wakes the threads it stopped,
 * which fault again on the new fd). Under lock, the thread stopped.
 *
 * Unless kinds has WP_SYNC the fd is made asynchronous for WP whatever is
 * attached: the features of an fd are fixed, and a later WP_ASYNC then
 * only registers the range again. Replacing the fd would leave the range
 * unregistered for a moment, and a missing page (a lazy restore's) read
 * then is filled with zeros by the kernel.
 */
static int fd_replace(struct hyp_uffd *u, unsigned kinds)
{
	uint64_t want = kernel_features & ~(uint64_t)UFFD_FEATURE_WP_ASYNC;
	uint64_t async = kind_features[HYP_UFFD_WP_ASYNC];
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_range all = range_of(u, 0, u->npages);
	int fd, err;

	/* Only what the fd may need: EVENT_* would change what reads see. */
	want &= kind_features[HYP_UFFD_WP_SYNC] | kind_features[HYP_UFFD_MISSING] |
		kind_features[HYP_UFFD_MINOR];
	if ((kinds & KIND_BIT(HYP_UFFD_WP_ASYNC)) ||
	    (!(kinds & KIND_BIT(HYP_UFFD_WP_SYNC)) && (kernel_features & async) == async))
		want = (want & ~(uint64_t)UFFD_FEATURE_PAGEFAULT_FLAG_WP) | async;
	api.features = want;
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = -errno;
		goto err_fd;
	}
	if (u->fd >= 0) {
		ioctl(u->fd, UFFDIO_UNREGISTER, &all);
		close(u->fd);
		u->fd = -1;
	}
	err = do_register(u, fd, kinds, 0, u->npages);
	if (err)
		goto err_fd;
	u->fd = fd;
	u->features = api.features;
	return 0;

err_fd:
	close(fd);
	return err;
}

static int attach_locked(struct hyp_uffd *u, enum hyp_uffd_kind kind)
{
	unsigned kinds = u->kinds | KIND_BIT(kind);
	bool async = kind == HYP_UFFD_WP_ASYNC;
	int err;

	thread_stop(u);
	if (u->fd < 0 || (async && !fd_async(u)) || (kind == HYP_UFFD_WP_SYNC && fd_async(u)))
		err = fd_replace(u, kinds);
	else
		err = do_register(u, u->fd, kinds, 0, u->npages);
	if (!err && async && u->pagemap < 0) {
		u->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (u->pagemap < 0)
			err = -errno;
	}
	if (!err && (async || kind == HYP_UFFD_WP_SYNC))
		err = wp_ioctl(u, 0, u->npages, true);
	if (!err)
		u->kinds = kinds;
	return err;
}

int hyp_uffd_attach(struct hyp_uffd *u, enum hyp_uffd_kind kind, hyp_uffd_fault_fn fn,
		    void *opaque)
{
	unsigned wp = KIND_BIT(HYP_UFFD_WP_ASYNC) | KIND_BIT(HYP_UFFD_WP_SYNC);
	char why[160];
	int err;

	err = hyp_uffd_supported(kind, why, sizeof(why));
	if (err) {
		log_err("uffd: %s", why);
		return err;
	}
	pthread_mutex_lock(&u->lock);
	if ((u->kinds & KIND_BIT(kind)) || ((KIND_BIT(kind) & wp) && (u->kinds & wp))) {
		pthread_mutex_unlock(&u->lock);
		log_err("uffd: %s asked while %#x are attached", kind_name[kind], u->kinds);
		return -EBUSY;
	}
	/* It needs another fd, and the range unregistered meanwhile would
	 * let a missing page read as zeros (fd_replace). */
	if (kind == HYP_UFFD_WP_SYNC && (u->kinds & KIND_BIT(HYP_UFFD_MISSING)) && fd_async(u)) {
		pthread_mutex_unlock(&u->lock);
		log_err("uffd: %s asked while missing pages are being served", kind_name[kind]);
		return -EBUSY;
	}
	u->fn[kind] = fn;
	u->opaque[kind] = opaque;
	err = attach_locked(u, kind);
	if (err) {
		log_err("uffd: attaching %s over %llu pages: %s", kind_name[kind],
			(unsigned long long)u->npages, ferry_strerror(-err));
		u->fn[kind] = NULL;
	}
	/* On error too: the kinds attached before still need it. */
	if (thread_start(u) && !err)
		err = -EAGAIN;
	pthread_mutex_unlock(&u->lock);
	return err;
}

static int scan_locked(struct hyp_uffd *u, uint64_t *bitmap, bool reprotect);

static const uint8_t zero_page[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

/* MISSING or MINOR after its owner detached: what the kernel does without
 * them, by hand (a hole reads as zeros, a page there is mapped). */
static int leftover_fault(void *opaque, struct hyp_uffd *u, enum hyp_uffd_kind kind, uint64_t pfn)
{
	(void)opaque;
	return kind == HYP_UFFD_MINOR ? hyp_uffd_continue(u, pfn, 1)
				      : hyp_uffd_copy(u, pfn, zero_page);
}

/* WP_ASYNC: the pages written so far into u->carry. Under lock. */
static int carry_locked(struct hyp_uffd *u)
{
	if (!u->carry)
		u->carry = calloc(BITMAP_WORDS(u->npages) ? BITMAP_WORDS(u->npages) : 1, 8);
	if (!u->carry)
		return -ENOMEM;
	return scan_locked(u, u->carry, false);
}

void hyp_uffd_detach(struct hyp_uffd *u, enum hyp_uffd_kind kind)
{
	struct uffdio_range all = range_of(u, 0, u->npages);
	unsigned kinds;

	pthread_mutex_lock(&u->lock);
	if (!(u->kinds & KIND_BIT(kind)) || (u->leftover & KIND_BIT(kind)))
		goto out;
	thread_stop(u);
	kinds = u->kinds & ~KIND_BIT(kind);
	if ((kind == HYP_UFFD_MISSING || kind == HYP_UFFD_MINOR) &&
	    (kinds & KIND_BIT(HYP_UFFD_WP_ASYNC))) {
		/* A registration cannot drop a mode, and unregistering drops
		 * the write protection: the guest's writes until it is back
		 * would go unseen by log-dirty (a snapshot taken as a lazy
		 * restore ended stored stale pages). The range stays as it
		 * is until WP_ASYNC goes too. */
		u->fn[kind] = leftover_fault;
		u->opaque[kind] = NULL;
		u->leftover |= KIND_BIT(kind);
		goto restart;
	}
	if (kind == HYP_UFFD_WP_ASYNC && u->leftover) {
		/* Nothing left to serve or track: they go too. */
		kinds &= ~u->leftover;
		for (int k = 0; k < HYP_UFFD_NKINDS; k++)
			if (u->leftover & KIND_BIT(k))
				u->fn[k] = NULL;
		u->leftover = 0;
	}
	if (kind == HYP_UFFD_WP_ASYNC && (kinds & KIND_BIT(HYP_UFFD_MISSING))) {
		/* Unregistering would let a missing page read as zeros until
		 * the range is registered again: the registration stays (its
		 * WP mode does nothing once no page is protected). */
		int err = wp_ioctl(u, 0, u->npages, false);

		if (err)
			log_err("uffd: dropping the write protection: %s", ferry_strerror(-err));
		u->kinds = kinds;
		goto detached;
	}
	/* Unregistering drops the protection: what log-dirty has not
	 * harvested yet is kept for its next harvest, the rest protected
	 * again below. */
	if ((kinds & KIND_BIT(HYP_UFFD_WP_ASYNC)) && carry_locked(u))
		log_err("uffd: keeping the written pages across a new registration");
	if (u->fd >= 0 && ioctl(u->fd, UFFDIO_UNREGISTER, &all) < 0)
		log_warn("uffd: UFFDIO_UNREGISTER: %s", strerror(errno));
	u->kinds = 0;
	if (!kinds || kind == HYP_UFFD_WP_ASYNC) {
		close(u->fd);
		u->fd = -1;
	}
	if (kinds && (u->fd >= 0 ? do_register(u, u->fd, kinds, 0, u->npages)
				 : fd_replace(u, kinds)))
		log_err("uffd: registering %#x again after detaching %s", kinds, kind_name[kind]);
	else
		u->kinds = kinds;
	if ((u->kinds & KIND_BIT(HYP_UFFD_WP_ASYNC)) && wp_ioctl(u, 0, u->npages, true))
		log_err("uffd: write-protecting again after detaching %s", kind_name[kind]);
detached:
	u->fn[kind] = NULL;
	if (kind == HYP_UFFD_WP_ASYNC) {
		free(u->carry);
		u->carry = NULL;
	}
restart:
	if (thread_start(u))
		log_err("uffd: restarting the fault thread");
out:
	pthread_mutex_unlock(&u->lock);
}

void hyp_uffd_free(struct hyp_uffd *u)
{
	if (!u)
		return;
	for (int k = 0; k < HYP_UFFD_NKINDS; k++)
		hyp_uffd_detach(u, (enum hyp_uffd_kind)k);
	if (u->pagemap >= 0)
		close(u->pagemap);
	free(u->carry);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

/* ---- asynchronous write-protect: the harvest --------------------------- */

static void set_range(uint64_t *map, uint64_t nbits, uint64_t start, uint64_t end)
{
	if (end > nbits)
		end = nbits;
	while (start < end && start % 64)
		bitmap_set(map, start++);
	for (; start + 64 <= end; start += 64)
		map[start / 64] = ~0ull;
	while (start < end)
		bitmap_set(map, start++);
}

/*
 * One PAGEMAP_SCAN walk asking for PAGE_IS_WRITTEN pages, with
 * PM_SCAN_WP_MATCHING to protect them again atomically per page table;
 * PM_SCAN_CHECK_WPASYNC fails the scan rather than report garbage for
 * a part of the range not under async WP. Under lock.
 */
static int scan_locked(struct hyp_uffd *u, uint64_t *bitmap, bool reprotect)
{
	uint64_t base = (uint64_t)(uintptr_t)u->base;
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = PM_SCAN_CHECK_WPASYNC | (reprotect ? PM_SCAN_WP_MATCHING : 0),
		.start = base,
		.end = base + (u->npages << PAGE_SHIFT),
		.vec = (uint64_t)(uintptr_t)u->vec,
		.vec_len = UFFD_SCAN_VEC,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};

	for (;;) {
		long n = ioctl(u->pagemap, PAGEMAP_SCAN, &a);

		if (n < 0) {
			int err = -errno;

			log_err("uffd: PAGEMAP_SCAN at page 0x%llx: %s",
				(unsigned long long)((a.start - base) >> PAGE_SHIFT), strerror(errno));
			return err;
		}
		for (long i = 0; i < n; i++)
			set_range(bitmap, u->npages, (u->vec[i].start - base) >> PAGE_SHIFT,
				  (u->vec[i].end - base) >> PAGE_SHIFT);
		if (a.walk_end >= a.end)
			return 0;
		a.start = a.walk_end;
	}
}

int hyp_uffd_written(struct hyp_uffd *u, uint64_t *bitmap, bool reprotect)
{
	int err = -EINVAL;

	pthread_mutex_lock(&u->lock);
	if (u->kinds & KIND_BIT(HYP_UFFD_WP_ASYNC))
		err = scan_locked(u, bitmap, reprotect);
	/* What a registration anew carried over (detach_locked). */
	if (!err && u->carry) {
		for (uint64_t i = 0; i < BITMAP_WORDS(u->npages); i++)
			bitmap[i] |= u->carry[i];
		if (reprotect) {
			free(u->carry);
			u->carry = NULL;
		}
	}
	pthread_mutex_unlock(&u->lock);
	return err;
}

/* ---- resolving --------------------------------------------------------- */

int hyp_uffd_copy(struct hyp_uffd *u, uint64_t pfn, const void *src)
{
	struct uffdio_copy c = {
		.dst = (uint64_t)(uintptr_t)(u->base + (pfn << PAGE_SHIFT)),
		.src = (uint64_t)(uintptr_t)src,
		.len = PAGE_SIZE,
	};

	int err = 0;

	if (pfn >= u->npages)
		return -EFAULT;
	/* Another thread (a lazy restore's fetcher) takes the lock: attach
	 * may replace the fd meanwhile. */
	if (!in_handler)
		pthread_mutex_lock(&u->lock);
	if (!(u->kinds & KIND_BIT(HYP_UFFD_MISSING)))
		err = -EINVAL;
	/* EEXIST: the page arrived meanwhile; the faulting thread is woken. */
	else if (ioctl(u->fd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
		err = -errno;
	if (!in_handler)
		pthread_mutex_unlock(&u->lock);
	return err;
}

int hyp_uffd_continue(struct hyp_uffd *u, uint64_t pfn, uint64_t n)
{
	struct uffdio_continue c = { .range = range_of(u, pfn, n) };

	if (pfn > u->npages || n > u->npages - pfn)
		return -EFAULT;
	return ioctl(u->fd, UFFDIO_CONTINUE, &c) < 0 && errno != EEXIST ? -errno : 0;
}

int hyp_uffd_unprotect(struct hyp_uffd *u, uint64_t pfn, uint64_t n)
{
	return wp_ioctl(u, pfn, n, false);
}

int hyp_uffd_protect(struct hyp_uffd *u, uint64_t pfn, uint64_t n)
{
	return wp_ioctl(u, pfn, n, true);
}

/* ---- remaps inside hyp ------------------------------------------------- */

void hyp__uffd_remap_begin(struct hyp_uffd *u)
{
	pthread_mutex_lock(&u->lock);
}

void hyp__uffd_remap_end(struct hyp_uffd *u, uint64_t pfn, uint64_t n)
{
	int err = 0;

	if (u->kinds && pfn < u->npages) {
		if (n > u->npages - pfn)
			n = u->npages - pfn;
		err = do_register(u, u->fd, u->kinds, pfn, n);
		if (!err && (u->kinds & (KIND_BIT(HYP_UFFD_WP_ASYNC) | KIND_BIT(HYP_UFFD_WP_SYNC))))
			err = wp_ioctl(u, pfn, n, true);
		/* Tracking lost there: the next harvest fails with -EPERM
		 * rather than miss a write. */
		if (err)
			log_err("uffd: registering pages 0x%llx+%llu again after a remap: %s",
				(unsigned long long)pfn, (unsigned long long)n,
 ferry_strerror(-err));
	}
	pthread_mutex_unlock(&u->lock);
}
