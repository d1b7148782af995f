// SPDX-License-Identifier: MIT
/*
 * The two pause counts (the toolstack's and the operations'), the fence,
 * and one owner operation per domain, per backend.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "common/clock.h"
#include "harness.h"

/* Parameters are copied into each test process: no pointers inside. */
struct backend {
	char name[8];
};
static struct backend backends[] = {{"soft"}, {"kvm"}};

static struct hyp_dom_info info(struct hyp *h, uint32_t id)
{
	struct hyp_dom_info di;

	cr_assert_eq(hyp_domain_info(h, id, &di), 0);
	return di;
}

/* The vCPU of a busy guest burns (almost) no CPU time for 300 ms: it is
 * parked (a parked thread may still wake on its condition variable). */
static bool parked(struct hyp *h, uint32_t id)
{
	double t0 = info(h, id).cpu_time_s;

	usleep(300 * 1000);
	return info(h, id).cpu_time_s - t0 < 0.01;
}

/* It burns 20 ms within 5 s: it runs. */
static bool runs(struct hyp *h, uint32_t id)
{
	double t0 = info(h, id).cpu_time_s, end = ferry_now_s() + 5;

	while (ferry_now_s() < end) {
		if (info(h, id).cpu_time_s - t0 > 0.02)
			return true;
		usleep(20 * 1000);
	}
	return false;
}

/* Running or blocked (a rate-limited guest sleeps between its bursts). */
static bool unpaused(struct hyp *h, uint32_t id)
{
	enum hyp_dom_state st = info(h, id).state;

	return st == HYP_DOM_RUNNING || st == HYP_DOM_BLOCKED;
}

/* A running guest that keeps its vCPU busy. */
static struct hyp *busy_domain(const char *backend, uint32_t *id)
{
	struct hyp *h = harness_hyp(backend, 256);
	struct hyp_dom_config c = harness_cfg("o", 64, "workload=dirty ws=4M rate=50M");

	cr_assert_eq(hyp_domain_create(h, &c, false, id), 0);
	cr_assert(harness_wait_console(h, *id, "workload:", 1, 20), "console:\n%s",
		  harness_console(h, *id));
	return h;
}

ParameterizedTestParameters(owner, pause_counts)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/*
 * The vCPUs run only when both counts are zero: an unpause by the user never
 * resumes a domain an operation holds paused, an operation's pause and
 * unpause leave the user's pause as they found it, and the user's count
 * counts, as Xen's controller pause count does.
 */
ParameterizedTest(struct backend *backend, owner, pause_counts, .timeout = 90)
{
	harness_need_backend(backend->name);
	uint32_t id;
	struct hyp *h = busy_domain(backend->name, &id);
	struct hyp_dom_info di = info(h, id);

	cr_expect_eq(di.pause_count, 0);
	cr_expect_eq(di.op_pause_count, 0);
	cr_expect(runs(h, id));

	/* An operation pauses; the user's unpause cannot resume it. */
	cr_assert_eq(hyp_domain_op_pause(h, id), 0);
	cr_expect_eq(info(h, id).state, HYP_DOM_PAUSED);
	cr_expect_eq(hyp_domain_unpause(h, id), -EBUSY);
	cr_expect(parked(h, id), "a user's unpause resumed a domain an operation holds");
	cr_expect_eq(info(h, id).op_pause_count, 1);
	cr_expect_eq(info(h, id).pause_count, 0);
	cr_assert_eq(hyp_domain_op_unpause(h, id), 0);
	cr_expect(unpaused(h, id));
	cr_expect(runs(h, id));

	/* The user paused first: the operation leaves it paused (save -c of
	 * a paused domain). */
	cr_assert_eq(hyp_domain_pause(h, id), 0);
	cr_assert_eq(hyp_domain_op_pause(h, id), 0);
	cr_assert_eq(hyp_domain_op_unpause(h, id), 0);
	di = info(h, id);
	cr_expect_eq(di.state, HYP_DOM_PAUSED);
	cr_expect_eq(di.pause_count, 1);
	cr_expect(parked(h, id), "an operation's unpause resumed a domain the user paused");

	/* The user unpauses during the operation: it runs when the operation
	 * lets go, not before. */
	cr_assert_eq(hyp_domain_op_pause(h, id), 0);
	cr_assert_eq(hyp_domain_unpause(h, id), 0);
	cr_expect(parked(h, id));
	cr_assert_eq(hyp_domain_op_unpause(h, id), 0);
	cr_expect(runs(h, id));

	/* The user's count counts (Xen's controller pause count). */
	cr_assert_eq(hyp_domain_pause(h, id), 0);
	cr_assert_eq(hyp_domain_pause(h, id), 0);
	cr_expect_eq(info(h, id).pause_count, 2);
	cr_assert_eq(hyp_domain_unpause(h, id), 0);
	cr_expect(parked(h, id));
	cr_assert_eq(hyp_domain_unpause(h, id), 0);
	cr_expect(runs(h, id));
	/* Unpausing a running domain nobody paused changes nothing. */
	cr_expect_eq(hyp_domain_unpause(h, id), 0);
	cr_expect_eq(info(h, id).pause_count, 0);
	cr_expect_eq(hyp_domain_op_unpause(h, id), -EINVAL, "op unpause without its pause");
	cr_expect_eq(info(h, id).op_pause_count, 0);
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	hyp_destroy(h);
}

struct flipper {
	struct hyp *h;
	uint32_t id;
	volatile bool stop;
};

static void *flip(void *arg)
{
	struct flipper *f = arg;

	while (!f->stop) {
		hyp_domain_pause(f->h, f->id);
		hyp_domain_unpause(f->h, f->id);
		hyp_domain_unpause(f->h, f->id);
	}
	return NULL;
}

ParameterizedTestParameters(owner, user_unpause_storm)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/* Two threads pausing and unpausing as fast as they can while an operation
 * holds the domain: it never runs, and afterwards the counts are sane. */
ParameterizedTest(struct backend *backend, owner, user_unpause_storm, .timeout = 90)
{
	harness_need_backend(backend->name);
	uint32_t id;
	struct hyp *h = busy_domain(backend->name, &id);
	struct flipper f = {.h = h};
	pthread_t t[2];
	double t0;

	f.id = id;
	cr_assert_eq(hyp_domain_op_pause(h, id), 0);
	t0 = info(h, id).cpu_time_s;
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, flip, &f), 0);
	usleep(500 * 1000);
	f.stop = true;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_expect_lt(info(h, id).cpu_time_s - t0, 0.02,
		     "the domain ran while an operation held it");
	cr_expect_eq(info(h, id).pause_count, 0);
	cr_assert_eq(hyp_domain_op_unpause(h, id), 0);
	cr_expect(runs(h, id));
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	hyp_destroy(h);
}

ParameterizedTestParameters(owner, fence)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/* A fenced domain stays paused whatever the counts; lifting the fence lets
 * it run once nothing else holds it paused. */
ParameterizedTest(struct backend *backend, owner, fence, .timeout = 90)
{
	harness_need_backend(backend->name);
	uint32_t id;
	struct hyp *h = busy_domain(backend->name, &id);

	/* As a migration: its pause, then the fence at go. */
	cr_assert_eq(hyp_domain_op_pause(h, id), 0);
	cr_assert_eq(hyp_domain_set_fenced(h, id, true), 0);
	cr_assert_eq(hyp_domain_op_unpause(h, id), 0); /* the job ends fenced */
	cr_expect(info(h, id).fenced);
	cr_expect_eq(info(h, id).state, HYP_DOM_PAUSED);
	cr_expect(parked(h, id), "a fenced domain runs");
	cr_expect_eq(hyp_domain_unpause(h, id), -EPERM);
	cr_expect(parked(h, id));
	cr_assert_eq(hyp_domain_set_fenced(h, id, false), 0);
	cr_expect(unpaused(h, id));
	cr_expect(runs(h, id));

	/* Fencing a running domain pauses it; lifting the fence while an
	 * operation holds it leaves it to the operation. */
	cr_assert_eq(hyp_domain_set_fenced(h, id, true), 0);
	cr_expect(parked(h, id));
	cr_assert_eq(hyp_domain_op_pause(h, id), 0);
	cr_assert_eq(hyp_domain_set_fenced(h, id, false), 0);
	cr_expect(parked(h, id));
	cr_assert_eq(hyp_domain_op_unpause(h, id), 0);
	cr_expect(runs(h, id));
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	hyp_destroy(h);
}

/* A domain built paused carries the toolstack's pause: an operation on it
 * leaves it paused, and one unpause runs it (xl create -p, xl restore -p). */
Test(owner, created_paused, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 256);
	struct hyp_dom_config c = harness_cfg("p", 64, "workload=dirty ws=4M rate=50M");
	uint32_t id;

	cr_assert_eq(hyp_domain_create(h, &c, true, &id), 0);
	cr_expect_eq(info(h, id).pause_count, 1);
	cr_assert_eq(hyp_domain_op_pause(h, id), 0);
	cr_assert_eq(hyp_domain_op_unpause(h, id), 0);
	cr_expect_eq(info(h, id).state, HYP_DOM_PAUSED);
	cr_assert_eq(hyp_domain_unpause(h, id), 0);
	cr_expect(unpaused(h, id));
	cr_expect(harness_wait_console(h, id, "workload:", 1, 20), "console:\n%s",
		  harness_console(h, id));
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	hyp_destroy(h);
}

/* One owner operation at a time; the refusal names the holder. */
Test(owner, one_claim_at_a_time, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 256);
	struct hyp_dom_config c = harness_cfg("c", 32, "workload=idle");
	struct hyp_op_holder hold = {0};
	uint32_t id;

	cr_assert_eq(hyp_domain_create(h, &c, false, &id), 0);
	cr_expect_eq(info(h, id).op, HYP_OP_NONE);
	cr_expect_eq(hyp_domain_claim(h, id, HYP_OP_NONE, NULL, NULL), -EINVAL);
	cr_assert_eq(hyp_domain_claim(h, id, HYP_OP_SAVE, "being saved to /x", NULL), 0);
	cr_expect_eq(info(h, id).op, HYP_OP_SAVE);
	cr_expect_eq(hyp_domain_claim(h, id, HYP_OP_MIGRATE, "being migrated to b", &hold), -EBUSY);
	cr_expect_eq(hold.op, HYP_OP_SAVE);
	cr_expect_str_eq(hold.detail, "being saved to /x");
	cr_expect_str_eq(hyp_op_name(hold.op), "save");
	cr_expect_eq(hyp_domain_claim(h, id, HYP_OP_SAVE, NULL, NULL), -EBUSY,
		     "a second save got in");
	cr_expect_eq(hyp_domain_release(h, id, HYP_OP_MIGRATE), -EINVAL,
		     "released by an operation that does not hold it");
	cr_expect_eq(info(h, id).op, HYP_OP_SAVE);
	cr_assert_eq(hyp_domain_release(h, id, HYP_OP_SAVE), 0);
	cr_assert_eq(hyp_domain_holder(h, id, &hold), 0);
	cr_expect_eq(hold.op, HYP_OP_NONE);
	cr_assert_eq(hyp_domain_claim(h, id, HYP_OP_MIGRATE, "being migrated to b", NULL), 0);
	cr_expect_str_eq(hyp_op_name(info(h, id).op), "migration");
	/* Claims do not look at the fence (the toolstack's policy). */
	cr_assert_eq(hyp_domain_set_fenced(h, id, true), 0);
	cr_assert_eq(hyp_domain_release(h, id, HYP_OP_MIGRATE), 0);
	cr_expect_eq(hyp_domain_claim(h, id, HYP_OP_SNAPSHOT, NULL, NULL), 0);
	/* An operation may end by destroying the domain. */
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	cr_expect_eq(hyp_domain_release(h, id, HYP_OP_SNAPSHOT), -ENOENT);
	cr_expect_eq(hyp_domain_claim(h, id, HYP_OP_SAVE, NULL, NULL), -ENOENT);
	hyp_destroy(h);
}
