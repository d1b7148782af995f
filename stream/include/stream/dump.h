/* SPDX-License-Identifier: MIT */
/*
 * Stream dumper behind `xl stream-dump FILE`: decodes a whole save file or
 * captured migration stream and prints its headers and records.
 */
#ifndef STREAM_DUMP_H
#define STREAM_DUMP_H

#include <stdbool.h>
#include <stdio.h>

/*
 * Reads fd to its end (borrowed: not closed), decoding as it goes, and
 * prints to out: the xl header (flags, config length), the libxl and
 * libxc headers, one line per record (layer, type, offset, length, pfn
 * count for PAGE_DATA; with verbose also the HVM_CONTEXT entries, HVM
 * params, xenstore keys and the first pfns of each batch), then a summary
 * (records per type, pages, bytes). At the first error it prints the
 * decoder's message (naming the byte offset) and returns that -errno;
 * otherwise 0.
 */
int strm_dump(FILE *out, int fd, bool verbose);

#endif
