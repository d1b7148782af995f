// SPDX-License-Identifier: MIT
/*
 * Both halves of the migration handshake in one process, over real TLS
 * 1.3 on loopback: hyp A runs a verify guest and migrates it with
 * mig_hs_migrate (migrate/handshake.h) to a listener whose connections are
 * served by rst_rcv_serve (restore/receive.h) into hyp B, each on a thread
 * of its own, as ferryd's receiver jobs are. Certificates come from
 * strm_tls_setup in a fresh directory, for 127.0.11.1 (the target) and
 * 127.0.11.2 (the source); the listener takes a free port.
 *
 * Cases: ready/go/report (the copy verifies clean); a target refusing
 * before go (the source resumes); a target that cannot start the copy
 * after go (it hands it back, the source resumes); a connection lost
 * after go with the target unreachable (the source stays fenced: paused,
 * not destroyed) and migrate-resolve both ways; and the connection cut at
 * every message boundary of the target's half, each ending with exactly
 * one running copy. With page channels (docs/channels.md): the pages over
 * three more connections; a channel lost before it is opened; and the
 * main connection cut with the channels open.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "harness.h"
#include "migrate/handshake.h"
#include "restore/receive.h"
#include "stream/net.h"

#define TARGET	 "127.0.11.1"
#define SOURCE	 "127.0.11.2"
#define NAME	 "hs"
#define MEM_MB	 64
#define CMDLINE	 "workload=verify ws=4M rate=4M"
#define PAGES	 "pages=1024"
#define MAX_CONN 16

static struct hyp_dom_config soft_cfg(const char *name, uint64_t mem_mb, const char *cmdline)
{
	struct hyp_dom_config c = harness_cfg(name, mem_mb, cmdline);

	snprintf(c.backend, sizeof(c.backend), "soft");
	return c;
}

struct env;

/* One accepted connection, served on its own thread. */
struct conn {
	struct env *e;
	int fd;
	int index; /* 0: the first connection (the migration's) */
	unsigned steps;
	enum rst_rcv_outcome out;
	uint32_t domid;
	pthread_t thread;
	bool started;
};

struct env {
	char dir[64];
	struct hyp *a, *b;
	struct hyp_dom_config cfg;
	uint32_t src;
	struct strm_tls *src_tls, *dst_tls;
	struct rst_rcv_set *set;
	int lfd;
	char host[64];
	pthread_t acceptor;
	volatile bool stop;
	volatile bool down; /* the target refuses every connection */
	int cut_at;	    /* shut the first connection down after this many steps; -1: never */
	pthread_mutex_t lock;
	struct conn conns[MAX_CONN];
	int nconn;
	bool block_name; /* no_return: make NAME exist on B, so the start fails */
	unsigned chans;	 /* page channels the source asks for */
	int cut_conn;	 /* cut this connection (index > 0) at once; 0: none */
};

static struct env E;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* ---- the target: a listener and a thread per connection ------------------ */

static int t_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
		    size_t errlen)
{
	*cfg = E.cfg;
	return 0;
}

/*
 * Loses the connection under the receiver: the peer sees it end (FIN, or
 * RST for unread data), and the receiver's own next read or write fails,
 * as a dead socket in its place answers ENOTCONN. (shutdown(SHUT_RD)
 * alone does not stop Linux from reading what arrives later.)
 */
static void cut(struct conn *c, const char *when)
{
	int dead = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	fprintf(stderr, "  cut %s\n", when);
	cr_assert_geq(dead, 0);
	shutdown(c->fd, SHUT_RDWR);
	cr_assert_geq(dup2(dead, c->fd), 0);
	close(dead);
}

static void t_step(void *opaque, const char *step)
{
	struct conn *c = opaque;
	char when[64];

	c->steps++;
	if (c->index == 0 && (int)c->steps == c->e->cut_at) {
		snprintf(when, sizeof(when), "after the target's '%s'", step);
		cut(c, when);
	}
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct env *e = c->e;
	struct rst_rcv_ops ops = { .config = t_config, .step = t_step, .opaque = c };
	struct rst_rcv_conf conf = { .h = e->b, .set = e->set, .tls = e->dst_tls,
				     .net_ms = 3000, .peer = SOURCE, .ops = &ops };

	if (c->index == 0 && e->cut_at == 0)
		cut(c, "before the TLS handshake");
	if (c->index && c->index == e->cut_conn)
		cut(c, "a page channel, before the TLS handshake");
	c->out = rst_rcv_serve(&conf, c->fd, &c->domid);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	struct env *e = arg;

	while (!e->stop) {
		char err[256];
		int fd, rc = strm_tcp_accept(e->lfd, 100, &fd, NULL, 0, err, sizeof(err));
		struct conn *c;

		if (rc)
			continue;
		pthread_mutex_lock(&e->lock);
		if (e->down || e->nconn == MAX_CONN) {
			pthread_mutex_unlock(&e->lock);
			close(fd);
			continue;
		}
		c = &e->conns[e->nconn];
		c->e = e;
		c->fd = fd;
		c->index = e->nconn++;
		c->started = !pthread_create(&c->thread, NULL, conn_main, c);
		pthread_mutex_unlock(&e->lock);
		if (!c->started)
			close(fd);
	}
	return NULL;
}

/* Waits for every connection's thread; the outcome of the migration's. */
static enum rst_rcv_outcome join_conns(struct env *e)
{
	pthread_mutex_lock(&e->lock);
	for (int i = 0; i < e->nconn; i++) {
		if (e->conns[i].started)
			pthread_join(e->conns[i].thread, NULL);
		e->conns[i].started = false;
	}
	pthread_mutex_unlock(&e->lock);
	return e->nconn ? e->conns[0].out : RST_RCV_NOTHING;
}

/* ---- set-up ------------------------------------------------------------------ */

static void setup(void)
{
	const char *hosts[] = { TARGET, SOURCE };
	char err[512];
	int port;

	log_set_stderr(0);
	memset(&E, 0, sizeof(E));
	pthread_mutex_init(&E.lock, NULL);
	E.cut_at = -1;
	snprintf(E.dir, sizeof(E.dir), "/tmp/ferry-hs-XXXXXX");
	cr_assert(mkdtemp(E.dir));
	cr_assert_eq(strm_tls_setup(E.dir, hosts, 2, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strm_tls_new(E.dir, TARGET, &E.dst_tls, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strm_tls_new(E.dir, SOURCE, &E.src_tls, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rst_rcv_set_new(&E.set), 0);
	cr_assert_eq(strm_tcp_listen(TARGET ":0", &E.lfd, err, sizeof(err)), 0, "%s", err);
	port = strm_tcp_local_port(E.lfd);
	cr_assert_gt(port, 0);
	snprintf(E.host, sizeof(E.host), "%s:%d", TARGET, port);
	cr_assert_eq(pthread_create(&E.acceptor, NULL, acceptor_main, &E), 0);
	E.a = harness_hyp("soft", 256);
	E.b = harness_hyp("soft", 256);
	E.cfg = soft_cfg(NAME, MEM_MB, CMDLINE);
	cr_assert_eq(hyp_domain_create(E.a, &E.cfg, false, &E.src), 0);
	cr_assert(harness_wait_console(E.a, E.src, "verify: sweep", 1, 20),
		  "no sweep; console:\n%s", harness_console(E.a, E.src));
}

static void teardown(void)
{
	E.stop = true;
	pthread_join(E.acceptor, NULL);
	join_conns(&E);
	close(E.lfd);
	hyp_destroy(E.a);
	hyp_destroy(E.b);
	rst_rcv_set_free(E.set);
	strm_tls_free(E.src_tls);
	strm_tls_free(E.dst_tls);
	nftw(E.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	pthread_mutex_destroy(&E.lock);
}

/* ---- the source -------------------------------------------------------------- */

static int s_no_return(void *opaque)
{
	struct env *e = opaque;

	if (e->block_name) {
		struct hyp_dom_config cfg = soft_cfg(NAME, 16, "workload=idle ws=1M");
		uint32_t id;

		cr_assert_eq(hyp_domain_create(e->b, &cfg, false, &id), 0);
	}
	return 0;
}

static const struct mig_hs_ops s_ops = { .no_return = s_no_return, .opaque = &E };

static struct mig_hs_conf s_conf(uint32_t domid)
{
	return (struct mig_hs_conf){ .h = E.a, .domid = domid, .name = NAME, .host = E.host,
				     .tls = E.src_tls, .net_ms = 3000, .query_ms = 1500,
				     .ops = &s_ops };
}

static int migrate(struct mig_hs_result *res)
{
	struct mig_live_opts o = { .config_json = "{\"c_info\":{\"name\":\"" NAME "\"}}",
				   .downtime_ms = 300, .max_rounds = 30, .nchannels = E.chans,
				   .codec = E.chans ? STRM_CODEC_LZ4 : STRM_CODEC_NONE };
	struct mig_hs_conf c = s_conf(E.src);
	int rc = mig_hs_migrate(&c, &o, res);

	fprintf(stderr, "  mig_hs_migrate: %d, outcome %s%s%s\n", rc,
		res->outcome ? res->outcome : "-", rc ? ": " : "", rc ? res->err : "");
	cr_assert_eq(rc, res->rc);
	return rc;
}

/* ---- outcomes ------------------------------------------------------------------- */

static bool running(struct hyp *h, const char *name, uint32_t *domid)
{
	struct hyp_dom_info info;
	uint32_t id;

	if (hyp_domain_lookup(h, name, &id) || hyp_domain_info(h, id, &info))
		return false;
	if (domid)
		*domid = id;
	return !info.fenced && (info.state == HYP_DOM_RUNNING || info.state == HYP_DOM_BLOCKED);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* The source runs here as NAME, sweeps on without a mismatch, and B has
 * no copy of it. */
static void expect_source_runs(void)
{
	int before = count(harness_console(E.a, E.src), "mismatches=0");
	uint32_t id;

	cr_assert(running(E.a, NAME, &id), "the source does not run as '" NAME "'");
	cr_assert_eq(id, E.src);
	cr_assert(harness_wait_console(E.a, E.src, "mismatches=0", before + 1, 15),
		  "the source stopped sweeping; console:\n%s", harness_console(E.a, E.src));
	cr_assert_null(strstr(harness_console(E.a, E.src), "verify: mismatch "));
	cr_assert(!running(E.b, NAME, NULL), "a second running copy on the target");
	cr_assert(hyp_domain_lookup(E.b, NAME RST_INCOMING_SUFFIX, &id),
		  "the target kept " NAME RST_INCOMING_SUFFIX);
}

/* The copy runs on B with every page intact; nothing of it is left on A. */
static void expect_target_runs(void)
{
	uint32_t id;

	cr_assert(hyp_domain_lookup(E.a, NAME, &id) &&
			  hyp_domain_lookup(E.a, NAME MIG_AWAY_SUFFIX, &id),
		  "the source copy is still there");
	cr_assert(running(E.b, NAME, &id), "the target does not run '" NAME "'");
	cr_assert(harness_wait_console(E.b, id, "verify: resume " PAGES " mismatches=0", 1, 20),
		  "the copy did not verify; console:\n%s", harness_console(E.b, id));
	cr_assert_null(strstr(harness_console(E.b, id), "verify: mismatch "));
}

/* Fenced: paused, unpause refused, renamed, not destroyed. */
static void expect_fenced(const struct mig_hs_result *res)
{
	struct hyp_dom_info info;
	uint32_t id;

	cr_assert(res->fenced);
	cr_assert_str_eq(res->outcome, "fenced");
	cr_assert_eq(res->rc, -EHOSTUNREACH);
	cr_assert_str_eq(res->away, NAME MIG_AWAY_SUFFIX);
	cr_assert_eq(hyp_domain_lookup(E.a, NAME MIG_AWAY_SUFFIX, &id), 0, "destroyed");
	cr_assert_eq(id, E.src);
	cr_assert_eq(hyp_domain_info(E.a, id, &info), 0);
	cr_assert(info.fenced);
	cr_assert_eq(info.state, HYP_DOM_PAUSED);
	cr_assert_neq(hyp_domain_unpause(E.a, id), 0, "a fenced domain unpaused");
	cr_assert_not_null(strstr(res->err, "xl migrate-resolve " NAME MIG_AWAY_SUFFIX), "%s",
			   res->err);
}

static int resolve(struct mig_hs_result *res)
{
	struct mig_hs_conf c = s_conf(E.src);
	int rc = mig_hs_resolve(&c, NAME MIG_AWAY_SUFFIX, res);

	fprintf(stderr, "  mig_hs_resolve: %d, outcome %s\n", rc, res->outcome);
	return rc;
}

/* ---- cases ------------------------------------------------------------------------ */

TestSuite(handshake, .init = setup, .fini = teardown, .timeout = 60);

Test(handshake, ready_go_report)
{
	struct mig_hs_result res;

	cr_assert_eq(migrate(&res), 0, "%s", res.err);
	cr_assert_str_eq(res.outcome, "migrated");
	cr_assert_not(res.resolved_by_query);
	cr_assert_not(res.fenced);
	cr_assert_geq(res.rep.rounds, 1);
	cr_assert_gt(res.downtime_ms, 0);
	cr_assert_eq(join_conns(&E), RST_RCV_RUNNING);
	expect_target_runs();
}

Test(handshake, a_refusal_before_go_resumes_the_source)
{
	struct hyp_dom_config cfg = soft_cfg(NAME, 16, "workload=idle ws=1M");
	struct mig_hs_result res;
	uint32_t id;

	cr_assert_eq(hyp_domain_create(E.b, &cfg, false, &id), 0);
	cr_assert_neq(migrate(&res), 0);
	cr_assert_not(res.fenced);
	cr_assert_not_null(strstr(res.err, "the target refused: "), "%s", res.err);
	cr_assert_not_null(strstr(res.err, "domain '" NAME "' already exists here"), "%s",
			   res.err);
	cr_assert_not_null(strstr(res.err, "it keeps running here"), "%s", res.err);
	cr_assert_eq(join_conns(&E), RST_RCV_REFUSED);
	cr_assert(running(E.a, NAME, NULL));
	cr_assert_eq(hyp_domain_lookup(E.b, NAME, &id), 0);
	cr_assert(hyp_domain_lookup(E.b, NAME RST_INCOMING_SUFFIX, &id));
}

Test(handshake, a_target_failing_after_go_hands_it_back)
{
	struct mig_hs_result res;
	uint32_t id;

	E.block_name = true; /* the rename to NAME fails with EEXIST after go */
	cr_assert_eq(migrate(&res), -FERRY_EPROTO, "%s", res.err);
	cr_assert_str_eq(res.outcome, "resumed");
	cr_assert_not(res.fenced);
	cr_assert_not_null(strstr(res.err, "the target could not start it (status "), "%s",
			   res.err);
	cr_assert_eq(join_conns(&E), RST_RCV_HANDED_BACK);
	cr_assert(hyp_domain_lookup(E.b, NAME RST_INCOMING_SUFFIX, &id), "the copy is left");
	cr_assert(running(E.a, NAME, &id));
	cr_assert_eq(id, E.src);
}

/* After the migration's own connection, the target refuses every other one
 * (the queries): it is unreachable. */
static void *go_down_after_first(void *arg)
{
	struct env *e = arg;

	/* The migration's connection is the first; refuse the queries. */
	while (!e->stop) {
		pthread_mutex_lock(&e->lock);
		if (e->nconn >= 1) {
			e->down = true;
			pthread_mutex_unlock(&e->lock);
			return NULL;
		}
		pthread_mutex_unlock(&e->lock);
		usleep(1000);
	}
	return NULL;
}

static void fence_source(struct mig_hs_result *res)
{
	pthread_t t;

	E.cut_at = 4;
	cr_assert_eq(pthread_create(&t, NULL, go_down_after_first, &E), 0);
	cr_assert_neq(migrate(res), 0);
	pthread_join(t, NULL);
	expect_fenced(res);
	cr_assert_eq(join_conns(&E), RST_RCV_RUNNING);
	E.down = false;
}

/* migrate-resolve of the fenced source: the query settles it as outcome. */
static void resolve_to(const char *outcome)
{
	struct mig_hs_result res;
	bool migrated = !strcmp(outcome, "migrated");

	cr_assert_eq(resolve(&res), 0, "%s", res.err);
	cr_assert_str_eq(res.outcome, outcome);
	cr_assert_not(res.fenced);
	cr_assert_eq(res.resolved_by_query, migrated);
	if (migrated)
		expect_target_runs();
	else
		expect_source_runs();
}

Test(handshake, lost_after_go_fences_then_resolve_finds_it_running)
{
	struct mig_hs_result res;

	fence_source(&res);
	resolve_to("migrated");
}

Test(handshake, lost_after_go_fences_then_resolve_finds_it_absent)
{
	struct mig_hs_result res;
	uint32_t id;

	fence_source(&res);
	/* The operator destroyed the target's copy meanwhile. */
	cr_assert_eq(hyp_domain_lookup(E.b, NAME, &id), 0);
	cr_assert_eq(hyp_domain_destroy(E.b, id), 0);
	resolve_to("resumed");
}

Test(handshake, resolve_with_the_target_unreachable_stays_fenced)
{
	struct mig_hs_result res;

	fence_source(&res);
	E.down = true;
	cr_assert_eq(resolve(&res), -EHOSTUNREACH);
	expect_fenced(&res);
}

/*
 * The connection cut at every boundary of the target's messages: 0 before
 * the TLS handshake, then after the banner, the stream, ready, go and the
 * report. The target serves the source's queries throughout.
 */
static int cuts[] = { 0, 1, 2, 3, 4, 5 };

ParameterizedTestParameters(handshake, cut)
{
	return cr_make_param_array(int, cuts, ARRAY_SIZE(cuts));
}

ParameterizedTest(int *k, handshake, cut)
{
	struct mig_hs_result res;
	enum rst_rcv_outcome out;
	int rc;

	E.cut_at = *k;
	fprintf(stderr, "cut %d:\n", *k);
	rc = migrate(&res);
	out = join_conns(&E);
	cr_assert_not(res.fenced, "fenced though the target could be asked: %s", res.err);
	if (*k <= 3) {
		/* Before go reached the target: it never ran it. */
		cr_assert_neq(rc, 0);
		cr_assert(out == RST_RCV_NOTHING || out == RST_RCV_REFUSED ||
			  out == RST_RCV_DROPPED, "target outcome %d", out);
		cr_assert(*k < 2 || out == RST_RCV_DROPPED, "target outcome %d", out);
		expect_source_runs();
		return;
	}
	/* Go reached the target: it runs it, and the source learns it from the
	 * report or, without one, by asking. */
	cr_assert_eq(rc, 0, "%s", res.err);
	cr_assert_str_eq(res.outcome, "migrated");
	cr_assert_eq(out, RST_RCV_RUNNING);
	cr_assert_eq(res.resolved_by_query, *k == 4);
	expect_target_runs();
}

/* ---- page channels ------------------------------------------------------------------ */

Test(handshake, pages_over_three_channels)
{
	struct mig_hs_result res;

	E.chans = 3;
	cr_assert_eq(migrate(&res), 0, "%s", res.err);
	cr_assert_str_eq(res.outcome, "migrated");
	cr_assert_eq(join_conns(&E), RST_RCV_RUNNING);
	/* The next three connections were the channels, each taken by it. */
	cr_assert_geq(E.nconn, 4);
	for (int i = 1; i <= 3; i++)
		cr_assert_eq(E.conns[i].out, RST_RCV_CHANNEL, "connection %d: outcome %d", i,
			     E.conns[i].out);
	/* Counted with the main stream's bytes: at least the pages sent. */
	cr_assert_geq(res.rep.bytes_sent, 1024ull * 4096 / 2, "%llu bytes",
		      (unsigned long long)res.rep.bytes_sent);
	expect_target_runs();
}

Test(handshake, a_channel_lost_before_it_opens_resumes_the_source)
{
	struct mig_hs_result res;

	E.chans = 2;
	E.cut_conn = 2; /* the second page channel */
	cr_assert_neq(migrate(&res), 0);
	cr_assert_not(res.fenced);
	cr_assert_not_null(strstr(res.err, "cannot open page channel 2 of 2"), "%s", res.err);
	cr_assert_not_null(strstr(res.err, "it keeps running here"), "%s", res.err);
	/* The target's side gave up waiting for it and kept nothing. */
	cr_assert_eq(join_conns(&E), RST_RCV_REFUSED);
	expect_source_runs();
}

/* The main connection cut after the banner (the channels are open and
 * waiting), after the stream (the channels have ended) and after go. */
static int chan_cuts[] = { 1, 2, 4 };

ParameterizedTestParameters(handshake, cut_with_channels)
{
	return cr_make_param_array(int, chan_cuts, ARRAY_SIZE(chan_cuts));
}

ParameterizedTest(int *k, handshake, cut_with_channels)
{
	struct mig_hs_result res;
	int rc;

	E.chans = 2;
	E.cut_at = *k;
	fprintf(stderr, "cut %d, 2 page channels:\n", *k);
	rc = migrate(&res);
	join_conns(&E);
	cr_assert_not(res.fenced, "fenced though the target could be asked: %s", res.err);
	if (*k < 4) {
		cr_assert_neq(rc, 0);
		expect_source_runs();
		return;
	}
	cr_assert_eq(rc, 0, "%s", res.err);
	cr_assert(res.resolved_by_query);
	expect_target_runs();
}

/* ---- hostile page-channel lines ------------------------------------------------ */

#define COOKIE "0123456789abcdef0123456789abcdef"

struct bad_line {
	const char *line;
	enum rst_rcv_outcome out;
	const char *reply; /* in the target's answer; "" for none */
	double max_s;	   /* answered or closed within */
};

/*
 * Lines a page channel or a main connection may not send, each on a
 * connection of its own past TLS and the banner: refused with the reason
 * named, never a hang and never a domain. The waits for a peer that never
 * comes are min(net_ms, 10 s): 3 s here.
 */
static const struct bad_line bad_lines[] = {
	{ STRM_HS_CHANNELS "3 xyz\n", RST_RCV_REFUSED, "malformed page channels line", 2 },
	{ STRM_HS_CHANNELS "9 " COOKIE "\n", RST_RCV_REFUSED, "malformed page channels line", 2 },
	{ STRM_HS_CHANNELS "0 " COOKIE "\n", RST_RCV_REFUSED, "malformed page channels line", 2 },
	{ STRM_HS_CHANNELS "2\n", RST_RCV_REFUSED, "malformed page channels line", 2 },
	{ STRM_HS_PAGES COOKIE " 8\n", RST_RCV_NOTHING, "", 2 },
	{ STRM_HS_PAGES "zz 0\n", RST_RCV_NOTHING, "", 2 },
	{ STRM_HS_PAGES COOKIE "\n", RST_RCV_NOTHING, "", 2 },
	/* well formed, but nothing here has that cookie */
	{ STRM_HS_PAGES COOKIE " 0\n", RST_RCV_NOTHING, "no migration here is waiting", 6 },
	{ STRM_HS_CHANNELS "2 " COOKIE "\n", RST_RCV_REFUSED, "did not all arrive", 6 },
};

/* Sends line on a new connection; what came back until the target closed. */
static double send_bad_line(const char *line, char *reply, size_t len)
{
	char host[64], err[512];
	struct strm_io *io;
	size_t got = 0;
	ssize_t n;
	double t0;
	int fd;

	cr_assert_eq(strm_tcp_connect(E.host, 2000, &fd, host, sizeof(host), err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(strm_io_tls_client(E.src_tls, fd, TARGET, &io, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(strm_io_set_cancel(io, NULL, 15000), 0);
	cr_assert_eq(strm_hs_read(io, STRM_HS_BANNER, sizeof(STRM_HS_BANNER) - 1, "banner", err,
				  sizeof(err)),
		     0, "%s", err);
	t0 = ferry_now_s();
	cr_assert_eq(strm_hs_write(io, line, strlen(line)), 0);
	while (got + 1 < len && (n = strm_io_read(io, reply + got, len - 1 - got)) > 0)
		got += (size_t)n;
	reply[got] = 0;
	strm_io_close(io);
	return ferry_now_s() - t0;
}

Test(handshake, hostile_channel_lines_are_refused_with_the_reason)
{
	char reply[1024];

	for (size_t i = 0; i < ARRAY_SIZE(bad_lines); i++) {
		const struct bad_line *b = &bad_lines[i];
		double s = send_bad_line(b->line, reply, sizeof(reply));

		cr_assert_leq(s, b->max_s, "'%s': %.1f s to answer", b->line, s);
		if (*b->reply)
			cr_assert_not_null(strstr(reply, b->reply), "'%s': the answer was '%s'",
					   b->line, reply);
		else
			cr_assert_str_eq(reply, "", "'%s': the answer was '%s'", b->line, reply);
		join_conns(&E);
		cr_assert_eq(E.conns[i].out, b->out, "'%s': outcome %d", b->line, E.conns[i].out);
	}
	/* A line longer than any: cut off, not read forever. */
	{
		char big[8192];

		memset(big, '7', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		memcpy(big, STRM_HS_CHANNELS, strlen(STRM_HS_CHANNELS));
		cr_assert_leq(send_bad_line(big, reply, sizeof(reply)), 2);
		join_conns(&E);
		cr_assert_eq(E.conns[ARRAY_SIZE(bad_lines)].out, RST_RCV_REFUSED);
	}
	expect_source_runs();
}
