/* SPDX-License-Identifier: MIT */
/* Helpers for tests that run domains in-process (header-only). */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "devices/pv.h"
#include "guests/soft.h"
#include "hyp/hyp.h"

static inline bool harness_have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Skips the calling test when backend is "kvm" and /dev/kvm is missing. */
#define harness_need_backend(b)                                                      \
	do {                                                                         \
		if (!strcmp((b), "kvm") && !harness_have_kvm())                      \
			cr_skip_test("kvm backend: /dev/kvm is not available here"); \
	} while (0)

/* The PV rings' backends (devices/pv.h) a test's hyp gets, as ferryd's
 * does: one for the process (it holds only the xenstore kick). */
static inline struct dev_pv *harness_pv(void)
{
	static struct dev_pv *pv;

	if (!pv)
		cr_assert_eq(dev_pv_new(&pv), 0);
	return pv;
}

/* A hyp whose callbacks are ev's (NULL: none). */
static inline struct hyp *harness_hyp_ev(const char *backend, uint64_t pool_mb,
					 const struct hyp_events *ev)
{
	struct hyp_params p = {
		.backend = backend,
		.memory_bytes = pool_mb << 20,
		.guest_elf = FERRY_GUEST_ELF,
		.soft_guest = &wl_soft_guest_ops,
		.pv_backend = &dev_pv_backend_ops,
		.pv_backend_opaque = harness_pv(),
	};
	struct hyp *h = NULL;

	if (ev)
		p.events = *ev;
	cr_assert_eq(hyp_create(&p, &h), 0, "hyp_create(%s)", backend);
	return h;
}

static inline struct hyp *harness_hyp(const char *backend, uint64_t pool_mb)
{
	return harness_hyp_ev(backend, pool_mb, NULL);
}

static inline struct hyp_dom_config harness_cfg(const char *name, uint64_t mem_mb,
						const char *cmdline)
{
	struct hyp_dom_config c;

	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "%s", name);
	c.memory_mb = c.maxmem_mb = mem_mb;
	c.vcpus = 1;
	snprintf(c.cmdline, sizeof(c.cmdline), "%s", cmdline);
	c.on_poweroff = HYP_ON_DESTROY;
	c.on_reboot = HYP_ON_RESTART;
	c.on_crash = HYP_ON_DESTROY;
	return c;
}

/* Waits up to timeout_s for needle to appear in the domain's console;
 * returns how many times it appears (0 on timeout). */
static inline int harness_wait_console(struct hyp *h, uint32_t domid, const char *needle,
				       int times, double timeout_s)
{
	static char buf[65536 + 1];
	double end = ferry_now_s() + timeout_s;

	for (;;) {
		size_t got = 0;
		int n = 0;

		if (hyp_console_read(h, domid, buf, sizeof(buf) - 1, &got))
			return 0;
		buf[got] = 0;
		for (char *p = strstr(buf, needle); p; p = strstr(p + 1, needle))
			n++;
		if (n >= times || ferry_now_s() > end)
			return n >= times ? n : 0;
		usleep(20000);
	}
}

static inline const char *harness_console(struct hyp *h, uint32_t domid)
{
	static char buf[65536 + 1];
	size_t got = 0;

	buf[0] = 0;
	if (!hyp_console_read(h, domid, buf, sizeof(buf) - 1, &got))
		buf[got] = 0;
	return buf;
}

#endif
