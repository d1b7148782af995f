/* SPDX-License-Identifier: MIT */
/*
 * The ferryd control protocol (docs/control-protocol.md): newline-delimited
 * JSON objects over an AF_UNIX stream socket.
 *   request  {"id":N,"op":"create","args":{...}}
 *   reply    {"id":N,"ok":true,"result":...}
 *            {"id":N,"ok":false,"error":"message","errno":E}
 *   event    {"event":"console","domid":D,"data":"..."}
 *            {"event":"domain","domid":D,"state":"running"}
 *
 * Everything here is sans-I/O except struct xlm_client, the blocking
 * client xl uses: the framer and struct xlm_proto take bytes and hand back
 * lines, requests and reply bytes, so the tests feed them directly.
 */
#ifndef TOOLSTACK_PROTO_H
#define TOOLSTACK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#define XLM_SOCKET_DEFAULT "/run/ferry/ferryd.sock"
#define XLM_SOCKET_NAME "ferryd.sock"
#define XLM_LINE_MAX (1u << 20) /* a longer request drops the client */
#define XLM_ERR_MAX 512

/* ---- line framing ------------------------------------------------------- */

/* Called with one line, without its '\n', NUL-terminated; may modify it.
 * A non-zero return stops the feed and is returned by it. */
typedef int (*xlm_line_fn)(void *opaque, char *line, size_t len);

struct xlm_framer {
	char *buf; /* private */
	size_t len, cap, max;
};

/* Lines longer than max bytes are refused. */
void xlm_framer_init(struct xlm_framer *f, size_t max);
void xlm_framer_fini(struct xlm_framer *f);
/*
 * Appends data and calls fn for each complete line. Returns 0, fn's
 * non-zero result, -ENOMEM, or -EMSGSIZE when a line outgrows max (the
 * framer is then spent: drop the peer).
 */
int xlm_framer_feed(struct xlm_framer *f, const char *data, size_t len,
		    xlm_line_fn fn, void *opaque);

/* ---- messages ----------------------------------------------------------- */

/* A parsed request. root owns the tree; op and args point into it. */
struct xlm_req {
	long long id;
	bool has_id;
	const char *op;
	yajl_val args; /* an object, or NULL when absent */
	yajl_val root;
};

/*
 * Parses one request line. Returns 0, or -FERRY_EPROTO with a message in
 * err (req->id and has_id are still set when the id could be read).
 * On success the caller frees with xlm_req_free().
 */
int xlm_req_parse(const char *line, struct xlm_req *req, char *err, size_t errlen);
void xlm_req_free(struct xlm_req *req);

/* Looks up a string member of args; NULL when absent or not a string. */
const char *xlm_args_str(const struct xlm_req *req, const char *key);
bool xlm_args_bool(const struct xlm_req *req, const char *key);
/* An integer member of args into *out; false when absent or not an integer. */
bool xlm_args_int(const struct xlm_req *req, const char *key, long long *out);

/*
 * Message generation. Each *_begin returns a yajl_gen (NULL: out of
 * memory) with an open top-level map already holding its leading keys:
 *   xlm_reply_begin:   {"id":N,"ok":true,"result":   (write one value next)
 *   xlm_event_begin:   {"event":NAME                 (write more pairs next)
 *   xlm_request_begin: {"id":N,"op":OP,"args":       (write one value next)
 * xlm_gen_finish() closes the map, frees g, and returns the line with its
 * '\n' as a malloc()ed buffer in *out (length *len) that the caller owns.
 */
yajl_gen xlm_reply_begin(long long id, bool has_id);
yajl_gen xlm_event_begin(const char *event);
yajl_gen xlm_request_begin(long long id, const char *op);
int xlm_gen_finish(yajl_gen g, char **out, size_t *len);
/* An error reply line; err is a negative errno, sent as positive "errno". */
int xlm_reply_error(long long id, bool has_id, int err, const char *msg,
		    char **out, size_t *len);

/* Helpers for writing pairs into an open map. */
int xlm_gen_str(yajl_gen g, const char *s);
int xlm_gen_strn(yajl_gen g, const char *s, size_t len);
int xlm_gen_kv_str(yajl_gen g, const char *key, const char *val);
int xlm_gen_kv_int(yajl_gen g, const char *key, long long val);
int xlm_gen_kv_bool(yajl_gen g, const char *key, bool val);
int xlm_gen_kv_double(yajl_gen g, const char *key, double val);
/* yajl_gen_{map,array}_{open,close} as 0 or -EINVAL. */
int xlm_gen_map_open(yajl_gen g);
int xlm_gen_map_close(yajl_gen g);
int xlm_gen_array_open(yajl_gen g);
int xlm_gen_array_close(yajl_gen g);
/* Writes a parsed tree back out (e.g. to forward a config object). */
int xlm_gen_tree(yajl_gen g, yajl_val v);

/* ---- server side connection (sans-I/O) ---------------------------------- */

/* A well-formed request; req is borrowed for the call. */
typedef void (*xlm_proto_request_fn)(void *opaque, const struct xlm_req *req);
/* Bytes to send to the peer; takes ownership of the malloc()ed buf. */
typedef void (*xlm_proto_send_fn)(void *opaque, char *buf, size_t len);

struct xlm_proto {
	struct xlm_framer fr; /* private */
	xlm_proto_request_fn on_request;
	xlm_proto_send_fn send;
	void *opaque;
};

void xlm_proto_init(struct xlm_proto *p, size_t max, xlm_proto_request_fn on_request,
		    xlm_proto_send_fn send, void *opaque);
void xlm_proto_fini(struct xlm_proto *p);
/*
 * Feeds received bytes. Malformed requests get an error reply through
 * send and the connection goes on. Returns 0, or -EMSGSIZE after an
 * oversize request (an error reply has been sent; drop the peer), or
 * -ENOMEM.
 */
int xlm_proto_feed(struct xlm_proto *p, const char *data, size_t len);

/* ---- blocking client ---------------------------------------------------- */

/* An event received while waiting for a reply; msg is borrowed. */
typedef void (*xlm_event_fn)(void *opaque, yajl_val msg);

struct xlm_client {
	int fd;
	long long next_id;
	struct xlm_framer fr;
	yajl_val *lines; /* private: parsed messages not yet returned */
	size_t nlines, lines_cap;
	xlm_event_fn on_event; /* optional: events seen by xlm_client_call */
	void *event_opaque;
	char err[XLM_ERR_MAX]; /* the last failure's message */
};

/* Connects to path; -errno with err set ("cannot connect to ferryd at ..."). */
int xlm_client_connect(struct xlm_client *c, const char *path);
void xlm_client_close(struct xlm_client *c);
/*
 * Sends a request and waits for its reply. args_gen, if not NULL, writes
 * the args value (a map) into g. On success *result (may be NULL) is the
 * reply's result, owned by *root which the caller frees with
 * yajl_tree_free(). On a refusal returns -errno with c->err set to the
 * daemon's message.
 */
typedef int (*xlm_args_fn)(yajl_gen g, void *opaque);
int xlm_client_call(struct xlm_client *c, const char *op, xlm_args_fn args_gen,
		    void *opaque, yajl_val *root, yajl_val *result);
/*
 * The next message from the daemon (blocking; timeout_ms < 0 waits
 * forever). Returns 1 with *msg (caller frees with yajl_tree_free()),
 * 0 on timeout, -EPIPE when the daemon closed the connection, or -errno.
 */
int xlm_client_next(struct xlm_client *c, int timeout_ms, yajl_val *msg);
/* Messages already read and parsed but not yet returned by _next. */
static inline bool xlm_client_pending(const struct xlm_client *c)
{
	return c->nlines > 0;
}

/* Convenience accessors for a reply or event tree. */
const char *xlm_json_str(yajl_val obj, const char *key);
bool xlm_json_int(yajl_val obj, const char *key, long long *out);
double xlm_json_double(yajl_val obj, const char *key);

#endif
