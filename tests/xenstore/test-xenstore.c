// SPDX-License-Identifier: MIT
/*
 * Xenstore (xenstore/xenstore.h): requests go in as real xsd_sockmsg bytes
 * through xs_conn_feed(); replies and watch events are parsed back out.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xenstore/xenstore.h"

/* A client: its connection and everything the store sent it. */
struct client {
	struct xs_conn *c;
	uint8_t out[1 << 18];
	size_t len;	/* bytes in out */
	size_t parsed;	/* bytes of out already sorted */
	uint32_t req;
	char ev[64][256]; /* pending events as "path token" */
	unsigned nev, evhead;
};

struct msg {
	struct xs_msg_hdr h;
	char p[XS_PAYLOAD_MAX + 1];
};

static int cap_out(void *opaque, const void *msg, size_t len)
{
	struct client *cl = opaque;

	cr_assert(len >= sizeof(struct xs_msg_hdr) && len <= XS_MSG_MAX);
	cr_assert_leq(cl->len + len, sizeof(cl->out));
	memcpy(cl->out + cl->len, msg, len);
	cl->len += len;
	return 0;
}

static struct xs_store *store;

static struct client *client(uint32_t domid)
{
	struct client *cl = calloc(1, sizeof(*cl));

	cr_assert_not_null(cl);
	cr_assert_eq(xs_conn_new(store, domid, cap_out, cl, &cl->c), 0);
	return cl;
}

static void client_free(struct client *cl)
{
	xs_conn_free(cl->c);
	free(cl);
}

/* Takes the next message out of the captured stream. */
static bool next_msg(struct client *cl, struct msg *m)
{
	if (cl->len - cl->parsed < sizeof(m->h))
		return false;
	memcpy(&m->h, cl->out + cl->parsed, sizeof(m->h));
	cr_assert_leq(m->h.len, XS_PAYLOAD_MAX);
	cr_assert_geq(cl->len - cl->parsed, sizeof(m->h) + m->h.len);
	memcpy(m->p, cl->out + cl->parsed + sizeof(m->h), m->h.len);
	m->p[m->h.len] = 0;
	cl->parsed += sizeof(m->h) + m->h.len;
	return true;
}

/* Sorts captured messages: events to the event queue; returns whether a
 * reply was found (into *reply). */
static bool drain(struct client *cl, struct msg *reply)
{
	struct msg m;
	bool got = false;

	while (next_msg(cl, &m)) {
		if (m.h.type == XS_WATCH_EVENT) {
			size_t pl = strlen(m.p);

			cr_assert_eq(m.h.req_id, 0);
			cr_assert_lt(pl + 1, m.h.len, "event without token");
			cr_assert_lt(cl->nev, 64);
			snprintf(cl->ev[cl->nev++], sizeof(cl->ev[0]), "%.120s %.120s",
				 m.p, m.p + pl + 1);
			continue;
		}
		cr_assert_not(got, "two replies");
		*reply = m;
		got = true;
	}
	return got;
}

static void send_raw(struct client *cl, uint32_t type, uint32_t tx,
		     const void *payload, size_t len)
{
	struct xs_msg_hdr h = { type, ++cl->req, tx, (uint32_t)len };

	cr_assert_eq(xs_conn_feed(cl->c, &h, sizeof(h)), 0);
	cr_assert_eq(xs_conn_feed(cl->c, payload, len), 0);
}

/* One request, its reply. */
static struct msg rq(struct client *cl, uint32_t type, uint32_t tx,
		     const void *payload, size_t len)
{
	struct msg m;

	send_raw(cl, type, tx, payload, len);
	cr_assert(drain(cl, &m), "no reply to %s", xs_wire_type_name(type));
	cr_assert_eq(m.h.req_id, cl->req);
	cr_assert_eq(m.h.tx_id, tx);
	cr_assert(m.h.type == type || m.h.type == XS_ERROR);
	return m;
}

/* A payload of one string, with its NUL. */
#define S(lit) lit, sizeof(lit)
/* A WRITE payload: path NUL value (no trailing NUL). */
#define W(path, val) path "\0" val, sizeof(path "\0" val) - 1

#define ok(m) expect_ok(m, __LINE__)
static void expect_ok(struct msg m, int line)
{
	cr_assert_neq(m.h.type, XS_ERROR, "line %d: error %s", line, m.p);
	cr_assert_eq(m.h.len, 3, "line %d: len %u", line, m.h.len);
	cr_assert_str_eq(m.p, "OK", "line %d", line);
}

#define err(m, e) expect_err(m, e, __LINE__)
static void expect_err(struct msg m, const char *e, int line)
{
	cr_assert_eq(m.h.type, XS_ERROR, "line %d: no error, got %s", line,
		     xs_wire_type_name(m.h.type));
	cr_assert_eq(m.h.len, strlen(e) + 1, "line %d", line);
	cr_assert_str_eq(m.p, e, "line %d", line);
}

#define val(m, v) expect_val(m, v, sizeof(v) - 1, __LINE__)
static void expect_val(struct msg m, const char *v, size_t len, int line)
{
	cr_assert_neq(m.h.type, XS_ERROR, "line %d: error %s", line, m.p);
	cr_assert_eq(m.h.len, len, "line %d: len %u", line, m.h.len);
	cr_assert(!memcmp(m.p, v, len), "line %d", line);
}

static const char *ev(struct client *cl)
{
	struct msg m;

	cr_assert_not(drain(cl, &m), "unexpected reply");
	return cl->evhead < cl->nev ? cl->ev[cl->evhead++] : NULL;
}

#define no_ev(cl) cr_assert_null(ev(cl))

static void setup(void)
{
	cr_assert_eq(xs_store_new(NULL, &store), 0);
}

static void teardown(void)
{
	cr_assert_eq(xs_store_check(store), 0);
	xs_store_free(store);
}

TestSuite(xenstore, .init = setup, .fini = teardown);

Test(xenstore, basic_ops)
{
	struct client *d0 = client(0);
	struct msg m;

	ok(rq(d0, XS_WRITE, 0, W("/a/b/c", "hello")));
	val(rq(d0, XS_READ, 0, S("/a/b/c")), "hello");
	val(rq(d0, XS_READ, 0, S("/a/b")), ""); /* created empty */
	ok(rq(d0, XS_WRITE, 0, W("/a/b/c", ""))); /* empty value */
	val(rq(d0, XS_READ, 0, S("/a/b/c")), "");
	ok(rq(d0, XS_WRITE, 0, W("/a/bin", "x\0y")));
	val(rq(d0, XS_READ, 0, S("/a/bin")), "x\0y");
	ok(rq(d0, XS_MKDIR, 0, S("/a/d")));
	ok(rq(d0, XS_MKDIR, 0, S("/a/d"))); /* exists: fine */
	val(rq(d0, XS_DIRECTORY, 0, S("/a")), "b\0bin\0d\0");
	val(rq(d0, XS_DIRECTORY, 0, S("/a/d")), "");
	val(rq(d0, XS_GET_PERMS, 0, S("/a")), "n0\0");
	ok(rq(d0, XS_RM, 0, S("/a/b")));
	err(rq(d0, XS_READ, 0, S("/a/b/c")), "ENOENT");
	val(rq(d0, XS_DIRECTORY, 0, S("/a")), "bin\0d\0");
	ok(rq(d0, XS_RM, 0, S("/a/b")));	       /* gone, parent exists */
	err(rq(d0, XS_RM, 0, S("/a/b/c")), "ENOENT"); /* parent gone too */
	err(rq(d0, XS_RM, 0, S("/")), "EINVAL");
	val(rq(d0, XS_GET_DOMAIN_PATH, 0, S("7")), "/local/domain/7\0");
	err(rq(d0, XS_GET_DOMAIN_PATH, 0, S("x")), "EINVAL");
	ok(rq(d0, XS_CONTROL, 0, "print\0hi", 9));
	ok(rq(d0, XS_CONTROL, 0, S("log")));
	ok(rq(d0, XS_CONTROL, 0, S("check")));
	m = rq(d0, XS_CONTROL, 0, S("help"));
	cr_assert(strstr(m.p, "print"));
	err(rq(d0, XS_CONTROL, 0, S("frob")), "EINVAL");
	err(rq(d0, XS_WATCH_EVENT, 0, S("/a")), "ENOSYS");
	err(rq(d0, XS_ERROR, 0, S("/a")), "ENOSYS");
	err(rq(d0, 20, 0, S("/a")), "ENOSYS");
	err(rq(d0, 999, 0, S("/a")), "ENOSYS");
	val(rq(d0, XS_IS_DOMAIN_INTRODUCED, 0, S("0")), "T\0");
	val(rq(d0, XS_IS_DOMAIN_INTRODUCED, 0, S("9")), "F\0");
	client_free(d0);
}

Test(xenstore, directory_part)
{
	struct client *d0 = client(0);
	char gen[32], want[64];
	struct msg m;
	size_t gl;

	ok(rq(d0, XS_MKDIR, 0, S("/d/aa")));
	ok(rq(d0, XS_MKDIR, 0, S("/d/bb")));
	m = rq(d0, XS_DIRECTORY_PART, 0, "/d\0" "0", 5);
	gl = strlen(m.p) + 1;
	memcpy(gen, m.p, gl);
	memcpy(want, gen, gl);
	memcpy(want + gl, "aa\0bb\0", 7);
	expect_val(m, want, gl + 7, __LINE__);
	m = rq(d0, XS_DIRECTORY_PART, 0, "/d\0" "3", 5);
	memcpy(want + gl, "bb\0", 4);
	expect_val(m, want, gl + 4, __LINE__);
	m = rq(d0, XS_DIRECTORY_PART, 0, "/d\0" "6", 5);
	want[gl] = 0;
	expect_val(m, want, gl + 1, __LINE__); /* behind the list: "" */
	ok(rq(d0, XS_MKDIR, 0, S("/d/cc")));
	m = rq(d0, XS_DIRECTORY_PART, 0, "/d\0" "0", 5);
	cr_assert_str_neq(m.p, gen, "generation did not change");
	err(rq(d0, XS_DIRECTORY_PART, 0, S("/d")), "EINVAL");
	err(rq(d0, XS_DIRECTORY_PART, 0, "/d\0" "x", 5), "EINVAL");
	err(rq(d0, XS_DIRECTORY_PART, 0, "/nope\0" "0", 8), "ENOENT");
	client_free(d0);
}

Test(xenstore, bad_paths_and_payloads)
{
	struct client *d0 = client(0), *g = client(3);
	static char big[XS_ABS_PATH_MAX + 8];

	err(rq(d0, XS_READ, 0, S("/a//b")), "EINVAL");
	err(rq(d0, XS_READ, 0, S("/a/")), "EINVAL");
	err(rq(d0, XS_READ, 0, S("/a b")), "EINVAL");
	err(rq(d0, XS_READ, 0, S("/a.b")), "EINVAL");
	err(rq(d0, XS_READ, 0, S("@releaseDomain")), "EINVAL");
	err(rq(d0, XS_READ, 0, S("")), "EINVAL");
	err(rq(d0, XS_READ, 0, "", 0), "EINVAL");
	err(rq(d0, XS_READ, 0, "/a", 2), "EINVAL");		/* no NUL */
	err(rq(d0, XS_READ, 0, "/a\0/b", 6), "EINVAL");	/* two strings */
	err(rq(d0, XS_WRITE, 0, "/a", 2), "EINVAL");
	err(rq(d0, XS_MKDIR, 0, S("/x/")), "EINVAL");
	err(rq(d0, XS_SET_PERMS, 0, S("/local")), "EINVAL");
	err(rq(d0, XS_SET_PERMS, 0, "/local\0x0", 10), "EINVAL");
	err(rq(d0, XS_SET_PERMS, 0, "/local\0r", 9), "EINVAL");
	big[0] = '/';
	memset(big + 1, 'a', XS_ABS_PATH_MAX);
	err(rq(d0, XS_WRITE, 0, big, strlen(big) + 1), "EINVAL");
	big[XS_ABS_PATH_MAX] = 0; /* exactly the limit */
	ok(rq(d0, XS_WRITE, 0, big, strlen(big) + 1));
	/* Relative paths: at most XS_REL_PATH_MAX. */
	memset(big, 'b', XS_REL_PATH_MAX + 1);
	big[XS_REL_PATH_MAX + 1] = 0;
	err(rq(g, XS_READ, 0, big, XS_REL_PATH_MAX + 2), "EINVAL");
	client_free(d0);
	client_free(g);
}

Test(xenstore, permissions)
{
	struct client *d0 = client(0), *g5, *g6;
	char *v;
	size_t len;

	cr_assert_eq(xs_domain_create(store, 5, "vm5", 65536), 0);
	cr_assert_eq(xs_domain_create(store, 6, "vm6", 65536), 0);
	cr_assert_eq(xs_domain_create(store, 6, "again", 1), -EEXIST);
	g5 = client(5);
	g6 = client(6);
	ok(rq(d0, XS_WRITE, 0, W("/tool/secret", "s")));
	/* dom0-private nodes */
	err(rq(g5, XS_READ, 0, S("/tool/secret")), "EACCES");
	err(rq(g5, XS_READ, 0, S("/tool/missing")), "EACCES");
	err(rq(g5, XS_WRITE, 0, W("/tool/x", "1")), "EACCES");
	err(rq(g5, XS_DIRECTORY, 0, S("/local/domain")), "EACCES");
	/* its own directory: readable, not writable */
	val(rq(g5, XS_READ, 0, S("/local/domain/5/name")), "vm5");
	val(rq(g5, XS_READ, 0, S("name")), "vm5");
	val(rq(g5, XS_READ, 0, S("memory/target")), "65536");
	val(rq(g5, XS_READ, 0, S("domid")), "5");
	err(rq(g5, XS_WRITE, 0, W("name", "evil")), "EACCES");
	err(rq(g5, XS_WRITE, 0, W("newkey", "1")), "EACCES");
	err(rq(g5, XS_RM, 0, S("name")), "EACCES");
	err(rq(g5, XS_READ, 0, S("nothere")), "ENOENT");
	val(rq(g5, XS_GET_PERMS, 0, S("name")), "n0\0r5\0");
	/* another guest's */
	err(rq(g6, XS_READ, 0, S("/local/domain/5/name")), "EACCES");
	/* where the guest owns: create, inherit with itself as owner */
	val(rq(g5, XS_GET_PERMS, 0, S("data")), "n5\0");
	ok(rq(g5, XS_WRITE, 0, W("data/k/x", "1")));
	val(rq(g5, XS_GET_PERMS, 0, S("data/k/x")), "n5\0");
	val(rq(d0, XS_READ, 0, S("/local/domain/5/data/k/x")), "1");
	ok(rq(g5, XS_WRITE, 0, W("control/shutdown", "poweroff")));
	err(rq(g6, XS_READ, 0, S("/local/domain/5/data/k/x")), "EACCES");
	/* owner grants read to 6 */
	ok(rq(g5, XS_SET_PERMS, 0, "data/k/x\0n5\0r6", 15));
	val(rq(g6, XS_READ, 0, S("/local/domain/5/data/k/x")), "1");
	err(rq(g6, XS_WRITE, 0, W("/local/domain/5/data/k/x", "2")), "EACCES");
	/* non-owner may not set perms, even with write access */
	ok(rq(g5, XS_SET_PERMS, 0, "data/k/x\0n5\0b6", 15));
	ok(rq(g6, XS_WRITE, 0, W("/local/domain/5/data/k/x", "2")));
	err(rq(g6, XS_SET_PERMS, 0, "/local/domain/5/data/k/x\0b6", 28),
	    "EACCES");
	/* the owner may not give a node away (EPERM in xenstored) */
	err(rq(g5, XS_SET_PERMS, 0, "data/k/x\0n6", 12), "EINVAL");
	err(rq(g5, XS_SET_PERMS, 0, "name\0n5", 8), "EACCES");
	/* default entry: others get entry 0's perm */
	ok(rq(g5, XS_SET_PERMS, 0, "data/k\0r5", 10));
	val(rq(g6, XS_DIRECTORY, 0, S("/local/domain/5/data/k")), "x\0");
	/* dom0 does anything */
	ok(rq(d0, XS_SET_PERMS, 0, S("/local/domain/5/data/k\0n6")));
	err(rq(g5, XS_READ, 0, S("data/k")), "EACCES");
	val(rq(g6, XS_READ, 0, S("/local/domain/5/data/k")), "");
	/* toolstack-only requests */
	err(rq(g5, XS_INTRODUCE, 0, "9\0" "1\0" "2", 6), "EACCES");
	err(rq(g5, XS_RELEASE, 0, S("5")), "EACCES");
	err(rq(g5, XS_IS_DOMAIN_INTRODUCED, 0, S("5")), "EACCES");
	err(rq(g5, XS_CONTROL, 0, S("log")), "EACCES");
	err(rq(g5, XS_SET_TARGET, 0, "5\0" "6", 4), "EACCES");
	err(rq(g5, XS_RESUME, 0, S("5")), "EACCES");
	/* a target gets its target's rights */
	ok(rq(d0, XS_SET_TARGET, 0, "6\0" "5", 4));
	ok(rq(g6, XS_WRITE, 0, W("/local/domain/5/data/by6", "t")));
	err(rq(d0, XS_SET_TARGET, 0, "77\0" "5", 5), "ENOENT");
	/* direct calls */
	cr_assert_eq(xs_read(store, "/local/domain/5/data/by6", &v, &len), 0);
	cr_assert_eq(len, 1);
	cr_assert_str_eq(v, "t");
	free(v);
	cr_assert_eq(xs_read(store, "/nope", &v, &len), -ENOENT);
	cr_assert_eq(xs_read(store, "rel", &v, &len), -EINVAL);
	cr_assert_eq(xs_write(store, "/a//b", "", 0), -EINVAL);
	client_free(g5);
	client_free(g6);
	client_free(d0);
}

Test(xenstore, watches)
{
	struct client *d0 = client(0), *w = client(0), *g = client(5);

	cr_assert_eq(xs_domain_create(store, 5, "vm5", 1024), 0);
	ok(rq(w, XS_WATCH, 0, "/a\0tok", 7));
	cr_assert_str_eq(ev(w), "/a tok"); /* fired at once */
	no_ev(w);
	err(rq(w, XS_WATCH, 0, "/a\0tok", 7), "EEXIST");
	ok(rq(w, XS_WATCH, 0, "/a\0tok2", 8));
	cr_assert_str_eq(ev(w), "/a tok2");
	ok(rq(w, XS_UNWATCH, 0, "/a\0tok2", 8));
	err(rq(w, XS_UNWATCH, 0, "/a\0tok2", 8), "ENOENT");
	err(rq(w, XS_WATCH, 0, S("/a")), "EINVAL");
	ok(rq(d0, XS_WRITE, 0, W("/a/b", "1")));
	cr_assert_str_eq(ev(w), "/a/b tok");
	no_ev(w);
	ok(rq(d0, XS_WRITE, 0, W("/ab", "1"))); /* not a child of /a */
	no_ev(w);
	ok(rq(d0, XS_MKDIR, 0, S("/a/b"))); /* exists: no change */
	no_ev(w);
	ok(rq(d0, XS_SET_PERMS, 0, "/a/b\0n0", 8));
	cr_assert_str_eq(ev(w), "/a/b tok");
	/* removal of a parent fires watches below it with their own path */
	ok(rq(w, XS_WATCH, 0, "/a/b/c/d\0deep", 14));
	cr_assert_str_eq(ev(w), "/a/b/c/d deep");
	ok(rq(d0, XS_RM, 0, S("/a")));
	cr_assert_str_eq(ev(w), "/a tok");
	cr_assert_str_eq(ev(w), "/a/b/c/d deep");
	no_ev(w);
	/* the writer's own watches fire too, before its ack */
	ok(rq(d0, XS_WATCH, 0, "/q\0mine", 8));
	cr_assert_str_eq(ev(d0), "/q mine");
	send_raw(d0, XS_WRITE, 0, W("/q", "1"));
	{
		struct msg m;

		cr_assert(next_msg(d0, &m));
		cr_assert_eq(m.h.type, XS_WATCH_EVENT);
		cr_assert(next_msg(d0, &m));
		cr_assert_eq(m.h.type, XS_WRITE);
	}
	ok(rq(w, XS_UNWATCH, 0, "/a\0tok", 7));
	ok(rq(d0, XS_WRITE, 0, W("/a/z", "1")));
	no_ev(w);
	/* guests: relative watches give relative events; no events for
	 * nodes they cannot read */
	ok(rq(g, XS_WATCH, 0, "data\0g", 7));
	cr_assert_str_eq(ev(g), "data g");
	ok(rq(d0, XS_WRITE, 0, W("/local/domain/5/data/k", "v")));
	cr_assert_str_eq(ev(g), "data/k g");
	ok(rq(g, XS_WATCH, 0, "/local/domain/5\0abs", 20));
	cr_assert_str_eq(ev(g), "/local/domain/5 abs");
	ok(rq(d0, XS_MKDIR, 0, S("/local/domain/5/private")));
	cr_assert_str_eq(ev(g), "/local/domain/5/private abs"); /* n0,r5 */
	ok(rq(d0, XS_SET_PERMS, 0, S("/local/domain/5/private\0n0")));
	no_ev(g); /* now unreadable to it: no event */
	ok(rq(d0, XS_WRITE, 0, W("/local/domain/5/name", "x")));
	cr_assert_str_eq(ev(g), "/local/domain/5/name abs");
	/* special watches: toolstack only */
	ok(rq(w, XS_WATCH, 0, "@introduceDomain\0i", 19));
	cr_assert_str_eq(ev(w), "@introduceDomain i");
	ok(rq(w, XS_WATCH, 0, "@releaseDomain\0r", 17));
	cr_assert_str_eq(ev(w), "@releaseDomain r");
	ok(rq(g, XS_WATCH, 0, "@releaseDomain\0gr", 18));
	cr_assert_str_eq(ev(g), "@releaseDomain gr");
	ok(rq(d0, XS_INTRODUCE, 0, "9\0" "1234\0" "3", 9));
	cr_assert_str_eq(ev(w), "@introduceDomain i");
	ok(rq(d0, XS_INTRODUCE, 0, "9\0" "1234\0" "3", 9)); /* again: quiet */
	no_ev(w);
	err(rq(d0, XS_INTRODUCE, 0, "0\0" "1\0" "3", 6), "EINVAL");
	err(rq(d0, XS_INTRODUCE, 0, "9\0" "1", 4), "EINVAL");
	val(rq(d0, XS_IS_DOMAIN_INTRODUCED, 0, S("9")), "T\0");
	ok(rq(d0, XS_RESUME, 0, S("9")));
	ok(rq(d0, XS_RELEASE, 0, S("9")));
	cr_assert_str_eq(ev(w), "@releaseDomain r");
	err(rq(d0, XS_RELEASE, 0, S("9")), "ENOENT");
	err(rq(d0, XS_RESUME, 0, S("9")), "ENOENT");
	val(rq(d0, XS_IS_DOMAIN_INTRODUCED, 0, S("9")), "F\0");
	cr_assert_eq(xs_domain_release(store, 5), 0);
	cr_assert_str_eq(ev(w), "@releaseDomain r");
	cr_assert_str_eq(ev(g), "data g");	    /* its watches saw the rm */
	cr_assert_str_eq(ev(g), "/local/domain/5 abs");
	no_ev(g);
	cr_assert_eq(xs_domain_introduced(store, 5), 0);
	cr_assert_eq(xs_domain_create(store, 8, "vm8", 1024), 0);
	cr_assert_str_eq(ev(w), "@introduceDomain i");
	/* reset drops every watch */
	ok(rq(w, XS_RESET_WATCHES, 0, "", 0));
	ok(rq(d0, XS_WRITE, 0, W("/a/z", "2")));
	cr_assert_eq(xs_domain_release(store, 8), 0);
	no_ev(w);
	client_free(d0);
	client_free(w);
	client_free(g);
}

static uint32_t tx_start(struct client *cl)
{
	struct msg m = rq(cl, XS_TRANSACTION_START, 0, S(""));

	cr_assert_eq(m.h.type, XS_TRANSACTION_START, "%s", m.p);
	cr_assert_eq(m.h.len, strlen(m.p) + 1);
	return (uint32_t)strtoul(m.p, NULL, 10);
}

Test(xenstore, transactions)
{
	struct client *a = client(0), *b = client(0), *w = client(0);
	uint32_t t, t2;

	ok(rq(w, XS_WATCH, 0, "/t\0w", 5));
	cr_assert_str_eq(ev(w), "/t w");
	/* commit */
	t = tx_start(a);
	cr_assert_neq(t, 0);
	ok(rq(a, XS_WRITE, t, W("/t/x", "1")));
	val(rq(a, XS_READ, t, S("/t/x")), "1");	/* sees its own write */
	val(rq(a, XS_DIRECTORY, t, S("/t")), "x\0");
	err(rq(b, XS_READ, 0, S("/t/x")), "ENOENT"); /* others don't */
	no_ev(w);				     /* not yet */
	ok(rq(a, XS_TRANSACTION_END, t, S("T")));
	cr_assert_str_eq(ev(w), "/t/x w");
	val(rq(b, XS_READ, 0, S("/t/x")), "1");
	err(rq(a, XS_READ, t, S("/t/x")), "ENOENT"); /* t is gone */
	/* abort */
	t = tx_start(a);
	ok(rq(a, XS_WRITE, t, W("/t/x", "2")));
	ok(rq(a, XS_RM, t, S("/t")));
	err(rq(a, XS_READ, t, S("/t/x")), "ENOENT");
	ok(rq(a, XS_TRANSACTION_END, t, S("F")));
	val(rq(b, XS_READ, 0, S("/t/x")), "1");
	no_ev(w);
	/* conflict: something we read changed */
	t = tx_start(a);
	val(rq(a, XS_READ, t, S("/t/x")), "1");
	ok(rq(a, XS_WRITE, t, W("/t/y", "a")));
	ok(rq(b, XS_WRITE, 0, W("/t/x", "b")));
	cr_assert_str_eq(ev(w), "/t/x w");
	err(rq(a, XS_TRANSACTION_END, t, S("T")), "EAGAIN");
	err(rq(b, XS_READ, 0, S("/t/y")), "ENOENT");
	no_ev(w);
	/* conflict on a node created meanwhile */
	t = tx_start(a);
	err(rq(a, XS_READ, t, S("/t/new")), "ENOENT");
	ok(rq(b, XS_WRITE, 0, W("/t/new", "b")));
	cr_assert_str_eq(ev(w), "/t/new w");
	err(rq(a, XS_TRANSACTION_END, t, S("T")), "EAGAIN");
	/* no conflict: unrelated change */
	t = tx_start(a);
	val(rq(a, XS_READ, t, S("/t/x")), "b");
	ok(rq(a, XS_WRITE, t, W("/t/x", "c")));
	ok(rq(b, XS_WRITE, 0, W("/other", "z")));
	ok(rq(a, XS_TRANSACTION_END, t, S("T")));
	cr_assert_str_eq(ev(w), "/t/x w");
	val(rq(b, XS_READ, 0, S("/t/x")), "c");
	/* two at once on one connection, rm inside, perms inside */
	t = tx_start(a);
	t2 = tx_start(a);
	cr_assert_neq(t, t2);
	ok(rq(a, XS_RM, t, S("/t")));
	ok(rq(a, XS_MKDIR, t2, S("/other/v")));
	ok(rq(a, XS_SET_PERMS, t2, S("/other/v\0r3")));
	val(rq(a, XS_GET_PERMS, t2, S("/other/v")), "r3\0");
	ok(rq(a, XS_TRANSACTION_END, t2, S("T")));
	val(rq(b, XS_GET_PERMS, 0, S("/other/v")), "r3\0");
	ok(rq(a, XS_TRANSACTION_END, t, S("T")));
	cr_assert_str_eq(ev(w), "/t w");
	err(rq(b, XS_READ, 0, S("/t/x")), "ENOENT");
	err(rq(b, XS_READ, 0, S("/t")), "ENOENT");
	/* errors */
	err(rq(a, XS_READ, 4242, S("/u")), "ENOENT");
	err(rq(a, XS_TRANSACTION_END, 4242, S("T")), "ENOENT");
	err(rq(a, XS_TRANSACTION_END, 0, S("T")), "ENOENT");
	err(rq(a, XS_TRANSACTION_START, 7, S("")), "EBUSY");
	t = tx_start(a);
	err(rq(a, XS_TRANSACTION_END, t, S("X")), "EINVAL");
	ok(rq(a, XS_TRANSACTION_END, t, S("F")));
	/* a transaction left open is dropped with its connection */
	t = tx_start(b);
	ok(rq(b, XS_WRITE, t, W("/open", "1")));
	client_free(a);
	client_free(b);
	client_free(w);
}

Test(xenstore, quotas)
{
	struct xs_quota q = { .nodes_per_domain = 20, .node_size = 16,
			      .watches_per_conn = 3, .transactions_per_conn = 2 };
	struct client *d0, *g;
	char path[64];
	unsigned i;

	xs_store_free(store);
	cr_assert_eq(xs_store_new(&q, &store), 0);
	cr_assert_eq(xs_domain_create(store, 4, "q", 1), 0);
	d0 = client(0);
	g = client(4);
	/* node size */
	ok(rq(g, XS_WRITE, 0, W("data/v", "0123456789abcdef")));
	err(rq(g, XS_WRITE, 0, W("data/v", "0123456789abcdefX")), "ENOSPC");
	ok(rq(d0, XS_WRITE, 0, W("/local/domain/4/data/v", "0123456789abcdefX")));
	/* nodes: the guest owns data, control/shutdown... and data/v */
	for (i = 0; i < 40; i++) {
		struct msg m;

		snprintf(path, sizeof(path), "data/n%u", i);
		m = rq(g, XS_MKDIR, 0, path, strlen(path) + 1);
		if (m.h.type == XS_ERROR) {
			err(m, "ENOSPC");
			break;
		}
	}
	cr_assert_lt(i, 20);
	err(rq(g, XS_WRITE, 0, W("data/a/b/c", "1")), "ENOSPC");
	ok(rq(g, XS_RM, 0, S("data/n0")));
	ok(rq(g, XS_MKDIR, 0, S("data/again")));
	/* dom0 is not limited */
	ok(rq(d0, XS_MKDIR, 0, S("/local/domain/4/data/by0")));
	/* watches */
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "data%c%u", 0, i);
		ok(rq(g, XS_WATCH, 0, path, 7));
		ev(g);
	}
	err(rq(g, XS_WATCH, 0, "data\0" "9", 7), "E2BIG");
	/* transactions */
	tx_start(g);
	tx_start(g);
	err(rq(g, XS_TRANSACTION_START, 0, S("")), "ENOSPC");
	/* perms per node */
	err(rq(g, XS_SET_PERMS, 0, S("data\0n4\0r1\0r2\0r3\0r5\0r6")), "ENOSPC");
	/* a reply over the payload limit */
	for (i = 0; i < 40; i++) {
		char p[256];

		snprintf(p, sizeof(p), "/big/%0200u", i);
		ok(rq(d0, XS_MKDIR, 0, p, strlen(p) + 1));
	}
	err(rq(d0, XS_DIRECTORY, 0, S("/big")), "E2BIG");
	/* ...which DIRECTORY_PART serves in pieces */
	{
		unsigned off = 0, names = 0;

		for (;;) {
			char req[16];
			struct msg m;
			size_t o;

			snprintf(req, sizeof(req), "/big%c%u", 0, off);
			m = rq(d0, XS_DIRECTORY_PART, 0, req,
			       5 + strlen(req + 5) + 1);
			cr_assert_eq(m.h.type, XS_DIRECTORY_PART);
			o = strlen(m.p) + 1;
			if (m.p[o] == 0)
				break;
			while (o < m.h.len && m.p[o]) {
				off += (unsigned)strlen(m.p + o) + 1;
				o += strlen(m.p + o) + 1;
				names++;
			}
		}
		cr_assert_eq(names, 40);
	}
	client_free(d0);
	client_free(g);
}

/* A script of requests: fed whole and one byte at a time, the replies are
 * the same bytes. */
struct script_reply {
	uint8_t out[1 << 16];
	size_t len;
};

static int script_out(void *opaque, const void *msg, size_t len)
{
	struct script_reply *r = opaque;

	cr_assert_leq(r->len + len, sizeof(r->out));
	memcpy(r->out + r->len, msg, len);
	r->len += len;
	return 0;
}

static size_t put(uint8_t *buf, size_t off, uint32_t type, uint32_t tx,
		  const void *p, size_t len)
{
	struct xs_msg_hdr h = { type, (uint32_t)off, tx, (uint32_t)len };

	memcpy(buf + off, &h, sizeof(h));
	memcpy(buf + off + sizeof(h), p, len);
	return off + sizeof(h) + len;
}

static size_t script(uint8_t *b)
{
	size_t o = 0;

	o = put(b, o, XS_WATCH, 0, "/s\0t", 5);
	o = put(b, o, XS_WRITE, 0, W("/s/a", "1"));
	o = put(b, o, XS_READ, 0, S("/s/a"));
	o = put(b, o, XS_TRANSACTION_START, 0, S(""));
	o = put(b, o, XS_WRITE, 1, W("/s/b", "2"));
	o = put(b, o, XS_TRANSACTION_END, 1, S("T"));
	o = put(b, o, XS_DIRECTORY, 0, S("/s"));
	o = put(b, o, XS_READ, 0, S("/nope"));
	o = put(b, o, XS_RM, 0, S("/s"));
	o = put(b, o, XS_MKDIR, 0, "", 0);
	return o;
}

Test(xenstore, split_feed)
{
	static uint8_t req[4096];
	static struct script_reply whole, bytes;
	struct xs_conn *c;
	size_t n = script(req);

	cr_assert_eq(xs_conn_new(store, 0, script_out, &whole, &c), 0);
	cr_assert_eq(xs_conn_feed(c, req, n), 0);
	xs_conn_free(c);
	xs_store_free(store);
	cr_assert_eq(xs_store_new(NULL, &store), 0);
	cr_assert_eq(xs_conn_new(store, 0, script_out, &bytes, &c), 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(xs_conn_feed(c, req + i, 1), 0);
	xs_conn_free(c);
	cr_assert_gt(whole.len, 10 * sizeof(struct xs_msg_hdr));
	cr_assert_eq(whole.len, bytes.len);
	cr_assert(!memcmp(whole.out, bytes.out, whole.len));
}

Test(xenstore, oversize_length)
{
	struct client *d0 = client(0);
	struct xs_msg_hdr h = { XS_WRITE, 1, 0, XS_PAYLOAD_MAX + 1 };
	struct xs_msg_hdr huge = { XS_WRITE, 1, 0, 0xffffffffu };
	static char big[XS_PAYLOAD_MAX + 1];
	struct client *d1 = client(0);

	/* refused from the header alone: nothing else sent */
	cr_assert_eq(xs_conn_feed(d0->c, &h, sizeof(h)), -E2BIG);
	cr_assert_eq(d0->len, 0);
	cr_assert_eq(xs_conn_feed(d0->c, "x", 1), -EPIPE);
	cr_assert_eq(xs_conn_feed(d1->c, &huge, sizeof(huge)), -E2BIG);
	client_free(d1);
	/* exactly the limit is fine */
	d1 = client(0);
	memcpy(big, "/v", 3);
	memset(big + 3, 'x', XS_PAYLOAD_MAX - 3);
	ok(rq(d1, XS_WRITE, 0, big, XS_PAYLOAD_MAX));
	cr_assert_eq(rq(d1, XS_READ, 0, S("/v")).h.len, XS_PAYLOAD_MAX - 3);
	client_free(d1);
	client_free(d0);
}

/* The stream's form (SPEC 6.1): pairs, the receiver's name and domid kept,
 * guest-owned areas still the guest's after the import. */
Test(xenstore, export_import_pairs)
{
	char *a, *v;
	size_t alen, len;

	cr_assert_eq(xs_domain_create(store, 5, "vm5", 4096), 0);
	cr_assert_eq(xs_domain_create(store, 8, "vm5--incoming", 4096), 0);
	cr_assert_eq(xs_write(store, "/local/domain/5/data/peer", "12", 2), 0);
	cr_assert_eq(xs_write(store, "/local/domain/5/data/bin", "a\0b", 3), 0);
	cr_assert_eq(xs_write(store, "/local/domain/5/memory/target", "2048", 4), 0);
	cr_assert_eq(xs_export_pairs(store, 5, &a, &alen), 0);
	cr_assert(memmem(a, alen, "data/peer\00012\0", 13));
	cr_assert(memmem(a, alen, "name\0vm5\0", 9));
	cr_assert_null(memmem(a, alen, "data/bin", 8), "a value with NUL was written");
	cr_assert_eq(xs_import_pairs(store, 8, a, alen), 0);
	cr_assert_eq(xs_read(store, "/local/domain/8/data/peer", &v, &len), 0);
	cr_assert(len == 2 && !memcmp(v, "12", 2));
	free(v);
	cr_assert_eq(xs_read(store, "/local/domain/8/memory/target", &v, &len), 0);
	cr_assert(len == 4 && !memcmp(v, "2048", 4));
	free(v);
	cr_assert_eq(xs_read(store, "/local/domain/8/name", &v, &len), 0);
	cr_assert(len == 13 && !memcmp(v, "vm5--incoming", 13), "the name was overwritten");
	free(v);
	cr_assert_eq(xs_read(store, "/local/domain/8/domid", &v, &len), 0);
	cr_assert(len == 1 && v[0] == '8');
	free(v);
	{
		struct client *g8 = client(8);

		ok(rq(g8, XS_WRITE, 0, W("data/peer", "13")));
		client_free(g8);
	}
	/* malformed: refused whole */
	cr_assert_eq(xs_import_pairs(store, 8, "data/x\0", 7), -EINVAL);
	cr_assert_eq(xs_import_pairs(store, 8, "/abs\0v\0", 7), -EINVAL);
	cr_assert_eq(xs_import_pairs(store, 8, "\0v\0", 3), -EINVAL);
	cr_assert_eq(xs_import_pairs(store, 8, "a//b\0v\0", 7), -EINVAL);
	cr_assert_eq(xs_import_pairs(store, 8, "data/y\0v", 8), -EINVAL);
	cr_assert_eq(xs_import_pairs(store, 0, a, alen), -EINVAL);
	free(a);
}

/* A hostile EMULATOR_XENSTORE_DATA body: the error names the pair (index
 * and byte), its key (sanitised, cut) and why; nothing is written. */
Test(xenstore, import_pairs_errors_name_the_pair)
{
	static const struct {
		const char *buf;
		size_t len;
		const char *why;
	} bad[] = {
#define B(s, why) {s, sizeof(s) - 1, why}
		B("a\0"
		  "1\0"
		  "data/x",
		  "pair 1 at byte 4 of the pairs (key 'data/x'): "
		  "the key is not NUL-terminated"),
		B("a\0"
		  "1\0"
		  "data/x\0",
		  "pair 1 at byte 4 of the pairs (key 'data/x'): "
		  "no value follows the key"),
		B("a\0"
		  "1\0"
		  "data/y\0v",
		  "pair 1 at byte 4 of the pairs (key 'data/y'): "
		  "the value is not NUL-terminated"),
		B("\0v\0", "pair 0 at byte 0 of the pairs (key ''): the key is empty"),
		B("/abs\0v\0", "pair 0 at byte 0 of the pairs (key '/abs'): the key is absolute "
			       "(keys are relative to the domain's path)"),
		B("@introduceDomain\0v\0",
		  "pair 0 at byte 0 of the pairs (key '@introduceDomain'): "
		  "the key is a special path ('@...'), not a node"),
		B("a//b\0v\0", "pair 0 at byte 0 of the pairs (key 'a//b'): "
			       "the key has an empty component ('//')"),
		B("a/b/\0v\0", "pair 0 at byte 0 of the pairs (key 'a/b/'): the key ends in '/'"),
		B("ok\0"
		  "1\0"
		  "da\x01ta'\\\xff\0v\0",
		  "pair 1 at byte 5 of the pairs (key 'da\\x01ta\\x27\\x5c\\xff'): "
		  "key byte 2 (0x01) is not one xenstore allows (A-Z a-z 0-9 - / _ @)"),
		B("data/a b\0v\0", "pair 0 at byte 0 of the pairs (key 'data/a b'): key byte 6 "
				   "(0x20) is not one xenstore allows (A-Z a-z 0-9 - / _ @)"),
#undef B
	};
	static char buf[XS_REL_PATH_MAX + XS_PAYLOAD_MAX + 16];
	char why[XS_PAIRS_WHY_MAX], *v;
	size_t vlen;

	cr_assert_eq(xs_domain_create(store, 9, "vm9", 4096), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = 0;
		cr_expect_eq(xs_check_pairs(bad[i].buf, bad[i].len, why, sizeof(why)), -EINVAL,
			     "case %zu", i);
		cr_expect_str_eq(why, bad[i].why, "case %zu", i);
		cr_expect_eq(xs_import_pairs(store, 9, bad[i].buf, bad[i].len), -EINVAL);
	}
	/* Checked in full first: the good pair before a bad one is not written. */
	cr_expect_eq(xs_read(store, "/local/domain/9/a", &v, &vlen), -ENOENT);

	/* A long key is cut after 40 bytes in the message. */
	memset(buf, 'k', XS_REL_PATH_MAX + 1);
	memcpy(buf + XS_REL_PATH_MAX + 1, "\0v\0", 3);
	cr_expect_eq(xs_check_pairs(buf, XS_REL_PATH_MAX + 4, why, sizeof(why)), -EINVAL);
	cr_expect_str_eq(why, "pair 0 at byte 0 of the pairs (key "
			      "'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'): "
			      "the key is 2049 bytes, over xenstore's 2048 for a relative path");
	/* The same at the limit is fine; a value over the payload limit is not. */
	memcpy(buf + XS_REL_PATH_MAX, "\0v\0", 3);
	cr_expect_eq(xs_check_pairs(buf, XS_REL_PATH_MAX + 3, why, sizeof(why)), 0);
	memcpy(buf, "big\0", 4);
	memset(buf + 4, 'x', XS_PAYLOAD_MAX + 1);
	buf[4 + XS_PAYLOAD_MAX + 1] = 0;
	cr_expect_eq(xs_check_pairs(buf, XS_PAYLOAD_MAX + 6, why, sizeof(why)), -EINVAL);
	cr_expect_str_eq(why, "pair 0 at byte 0 of the pairs (key 'big'): "
			      "the value is 4097 bytes, over xenstore's 4096");
	/* A worst-case key still fits the message buffer. */
	memset(buf, 0x80, 100);
	memcpy(buf + 100, "\0v\0", 3);
	cr_expect_eq(xs_check_pairs(buf, 103, why, sizeof(why)), -EINVAL);
	cr_expect(strstr(why, "\\x80...'): key byte 0 (0x80)"), "%s", why);
	cr_expect_eq(xs_check_pairs("", 0, why, sizeof(why)), 0, "no pairs is fine");
	cr_expect_eq(xs_import_pairs(store, 0, "a\0b\0", 4), -EINVAL, "dom0 is not a guest");
	xs_domain_release(store, 9);
}
