// SPDX-License-Identifier: MIT
/* Control protocol: framing, request parsing, replies, the server side. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "toolstack/proto.h"

struct lines {
	char *v[16];
	int n;
};

static int collect(void *opaque, char *line, size_t len)
{
	struct lines *l = opaque;

	cr_assert_eq(strlen(line), len);
	cr_assert_lt(l->n, 16);
	l->v[l->n++] = strdup(line);
	return 0;
}

static void lines_free(struct lines *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

Test(xlm_framer, partial_lines_byte_by_byte)
{
	static const char in[] = "{\"a\":1}\n\n{\"b\":\"x y\"}\npartial";
	struct xlm_framer f;
	struct lines l = { 0 };

	xlm_framer_init(&f, 64);
	for (size_t i = 0; i < strlen(in); i++)
		cr_assert_eq(xlm_framer_feed(&f, in + i, 1, collect, &l), 0);
	cr_assert_eq(l.n, 3);
	cr_expect_str_eq(l.v[0], "{\"a\":1}");
	cr_expect_str_eq(l.v[1], "");
	cr_expect_str_eq(l.v[2], "{\"b\":\"x y\"}");
	cr_assert_eq(xlm_framer_feed(&f, "\n", 1, collect, &l), 0);
	cr_assert_eq(l.n, 4);
	cr_expect_str_eq(l.v[3], "partial");
	lines_free(&l);
	xlm_framer_fini(&f);
}

Test(xlm_framer, many_lines_in_one_chunk)
{
	struct xlm_framer f;
	struct lines l = { 0 };

	xlm_framer_init(&f, 64);
	cr_assert_eq(xlm_framer_feed(&f, "a\nbb\nccc\n", 9, collect, &l), 0);
	cr_assert_eq(l.n, 3);
	cr_expect_str_eq(l.v[2], "ccc");
	lines_free(&l);
	xlm_framer_fini(&f);
}

Test(xlm_framer, oversize_line_refused)
{
	struct xlm_framer f;
	struct lines l = { 0 };
	char big[100];

	memset(big, 'x', sizeof(big));
	xlm_framer_init(&f, 64);
	/* Exactly max bytes is fine, one more is not, even fed in pieces. */
	cr_assert_eq(xlm_framer_feed(&f, big, 64, collect, &l), 0);
	cr_assert_eq(xlm_framer_feed(&f, "\n", 1, collect, &l), 0);
	cr_assert_eq(l.n, 1);
	cr_assert_eq(xlm_framer_feed(&f, big, 40, collect, &l), 0);
	cr_assert_eq(xlm_framer_feed(&f, big, 25, collect, &l), -EMSGSIZE);
	lines_free(&l);
	xlm_framer_fini(&f);
}

Test(xlm_req, parses_a_request)
{
	struct xlm_req req;
	char err[128];

	cr_assert_eq(xlm_req_parse("{\"id\":7,\"op\":\"pause\",\"args\":{\"domain\":\"vm1\"}}",
				   &req, err, sizeof(err)), 0, "%s", err);
	cr_expect(req.has_id);
	cr_expect_eq(req.id, 7);
	cr_expect_str_eq(req.op, "pause");
	cr_expect_str_eq(xlm_args_str(&req, "domain"), "vm1");
	cr_expect_null(xlm_args_str(&req, "other"));
	cr_expect(!xlm_args_bool(&req, "wait"));
	xlm_req_free(&req);
}

Test(xlm_req, rejects_bad_requests)
{
	static const struct {
		const char *line, *err;
		bool has_id;
	} cases[] = {
		{ "[1,2]", "expected a JSON object", false },
		{ "{\"id\":3}", "expected a string \"op\"", true },
		{ "{\"id\":\"x\",\"op\":\"list\"}", "expected an integer \"id\"", false },
		{ "{\"id\":4,\"op\":\"list\",\"args\":[]}", "expected an object \"args\"", true },
		{ "{\"id\":5,\"op\":\"snapshot-create\",\"args\":{\"name\":\"a\\u0000b\"}}",
		  "a string holds \\u0000 (a NUL byte), which no name, path or value may hold", true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xlm_req req;
		char err[128];

		cr_expect_eq(xlm_req_parse(cases[i].line, &req, err, sizeof(err)), -FERRY_EPROTO);
		cr_expect_str_eq(err, cases[i].err, "case %zu", i);
		cr_expect_eq(req.has_id, cases[i].has_id, "case %zu", i);
	}
}

/* ---- server side through struct xlm_proto ------------------------------ */

struct conn {
	struct xlm_proto p;
	char out[8192];
	size_t outlen;
	int requests;
	char last_op[32];
	long long last_id;
};

static void conn_send(void *opaque, char *buf, size_t len)
{
	struct conn *c = opaque;

	cr_assert_lt(c->outlen + len, sizeof(c->out));
	memcpy(c->out + c->outlen, buf, len);
	c->outlen += len;
	c->out[c->outlen] = 0;
	free(buf);
}

static void conn_request(void *opaque, const struct xlm_req *req)
{
	struct conn *c = opaque;
	yajl_gen g;
	char *buf;
	size_t len;

	c->requests++;
	snprintf(c->last_op, sizeof(c->last_op), "%s", req->op);
	c->last_id = req->id;
	g = xlm_reply_begin(req->id, req->has_id);
	cr_assert_not_null(g);
	cr_assert_eq(xlm_gen_map_open(g) ?: xlm_gen_kv_str(g, "echo", req->op) ?:
		     xlm_gen_map_close(g), 0);
	cr_assert_eq(xlm_gen_finish(g, &buf, &len), 0);
	c->p.send(c->p.opaque, buf, len);
}

static void conn_init(struct conn *c, size_t max)
{
	memset(c, 0, sizeof(*c));
	xlm_proto_init(&c->p, max, conn_request, conn_send, c);
}

/* Parses the n-th line the server sent. */
static yajl_val sent_line(struct conn *c, int n)
{
	char *p = c->out, *nl, line[4096], err[128];
	yajl_val v;

	for (; n > 0; n--) {
		p = strchr(p, '\n');
		cr_assert_not_null(p, "fewer lines than expected: %s", c->out);
		p++;
	}
	nl = strchr(p, '\n');
	cr_assert_not_null(nl, "no line %d in: %s", n, c->out);
	memcpy(line, p, (size_t)(nl - p));
	line[nl - p] = 0;
	v = yajl_tree_parse(line, err, sizeof(err));
	cr_assert_not_null(v, "server sent invalid JSON '%s': %s", line, err);
	return v;
}

Test(xlm_proto, request_fed_byte_by_byte)
{
	static const char in[] = "{\"id\":12,\"op\":\"list\",\"args\":{}}\n";
	struct conn c;
	yajl_val r;
	long long id;

	conn_init(&c, XLM_LINE_MAX);
	for (size_t i = 0; i < strlen(in); i++) {
		cr_assert_eq(c.requests, 0, "dispatched before the newline");
		cr_assert_eq(xlm_proto_feed(&c.p, in + i, 1), 0);
	}
	cr_assert_eq(c.requests, 1);
	cr_expect_str_eq(c.last_op, "list");
	r = sent_line(&c, 0);
	cr_expect(xlm_json_int(r, "id", &id) && id == 12);
	yajl_tree_free(r);
	xlm_proto_fini(&c.p);
}

Test(xlm_proto, malformed_json_gets_an_error_reply_and_the_connection_goes_on)
{
	struct conn c;
	yajl_val r;
	const char *path_ok[] = { "ok", NULL }, *path_id[] = { "id", NULL };
	long long en, id;
	const char *in = "{\"id\":1,\"op\":\n"        /* truncated JSON */
			 "not json at all\n"
			 "{\"id\":5}\n"                   /* no op */
			 "{\"id\":6,\"op\":\"version\"}\n"; /* fine */

	conn_init(&c, XLM_LINE_MAX);
	cr_assert_eq(xlm_proto_feed(&c.p, in, strlen(in)), 0);
	cr_assert_eq(c.requests, 1, "only the good request is dispatched");

	r = sent_line(&c, 0);
	cr_expect(YAJL_IS_FALSE(yajl_tree_get(r, path_ok, yajl_t_any)));
	cr_expect(YAJL_IS_NULL(yajl_tree_get(r, path_id, yajl_t_any)), "id unknown: null");
	cr_expect(strstr(xlm_json_str(r, "error"), "malformed JSON") != NULL, "%s",
		  xlm_json_str(r, "error"));
	cr_expect(xlm_json_int(r, "errno", &en) && en == FERRY_EPROTO);
	yajl_tree_free(r);

	r = sent_line(&c, 1);
	cr_expect(strstr(xlm_json_str(r, "error"), "malformed JSON") != NULL);
	yajl_tree_free(r);

	r = sent_line(&c, 2);
	cr_expect(xlm_json_int(r, "id", &id) && id == 5, "the id survives a bad request");
	cr_expect_str_eq(xlm_json_str(r, "error"), "expected a string \"op\"");
	yajl_tree_free(r);

	r = sent_line(&c, 3);
	cr_expect(YAJL_IS_TRUE(yajl_tree_get(r, path_ok, yajl_t_any)));
	cr_expect(xlm_json_int(r, "id", &id) && id == 6);
	yajl_tree_free(r);
	xlm_proto_fini(&c.p);
}

Test(xlm_proto, oversize_request_refused)
{
	struct conn c;
	char *big = malloc(XLM_LINE_MAX + 10);
	long long en;
	yajl_val r;

	memset(big, ' ', XLM_LINE_MAX + 10);
	conn_init(&c, XLM_LINE_MAX);
	cr_assert_eq(xlm_proto_feed(&c.p, "{\"id\":1,", 8), 0);
	cr_assert_eq(xlm_proto_feed(&c.p, big, XLM_LINE_MAX + 10), -EMSGSIZE);
	cr_expect_eq(c.requests, 0);
	r = sent_line(&c, 0);
	cr_expect(xlm_json_int(r, "errno", &en) && en == EMSGSIZE);
	cr_expect(strstr(xlm_json_str(r, "error"), "longer than") != NULL);
	yajl_tree_free(r);
	free(big);
	xlm_proto_fini(&c.p);
}

Test(xlm_proto, nul_byte_in_request_refused)
{
	struct conn c;
	yajl_val r;

	conn_init(&c, 1024);
	cr_assert_eq(xlm_proto_feed(&c.p, "{\"id\":1,\0\"op\":\"x\"}\n", 19), 0);
	cr_expect_eq(c.requests, 0);
	r = sent_line(&c, 0);
	cr_expect(strstr(xlm_json_str(r, "error"), "NUL") != NULL);
	yajl_tree_free(r);
	xlm_proto_fini(&c.p);
}

Test(xlm_gen, messages_are_single_json_lines)
{
	char *buf, err[128];
	size_t len;
	yajl_gen g;
	yajl_val v;
	long long n;

	g = xlm_event_begin("console");
	cr_assert_eq(xlm_gen_kv_int(g, "domid", 3) ?: xlm_gen_kv_str(g, "data", "a\nb\"c\x01"), 0);
	cr_assert_eq(xlm_gen_finish(g, &buf, &len), 0);
	cr_expect_eq(buf[len - 1], '\n');
	cr_expect_eq(memchr(buf, '\n', len - 1), NULL, "one line: %s", buf);
	v = yajl_tree_parse(buf, err, sizeof(err));
	cr_assert_not_null(v, "%s", err);
	cr_expect_str_eq(xlm_json_str(v, "event"), "console");
	cr_expect_str_eq(xlm_json_str(v, "data"), "a\nb\"c\x01");
	cr_expect(xlm_json_int(v, "domid", &n) && n == 3);
	yajl_tree_free(v);
	free(buf);

	cr_assert_eq(xlm_reply_error(9, true, -ENOENT, "domain 'x' does not exist", &buf, &len), 0);
	cr_expect_str_eq(buf, "{\"id\":9,\"ok\":false,\"error\":\"domain 'x' does not exist\",\"errno\":2}\n");
	free(buf);
}

Test(xlm_gen, tree_round_trip)
{
	static const char in[] = "{\"a\":[1,2.5,\"s\",true,false,null,{}],\"b\":{\"c\":-3}}";
	const unsigned char *out;
	char err[128];
	size_t len;
	yajl_val v = yajl_tree_parse(in, err, sizeof(err));
	yajl_gen g = yajl_gen_alloc(NULL);

	cr_assert_not_null(v);
	cr_assert_eq(xlm_gen_tree(g, v), 0);
	yajl_gen_get_buf(g, &out, &len);
	cr_expect_eq(len, strlen(in));
	cr_expect_eq(memcmp(out, in, len), 0, "%.*s", (int)len, out);
	yajl_gen_free(g);
	yajl_tree_free(v);
}
