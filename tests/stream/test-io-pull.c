// SPDX-License-Identifier: MIT
/* strm_io_pull: a reader over a read callback. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "stream/io.h"

static void quiet(void)
{
	log_set_stderr(0);
}

/* Hands out src in chunks of at most step bytes, fails at fail_at. */
struct src {
	const uint8_t *data;
	size_t len, pos, step, fail_at;
	struct strm_io *io;
	bool with_msg;
	int calls, released;
};

static ssize_t src_read(void *opaque, void *buf, size_t len)
{
	struct src *s = opaque;
	size_t n = len < s->step ? len : s->step;

	s->calls++;
	if (s->pos >= s->fail_at)
		return s->with_msg ? strm_io_pull_fail(s->io, -EIO, "page %zu of the source is bad",
						       s->pos)
				   : -ENOSPC;
	if (n > s->len - s->pos)
		n = s->len - s->pos;
	if (n > s->fail_at - s->pos)
		n = s->fail_at - s->pos;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

static void src_release(void *opaque)
{
	((struct src *)opaque)->released++;
}

static void fill(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + i / 251);
}

Test(strm_io_pull, reads_what_the_callback_gives_to_its_end_and_releases_once, .init = quiet)
{
	static uint8_t data[100000], got[100000];
	struct src s = {.data = data, .len = sizeof(data), .step = 333, .fail_at = SIZE_MAX};
	struct strm_io *io;
	uint8_t more;

	fill(data, sizeof(data));
	cr_assert_eq(strm_io_pull(src_read, src_release, &s, &io), 0);
	s.io = io;
	cr_assert_eq(strm_io_read_full(io, got, 5000), 0, "%s", strm_io_error(io));
	cr_assert_eq(strm_io_read_full(io, got + 5000, sizeof(got) - 5000), 0, "%s",
		     strm_io_error(io));
	cr_assert_eq(memcmp(got, data, sizeof(data)), 0);
	cr_assert_eq(strm_io_offset(io), sizeof(data));
	cr_assert_eq(strm_io_read(io, &more, 1), 0, "end of stream");
	cr_assert_eq(strm_io_read_full(io, &more, 1), -ENODATA);
	cr_assert_eq(strm_io_write(io, "x", 1), -EBADF, "a reader only");
	cr_assert_eq(s.released, 0);
	cr_assert_eq(strm_io_close(io), 0);
	cr_assert_eq(s.released, 1);
}

Test(strm_io_pull, the_callback_s_message_is_the_io_s_and_the_error_sticks, .init = quiet)
{
	static uint8_t data[10000], got[10000];
	struct src s = {
		.data = data, .len = sizeof(data), .step = 4096, .fail_at = 8192, .with_msg = true};
	struct strm_io *io;
	int calls;

	fill(data, sizeof(data));
	cr_assert_eq(strm_io_pull(src_read, src_release, &s, &io), 0);
	s.io = io;
	cr_assert_eq(strm_io_read_full(io, got, 8192), 0);
	cr_assert_eq(strm_io_read_full(io, got, 10), -EIO);
	cr_assert_str_eq(strm_io_error(io), "page 8192 of the source is bad");
	calls = s.calls;
	cr_assert_eq(strm_io_read(io, got, 10), -EIO);
	cr_assert_eq(s.calls, calls, "the failed source is not asked again");
	cr_assert_eq(strm_io_close(io), -EIO);
	cr_assert_eq(s.released, 1);
}

Test(strm_io_pull, a_bare_errno_gets_a_message_naming_the_offset, .init = quiet)
{
	static uint8_t data[100], got[100];
	struct src s = {.data = data, .len = sizeof(data), .step = 64, .fail_at = 64};
	struct strm_io *io, *mem;

	cr_assert_eq(strm_io_pull(src_read, NULL, &s, &io), 0);
	cr_assert_eq(strm_io_read_full(io, got, 100), -ENOSPC);
	cr_assert_not_null(strstr(strm_io_error(io), "offset 64"), "%s", strm_io_error(io));
	cr_assert_eq(strm_io_close(io), -ENOSPC);
	/* only a pull io takes a callback's message */
	cr_assert_eq(strm_io_mem_writer(&mem), 0);
	cr_assert_eq(strm_io_pull_fail(mem, -EIO, "no"), -EINVAL);
	cr_assert_str_eq(strm_io_error(mem), "");
	strm_io_close(mem);
	cr_assert_eq(strm_io_pull(NULL, NULL, NULL, &io), -EINVAL);
}
