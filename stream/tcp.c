// SPDX-License-Identifier: MIT
/*
 * TCP for migration: listen on an explicit address, connect with a
 * timeout, accept. Addresses are "ADDR:PORT", "ADDR" (STRM_MIGRATE_PORT)
 * or "[V6]:PORT"; a bare IPv6 literal ("::1") is taken whole.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "stream/net.h"

#define TCP_HOST_MAX 256
#define TCP_BACKLOG  16

/*
 * Splits s into host (no brackets) and port. A port of 0 is accepted (the
 * kernel picks one when listening). Returns 0 or -EINVAL with err set.
 */
static int split_host_port(const char *s, char *host, size_t hostlen, unsigned *port, char *err,
			   size_t errlen)
{
	const char *h = s, *p = NULL, *colon;
	size_t hl;

	if (!s || !*s) {
		snprintf(err, errlen, "empty address");
		return -EINVAL;
	}
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close) {
			snprintf(err, errlen, "%s: missing ']'", s);
			return -EINVAL;
		}
		h = s + 1;
		hl = (size_t)(close - h);
		if (close[1] == ':')
			p = close + 2;
		else if (close[1]) {
			snprintf(err, errlen, "%s: junk after ']'", s);
			return -EINVAL;
		}
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':')) {
			/* Several colons: a bare IPv6 literal, no port. */
			hl = strlen(s);
		} else if (colon) {
			hl = (size_t)(colon - s);
			p = colon + 1;
		} else {
			hl = strlen(s);
		}
	}
	if (hl == 0) {
		snprintf(err, errlen, "%s: no host", s);
		return -EINVAL;
	}
	if (hl >= hostlen) {
		snprintf(err, errlen, "%s: host name too long", s);
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = STRM_MIGRATE_PORT;
	if (p) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(p, &end, 10);
		if (!*p || *end || errno || v > 65535 || *p == '-' || *p == '+') {
			snprintf(err, errlen, "%s: bad port \"%s\"", s, p);
			return -EINVAL;
		}
		*port = (unsigned)v;
	}
	return 0;
}

/* "host:port" or "[v6]:port" for messages. */
static void fmt_host_port(char *out, size_t len, const char *host, unsigned port)
{
	if (strchr(host, ':'))
		snprintf(out, len, "[%s]:%u", host, port);
	else
		snprintf(out, len, "%s:%u", host, port);
}

static int resolve(const char *host, unsigned port, bool passive, struct addrinfo **res,
		   const char *what, char *err, size_t errlen)
{
	struct addrinfo hints;
	char portstr[8], hp[TCP_HOST_MAX + 16];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE | AI_NUMERICHOST : 0);
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, res);
	if (rc == 0)
		return 0;
	fmt_host_port(hp, sizeof(hp), host, port);
	if (passive && rc == EAI_NONAME)
		snprintf(err, errlen, "%s %s: not an IP address (the bind address must be one)",
			 what, hp);
	else
		snprintf(err, errlen, "%s %s: %s", what, hp,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	return rc == EAI_SYSTEM && errno ? -errno : -EHOSTUNREACH;
}

int strm_tcp_listen(const char *addr_port, int *fd, char *err, size_t errlen)
{
	char host[TCP_HOST_MAX], hp[TCP_HOST_MAX + 16];
	struct addrinfo *res = NULL;
	unsigned port;
	int s = -1, rc, one = 1;

	*fd = -1;
	rc = split_host_port(addr_port, host, sizeof(host), &port, err, errlen);
	if (rc)
		goto fail_log;
	rc = resolve(host, port, true, &res, "listening on", err, errlen);
	if (rc)
		goto fail_log;
	fmt_host_port(hp, sizeof(hp), host, port);
	s = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		rc = -errno;
		snprintf(err, errlen, "listening on %s: socket: %s", hp, strerror(errno));
		goto fail;
	}
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (res->ai_family == AF_INET6 &&
	     setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "listening on %s: setsockopt: %s", hp, strerror(errno));
		goto fail;
	}
	if (bind(s, res->ai_addr, res->ai_addrlen) < 0 || listen(s, TCP_BACKLOG) < 0) {
		rc = -errno;
		snprintf(err, errlen, "listening on %s: %s", hp, strerror(errno));
		goto fail;
	}
	freeaddrinfo(res);
	*fd = s;
	return 0;
fail:
	if (s >= 0)
		close(s);
	freeaddrinfo(res);
fail_log:
	log_err("%s", err);
	return rc;
}

static void tune_socket(int s)
{
	int one = 1;

	/* Large writes already fill segments; NODELAY keeps small control
	 * messages (handshake, acknowledgements) from waiting on Nagle.
	 * Buffer sizes are left to the kernel's autotuning, which goes
	 * higher than SO_SNDBUF/SO_RCVBUF may (net.core.wmem_max). */
	(void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Connects s to a within the deadline; 0 or -errno (-ECANCELED when cancel
 * fires). */
static int connect_one(int s, const struct addrinfo *a, const struct timespec *deadline,
		       bool has_deadline, const struct strm_cancel *cancel)
{
	int fl = fcntl(s, F_GETFL), soerr = 0, rc;
	socklen_t sl = sizeof(soerr);
	long left;

	if (fl < 0 || fcntl(s, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (connect(s, a->ai_addr, a->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		left = has_deadline ? ms_left(deadline) : 0;
		if (has_deadline && left <= 0)
			return -ETIMEDOUT;
		rc = strm_wait_fd(s, POLLOUT, cancel, has_deadline ? (int)left : 0);
		if (rc)
			return rc;
		if (getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			return -errno;
		if (soerr)
			return -soerr;
	}
	if (fcntl(s, F_SETFL, fl) < 0)
		return -errno;
	return 0;
}

int strm_tcp_connect(const char *host_port, int timeout_ms, int *fd, char *host_out, size_t hostlen,
		     char *err, size_t errlen)
{
	return strm_tcp_connect_cancel(host_port, timeout_ms, NULL, fd, host_out, hostlen, err,
				       errlen);
}

int strm_tcp_connect_cancel(const char *host_port, int timeout_ms, const struct strm_cancel *cancel,
			    int *fd, char *host_out, size_t hostlen, char *err, size_t errlen)
{
	char host[TCP_HOST_MAX], hp[TCP_HOST_MAX + 16];
	struct addrinfo *res = NULL;
	struct timespec deadline;
	unsigned port;
	int rc, s = -1;

	*fd = -1;
	rc = split_host_port(host_port, host, sizeof(host), &port, err, errlen);
	if (rc)
		goto fail_log;
	if (host_out && hostlen) {
		if (strlen(host) >= hostlen) {
			snprintf(err, errlen, "%s: host name too long", host_port);
			rc = -ENAMETOOLONG;
			goto fail_log;
		}
		memcpy(host_out, host, strlen(host) + 1);
	}
	rc = resolve(host, port, false, &res, "connecting to", err, errlen);
	if (rc)
		goto fail_log;
	fmt_host_port(hp, sizeof(hp), host, port);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	rc = -EHOSTUNREACH;
	for (const struct addrinfo *a = res; a; a = a->ai_next) {
		if (strm_cancel_fired(cancel)) {
			rc = -ECANCELED;
			break;
		}
		s = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0) {
			rc = -errno;
			continue;
		}
		rc = connect_one(s, a, &deadline, timeout_ms > 0, cancel);
		if (rc == 0)
			break;
		close(s);
		s = -1;
		if (rc == -ETIMEDOUT || rc == -ECANCELED)
			break;
	}
	freeaddrinfo(res);
	if (rc) {
		if (rc == -ETIMEDOUT)
			snprintf(err, errlen, "connecting to %s: timed out after %d ms", hp,
				 timeout_ms);
		else if (rc == -ECANCELED)
			snprintf(err, errlen, "connecting to %s: cancelled", hp);
		else
			snprintf(err, errlen, "connecting to %s: %s", hp, ferry_strerror(-rc));
		goto fail_log;
	}
	tune_socket(s);
	*fd = s;
	return 0;
fail_log:
	log_err("%s", err);
	return rc;
}

int strm_tcp_accept(int lfd, int timeout_ms, int *fd, char *peer, size_t peerlen, char *err,
		    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int s;

	*fd = -1;
	if (timeout_ms >= 0) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		int n;

		do
			n = poll(&pfd, 1, timeout_ms);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			snprintf(err, errlen, "accept: %s", strerror(errno));
			return -errno;
		}
		if (n == 0) {
			snprintf(err, errlen, "accept: no connection within %d ms", timeout_ms);
			return -ETIMEDOUT;
		}
	}
	do
		s = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	while (s < 0 && (errno == EINTR || errno == ECONNABORTED));
	if (s < 0) {
		int e = errno;

		snprintf(err, errlen, "accept: %s", ferry_strerror(e));
		log_err("%s", err);
		return -e;
	}
	tune_socket(s);
	if (peer && peerlen) {
		char a[INET6_ADDRSTRLEN] = "?";
		unsigned port = 0;

		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
			port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
			port = ntohs(in6->sin6_port);
		}
		fmt_host_port(peer, peerlen, a, port);
	}
	*fd = s;
	return 0;
}

int strm_tcp_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}
