// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the control protocol as ferryd applies it to a client's
 * bytes. Input: one control byte, then the stream.
 *
 * The control byte chooses how the stream is cut into reads (all at once,
 * byte by byte, or pseudo-random sizes) and the line limit (small ones so
 * oversize lines are reachable; high bit set: ferryd's XLM_LINE_MAX).
 *
 *  1. xlm_framer_feed against a model of the stream: every line handed
 *     out must be exactly the next '\n'-delimited line, NUL-terminated and
 *     at most max bytes; -EMSGSIZE exactly when a line outgrows max.
 *  2. xlm_proto_feed (framer + xlm_req_parse + error replies), with a
 *     request handler that does what ferryd's do with a request (args
 *     lookups, the create config, echoing a tree in a reply); every line
 *     sent back must be one well-formed JSON object.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "toolstack/config.h"
#include "toolstack/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

struct chunker {
	const char *p;
	size_t left;
	unsigned mode;
	uint32_t rng;
};

static size_t next_chunk(struct chunker *ch)
{
	size_t n;

	switch (ch->mode) {
	case 0:
		n = ch->left;
		break;
	case 1:
		n = 1;
		break;
	default:
		ch->rng = ch->rng * 1103515245u + 12345u;
		n = 1 + (ch->rng >> 16) % (2u << ch->mode);
		break;
	}
	return n < ch->left ? n : ch->left;
}

static void chunker_init(struct chunker *ch, const uint8_t *data, size_t len, uint8_t ctl)
{
	ch->p = (const char *)data;
	ch->left = len;
	ch->mode = ctl & 7;
	ch->rng = ctl * 2654435761u;
}

/* ---- 1. the framer against a model -------------------------------------- */

struct model {
	const char *s, *end; /* the whole stream */
	const char *line;    /* start of the next line to be handed out */
	size_t max;
};

static int model_line(void *opaque, char *line, size_t len)
{
	struct model *m = opaque;
	const char *nl = memchr(m->line, '\n', (size_t)(m->end - m->line));

	if (!nl || (size_t)(nl - m->line) != len || memcmp(line, m->line, len) ||
	    line[len] != 0 || len > m->max) {
		fprintf(stderr, "fuzz-proto: framer handed out the wrong line (len %zu)\n", len);
		abort();
	}
	memset(line, 'x', len); /* the callback may modify it */
	m->line = nl + 1;
	return 0;
}

static void check_framer(const uint8_t *data, size_t len, uint8_t ctl, size_t max)
{
	struct xlm_framer f;
	struct chunker ch;
	struct model m = { (const char *)data, (const char *)data + len, (const char *)data, max };
	int rc = 0;

	xlm_framer_init(&f, max);
	chunker_init(&ch, data, len, ctl);
	while (ch.left) {
		size_t n = next_chunk(&ch);
		const char *fed_end = ch.p + n;

		rc = xlm_framer_feed(&f, ch.p, n, model_line, &m);
		ch.p += n;
		ch.left -= n;
		if (rc == -EMSGSIZE) {
			/* The line being framed must really be too long. */
			const char *nl = memchr(m.line, '\n', (size_t)(fed_end - m.line));
			size_t have = (size_t)((nl ? nl : fed_end) - m.line);

			if (have <= max) {
				fprintf(stderr, "fuzz-proto: -EMSGSIZE for a %zu-byte line, max %zu\n",
					have, max);
				abort();
			}
			break; /* the framer is spent: drop the peer */
		}
		if (rc) {
			fprintf(stderr, "fuzz-proto: xlm_framer_feed returned %d\n", rc);
			abort();
		}
	}
	if (!rc) {
		/* Everything complete was handed out; the rest fits. */
		if (memchr(m.line, '\n', (size_t)(m.end - m.line)) ||
		    (size_t)(m.end - m.line) > max) {
			fprintf(stderr, "fuzz-proto: framer kept a line or missed an oversize one\n");
			abort();
		}
	}
	xlm_framer_fini(&f);
}

/* ---- 2. the server side of a connection --------------------------------- */

struct conn {
	unsigned requests, replies;
};

static yajl_val parse_reply(const char *buf, size_t len)
{
	char perr[256];
	char *s;
	yajl_val v;

	if (!len || buf[len - 1] != '\n' || memchr(buf, '\n', len - 1) ||
	    memchr(buf, 0, len)) {
		fprintf(stderr, "fuzz-proto: a reply is not one line\n");
		abort();
	}
	s = malloc(len);
	if (!s)
		abort();
	memcpy(s, buf, len - 1);
	s[len - 1] = 0;
	v = yajl_tree_parse(s, perr, sizeof(perr));
	if (!YAJL_IS_OBJECT(v)) {
		fprintf(stderr, "fuzz-proto: a reply is not a JSON object: %s\n  %s\n", perr, s);
		abort();
	}
	free(s);
	return v;
}

static void on_send(void *opaque, char *buf, size_t len)
{
	struct conn *cn = opaque;
	yajl_val v = parse_reply(buf, len);
	const char *path[] = { "ok", NULL };

	/* The framer and parser only ever send refusals. */
	if (!YAJL_IS_FALSE(yajl_tree_get(v, path, yajl_t_any)) || !xlm_json_str(v, "error"))
		abort();
	cn->replies++;
	yajl_tree_free(v);
	free(buf);
}

/* xlm_req_parse bounds nesting (the tree is freed recursively); it is 64. */
static unsigned tree_depth(yajl_val v)
{
	unsigned d = 0, sub;

	if (YAJL_IS_OBJECT(v)) {
		for (size_t i = 0; i < v->u.object.len; i++)
			if ((sub = tree_depth(v->u.object.values[i])) > d)
				d = sub;
		return d + 1;
	}
	if (YAJL_IS_ARRAY(v)) {
		for (size_t i = 0; i < v->u.array.len; i++)
			if ((sub = tree_depth(v->u.array.values[i])) > d)
				d = sub;
		return d + 1;
	}
	return 0;
}

static void on_request(void *opaque, const struct xlm_req *req)
{
	struct conn *cn = opaque;
	struct hyp_dom_config cfg;
	char err[XLM_ERR_MAX];
	char *out;
	size_t len;
	long long n;
	yajl_gen g;
	yajl_val v;

	cn->requests++;
	if (!req->op || !YAJL_IS_OBJECT(req->root) || (req->args && !YAJL_IS_OBJECT(req->args)))
		abort();
	(void)strlen(req->op);
	if (tree_depth(req->root) > 64) {
		fprintf(stderr, "fuzz-proto: accepted a request nested %u deep\n",
			tree_depth(req->root));
		abort();
	}
	/* The lookups ctl-ops.c makes. */
	(void)xlm_args_str(req, "name");
	(void)xlm_args_str(req, "domain");
	(void)xlm_args_bool(req, "paused");
	if (req->args)
		(void)xlm_json_int(req->args, "domid", &n);
	if (!strcmp(req->op, "create") && !xlm_cfg_from_json(req->args, &cfg, err, sizeof(err)) &&
	    (!cfg.name[0] || cfg.memory_mb > cfg.maxmem_mb))
		abort();

	/* A reply echoing the request tree: it must come out as valid JSON. */
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		abort();
	if (xlm_gen_tree(g, req->root)) {
		yajl_gen_free(g);
		fprintf(stderr, "fuzz-proto: xlm_gen_tree failed on a parsed request\n");
		abort();
	}
	if (xlm_gen_finish(g, &out, &len))
		abort();
	v = parse_reply(out, len);
	yajl_tree_free(v);
	free(out);
}

static void check_proto(const uint8_t *data, size_t len, uint8_t ctl, size_t max)
{
	struct xlm_proto p;
	struct conn cn = { 0 };
	struct chunker ch;

	xlm_proto_init(&p, max, on_request, on_send, &cn);
	chunker_init(&ch, data, len, ctl);
	while (ch.left) {
		size_t n = next_chunk(&ch);
		unsigned before = cn.replies;
		int rc = xlm_proto_feed(&p, ch.p, n);

		ch.p += n;
		ch.left -= n;
		if (rc == -EMSGSIZE) {
			if (cn.replies == before)
				abort(); /* an oversize request gets its error reply */
			break;
		}
		if (rc)
			abort();
	}
	xlm_proto_fini(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static bool init;
	uint8_t ctl;
	size_t max;

	if (!init) {
		log_set_stderr(0);
		init = true;
	}
	if (!len)
		return 0;
	ctl = data[0];
	data++;
	len--;
	max = ctl & 0x80 ? XLM_LINE_MAX : (size_t)((ctl >> 3) & 15) * 24;
	check_framer(data, len, ctl, max);
	check_proto(data, len, ctl, max);
	return 0;
}
