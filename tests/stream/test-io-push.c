// SPDX-License-Identifier: MIT
/* strm_io_push (a writer into a callback, held or not) and strm_io_wait_in. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "stream/io.h"

struct sink {
	uint8_t *buf;
	size_t len, calls, max_piece;
	int fail; /* errno to return */
};

static int take(void *opaque, const void *buf, size_t len)
{
	struct sink *s = opaque;

	if (s->fail)
		return -s->fail;
	s->buf = realloc(s->buf, s->len + len);
	cr_assert(s->buf);
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	s->calls++;
	if (len > s->max_piece)
		s->max_piece = len;
	return 0;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 31 + seed);
}

/* Unheld, the bytes go out in pieces no larger than asked, in order. */
Test(io_push, pieces_in_order)
{
	static uint8_t data[100000];
	struct sink s = {0};
	struct strm_io *io;

	fill(data, sizeof(data), 1);
	cr_assert_eq(strm_io_push(take, NULL, &s, 4096, 0, &io), 0);
	for (size_t off = 0; off < sizeof(data); off += 777)
		cr_assert_eq(strm_io_write(io, data + off,
					   sizeof(data) - off < 777 ? sizeof(data) - off : 777),
			     0);
	cr_assert_lt(s.len, sizeof(data), "nothing may wait for a flush");
	cr_assert_eq(strm_io_flush(io), 0);
	cr_assert_eq(s.len, sizeof(data));
	cr_assert_leq(s.max_piece, 4096);
	cr_assert_eq(memcmp(s.buf, data, sizeof(data)), 0);
	cr_assert_eq(strm_io_close(io), 0);
	free(s.buf);
}

/* Held, nothing goes out, not even at a flush, until released. */
Test(io_push, held_until_released)
{
	static uint8_t data[50000];
	struct sink s = {0};
	struct strm_io *io;

	fill(data, sizeof(data), 2);
	cr_assert_eq(strm_io_push(take, NULL, &s, 4096, 0, &io), 0);
	cr_assert_eq(strm_io_write(io, data, 1000), 0);
	cr_assert_eq(strm_io_push_hold(io), 0);
	cr_assert_eq(strm_io_write(io, data + 1000, sizeof(data) - 1000), 0);
	cr_assert_eq(strm_io_flush(io), 0);
	cr_assert_eq(s.len, 0);
	cr_assert_eq(strm_io_push_held(io), sizeof(data));
	cr_assert_eq(strm_io_push_release(io), 0);
	cr_assert_eq(strm_io_push_held(io), 0);
	cr_assert_eq(s.len, sizeof(data));
	cr_assert_leq(s.max_piece, 4096);
	cr_assert_eq(memcmp(s.buf, data, sizeof(data)), 0);
	cr_assert_eq(strm_io_close(io), 0);
	free(s.buf);
}

/* Past max_held the write fails, and stays failed. */
Test(io_push, held_bytes_are_bounded)
{
	static uint8_t data[10000];
	struct sink s = {0};
	struct strm_io *io;

	log_set_stderr(0);
	cr_assert_eq(strm_io_push(take, NULL, &s, 1024, 8192, &io), 0);
	cr_assert_eq(strm_io_push_hold(io), 0);
	cr_assert_eq(strm_io_write(io, data, 8000), 0);
	cr_assert_eq(strm_io_write(io, data, 1000), -ENOBUFS);
	cr_assert(strstr(strm_io_error(io), "8192"), "%s", strm_io_error(io));
	cr_assert_eq(strm_io_push_release(io), -ENOBUFS);
	strm_io_close(io);
	free(s.buf);
}

/* A failing callback fails the write, with the callback's error. */
Test(io_push, callback_errors_stick)
{
	struct sink s = {.fail = EPIPE};
	struct strm_io *io;
	uint8_t b[10] = {0};

	log_set_stderr(0);
	cr_assert_eq(strm_io_push(take, NULL, &s, 4, 0, &io), 0);
	cr_assert_eq(strm_io_write(io, b, sizeof(b)), -EPIPE);
	cr_assert_eq(strm_io_write(io, b, 1), -EPIPE);
	strm_io_close(io);
}

/* wait_in: 0 after the timeout with nothing to read, 1 once there is,
 * without reading it; -EINVAL for an io with no fd. */
Test(io_push, wait_in_on_a_socket)
{
	struct strm_io *a, *mem;
	int sv[2];
	double t0;
	char c;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(strm_io_fd(sv[0], true, &a), 0);
	t0 = ferry_now_s();
	cr_assert_eq(strm_io_wait_in(a, 50), 0);
	cr_assert_geq(ferry_now_s() - t0, 0.045);
	cr_assert_eq(write(sv[1], "x", 1), 1);
	cr_assert_eq(strm_io_wait_in(a, 1000), 1);
	cr_assert_eq(strm_io_wait_in(a, 1000), 1, "waiting read the byte");
	cr_assert_eq(strm_io_read_full(a, &c, 1), 0);
	cr_assert_eq(c, 'x');
	close(sv[1]);
	cr_assert_eq(strm_io_wait_in(a, 1000), 1, "the end is something to read");
	cr_assert_eq(strm_io_read(a, &c, 1), 0);
	cr_assert_eq(strm_io_mem_writer(&mem), 0);
	cr_assert_eq(strm_io_wait_in(mem, 10), -EINVAL);
	strm_io_close(mem);
	strm_io_close(a);
}
