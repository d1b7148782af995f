// SPDX-License-Identifier: MIT
/*
 * Event-channel round trips between two domains, per backend: two guests
 * of the built-in kernel run workload=pingpong (pong grants a page and
 * offers a port, ping bounces a counter through it), and the round trips
 * are ping's own counter (wl_state.pp_rounds in guest memory) over a fixed
 * host-timed window. One round trip is in flight at a time, so the mean
 * latency is the window over the count.
 *
 * The floor has no guest: two paused soft domains joined by an
 * interdomain port, EVTCHNOP_send made through hyp_test_hypercall (the
 * same handler a guest's doorbell reaches) and the peer's pending bit
 * polled and cleared in its shared_info, by two host threads (the guest
 * case's shape, minus vCPUs, exits and blocking) and by one thread (the
 * two hypercalls alone).
 *
 * Usage: bench-evtchn [kvm|soft ...] [-t SECONDS] [-r RUNS]
 *        (default: kvm if /dev/kvm opens, and soft; 2 s windows, 3 runs)
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "abi/guest.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "guests/soft.h"
#include "hyp/evtchn.h"
#include "hyp/gmem.h"
#include "hyp/hyp.h"

/* Only for offsetof(struct wl_state, pp_rounds): the counter's place in
 * guest memory is the workload's private layout. */
#include "../guests/workloads/internal.h"

#define MAX_RUNS BENCH_MAX_RUNS
#define ROUNDS_GPA (FERRY_ARENA_GPA + offsetof(struct wl_state, pp_rounds))
#define ARG_GPA 0x500000u /* the floor's hypercall arguments, in the arena */
#define SI_GPA FERRY_SHARED_INFO_GPA

/* ---- guests ------------------------------------------------------------- */

static int read_rounds(struct hyp *h, uint32_t id, uint64_t *out)
{
	struct hyp_domain *d;
	int rc = hyp_domain_get(h, id, &d);

	if (rc)
		return rc;
	rc = hyp_gmem_read(d, ROUNDS_GPA, out, sizeof(*out));
	hyp_domain_put(d);
	return rc;
}

/* Shut down, crashed or gone: a workload that refused its command line. */
static bool dom_stopped(struct hyp *h, uint32_t id)
{
	struct hyp_dom_info di;

	return hyp_domain_info(h, id, &di) || di.state == HYP_DOM_SHUTDOWN ||
	       di.state == HYP_DOM_CRASHED || di.state == HYP_DOM_DYING;
}

/* Waits up to secs for what to appear on domid's console; copies the
 * console from there into line. -ENOTSUP if the guest said pingpong cannot
 * run, -ETIMEDOUT otherwise. */
static int wait_console(struct hyp *h, uint32_t id, const char *what, double secs,
			char *line, size_t len)
{
	static char buf[16384];
	double end = ferry_now_s() + secs;

	do {
		size_t got = 0;
		const char *p;

		if (!hyp_console_read(h, id, buf, sizeof(buf) - 1, &got)) {
			buf[got] = '\0';
			if ((p = strstr(buf, what))) {
				snprintf(line, len, "%s", p);
				return 0;
			}
			if ((p = strstr(buf, "pingpong: needs"))) {
				snprintf(line, len, "%.*s", (int)strcspn(p, "\n"), p);
				return -ENOTSUP;
			}
		}
		if (dom_stopped(h, id)) {
			snprintf(line, len, "domain %u stopped before '%s' (see the log)",
				 id, what);
			return -ENOTSUP;
		}
		bench_sleep(0.02);
	} while (ferry_now_s() < end);
	snprintf(line, len, "no '%s' on domain %u's console", what, id);
	return -ETIMEDOUT;
}

static int create(struct hyp *h, const char *backend, const char *name, const char *cmd,
		  bool paused, uint32_t *id)
{
	struct hyp_dom_config c;

	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "%s", name);
	snprintf(c.backend, sizeof(c.backend), "%s", backend);
	snprintf(c.cmdline, sizeof(c.cmdline), "%s", cmd);
	c.memory_mb = c.maxmem_mb = 64;
	c.vcpus = 1;
	c.on_poweroff = c.on_reboot = HYP_ON_DESTROY;
	c.on_crash = HYP_ON_PRESERVE; /* keeps the console to say why */
	return hyp_domain_create(h, &c, paused, id);
}

static double cpu_s(struct hyp *h, uint32_t id)
{
	struct hyp_dom_info di;

	return hyp_domain_info(h, id, &di) ? 0 : di.cpu_time_s;
}

struct guest_run {
	double rate;	  /* round trips/s */
	double cpu_us;	  /* both domains' CPU per round trip */
	uint64_t pong_rounds; /* pong's count over the window, a cross-check */
};

/*
 * One run: pong first (its domid + 1 will be ping's: domids are handed out
 * in order), its port and grant from its console (no xenstore in a bare
 * struct hyp), then ping given both on its command line.
 */
static int guest_run(const char *backend, double secs, struct guest_run *out,
		     char *why, size_t whylen)
{
	struct hyp_params p = {
		.backend = backend,
		.memory_bytes = 256ULL << 20,
		.guest_elf = FERRY_GUEST_ELF,
		.soft_guest = &wl_soft_guest_ops,
		.pv_backend = &dev_pv_backend_ops, .pv_backend_opaque = bench_pv(),
	};
	char cmd[128], line[256];
	unsigned port, gref;
	uint32_t pong, ping;
	uint64_t r0, r1, q0, q1;
	double t0, t1, c0, c1;
	struct hyp *h;
	int rc;

	if ((rc = hyp_create(&p, &h))) {
		snprintf(why, whylen, "hyp_create: %s", ferry_strerror(-rc));
		return rc;
	}
	/* A fresh hyp numbers from 1. */
	snprintf(cmd, sizeof(cmd), "workload=pingpong role=pong peer=2");
	if ((rc = create(h, backend, "pong", cmd, false, &pong))) {
		snprintf(why, whylen, "creating pong: %s", ferry_strerror(-rc));
		goto out;
	}
	rc = wait_console(h, pong, "pingpong: pong port=", 20, line, sizeof(line));
	if (rc) {
		snprintf(why, whylen, "%s", line);
		goto out;
	}
	if (sscanf(line, "pingpong: pong port=%u gref=%u", &port, &gref) != 2) {
		snprintf(why, whylen, "cannot parse '%.60s'", line);
		rc = -EPROTO;
		goto out;
	}
	snprintf(cmd, sizeof(cmd), "workload=pingpong role=ping peer=%u port=%u gref=%u",
		 pong, port, gref);
	if ((rc = create(h, backend, "ping", cmd, false, &ping))) {
		snprintf(why, whylen, "creating ping: %s", ferry_strerror(-rc));
		goto out;
	}
	if (pong != 1 || ping != 2) {
		snprintf(why, whylen, "domids %u and %u, not 1 and 2", pong, ping);
		rc = -EPROTO;
		goto out;
	}
	rc = wait_console(h, ping, "pingpong: round_trips=", 20, line, sizeof(line));
	if (rc) {
		snprintf(why, whylen, "%s", line);
		goto out;
	}
	t0 = ferry_now_s();
	c0 = cpu_s(h, ping) + cpu_s(h, pong);
	if ((rc = read_rounds(h, ping, &r0)) || (rc = read_rounds(h, pong, &q0)))
		goto gmem;
	bench_sleep(secs);
	if ((rc = read_rounds(h, ping, &r1)) || (rc = read_rounds(h, pong, &q1)))
		goto gmem;
	c1 = cpu_s(h, ping) + cpu_s(h, pong);
	t1 = ferry_now_s();
	if (r1 <= r0) {
		snprintf(why, whylen, "no round trip in %.1f s", t1 - t0);
		rc = -EPROTO;
		goto out;
	}
	out->rate = (double)(r1 - r0) / (t1 - t0);
	out->cpu_us = (c1 - c0) / (double)(r1 - r0) * 1e6;
	out->pong_rounds = q1 - q0;
	goto out;
gmem:
	snprintf(why, whylen, "reading the counters: %s", ferry_strerror(-rc));
out:
	hyp_destroy(h);
	return rc;
}

/* ---- the floor ---------------------------------------------------------- */

struct floor {
	struct hyp *h;
	uint32_t id[2];
	struct hyp_domain *d[2];
	volatile uint64_t *pend[2]; /* the word of each side's port */
	uint64_t bit[2];
	volatile bool stop;
	uint64_t rounds;
};

static int64_t hcall(struct floor *f, int side, unsigned cmd)
{
	const uint64_t args[5] = { cmd, ARG_GPA, 0, 0, 0 };

	return hyp_test_hypercall(f->h, f->id[side], 0, __HYPERVISOR_event_channel_op, args);
}

/* Side's port went pending: clear it, as a guest's handler would. Gives
 * up (false) once stop is set. */
static bool wait_pending(struct floor *f, int side)
{
	unsigned spins = 0;

	while (!(__atomic_load_n(f->pend[side], __ATOMIC_ACQUIRE) & f->bit[side])) {
		if (f->stop)
			return false;
		/* Others share these two cores: after a long spin (~1 ms), let
		 * them in. Yielding sooner lets a busy host set the pace. */
		if (++spins % (1u << 16) == 0)
			sched_yield();
		else
			__builtin_ia32_pause();
	}
	__atomic_and_fetch(f->pend[side], ~f->bit[side], __ATOMIC_ACQ_REL);
	return true;
}

static void *pong_thread(void *arg)
{
	struct floor *f = arg;

	while (wait_pending(f, 1))
		if (hcall(f, 1, EVTCHNOP_send))
			break;
	return NULL;
}

static int floor_setup(struct floor *f)
{
	struct hyp_params p = { .backend = "soft", .memory_bytes = 128ULL << 20,
				.guest_elf = FERRY_GUEST_ELF, .soft_guest = &wl_soft_guest_ops,
				.pv_backend = &dev_pv_backend_ops, .pv_backend_opaque = bench_pv() };
	struct xen_add_to_physmap x = { .domid = DOMID_SELF,
					.space = XENMAPSPACE_shared_info,
					.gpfn = SI_GPA >> 12 };
	struct evtchn_alloc_unbound au = { .dom = DOMID_SELF };
	struct evtchn_bind_interdomain bi;
	static const uint8_t zero[4096];
	uint32_t port[2];
	int rc;

	memset(f, 0, sizeof(*f));
	if ((rc = hyp_create(&p, &f->h)))
		return rc;
	for (int i = 0; i < 2; i++) {
		const uint64_t args[5] = { XENMEM_add_to_physmap, ARG_GPA, 0, 0, 0 };

		if ((rc = create(f->h, "soft", i ? "fb" : "fa", "workload=idle", true,
				 &f->id[i])) ||
		    (rc = hyp_domain_get(f->h, f->id[i], &f->d[i])) ||
		    (rc = hyp_gmem_write(f->d[i], SI_GPA, zero, sizeof(zero))) ||
		    (rc = hyp_gmem_write(f->d[i], ARG_GPA, &x, sizeof(x))))
			return rc;
		if (hyp_test_hypercall(f->h, f->id[i], 0, __HYPERVISOR_memory_op, args))
			return -EIO;
	}
	/* a offers a port to b, b binds it: Xen's frontend/backend handshake. */
	au.remote_dom = (uint16_t)f->id[1];
	if ((rc = hyp_gmem_write(f->d[0], ARG_GPA, &au, sizeof(au))))
		return rc;
	if (hcall(f, 0, EVTCHNOP_alloc_unbound) ||
	    (rc = hyp_gmem_read(f->d[0], ARG_GPA, &au, sizeof(au))))
		return rc ? rc : -EIO;
	memset(&bi, 0, sizeof(bi));
	bi.remote_dom = (uint16_t)f->id[0];
	bi.remote_port = au.port;
	if ((rc = hyp_gmem_write(f->d[1], ARG_GPA, &bi, sizeof(bi))))
		return rc;
	if (hcall(f, 1, EVTCHNOP_bind_interdomain) ||
	    (rc = hyp_gmem_read(f->d[1], ARG_GPA, &bi, sizeof(bi))))
		return rc ? rc : -EIO;
	port[0] = au.port;
	port[1] = bi.local_port;
	/* From here each side's argument block is its send, written once. */
	for (int i = 0; i < 2; i++) {
		struct evtchn_send s = { .port = port[i] };
		struct hyp_gmem gm;
		struct shared_info *si;

		if ((rc = hyp_gmem_write(f->d[i], ARG_GPA, &s, sizeof(s))))
			return rc;
		hyp_domain_gmem(f->d[i], &gm);
		si = (struct shared_info *)(gm.hva + SI_GPA);
		f->pend[i] = &si->evtchn_pending[port[i] / 64];
		f->bit[i] = 1ULL << (port[i] % 64);
	}
	return 0;
}

static void floor_teardown(struct floor *f)
{
	for (int i = 0; i < 2; i++)
		if (f->d[i])
			hyp_domain_put(f->d[i]);
	if (f->h)
		hyp_destroy(f->h);
}

/* Each round trip's time, for the median: a busy host preempts a spinner
 * now and then, which the mean feels and the median does not. */
#define FLOOR_SAMPLES (1u << 21)
static float floor_us[FLOOR_SAMPLES];

/* Pins the calling thread to cpu when the host has more than one. */
static void pin(unsigned cpu)
{
	cpu_set_t set;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *pong_pinned(void *arg)
{
	pin(1);
	return pong_thread(arg);
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

/*
 * Over secs: round trips/s and the median round trip in us, with a second
 * thread answering (the two threads pinned to different CPUs, so neither
 * spins on the core the other needs), or (threads false) one thread making
 * both sides' sends.
 */
static int floor_run(struct floor *f, bool threads, double secs, double *rate,
		     double *median_us)
{
	cpu_set_t was;
	pthread_t t;
	uint64_t n = 0;
	double t0, end;
	int rc = 0;

	f->stop = false;
	pthread_getaffinity_np(pthread_self(), sizeof(was), &was);
	if (threads) {
		pin(0);
		if (pthread_create(&t, NULL, pong_pinned, f)) {
			pthread_setaffinity_np(pthread_self(), sizeof(was), &was);
			return -EAGAIN;
		}
	}
	t0 = ferry_now_s();
	end = t0 + secs;
	for (double a = t0, b; a < end; a = b) {
		if (hcall(f, 0, EVTCHNOP_send)) {
			rc = -EIO;
			break;
		}
		if (!threads) {
			wait_pending(f, 1);
			if (hcall(f, 1, EVTCHNOP_send)) {
				rc = -EIO;
				break;
			}
		}
		wait_pending(f, 0);
		b = ferry_now_s();
		if (n < FLOOR_SAMPLES)
			floor_us[n] = (float)((b - a) * 1e6);
		n++;
	}
	*rate = (double)n / (ferry_now_s() - t0);
	f->stop = true;
	if (threads)
		pthread_join(t, NULL);
	pthread_setaffinity_np(pthread_self(), sizeof(was), &was);
	n = n < FLOOR_SAMPLES ? n : FLOOR_SAMPLES;
	qsort(floor_us, n, sizeof(floor_us[0]), cmp_float);
	*median_us = n ? floor_us[n / 2] : 0;
	return rc;
}

/* ---- report ------------------------------------------------------------- */

/* lats: per-run latencies in us, or NULL for 1 / rate. */
static void print_row(const char *what, double *rates, int n, const double *lats,
		      const double *cpu, double floor_lat)
{
	double lat[MAX_RUNS], c[MAX_RUNS];
	struct bench_stat r, l, cs;

	for (int i = 0; i < n; i++) {
		lat[i] = lats ? lats[i] : 1e6 / rates[i];
		c[i] = cpu ? cpu[i] : 0;
	}
	r = bench_stat(rates, n);
	l = bench_stat(lat, n);
	cs = bench_stat(c, n);
	printf("%-30s %9.0f (%7.0f-%7.0f)  %8.2f (%6.2f-%6.2f)", what, r.med, r.min, r.max,
	       l.med, l.min, l.max);
	if (cpu)
		printf("  %7.2f", cs.med);
	else
		printf("  %7s", "-");
	if (floor_lat > 0)
		printf("  %6.1fx\n", l.med / floor_lat);
	else
		printf("  %7s\n", "-");
}

int main(int argc, char **argv)
{
	const char *backends[BENCH_MAX_BACKENDS];
	double floor2[MAX_RUNS], floor1[MAX_RUNS], lat2[MAX_RUNS], lat1[MAX_RUNS];
	double secs = 2, floor_lat = 0;
	unsigned nb = 0;
	int runs = 3;
	struct floor f;

	log_set_level(LOG_WARN);
	if (bench_args(argc, argv, "bench-evtchn [kvm|soft ...] [-t SECONDS] [-r RUNS]",
		       &secs, &runs, backends, &nb, NULL))
		return 2;
	if (!nb) {
		if (bench_kvm_opens())
			backends[nb++] = "kvm";
		backends[nb++] = "soft";
	}

	printf("event-channel round trip, %.1f s windows, %d runs: median (min-max)\n", secs,
	       runs);
	printf("%-30s %27s  %24s  %7s  %7s\n", "path", "round trips/s", "latency us",
	       "cpu us", "/floor");
	if (floor_setup(&f)) {
		printf("floor: cannot set up two soft domains\n");
	} else {
		int ok = 1;

		for (int i = 0; ok && i < runs; i++)
			ok = !floor_run(&f, false, secs / 2, &floor1[i], &lat1[i]) &&
			     !floor_run(&f, true, secs / 2, &floor2[i], &lat2[i]);
		if (ok) {
			print_row("floor: hypercalls, 1 thread", floor1, runs, lat1, NULL, 0);
			print_row("floor: 2 threads polling", floor2, runs, lat2, NULL, 0);
			floor_lat = bench_stat(lat2, runs).med;
		} else {
			printf("floor: EVTCHNOP_send failed\n");
		}
	}
	floor_teardown(&f);

	for (unsigned b = 0; b < nb; b++) {
		double rates[MAX_RUNS], cpu[MAX_RUNS];
		char what[64], why[256] = "";
		int n = 0, rc = 0;

		for (int i = 0; i < runs; i++) {
			struct guest_run g;

			rc = guest_run(backends[b], secs, &g, why, sizeof(why));
			if (rc == -ENOTSUP)
				break;
			if (rc) {
				fprintf(stderr, "%s run %d: %s\n", backends[b], i + 1, why);
				continue;
			}
			rates[n] = g.rate;
			cpu[n++] = g.cpu_us;
			/* Pong counts the rounds it answered: a big gap means
			 * lost or repeated notifies (ping resends after 1 s). */
			if (g.pong_rounds + 2 < (uint64_t)(g.rate * secs * 0.9))
				fprintf(stderr, "%s run %d: pong counted %llu rounds, ping %.0f\n",
					backends[b], i + 1, (unsigned long long)g.pong_rounds,
					g.rate * secs);
		}
		snprintf(what, sizeof(what), "%s: pingpong guests", backends[b]);
		if (rc == -ENOTSUP)
			printf("%-30s does not run here: %s\n", what, why);
		else if (!n)
			printf("%-30s failed: %s\n", what, why);
		else
			print_row(what, rates, n, NULL, cpu, floor_lat);
	}
	printf("latency: floors, the median round trip; guests, 1 / rate (one round trip "
	       "in flight);\ncpu us: both guests' CPU per round trip; /floor: latency over "
	       "the 2-thread floor's\n");
	return 0;
}
