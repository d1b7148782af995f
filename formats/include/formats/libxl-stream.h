/* SPDX-License-Identifier: MIT */
/*
 * libxl migration stream v2 (Xen docs/specs/libxl-migration-stream.pandoc).
 * Header big-endian; records little-endian, 8-byte aligned with zero pad.
 */
#ifndef FORMATS_LIBXL_STREAM_H
#define FORMATS_LIBXL_STREAM_H

#include <stdint.h>

#define LIBXL_STREAM_IDENT UINT64_C(0x4c6962786c466d74) /* "LibxlFmt" */
#define LIBXL_STREAM_VERSION 2
#define LIBXL_STREAM_OPT_BIG_ENDIAN (1u << 0)
#define LIBXL_STREAM_OPT_LEGACY (1u << 1)

struct libxl_sr_hdr {
	uint64_t ident;	  /* big-endian */
	uint32_t version; /* big-endian */
	uint32_t options; /* big-endian */
};

struct libxl_sr_rec_hdr {
	uint32_t type;
	uint32_t length; /* of the body, before padding */
};

#define LIBXL_REC_END 0x00000000u
#define LIBXL_REC_LIBXC_CONTEXT 0x00000001u
#define LIBXL_REC_EMULATOR_XENSTORE_DATA 0x00000002u
#define LIBXL_REC_EMULATOR_CONTEXT 0x00000003u
#define LIBXL_REC_CHECKPOINT_END 0x00000004u
#define LIBXL_REC_CHECKPOINT_STATE 0x00000005u
#define LIBXL_REC_OPTIONAL 0x80000000u

/* The first 8 bytes of EMULATOR_XENSTORE_DATA and EMULATOR_CONTEXT. */
struct libxl_sr_emulator_hdr {
	uint32_t id;
	uint32_t index;
};
#define LIBXL_EMULATOR_UNKNOWN 0
#define LIBXL_EMULATOR_QEMU_TRADITIONAL 1
#define LIBXL_EMULATOR_QEMU_UPSTREAM 2

struct libxl_sr_checkpoint_state {
	uint32_t id;
};
#define LIBXL_CHECKPOINT_NEW 0
#define LIBXL_CHECKPOINT_SVM_SUSPENDED 1
#define LIBXL_CHECKPOINT_SVM_READY 2
#define LIBXL_CHECKPOINT_SVM_RESUMED 3

_Static_assert(sizeof(struct libxl_sr_hdr) == 16, "libxl_sr_hdr");
_Static_assert(sizeof(struct libxl_sr_rec_hdr) == 8, "libxl_sr_rec_hdr");
_Static_assert(sizeof(struct libxl_sr_emulator_hdr) == 8, "libxl_sr_emulator_hdr");

/* Name of a libxl record type ("END", ...), or NULL if unknown. */
const char *fmt_libxl_rec_name(uint32_t type);

#endif
