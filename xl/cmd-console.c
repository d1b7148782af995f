// SPDX-License-Identifier: MIT
/*
 * xl console DOMAIN: prints the recent output, then streams. On a terminal
 * the terminal goes raw, keystrokes go to the guest's PV console ring
 * (op console-input) and Ctrl-] (0x1d) detaches, restoring it; piped, it
 * just streams. Either way it ends when the domain is destroyed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common/err.h"
#include "xl.h"

#define CTRL_RBRACKET 0x1d

static void out(const char *s, size_t len)
{
	fwrite(s, 1, len, stdout);
	fflush(stdout);
}

struct input_args {
	char domain[24];
	const char *buf;
	size_t len;
};

/* {"domain": id, "data": text} when the bytes are ASCII, else "bytes"
 * (a NUL too: requests refuse \u0000 in strings). */
static int input_args_gen(yajl_gen g, void *opaque)
{
	const struct input_args *a = opaque;
	bool ascii = true;
	int rc;

	for (size_t i = 0; i < a->len; i++)
		if ((unsigned char)a->buf[i] >= 0x80 || !a->buf[i])
			ascii = false;
	rc = xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "domain", a->domain);
	if (rc)
		return rc;
	if (ascii) {
		rc = xlm_gen_str(g, "data") ?: xlm_gen_strn(g, a->buf, a->len);
	} else {
		rc = xlm_gen_str(g, "bytes") ?: xlm_gen_array_open(g);
		for (size_t i = 0; !rc && i < a->len; i++)
			rc = yajl_gen_integer(g, (unsigned char)a->buf[i]) == yajl_gen_status_ok
				     ? 0 : -EINVAL;
		rc = rc ?: xlm_gen_array_close(g);
	}
	return rc ?: xlm_gen_map_close(g);
}

struct console_state {
	long long domid;
	bool done;
};

static int console_msg(yajl_val msg, long long domid);

/* Events that arrive while a console-input call waits for its reply. */
static void on_event(void *opaque, yajl_val msg)
{
	struct console_state *st = opaque;

	if (console_msg(msg, st->domid))
		st->done = true;
}

/* Handles one message; returns 1 when the console session is over. */
static int console_msg(yajl_val msg, long long domid)
{
	const char *ev = xlm_json_str(msg, "event");
	long long d = -1;

	if (!ev || !xlm_json_int(msg, "domid", &d) || d != domid)
		return 0;
	if (!strcmp(ev, "console")) {
		const char *data = xlm_json_str(msg, "data");

		if (data)
			out(data, strlen(data));
		return 0;
	}
	if (!strcmp(ev, "domain")) {
		const char *st = xlm_json_str(msg, "state");

		return st && !strcmp(st, "destroyed");
	}
	return 0;
}

/* Puts the terminal in raw mode, saving what to restore; false when stdin
 * or stdout is not a terminal. */
static bool console_raw(struct termios *saved)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO) || tcgetattr(STDIN_FILENO, saved))
		return false;
	raw = *saved;
	cfmakeraw(&raw);
	/* Keep output post-processing so guest "\n" still returns the carriage. */
	raw.c_oflag |= OPOST | ONLCR;
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	return true;
}

/* What the user typed, up to Ctrl-], goes to the guest. True when the
 * session ends: Ctrl-], the end of input, or the domain went away. */
static bool console_keys(struct xlm_client *c, struct input_args *in, struct console_state *st)
{
	char buf[64];
	ssize_t got = read(STDIN_FILENO, buf, sizeof(buf));
	const char *esc;

	if (got <= 0)
		return true;
	esc = memchr(buf, CTRL_RBRACKET, (size_t)got);
	in->buf = buf;
	in->len = esc ? (size_t)(esc - buf) : (size_t)got;
	if (in->len) {
		yajl_val r;
		int n;

		c->on_event = on_event;
		c->event_opaque = st;
		n = xlm_client_call(c, "console-input", input_args_gen, in, &r, NULL);
		c->on_event = NULL;
		if (n == 0)
			yajl_tree_free(r);
		/* A refused input (no ring) does not end the session; a
		 * closed connection is reported by the next read. */
	}
	return esc || st->done;
}

int xlm_console_run(struct xlm_client *c, const char *domain)
{
	struct termios saved;
	bool tty;
	yajl_val root, result;
	long long domid = -1;
	const char *text;
	int rc = 0;

	struct console_state st = { .domid = -1 };
	struct input_args in;

	if (xlm_call_domain(c, "console-attach", domain, &root, &result))
		return XL_EXIT_FAIL;
	xlm_json_int(result, "domid", &domid);
	st.domid = domid;
	snprintf(in.domain, sizeof(in.domain), "%lld", domid);
	text = xlm_json_str(result, "output");
	if (text)
		out(text, strlen(text));
	yajl_tree_free(root);

	tty = console_raw(&saved);
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = c->fd, .events = POLLIN },
			{ .fd = STDIN_FILENO, .events = POLLIN },
		};
		yajl_val msg;
		int n;

		while ((n = xlm_client_next(c, 0, &msg)) == 1) {
			int done = console_msg(msg, domid);

			yajl_tree_free(msg);
			if (done)
				goto out;
		}
		if (n < 0) {
			if (n != -EPIPE || !tty)
				rc = xlm_fail("console: %s",
					      c->err[0] ? c->err : ferry_strerror(-n));
			else
				rc = xlm_fail("console: ferryd closed the connection");
			goto out;
		}
		if (poll(pfd, tty ? 2 : 1, -1) < 0 && errno != EINTR) {
			rc = xlm_fail("console: %s", strerror(errno));
			goto out;
		}
		if (tty && (pfd[1].revents & POLLIN) && console_keys(c, &in, &st))
			goto out;
	}
out:
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
		fputc('\n', stdout);
	}
	return rc;
}

int xlm_cmd_console(int argc, char **argv)
{
	struct xlm_client c;
	int opt, status, rc;

	while ((opt = xlm_getopt(argc, argv, "console", "t:n:", 1, &status)) != -1) {
		switch (opt) {
		case -2: return status;
		case 't':
			if (strcmp(optarg, "pv"))
				return xlm_fail("console: unsupported console type '%s' (only pv)",
						optarg);
			break;
		case 'n':
			if (strcmp(optarg, "0"))
				return xlm_fail("console: domain has no console %s", optarg);
			break;
		}
	}
	if (xlm_connect(&c))
		return XL_EXIT_FAIL;
	rc = xlm_console_run(&c, argv[optind]);
	xlm_client_close(&c);
	return rc;
}
