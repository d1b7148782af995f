/* SPDX-License-Identifier: MIT */
/*
 * The xl save-file header (Xen tools/xl/xl.h), host byte order, then the
 * optional data: a u32 length and the domain config as JSON (the length
 * counts the trailing NUL). The libxl stream follows at once, unaligned.
 */
#ifndef FORMATS_XL_HEADER_H
#define FORMATS_XL_HEADER_H

#include <stdint.h>

#define XL_SAVE_MAGIC "Xen saved domain, xl format\n \0 \r"
#define XL_SAVE_MAGIC_LEN 32
#define XL_SAVE_BYTEORDER 0x01020304u

/* mandatory_flags: a reader refuses any bit it does not know. */
#define XL_MANDATORY_FLAG_JSON (1u << 0)     /* config is JSON */
#define XL_MANDATORY_FLAG_STREAMV2 (1u << 1) /* libxl stream v2 follows */
/* Ferry: the libxl stream is cut into frames (formats/SPEC.md section 7). Xen's xl
 * refuses such a file cleanly, as it should. */
#define XL_MANDATORY_FLAG_FERRY_FRAMES (1u << 16)
#define XL_MANDATORY_FLAGS_KNOWN                                                  \
	(XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2 |                     \
	 XL_MANDATORY_FLAG_FERRY_FRAMES)

struct xl_save_header {
	char magic[XL_SAVE_MAGIC_LEN];
	uint32_t byteorder;
	uint32_t mandatory_flags;
	uint32_t optional_flags;
	uint32_t optional_data_len;
};

_Static_assert(sizeof(struct xl_save_header) == 48, "xl_save_header");

/* Bounds a reader enforces before allocating. */
#define XL_CONFIG_MAX (1u << 20)

#endif
