/* SPDX-License-Identifier: MIT */
/*
 * Command line: "workload=idle|dirty|verify|spin|pingpong ws=SIZE
 * rate=SIZE pattern=seq|random data=plain|mix role=ping|pong peer=DOMID
 * port=N gref=M",
 * SIZE being a number with an optional K, M or G
 * (binary) suffix. Keys we do not know belong to someone else and are
 * skipped.
 */
#include "internal.h"

#define WL_DEFAULT_WS (64ull << 20)
#define WL_DEFAULT_RATE (20ull << 20)

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Does the token [s, s + n) equal word? */
static bool tok_eq(const char *s, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!word[i] || word[i] != s[i])
			return false;
	return word[n] == '\0';
}

/* Plain decimal digits only (no size suffix). */
static bool tok_is_num(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

static int parse_size(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	size_t i = 0;

	if (!n)
		return -22;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -22;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return -22;
	if (i < n) {
		switch (s[i]) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: return -22;
		}
		i++;
	}
	if (i != n)
		return -22;
	if (shift && v > (UINT64_MAX >> shift))
		return -22;
	*out = v << shift;
	return 0;
}

static void copy_tok(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t i;

	if (!dstlen)
		return;
	for (i = 0; i < n && i + 1 < dstlen; i++)
		dst[i] = s[i];
	dst[i] = '\0';
}

/*
 * Long on purpose: one flat branch per key of the command line, each a
 * few lines; split, the key table would scatter.
 */
int wl_parse_cmdline(const char *cmdline, struct wl_params *p, char *err,
		     size_t errlen)
{
	const char *s = cmdline ? cmdline : "";

	p->kind = WL_IDLE;
	p->pattern = WL_SEQ;
	p->ws_bytes = WL_DEFAULT_WS;
	p->fill_bytes = 0;
	p->data = WL_DATA_PLAIN;
	p->rate = WL_DEFAULT_RATE;
	p->pp_role = 0;
	p->pp_peer = 0;
	p->pp_port = 0;
	p->pp_gref = UINT32_MAX;

	while (*s) {
		const char *key, *val;
		size_t klen, vlen;
		char tok[48];

		while (is_space(*s))
			s++;
		if (!*s)
			break;
		key = s;
		while (*s && !is_space(*s) && *s != '=')
			s++;
		klen = (size_t)(s - key);
		val = s;
		vlen = 0;
		if (*s == '=') {
			val = ++s;
			while (*s && !is_space(*s))
				s++;
			vlen = (size_t)(s - val);
		} else {
			while (*s && !is_space(*s))
				s++;
		}
		copy_tok(tok, sizeof(tok), val, vlen);

		if (tok_eq(key, klen, "workload")) {
			if (tok_eq(val, vlen, "idle"))
				p->kind = WL_IDLE;
			else if (tok_eq(val, vlen, "dirty"))
				p->kind = WL_DIRTY;
			else if (tok_eq(val, vlen, "verify"))
				p->kind = WL_VERIFY;
			else if (tok_eq(val, vlen, "spin"))
				p->kind = WL_SPIN;
			else if (tok_eq(val, vlen, "pingpong"))
				p->kind = WL_PINGPONG;
			else
				goto bad;
		} else if (tok_eq(key, klen, "pattern")) {
			if (tok_eq(val, vlen, "seq"))
				p->pattern = WL_SEQ;
			else if (tok_eq(val, vlen, "random"))
				p->pattern = WL_RANDOM;
			else
				goto bad;
		} else if (tok_eq(key, klen, "data")) {
			if (tok_eq(val, vlen, "plain"))
				p->data = WL_DATA_PLAIN;
			else if (tok_eq(val, vlen, "mix"))
				p->data = WL_DATA_MIX;
			else
				goto bad;
		} else if (tok_eq(key, klen, "ws")) {
			if (parse_size(val, vlen, &p->ws_bytes) ||
			    p->ws_bytes == 0 ||
			    p->ws_bytes > UINT64_MAX - WL_PAGE_SIZE)
				goto bad;
			p->ws_bytes = (p->ws_bytes + WL_PAGE_SIZE - 1) &
				      ~(uint64_t)(WL_PAGE_SIZE - 1);
		} else if (tok_eq(key, klen, "fill")) {
			if (parse_size(val, vlen, &p->fill_bytes) ||
			    p->fill_bytes > UINT64_MAX - WL_PAGE_SIZE)
				goto bad;
			p->fill_bytes = (p->fill_bytes + WL_PAGE_SIZE - 1) &
					~(uint64_t)(WL_PAGE_SIZE - 1);
		} else if (tok_eq(key, klen, "rate")) {
			if (parse_size(val, vlen, &p->rate))
				goto bad;
		} else if (tok_eq(key, klen, "role")) {
			if (tok_eq(val, vlen, "ping"))
				p->pp_role = WL_PP_PING;
			else if (tok_eq(val, vlen, "pong"))
				p->pp_role = WL_PP_PONG;
			else
				goto bad;
		} else if (tok_eq(key, klen, "peer") ||
			   tok_eq(key, klen, "port") ||
			   tok_eq(key, klen, "gref")) {
			uint64_t v;

			if (parse_size(val, vlen, &v) || !tok_is_num(val, vlen))
				goto bad;
			if (key[1] == 'e') {	/* peer: a guest domid */
				if (v == 0 || v >= 0x7ff0)
					goto bad;
				p->pp_peer = (uint32_t)v;
			} else if (key[0] == 'p') {	/* port: 2-level */
				if (v == 0 || v >= 4096)
					goto bad;
				p->pp_port = (uint32_t)v;
			} else {
				if (v >= UINT32_MAX)
					goto bad;
				p->pp_gref = (uint32_t)v;
			}
		}
		continue;
bad:
		if (errlen) {
			char k[16];

			copy_tok(k, sizeof(k), key, klen);
			wl_snprintf(err, errlen, "bad value '%s' for %s", tok,
				    k);
		}
		return -22;
	}
	return 0;
}

void wl_format_size(char *buf, size_t size, uint64_t bytes)
{
	if (bytes && !(bytes & ((1ull << 30) - 1)))
		wl_snprintf(buf, size, "%lluG", (unsigned long long)(bytes >> 30));
	else if (bytes && !(bytes & ((1ull << 20) - 1)))
		wl_snprintf(buf, size, "%lluM", (unsigned long long)(bytes >> 20));
	else if (bytes && !(bytes & ((1ull << 10) - 1)))
		wl_snprintf(buf, size, "%lluK", (unsigned long long)(bytes >> 10));
	else
		wl_snprintf(buf, size, "%llu", (unsigned long long)bytes);
}

const char *wl_kind_name(uint32_t kind)
{
	switch (kind) {
	case WL_IDLE: return "idle";
	case WL_DIRTY: return "dirty";
	case WL_VERIFY: return "verify";
	case WL_SPIN: return "spin";
	case WL_PINGPONG: return "pingpong";
	default: return "?";
	}
}

const char *wl_pattern_name(uint32_t pattern)
{
	return pattern == WL_RANDOM ? "random" : "seq";
}
