// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the HA pair's link messages (ha/link.c,
 * formats/SPEC.md 11) as a backup or a primary reads them from its peer.
 * Every input ends in a clean end, or in an error with a message; a
 * message taken has a known type and a length within its bound. Seeds:
 * tests/fuzz/corpus/halink (a DATA, an ACK, a heartbeat, a BYE, an ERR).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "internal.h" /* ha/: the link messages */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static uint8_t *buf;
	struct strm_io *io;
	struct ha_msg m;
	char err[256];
	int fds[2], rc;

	log_set_stderr(0);
	if (!buf && !(buf = malloc(HA_DATA_MAX)))
		abort();
	if (len > 60000) /* one pipe's worth: the writer never blocks */
		len = 60000;
	if (pipe(fds))
		abort();
	if (len && write(fds[1], data, len) != (ssize_t)len)
		abort();
	close(fds[1]);
	if (strm_io_fd(fds[0], true, &io))
		abort();
	for (;;) {
		err[0] = '\0';
		rc = ha_link_recv(io, 100, buf, &m, err, sizeof(err));
		if (rc <= 0)
			break;
		if (m.type < HA_MSG_DATA || m.type > HA_MSG_ERR ||
		    m.len > (m.type == HA_MSG_DATA  ? HA_DATA_MAX
			     : m.type == HA_MSG_ERR ? HA_ERR_MAX - 1
						    : 8u))
			abort();
		if (m.type == HA_MSG_ERR && strlen(m.data) > m.len)
			abort(); /* the text ends where the message does */
	}
	if (rc < 0 && !err[0])
		abort(); /* an error says what */
	if (rc == 0)
		abort(); /* a closed pipe is an end, never a timeout */
	strm_io_close(io);
	return 0;
}
