// SPDX-License-Identifier: MIT
/*
 * xl xenstore-ls, -read, -write, -rm: speak xenstore's wire protocol
 * (xenstore/xs-wire.h) directly to ferryd's xenstored socket, like Xen's
 * xenstore-* tools. The socket is $XENSTORED_PATH if set, else
 * xenstored/socket next to the control socket (RUN_DIR/xenstored/socket).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/err.h"
#include "xenstore/xs-wire.h"
#include "xl.h"

struct xsc {
	int fd;
	uint32_t req_id;
	char path[4096];
	uint8_t msg[XS_MSG_MAX];
	char reply[XS_PAYLOAD_MAX + 1];
	uint32_t rlen;
};

static int xsc_open(struct xsc *x)
{
	const char *env = getenv("XENSTORED_PATH");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *slash;

	if (env && *env) {
		snprintf(x->path, sizeof(x->path), "%s", env);
	} else {
		slash = strrchr(xlm_socket_path, '/');
		if (slash)
			snprintf(x->path, sizeof(x->path), "%.*s/xenstored/socket",
				 (int)(slash - xlm_socket_path), xlm_socket_path);
		else
			snprintf(x->path, sizeof(x->path), "xenstored/socket");
	}
	if (strlen(x->path) >= sizeof(sa.sun_path)) {
		xlm_fail("xenstore socket path %s is too long", x->path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, x->path, strlen(x->path) + 1);
	x->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (x->fd < 0 || connect(x->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = errno;

		xlm_fail("cannot connect to xenstore at %s: %s (is ferryd running, with its "
			 "xenstore?)", x->path, ferry_strerror(err));
		if (x->fd >= 0)
			close(x->fd);
		return -err;
	}
	return 0;
}

static int full_io(int fd, void *buf, size_t len, bool wr)
{
	char *p = buf;

	while (len) {
		ssize_t n = wr ? write(fd, p, len) : read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One request; the reply payload is in x->reply (NUL-terminated). Prints
 * "xl: <what>: <error>" and returns -errno on failure. */
static int xsc_call(struct xsc *x, uint32_t type, const struct xs_iov *parts, unsigned n,
		    const char *what)
{
	struct xs_msg_hdr h;
	uint32_t id = ++x->req_id;
	long len = xs_wire_build(x->msg, type, id, 0, parts, n);
	int rc;

	if (len < 0) {
		xlm_fail("%s: request over %d bytes", what, XS_PAYLOAD_MAX);
		return (int)len;
	}
	rc = full_io(x->fd, x->msg, (size_t)len, true);
	for (;;) {
		rc = rc ?: full_io(x->fd, &h, sizeof(h), false);
		if (!rc && h.len > XS_PAYLOAD_MAX)
			rc = -EPROTO;
		rc = rc ?: full_io(x->fd, x->reply, h.len, false);
		if (rc) {
			xlm_fail("%s: xenstore connection: %s", what,
				 rc == -EPIPE ? "closed" : ferry_strerror(-rc));
			return rc;
		}
		x->reply[h.len] = 0;
		x->rlen = h.len;
		if (h.type != XS_WATCH_EVENT && h.req_id == id)
			break;
	}
	if (h.type == XS_ERROR) {
		int err = xs_wire_errno(x->reply);

		xlm_fail("%s: %s", what, err ? ferry_strerror(err) : x->reply);
		return err ? -err : -EIO;
	}
	return 0;
}

static int xsc_path(struct xsc *x, uint32_t type, const char *path)
{
	struct xs_iov part = { path, strlen(path) + 1 };

	return xsc_call(x, type, &part, 1, path);
}

/* ---- ls ----------------------------------------------------------------- */

/* Xen's xenstore-ls escaping: printable ASCII as is, '\' and '"' escaped,
 * the rest as \xNN. */
static void print_value(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '\\' || c == '"')
			printf("\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			putchar(c);
		else
			printf("\\x%02x", c);
	}
}

static int do_ls(struct xsc *x, const char *path, int depth, bool perms)
{
	char *names, child[XS_ABS_PATH_MAX + 1];
	uint32_t nlen;
	int rc, status = 0;

	if (xsc_path(x, XS_DIRECTORY, path))
		return -1;
	nlen = x->rlen;
	names = malloc(nlen + 1);
	if (!names) {
		xlm_fail("out of memory");
		return -1;
	}
	memcpy(names, x->reply, nlen + 1);
	for (uint32_t off = 0; off < nlen; off += (uint32_t)strlen(names + off) + 1) {
		const char *name = names + off;

		if ((size_t)snprintf(child, sizeof(child), "%s%s%s", path,
				     path[strlen(path) - 1] == '/' ? "" : "/",
				     name) >= sizeof(child)) {
			status = -1; /* no valid path: nothing to read */
			continue;
		}
		rc = xsc_path(x, XS_READ, child);
		if (rc == -EACCES || rc == -ENOENT) {
			status = -1; /* removed meanwhile, or not ours to read */
			continue;
		}
		if (rc) {
			free(names);
			return -1;
		}
		printf("%*s%s = \"", depth, "", name);
		print_value(x->reply, x->rlen);
		putchar('"');
		if (perms && !xsc_path(x, XS_GET_PERMS, child)) {
			fputs("  (", stdout);
			for (uint32_t p = 0; p < x->rlen; p += (uint32_t)strlen(x->reply + p) + 1)
				printf("%s%s", p ? "," : "", x->reply + p);
			putchar(')');
		}
		putchar('\n');
		if (do_ls(x, child, depth + 1, perms))
			status = -1;
	}
	free(names);
	return status;
}

int xlm_cmd_xenstore_ls(int argc, char **argv)
{
	struct xsc *x;
	bool perms = false;
	int opt, status;

	while ((opt = xlm_getopt(argc, argv, "xenstore-ls", "p", 0, &status)) != -1) {
		if (opt == -2)
			return status;
		if (opt == 'p')
			perms = true;
	}
	if (argc - optind > 1) {
		xlm_cmd_usage("xenstore-ls", true);
		return XL_EXIT_USAGE;
	}
	x = calloc(1, sizeof(*x));
	if (!x || xsc_open(x)) {
		free(x);
		return XL_EXIT_FAIL;
	}
	status = do_ls(x, optind < argc ? argv[optind] : "/", 0, perms) ? XL_EXIT_FAIL : 0;
	close(x->fd);
	free(x);
	return status;
}

/* ---- read, write, rm ---------------------------------------------------- */

enum verb { READ, WRITE, RM };

static int simple(int argc, char **argv, const char *name, enum verb v)
{
	struct xsc *x;
	int opt, status;

	while ((opt = xlm_getopt(argc, argv, name, "", v == WRITE ? 2 : 1, &status)) != -1)
		if (opt == -2)
			return status;
	if (v == WRITE && (argc - optind) % 2) {
		fprintf(stderr, "'xl %s' takes PATH VALUE pairs.\n\n", name);
		xlm_cmd_usage(name, true);
		return XL_EXIT_USAGE;
	}
	x = calloc(1, sizeof(*x));
	if (!x || xsc_open(x)) {
		free(x);
		return XL_EXIT_FAIL;
	}
	status = 0;
	for (int i = optind; i < argc; i += v == WRITE ? 2 : 1) {
		if (v == READ) {
			if (xsc_path(x, XS_READ, argv[i])) {
				status = XL_EXIT_FAIL;
				break;
			}
			fwrite(x->reply, 1, x->rlen, stdout);
			putchar('\n');
		} else if (v == WRITE) {
			struct xs_iov parts[2] = { { argv[i], strlen(argv[i]) + 1 },
						   { argv[i + 1], strlen(argv[i + 1]) } };

			if (xsc_call(x, XS_WRITE, parts, 2, argv[i])) {
				status = XL_EXIT_FAIL;
				break;
			}
		} else if (xsc_path(x, XS_RM, argv[i])) {
			status = XL_EXIT_FAIL;
			break;
		}
	}
	close(x->fd);
	free(x);
	return status;
}

int xlm_cmd_xenstore_read(int argc, char **argv)
{
	return simple(argc, argv, "xenstore-read", READ);
}

int xlm_cmd_xenstore_write(int argc, char **argv)
{
	return simple(argc, argv, "xenstore-write", WRITE);
}

int xlm_cmd_xenstore_rm(int argc, char **argv)
{
	return simple(argc, argv, "xenstore-rm", RM);
}
