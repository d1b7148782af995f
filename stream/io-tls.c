// SPDX-License-Identifier: MIT
/*
 * strm_io over TLS 1.3 (OpenSSL) on a blocking socket, with mutual
 * certificate authentication against one cluster CA (net.h).
 *
 * - TLS 1.3 only; AES-128-GCM first (the fastest suite on this hardware,
 *   research/limits.md section 4), the server's order wins.
 * - The CA in DIR/ca.pem is the only trust anchor (no system store).
 * - The socket is reached through a small BIO of our own that uses
 *   send(MSG_NOSIGNAL), so a vanished peer is -EPIPE, never SIGPIPE, and
 *   that keeps the errno of the last socket call for messages.
 * - The verify callback records why a peer certificate was refused
 *   (X509_verify_cert_error_string plus the certificate's names), so the
 *   refusing side can say "certificate has expired" rather than
 *   "certificate verify failed".
 * - writev coalesces small iovecs into a 256 KiB buffer and writes large
 *   ones straight through SSL_write (topping up the buffer to a record
 *   boundary first, so a frame header does not become its own record).
 * - The records a writev makes collect in a second buffer and leave in one
 *   send when it ends (or fills): a send per 16 KiB record cost the sender
 *   about 0.2 CPU s per GiB here (issue 14). Every writev ends with all its
 *   bytes handed to the socket, as before.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "common/log.h"
#include "internal-io.h"
#include "stream/net.h"

#define TLS_SUITES	     "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_COALESCE	     (256u << 10)
#define TLS_RECORD	     (16u << 10)
#define TLS_READ_BUF	     (64u << 10) /* read-ahead buffer: fewer recv calls */
/* A full coalescing buffer's records with their headers and tags */
#define TLS_OBUF	     (TLS_COALESCE + TLS_COALESCE / TLS_RECORD * 64)
#define TLS_HS_TIMEOUT_MS    30000
#define TLS_CLOSE_TIMEOUT_MS 2000
#define TLS_CONFIRM	     'F' /* server -> client: your certificate is accepted */
#define TLS_WHY_MAX	     512 /* a reason, with room for the parts below */
#define TLS_DETAIL_MAX	     200
#define TLS_OSSL_MAX	     160
#define TLS_PEER_MAX	     64

struct strm_tls {
	SSL_CTX *ctx;
	int hs_timeout_ms;
};

struct io_tls {
	struct strm_io io;
	SSL *ssl;
	int fd;
	int sys_errno;	/* errno of the last failed socket call, 0 if none */
	bool eof;	/* the socket read returned 0 */
	bool shut_sent; /* close_notify sent */
	uint8_t *cbuf;	/* coalescing buffer (TLS_COALESCE), lazily */
	size_t clen;
	uint8_t *obuf; /* records not yet sent (TLS_OBUF), lazily */
	size_t olen;
	char addr[TLS_PEER_MAX]; /* peer "ADDR:PORT" */
	/* The first refusal seen by the verify callback. */
	int vfy_err;
	char vfy_detail[TLS_DETAIL_MAX];
	const char *expect; /* the client's expected name (borrowed, handshake only) */
	/* strm_io_set_cancel: waits in strm_wait_fd (MSG_DONTWAIT) */
	bool waits;
	struct strm_cancel *cancel; /* borrowed */
	int progress_ms;
};

/* After EAGAIN with waits set: true to retry, else sys_errno is set. */
static bool sock_wait(struct io_tls *c, short events)
{
	int rc = strm_wait_fd(c->fd, events, c->cancel, c->progress_ms);

	if (!rc)
		return true;
	c->sys_errno = -rc;
	return false;
}

/* ---- socket BIO ---------------------------------------------------------- */

static BIO_METHOD *sock_method;
static pthread_once_t sock_method_once = PTHREAD_ONCE_INIT;

/* One send of up to len bytes; -1 with sys_errno set on failure. */
static ssize_t sock_send(struct io_tls *c, const void *buf, size_t len)
{
	ssize_t n;

	if (strm_cancel_fired(c->cancel)) {
		c->sys_errno = ECANCELED;
		return -1;
	}
	for (;;) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL | (c->waits ? MSG_DONTWAIT : 0));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && c->waits && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!sock_wait(c, POLLOUT))
				return -1;
			continue;
		}
		break;
	}
	if (n < 0)
		c->sys_errno = (errno == EAGAIN || errno == EWOULDBLOCK) ? ETIMEDOUT : errno;
	return n;
}

/* Sends the records held in obuf; -1 with sys_errno set on failure. */
static int obuf_send(struct io_tls *c)
{
	size_t off = 0;

	while (off < c->olen) {
		ssize_t n = sock_send(c, c->obuf + off, c->olen - off);

		if (n < 0)
			return -1;
		off += (size_t)n;
	}
	c->olen = 0;
	return 0;
}

/*
 * After the handshake, records collect in obuf until the writev that made
 * them ends (obuf_flush) or OpenSSL flushes (an alert): one send per
 * coalescing buffer instead of one per 16 KiB record, and the kernel's
 * per-send and per-packet work with it.
 */
static int sock_write(BIO *b, const char *buf, int len)
{
	struct io_tls *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (c->obuf && (size_t)len <= TLS_OBUF) {
		if (c->olen + (size_t)len > TLS_OBUF && obuf_send(c) < 0)
			return -1;
		memcpy(c->obuf + c->olen, buf, (size_t)len);
		c->olen += (size_t)len;
		return len;
	}
	if (c->olen && obuf_send(c) < 0)
		return -1;
	n = sock_send(c, buf, (size_t)len);
	return n < 0 ? -1 : (int)n;
}

static int sock_read(BIO *b, char *buf, int len)
{
	struct io_tls *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (strm_cancel_fired(c->cancel)) {
		c->sys_errno = ECANCELED;
		return -1;
	}
	for (;;) {
		n = recv(c->fd, buf, (size_t)len, c->waits ? MSG_DONTWAIT : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && c->waits && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!sock_wait(c, POLLIN))
				return -1;
			continue;
		}
		break;
	}
	if (n < 0) {
		c->sys_errno = (errno == EAGAIN || errno == EWOULDBLOCK) ? ETIMEDOUT : errno;
		return -1;
	}
	if (n == 0)
		c->eof = true;
	return (int)n;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct io_tls *c = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH: return !c || obuf_send(c) == 0;
	case BIO_CTRL_EOF: return c && c->eof;
	default: return 0;
	}
}

static int sock_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void sock_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ferry socket");

	if (!m || !BIO_meth_set_write(m, sock_write) || !BIO_meth_set_read(m, sock_read) ||
	    !BIO_meth_set_ctrl(m, sock_ctrl) || !BIO_meth_set_create(m, sock_create)) {
		BIO_meth_free(m);
		return;
	}
	sock_method = m;
}

/* ---- messages ------------------------------------------------------------ */

/* The earliest queued OpenSSL error (the queue is cleared); 0 if none. */
static unsigned long ossl_pop(char *why, size_t len)
{
	unsigned long first = ERR_get_error();
	const char *r;

	while (ERR_get_error())
		;
	if (!first) {
		snprintf(why, len, "unknown OpenSSL error");
		return 0;
	}
	r = ERR_reason_error_string(first);
	if (r)
		snprintf(why, len, "%s", r);
	else
		ERR_error_string_n(first, why, len);
	return first;
}

/* "IP:a, DNS:b" from the subjectAltName of cert, or its CN. */
static void cert_names(X509 *cert, char *out, size_t len)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t pos = 0;

	out[0] = '\0';
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && pos + 1 < len; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char v[INET6_ADDRSTRLEN + 8] = "";
		const char *kind = NULL;

		if (g->type == GEN_IPADD) {
			const ASN1_OCTET_STRING *ip = g->d.iPAddress;

			kind = "IP";
			if (ip->length == 4 || ip->length == 16)
				inet_ntop(ip->length == 4 ? AF_INET : AF_INET6, ip->data, v,
					  sizeof(v));
		} else if (g->type == GEN_DNS) {
			kind = "DNS";
			snprintf(v, sizeof(v), "%.*s", ASN1_STRING_length(g->d.dNSName),
				 (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		}
		if (kind) {
			int n = snprintf(out + pos, len - pos, "%s%s:%s", pos ? ", " : "", kind, v);

			pos = n < 0 ? len : MIN(len - 1, pos + (size_t)n);
		}
	}
	GENERAL_NAMES_free(gens);
	/* The CN straight after "CN=", cut to what out holds. */
	if (!out[0] && len >= sizeof("CN=?")) {
		strcpy(out, "CN=");
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out + 3,
					      (int)MIN(len - 3, INT_MAX)) < 0)
			strcpy(out + 3, "?");
	}
}

static void asn1_time_str(const ASN1_TIME *t, char *out, size_t len)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || !strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, len, "?");
}

static int verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct io_tls *c = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(x);
	int e = X509_STORE_CTX_get_error(x);
	char names[128] = "", when[40];

	if (ok || !c || c->vfy_err)
		return ok;
	c->vfy_err = e ? e : X509_V_ERR_UNSPECIFIED;
	if (cert)
		cert_names(cert, names, sizeof(names));
	switch (e) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(c->vfy_detail, sizeof(c->vfy_detail),
			 "%s (wanted %s, certificate names %s)", X509_verify_cert_error_string(e),
			 c->expect ? c->expect : "?", names);
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		asn1_time_str(cert ? X509_get0_notAfter(cert) : NULL, when, sizeof(when));
		snprintf(c->vfy_detail, sizeof(c->vfy_detail), "%s (%s, notAfter %s)",
			 X509_verify_cert_error_string(e), names, when);
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		asn1_time_str(cert ? X509_get0_notBefore(cert) : NULL, when, sizeof(when));
		snprintf(c->vfy_detail, sizeof(c->vfy_detail), "%s (%s, notBefore %s)",
			 X509_verify_cert_error_string(e), names, when);
		break;
	default:
		snprintf(c->vfy_detail, sizeof(c->vfy_detail), "%s (%s)",
			 X509_verify_cert_error_string(e), names[0] ? names : "no certificate");
	}
	return 0;
}

/* Alerts that mean "the peer refused our certificate". */
static bool alert_is_refusal(int reason)
{
	switch (reason) {
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED: return true;
	default: return false;
	}
}

/* Explains a failed socket call from sys_errno (none: the peer went away). */
static int sys_explain(struct io_tls *c, char *why, size_t len)
{
	if (c->sys_errno == ETIMEDOUT) {
		if (c->waits && c->progress_ms)
			snprintf(why, len, "no progress for %d ms: the peer is stalled",
				 c->progress_ms);
		else
			snprintf(why, len, "timed out waiting for the peer");
		return -ETIMEDOUT;
	}
	if (c->sys_errno == ECANCELED) {
		snprintf(why, len, "cancelled");
		return -ECANCELED;
	}
	if (c->sys_errno) {
		snprintf(why, len, "%s", ferry_strerror(c->sys_errno));
		return -c->sys_errno;
	}
	snprintf(why, len, "peer closed the connection without close_notify (truncated)");
	return -ECONNRESET;
}

/*
 * Explains why an SSL call that returned ret failed: the message goes to
 * why, *local says whether this side refused the peer (log as a warning).
 * Returns -errno: 0 for a clean close_notify, -EACCES for a refused
 * certificate either way, -ECONNRESET for a connection that ended without
 * close_notify, -ETIMEDOUT, -EPROTO for other TLS failures.
 *
 * Long on purpose: one branch per way OpenSSL reports a failure, in the
 * order they must be checked; split, the order would hide.
 */
static int tls_explain(struct io_tls *c, int ret, char *why, size_t len, bool *local)
{
	int se = SSL_get_error(c->ssl, ret);
	char r[TLS_OSSL_MAX];
	unsigned long e;
	int reason;

	*local = false;
	if (c->vfy_err) {
		/* Our verify callback refused the peer's certificate. */
		ERR_clear_error();
		*local = true;
		snprintf(why, len, "peer certificate refused: %s", c->vfy_detail);
		return -EACCES;
	}
	switch (se) {
	case SSL_ERROR_ZERO_RETURN:
		snprintf(why, len, "peer closed the connection (close_notify)");
		return 0;
	case SSL_ERROR_SYSCALL: ERR_clear_error(); return sys_explain(c, why, len);
	case SSL_ERROR_SSL: break;
	default:
		ERR_clear_error();
		snprintf(why, len, "unexpected SSL_get_error %d", se);
		return -EPROTO;
	}
	e = ossl_pop(r, sizeof(r));
	reason = ERR_GET_REASON(e);
	if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
		if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			snprintf(why, len,
				 "peer closed the connection without close_notify (truncated)");
			return -ECONNRESET;
		}
		if (alert_is_refusal(reason)) {
			snprintf(why, len, "peer refused our certificate: %s", r);
			return -EACCES;
		}
		if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
			*local = true;
			snprintf(why, len, "peer certificate refused: %s", r);
			return -EACCES;
		}
		if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
			long vr = SSL_get_verify_result(c->ssl);

			*local = true;
			snprintf(why, len, "peer certificate refused: %s",
				 X509_verify_cert_error_string(vr));
			return -EACCES;
		}
		if (reason == SSL_R_UNSUPPORTED_PROTOCOL) {
			*local = true;
			snprintf(why, len, "peer refused: %s (TLS 1.3 is required)", r);
			return -EPROTO;
		}
		if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST ||
		    reason == SSL_R_WRONG_VERSION_NUMBER ||
		    reason == SSL_R_PACKET_LENGTH_TOO_LONG) {
			snprintf(why, len, "peer does not speak TLS (%s)", r);
			return -EPROTO;
		}
		if (reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION) {
			snprintf(why, len, "peer refused: %s (it does not accept TLS 1.3)", r);
			return -EPROTO;
		}
	}
	if (c->sys_errno == ETIMEDOUT) {
		snprintf(why, len, "timed out waiting for the peer (%s)", r);
		return -ETIMEDOUT;
	}
	snprintf(why, len, "%s", r);
	return -EPROTO;
}

/* ---- the io -------------------------------------------------------------- */

static int tls_io_fail(struct io_tls *c, int ret, const char *what)
{
	char why[TLS_WHY_MAX];
	bool local;
	int err = tls_explain(c, ret, why, sizeof(why), &local);

	if (err == 0)
		err = -ECONNRESET;
	return strm_io_fail(&c->io, err, "%s %s at offset %" PRIu64 ": %s", what, c->addr,
			    c->io.offset, why);
}

static ssize_t tls_read(struct strm_io *io, void *buf, size_t len)
{
	struct io_tls *c = container_of(io, struct io_tls, io);
	size_t n = 0;
	int r;

	ERR_clear_error();
	c->sys_errno = 0;
	r = SSL_read_ex(c->ssl, buf, len, &n);
	if (r > 0)
		return (ssize_t)n;
	if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN)
		return 0;
	return tls_io_fail(c, r, "reading from");
}

static int ssl_write_all(struct io_tls *c, const void *buf, size_t len)
{
	size_t n;
	int r;

	ERR_clear_error();
	c->sys_errno = 0;
	/* Without SSL_MODE_ENABLE_PARTIAL_WRITE, a blocking SSL_write_ex
	 * writes everything or fails. */
	r = SSL_write_ex(c->ssl, buf, len, &n);
	if (r > 0 && n == len)
		return 0;
	return tls_io_fail(c, r, "writing to");
}

static int cbuf_flush(struct io_tls *c)
{
	int err;

	if (!c->clen)
		return 0;
	err = ssl_write_all(c, c->cbuf, c->clen);
	c->clen = 0;
	return err;
}

/* Sends what sock_write held back; the socket's failure is the io's. */
static int obuf_flush(struct io_tls *c)
{
	char why[TLS_WHY_MAX];

	if (!c->olen)
		return 0;
	c->sys_errno = 0;
	if (obuf_send(c) == 0)
		return 0;
	return strm_io_fail(&c->io, sys_explain(c, why, sizeof(why)),
			    "writing to %s at offset %" PRIu64 ": %s", c->addr, c->io.offset, why);
}

static int tls_writev(struct strm_io *io, const struct iovec *iov, int iovcnt)
{
	struct io_tls *c = container_of(io, struct io_tls, io);
	int err;

	if (!c->cbuf && !(c->cbuf = malloc(TLS_COALESCE)))
		return -ENOMEM;
	/* Without it, each record is a send of its own. */
	if (!c->obuf)
		c->obuf = malloc(TLS_OBUF);
	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (len >= TLS_RECORD) {
			if (c->clen) {
				/* Fill the buffered bytes up to a whole record. */
				size_t top = MIN(len, TLS_RECORD - c->clen % TLS_RECORD);

				top = MIN(top, TLS_COALESCE - c->clen);
				memcpy(c->cbuf + c->clen, p, top);
				c->clen += top;
				p += top;
				len -= top;
				err = cbuf_flush(c);
				if (err)
					return err;
			}
			if (len && (err = ssl_write_all(c, p, len)))
				return err;
			continue;
		}
		if (c->clen + len > TLS_COALESCE && (err = cbuf_flush(c)))
			return err;
		memcpy(c->cbuf + c->clen, p, len);
		c->clen += len;
	}
	return cbuf_flush(c) ?: obuf_flush(c);
}

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms > 0 ? ms / 1000 : 0,
			     .tv_usec = ms > 0 ? (ms % 1000) * 1000 : 0};

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Sends close_notify once, without waiting for the peer's. */
static void send_close_notify(struct io_tls *c)
{
	if (c->shut_sent)
		return;
	c->shut_sent = true;
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
	(void)obuf_send(c);
}

static int tls_finish(struct strm_io *io)
{
	struct io_tls *c = container_of(io, struct io_tls, io);

	/* TLS 1.3 allows reading on after our close_notify. */
	send_close_notify(c);
	return 0;
}

static void conn_free(struct io_tls *c)
{
	SSL_free(c->ssl); /* and the BIO */
	if (c->fd >= 0)
		close(c->fd);
	free(c->cbuf);
	free(c->obuf);
	free(c);
}

static int tls_close(struct strm_io *io)
{
	struct io_tls *c = container_of(io, struct io_tls, io);

	if (!io->err && !c->shut_sent) {
		/* Best effort: a peer that stopped reading must not hang us. */
		struct timeval tv = {.tv_sec = TLS_CLOSE_TIMEOUT_MS / 1000,
				     .tv_usec = (TLS_CLOSE_TIMEOUT_MS % 1000) * 1000};

		(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (c->waits)
			c->progress_ms = TLS_CLOSE_TIMEOUT_MS;
		send_close_notify(c);
	}
	conn_free(c);
	return 0;
}

static int tls_wait_in(struct strm_io *io, int timeout_ms)
{
	struct io_tls *c = container_of(io, struct io_tls, io);

	/* Decrypted bytes OpenSSL holds never show on the socket. */
	if (SSL_has_pending(c->ssl))
		return 1;
	return strm__wait_in_fd(c->fd, c->cancel, timeout_ms);
}

static int tls_set_cancel(struct strm_io *io, struct strm_cancel *cancel, int progress_ms)
{
	struct io_tls *c = container_of(io, struct io_tls, io);

	/* MSG_DONTWAIT per call: the socket's own flags stay as they are. */
	c->waits = c->waits || cancel || progress_ms;
	c->cancel = cancel;
	c->progress_ms = progress_ms;
	return 0;
}

static int tls_sock_fd(const struct strm_io *io)
{
	return container_of(io, struct io_tls, io)->fd;
}

/* Every record's AEAD tag covers its bytes: a corrupted or altered byte
 * fails the read, never reaches the layer above. */
static bool tls_authenticates(const struct strm_io *io)
{
	(void)io;
	return true;
}

/* clang-format off */
static const struct strm_io_ops strm_io_ops_tls = {
	.name   = "tls",
	.read   = tls_read,
	.writev = tls_writev,
	.flush  = NULL,
	.finish = tls_finish,
	.set_cancel = tls_set_cancel,
	.wait_in = tls_wait_in,
	.sock_fd = tls_sock_fd,
	.authenticates = tls_authenticates,
	.close  = tls_close,
};
/* clang-format on */

/* ---- context ------------------------------------------------------------- */

static int ctx_fail(SSL_CTX *ctx, int rc, char *err, size_t errlen, const char *what,
		    const char *path)
{
	char why[TLS_WHY_MAX];

	ossl_pop(why, sizeof(why));
	snprintf(err, errlen, "%s %s: %s", what, path, why);
	log_err("tls: %s", err);
	SSL_CTX_free(ctx);
	return rc;
}

int strm_tls_new(const char *dir, const char *name, struct strm_tls **out, char *err, size_t errlen)
{
	char ca[PATH_MAX], pem[PATH_MAX], key[PATH_MAX];
	const char *files[3] = {ca, pem, key};
	STACK_OF(X509_NAME) * names;
	struct strm_tls *t;
	SSL_CTX *ctx;
	X509 *own;

	*out = NULL;
	if ((size_t)snprintf(ca, sizeof(ca), "%s/ca.pem", dir) >= sizeof(ca) ||
	    (size_t)snprintf(pem, sizeof(pem), "%s/%s.pem", dir, name) >= sizeof(pem) ||
	    (size_t)snprintf(key, sizeof(key), "%s/%s.key", dir, name) >= sizeof(key)) {
		snprintf(err, errlen, "%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	for (int i = 0; i < 3; i++) {
		if (access(files[i], R_OK) < 0) {
			int e = errno;

			snprintf(err, errlen, "%s: %s%s", files[i], ferry_strerror(e),
				 e == ENOENT ? " (run xl tls-setup)" : "");
			log_err("tls: %s", err);
			return -e;
		}
	}
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_method());
	if (!ctx)
		return ctx_fail(NULL, -ENOMEM, err, errlen, "creating a TLS context for", name);
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS_SUITES) || !SSL_CTX_set_num_tickets(ctx, 0))
		return ctx_fail(ctx, -EINVAL, err, errlen, "configuring TLS for", name);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_clear_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUF);
	/* The CA is the only trust anchor: no default verify paths. */
	if (SSL_CTX_load_verify_file(ctx, ca) != 1)
		return ctx_fail(ctx, -EINVAL, err, errlen, "loading CA", ca);
	names = SSL_load_client_CA_file(ca);
	if (names)
		SSL_CTX_set_client_CA_list(ctx, names);
	if (SSL_CTX_use_certificate_chain_file(ctx, pem) != 1)
		return ctx_fail(ctx, -EINVAL, err, errlen, "loading certificate", pem);
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		return ctx_fail(ctx, -EINVAL, err, errlen, "loading key", key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return ctx_fail(ctx, -EINVAL, err, errlen, "key does not match certificate", key);
	own = SSL_CTX_get0_certificate(ctx);
	if (own && X509_cmp_current_time(X509_get0_notAfter(own)) <= 0) {
		char when[40];

		asn1_time_str(X509_get0_notAfter(own), when, sizeof(when));
		log_warn("tls: %s expired on %s; peers will refuse it", pem, when);
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		SSL_CTX_free(ctx);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->ctx = ctx;
	t->hs_timeout_ms = TLS_HS_TIMEOUT_MS;
	*out = t;
	return 0;
}

void strm_tls_free(struct strm_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

void strm_tls_set_handshake_timeout(struct strm_tls *t, int ms)
{
	t->hs_timeout_ms = ms;
}

/* ---- handshakes ---------------------------------------------------------- */

static void peer_addr(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[INET6_ADDRSTRLEN] = "?";

	snprintf(out, len, "peer");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, ntohs(in6->sin6_port));
	}
}

static bool is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* c's SSL object over its socket, verifying the peer: the client as
 * expect (a name or an IP literal), the server any client the CA signed.
 * 0, or -errno with why set. */
static int ssl_setup(struct strm_tls *t, struct io_tls *c, const char *expect, char *why,
		     size_t whylen)
{
	BIO *bio;
	int r;

	ERR_clear_error();
	c->ssl = SSL_new(t->ctx);
	bio = c->ssl ? BIO_new(sock_method) : NULL;
	if (!bio) {
		ossl_pop(why, whylen);
		return -ENOMEM;
	}
	BIO_set_data(bio, c);
	SSL_set_bio(c->ssl, bio, bio);
	SSL_set_app_data(c->ssl, c);
	if (!expect) {
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			       verify_cb);
		return 0;
	}
	SSL_set_verify(c->ssl, SSL_VERIFY_PEER, verify_cb);
	if (is_ip_literal(expect))
		r = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), expect);
	else
		r = SSL_set1_host(c->ssl, expect) && SSL_set_tlsext_host_name(c->ssl, expect);
	if (r != 1) {
		snprintf(why, whylen, "bad peer name \"%s\"", expect);
		return -EINVAL;
	}
	return 0;
}

/* tls_explain for a failed handshake step: a clean close is a reset too. */
static int step_failed(struct io_tls *c, int r, char *why, size_t whylen, bool *local)
{
	int rc = tls_explain(c, r, why, whylen, local);

	return rc ? rc : -ECONNRESET;
}

/*
 * After the handshake, the server has verified the client's certificate;
 * in TLS 1.3 the client learns it only from the next record (see net.h),
 * so the server sends a confirmation byte. The server's side: checks the
 * client's certificate, takes its common name into peer, sends the byte.
 */
static int confirm_server(struct io_tls *c, char *peer, size_t peerlen, char *why,
			  size_t whylen, bool *local)
{
	X509 *pc = SSL_get0_peer_certificate(c->ssl);
	uint8_t ok = TLS_CONFIRM;
	size_t n;
	int r;

	if (!pc || SSL_get_verify_result(c->ssl) != X509_V_OK) {
		*local = true;
		snprintf(why, whylen, "peer certificate refused: %s",
			 pc ? X509_verify_cert_error_string(SSL_get_verify_result(c->ssl))
			    : "no certificate");
		return -EACCES;
	}
	if (peer && peerlen) {
		peer[0] = '\0';
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(pc), NID_commonName, peer,
					      (int)MIN(peerlen, INT_MAX)) < 0)
			peer[0] = '\0';
	}
	ERR_clear_error();
	c->sys_errno = 0;
	r = SSL_write_ex(c->ssl, &ok, 1, &n);
	return r == 1 ? 0 : step_failed(c, r, why, whylen, local);
}

/* The client's side: reads the server's confirmation byte. */
static int confirm_client(struct io_tls *c, char *why, size_t whylen, bool *local)
{
	uint8_t ok = 0;
	size_t n = 0;
	int r;

	ERR_clear_error();
	c->sys_errno = 0;
	r = SSL_read_ex(c->ssl, &ok, 1, &n);
	if (r != 1)
		return step_failed(c, r, why, whylen, local);
	if (ok != TLS_CONFIRM) {
		snprintf(why, whylen, "peer is not a Ferry TLS endpoint (bad confirmation byte)");
		return -EPROTO;
	}
	return 0;
}

static int handshake(struct strm_tls *t, int fd, const char *expect, struct strm_cancel *cancel,
		     int timeout_ms, struct strm_io **out, char *peer, size_t peerlen, char *err,
		     size_t errlen)
{
	bool server = expect == NULL, local = false;
	char why[TLS_WHY_MAX] = "";
	struct io_tls *c;
	int r, rc;

	*out = NULL;
	pthread_once(&sock_method_once, sock_method_init);
	c = calloc(1, sizeof(*c));
	if (!c || !sock_method) {
		free(c);
		close(fd);
		snprintf(err, errlen, "TLS: out of memory");
		return -ENOMEM;
	}
	strm_io_init(&c->io, &strm_io_ops_tls);
	c->fd = fd;
	c->expect = expect;
	peer_addr(fd, c->addr, sizeof(c->addr));
	rc = ssl_setup(t, c, expect, why, sizeof(why));
	if (rc)
		goto fail;
	if (cancel || timeout_ms > 0)
		tls_set_cancel(&c->io, cancel,
			       timeout_ms > 0 ? timeout_ms : MAX(t->hs_timeout_ms, 0));
	else
		set_timeouts(fd, t->hs_timeout_ms);
	r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
	rc = r == 1 ? 0 : step_failed(c, r, why, sizeof(why), &local);
	if (!rc)
		rc = server ? confirm_server(c, peer, peerlen, why, sizeof(why), &local)
			    : confirm_client(c, why, sizeof(why), &local);
	if (rc)
		goto fail;
	set_timeouts(fd, 0);
	c->expect = NULL;
	log_debug("tls: %s %s: %s, %s", server ? "accepted" : "connected to", c->addr,
		  SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
	*out = &c->io;
	return 0;
fail:
	snprintf(err, errlen, "TLS handshake with %s%s%s: %s", c->addr, expect ? " as " : "",
		 expect ? expect : "", why);
	if (local)
		log_warn("tls: %s", err);
	else
		log_err("tls: %s", err);
	conn_free(c);
	return rc;
}

int strm_io_tls_client(struct strm_tls *t, int fd, const char *expect_name, struct strm_io **out,
		       char *err, size_t errlen)
{
	return strm_io_tls_client_cancel(t, fd, expect_name, NULL, 0, out, err, errlen);
}

int strm_io_tls_client_cancel(struct strm_tls *t, int fd, const char *expect_name,
			      struct strm_cancel *cancel, int timeout_ms, struct strm_io **out,
			      char *err, size_t errlen)
{
	if (!expect_name || !*expect_name) {
		close(fd);
		*out = NULL;
		snprintf(err, errlen, "TLS client: no peer name to check");
		return -EINVAL;
	}
	return handshake(t, fd, expect_name, cancel, timeout_ms, out, NULL, 0, err, errlen);
}

int strm_io_tls_server(struct strm_tls *t, int fd, struct strm_io **out, char *peer, size_t peerlen,
		       char *err, size_t errlen)
{
	return handshake(t, fd, NULL, NULL, 0, out, peer, peerlen, err, errlen);
}

int strm_io_tls_server_cancel(struct strm_tls *t, int fd, struct strm_cancel *cancel,
			      int timeout_ms, struct strm_io **out, char *peer, size_t peerlen,
			      char *err, size_t errlen)
{
	return handshake(t, fd, NULL, cancel, timeout_ms, out, peer, peerlen, err, errlen);
}
