// SPDX-License-Identifier: MIT
/*
 * The pair's witness: etcd's v3 API through its JSON gateway (libcurl,
 * libyajl). Two keys per pair under /ferry/remus/PAIR/: "owner", held by
 * whoever may run the domain, attached to a lease the holder keeps alive,
 * and "state", persistent, where the primary records that it ran on
 * without its backup ("unprotected"), so a backup's copy that is older
 * than what the world saw is never resumed.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "common/clock.h"
#include "common/log.h"
#include "internal.h"

#define REQ_TIMEOUT_MS 250L /* one request: well inside a 1 s lease */
#define KEY_MAX	       256

struct ha_witness {
	CURL *curl;
	char base[256]; /* http(s)://HOST:PORT */
	char owner_key[KEY_MAX], state_key[KEY_MAX];
	char me[128];
	char lease[32];	 /* the lease ID we hold, "" for none */
	double lease_at; /* when it was granted or last renewed */
	char *resp;
	size_t rlen;
	char why[768];
	/* The primary's thread and its lease keeper share the handle. */
	pthread_mutex_t lock;
};

static size_t on_data(char *p, size_t size, size_t n, void *opaque)
{
	struct ha_witness *w = opaque;
	size_t len = size * n;
	char *r = realloc(w->resp, w->rlen + len + 1);

	if (!r)
		return 0;
	memcpy(r + w->rlen, p, len);
	w->rlen += len;
	r[w->rlen] = '\0';
	w->resp = r;
	return len;
}

/* POSTs body to path, giving up after ms (REQ_TIMEOUT_MS when 0 or more);
 * the parsed reply in *out (free with yajl_tree_free). */
static int post_within(struct ha_witness *w, const char *path, const char *body, long ms,
		       yajl_val *out)
{
	char url[512], perr[128];
	long code = 0;
	CURLcode rc;

	if (ms <= 0 || ms > REQ_TIMEOUT_MS)
		ms = REQ_TIMEOUT_MS;
	snprintf(url, sizeof(url), "%s%s", w->base, path);
	pthread_mutex_lock(&w->lock);
	w->rlen = 0;
	if (w->resp)
		w->resp[0] = '\0';
	curl_easy_setopt(w->curl, CURLOPT_URL, url);
	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT_MS, ms);
	rc = curl_easy_perform(w->curl);
	if (rc != CURLE_OK) {
		snprintf(w->why, sizeof(w->why), "%s: %s", url, curl_easy_strerror(rc));
		pthread_mutex_unlock(&w->lock);
		return rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH;
	}
	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &code);
	*out = w->resp ? yajl_tree_parse(w->resp, perr, sizeof(perr)) : NULL;
	if (code != 200 || !*out) {
		snprintf(w->why, sizeof(w->why), "%s: HTTP %ld: %.120s", url, code,
			 w->resp ? w->resp : "");
		if (*out)
			yajl_tree_free(*out);
		*out = NULL;
		pthread_mutex_unlock(&w->lock);
		return -EPROTO;
	}
	pthread_mutex_unlock(&w->lock);
	return 0;
}

static int post(struct ha_witness *w, const char *path, const char *body, yajl_val *out)
{
	return post_within(w, path, body, REQ_TIMEOUT_MS, out);
}

static const char *get_str(yajl_val v, const char **path)
{
	yajl_val s = yajl_tree_get(v, path, yajl_t_string);

	return s ? YAJL_GET_STRING(s) : NULL;
}

static void b64(const char *in, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)strlen(in));
}

/* Decodes b64 in into out (len bytes with the NUL). */
static void unb64(const char *in, char *out, size_t len)
{
	unsigned char buf[512];
	int n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)strlen(in));
	size_t l = strlen(in);

	if (n < 0) {
		out[0] = '\0';
		return;
	}
	/* DecodeBlock counts the padding as bytes. */
	while (l && in[l - 1] == '=') {
		n--;
		l--;
	}
	snprintf(out, len, "%.*s", n, (const char *)buf);
}

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int ha_witness_new(const char *url, const char *pair, const char *me,
		   const struct ha_witness_tls *tls, struct ha_witness **out, char *err,
		   size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct ha_witness *w;
	const char *rest;

	pthread_once(&once, curl_init_once);
	if (!strncmp(url, "etcd://", 7))
		rest = url + 7;
	else if (!strncmp(url, "http://", 7))
		rest = url + 7;
	else if (!strncmp(url, "https://", 8))
		rest = NULL;
	else {
		snprintf(err, errlen,
			 "witness '%s': expected etcd://HOST:PORT, http:// or https://", url);
		return -EINVAL;
	}
	if (strlen(url) > 200 || strlen(pair) > 100 || strlen(me) > 100) {
		snprintf(err, errlen, "witness '%s': too long", url);
		return -EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->curl = curl_easy_init())) {
		free(w);
		snprintf(err, errlen, "witness: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&w->lock, NULL);
	if (rest)
		snprintf(w->base, sizeof(w->base), "http://%s", rest);
	else
		snprintf(w->base, sizeof(w->base), "%s", url);
	snprintf(w->owner_key, sizeof(w->owner_key), "/ferry/remus/%s/owner", pair);
	snprintf(w->state_key, sizeof(w->state_key), "/ferry/remus/%s/state", pair);
	snprintf(w->me, sizeof(w->me), "%s", me);
	curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->curl, CURLOPT_TCP_NODELAY, 1L);
	if (tls && !strncmp(url, "https://", 8)) {
		if (tls->ca) { /* the only anchor: no system store */
			curl_easy_setopt(w->curl, CURLOPT_CAINFO, tls->ca);
			curl_easy_setopt(w->curl, CURLOPT_CAPATH, NULL);
		}
		if (tls->cert && tls->key) {
			curl_easy_setopt(w->curl, CURLOPT_SSLCERT, tls->cert);
			curl_easy_setopt(w->curl, CURLOPT_SSLKEY, tls->key);
		}
	}
	*out = w;
	return 0;
}

const char *ha_witness_error(const struct ha_witness *w)
{
	return w->why;
}

static int grant(struct ha_witness *w)
{
	char body[64];
	yajl_val v;
	const char *id;
	int rc;

	snprintf(body, sizeof(body), "{\"TTL\": %d}", HA_WITNESS_TTL_S);
	rc = post(w, "/v3/lease/grant", body, &v);
	if (rc)
		return rc;
	id = get_str(v, (const char *[]){"ID", NULL});
	if (id) {
		snprintf(w->lease, sizeof(w->lease), "%s", id);
		w->lease_at = ferry_now_s();
	} else
		snprintf(w->why, sizeof(w->why), "lease grant: no ID in %.100s", w->resp);
	yajl_tree_free(v);
	return id ? 0 : -EPROTO;
}

int ha_witness_acquire(struct ha_witness *w, bool *got, char *holder, size_t holderlen)
{
	char k[KEY_MAX * 2], val[256], body[2048];
	const char *path[] = {"responses", NULL};
	yajl_val v, resp;
	int rc;

	*got = false;
	if (holder && holderlen)
		holder[0] = '\0';
	/* A lease kept from a failed try may have expired unrenewed. */
	if (w->lease[0] && ferry_now_s() - w->lease_at > HA_WITNESS_TTL_S / 2.0)
		w->lease[0] = '\0';
	if (!w->lease[0] && (rc = grant(w)))
		return rc;
	b64(w->owner_key, k);
	b64(w->me, val);
	snprintf(body, sizeof(body),
		 "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"CREATE\","
		 "\"create_revision\":\"0\"}],"
		 "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%s\"}}"
		 "],"
		 "\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}",
		 k, k, val, w->lease, k);
	rc = post(w, "/v3/kv/txn", body, &v);
	if (rc)
		return rc;
	if (YAJL_IS_TRUE(yajl_tree_get(v, (const char *[]){"succeeded", NULL}, yajl_t_true))) {
		*got = true;
	} else if ((resp = yajl_tree_get(v, path, yajl_t_array)) && resp->u.array.len) {
		yajl_val kvs = yajl_tree_get(resp->u.array.values[0],
					     (const char *[]){"response_range", "kvs", NULL},
					     yajl_t_array);
		const char *hv = kvs && kvs->u.array.len ? get_str(kvs->u.array.values[0],
								   (const char *[]){"value", NULL})
							 : NULL;

		if (hv && holder)
			unb64(hv, holder, holderlen);
	}
	yajl_tree_free(v);
	return 0;
}

int ha_witness_keepalive(struct ha_witness *w, int timeout_ms, double *sent_at)
{
	char body[96];
	yajl_val v;
	const char *ttl;
	bool alive;
	int rc;

	if (!w->lease[0])
		return -ENOENT;
	snprintf(body, sizeof(body), "{\"ID\":\"%s\"}", w->lease);
	*sent_at = ferry_now_s();
	rc = post_within(w, "/v3/lease/keepalive", body, timeout_ms, &v);
	if (rc)
		return rc;
	ttl = get_str(v, (const char *[]){"result", "TTL", NULL});
	alive = ttl && atoi(ttl) > 0; /* read before the tree goes */
	if (alive)
		w->lease_at = *sent_at;
	yajl_tree_free(v);
	if (!alive) {
		snprintf(w->why, sizeof(w->why), "the lease expired");
		return -ETIME;
	}
	return 0;
}

int ha_witness_set_state(struct ha_witness *w, const char *state)
{
	char k[KEY_MAX * 2], val[256], body[1024];
	yajl_val v;
	int rc;

	b64(w->state_key, k);
	b64(state, val);
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", k, val);
	rc = post(w, "/v3/kv/put", body, &v);
	if (!rc)
		yajl_tree_free(v);
	return rc;
}

int ha_witness_set_state_held(struct ha_witness *w, const char *state)
{
	char ok[KEY_MAX * 2], k[KEY_MAX * 2], val[256], body[2048];
	bool done;
	yajl_val v;
	int rc;

	if (!w->lease[0]) {
		snprintf(w->why, sizeof(w->why), "no lease is held here");
		return -ESTALE;
	}
	b64(w->owner_key, ok);
	b64(w->state_key, k);
	b64(state, val);
	snprintf(body, sizeof(body),
		 "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"LEASE\","
		 "\"lease\":\"%s\"}],"
		 "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}]}",
		 ok, w->lease, k, val);
	rc = post(w, "/v3/kv/txn", body, &v);
	if (rc)
		return rc;
	done = YAJL_IS_TRUE(yajl_tree_get(v, (const char *[]){"succeeded", NULL}, yajl_t_true));
	yajl_tree_free(v);
	if (!done)
		snprintf(w->why, sizeof(w->why), "the lease on %s is not ours any more",
			 w->owner_key);
	return done ? 0 : -ESTALE;
}

int ha_witness_get_state(struct ha_witness *w, char *buf, size_t len)
{
	char k[KEY_MAX * 2], body[640];
	yajl_val v, kvs;
	const char *val = NULL;
	int rc;

	buf[0] = '\0';
	b64(w->state_key, k);
	snprintf(body, sizeof(body), "{\"key\":\"%s\"}", k);
	rc = post(w, "/v3/kv/range", body, &v);
	if (rc)
		return rc;
	kvs = yajl_tree_get(v, (const char *[]){"kvs", NULL}, yajl_t_array);
	if (kvs && kvs->u.array.len)
		val = get_str(kvs->u.array.values[0], (const char *[]){"value", NULL});
	if (val)
		unb64(val, buf, len);
	yajl_tree_free(v);
	return 0;
}

void ha_witness_release(struct ha_witness *w)
{
	char body[96];
	yajl_val v;

	if (!w || !w->lease[0])
		return;
	snprintf(body, sizeof(body), "{\"ID\":\"%s\"}", w->lease);
	if (!post(w, "/v3/lease/revoke", body, &v))
		yajl_tree_free(v);
	w->lease[0] = '\0';
}

void ha_witness_free(struct ha_witness *w)
{
	if (!w)
		return;
	curl_easy_cleanup(w->curl);
	pthread_mutex_destroy(&w->lock);
	free(w->resp);
	free(w);
}
