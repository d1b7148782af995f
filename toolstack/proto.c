// SPDX-License-Identifier: MIT
/*
 * Control protocol helpers: line framing, request parsing, reply and event
 * generation, and the sans-I/O server side of one connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "toolstack/proto.h"

/* ---- framing ------------------------------------------------------------ */

void xlm_framer_init(struct xlm_framer *f, size_t max)
{
	memset(f, 0, sizeof(*f));
	f->max = max;
}

void xlm_framer_fini(struct xlm_framer *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

static int framer_append(struct xlm_framer *f, const char *data, size_t len)
{
	if (f->len + len + 1 > f->cap) {
		size_t cap = f->cap ? f->cap : 256;
		char *b;

		while (cap < f->len + len + 1)
			cap *= 2;
		b = realloc(f->buf, cap);
		if (!b)
			return -ENOMEM;
		f->buf = b;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, data, len);
	f->len += len;
	return 0;
}

int xlm_framer_feed(struct xlm_framer *f, const char *data, size_t len,
		    xlm_line_fn fn, void *opaque)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		int rc;

		if (f->len + take > f->max) {
			f->len = 0;
			return -EMSGSIZE;
		}
		rc = framer_append(f, data, take);
		if (rc)
			return rc;
		if (!nl)
			return 0;
		data += take + 1;
		len -= take + 1;
		f->buf[f->len] = 0;
		take = f->len;
		f->len = 0;
		rc = fn(opaque, f->buf, take);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- parsing ------------------------------------------------------------ */

/*
 * yajl_tree_free() (and xlm_gen_tree) recurse once per level, so a line of
 * XLM_LINE_MAX brackets would overflow the stack. Requests nest a few deep.
 */
#define REQ_DEPTH_MAX 64

/* Whether line's arrays and objects nest at most REQ_DEPTH_MAX deep: a
 * lexer of strings and comments (yajl_tree_parse allows them) and brackets.
 * *nul: a string holds the escape \u0000, which the parsed tree's C strings
 * would silently cut short ("a\u0000b" read as "a"). */
static bool req_depth_ok(const char *p, bool *nul)
{
	unsigned depth = 0;

	while (*p) {
		switch (*p++) {
		case '[':
		case '{':
			if (++depth > REQ_DEPTH_MAX)
				return false;
			break;
		case ']':
		case '}':
			if (depth)
				depth--;
			break;
		case '"':
			while (*p && *p != '"') {
				if (!strncmp(p, "\\u0000", 6))
					*nul = true;
				p += p[0] == '\\' && p[1] ? 2 : 1;
			}
			if (*p)
				p++;
			break;
		case '/':
			if (*p == '*') {
				const char *e = strstr(p + 1, "*/");

				p = e ? e + 2 : p + strlen(p);
			} else if (*p == '/') {
				p += strcspn(p, "\n");
			}
			break;
		default:
			break;
		}
	}
	return true;
}

int xlm_req_parse(const char *line, struct xlm_req *req, char *err, size_t errlen)
{
	static const char *id_path[] = { "id", NULL };
	static const char *op_path[] = { "op", NULL };
	static const char *args_path[] = { "args", NULL };
	char perr[256];
	yajl_val root, v;
	bool nul = false;

	memset(req, 0, sizeof(*req));
	if (!req_depth_ok(line, &nul)) {
		snprintf(err, errlen, "malformed JSON: nested more than %d deep", REQ_DEPTH_MAX);
		return -FERRY_EPROTO;
	}
	root = yajl_tree_parse(line, perr, sizeof(perr));
	if (!root) {
		/* yajl's message spans lines; the first one says it. */
		perr[strcspn(perr, "\n")] = 0;
		snprintf(err, errlen, "malformed JSON: %s", perr[0] ? perr : "parse error");
		return -FERRY_EPROTO;
	}
	if (!YAJL_IS_OBJECT(root)) {
		snprintf(err, errlen, "expected a JSON object");
		goto err_free;
	}
	v = yajl_tree_get(root, id_path, yajl_t_any);
	if (YAJL_IS_INTEGER(v)) {
		req->id = v->u.number.i;
		req->has_id = true;
	} else if (v && !YAJL_IS_NULL(v)) {
		snprintf(err, errlen, "expected an integer \"id\"");
		goto err_free;
	}
	v = yajl_tree_get(root, op_path, yajl_t_any);
	if (!YAJL_IS_STRING(v)) {
		snprintf(err, errlen, "expected a string \"op\"");
		goto err_free;
	}
	if (nul) {
		snprintf(err, errlen, "a string holds \\u0000 (a NUL byte), which no name, path "
				      "or value may hold");
		goto err_free;
	}
	req->op = v->u.string;
	v = yajl_tree_get(root, args_path, yajl_t_any);
	if (v && !YAJL_IS_OBJECT(v) && !YAJL_IS_NULL(v)) {
		snprintf(err, errlen, "expected an object \"args\"");
		goto err_free;
	}
	req->args = YAJL_IS_OBJECT(v) ? v : NULL;
	req->root = root;
	return 0;

err_free:
	yajl_tree_free(root);
	req->op = NULL;
	return -FERRY_EPROTO;
}

void xlm_req_free(struct xlm_req *req)
{
	yajl_tree_free(req->root);
	memset(req, 0, sizeof(*req));
}

const char *xlm_json_str(yajl_val obj, const char *key)
{
	const char *path[] = { key, NULL };

	return YAJL_GET_STRING(yajl_tree_get(obj, path, yajl_t_any));
}

bool xlm_json_int(yajl_val obj, const char *key, long long *out)
{
	const char *path[] = { key, NULL };
	yajl_val v = yajl_tree_get(obj, path, yajl_t_any);

	if (!YAJL_IS_INTEGER(v))
		return false;
	*out = v->u.number.i;
	return true;
}

double xlm_json_double(yajl_val obj, const char *key)
{
	const char *path[] = { key, NULL };
	yajl_val v = yajl_tree_get(obj, path, yajl_t_any);

	return YAJL_IS_DOUBLE(v) ? v->u.number.d : 0.0;
}

const char *xlm_args_str(const struct xlm_req *req, const char *key)
{
	return req->args ? xlm_json_str(req->args, key) : NULL;
}

bool xlm_args_bool(const struct xlm_req *req, const char *key)
{
	const char *path[] = { key, NULL };

	return req->args && YAJL_IS_TRUE(yajl_tree_get(req->args, path, yajl_t_any));
}

bool xlm_args_int(const struct xlm_req *req, const char *key, long long *out)
{
	return req->args && xlm_json_int(req->args, key, out);
}

/* ---- generation --------------------------------------------------------- */

#define GEN_OK(expr) ((expr) == yajl_gen_status_ok ? 0 : -EINVAL)

int xlm_gen_strn(yajl_gen g, const char *s, size_t len)
{
	return GEN_OK(yajl_gen_string(g, (const unsigned char *)s, len));
}

int xlm_gen_str(yajl_gen g, const char *s)
{
	return xlm_gen_strn(g, s, strlen(s));
}

int xlm_gen_kv_str(yajl_gen g, const char *key, const char *val)
{
	return xlm_gen_str(g, key) ?: xlm_gen_str(g, val);
}

int xlm_gen_kv_int(yajl_gen g, const char *key, long long val)
{
	return xlm_gen_str(g, key) ?: GEN_OK(yajl_gen_integer(g, val));
}

int xlm_gen_kv_bool(yajl_gen g, const char *key, bool val)
{
	return xlm_gen_str(g, key) ?: GEN_OK(yajl_gen_bool(g, val));
}

int xlm_gen_kv_double(yajl_gen g, const char *key, double val)
{
	return xlm_gen_str(g, key) ?: GEN_OK(yajl_gen_double(g, val));
}

int xlm_gen_map_open(yajl_gen g)
{
	return GEN_OK(yajl_gen_map_open(g));
}

int xlm_gen_map_close(yajl_gen g)
{
	return GEN_OK(yajl_gen_map_close(g));
}

int xlm_gen_array_open(yajl_gen g)
{
	return GEN_OK(yajl_gen_array_open(g));
}

int xlm_gen_array_close(yajl_gen g)
{
	return GEN_OK(yajl_gen_array_close(g));
}

int xlm_gen_tree(yajl_gen g, yajl_val v)
{
	int rc = 0;

	if (!v)
		return GEN_OK(yajl_gen_null(g));
	switch (v->type) {
	case yajl_t_string:
		return xlm_gen_str(g, v->u.string);
	case yajl_t_number:
		/* r is the number's original text: forwards it unchanged. */
		return GEN_OK(yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r)));
	case yajl_t_object:
		rc = GEN_OK(yajl_gen_map_open(g));
		for (size_t i = 0; !rc && i < v->u.object.len; i++)
			rc = xlm_gen_str(g, v->u.object.keys[i]) ?:
			     xlm_gen_tree(g, v->u.object.values[i]);
		return rc ?: GEN_OK(yajl_gen_map_close(g));
	case yajl_t_array:
		rc = GEN_OK(yajl_gen_array_open(g));
		for (size_t i = 0; !rc && i < v->u.array.len; i++)
			rc = xlm_gen_tree(g, v->u.array.values[i]);
		return rc ?: GEN_OK(yajl_gen_array_close(g));
	case yajl_t_true:
		return GEN_OK(yajl_gen_bool(g, 1));
	case yajl_t_false:
		return GEN_OK(yajl_gen_bool(g, 0));
	default:
		return GEN_OK(yajl_gen_null(g));
	}
}

static int gen_id(yajl_gen g, long long id, bool has_id)
{
	return xlm_gen_str(g, "id") ?:
	       (has_id ? GEN_OK(yajl_gen_integer(g, id)) : GEN_OK(yajl_gen_null(g)));
}

static yajl_gen gen_new(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);

	if (g && GEN_OK(yajl_gen_map_open(g))) {
		yajl_gen_free(g);
		return NULL;
	}
	return g;
}

static yajl_gen gen_or_free(yajl_gen g, int rc)
{
	if (rc) {
		yajl_gen_free(g);
		return NULL;
	}
	return g;
}

yajl_gen xlm_reply_begin(long long id, bool has_id)
{
	yajl_gen g = gen_new();

	if (!g)
		return NULL;
	return gen_or_free(g, gen_id(g, id, has_id) ?: xlm_gen_kv_bool(g, "ok", true) ?:
			      xlm_gen_str(g, "result"));
}

yajl_gen xlm_event_begin(const char *event)
{
	yajl_gen g = gen_new();

	if (!g)
		return NULL;
	return gen_or_free(g, xlm_gen_kv_str(g, "event", event));
}

yajl_gen xlm_request_begin(long long id, const char *op)
{
	yajl_gen g = gen_new();

	if (!g)
		return NULL;
	return gen_or_free(g, xlm_gen_kv_int(g, "id", id) ?: xlm_gen_kv_str(g, "op", op) ?:
			      xlm_gen_str(g, "args"));
}

int xlm_gen_finish(yajl_gen g, char **out, size_t *len)
{
	const unsigned char *buf;
	size_t n;
	int rc;

	if (!g)
		return -ENOMEM;
	rc = GEN_OK(yajl_gen_map_close(g));
	if (!rc && yajl_gen_get_buf(g, &buf, &n) != yajl_gen_status_ok)
		rc = -EINVAL;
	if (!rc) {
		*out = malloc(n + 2);
		if (*out) {
			memcpy(*out, buf, n);
			(*out)[n] = '\n';
			(*out)[n + 1] = 0;
			*len = n + 1;
		} else {
			rc = -ENOMEM;
		}
	}
	yajl_gen_free(g);
	return rc;
}

int xlm_reply_error(long long id, bool has_id, int err, const char *msg, char **out,
		    size_t *len)
{
	yajl_gen g = gen_new();
	int rc;

	if (!g)
		return -ENOMEM;
	rc = gen_id(g, id, has_id) ?: xlm_gen_kv_bool(g, "ok", false) ?:
	     xlm_gen_kv_str(g, "error", msg) ?: xlm_gen_kv_int(g, "errno", err < 0 ? -err : err);
	if (rc) {
		yajl_gen_free(g);
		return rc;
	}
	return xlm_gen_finish(g, out, len);
}

/* ---- server side -------------------------------------------------------- */

void xlm_proto_init(struct xlm_proto *p, size_t max, xlm_proto_request_fn on_request,
		    xlm_proto_send_fn send, void *opaque)
{
	xlm_framer_init(&p->fr, max);
	p->on_request = on_request;
	p->send = send;
	p->opaque = opaque;
}

void xlm_proto_fini(struct xlm_proto *p)
{
	xlm_framer_fini(&p->fr);
}

static void proto_send_error(struct xlm_proto *p, long long id, bool has_id, int err,
			     const char *msg)
{
	char *buf;
	size_t len;

	if (!xlm_reply_error(id, has_id, err, msg, &buf, &len))
		p->send(p->opaque, buf, len);
}

static int proto_line(void *opaque, char *line, size_t len)
{
	struct xlm_proto *p = opaque;
	struct xlm_req req;
	char err[XLM_ERR_MAX];

	if (strspn(line, " \t\r") == len)
		return 0; /* blank lines are keep-alives */
	if (strlen(line) != len) {
		proto_send_error(p, 0, false, -FERRY_EPROTO, "malformed JSON: NUL byte in request");
		return 0;
	}
	if (xlm_req_parse(line, &req, err, sizeof(err))) {
		proto_send_error(p, req.id, req.has_id, -FERRY_EPROTO, err);
		return 0;
	}
	p->on_request(p->opaque, &req);
	xlm_req_free(&req);
	return 0;
}

int xlm_proto_feed(struct xlm_proto *p, const char *data, size_t len)
{
	int rc = xlm_framer_feed(&p->fr, data, len, proto_line, p);

	if (rc == -EMSGSIZE) {
		char msg[96];

		snprintf(msg, sizeof(msg), "request longer than %zu bytes; closing the connection",
			 p->fr.max);
		proto_send_error(p, 0, false, -EMSGSIZE, msg);
	}
	return rc;
}
