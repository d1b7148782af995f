// SPDX-License-Identifier: MIT
/* strm_io: memory and fd backends, the generic layer, CRC32C, codec names. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "frame-data.h"
#include "stream/io.h"

static void quiet(void)
{
	log_set_stderr(0);
}

/* Write sizes that do not line up with anything. */
static const size_t odd_sizes[] = {1, 7, 4093, 3, 65537, 0, 300001, 511, 4096, 13};

static void write_odd(struct strm_io *io, const uint8_t *buf, size_t len)
{
	size_t pos = 0;

	for (unsigned int i = 0; pos < len; i++) {
		size_t n = odd_sizes[i % (sizeof(odd_sizes) / sizeof(odd_sizes[0]))];

		n = n < len - pos ? n : len - pos;
		if (i % 3 == 1 && n >= 2) {
			/* the same bytes as two iovecs */
			struct iovec iov[2] = {
				{.iov_base = (void *)(buf + pos), .iov_len = n / 2},
				{.iov_base = (void *)(buf + pos + n / 2), .iov_len = n - n / 2},
			};

			cr_assert_eq(strm_io_writev(io, iov, 2), 0, "%s", strm_io_error(io));
		} else {
			cr_assert_eq(strm_io_write(io, buf + pos, n), 0, "%s", strm_io_error(io));
		}
		pos += n;
	}
}

static void read_odd(struct strm_io *io, uint8_t *buf, size_t len)
{
	size_t pos = 0;

	for (unsigned int i = 0; pos < len; i++) {
		size_t n = odd_sizes[(i + 3) % (sizeof(odd_sizes) / sizeof(odd_sizes[0]))];
		ssize_t got;

		n = n < len - pos ? n : len - pos;
		if (!n)
			continue;
		got = strm_io_read(io, buf + pos, n);
		cr_assert_gt(got, 0, "read at %zu: %zd %s", pos, got, strm_io_error(io));
		pos += (size_t)got;
	}
}

Test(strm_io, mem_writer_grows_and_counts, .init = quiet)
{
	size_t len = 3u << 20, got_len;
	uint8_t *data = malloc(len);
	struct strm_io *w;
	const void *got;

	fd_random(data, len, 1);
	cr_assert_eq(strm_io_mem_writer(&w), 0);
	write_odd(w, data, len);
	cr_assert_eq(strm_io_offset(w), len);
	got = strm_io_mem_data(w, &got_len);
	cr_assert_eq(got_len, len);
	cr_assert_eq(memcmp(got, data, len), 0);
	cr_assert_eq(strm_io_read(w, data, 1), -EBADF);
	cr_assert_eq(strm_io_finish(w), 0);
	cr_assert_eq(strm_io_write(w, data, 1), -EBADF, "no writes after finish");
	cr_assert_eq(strm_io_close(w), 0);
	cr_assert_eq(strm_io_close(NULL), 0);
	free(data);
}

Test(strm_io, mem_reader_odd_reads_and_short_stream, .init = quiet)
{
	size_t len = 1000003;
	uint8_t *data = malloc(len), *back = malloc(len + 10);
	struct strm_io *r;

	fd_random(data, len, 2);
	cr_assert_eq(strm_io_mem_reader(data, len, &r), 0);
	read_odd(r, back, len);
	cr_assert_eq(memcmp(back, data, len), 0);
	cr_assert_eq(strm_io_offset(r), len);
	cr_assert_eq(strm_io_read(r, back, 10), 0, "end of stream");
	cr_assert_eq(strm_io_write(r, data, 1), -EBADF);
	cr_assert_eq(strm_io_close(r), 0);

	cr_assert_eq(strm_io_mem_reader(data, 10, &r), 0);
	cr_assert_eq(strm_io_read_full(r, back, 11), -ENODATA);
	cr_assert(strstr(strm_io_error(r), "offset 10"), "%s", strm_io_error(r));
	cr_assert_eq(strm_io_close(r), 0);
	free(data);
	free(back);
}

Test(strm_io, fd_tmpfile_round_trip, .init = quiet)
{
	size_t len = (2u << 20) + 77;
	uint8_t *data = malloc(len), *back = malloc(len);
	FILE *tf = tmpfile();
	struct strm_io *w, *r;

	fd_random(data, len, 3);
	cr_assert_not_null(tf);
	cr_assert_eq(strm_io_fd(fileno(tf), false, &w), 0);
	write_odd(w, data, len);
	cr_assert_eq(strm_io_offset(w), len);
	cr_assert_eq(strm_io_close(w), 0);
	cr_assert_eq(lseek(fileno(tf), 0, SEEK_SET), 0);
	cr_assert_eq(strm_io_fd(fileno(tf), false, &r), 0);
	cr_assert_eq(strm_io_read_full(r, back, len), 0, "%s", strm_io_error(r));
	cr_assert_eq(memcmp(back, data, len), 0);
	cr_assert_eq(strm_io_read(r, back, 1), 0);
	cr_assert_eq(strm_io_close(r), 0);
	fclose(tf);
	free(data);
	free(back);
}

Test(strm_io, fd_errors_name_the_offset, .init = quiet)
{
	int p[2];
	struct strm_io *w;
	uint8_t b[100] = {0};

	cr_assert_eq(strm_io_fd(-1, false, &w), -EBADF);
	cr_assert_eq(pipe(p), 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(strm_io_fd(p[1], true, &w), 0);
	cr_assert_eq(strm_io_write(w, b, sizeof(b)), -EPIPE);
	cr_assert(strstr(strm_io_error(w), "offset 0"), "%s", strm_io_error(w));
	cr_assert_eq(strm_io_write(w, b, 1), -EPIPE, "errors are sticky");
	cr_assert_eq(strm_io_close(w), -EPIPE, "close returns the first error");
}

/* A pipe with a writer thread, while a timer interrupts both sides with a
 * signal handler installed without SA_RESTART: EINTR and short reads and
 * writes all happen. Many iovecs (more than IOV_MAX) in one writev. */
struct pipe_job {
	int fd;
	const uint8_t *data;
	size_t len;
	int err;
};

static void on_alarm(int sig)
{
	(void)sig;
}

static void *pipe_writer(void *arg)
{
	struct pipe_job *j = arg;
	struct strm_io *w;
	size_t niov = 3000, pos = 0;
	struct iovec *iov = calloc(niov, sizeof(*iov));
	int n = 0;

	j->err = strm_io_fd(j->fd, true, &w);
	if (j->err)
		return NULL;
	while (pos < j->len) {
		/* iovecs of 1..2000 bytes */
		size_t k = 1 + (pos * 7919) % 2000;

		k = k < j->len - pos ? k : j->len - pos;
		iov[n++] = (struct iovec){.iov_base = (void *)(j->data + pos), .iov_len = k};
		pos += k;
		if (n == (int)niov || pos == j->len) {
			j->err = strm_io_writev(w, iov, n);
			if (j->err)
				break;
			n = 0;
		}
	}
	if (!j->err && strm_io_offset(w) != j->len)
		j->err = -EIO;
	j->err = j->err ? j->err : strm_io_close(w);
	if (j->err)
		strm_io_close(w);
	free(iov);
	return NULL;
}

Test(strm_io, fd_pipe_eintr_and_short_io, .init = quiet, .timeout = 60)
{
	size_t len = 24u << 20;
	uint8_t *data = malloc(len), *back = malloc(len);
	struct sigaction sa = {.sa_handler = on_alarm};
	struct itimerval it = {.it_interval = {0, 200}, .it_value = {0, 200}};
	struct pipe_job j;
	struct strm_io *r;
	pthread_t th;
	int p[2];

	fd_random(data, len, 4);
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
	cr_assert_eq(pipe(p), 0);
	j = (struct pipe_job){.fd = p[1], .data = data, .len = len};
	cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	cr_assert_eq(pthread_create(&th, NULL, pipe_writer, &j), 0);
	cr_assert_eq(strm_io_fd(p[0], true, &r), 0);
	read_odd(r, back, len);
	cr_assert_eq(strm_io_read(r, back, 1), 0);
	pthread_join(th, NULL);
	it = (struct itimerval){0};
	setitimer(ITIMER_REAL, &it, NULL);
	cr_assert_eq(j.err, 0, "writer: %d", j.err);
	cr_assert_eq(memcmp(back, data, len), 0);
	cr_assert_eq(strm_io_offset(r), len);
	cr_assert_eq(strm_io_close(r), 0);
	free(data);
	free(back);
}

Test(strm_io, codec_names)
{
	enum strm_codec c;

	cr_assert_str_eq(strm_codec_name(STRM_CODEC_NONE), "none");
	cr_assert_str_eq(strm_codec_name(STRM_CODEC_LZ4), "lz4");
	cr_assert_str_eq(strm_codec_name(STRM_CODEC_ZSTD), "zstd");
	cr_assert_eq(strm_codec_parse("zstd", &c), 0);
	cr_assert_eq(c, STRM_CODEC_ZSTD);
	cr_assert_eq(strm_codec_parse("lz4", &c), 0);
	cr_assert_eq(c, STRM_CODEC_LZ4);
	cr_assert_eq(strm_codec_parse("gzip", &c), -EINVAL);
	cr_assert_eq(strm_codec_parse("", &c), -EINVAL);
}

/* A cancel from another thread ends a read blocked on a silent pipe. */
struct canceller {
	struct strm_cancel *c;
	int delay_ms;
};

static void *fire_later(void *arg)
{
	struct canceller *k = arg;

	usleep((useconds_t)k->delay_ms * 1000);
	strm_cancel_fire(k->c);
	return NULL;
}

Test(strm_io, cancel_ends_a_blocked_read_and_write, .init = quiet, .timeout = 30)
{
	struct strm_cancel *c;
	struct strm_io *rd, *wr;
	struct canceller k;
	pthread_t t;
	static uint8_t big[1 << 20];
	char b;
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(strm_cancel_new(&c), 0);
	cr_assert_not(strm_cancel_fired(c));
	cr_assert_eq(strm_io_fd(p[0], true, &rd), 0);
	cr_assert_eq(strm_io_fd(p[1], true, &wr), 0);
	cr_assert_eq(strm_io_set_cancel(rd, c, 0), 0);
	cr_assert_eq(strm_io_set_cancel(wr, c, 0), 0);
	k = (struct canceller){ c, 100 };
	cr_assert_eq(pthread_create(&t, NULL, fire_later, &k), 0);
	/* Nobody writes: blocks until the cancel. */
	cr_assert_eq(strm_io_read(rd, &b, 1), -ECANCELED);
	pthread_join(t, NULL);
	cr_assert(strm_cancel_fired(c));
	cr_assert(strstr(strm_io_error(rd), "cancelled"), "%s", strm_io_error(rd));
	/* A write that would fill the pipe fails at once, cancelled. */
	cr_assert_eq(strm_io_write(wr, big, sizeof(big)), -ECANCELED);
	strm_io_close(rd);
	strm_io_close(wr);
	strm_cancel_free(c);
}

Test(strm_io, progress_timeout_names_the_stall, .init = quiet, .timeout = 30)
{
	static uint8_t big[1 << 20];
	struct strm_io *wr;
	struct timespec a, z;
	double ms;
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(strm_io_fd(p[1], true, &wr), 0);
	cr_assert_eq(strm_io_set_cancel(wr, NULL, 200), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	/* The reader never reads: the pipe fills, then 200 ms pass. */
	cr_assert_eq(strm_io_write(wr, big, sizeof(big)), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &z);
	ms = (double)(z.tv_sec - a.tv_sec) * 1e3 + (double)(z.tv_nsec - a.tv_nsec) / 1e6;
	cr_assert(ms >= 190 && ms < 5000, "%.0f ms", ms);
	cr_assert(strstr(strm_io_error(wr), "no progress for 200 ms"), "%s", strm_io_error(wr));
	strm_io_close(wr);
	close(p[0]);
}

/* Drains a socket slowly: 16 KiB every 25 ms (640 KiB/s), a slow link. */
static void *slow_reader(void *arg)
{
	int fd = *(int *)arg;
	static uint8_t buf[16384];
	size_t total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		total += (size_t)n;
		usleep(25000);
	}
	return (void *)total;
}

/* A socket's writer waits for much of its buffer to drain before it may
 * write again: on a slow link that is longer than the progress timeout,
 * though bytes leave all along. That is progress; a reader that stops is
 * not (HA pairs on a slowed link broke on this). */
Test(strm_io, a_slow_socket_reader_is_progress, .init = quiet, .timeout = 30)
{
	static uint8_t big[2 << 20];
	struct strm_io *wr;
	pthread_t t;
	void *total;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(strm_io_fd(sv[0], true, &wr), 0);
	cr_assert_eq(strm_io_set_cancel(wr, NULL, 200), 0);
	cr_assert_eq(pthread_create(&t, NULL, slow_reader, &sv[1]), 0);
	cr_assert_eq(strm_io_write(wr, big, sizeof(big)), 0, "%s", strm_io_error(wr));
	strm_io_close(wr);
	pthread_join(t, &total);
	cr_assert_eq((size_t)total, sizeof(big));
	close(sv[1]);

	/* The same socket, its reader gone quiet: the stall is still found. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(strm_io_fd(sv[0], true, &wr), 0);
	cr_assert_eq(strm_io_set_cancel(wr, NULL, 200), 0);
	cr_assert_eq(strm_io_write(wr, big, sizeof(big)), -ETIMEDOUT);
	cr_assert(strstr(strm_io_error(wr), "no progress for 200 ms"), "%s", strm_io_error(wr));
	strm_io_close(wr);
	close(sv[1]);
}

/* ---- a peer's reason after a failed write -------------------------------- */

static const char refusal[] = "ferry-error: needs 128 MiB, 98 MiB free\n";

/* Reads 452 bytes, says why it refuses, and closes with the rest unread
 * (a reset): what a migration target out of memory does. */
static void *refuse_main(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
	char buf[452];
	size_t got = 0;

	cr_assert_geq(fd, 0);
	while (got < sizeof(buf)) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - got);

		cr_assert_gt(n, 0);
		got += (size_t)n;
	}
	cr_assert_eq(write(fd, refusal, strlen(refusal)), (ssize_t)strlen(refusal));
	close(fd);
	return NULL;
}

Test(strm_io, keep_reading_finds_the_reason_behind_a_failed_write, .init = quiet, .timeout = 30)
{
	static uint8_t big[1 << 20];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t salen = sizeof(sa);
	struct strm_io *io;
	char line[128] = "";
	pthread_t t;
	int lfd, fd, rc = 0;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 1), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	cr_assert_eq(pthread_create(&t, NULL, refuse_main, &lfd), 0);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(strm_io_fd(fd, true, &io), 0);
	for (int i = 0; i < 1000 && !rc; i++)
		rc = strm_io_write(io, big, sizeof(big));
	pthread_join(t, NULL);
	close(lfd);
	cr_assert(rc == -EPIPE || rc == -ECONNRESET, "%d %s", rc, strm_io_error(io));
	/* The error is sticky for reads too, until asked otherwise. */
	cr_assert_eq(strm_io_read(io, line, sizeof(line)), rc);
	cr_assert_eq(strm_io_keep_reading(io), 0);
	cr_assert_eq(strm_io_read_full(io, line, strlen(refusal)), 0, "%s", strm_io_error(io));
	cr_assert_str_eq(line, refusal);
	/* Writes stay refused; the write's message stays. */
	cr_assert_eq(strm_io_write(io, big, 1), -EBADF);
	cr_assert(strstr(strm_io_error(io), "write"), "%s", strm_io_error(io));
	strm_io_close(io);
}

Test(strm_io, keep_reading_leaves_a_read_error, .init = quiet)
{
	struct strm_io *io;
	char b;
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(strm_io_fd(p[1], true, &io), 0); /* write end: reads fail */
	close(p[0]);
	cr_assert_lt(strm_io_read(io, &b, 1), 0);
	cr_assert_lt(strm_io_keep_reading(io), 0);
	strm_io_close(io);
}
