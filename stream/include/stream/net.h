/* SPDX-License-Identifier: MIT */
/*
 * Transport for migration: TCP sockets and TLS 1.3 with mutual
 * authentication (OpenSSL). A connection becomes a struct strm_io (io.h)
 * that reads and writes both ways; blocking, meant for worker threads.
 */
#ifndef STREAM_NET_H
#define STREAM_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "stream/io.h"

#define STRM_MIGRATE_PORT 8002 /* Xen's old relocation port */

/* "ADDR:PORT", "ADDR" (default port), "[v6]:PORT". Binds and listens;
 * *fd is non-blocking-capable, CLOEXEC. -errno with err set on failure. */
int strm_tcp_listen(const char *addr_port, int *fd, char *err, size_t errlen);
/* Connects to "HOST[:PORT]" within timeout_ms; TCP_NODELAY set. *host_out
 * (hostlen bytes) receives the HOST part, the name a certificate must match. */
int strm_tcp_connect(const char *host_port, int timeout_ms, int *fd, char *host_out,
		     size_t hostlen, char *err, size_t errlen);
/* The same, also ending with -ECANCELED when cancel (may be NULL) fires. */
int strm_tcp_connect_cancel(const char *host_port, int timeout_ms, const struct strm_cancel *cancel,
			    int *fd, char *host_out, size_t hostlen, char *err, size_t errlen);
/* Accepts one connection on listening lfd, waiting at most timeout_ms (< 0:
 * forever; -ETIMEDOUT, not logged, when none came). *fd is CLOEXEC with
 * TCP_NODELAY; peer (peerlen bytes, may be NULL) receives "ADDR:PORT". */
int strm_tcp_accept(int lfd, int timeout_ms, int *fd, char *peer, size_t peerlen, char *err,
		    size_t errlen);
/* The local port of a bound socket (listening on port 0), or -errno. */
int strm_tcp_local_port(int fd);

/*
 * A TLS context: DIR/ca.pem (the cluster CA), DIR/NAME.pem and DIR/NAME.key
 * (this host's certificate and key). TLS 1.3 only; both sides present
 * certificates and verify the other's against the CA; validity dates are
 * checked. Errors name the file and the reason.
 */
struct strm_tls;
int strm_tls_new(const char *dir, const char *name, struct strm_tls **out, char *err,
		 size_t errlen);
void strm_tls_free(struct strm_tls *t);
/* Handshake time limit (default 30000 ms; <= 0: none): a peer that stalls
 * during the handshake gives -ETIMEDOUT. */
void strm_tls_set_handshake_timeout(struct strm_tls *t, int ms);

/*
 * Handshakes over connected fd (the io owns it). The client checks that
 * the server's certificate names expect_name (DNS or IP SAN); the server
 * requires a CA-signed client certificate and reports its subject name in
 * peer. A refused peer gives -EACCES with err saying why (unsigned,
 * expired, names another host), logged on this side; the other side's
 * handshake fails too and it logs its own reason.
 */
int strm_io_tls_client(struct strm_tls *t, int fd, const char *expect_name,
		       struct strm_io **out, char *err, size_t errlen);
int strm_io_tls_server(struct strm_tls *t, int fd, struct strm_io **out, char *peer,
		       size_t peerlen, char *err, size_t errlen);
/*
 * The same with a cancel token (may be NULL) and a progress timeout
 * (timeout_ms > 0; 0: the context's handshake timeout): the handshake
 * waits in poll() for the fd or the token, fails with -ECANCELED when it
 * fires and with -ETIMEDOUT after timeout_ms without a byte moving. The io
 * keeps both afterwards, as strm_io_set_cancel(io, cancel, timeout_ms)
 * would set them (call it to change them).
 */
int strm_io_tls_client_cancel(struct strm_tls *t, int fd, const char *expect_name,
			      struct strm_cancel *cancel, int timeout_ms, struct strm_io **out,
			      char *err, size_t errlen);
int strm_io_tls_server_cancel(struct strm_tls *t, int fd, struct strm_cancel *cancel,
			      int timeout_ms, struct strm_io **out, char *peer, size_t peerlen,
			      char *err, size_t errlen);
/*
 * Notes on the four above:
 * - fd passes to the call: on failure it is closed too.
 * - TLS 1.3 verifies the client's certificate after the client has sent
 *   its last handshake message, so the server confirms with one byte of
 *   application data and the client waits for it: a client refused by the
 *   server fails in strm_io_tls_client, before any data passes.
 * - The io reads 0 only after the peer's close_notify; a connection that
 *   ends without one is an error (-ECONNRESET, "truncated"), never a hang
 *   or a clean end. Writes never raise SIGPIPE.
 * - strm_io_close sends close_notify (best effort, when no error is
 *   pending) and closes fd. One thread at a time per io (OpenSSL's rule).
 */

/*
 * `xl tls-setup`: creates DIR (0700) with ca.pem/ca.key and, for each host,
 * HOST.pem/HOST.key signed by the CA, with an IP SAN when HOST is an
 * address and a DNS SAN otherwise, valid for days. Existing CA files are
 * reused so hosts can be added later.
 */
int strm_tls_setup(const char *dir, const char *const *hosts, unsigned nhosts,
		   unsigned days, char *err, size_t errlen);

/* ---- the xl migrate handshake's messages ---------------------------------- */

/*
 * Xen's messages (tools/xl/xl.h): the banner goes without its NUL, the
 * other three with it (sizeof counts it). Ferry's additions: a query
 * ("ferry-query " NAME "\n", answered "running\n", "paused\n" or
 * "absent\n") and a target's refusal ("ferry-error: " REASON "\n").
 * docs/migration.md has the protocol; migrate/handshake.h and
 * restore/receive.h speak it.
 */
#define STRM_HS_BANNER	  "xl migration receiver ready, send binary domain data.\n"
#define STRM_HS_READY	  "domain received, ready to unpause"
#define STRM_HS_GO	  "domain is yours, you are cleared to unpause"
#define STRM_HS_REPORT	  "my copy unpause results are as follows"
#define STRM_HS_QUERY	  "ferry-query "
#define STRM_HS_ERROR	  "ferry-error: "
#define STRM_HS_XL_MAGIC  "Xen saved do" /* the first 12 bytes of the xl magic */
#define STRM_HS_PEEK_LEN  12		 /* tells a query from a stream */
/*
 * Page channels (xl migrate --channels N, docs/channels.md): the main
 * connection opens with STRM_HS_CHANNELS "N COOKIE\n" before its stream,
 * and each of N more connections with STRM_HS_PAGES "COOKIE I\n" (I from
 * 0) before a stream of its own that carries only PAGE_DATA. COOKIE is
 * STRM_HS_COOKIE_LEN hex digits, random per migration.
 */
#define STRM_HS_CHANNELS     "ferry-chans "
#define STRM_HS_PAGES	     "ferry-pages "
#define STRM_HS_CHANNELS_MAX 8
#define STRM_HS_COOKIE_LEN   32

/*
 * Reads exactly msg (len bytes). A peer that sends STRM_HS_ERROR REASON
 * instead gives -ECONNREFUSED with "the target refused: REASON" in err;
 * other bytes -EPROTO; an io error or end "WHAT: why" in err.
 */
int strm_hs_read(struct strm_io *io, const char *msg, size_t len, const char *what, char *err,
		 size_t errlen);
/* Writes len bytes of msg and flushes: 0 or -errno. */
int strm_hs_write(struct strm_io *io, const void *msg, size_t len);
/* An io error of the handshake in words ("timed out: the peer is stalled",
 * "connection closed", "cancelled", else ferry_strerror). */
const char *strm_hs_strerror(int rc);

/* ---- for tests ----------------------------------------------------------- */

/*
 * Issues DIR/NAME.pem and DIR/NAME.key (created 0600; DIR is created 0700
 * if missing) signed by the CA in CA_DIR (ca.pem, ca.key), valid from
 * now + not_before_s to now + not_after_s seconds (negative: in the past),
 * so tests can build expired certificates or ones from another CA. The SAN
 * is an IP for an address NAME, DNS otherwise. DIR's ca.pem is untouched.
 */
int strm_tls_make_host_cert(const char *dir, const char *name, const char *ca_dir,
			    long not_before_s, long not_after_s, char *err, size_t errlen);

#endif
