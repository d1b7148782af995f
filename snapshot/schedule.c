// SPDX-License-Identifier: MIT
/*
 * Periodic snapshots' schedules (snapshot/schedule.h): intervals, due
 * times, retention, and the UUID.sched files. A file is text, a header
 * line then one "key value" line each (value: the rest of the line):
 *
 *	ferry-snapshot-schedule 1
 *	uuid 0b6c...-...	     the file is named after it
 *	every 300		     seconds
 *	keep 12
 *	next-due 1796000000	     seconds since the epoch
 *	last-run 1795999700	     0: none yet
 *	last-result ok		     none | ok | skipped | failed
 *	runs 41
 *	missed 2
 *	last-name auto-20261206-040000	   (optional)
 *	last-reason the domain is ...	   (optional, one line)
 *
 * A newer version is refused; unknown keys are skipped.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/err.h"
#include "internal.h"
#include "snapshot/schedule.h"

#define SCHED_EXT ".sched"

static const struct {
	char unit;
	uint64_t secs;
} units[] = { { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } };

static const char *const result_names[] = {
	[SNAP_SCHED_NONE] = "none",
	[SNAP_SCHED_OK] = "ok",
	[SNAP_SCHED_SKIPPED] = "skipped",
	[SNAP_SCHED_FAILED] = "failed",
};

int snap_sched_parse_interval(const char *s, uint64_t *secs, char *err, size_t errlen)
{
	uint64_t n = 0, mul = 1;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*p))
		goto bad;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > SNAP_SCHED_EVERY_MAX)
			goto range; /* long before it could overflow */
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		mul = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (*p == units[i].unit && !p[1])
				mul = units[i].secs;
		if (!mul)
			goto bad;
	}
	if (!n)
		return snap_fail(-EINVAL, err, errlen,
				 "interval \"%s\": an interval of 0 would never end; expected at "
				 "least 1s",
				 s);
	if (n > SNAP_SCHED_EVERY_MAX / mul)
		goto range;
	*secs = n * mul;
	return 0;
range:
	return snap_fail(-ERANGE, err, errlen, "interval \"%.64s\": longer than the %llud allowed",
			 s, SNAP_SCHED_EVERY_MAX / 86400);
bad:
	return snap_fail(-EINVAL, err, errlen,
			 "interval \"%.64s\": expected a positive number with a unit s, m, h or d "
			 "(30s, 5m, 2h, 1d)",
			 s ? s : "");
}

void snap_sched_format_interval(uint64_t secs, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (secs % units[i].secs == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", secs / units[i].secs, units[i].unit);
			return;
		}
	}
}

const char *snap_sched_result_name(enum snap_sched_result r)
{
	return (unsigned)r < sizeof(result_names) / sizeof(result_names[0]) ? result_names[r] : "?";
}

static int check(uint64_t every_s, uint32_t keep, char *err, size_t errlen)
{
	if (!every_s || every_s > SNAP_SCHED_EVERY_MAX)
		return snap_fail(-EINVAL, err, errlen,
				 "interval of %" PRIu64 " s: expected 1 s to %llu days", every_s,
				 SNAP_SCHED_EVERY_MAX / 86400);
	if (!keep || keep > SNAP_SCHED_KEEP_MAX)
		return snap_fail(-EINVAL, err, errlen,
				 "keep %u: expected 1 to %u snapshots (a schedule that keeps none "
				 "would delete each as it takes it)",
				 keep, SNAP_SCHED_KEEP_MAX);
	return 0;
}

int snap_sched_init(struct snap_sched *s, const uint8_t uuid[16], uint64_t every_s, uint32_t keep,
		    int64_t now, char *err, size_t errlen)
{
	int rc = check(every_s, keep, err, errlen);

	if (rc)
		return rc;
	memset(s, 0, sizeof(*s));
	memcpy(s->uuid, uuid, 16);
	s->every_s = every_s;
	s->keep = keep;
	s->next_due = now;
	return 0;
}

/* A due time more than an interval ahead: the wall clock went back. */
static void clock_back(struct snap_sched *s, int64_t now)
{
	if (s->next_due > now + (int64_t)s->every_s)
		s->next_due = now + (int64_t)s->every_s;
}

int snap_sched_change(struct snap_sched *s, uint64_t every_s, uint32_t keep, int64_t now, char *err,
		      size_t errlen)
{
	int rc = check(every_s, keep, err, errlen);

	if (rc)
		return rc;
	s->every_s = every_s;
	s->keep = keep;
	s->next_due = s->last_run ? s->last_run + (int64_t)every_s : now;
	if (s->next_due < now)
		s->next_due = now;
	clock_back(s, now);
	return 0;
}

/* How many of the due times due, due + every, ... are before now. */
static uint64_t passed(const struct snap_sched *s, int64_t due, int64_t now)
{
	if (due >= now)
		return 0;
	return ((uint64_t)(now - due) + s->every_s - 1) / s->every_s;
}

uint64_t snap_sched_restart(struct snap_sched *s, int64_t now)
{
	uint64_t n;

	clock_back(s, now);
	n = passed(s, s->next_due, now);
	if (n) {
		s->missed += n;
		s->next_due = now;
	}
	return n;
}

void snap_sched_resume(struct snap_sched *s, int64_t now)
{
	clock_back(s, now);
	if (s->next_due < now)
		s->next_due = now;
}

uint64_t snap_sched_done(struct snap_sched *s, int64_t started, int64_t now,
			 enum snap_sched_result result, const char *detail)
{
	int64_t due = s->next_due + (int64_t)s->every_s;
	uint64_t n;

	s->last_run = started;
	s->last_result = result;
	s->last_reason[0] = 0;
	if (result == SNAP_SCHED_OK) {
		s->runs++;
		snprintf(s->last_name, sizeof(s->last_name), "%s", detail ? detail : "");
	} else {
		s->missed++;
		snprintf(s->last_reason, sizeof(s->last_reason), "%s", detail ? detail : "");
		/* One line in the file and in xl's table. */
		for (char *c = s->last_reason; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = ' ';
	}
	n = passed(s, due, now);
	s->missed += n;
	s->next_due = due + (int64_t)(n * s->every_s);
	clock_back(s, now);
	return n;
}

/* ---- names and retention ---------------------------------------------- */

static size_t digits(const char *s)
{
	return strspn(s, "0123456789");
}

bool snap_sched_is_auto(const char *name)
{
	const char *p = name;
	size_t n;

	if (strncmp(p, SNAP_SCHED_AUTO_PREFIX, strlen(SNAP_SCHED_AUTO_PREFIX)))
		return false;
	p += strlen(SNAP_SCHED_AUTO_PREFIX);
	if (digits(p) != 8 || p[8] != '-' || digits(p + 9) != 6)
		return false;
	p += 15;
	if (!*p)
		return true;
	n = digits(p + 1);
	return *p == '-' && n && n < 10 && !p[1 + n];
}

int snap_sched_auto_name(int64_t t, unsigned seq, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char stamp[32];
	int n;

	if (!gmtime_r(&tt, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900 ||
	    !strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm))
		return -ERANGE;
	n = seq ? snprintf(buf, len, SNAP_SCHED_AUTO_PREFIX "%s-%u", stamp, seq)
		: snprintf(buf, len, SNAP_SCHED_AUTO_PREFIX "%s", stamp);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Oldest first: by time, then "auto-X" before "auto-X-1" before "auto-X-10". */
static int older(const void *a, const void *b)
{
	const struct snap_info *x = *(const struct snap_info *const *)a;
	const struct snap_info *y = *(const struct snap_info *const *)b;
	size_t lx = strlen(x->name), ly = strlen(y->name);

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x->name, y->name);
}

void snap_sched_prune_pick(const struct snap_info *list, size_t n, uint32_t keep, size_t *pick,
			   size_t *npick)
{
	const struct snap_info **autos;
	size_t na = 0;

	*npick = 0;
	/* One pointer per snapshot at most; on no memory, prune nothing. */
	autos = malloc((n ? n : 1) * sizeof(*autos));
	if (!autos)
		return;
	for (size_t i = 0; i < n; i++)
		if (list[i].complete && snap_sched_is_auto(list[i].name))
			autos[na++] = &list[i];
	qsort(autos, na, sizeof(*autos), older);
	for (size_t i = 0; na > keep && i < na - keep; i++)
		pick[(*npick)++] = (size_t)(autos[i] - list);
	free(autos);
}

int snap_sched_prune(struct snap_repo *r, const uint8_t uuid[16], uint32_t keep, uint32_t *pruned,
		     char *err, size_t errlen)
{
	struct snap_info *list = NULL;
	size_t n = 0, npick = 0, *pick;
	int rc;

	*pruned = 0;
	rc = snap_list(r, uuid, &list, &n);
	if (rc)
		return snap_fail(rc, err, errlen, "listing the snapshots to prune: %s",
				 ferry_strerror(-rc));
	pick = malloc((n ? n : 1) * sizeof(*pick));
	if (!pick) {
		free(list);
		return snap_fail(-ENOMEM, err, errlen, "pruning: out of memory");
	}
	snap_sched_prune_pick(list, n, keep, pick, &npick);
	for (size_t i = 0; !rc && i < npick; i++) {
		rc = snap_delete(r, uuid, list[pick[i]].name, err, errlen);
		if (!rc)
			(*pruned)++;
	}
	free(pick);
	free(list);
	return rc;
}

/* ---- files -------------------------------------------------------------- */

static void sched_path(const char *dir, const uint8_t uuid[16], char *out, size_t len)
{
	char u[37];

	snap_uuid_str(uuid, u);
	snprintf(out, len, "%s/%s" SCHED_EXT, dir, u);
}

/* Makes dir if missing, and its entry in the parent durable. */
static int dir_make(const char *dir, char *err, size_t errlen)
{
	char parent[PATH_MAX];

	if (!mkdir(dir, 0700)) {
		snprintf(parent, sizeof(parent), "%s", dir);
		return snap_fsync_dir(dirname(parent), err, errlen);
	}
	if (errno == EEXIST)
		return 0;
	return snap_fail(-errno, err, errlen, "cannot make %s: %s", dir, ferry_strerror(errno));
}

int snap_sched_save(const char *dir, const struct snap_sched *s, char *err, size_t errlen)
{
	char path[PATH_MAX], u[37], text[2048];
	struct afile *f;
	ssize_t w;
	int n, rc;

	rc = dir_make(dir, err, errlen);
	if (rc)
		return rc;
	snap_uuid_str(s->uuid, u);
	n = snprintf(text, sizeof(text),
		     "ferry-snapshot-schedule %d\nuuid %s\nevery %" PRIu64 "\nkeep %u\n"
		     "next-due %" PRId64 "\nlast-run %" PRId64 "\nlast-result %s\n"
		     "runs %" PRIu64 "\nmissed %" PRIu64 "\n%s%s%s%s%s%s",
		     SNAP_SCHED_VERSION, u, s->every_s, s->keep, s->next_due, s->last_run,
		     snap_sched_result_name(s->last_result), s->runs, s->missed,
		     s->last_name[0] ? "last-name " : "", s->last_name, s->last_name[0] ? "\n" : "",
		     s->last_reason[0] ? "last-reason " : "", s->last_reason,
		     s->last_reason[0] ? "\n" : "");
	sched_path(dir, s->uuid, path, sizeof(path));
	rc = afile_open(path, &f, err, errlen);
	if (rc)
		return rc;
	w = write(afile_fd(f), text, (size_t)n);
	if (w != n) {
		rc = w < 0 ? -errno : -EIO;
		snap_fail(rc, err, errlen, "writing %s: %s", afile_tmp_path(f),
			  ferry_strerror(-rc));
		afile_nospace_hint(f, rc, w < 0 ? 0 : (uint64_t)w, err, errlen);
		afile_abort(f);
		return rc;
	}
	return afile_commit(f, err, errlen);
}

int snap_sched_remove(const char *dir, const uint8_t uuid[16], char *err, size_t errlen)
{
	char path[PATH_MAX];

	sched_path(dir, uuid, path, sizeof(path));
	if (unlink(path))
		return snap_fail(-errno, err, errlen, "cannot remove %s: %s", path,
				 ferry_strerror(errno));
	return snap_fsync_dir(dir, err, errlen);
}

/* "xxxxxxxx-xxxx-..." into u: hex digits, then the canonical form must
 * give s back (which checks the dashes). */
static int uuid_parse(const char *s, uint8_t u[16])
{
	char back[37];
	unsigned k = 0;

	memset(u, 0, 16);
	for (const char *p = s; *p; p++) {
		if (*p == '-')
			continue;
		if (!isxdigit((unsigned char)*p) || k >= 32)
			return -EINVAL;
		u[k / 2] |= (uint8_t)((isdigit((unsigned char)*p)
					       ? *p - '0'
					       : tolower((unsigned char)*p) - 'a' + 10)
				      << (k % 2 ? 0 : 4));
		k++;
	}
	snap_uuid_str(u, back);
	return k == 32 && !strcasecmp(back, s) ? 0 : -EINVAL;
}

static int num(const char *v, uint64_t max, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	*out = strtoull(v, &end, 10);
	return *end || errno || *out > max ? -EINVAL : 0;
}

enum { HAS_UUID = 1, HAS_EVERY = 2, HAS_KEEP = 4, HAS_DUE = 8, HAS_ALL = 15 };

/* One "key value" line into s; -EINVAL for a bad one. Unknown keys are
 * skipped: a later Ferry of the same version may add some. */
static int sched_line(struct snap_sched *s, const char *key, const char *val, unsigned *has)
{
	uint64_t x = 0;
	int rc = 0;

	if (!strcmp(key, "uuid")) {
		rc = uuid_parse(val, s->uuid);
		*has |= HAS_UUID;
	} else if (!strcmp(key, "every")) {
		rc = num(val, SNAP_SCHED_EVERY_MAX, &s->every_s) ?: (s->every_s ? 0 : -EINVAL);
		*has |= HAS_EVERY;
	} else if (!strcmp(key, "keep")) {
		rc = num(val, SNAP_SCHED_KEEP_MAX, &x) ?: (x ? 0 : -EINVAL);
		s->keep = (uint32_t)x;
		*has |= HAS_KEEP;
	} else if (!strcmp(key, "next-due") || !strcmp(key, "last-run")) {
		rc = num(val, INT64_MAX, &x);
		*(key[0] == 'n' ? &s->next_due : &s->last_run) = (int64_t)x;
		*has |= key[0] == 'n' ? HAS_DUE : 0;
	} else if (!strcmp(key, "runs") || !strcmp(key, "missed")) {
		rc = num(val, UINT64_MAX, key[0] == 'r' ? &s->runs : &s->missed);
	} else if (!strcmp(key, "last-result")) {
		rc = -EINVAL;
		for (unsigned i = 0; i < sizeof(result_names) / sizeof(result_names[0]); i++)
			if (!strcmp(val, result_names[i])) {
				s->last_result = (enum snap_sched_result)i;
				rc = 0;
			}
	} else if (!strcmp(key, "last-name")) {
		char e[8];

		rc = snap_name_check(val, e, sizeof(e));
		if (!rc)
			snprintf(s->last_name, sizeof(s->last_name), "%s", val);
	} else if (!strcmp(key, "last-reason")) {
		rc = strlen(val) < sizeof(s->last_reason) ? 0 : -EINVAL;
		if (!rc)
			strcpy(s->last_reason, val);
	}
	return rc;
}

int snap_sched_load(const char *path, struct snap_sched *s, char *err, size_t errlen)
{
	char *text, *line, *save = NULL, u[37 + sizeof(SCHED_EXT)];
	const char *base = strrchr(path, '/');
	unsigned version, has = 0;
	int rc, n = 0;

	memset(s, 0, sizeof(*s));
	rc = snap_read_text(path, &text, err, errlen);
	if (rc)
		return rc;
	if (sscanf(text, "ferry-snapshot-schedule %u\n%n", &version, &n) != 1 || !n) {
		rc = snap_fail(-EINVAL, err, errlen, "%s: corrupt schedule: no header line", path);
		goto out;
	}
	if (version > SNAP_SCHED_VERSION) {
		rc = snap_fail(-EPROTONOSUPPORT, err, errlen,
			       "%s: schedule format version %u is newer than this Ferry's %d", path,
			       version, SNAP_SCHED_VERSION);
		goto out;
	}
	for (line = strtok_r(text + n, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (sp)
			*sp = 0;
		if (!sp || sched_line(s, line, sp + 1, &has)) {
			rc = snap_fail(-EINVAL, err, errlen,
				       "%s: corrupt schedule: bad line \"%s%s%.64s\"", path, line,
				       sp ? " " : "", sp ? sp + 1 : "");
			goto out;
		}
	}
	if (has != HAS_ALL) {
		rc = snap_fail(-EINVAL, err, errlen,
			       "%s: corrupt schedule: uuid, every, keep or next-due missing", path);
		goto out;
	}
	snap_uuid_str(s->uuid, u);
	strcat(u, SCHED_EXT);
	if (strcmp(base ? base + 1 : path, u))
		rc = snap_fail(-EINVAL, err, errlen,
			       "%s: corrupt schedule: its uuid is not its file's name", path);
out:
	free(text);
	return rc;
}

static int by_uuid(const void *a, const void *b)
{
	return memcmp(((const struct snap_sched *)a)->uuid, ((const struct snap_sched *)b)->uuid,
		      16);
}

int snap_sched_load_all(const char *dir, struct snap_sched **out, size_t *n, snap_sched_bad_fn bad,
			void *opaque, char *err, size_t errlen)
{
	struct snap_sched *v = NULL, *t;
	size_t cap = 0, len;
	char path[PATH_MAX], msg[512];
	struct dirent *e;
	DIR *d;
	int rc = 0;

	*out = NULL;
	*n = 0;
	d = opendir(dir);
	if (!d && errno == ENOENT)
		return 0;
	if (!d)
		return snap_fail(-errno, err, errlen, "cannot read %s: %s", dir, ferry_strerror(errno));
	while ((e = readdir(d))) {
		len = strlen(e->d_name);
		/* afile's temporaries start with '.' */
		if (e->d_name[0] == '.' || len <= strlen(SCHED_EXT) ||
		    strcmp(e->d_name + len - strlen(SCHED_EXT), SCHED_EXT))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			t = realloc(v, cap * sizeof(*v));
			if (!t) {
				rc = snap_fail(-ENOMEM, err, errlen, "reading %s: out of memory",
					       dir);
				break;
			}
			v = t;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		rc = snap_sched_load(path, &v[*n], msg, sizeof(msg));
		if (rc && bad)
			bad(opaque, path, rc, msg);
		if (!rc)
			(*n)++;
		rc = 0;
	}
	closedir(d);
	if (rc) {
		free(v);
		*n = 0;
		return rc;
	}
	qsort(v, *n, sizeof(*v), by_uuid);
	*out = v;
	return 0;
}
