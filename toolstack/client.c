// SPDX-License-Identifier: MIT
/* The blocking control-socket client used by xl. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/err.h"
#include "toolstack/proto.h"

int xlm_client_connect(struct xlm_client *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->next_id = 1;
	xlm_framer_init(&c->fr, 64u << 20); /* replies (dmesg, list) can be large */
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(c->err, sizeof(c->err), "cannot connect to ferryd at %s: %s", path,
			 ferry_strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		snprintf(c->err, sizeof(c->err), "cannot connect to ferryd at %s: %s", path,
			 ferry_strerror(-rc));
		xlm_client_close(c);
		return rc;
	}
	return 0;
}

void xlm_client_close(struct xlm_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	for (size_t i = 0; i < c->nlines; i++)
		yajl_tree_free(c->lines[i]);
	free(c->lines);
	c->lines = NULL;
	c->nlines = c->lines_cap = 0;
	xlm_framer_fini(&c->fr);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int client_line(void *opaque, char *line, size_t len)
{
	struct xlm_client *c = opaque;
	char perr[128];
	yajl_val v;

	if (strspn(line, " \t\r") == len)
		return 0;
	v = yajl_tree_parse(line, perr, sizeof(perr));
	if (!v) {
		perr[strcspn(perr, "\n")] = 0;
		snprintf(c->err, sizeof(c->err), "malformed message from ferryd: %s", perr);
		return -FERRY_EPROTO;
	}
	if (c->nlines == c->lines_cap) {
		size_t cap = c->lines_cap ? c->lines_cap * 2 : 8;
		yajl_val *l = realloc(c->lines, cap * sizeof(*l));

		if (!l) {
			yajl_tree_free(v);
			return -ENOMEM;
		}
		c->lines = l;
		c->lines_cap = cap;
	}
	c->lines[c->nlines++] = v;
	return 0;
}

int xlm_client_next(struct xlm_client *c, int timeout_ms, yajl_val *msg)
{
	char buf[65536];

	while (!c->nlines) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t n;
		int rc;

		rc = poll(&pfd, 1, timeout_ms);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return 0;
		n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			snprintf(c->err, sizeof(c->err), "ferryd closed the connection");
			return -EPIPE;
		}
		rc = xlm_framer_feed(&c->fr, buf, (size_t)n, client_line, c);
		if (rc)
			return rc;
	}
	*msg = c->lines[0];
	memmove(c->lines, c->lines + 1, --c->nlines * sizeof(*c->lines));
	return 1;
}

int xlm_client_call(struct xlm_client *c, const char *op, xlm_args_fn args_gen,
		    void *opaque, yajl_val *root, yajl_val *result)
{
	static const char *result_path[] = { "result", NULL };
	static const char *ok_path[] = { "ok", NULL };
	long long id = c->next_id++, got;
	yajl_gen g = xlm_request_begin(id, op);
	char *line;
	size_t len;
	int rc;

	if (!g)
		return -ENOMEM;
	rc = args_gen ? args_gen(g, opaque) : xlm_gen_map_open(g) ?: xlm_gen_map_close(g);
	if (rc) {
		yajl_gen_free(g);
		return rc;
	}
	rc = xlm_gen_finish(g, &line, &len);
	if (rc)
		return rc;
	rc = write_all(c->fd, line, len);
	free(line);
	if (rc) {
		snprintf(c->err, sizeof(c->err), "cannot send to ferryd: %s", ferry_strerror(-rc));
		return rc;
	}
	for (;;) {
		yajl_val msg;

		rc = xlm_client_next(c, -1, &msg);
		if (rc < 0)
			return rc;
		if (!xlm_json_int(msg, "id", &got)) {
			const char *e = xlm_json_str(msg, "error");

			if (e) { /* an id-less error: the daemon refused us */
				long long en = EPROTO;

				xlm_json_int(msg, "errno", &en);
				snprintf(c->err, sizeof(c->err), "%s", e);
				yajl_tree_free(msg);
				return -(int)en;
			}
			if (c->on_event)
				c->on_event(c->event_opaque, msg);
			yajl_tree_free(msg);
			continue;
		}
		if (got != id) {
			yajl_tree_free(msg);
			continue;
		}
		if (!YAJL_IS_TRUE(yajl_tree_get(msg, ok_path, yajl_t_any))) {
			const char *e = xlm_json_str(msg, "error");
			long long en = EPROTO;

			xlm_json_int(msg, "errno", &en);
			snprintf(c->err, sizeof(c->err), "%s", e ? e : "request failed");
			yajl_tree_free(msg);
			return en > 0 ? -(int)en : -EPROTO;
		}
		if (root) {
			*root = msg;
			if (result)
				*result = yajl_tree_get(msg, result_path, yajl_t_any);
		} else {
			yajl_tree_free(msg);
		}
		return 0;
	}
}
