// SPDX-License-Identifier: MIT
/*
 * ferryd: the hypervisor core plus the toolstack server, one per host.
 *
 * Start-up order: flags; run and state directories (ours, writable by no
 * one else); the pidfile lock (one ferryd per run dir) and the state dir's
 * lock (one per state dir); daemonize (the parent waits until the child
 * reports that it listens, so failures show up on the starting terminal and
 * in the exit status); the log file; the hyp core; the xenstore and its
 * xenstored sockets; the migration listener (--listen) and TLS context; the
 * domains the last stop saved (ctl-lifetime.c); the control socket; the
 * loop. SIGTERM and SIGINT wait, blocked, until the control socket's
 * handlers take them; the stop then saves every domain (--on-stop).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/size.h"
#include "devices/pv.h"
#include "guests/soft.h"
#include "internal.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ferryd [OPTIONS]\n"
		"The Ferry hypervisor daemon: owns machine memory and all domains, and\n"
		"serves xl on a control socket.\n"
		"\n"
		"Options:\n"
		"  --run-dir DIR      control socket ferryd.sock and ferryd.pid (default /run/ferry)\n"
		"  --state-dir DIR    ferryd.log, console/ logs, domains/ records, the\n"
		"                     snapshots/ repository and snapshot-schedules/\n"
		"                     (default /var/lib/ferry)\n"
		"  --backend B        kvm, soft or auto (default auto: kvm when /dev/kvm works)\n"
		"  --pcpus N          physical CPUs to schedule on (default: the host's)\n"
		"  --memory SIZE      machine memory pool, e.g. 4G, 512M (default 4G), at most\n"
		"                     RAM plus swap; what a destroyed domain held stays for\n"
		"                     the next restore\n"
		"  --prealloc         back half the pool with host memory from the start, in\n"
		"                     the background at low priority, as if a domain had\n"
		"                     held it: the first restore or incoming migration then\n"
		"                     writes into memory the host has (a guest up to half\n"
		"                     the pool wholly). ferryd holds that memory from then\n"
		"                     on (default: off)\n"
		"  --pool-file PATH   keep the pool in PATH, a file on tmpfs, not in memory\n"
		"                     that goes with ferryd: the next ferryd on PATH finds\n"
		"                     what this one's domains (or --prealloc) backed, and\n"
		"                     its first restore or incoming migration writes into\n"
		"                     memory the host has. The memory stays held after\n"
		"                     ferryd exits, until PATH is removed. Created 0600;\n"
		"                     refused if not ours alone, not on tmpfs, in use by\n"
		"                     another ferryd, or larger than its tmpfs has room for\n"
		"                     (default: none, a memfd)\n"
		"  --guest PATH       the built-in guest ELF (default: guests/ferry-guest.elf\n"
		"                     next to this binary)\n"
		"  --log-level L      error, warning, info or debug (default info)\n"
		"  --listen ADDR[:PORT]\n"
		"                     accept incoming migrations there (default port 8002;\n"
		"                     no listener without this flag)\n"
		"  --tls-dir DIR      ca.pem plus this host's NAME.pem/NAME.key (xl tls-setup)\n"
		"  --tls-name NAME    which certificate to present (default: the ADDR of --listen)\n"
		"  --insecure         migrate over plain TCP, no TLS (both ends must say so)\n"
		"  --no-xenstore      no xenstore: no RUN_DIR/xenstored/socket{,_ro}\n"
		"  --net-timeout S    a migration peer that moves no byte for S seconds is\n"
		"                     declared dead and the migration fails (default 30)\n"
		"  --on-stop save|destroy\n"
		"                     what SIGTERM (or SIGINT) does to the domains (default\n"
		"                     save): save each into STATE_DIR/saved/ (paused ones stay\n"
		"                     paused, fenced ones fenced), then exit; the next start\n"
		"                     restores them and logs each. destroy: destroy them all\n"
		"  --stop-timeout S   seconds from the signal for the whole stop (default %u);\n"
		"                     a domain not saved by then is named in the log and\n"
		"                     destroyed, so the stop always ends\n"
		"  --snapshot-dedup domain|host\n"
		"                     when the snapshot repository is made: a page is stored\n"
		"                     once per domain (default), or once per host, shared\n"
		"                     between domains (which tells a guest, by timing, that\n"
		"                     another holds a page); a repository keeps its setting\n"
		"  --run-log FILE     append a line for every start and stop of a domain's\n"
		"                     vCPUs: CLOCK_MONOTONIC ns, dDOMID, run or stop (to\n"
		"                     audit that an HA pair's copies never ran at once)\n"
		"  --foreground, -F   stay in the foreground and log to stderr too\n"
		"  --help, -h         this text\n"
		"\n"
		"ferryd holds every domain in its own process: a crash of ferryd (kill -9,\n"
		"the OOM killer) loses every running domain. Only a stop (SIGTERM, SIGINT)\n"
		"saves them. The answer to a crash is a pair of hosts (xl remus, coming).\n"
		"A stop first cancels running jobs (migrations short of go; past go they\n"
		"stop waiting and stay fenced); once the domains are dealt with, jobs still\n"
		"running get at most 10 s more, then ferryd exits without them.\n",
		CTL_STOP_TIMEOUT_S);
}

/*
 * The most machine memory this host can back: RAM plus swap
 * (/proc/meminfo's MemTotal + SwapTotal), or 0 when unknown. The pool is a
 * sparse memfd that costs nothing until a guest touches it, so a pool up to
 * that bound is fine (memory shared with the rest of the host, as any
 * overcommit); past it, guests that fill their memory would meet the OOM
 * killer instead of "not enough memory" at create.
 */
static uint64_t host_memory_bytes(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kb, total = 0;
	char line[128];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1 ||
		    sscanf(line, "SwapTotal: %llu kB", &kb) == 1)
			total += kb;
	fclose(f);
	return (uint64_t)total << 10;
}

static int memory_check(const char *arg, uint64_t bytes)
{
	uint64_t host = host_memory_bytes();

	if (!host || bytes <= host)
		return 0;
	fprintf(stderr,
		"ferryd: --memory %s: more than this host can back (%" PRIu64 " MiB of RAM and "
		"swap); give at most that\n",
		arg, host >> 20);
	return -EINVAL;
}

enum { OPT_RUN = 256, OPT_STATE, OPT_BACKEND, OPT_PCPUS, OPT_MEMORY, OPT_GUEST,
       OPT_LOGLEVEL, OPT_LISTEN, OPT_TLSDIR, OPT_TLSNAME, OPT_INSECURE,
       OPT_NOXS, OPT_NETTIMEOUT, OPT_ONSTOP, OPT_STOPTIMEOUT, OPT_SNAPDEDUP, OPT_RUNLOG,
       OPT_PREALLOC, OPT_POOLFILE };

/* A whole number in [1, max] for --name (what: the unit, for the message). */
static int parse_count(const char *name, const char *arg, unsigned long max, const char *what,
		       unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || !v || v > max) {
		fprintf(stderr, "ferryd: --%s: expected 1 to %lu%s, not '%s'\n", name, max, what,
			arg);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_log_level(const char *arg)
{
	static const char *const levels[] = { "error", "warning", "info", "debug" };

	for (unsigned i = 0; i < ARRAY_SIZE(levels); i++) {
		if (!strcmp(arg, levels[i])) {
			log_set_level((enum log_level)i);
			return 0;
		}
	}
	fprintf(stderr, "ferryd: --log-level: expected error, warning, info or debug, not '%s'\n",
		arg);
	return -EINVAL;
}

/* One option of getopt_long's; 0 or -EINVAL (said on stderr). */
static int parse_opt(int opt, const char *arg, struct ferryd_opts *o, bool *memory_given)
{
	switch (opt) {
	case OPT_RUN: o->run_dir = arg; return 0;
	case OPT_STATE: o->state_dir = arg; return 0;
	case OPT_BACKEND:
		if (strcmp(arg, "kvm") && strcmp(arg, "soft") && strcmp(arg, "auto")) {
			fprintf(stderr, "ferryd: --backend: expected kvm, soft or auto, not '%s'\n",
				arg);
			return -EINVAL;
		}
		o->backend = arg;
		return 0;
	case OPT_PCPUS: return parse_count("pcpus", arg, 4096, "", &o->pcpus);
	case OPT_MEMORY:
		if (size_parse(arg, 1 << 20, &o->memory_bytes) || !o->memory_bytes) {
			fprintf(stderr, "ferryd: --memory: expected a size like 4G or 512M, not '%s'\n",
				arg);
			return -EINVAL;
		}
		*memory_given = true;
		return memory_check(arg, o->memory_bytes) ? -EINVAL : 0;
	case OPT_GUEST: snprintf(o->guest, sizeof(o->guest), "%s", arg); return 0;
	case OPT_LOGLEVEL: return parse_log_level(arg);
	case OPT_LISTEN: o->listen = arg; return 0;
	case OPT_TLSDIR: o->tls_dir = arg; return 0;
	case OPT_TLSNAME: o->tls_name = arg; return 0;
	case OPT_INSECURE: o->insecure = true; return 0;
	case OPT_NOXS: o->no_xenstore = true; return 0;
	case OPT_NETTIMEOUT:
		return parse_count("net-timeout", arg, 3600, " seconds", &o->net_timeout_s);
	case OPT_ONSTOP:
		if (strcmp(arg, "save") && strcmp(arg, "destroy")) {
			fprintf(stderr, "ferryd: --on-stop: expected save or destroy, not '%s'\n", arg);
			return -EINVAL;
		}
		o->on_stop_destroy = !strcmp(arg, "destroy");
		return 0;
	case OPT_STOPTIMEOUT:
		return parse_count("stop-timeout", arg, 86400, " seconds", &o->stop_timeout_s);
	case OPT_SNAPDEDUP:
		if (strcmp(arg, "domain") && strcmp(arg, "host")) {
			fprintf(stderr, "ferryd: --snapshot-dedup: expected domain or host, not '%s'\n",
				arg);
			return -EINVAL;
		}
		o->snapshot_dedup_host = !strcmp(arg, "host");
		return 0;
	case OPT_RUNLOG: o->run_log = arg; return 0;
	case OPT_PREALLOC: o->prealloc = true; return 0;
	case OPT_POOLFILE:
		/* Opened once daemonized, in / */
		if (arg[0] != '/') {
			fprintf(stderr, "ferryd: --pool-file: expected an absolute path, not '%s'\n",
				arg);
			return -EINVAL;
		}
		o->pool_file = arg;
		return 0;
	case 'F': o->foreground = true; return 0;
	case 'h': usage(stdout); exit(0);
	default: usage(stderr); return -EINVAL;
	}
}

/* --tls-name defaults to the ADDR of --listen's ADDR[:PORT] or [V6]:PORT. */
static int default_tls_name(struct ferryd_opts *o)
{
	static char name[256];
	const char *a = o->listen, *end;

	if (o->listen && !o->insecure && !o->tls_dir) {
		fprintf(stderr, "ferryd: --listen needs --tls-dir (or --insecure for plain TCP)\n");
		return -EINVAL;
	}
	if (o->tls_dir && !o->tls_name && a) {
		if (*a == '[') {
			a++;
			end = strchr(a, ']');
		} else {
			end = strrchr(a, ':');
		}
		if (!end)
			end = a + strlen(a);
		snprintf(name, sizeof(name), "%.*s", (int)(end - a), a);
		o->tls_name = name;
	}
	if (o->tls_dir && !o->tls_name) {
		fprintf(stderr, "ferryd: --tls-dir needs --tls-name when there is no --listen\n");
		return -EINVAL;
	}
	return 0;
}

/* --guest defaults to the image built beside this binary. */
static int default_guest(struct ferryd_opts *o)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (o->guest[0])
		return 0;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0) {
		fprintf(stderr, "ferryd: cannot find my own binary: %s; use --guest\n",
			strerror(errno));
		return -errno;
	}
	exe[n] = 0;
	snprintf(o->guest, sizeof(o->guest), "%s/guests/ferry-guest.elf", dirname(exe));
	return 0;
}

static int parse_args(int argc, char **argv, struct ferryd_opts *o)
{
	static const struct option longopts[] = {
		{ "run-dir", required_argument, NULL, OPT_RUN },
		{ "state-dir", required_argument, NULL, OPT_STATE },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "pcpus", required_argument, NULL, OPT_PCPUS },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "guest", required_argument, NULL, OPT_GUEST },
		{ "log-level", required_argument, NULL, OPT_LOGLEVEL },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "tls-dir", required_argument, NULL, OPT_TLSDIR },
		{ "tls-name", required_argument, NULL, OPT_TLSNAME },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ "no-xenstore", no_argument, NULL, OPT_NOXS },
		{ "net-timeout", required_argument, NULL, OPT_NETTIMEOUT },
		{ "on-stop", required_argument, NULL, OPT_ONSTOP },
		{ "stop-timeout", required_argument, NULL, OPT_STOPTIMEOUT },
		{ "snapshot-dedup", required_argument, NULL, OPT_SNAPDEDUP },
		{ "run-log", required_argument, NULL, OPT_RUNLOG },
		{ "prealloc", no_argument, NULL, OPT_PREALLOC },
		{ "pool-file", required_argument, NULL, OPT_POOLFILE },
		{ "foreground", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool memory_given = false;
	int opt, err;

	o->run_dir = "/run/ferry";
	o->state_dir = "/var/lib/ferry";
	o->backend = "auto";
	o->memory_bytes = 4ULL << 30;
	o->stop_timeout_s = CTL_STOP_TIMEOUT_S;
	while ((opt = getopt_long(argc, argv, "Fh", longopts, NULL)) != -1) {
		err = parse_opt(opt, optarg, o, &memory_given);
		if (err)
			return err;
	}
	if (!memory_given) {
		uint64_t host = host_memory_bytes() & ~((1ULL << 20) - 1);

		if (host && host < o->memory_bytes)
			o->memory_bytes = host; /* the default, on a small host */
	}
	if (optind < argc) {
		fprintf(stderr, "ferryd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	err = default_tls_name(o);
	return err ? err : default_guest(o);
}

/* mkdir -p: missing parents are created too (0755 for parents). */
static int mkdir_mode(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) && errno != EEXIST) {
			fprintf(stderr, "ferryd: cannot create %s: %s\n", buf, strerror(errno));
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(path, mode) && errno != EEXIST) {
		fprintf(stderr, "ferryd: cannot create %s: %s\n", path, strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * A directory ferryd keeps its sockets, pidfile, logs and records in must
 * be ours (root's, for a ferryd run as root) and writable by nobody else:
 * whoever else can write there can plant a symlink where ferryd, as root,
 * will write.
 */
static int dir_check(const char *path, const char *what)
{
	struct stat st;

	if (stat(path, &st)) {
		fprintf(stderr, "ferryd: cannot stat %s %s: %s\n", what, path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "ferryd: %s %s is not a directory\n", what, path);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		fprintf(stderr,
			"ferryd: %s %s belongs to uid %u, not to me (uid %u); refusing it\n", what,
			path, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		fprintf(stderr, "ferryd: %s %s is writable by others (mode %03o); refusing it\n",
			what, path, (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	return 0;
}

static int make_dirs(const struct ferryd_opts *o)
{
	char path[PATH_MAX];
	int rc;

	rc = mkdir_mode(o->run_dir, 0700) ?: dir_check(o->run_dir, "run dir");
	if (!rc && chmod(o->run_dir, 0700)) {
		rc = -errno;
		fprintf(stderr, "ferryd: cannot chmod %s: %s\n", o->run_dir, strerror(errno));
	}
	rc = rc ?: mkdir_mode(o->state_dir, 0700) ?: dir_check(o->state_dir, "state dir");
	snprintf(path, sizeof(path), "%s/console", o->state_dir);
	rc = rc ?: mkdir_mode(path, 0700);
	snprintf(path, sizeof(path), "%s/domains", o->state_dir);
	rc = rc ?: mkdir_mode(path, 0700);
	return rc;
}

/* Opens a file of ours in a checked directory: never through a symlink,
 * and only a regular file (O_NONBLOCK: a FIFO planted there must not hang
 * the open). */
static int open_own(const char *path, int flags)
{
	struct stat st;
	int fd = open(path, flags | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);

	if (fd < 0) {
		int err = errno;

		if (err == ELOOP)
			fprintf(stderr, "ferryd: %s is a symbolic link; refusing to follow it\n",
				path);
		else
			fprintf(stderr, "ferryd: cannot open %s: %s\n", path, ferry_strerror(err));
		return -err;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "ferryd: %s is not a regular file; refusing it\n", path);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/*
 * Locks DIR/NAME (RUN_DIR/ferryd.pid: one ferryd per run dir;
 * STATE_DIR/ferryd.lock: one per state dir); the lock lives as long as the
 * returned fd.
 */
static int dir_lock(const char *dir, const char *name, const char *what, char *path, size_t size)
{
	char buf[32] = "";
	int fd;

	snprintf(path, size, "%s/%s", dir, name);
	fd = open_own(path, O_RDWR);
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int err = errno;

		if (read(fd, buf, sizeof(buf) - 1) < 0)
			buf[0] = 0;
		buf[strcspn(buf, "\n")] = 0;
		if (err == EWOULDBLOCK)
			fprintf(stderr, "ferryd: another ferryd%s%s already owns %s %s\n",
				buf[0] ? " (pid " : "", buf[0] ? strcat(buf, ")") : "", what, dir);
		else
			fprintf(stderr, "ferryd: cannot lock %s: %s\n", path, ferry_strerror(err));
		close(fd);
		return -err;
	}
	return fd;
}

static int pidfile_write(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (ftruncate(fd, 0) || pwrite(fd, buf, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

/*
 * Double fork. The original process waits on a pipe for one status byte
 * from the daemon (0: listening) and exits with it. Returns the write end
 * in the daemon, or a negative errno.
 */
static int daemonize(void)
{
	int p[2];
	pid_t pid;
	char c = 1;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			c = 1; /* the daemon died before it was ready */
		exit(c);
	}
	close(p[0]);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (chdir("/"))
		return -errno;
	return p[1];
}

static void ready(int fd, char status)
{
	if (fd < 0)
		return;
	if (write(fd, &status, 1) != 1) {
		/* the parent is gone; nothing to tell */
	}
	close(fd);
}

static void redirect_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/* The process's files: its locks, its log, the pipe to the parent that
 * waits for ready (daemonize). */
struct ferryd_proc {
	char pidpath[PATH_MAX];
	int lockfd, statefd, logfd, readyfd;
};

/* Directories, locks and the log; daemonizes unless --foreground. 0, or
 * -1 (said on stderr). */
static int proc_start(const struct ferryd_opts *o, struct ctl_server *srv,
		      struct ferryd_proc *p)
{
	char path[PATH_MAX];
	int rc;

	p->readyfd = -1;
	if (make_dirs(o))
		return -1;
	p->lockfd = dir_lock(o->run_dir, "ferryd.pid", "run dir", p->pidpath, sizeof(p->pidpath));
	if (p->lockfd < 0)
		return -1;
	p->statefd = dir_lock(o->state_dir, "ferryd.lock", "state dir", path, sizeof(path));
	if (p->statefd < 0) {
		unlink(p->pidpath);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/ferryd.log", o->state_dir);
	p->logfd = open_own(path, O_WRONLY | O_APPEND);
	if (p->logfd < 0) {
		unlink(p->pidpath);
		return -1;
	}
	srv->run_log_fd = -1;
	if (o->run_log) {
		srv->run_log_fd = open_own(o->run_log, O_WRONLY | O_APPEND);
		if (srv->run_log_fd < 0) {
			unlink(p->pidpath);
			return -1;
		}
	}
	snprintf(srv->sock_path, sizeof(srv->sock_path), "%s/%s", o->run_dir, XLM_SOCKET_NAME);
	if (strlen(srv->sock_path) >= 108) {
		fprintf(stderr, "ferryd: socket path %s is too long for AF_UNIX\n", srv->sock_path);
		return -1;
	}
	if (!o->foreground) {
		p->readyfd = daemonize();
		if (p->readyfd < 0) {
			fprintf(stderr, "ferryd: cannot daemonize: %s\n", ferry_strerror(-p->readyfd));
			return -1;
		}
	}
	rc = pidfile_write(p->lockfd) ?: pidfile_write(p->statefd);
	if (rc) {
		fprintf(stderr, "ferryd: cannot write %s: %s\n", p->pidpath, ferry_strerror(-rc));
		return -1;
	}
	log_set_fd(p->logfd);
	signal(SIGPIPE, SIG_IGN);
	log_info("ferryd %s starting (pid %d): run dir %s, state dir %s, backend %s, "
		 "memory %" PRIu64 " MiB", FERRYD_VERSION, (int)getpid(), o->run_dir,
		 o->state_dir, o->backend, o->memory_bytes >> 20);
	return 0;
}

static int hyp_start(const struct ferryd_opts *o, struct ctl_server *srv,
		     struct hyp_params *hp)
{
	int rc;

	hp->backend = o->backend;
	hp->pcpus = o->pcpus;
	hp->memory_bytes = o->memory_bytes;
	hp->prealloc = o->prealloc;
	hp->pool_file = o->pool_file;
	hp->state_dir = o->state_dir;
	hp->guest_elf = o->guest;
	hp->soft_guest = &wl_soft_guest_ops; /* the built-in guest's workloads */
	rc = dev_pv_new(&srv->devs);
	if (rc) {
		log_err("cannot set up the PV backends: %s", ferry_strerror(rc));
		return rc;
	}
	hp->pv_backend = &dev_pv_backend_ops;
	hp->pv_backend_opaque = srv->devs;
	rc = hyp_create(hp, &srv->hyp);
	if (rc) {
		log_err("cannot start the hypervisor core: %s", ferry_strerror(rc));
		dev_pv_free(srv->devs);
	}
	return rc;
}

/* The control socket comes last: once it exists, the xenstored sockets and
 * the migration listener are up too (scripts and tests wait for it). */
static int services_start(struct ctl_server *srv)
{
	int rc = ctl_jobs_start(srv) ?: ctl_snapshot_start(srv);

	if (!rc && !srv->opts->no_xenstore)
		rc = ctl_xs_start(srv);
	if (!rc)
		rc = ctl_migrate_start(srv);
	if (!rc)
		rc = ctl_lifetime_start(srv);
	if (!rc)
		rc = ctl_snapsched_start(srv);
	if (!rc)
		rc = ctl_server_start(srv);
	return rc;
}

/* After the loop has ended: frees everything, in the order the users go. */
static int services_fini(struct ctl_server *srv, struct ferryd_proc *p)
{
	if (ctl_jobs_abandoned(srv)) {
		/* A job still blocked uses the hyp core and more: leave now,
		 * without freeing what it uses (ctl-jobs.c logged which). */
		log_err("ferryd stopped with jobs still running");
		unlink(p->pidpath);
		fflush(NULL);
		_exit(1);
	}
	ctl_lifetime_fini(srv);
	/* The jobs (receivers included) use the hyp core: they are done. */
	ctl_jobs_fini(srv);
	ctl_snapsched_fini(srv);
	ctl_snapshot_fini(srv);
	ctl_remus_fini(srv);
	ctl_migrate_fini(srv);
	hyp_destroy(srv->hyp);
	dev_pv_free(srv->devs);
	ctl_server_fini(srv);
	ctl_xs_fini(srv);
	ctl__events_fini(srv);
	if (uv_loop_close(srv->loop))
		log_warn("event loop closed with handles still open");
	log_info("ferryd stopped");
	unlink(p->pidpath);
	close(p->lockfd);
	close(p->statefd);
	close(p->logfd);
	if (srv->run_log_fd >= 0)
		close(srv->run_log_fd);
	return 0;
}

int main(int argc, char **argv)
{
	static struct ferryd_opts opts;
	static struct ferryd_proc proc;
	struct ctl_server srv = { 0 };
	struct hyp_params hp = { 0 };
	sigset_t stopsigs;
	uv_loop_t loop;
	int rc;

	/* Until the stop's handlers are installed a signal waits (threads
	 * started meanwhile inherit the mask), so no restored domain is left
	 * to the default action. */
	sigemptyset(&stopsigs);
	sigaddset(&stopsigs, SIGTERM);
	sigaddset(&stopsigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stopsigs, NULL);
	if (parse_args(argc, argv, &opts) || proc_start(&opts, &srv, &proc))
		return 1;

	uv_loop_init(&loop);
	srv.loop = &loop;
	srv.opts = &opts;
	rc = ctl__events_init(&srv, &hp.events);
	if (rc) {
		log_err("cannot set up the event bridge: %s", uv_strerror(rc));
		goto err_loop;
	}
	if (hyp_start(&opts, &srv, &hp))
		goto err_events;
	if (services_start(&srv))
		goto err_svc;
	pthread_sigmask(SIG_UNBLOCK, &stopsigs, NULL);
	if (proc.readyfd >= 0) {
		log_set_stderr(0);
		redirect_stdio();
	}
	ready(proc.readyfd, 0);
	proc.readyfd = -1;

	uv_run(&loop, UV_RUN_DEFAULT);
	return services_fini(&srv, &proc);

err_svc:
	/* Before the jobs' queue goes: hyp events then find the bridge closed. */
	ctl__events_close(&srv);
	ctl_xs_stop(&srv);
	ctl_migrate_stop(&srv);
	ctl_jobs_stop(&srv);
	ctl_snapsched_fini(&srv);
	uv_run(&loop, UV_RUN_NOWAIT);
	ctl_lifetime_fini(&srv);
	ctl_jobs_fini(&srv);
	ctl_snapshot_fini(&srv);
	ctl_remus_fini(&srv);
	ctl_migrate_fini(&srv);
	ctl_xs_fini(&srv);
	hyp_destroy(srv.hyp);
	dev_pv_free(srv.devs);
err_events:
	ctl__events_close(&srv);
	uv_run(&loop, UV_RUN_DEFAULT);
	ctl__events_fini(&srv);
err_loop:
	uv_loop_close(&loop);
	ready(proc.readyfd, 1);
	unlink(proc.pidpath);
	return 1;
}
