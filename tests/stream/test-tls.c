// SPDX-License-Identifier: MIT
/*
 * TCP and TLS 1.3 transport (net.h): tls-setup, a handshake both ways with
 * 64 MiB round-tripping through strm_io, every refusal with its reason on
 * the refusing side and no data passed, and truncation as an error rather
 * than a hang.
 *
 * Each test builds its certificates in a fresh temporary directory:
 *   good/      tls-setup for 127.0.0.2 and 127.0.0.3 (CA 1)
 *   other/     tls-setup for 127.0.0.3 (CA 2)
 *   otherca/   CA 1's ca.pem, 127.0.0.3 signed by CA 2
 *   expired/   CA 1's ca.pem, 127.0.0.2 and 127.0.0.3 expired yesterday
 * The server listens on 127.0.0.2:<free port> in a thread.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "frame-data.h"
#include "stream/io.h"
#include "stream/net.h"

#define ERRLEN 512
#define BIG    (64u << 20)

static char root[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	uint8_t *b = fd_slurp(from, &len);
	FILE *f;

	cr_assert(b, "reading %s", from);
	f = fopen(to, "w");
	cr_assert(f, "creating %s", to);
	cr_assert_eq(fwrite(b, 1, len, f), len);
	fclose(f);
	free(b);
}

static void path_in(char *out, size_t len, const char *sub)
{
	snprintf(out, len, "%s/%s", root, sub);
}

static void setup_dirs(void)
{
	const char *hosts[] = {"127.0.0.2", "127.0.0.3"};
	char good[128], other[128], otherca[128], expired[128], p[192], q[192];
	char err[ERRLEN];

	log_set_stderr(0);
	signal(SIGPIPE, SIG_IGN); /* for the raw OpenSSL clients only */
	snprintf(root, sizeof(root), "/tmp/ferry-tls-XXXXXX");
	cr_assert(mkdtemp(root));
	path_in(good, sizeof(good), "good");
	path_in(other, sizeof(other), "other");
	path_in(otherca, sizeof(otherca), "otherca");
	path_in(expired, sizeof(expired), "expired");
	cr_assert_eq(strm_tls_setup(good, hosts, 2, 30, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strm_tls_setup(other, hosts + 1, 1, 30, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mkdir(otherca, 0700), 0);
	cr_assert_eq(mkdir(expired, 0700), 0);
	snprintf(p, sizeof(p), "%s/ca.pem", good);
	snprintf(q, sizeof(q), "%s/ca.pem", otherca);
	copy_file(p, q);
	snprintf(q, sizeof(q), "%s/ca.pem", expired);
	copy_file(p, q);
	cr_assert_eq(
		strm_tls_make_host_cert(otherca, "127.0.0.3", other, -300, 86400, err, sizeof(err)),
		0, "%s", err);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(strm_tls_make_host_cert(expired, hosts[i], good, -2 * 86400, -86400,
						     err, sizeof(err)),
			     0, "%s", err);
}

static void cleanup_dirs(void)
{
	if (root[0])
		nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool ring_has(const char *s)
{
	static char ring[1 << 16];

	log_ring_read(ring, sizeof(ring));
	return strstr(ring, s) != NULL;
}

/* ---- the server thread --------------------------------------------------- */

enum srv_mode {
	SRV_ECHO,     /* read len bytes, write them back, expect a clean end */
	SRV_DRAIN,    /* count what arrives (a refused client must send nothing) */
	SRV_TRUNCATE, /* write len bytes, then shut the socket down without close_notify */
	SRV_RAW,      /* write raw[] (a cut frame stream) and close cleanly */
	SRV_REFUSE,   /* read len bytes, write raw[], close with the rest unread */
	SRV_FRAMES,   /* read a frame stream of len raw bytes into back[], its stats */
};

struct server {
	char dir[128];
	char name[32];
	enum srv_mode mode;
	int lfd, port, hs_timeout_ms;
	size_t len;
	const uint8_t *raw;
	/* results */
	int rc, io_rc;
	bool got_io;
	uint64_t bytes_in;
	uint8_t *back;
	struct strm_frame_stats fst;
	char err[ERRLEN], peer[64], io_err[ERRLEN];
	pthread_t th;
};

/* Writes len bytes of buf through io as iovecs of varied sizes. */
static int write_many(struct strm_io *io, const uint8_t *buf, size_t len)
{
	static const size_t sizes[] = {1, 4096, 32, 70000, 4096, 4096, 13, 300001, 16384, 511};
	struct iovec iov[64];
	size_t pos = 0;
	int n = 0, rc;

	for (unsigned i = 0; pos < len; i++) {
		size_t k = MIN(sizes[i % ARRAY_SIZE(sizes)], len - pos);

		iov[n++] = (struct iovec){.iov_base = (void *)(buf + pos), .iov_len = k};
		pos += k;
		if (n == (int)ARRAY_SIZE(iov) || pos == len) {
			rc = strm_io_writev(io, iov, n);
			if (rc)
				return rc;
			n = 0;
		}
	}
	return 0;
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct strm_tls *t = NULL;
	struct strm_io *io = NULL;
	uint8_t *buf = NULL, tmp[4096];
	int fd;

	s->rc = strm_tls_new(s->dir, s->name, &t, s->err, sizeof(s->err));
	if (s->rc)
		return NULL;
	if (s->hs_timeout_ms)
		strm_tls_set_handshake_timeout(t, s->hs_timeout_ms);
	s->rc = strm_tcp_accept(s->lfd, 10000, &fd, NULL, 0, s->err, sizeof(s->err));
	if (s->rc)
		goto out;
	s->rc = strm_io_tls_server(t, fd, &io, s->peer, sizeof(s->peer), s->err, sizeof(s->err));
	if (s->rc)
		goto out;
	s->got_io = true;
	switch (s->mode) {
	case SRV_ECHO:
		buf = malloc(s->len);
		s->io_rc = strm_io_read_full(io, buf, s->len);
		if (!s->io_rc)
			s->io_rc = write_many(io, buf, s->len);
		if (!s->io_rc && strm_io_read(io, tmp, 1) != 0)
			s->io_rc = -EPROTO; /* the client ends cleanly */
		s->bytes_in = strm_io_offset(io);
		break;
	case SRV_DRAIN: {
		ssize_t n;

		while ((n = strm_io_read(io, tmp, sizeof(tmp))) > 0)
			s->bytes_in += (uint64_t)n;
		s->io_rc = (int)n;
		break;
	}
	case SRV_TRUNCATE:
		buf = malloc(s->len);
		fd_random(buf, s->len, 7);
		s->io_rc = strm_io_write(io, buf, s->len);
		shutdown(fd, SHUT_RDWR); /* a crash: no close_notify */
		break;
	case SRV_RAW: s->io_rc = strm_io_write(io, s->raw, s->len); break;
	case SRV_FRAMES: {
		struct strm_io *fr;

		s->io_rc = strm_io_frame_reader(io, &fr);
		if (s->io_rc)
			break;
		io = fr; /* closing it closes the TLS io below */
		s->back = malloc(s->len);
		s->io_rc = strm_io_read_full(fr, s->back, s->len);
		if (!s->io_rc && strm_io_read(fr, tmp, 1) != 0)
			s->io_rc = -EPROTO; /* the end frame, then a clean end */
		strm_io_frame_stats(fr, &s->fst);
		break;
	}
	case SRV_REFUSE:
		buf = malloc(s->len);
		s->io_rc = strm_io_read_full(io, buf, s->len) ?:
			   strm_io_write(io, s->raw, strlen((const char *)s->raw)) ?:
			   strm_io_flush(io);
		break;
	}
	if (s->io_rc)
		snprintf(s->io_err, sizeof(s->io_err), "%s", strm_io_error(io));
	strm_io_close(io);
out:
	free(buf);
	strm_tls_free(t);
	return NULL;
}

static void server_start(struct server *s, const char *sub, const char *name, enum srv_mode mode,
			 size_t len)
{
	char err[ERRLEN];

	path_in(s->dir, sizeof(s->dir), sub);
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->mode = mode;
	s->len = len;
	cr_assert_eq(strm_tcp_listen("127.0.0.2:0", &s->lfd, err, sizeof(err)), 0, "%s", err);
	s->port = strm_tcp_local_port(s->lfd);
	cr_assert_gt(s->port, 0);
	cr_assert_eq(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_join(struct server *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
}

/* Our client: connects to the server and handshakes expecting expect. */
static int client_open(const struct server *s, const char *sub, const char *name,
		       const char *expect, struct strm_io **io, char *err, size_t errlen)
{
	char dir[128], addr[64], host[64];
	struct strm_tls *t;
	int fd, rc;

	path_in(dir, sizeof(dir), sub);
	rc = strm_tls_new(dir, name, &t, err, errlen);
	cr_assert_eq(rc, 0, "%s", err);
	snprintf(addr, sizeof(addr), "127.0.0.2:%d", s->port);
	rc = strm_tcp_connect(addr, 5000, &fd, host, sizeof(host), err, errlen);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_str_eq(host, "127.0.0.2");
	rc = strm_io_tls_client(t, fd, expect ? expect : host, io, err, errlen);
	strm_tls_free(t); /* the connection keeps what it needs */
	return rc;
}

/* ---- setup, handshake, data ---------------------------------------------- */

TestSuite(tls, .init = setup_dirs, .fini = cleanup_dirs, .timeout = 120);

Test(tls, setup_writes_private_keys_and_reuses_the_ca)
{
	char good[128], p[192], err[ERRLEN];
	const char *more[] = {"node-c.example"};
	struct stat st;
	size_t l1 = 0, l2 = 0;
	uint8_t *ca1, *ca2;

	path_in(good, sizeof(good), "good");
	cr_assert_eq(stat(good, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0700);
	snprintf(p, sizeof(p), "%s/127.0.0.2.key", good);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	snprintf(p, sizeof(p), "%s/ca.key", good);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	snprintf(p, sizeof(p), "%s/ca.pem", good);
	ca1 = fd_slurp(p, &l1);
	cr_assert_eq(strm_tls_setup(good, more, 1, 10, err, sizeof(err)), 0, "%s", err);
	ca2 = fd_slurp(p, &l2);
	cr_assert(l1 == l2 && !memcmp(ca1, ca2, l1), "the CA is reused");
	snprintf(p, sizeof(p), "%s/node-c.example.pem", good);
	cr_assert_eq(access(p, R_OK), 0);
	free(ca1);
	free(ca2);
}

Test(tls, round_trip_64mib)
{
	struct server s = {0};
	struct strm_io *io = NULL;
	char err[ERRLEN];
	uint8_t *data = fd_mix(BIG, 42), *back = malloc(BIG);
	int rc;

	server_start(&s, "good", "127.0.0.2", SRV_ECHO, BIG);
	rc = client_open(&s, "good", "127.0.0.3", NULL, &io, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(write_many(io, data, BIG), 0, "%s", strm_io_error(io));
	cr_assert_eq(strm_io_read_full(io, back, BIG), 0, "%s", strm_io_error(io));
	cr_assert_eq(strm_io_offset(io), 2ull * BIG);
	cr_assert_eq(strm_io_close(io), 0);
	server_join(&s);
	cr_assert_eq(s.rc, 0, "%s", s.err);
	cr_assert_eq(s.io_rc, 0, "%s", s.io_err);
	cr_assert_str_eq(s.peer, "127.0.0.3", "the server names the client");
	cr_assert_eq(s.bytes_in, 2ull * BIG, "64 MiB each way");
	cr_assert(memcmp(data, back, BIG) == 0, "64 MiB came back intact");
	free(data);
	free(back);
}

/* ---- refusals ------------------------------------------------------------ */

struct refusal {
	char what[40];
	char client[8]; /* "ours", "nocert" (TLS 1.3 without a certificate),
			   "tls12" (TLS 1.2 only), "plain" (not TLS) */
	char srv_dir[12], srv_name[12];
	char cli_dir[12], cli_name[12];
	char refuser[8]; /* "server" or "client" */
	char reason[96]; /* in the refusing side's message (and log) */
	char other[64];	 /* in the other side's message when it is ours; "" */
};

static struct refusal refusals[] = {
	{"client cert from another CA", "ours", "good", "127.0.0.2", "otherca", "127.0.0.3",
	 "server", "peer certificate refused: unable to get local issuer certificate",
	 "peer refused our certificate"},
	{"expired server cert", "ours", "expired", "127.0.0.2", "good", "127.0.0.3", "client",
	 "peer certificate refused: certificate has expired", "peer refused our certificate"},
	{"expired client cert", "ours", "good", "127.0.0.2", "expired", "127.0.0.3", "server",
	 "peer certificate refused: certificate has expired", "peer refused our certificate"},
	{"server cert names another host", "ours", "good", "127.0.0.3", "good", "127.0.0.3",
	 "client", "mismatch (wanted 127.0.0.2, certificate names IP:127.0.0.3)",
	 "peer refused our certificate"},
	{"client without a certificate", "nocert", "good", "127.0.0.2", "", "", "server",
	 "peer certificate refused: peer did not return a certificate", ""},
	{"TLS 1.2 only client", "tls12", "good", "127.0.0.2", "good", "127.0.0.3", "server",
	 "unsupported protocol (TLS 1.3 is required)", ""},
	{"plain TCP client", "plain", "good", "127.0.0.2", "", "", "server",
	 "peer does not speak TLS", ""},
};

ParameterizedTestParameters(tls, refused)
{
	return cr_make_param_array(struct refusal, refusals, ARRAY_SIZE(refusals));
}

/* A client made directly with OpenSSL; returns true if it could write
 * and then read application data (it must not). */
static bool raw_client(const struct server *s, bool tls12)
{
	char ca[192], cert[192], key[192];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char host[64], addr[64], err[ERRLEN];
	bool passed = false;
	uint8_t b;
	SSL *ssl;
	int fd;

	snprintf(ca, sizeof(ca), "%s/good/ca.pem", root);
	snprintf(cert, sizeof(cert), "%s/good/127.0.0.3.pem", root);
	snprintf(key, sizeof(key), "%s/good/127.0.0.3.key", root);
	cr_assert(ctx);
	cr_assert_eq(SSL_CTX_load_verify_file(ctx, ca), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (tls12) {
		cr_assert_eq(SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION), 1);
		cr_assert_eq(SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM), 1);
		cr_assert_eq(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	}
	snprintf(addr, sizeof(addr), "127.0.0.2:%d", s->port);
	cr_assert_eq(strm_tcp_connect(addr, 5000, &fd, host, sizeof(host), err, sizeof(err)), 0,
		     "%s", err);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) == 1 && SSL_write(ssl, "secret", 6) == 6 && SSL_read(ssl, &b, 1) > 0)
		passed = true;
	cr_assert(!tls12 || SSL_version(ssl) != TLS1_2_VERSION || !passed);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	close(fd);
	return passed;
}

static void plain_client(const struct server *s)
{
	static const char junk[] = "GET / HTTP/1.0\r\nHost: ferry\r\n\r\n";
	char host[64], addr[64], err[ERRLEN], b[256];
	int fd;

	snprintf(addr, sizeof(addr), "127.0.0.2:%d", s->port);
	cr_assert_eq(strm_tcp_connect(addr, 5000, &fd, host, sizeof(host), err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(send(fd, junk, sizeof(junk) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(junk) - 1);
	while (recv(fd, b, sizeof(b), 0) > 0) /* an alert, then the end */
		;
	close(fd);
}

ParameterizedTest(struct refusal *r, tls, refused)
{
	struct server s = {0};
	struct strm_io *io = NULL;
	char err[ERRLEN] = "";
	int rc = 0;

	server_start(&s, r->srv_dir, r->srv_name, SRV_DRAIN, 0);
	if (!strcmp(r->client, "ours")) {
		rc = client_open(&s, r->cli_dir, r->cli_name, "127.0.0.2", &io, err, sizeof(err));
		if (!rc) {
			strm_io_write(io, "secret", 6);
			strm_io_close(io);
		}
		cr_assert_eq(rc, -EACCES, "%s: client handshake gave %d: %s", r->what, rc, err);
		cr_assert_null(io);
	} else if (!strcmp(r->client, "plain")) {
		plain_client(&s);
	} else {
		cr_assert_not(raw_client(&s, !strcmp(r->client, "tls12")),
			      "%s: the raw client exchanged data", r->what);
	}
	server_join(&s);
	cr_log_info("%s: client: %s | server: %s", r->what, err, s.err);
	cr_assert_neq(s.rc, 0, "%s: the server accepted", r->what);
	cr_assert_not(s.got_io, "%s: the server got an io", r->what);
	cr_assert_eq(s.bytes_in, 0, "%s: data passed", r->what);
	if (!strcmp(r->refuser, "server")) {
		cr_assert(strstr(s.err, r->reason), "%s: server said \"%s\"", r->what, s.err);
		cr_assert(ring_has(s.err), "%s: the server logged its reason", r->what);
		if (r->other[0])
			cr_assert(strstr(err, r->other), "%s: client said \"%s\"", r->what, err);
		if (!strcmp(r->client, "ours"))
			cr_assert_eq(s.rc, -EACCES, "%s: %s", r->what, s.err);
	} else {
		cr_assert(strstr(err, r->reason), "%s: client said \"%s\"", r->what, err);
		cr_assert(ring_has(err), "%s: the client logged its reason", r->what);
		cr_assert(strstr(s.err, r->other), "%s: server said \"%s\"", r->what, s.err);
		cr_assert_eq(s.rc, -EACCES, "%s: %s", r->what, s.err);
	}
}

Test(tls, silent_client_times_out)
{
	struct server s = {.hs_timeout_ms = 300};
	char host[64], addr[64], err[ERRLEN];
	int fd;

	server_start(&s, "good", "127.0.0.2", SRV_DRAIN, 0);
	snprintf(addr, sizeof(addr), "127.0.0.2:%d", s.port);
	cr_assert_eq(strm_tcp_connect(addr, 5000, &fd, host, sizeof(host), err, sizeof(err)), 0);
	server_join(&s); /* without sending a byte */
	close(fd);
	cr_assert_eq(s.rc, -ETIMEDOUT, "%d %s", s.rc, s.err);
	cr_assert(strstr(s.err, "timed out"), "%s", s.err);
}

/* ---- truncation ---------------------------------------------------------- */

Test(tls, peer_vanishing_mid_stream_is_an_error)
{
	struct server s = {0};
	struct strm_io *io = NULL;
	char err[ERRLEN];
	uint8_t *buf = malloc(BIG);
	int rc;

	server_start(&s, "good", "127.0.0.2", SRV_TRUNCATE, 8u << 20);
	rc = client_open(&s, "good", "127.0.0.3", NULL, &io, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	rc = strm_io_read_full(io, buf, BIG); /* wants more than will come */
	cr_assert_eq(rc, -ECONNRESET, "%d %s", rc, strm_io_error(io));
	cr_assert(strstr(strm_io_error(io), "truncated"), "%s", strm_io_error(io));
	cr_assert(strstr(strm_io_error(io), "offset 8388608"), "%s", strm_io_error(io));
	cr_assert_eq(strm_io_close(io), -ECONNRESET);
	server_join(&s);
	cr_assert_eq(s.rc, 0, "%s", s.err);
	cr_assert_eq(s.io_rc, 0, "%s", s.io_err);
	free(buf);
}

/* A target that refuses a migration says why and hangs up with our stream
 * unread; the source's write fails, and the reason is still there to read. */
Test(tls, reason_survives_a_failed_write)
{
	static const char why[] = "ferry-error: needs 128 MiB, 98 MiB free\n";
	struct server s = {.raw = (const uint8_t *)why};
	struct strm_io *io = NULL;
	char err[ERRLEN], line[128] = "";
	uint8_t *buf = calloc(1, 1u << 20);
	int rc = 0;

	server_start(&s, "good", "127.0.0.2", SRV_REFUSE, 452);
	rc = client_open(&s, "good", "127.0.0.3", NULL, &io, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	for (int i = 0; i < 1000 && !rc; i++)
		rc = strm_io_write(io, buf, 1u << 20);
	server_join(&s);
	cr_assert_eq(s.io_rc, 0, "%s", s.io_err);
	cr_assert(rc == -EPIPE || rc == -ECONNRESET, "%d %s", rc, strm_io_error(io));
	cr_assert_eq(strm_io_keep_reading(io), 0);
	cr_assert_eq(strm_io_read_full(io, line, strlen(why)), 0, "%s", strm_io_error(io));
	cr_assert_str_eq(line, why);
	strm_io_close(io);
	free(buf);
}

Test(tls, frames_cut_short_are_an_error)
{
	struct server s = {0};
	struct strm_io *mem, *fw, *io = NULL, *fr;
	const uint8_t *frames;
	uint8_t *data = fd_mix(4u << 20, 3), *back = malloc(4u << 20);
	size_t flen;
	char err[ERRLEN];
	int rc;

	/* A complete frame stream, of which the server sends two thirds. */
	cr_assert_eq(strm_io_mem_writer(&mem), 0);
	cr_assert_eq(strm_io_frame_writer(mem, STRM_CODEC_LZ4, 0, &fw), 0);
	cr_assert_eq(strm_io_write(fw, data, 4u << 20), 0);
	cr_assert_eq(strm_io_finish(fw), 0);
	frames = strm_io_mem_data(mem, &flen);
	s.raw = frames;
	server_start(&s, "good", "127.0.0.2", SRV_RAW, flen * 2 / 3);
	rc = client_open(&s, "good", "127.0.0.3", NULL, &io, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(strm_io_frame_reader(io, &fr), 0);
	rc = strm_io_read_full(fr, back, 4u << 20);
	cr_assert(rc < 0, "a cut frame stream reads as an error");
	cr_assert(strstr(strm_io_error(fr), "offset"), "%s", strm_io_error(fr));
	strm_io_close(fr);
	server_join(&s);
	cr_assert_eq(s.rc, 0, "%s", s.err);
	strm_io_close(fw);
	free(data);
	free(back);
}

/*
 * Raw frames over TLS skip the frame checksum (TLS authenticates them),
 * and those cut from a write's own iovecs are sent without a copy: the
 * reader gets every byte back, through frames of both kinds.
 */
Test(tls, raw_frames_go_unchecked_over_tls)
{
	const size_t half = 4u << 20, len = 2 * half + 400 * 1000;
	struct server s = {0};
	struct strm_io *io = NULL, *fw;
	struct strm_frame_stats st;
	struct iovec tiny[400];
	uint8_t *data = fd_mix(len, 5);
	char err[ERRLEN];
	int rc;

	server_start(&s, "good", "127.0.0.2", SRV_FRAMES, len);
	rc = client_open(&s, "good", "127.0.0.3", NULL, &io, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(strm_io_frame_writer(io, STRM_CODEC_NONE, 0, &fw), 0);
	/* Scattered iovecs (copied into frames), then whole ones (direct). */
	cr_assert_eq(write_many(fw, data, half), 0, "%s", strm_io_error(fw));
	cr_assert_eq(strm_io_flush(fw), 0, "%s", strm_io_error(fw));
	cr_assert_eq(strm_io_write(fw, data + half, half), 0, "%s", strm_io_error(fw));
	/* More pieces than a direct frame gathers: copied. */
	for (int k = 0; k < 400; k++)
		tiny[k] = (struct iovec){.iov_base = data + 2 * half + k * 1000, .iov_len = 1000};
	cr_assert_eq(strm_io_writev(fw, tiny, 400), 0, "%s", strm_io_error(fw));
	cr_assert_eq(strm_io_finish(fw), 0, "%s", strm_io_error(fw));
	cr_assert_eq(strm_io_frame_stats(fw, &st), 0);
	cr_assert_eq(strm_io_close(fw), 0);
	server_join(&s);
	cr_assert_eq(s.rc, 0, "%s", s.err);
	cr_assert_eq(s.io_rc, 0, "%s", s.io_err);
	cr_assert(!memcmp(s.back, data, len), "8.4 MB came through intact");
	cr_assert_geq(st.frames_unchecked, 32, "%" PRIu64, st.frames_unchecked);
	cr_assert_eq(st.frames_unchecked, st.frames_by_codec[STRM_CODEC_NONE]);
	cr_assert_eq(s.fst.frames_unchecked, st.frames_unchecked, "the reader saw them unchecked");
	cr_assert_eq(s.fst.raw_bytes, len);
	free(s.back);
	free(data);
}

/* ---- TCP ----------------------------------------------------------------- */

Test(tls, tcp_errors_are_clear)
{
	char err[ERRLEN], host[64], addr[64];
	int lfd, lfd2, fd, port;

	cr_assert_eq(strm_tcp_listen("127.0.0.3:0", &lfd, err, sizeof(err)), 0, "%s", err);
	port = strm_tcp_local_port(lfd);
	snprintf(addr, sizeof(addr), "127.0.0.3:%d", port);
	cr_assert_eq(strm_tcp_listen(addr, &lfd2, err, sizeof(err)), -EADDRINUSE);
	cr_assert(strstr(err, "Address already in use"), "%s", err);
	close(lfd); /* nobody listens there now */
	cr_assert_eq(strm_tcp_connect(addr, 2000, &fd, host, sizeof(host), err, sizeof(err)),
		     -ECONNREFUSED);
	{
		char want[160];

		snprintf(want, sizeof(want), "connecting to %s: Connection refused", addr);
		cr_assert_str_eq(err, want);
	}
	cr_assert_eq(strm_tcp_listen("node-a:8002", &lfd, err, sizeof(err)), -EHOSTUNREACH);
	cr_assert(strstr(err, "not an IP address"), "%s", err);
	cr_assert_eq(strm_tcp_listen("127.0.0.3:99999", &lfd, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "bad port"), "%s", err);
	cr_assert_eq(strm_tcp_connect("[::1:80", 100, &fd, host, sizeof(host), err, sizeof(err)),
		     -EINVAL);
}

Test(tls, tcp_ipv6_and_default_port)
{
	char err[ERRLEN], host[64], addr[64], peer[64];
	int lfd, fd, afd, port;

	if (strm_tcp_listen("[::1]:0", &lfd, err, sizeof(err)) != 0)
		cr_skip_test("no IPv6 loopback here: %s", err);
	port = strm_tcp_local_port(lfd);
	snprintf(addr, sizeof(addr), "[::1]:%d", port);
	cr_assert_eq(strm_tcp_connect(addr, 2000, &fd, host, sizeof(host), err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(strm_tcp_accept(lfd, 2000, &afd, peer, sizeof(peer), err, sizeof(err)), 0);
	cr_assert_eq(strncmp(peer, "[::1]:", 6), 0, "%s", peer);
	close(afd);
	close(fd);
	close(lfd);
	/* The default port, if it is free here. */
	if (strm_tcp_listen("127.0.0.3", &lfd, err, sizeof(err)) == 0) {
		cr_assert_eq(strm_tcp_local_port(lfd), STRM_MIGRATE_PORT);
		close(lfd);
	}
}

Test(tls, missing_files_are_named)
{
	char good[128], err[ERRLEN];
	struct strm_tls *t;

	path_in(good, sizeof(good), "good");
	cr_assert_eq(strm_tls_new(good, "127.0.0.9", &t, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "127.0.0.9.pem: No such file"), "%s", err);
	cr_assert_null(t);
}

/* A peer that accepts the TCP connection and never answers the handshake. */
struct cancel_arg {
	struct strm_cancel *c;
	int ms;
};

static void *fire_later(void *arg)
{
	struct cancel_arg *a = arg;

	usleep((useconds_t)a->ms * 1000);
	strm_cancel_fire(a->c);
	return NULL;
}

static double since_s(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

Test(tls, handshake_with_a_silent_peer_times_out_or_is_cancelled)
{
	char err[ERRLEN], host[64], addr[64], dir[128];
	struct strm_tls *t;
	struct strm_cancel *c;
	struct strm_io *io;
	struct cancel_arg a;
	struct timespec t0;
	pthread_t th;
	int lfd, fd, rc;

	path_in(dir, sizeof(dir), "good");
	cr_assert_eq(strm_tls_new(dir, "127.0.0.2", &t, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strm_tcp_listen("127.0.0.3:0", &lfd, err, sizeof(err)), 0, "%s", err);
	snprintf(addr, sizeof(addr), "127.0.0.3:%d", strm_tcp_local_port(lfd));
	cr_assert_eq(strm_cancel_new(&c), 0);

	/* The progress timeout ends the handshake (the kernel accepts). */
	cr_assert_eq(strm_tcp_connect_cancel(addr, 2000, c, &fd, host, sizeof(host), err,
					     sizeof(err)), 0, "%s", err);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = strm_io_tls_client_cancel(t, fd, host, c, 300, &io, err, sizeof(err));
	cr_assert_eq(rc, -ETIMEDOUT, "%d %s", rc, err);
	cr_assert(strstr(err, "no progress for 300 ms"), "%s", err);
	cr_assert_lt(since_s(&t0), 3.0);

	/* A token fired from another thread ends it at once. */
	cr_assert_eq(strm_tcp_connect_cancel(addr, 2000, c, &fd, host, sizeof(host), err,
					     sizeof(err)), 0, "%s", err);
	a = (struct cancel_arg){ .c = c, .ms = 200 };
	cr_assert_eq(pthread_create(&th, NULL, fire_later, &a), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = strm_io_tls_client_cancel(t, fd, host, c, 20000, &io, err, sizeof(err));
	pthread_join(th, NULL);
	cr_assert_eq(rc, -ECANCELED, "%d %s", rc, err);
	cr_assert_lt(since_s(&t0), 3.0);
	/* A fired token refuses a connect too. */
	cr_assert_eq(strm_tcp_connect_cancel(addr, 2000, c, &fd, host, sizeof(host), err,
					     sizeof(err)), -ECANCELED);
	strm_cancel_free(c);
	strm_tls_free(t);
	close(lfd);
}
