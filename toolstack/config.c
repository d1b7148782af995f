// SPDX-License-Identifier: MIT
/*
 * The xl.cfg parser and the JSON form of struct hyp_dom_config.
 *
 * The parser is a hand-written scanner over the text (the grammar is a few
 * productions); each assignment is applied to the struct as soon as it is
 * read, so later lines and command-line overrides win.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "guests/workload.h"
#include "snapshot/schedule.h"
#include "toolstack/config.h"
#include "toolstack/proto.h"

#define CFG_FILE_MAX (1u << 20)

enum val_type { VAL_STR, VAL_INT, VAL_LIST };

struct val {
	enum val_type type;
	char *s; /* VAL_STR, malloc()ed */
	uint64_t n;
	int line;
};

struct scan {
	struct xlm_cfg *c;
	const char *fname;
	const char *p, *end;
	int line;
};

static const char *const on_event_names[] = {
	[HYP_ON_DESTROY] = "destroy",
	[HYP_ON_PRESERVE] = "preserve",
	[HYP_ON_RESTART] = "restart",
};

const char *xlm_on_event_name(enum hyp_on_event e)
{
	if ((unsigned)e < ARRAY_SIZE(on_event_names))
		return on_event_names[e];
	return "?";
}

static int on_event_parse(const char *s, enum hyp_on_event *out)
{
	for (unsigned i = 0; i < ARRAY_SIZE(on_event_names); i++) {
		if (!strcmp(s, on_event_names[i])) {
			*out = (enum hyp_on_event)i;
			return 0;
		}
	}
	return -EINVAL;
}

void xlm_uuid_format(const uint8_t u[16], char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		 u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char)tolower((unsigned char)ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int xlm_uuid_parse(const char *s, uint8_t u[16])
{
	unsigned n = 0;

	for (unsigned i = 0; s[i]; ) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i++] != '-')
				return -EINVAL;
			continue;
		}
		int hi = hexval(s[i]), lo = hi < 0 ? -1 : hexval(s[i + 1]);

		if (hi < 0 || lo < 0 || n >= 16)
			return -EINVAL;
		u[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return n == 16 && strlen(s) == 36 ? 0 : -EINVAL;
}

static void uuid_generate(uint8_t u[16])
{
	if (getrandom(u, 16, GRND_NONBLOCK) != 16) {
		/* No entropy yet: time and pid are unique enough for a name. */
		struct timespec ts;
		uint64_t a, b;

		clock_gettime(CLOCK_REALTIME, &ts);
		a = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		b = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)u;
		memcpy(u, &a, 8);
		memcpy(u + 8, &b, 8);
	}
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void xlm_cfg_init(struct xlm_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->dom.memory_mb = XLM_CFG_DEFAULT_MEMORY_MB;
	c->dom.vcpus = 1;
	c->dom.on_poweroff = HYP_ON_DESTROY;
	c->dom.on_reboot = HYP_ON_RESTART;
	c->dom.on_crash = HYP_ON_DESTROY;
}

static int cfg_error(struct xlm_cfg *c, const char *fmt, ...) PRINTF_FMT(2, 3);
static int cfg_error(struct xlm_cfg *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return -FERRY_EBADCFG;
}

static void cfg_warn(struct xlm_cfg *c, const char *fmt, ...) PRINTF_FMT(2, 3);
static void cfg_warn(struct xlm_cfg *c, const char *fmt, ...)
{
	char msg[XLM_CFG_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->warn)
		c->warn(c->warn_opaque, msg);
	else
		fprintf(stderr, "%s\n", msg);
}

/* ---- scanner ------------------------------------------------------------ */

/* Sets c->err to "FILE:LINE: <message>" for the scanner's current line. */
static int scan_err(struct scan *sc, const char *fmt, ...) PRINTF_FMT(2, 3);
static int scan_err(struct scan *sc, const char *fmt, ...)
{
	char msg[XLM_CFG_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cfg_error(sc->c, "%s:%d: %s", sc->fname, sc->line, msg);
}

/* Skips blanks and, unless stop_at_nl, newlines and comments too. */
static void skip_ws(struct scan *sc, bool stop_at_nl)
{
	while (sc->p < sc->end) {
		char ch = *sc->p;

		if (ch == ' ' || ch == '\t' || ch == '\r') {
			sc->p++;
		} else if (ch == '#' && !stop_at_nl) {
			while (sc->p < sc->end && *sc->p != '\n')
				sc->p++;
		} else if (ch == '\n' && !stop_at_nl) {
			sc->line++;
			sc->p++;
		} else {
			break;
		}
	}
}

static int scan_string(struct scan *sc, const char *key, struct val *v)
{
	char quote = *sc->p++;
	size_t cap = 64, n = 0;
	char *s = malloc(cap);

	if (!s)
		return -ENOMEM;
	for (;;) {
		char ch;

		if (sc->p >= sc->end || *sc->p == '\n') {
			free(s);
			return scan_err(sc, "expected a closing %c for the value of '%s'",
					quote, key);
		}
		ch = *sc->p++;
		if (ch == quote)
			break;
		if (ch == '\\' && quote == '"' && sc->p < sc->end && *sc->p != '\n') {
			ch = *sc->p++;
			switch (ch) {
			case 'n': ch = '\n'; break;
			case 't': ch = '\t'; break;
			case 'r': ch = '\r'; break;
			default: break; /* \\ \" \' and anything else: literal */
			}
		}
		if (ch == 0) {
			free(s);
			return scan_err(sc, "expected text, not a NUL byte, in the value of '%s'",
					key);
		}
		if (n + 1 >= cap) {
			char *t;

			cap *= 2;
			t = realloc(s, cap);
			if (!t) {
				free(s);
				return -ENOMEM;
			}
			s = t;
		}
		s[n++] = ch;
	}
	s[n] = 0;
	v->type = VAL_STR;
	v->s = s;
	return 0;
}

static int scan_int(struct scan *sc, const char *key, struct val *v)
{
	const char *q = sc->p;
	uint64_t n = 0;
	unsigned base = 10;

	if (sc->end - q > 2 && q[0] == '0' && (q[1] == 'x' || q[1] == 'X') &&
	    isxdigit((unsigned char)q[2])) {
		base = 16;
		q += 2;
	}
	for (; q < sc->end && isxdigit((unsigned char)*q); q++) {
		int d = hexval(*q);

		if (d >= (int)base)
			break;
		if (n > (UINT64_MAX - (uint64_t)d) / base)
			return scan_err(sc, "expected an integer that fits in 64 bits for '%s'",
					key);
		n = n * base + (uint64_t)d;
	}
	if (q < sc->end && (isalnum((unsigned char)*q) || *q == '_' || *q == '.'))
		return scan_err(sc, "expected an integer or a quoted string for '%s'", key);
	sc->p = q;
	v->type = VAL_INT;
	v->n = n;
	return 0;
}

static int scan_value(struct scan *sc, const char *key, struct val *v, int depth);

/* A list's items are parsed for syntax and dropped: no known key takes one. */
static int scan_list(struct scan *sc, const char *key, struct val *v, int depth)
{
	int rc;

	if (depth > 8)
		return scan_err(sc, "expected lists nested at most 8 deep in '%s'", key);
	sc->p++; /* '[' */
	for (;;) {
		struct val item = { 0 };

		skip_ws(sc, false);
		if (sc->p < sc->end && *sc->p == ']')
			break;
		rc = scan_value(sc, key, &item, depth + 1);
		free(item.s);
		if (rc)
			return rc;
		skip_ws(sc, false);
		if (sc->p < sc->end && *sc->p == ',') {
			sc->p++;
			continue;
		}
		if (sc->p < sc->end && *sc->p == ']')
			break;
		return scan_err(sc, "expected ',' or ']' in the list for '%s'", key);
	}
	sc->p++; /* ']' */
	v->type = VAL_LIST;
	return 0;
}

static int scan_value(struct scan *sc, const char *key, struct val *v, int depth)
{
	v->line = sc->line;
	if (sc->p < sc->end) {
		char ch = *sc->p;

		if (ch == '"' || ch == '\'')
			return scan_string(sc, key, v);
		if (ch == '[')
			return scan_list(sc, key, v, depth);
		if (isdigit((unsigned char)ch))
			return scan_int(sc, key, v);
	}
	return scan_err(sc, "expected a value (a quoted string, an integer or a list) for '%s'",
			key);
}

/* ---- applying values ---------------------------------------------------- */

/* Whether s is well-formed UTF-8 (RFC 3629), as JSON strings must be. */
static bool utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		unsigned n, cp;

		if (*s < 0x80) {
			s++;
			continue;
		}
		if (*s >= 0xc2 && *s <= 0xdf) {
			n = 1;
			cp = *s & 0x1f;
		} else if (*s >= 0xe0 && *s <= 0xef) {
			n = 2;
			cp = *s & 0x0f;
		} else if (*s >= 0xf0 && *s <= 0xf4) {
			n = 3;
			cp = *s & 0x07;
		} else {
			return false;
		}
		for (unsigned i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false; /* also stops at the NUL */
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}

static int want_str(struct scan *sc, const char *key, const struct val *v,
		    char *dst, size_t size)
{
	if (v->type != VAL_STR)
		return scan_err(sc, "expected a quoted string for '%s'", key);
	/* The config travels as JSON (create request, save header). */
	if (!utf8_valid(v->s))
		return scan_err(sc, "expected UTF-8 text for '%s'", key);
	if (strlen(v->s) >= size)
		return scan_err(sc, "expected '%s' to be at most %zu bytes long", key,
				size - 1);
	strcpy(dst, v->s);
	return 0;
}

/* *dst is the number, or 0 on an error (defined on every return). */
static int want_uint(struct scan *sc, const char *key, const struct val *v,
		     uint64_t *dst)
{
	*dst = 0;
	if (v->type == VAL_INT) {
		*dst = v->n;
		return 0;
	}
	/* xl accepts numbers written as strings, e.g. memory = "512". */
	if (v->type == VAL_STR && v->s[0] && strspn(v->s, "0123456789") == strlen(v->s) &&
	    strlen(v->s) < 20) {
		*dst = strtoull(v->s, NULL, 10);
		return 0;
	}
	return scan_err(sc, "expected an integer for '%s'", key);
}

static int want_choice(struct scan *sc, const char *key, const struct val *v,
		       const char *const *choices, char *dst, size_t size)
{
	char list[128] = "";

	if (v->type == VAL_STR) {
		for (unsigned i = 0; choices[i]; i++) {
			if (!strcmp(v->s, choices[i])) {
				snprintf(dst, size, "%s", choices[i]);
				return 0;
			}
		}
	}
	for (unsigned i = 0; choices[i]; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 i ? (choices[i + 1] ? ", " : " or ") : "", choices[i]);
	return scan_err(sc, "expected %s for '%s'", list, key);
}

/* snapshot_interval: "5m" or a number of seconds; snapshot_keep: a count. */
static int apply_snapshot(struct scan *sc, const char *key, const struct val *v)
{
	struct xlm_cfg_snapshot *s = &sc->c->snapshot;
	char num[24], why[XLM_CFG_ERR_MAX - 64];
	uint64_t n;
	int rc;

	if (!strcmp(key, "snapshot_keep")) {
		rc = want_uint(sc, key, v, &n);
		if (!rc && (n < 1 || n > SNAP_SCHED_KEEP_MAX))
			rc = scan_err(sc, "expected 1 to %u snapshots for 'snapshot_keep'",
				      SNAP_SCHED_KEEP_MAX);
		s->keep = rc ? 0 : (uint32_t)n;
		return rc;
	}
	if (v->type == VAL_INT)
		snprintf(num, sizeof(num), "%" PRIu64, v->n);
	if (v->type == VAL_LIST || snap_sched_parse_interval(v->type == VAL_INT ? num : v->s,
							     &s->every_s, why, sizeof(why)))
		return scan_err(sc, "%s for 'snapshot_interval'",
				v->type == VAL_LIST ? "expected an interval like \"5m\"" : why);
	return 0;
}

static int apply(struct scan *sc, const char *key, const struct val *v)
{
	static const char *const backends[] = { "kvm", "soft", NULL };
	static const char *const logdirties[] = { "bitmap", "ring", NULL };
	static const char *const events[] = { "destroy", "restart", "preserve", NULL };
	struct xlm_cfg *c = sc->c;
	struct hyp_dom_config *d = &c->dom;
	uint64_t n;
	int rc;

	if (!strcmp(key, "name")) {
		rc = want_str(sc, key, v, d->name, sizeof(d->name));
		if (!rc && !d->name[0])
			rc = scan_err(sc, "expected a non-empty string for 'name'");
		c->has_name = !rc;
		return rc;
	}
	if (!strcmp(key, "uuid")) {
		if (v->type != VAL_STR || xlm_uuid_parse(v->s, d->uuid))
			return scan_err(sc, "expected a uuid like \"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx\" for 'uuid'");
		c->has_uuid = true;
		return 0;
	}
	if (!strcmp(key, "memory") || !strcmp(key, "maxmem")) {
		rc = want_uint(sc, key, v, &n);
		if (rc)
			return rc;
		if (n == 0 || n > (UINT64_MAX >> 20))
			return scan_err(sc, "expected a positive number of MiB for '%s'", key);
		if (key[1] == 'e') {
			d->memory_mb = n;
		} else {
			d->maxmem_mb = n;
			c->has_maxmem = true;
		}
		return 0;
	}
	if (!strcmp(key, "vcpus")) {
		rc = want_uint(sc, key, v, &n);
		if (rc)
			return rc;
		if (n < 1 || n > HYP_MAX_VCPUS)
			return scan_err(sc, "expected 1 to %d for 'vcpus'", HYP_MAX_VCPUS);
		d->vcpus = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "kernel"))
		return want_str(sc, key, v, d->kernel, sizeof(d->kernel));
	if (!strcmp(key, "extra") || !strcmp(key, "cmdline"))
		return want_str(sc, key, v, d->cmdline, sizeof(d->cmdline));
	if (!strcmp(key, "backend"))
		return want_choice(sc, key, v, backends, d->backend, sizeof(d->backend));
	if (!strcmp(key, "logdirty"))
		return want_choice(sc, key, v, logdirties, d->logdirty, sizeof(d->logdirty));
	if (!strcmp(key, "on_poweroff") || !strcmp(key, "on_reboot") ||
	    !strcmp(key, "on_crash")) {
		char word[16];
		enum hyp_on_event e = HYP_ON_DESTROY;

		rc = want_choice(sc, key, v, events, word, sizeof(word));
		if (rc)
			return rc;
		on_event_parse(word, &e);
		if (key[3] == 'p')
			d->on_poweroff = e;
		else if (key[3] == 'r')
			d->on_reboot = e;
		else
			d->on_crash = e;
		return 0;
	}
	if (!strcmp(key, "snapshot_interval") || !strcmp(key, "snapshot_keep"))
		return apply_snapshot(sc, key, v);
	cfg_warn(c, "%s:%d: unknown key '%s' ignored", sc->fname, v->line, key);
	return 0;
}

/* One `KEY = VALUE [;] [# comment]` statement; sc->p is at the key. */
static int scan_statement(struct scan *sc)
{
	char key[64];
	size_t n = 0;
	struct val v = { 0 };
	int rc;

	if (!isalpha((unsigned char)*sc->p) && *sc->p != '_')
		return scan_err(sc, "expected a key (KEY = VALUE)");
	while (sc->p < sc->end && (isalnum((unsigned char)*sc->p) || *sc->p == '_')) {
		if (n + 1 >= sizeof(key))
			return scan_err(sc, "expected a key of at most %zu characters",
					sizeof(key) - 1);
		key[n++] = *sc->p++;
	}
	key[n] = 0;
	skip_ws(sc, true);
	if (sc->p >= sc->end || *sc->p != '=')
		return scan_err(sc, "expected '=' after '%s'", key);
	sc->p++;
	skip_ws(sc, true);
	rc = scan_value(sc, key, &v, 0);
	if (rc)
		return rc;
	skip_ws(sc, true);
	if (sc->p < sc->end && *sc->p == ';') {
		sc->p++;
		skip_ws(sc, true);
	}
	if (sc->p < sc->end && *sc->p != '\n' && *sc->p != '#') {
		free(v.s);
		return scan_err(sc, "expected the end of the line after the value of '%s'", key);
	}
	rc = apply(sc, key, &v);
	free(v.s);
	return rc;
}

int xlm_cfg_parse(struct xlm_cfg *c, const char *fname, const char *text, size_t len)
{
	struct scan sc = { .c = c, .fname = fname, .p = text, .end = text + len, .line = 1 };
	int rc;

	if (!c->fname[0])
		snprintf(c->fname, sizeof(c->fname), "%s", fname);
	for (;;) {
		skip_ws(&sc, false);
		if (sc.p >= sc.end)
			return 0;
		rc = scan_statement(&sc);
		if (rc)
			return rc;
	}
}

int xlm_cfg_parse_file(struct xlm_cfg *c, const char *path)
{
	struct stat st;
	char *buf;
	ssize_t got;
	size_t off = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		cfg_error(c, "%s: %s", path, ferry_strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > CFG_FILE_MAX) {
		close(fd);
		return cfg_error(c, "%s: expected a regular file of at most 1 MiB", path);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		got = read(fd, buf + off, (size_t)st.st_size - off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		off += (size_t)got;
	}
	close(fd);
	rc = xlm_cfg_parse(c, path, buf, off);
	free(buf);
	return rc;
}

int xlm_cfg_parse_override(struct xlm_cfg *c, const char *kv)
{
	return xlm_cfg_parse(c, "command line", kv, strlen(kv));
}

/* Suffixes ferryd gives domains of its own: a migration's target copy
 * (ctl-migrate.c), its fenced source copy, and HA's backup. */
static const char *const reserved_suffixes[] = {"--incoming", "--migratedaway", "--backup"};

int xlm_name_check(const char *name, char *err, size_t errlen)
{
	size_t len = strlen(name);

	if (!len) {
		snprintf(err, errlen, "expected a 'name'");
		return -FERRY_EBADCFG;
	}
	if (strspn(name, "0123456789") == len) {
		snprintf(err, errlen, "expected a name that is not a number, not '%s'", name);
		return -FERRY_EBADCFG;
	}
	for (const char *s = name; *s; s++) {
		if (!isprint((unsigned char)*s) || *s == '/') {
			snprintf(err, errlen,
				 "expected a name of printable characters without '/'");
			return -FERRY_EBADCFG;
		}
	}
	if (!strcmp(name, "Domain-0")) {
		snprintf(err, errlen, "the name 'Domain-0' is reserved: it is dom0's, as in Xen");
		return -FERRY_EBADCFG;
	}
	if (name[0] == '-') {
		snprintf(err, errlen,
			 "the name '%s' is reserved: a name starting with '-' reads as an option "
			 "to xl",
			 name);
		return -FERRY_EBADCFG;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(reserved_suffixes); i++) {
		size_t sl = strlen(reserved_suffixes[i]);

		if (len >= sl && !strcmp(name + len - sl, reserved_suffixes[i])) {
			snprintf(err, errlen,
				 "the name '%s' is reserved: ferryd names its own copies "
				 "NAME--incoming, NAME--migratedaway and NAME--backup",
				 name);
			return -FERRY_EBADCFG;
		}
	}
	return 0;
}

/* Checks shared by the parser and the JSON reader; fills derived defaults. */
static int dom_check(struct hyp_dom_config *d, bool has_maxmem, char *err, size_t errlen,
		     const char *where)
{
	char why[XLM_CFG_ERR_MAX - 64];

	if (xlm_name_check(d->name, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", where, why);
		return -FERRY_EBADCFG;
	}
	if (!has_maxmem)
		d->maxmem_mb = d->memory_mb;
	if (d->memory_mb > d->maxmem_mb) {
		snprintf(err, errlen,
			 "%s: expected memory (%" PRIu64 " MiB) not above maxmem (%" PRIu64 " MiB)",
			 where, d->memory_mb, d->maxmem_mb);
		return -FERRY_EBADCFG;
	}
	if (d->max_kb > d->maxmem_mb << 10) {
		snprintf(err, errlen,
			 "%s: expected max_memkb (%" PRIu64 " KiB) not above maxmem (%" PRIu64
			 " MiB)",
			 where, d->max_kb, d->maxmem_mb);
		return -FERRY_EBADCFG;
	}
	return 0;
}

int xlm_cfg_finish(struct xlm_cfg *c, struct hyp_dom_config *out)
{
	int rc;

	rc = dom_check(&c->dom, c->has_maxmem, c->err, sizeof(c->err),
		       c->fname[0] ? c->fname : "config");
	if (rc)
		return rc;
	if (!c->snapshot.every_s != !c->snapshot.keep)
		return cfg_error(c,
				 "%s: expected snapshot_interval and snapshot_keep together (a "
				 "schedule needs both: how often, and how many to keep)",
				 c->fname[0] ? c->fname : "config");
	if (!c->has_uuid) {
		uuid_generate(c->dom.uuid);
		c->has_uuid = true;
	}
	*out = c->dom;
	return 0;
}

int xlm_cfg_check_create(const struct hyp_dom_config *d, const char *backend, char *err,
			 size_t errlen)
{
	char why[XLM_CFG_ERR_MAX - 64];

	if (d->kernel[0] && !strcmp(backend, "soft")) {
		snprintf(err, errlen,
			 "%s: 'kernel' is for kvm: the soft backend runs the built-in guest's "
			 "workloads on host threads and loads no ELF; remove 'kernel' or use "
			 "backend = \"kvm\"",
			 d->name);
		return -FERRY_EBADCFG;
	}
	/* A kernel of the user's own takes its own command line. */
	if (!d->kernel[0] && wl_check_cmdline(d->cmdline, d->memory_mb << 20, why, sizeof(why))) {
		snprintf(err, errlen, "%s: extra \"%s\": %s", d->name, d->cmdline, why);
		return -FERRY_EBADCFG;
	}
	return 0;
}

/* ---- JSON --------------------------------------------------------------- */

int xlm_cfg_gen_fields(yajl_gen g, const struct hyp_dom_config *d)
{
	char uuid[37];

	xlm_uuid_format(d->uuid, uuid);
	return xlm_gen_kv_str(g, "name", d->name) ?:
	       xlm_gen_kv_str(g, "uuid", uuid) ?:
	       xlm_gen_kv_int(g, "memory_mb", d->memory_mb) ?:
	       xlm_gen_kv_int(g, "maxmem_mb", d->maxmem_mb) ?:
	       /* A running domain's (xl mem-max), so saves carry it as Xen's do. */
	       (d->max_kb ? xlm_gen_kv_int(g, "max_memkb", d->max_kb) : 0) ?:
	       xlm_gen_kv_int(g, "vcpus", d->vcpus) ?:
	       xlm_gen_kv_str(g, "kernel", d->kernel) ?:
	       xlm_gen_kv_str(g, "cmdline", d->cmdline) ?:
	       xlm_gen_kv_str(g, "backend", d->backend) ?:
	       xlm_gen_kv_str(g, "logdirty", d->logdirty) ?:
	       xlm_gen_kv_str(g, "on_poweroff", xlm_on_event_name(d->on_poweroff)) ?:
	       xlm_gen_kv_str(g, "on_reboot", xlm_on_event_name(d->on_reboot)) ?:
	       xlm_gen_kv_str(g, "on_crash", xlm_on_event_name(d->on_crash));
}

int xlm_cfg_to_json(const struct hyp_dom_config *d, char **out)
{
	const unsigned char *buf;
	size_t len;
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc;

	if (!g)
		return -ENOMEM;
	rc = xlm_gen_map_open(g) ?: xlm_cfg_gen_fields(g, d) ?: xlm_gen_map_close(g);
	if (!rc) {
		yajl_gen_get_buf(g, &buf, &len);
		*out = strndup((const char *)buf, len);
		if (!*out)
			rc = -ENOMEM;
	}
	yajl_gen_free(g);
	return rc;
}

static int json_str(yajl_val obj, const char *key, char *dst, size_t size, char *err,
		    size_t errlen)
{
	const char *path[] = { key, NULL };
	yajl_val v = yajl_tree_get(obj, path, yajl_t_any);

	if (!v)
		return 0;
	if (!YAJL_IS_STRING(v)) {
		snprintf(err, errlen, "config: expected a string for '%s'", key);
		return -FERRY_EBADCFG;
	}
	if (strlen(v->u.string) >= size) {
		snprintf(err, errlen, "config: expected '%s' to be at most %zu bytes long",
			 key, size - 1);
		return -FERRY_EBADCFG;
	}
	strcpy(dst, v->u.string);
	return 0;
}

static int json_uint(yajl_val obj, const char *key, uint64_t min, uint64_t max,
		     uint64_t *dst, bool *present, char *err, size_t errlen)
{
	const char *path[] = { key, NULL };
	yajl_val v = yajl_tree_get(obj, path, yajl_t_any);

	if (!v)
		return 0;
	if (!YAJL_IS_INTEGER(v) || v->u.number.i < 0 || (uint64_t)v->u.number.i < min ||
	    (uint64_t)v->u.number.i > max) {
		snprintf(err, errlen, "config: expected an integer from %" PRIu64 " to %" PRIu64
			 " for '%s'", min, max, key);
		return -FERRY_EBADCFG;
	}
	*dst = (uint64_t)v->u.number.i;
	if (present)
		*present = true;
	return 0;
}

static int json_choice(yajl_val obj, const char *key, const char *const *choices,
		       char *dst, size_t size, char *err, size_t errlen)
{
	char word[16] = "";
	int rc = json_str(obj, key, word, sizeof(word), err, errlen);

	if (rc || !word[0])
		return rc;
	for (unsigned i = 0; choices[i]; i++) {
		if (!strcmp(word, choices[i]) && strlen(word) < size) {
			memcpy(dst, word, strlen(word) + 1);
			return 0;
		}
	}
	snprintf(err, errlen, "config: unexpected value '%s' for '%s'", word, key);
	return -FERRY_EBADCFG;
}

static int json_event(yajl_val obj, const char *key, enum hyp_on_event *dst, char *err,
		      size_t errlen)
{
	char word[16] = "";
	int rc = json_str(obj, key, word, sizeof(word), err, errlen);

	if (rc || !word[0])
		return rc;
	if (on_event_parse(word, dst)) {
		snprintf(err, errlen, "config: expected destroy, restart or preserve for '%s'",
			 key);
		return -FERRY_EBADCFG;
	}
	return 0;
}

int xlm_cfg_from_json(yajl_val obj, struct hyp_dom_config *out, char *err, size_t errlen)
{
	static const char *const backends[] = { "kvm", "soft", NULL };
	static const char *const logdirties[] = { "bitmap", "ring", NULL };
	struct xlm_cfg c;
	struct hyp_dom_config *d = &c.dom;
	char uuid[40] = "";
	uint64_t vcpus = 1;
	int rc;

	if (!YAJL_IS_OBJECT(obj)) {
		snprintf(err, errlen, "config: expected a JSON object");
		return -FERRY_EBADCFG;
	}
	xlm_cfg_init(&c);
	rc = json_str(obj, "name", d->name, sizeof(d->name), err, errlen) ?:
	     json_str(obj, "uuid", uuid, sizeof(uuid), err, errlen) ?:
	     json_uint(obj, "memory_mb", 1, UINT64_MAX >> 20, &d->memory_mb, NULL, err, errlen) ?:
	     json_uint(obj, "maxmem_mb", 1, UINT64_MAX >> 20, &d->maxmem_mb, &c.has_maxmem,
		       err, errlen) ?:
	     json_uint(obj, "max_memkb", 4, UINT64_MAX >> 10, &d->max_kb, NULL, err, errlen) ?:
	     json_uint(obj, "vcpus", 1, HYP_MAX_VCPUS, &vcpus, NULL, err, errlen) ?:
	     json_str(obj, "kernel", d->kernel, sizeof(d->kernel), err, errlen) ?:
	     json_str(obj, "cmdline", d->cmdline, sizeof(d->cmdline), err, errlen) ?:
	     json_choice(obj, "backend", backends, d->backend, sizeof(d->backend), err, errlen) ?:
	     json_choice(obj, "logdirty", logdirties, d->logdirty, sizeof(d->logdirty), err,
			 errlen) ?:
	     json_event(obj, "on_poweroff", &d->on_poweroff, err, errlen) ?:
	     json_event(obj, "on_reboot", &d->on_reboot, err, errlen) ?:
	     json_event(obj, "on_crash", &d->on_crash, err, errlen);
	if (rc)
		return rc;
	d->vcpus = (unsigned)vcpus;
	if (uuid[0] && xlm_uuid_parse(uuid, d->uuid)) {
		snprintf(err, errlen, "config: expected a uuid, not '%s'", uuid);
		return -FERRY_EBADCFG;
	}
	rc = dom_check(d, c.has_maxmem, err, errlen, "config");
	if (rc)
		return rc;
	if (!uuid[0])
		uuid_generate(d->uuid);
	*out = *d;
	return 0;
}

int xlm_cfg_from_json_text(const char *json, struct hyp_dom_config *out, char *err, size_t errlen)
{
	char perr[256];
	yajl_val root = yajl_tree_parse(json, perr, sizeof(perr));
	int rc;

	if (!root) {
		snprintf(err, errlen, "malformed JSON config: %s", perr);
		return -EPROTO;
	}
	rc = xlm_cfg_from_json(root, out, err, errlen);
	yajl_tree_free(root);
	return rc;
}

int xlm_cfg_gen_snapshot(yajl_gen g, const struct xlm_cfg_snapshot *s)
{
	char every[32];

	if (!s->every_s)
		return 0;
	snap_sched_format_interval(s->every_s, every, sizeof(every));
	return xlm_gen_kv_str(g, "snapshot_interval", every) ?:
	       xlm_gen_kv_int(g, "snapshot_keep", s->keep);
}

int xlm_cfg_snapshot_from_json(yajl_val obj, struct xlm_cfg_snapshot *out, char *err,
			       size_t errlen)
{
	struct xlm_cfg_snapshot s = { 0 };
	char every[32] = "", why[XLM_CFG_ERR_MAX - 64];
	uint64_t keep = 0;
	bool has_keep = false;
	int rc;

	rc = json_str(obj, "snapshot_interval", every, sizeof(every), err, errlen) ?:
	     json_uint(obj, "snapshot_keep", 1, SNAP_SCHED_KEEP_MAX, &keep, &has_keep, err,
		       errlen);
	if (rc)
		return rc;
	if (every[0] && snap_sched_parse_interval(every, &s.every_s, why, sizeof(why))) {
		snprintf(err, errlen, "config: %s for 'snapshot_interval'", why);
		return -FERRY_EBADCFG;
	}
	if (!every[0] != !has_keep) {
		snprintf(err, errlen,
			 "config: expected snapshot_interval and snapshot_keep together");
		return -FERRY_EBADCFG;
	}
	s.keep = (uint32_t)keep;
	*out = s;
	return 0;
}
