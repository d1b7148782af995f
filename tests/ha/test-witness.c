// SPDX-License-Identifier: MIT
/*
 * The witness (ha/witness.c) against a real etcd that the suite starts
 * (Debian's etcd-server, scripts/deps.sh; 1 s leases need its election
 * timeout at 500 ms), and pairs that use it through partitions: the link
 * between the hosts cut while both reach etcd, and the primary cut off
 * from both the backup and etcd (a TCP proxy the test can cut sits in
 * front of etcd for the primary). Never two running copies: the primary's
 * fence comes before the backup resumes, on the one clock both share here.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "pair.h"

static pid_t etcd_pid;
static int etcd_port;
static char etcd_url[64], etcd_dir[64];

static bool etcd_up(void)
{
	struct ha_witness *w;
	char err[256], st[64];
	bool up = false;

	if (ha_witness_new(etcd_url, "probe", "probe", NULL, &w, err, sizeof(err)))
		return false;
	up = !ha_witness_get_state(w, st, sizeof(st));
	ha_witness_free(w);
	return up;
}

static void etcd_start(void)
{
	char client[64], peer[64], adv[64], ipeer[80];

	if (access("/usr/bin/etcd", X_OK))
		cr_skip_test("etcd is not installed (scripts/deps.sh installs etcd-server)");
	etcd_port = 21000 + (getpid() % 2000) * 2;
	snprintf(etcd_url, sizeof(etcd_url), "etcd://127.0.0.1:%d", etcd_port);
	snprintf(etcd_dir, sizeof(etcd_dir), "/tmp/ferry-etcd.%d", getpid());
	snprintf(client, sizeof(client), "http://127.0.0.1:%d", etcd_port);
	snprintf(adv, sizeof(adv), "http://127.0.0.1:%d", etcd_port);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", etcd_port + 1);
	snprintf(ipeer, sizeof(ipeer), "default=http://127.0.0.1:%d", etcd_port + 1);
	etcd_pid = fork();
	cr_assert_geq(etcd_pid, 0);
	if (!etcd_pid) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execl("/usr/bin/etcd", "etcd", "--data-dir", etcd_dir, "--listen-client-urls",
		      client, "--advertise-client-urls", adv, "--listen-peer-urls", peer,
		      "--initial-advertise-peer-urls", peer, "--initial-cluster", ipeer,
		      "--heartbeat-interval", "50", "--election-timeout", "500", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && !etcd_up(); i++)
		usleep(50 * 1000);
	cr_assert(etcd_up(), "etcd did not start on %s", etcd_url);
}

static void etcd_stop(void)
{
	char cmd[128];

	if (etcd_pid > 0) {
		kill(etcd_pid, SIGKILL);
		waitpid(etcd_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", etcd_dir);
	cr_assert_eq(system(cmd), 0);
}

/* ---- a TCP proxy in front of etcd, for one side ----------------------------- */

struct proxy {
	int lfd, port;
	atomic_bool cut, stop;
	pthread_t t;
};

static void *proxy_main(void *arg)
{
	struct proxy *px = arg;
	struct pollfd fds[1 + 2 * 16];
	int conn[16][2], n = 0;
	uint8_t buf[16384];

	while (!atomic_load(&px->stop)) {
		int k = 0;

		fds[k++] = (struct pollfd){px->lfd, POLLIN, 0};
		for (int i = 0; i < n; i++) {
			fds[k++] = (struct pollfd){conn[i][0], POLLIN, 0};
			fds[k++] = (struct pollfd){conn[i][1], POLLIN, 0};
		}
		if (poll(fds, (nfds_t)k, 20) <= 0)
			continue;
		if ((fds[0].revents & POLLIN) && n < 16) {
			struct sockaddr_in a = {.sin_family = AF_INET,
						.sin_port = htons((uint16_t)etcd_port),
						.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
			int c = accept(px->lfd, NULL, NULL), s = socket(AF_INET, SOCK_STREAM, 0);

			if (c >= 0 && s >= 0 && !connect(s, (struct sockaddr *)&a, sizeof(a))) {
				conn[n][0] = c;
				conn[n][1] = s;
				n++;
			} else {
				close(c);
				close(s);
			}
		}
		for (int i = 0; i < n; i++) {
			for (int d = 0; d < 2; d++) {
				ssize_t r;

				if (!(fds[1 + 2 * i + d].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				r = read(conn[i][d], buf, sizeof(buf));
				if (r <= 0) {
					close(conn[i][0]);
					close(conn[i][1]);
					conn[i][0] = conn[--n][0];
					conn[i][1] = conn[n][1];
					break;
				}
				/* Cut: bytes go nowhere, as across a partition. */
				if (!atomic_load(&px->cut) &&
				    write(conn[i][!d], buf, (size_t)r) < 0)
					continue;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		close(conn[i][0]);
		close(conn[i][1]);
	}
	return NULL;
}

static void proxy_start(struct proxy *px)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	memset(px, 0, sizeof(*px));
	px->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(px->lfd, 0);
	cr_assert_eq(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(px->lfd, 16), 0);
	cr_assert_eq(getsockname(px->lfd, (struct sockaddr *)&a, &len), 0);
	px->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&px->t, NULL, proxy_main, px), 0);
}

static void proxy_stop(struct proxy *px)
{
	atomic_store(&px->stop, true);
	pthread_join(px->t, NULL);
	close(px->lfd);
}

TestSuite(witness, .init = etcd_start, .fini = etcd_stop, .timeout = 120);

/* One holder at a time; a lease not renewed expires within about its TTL
 * and the key goes to the next; the old holder learns it lost it. */
Test(witness, one_holder_and_leases_expire)
{
	struct ha_witness *a, *b;
	char err[256], holder[64];
	double sent, t0;
	bool got;

	cr_assert_eq(ha_witness_new(etcd_url, "lease", "host-a", NULL, &a, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(ha_witness_new(etcd_url, "lease", "host-b", NULL, &b, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(ha_witness_acquire(a, &got, holder, sizeof(holder)), 0, "%s",
		     ha_witness_error(a));
	cr_assert(got);
	cr_assert_eq(ha_witness_acquire(b, &got, holder, sizeof(holder)), 0);
	cr_assert_not(got);
	cr_assert_str_eq(holder, "host-a");
	cr_assert_eq(ha_witness_keepalive(a, 0, &sent), 0, "%s", ha_witness_error(a));
	t0 = sent;
	do {
		usleep(50 * 1000);
		cr_assert_eq(ha_witness_acquire(b, &got, holder, sizeof(holder)), 0);
	} while (!got && ferry_now_s() - t0 < 5);
	cr_assert(got, "the lease never expired");
	cr_log_info("the lease went to b %.0f ms after a's last renewal (TTL %d s)",
		    (ferry_now_s() - t0) * 1e3, HA_WITNESS_TTL_S);
	cr_assert_geq(ferry_now_s() - t0, HA_WITNESS_TTL_S - 0.2, "expired early");
	cr_assert_eq(ha_witness_keepalive(a, 0, &sent), -ETIME);
	cr_assert_eq(ha_witness_set_state(b, "protected"), 0);
	cr_assert_eq(ha_witness_get_state(a, holder, sizeof(holder)), 0);
	cr_assert_str_eq(holder, "protected");
	ha_witness_release(b);
	ha_witness_free(a);
	ha_witness_free(b);
}

/* The link between the hosts is cut, both still reach the witness: the
 * primary runs on (it holds the lease and records that), the backup never
 * resumes and drops its copy. */
Test(witness, a_cut_link_leaves_the_primary_alone)
{
	struct pair pr;
	struct hyp_dom_info di;

	pair_start_witness(&pr, 50, 400, etcd_url, etcd_url);
	wait_epochs(&pr, 3);
	atomic_store(&pr.c.cut, true);
	cr_assert(wait_flag(&pr.backed, 10), "the backup did not decide");
	cr_assert_eq(pr.res.outcome, HA_BACKUP_BROKEN, "the backup runs too: %s", pr.res.err);
	cr_assert(strstr(pr.res.err, "ran on"), "%s", pr.res.err);
	cr_assert(wait_flag(&pr.ran, 10));
	cr_assert_eq(stats(&pr).state, HA_UNPROTECTED, "%s", pr.perr);
	cr_assert_eq(hyp_domain_info(pr.ph, pr.pid, &di), 0);
	cr_assert_neq(di.state, HYP_DOM_PAUSED, "the primary stopped");
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_end(&pr);
	pair_free(&pr);
}

/* After a cut at cut_at: the backup took over, and only after the primary
 * fenced itself (both stamps on the one clock both share here). */
static void expect_fence_then_takeover(struct pair *pr, double cut_at)
{
	cr_assert(wait_flag(&pr->backed, 10), "no failover");
	cr_assert_eq(pr->res.outcome, HA_BACKUP_FAILED_OVER, "%s", pr->res.err);
	cr_assert_gt(pr->fenced_at, 0, "the primary never fenced");
	cr_log_info("fenced %.0f ms after the cut, the backup ran %.0f ms after the cut",
		    (pr->fenced_at - cut_at) * 1e3, (pr->res.resumed_at - cut_at) * 1e3);
	cr_assert_lt(pr->fenced_at, pr->res.resumed_at, "both ran at once for %.1f ms",
		     (pr->fenced_at - pr->res.resumed_at) * 1e3);
}

/* The primary's host is cut off from the backup and the witness: it fences
 * itself before its lease can expire, and the backup resumes only after
 * that, once it holds the lease: one running copy at every instant. */
Test(witness, an_isolated_primary_fences_before_the_backup_runs)
{
	struct proxy px;
	struct pair pr;
	char url[64];
	double cut_at;
	struct hyp_dom_info di;

	proxy_start(&px);
	snprintf(url, sizeof(url), "etcd://127.0.0.1:%d", px.port);
	pair_start_witness(&pr, 50, 400, url, etcd_url);
	wait_epochs(&pr, 3);
	cut_at = ferry_now_s();
	atomic_store(&px.cut, true);
	atomic_store(&pr.c.cut, true);
	expect_fence_then_takeover(&pr, cut_at);
	cr_assert_eq(hyp_domain_info(pr.ph, pr.pid, &di), 0);
	cr_assert_eq(di.state, HYP_DOM_PAUSED, "the isolated primary runs");
	expect_copy_verifies(&pr);
	cr_assert(wait_flag(&pr.ran, 10));
	cr_assert_eq(stats(&pr).state, HA_FENCED);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_end(&pr);
	proxy_stop(&px);
	pair_free(&pr);
}

/* The witness goes away mid-pair: the primary cannot renew its lease, but
 * the backup still hears it and vouches for it (it cannot take over
 * meanwhile), so the domain runs on, protected, epochs going on. Then the
 * link between the hosts is cut too: nobody vouches any more, the primary
 * fences itself, and the backup runs only after that, once it holds the
 * lease. */
Test(witness, the_pair_runs_on_while_the_witness_is_away)
{
	struct proxy px;
	struct pair pr;
	struct hyp_dom_info di;
	char url[64];
	uint64_t before;
	double cut_at;

	proxy_start(&px);
	snprintf(url, sizeof(url), "etcd://127.0.0.1:%d", px.port);
	pair_start_witness(&pr, 50, 500, url, etcd_url);
	wait_epochs(&pr, 3);
	atomic_store(&px.cut, true);
	sleep(1);
	before = stats(&pr).epochs_acked;
	sleep(2);
	cr_assert_eq(pr.fenced_at, 0, "fenced while the backup vouched for it");
	cr_assert_eq(stats(&pr).state, HA_PROTECTED);
	cr_assert_gt(stats(&pr).epochs_acked, before + 20, "epochs stopped without the witness");
	cr_assert_eq(hyp_domain_info(pr.ph, pr.pid, &di), 0);
	cr_assert_neq(di.state, HYP_DOM_PAUSED, "the domain does not run");

	cut_at = ferry_now_s();
	atomic_store(&pr.c.cut, true);
	expect_fence_then_takeover(&pr, cut_at);
	expect_copy_verifies(&pr);
	cr_assert(wait_flag(&pr.ran, 10));
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_end(&pr);
	proxy_stop(&px);
	pair_free(&pr);
}
