/* SPDX-License-Identifier: MIT */
/*
 * Checkpointed streams built byte by byte (header-only), without the
 * encoder, from Xen's specs (docs/specs/libxc-migration-stream.pandoc and
 * libxl-migration-stream.pandoc): the xl header with a JSON config, the
 * libxl header, LIBXC_CONTEXT, the libxc image and domain headers,
 * STATIC_DATA_END, then per epoch: PAGE_DATA, X86_TSC_INFO, HVM_CONTEXT
 * (HEADER, FERRY DOMAIN, SOFT_VCPU, END: what a 1-vCPU soft domain needs),
 * libxc CHECKPOINT, the epoch's libxl records, libxl CHECKPOINT_END; then
 * libxc END and libxl END. Page p written in epoch e is filled with byte
 * CKPT_FILL(e, p), so what memory must hold after any epoch is known.
 *
 * The golden tests/fixtures/ckpt-3epoch.bin is ckpt_fixture()'s output
 * (tests/restore/test-fixture.c compares it, FERRY_REGEN_FIXTURES=1
 * rewrites it and the fuzz seeds, as scripts/regen-fixtures.sh does).
 */
#ifndef TESTS_CKPT_BYTES_H
#define TESTS_CKPT_BYTES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_PAGES 16 /* pfns the fixture touches (of an 8 MiB domain) */
#define CKPT_MAX_EPOCHS 8
#define CKPT_FILL(e, p) ((uint8_t)(0x10 * (e) + (p) + 1))
/* Ferry's config of the domain (what ferryd's config reader takes). */
#define CKPT_JSON                                                                   \
	"{\"name\":\"ckpt\",\"memory_mb\":8,\"maxmem_mb\":8,\"vcpus\":1,"          \
	"\"kernel\":\"\",\"cmdline\":\"workload=idle\",\"backend\":\"soft\","       \
	"\"on_poweroff\":\"destroy\",\"on_reboot\":\"restart\",\"on_crash\":\"destroy\"}"

struct ckpt {
	uint8_t *p;
	size_t len, cap;
	unsigned epochs;
	size_t epoch_end[CKPT_MAX_EPOCHS + 1]; /* [e]: after epoch e's CHECKPOINT_END;
						* [0]: where epoch 1 starts */
	size_t tail_end;			/* after libxl END */
};

static inline void ckpt_put(struct ckpt *c, const void *p, size_t n)
{
	if (c->len + n > c->cap) {
		c->cap = (c->len + n) * 2 + 4096;
		c->p = realloc(c->p, c->cap);
		if (!c->p)
			abort();
	}
	if (n)
		memcpy(c->p + c->len, p, n);
	c->len += n;
}

static inline void ckpt_le32(struct ckpt *c, uint32_t v)
{
	ckpt_put(c, &v, 4);
}

static inline void ckpt_le64(struct ckpt *c, uint64_t v)
{
	ckpt_put(c, &v, 8);
}

static inline void ckpt_be32(struct ckpt *c, uint32_t v)
{
	v = __builtin_bswap32(v);
	ckpt_put(c, &v, 4);
}

static inline void ckpt_pad8(struct ckpt *c, size_t body)
{
	static const uint8_t zero[8];

	ckpt_put(c, zero, (8 - body % 8) % 8);
}

/* A libxl or libxc record (the same framing): type, length, body, pad. */
static inline void ckpt_rec(struct ckpt *c, uint32_t type, const void *body, uint32_t len)
{
	ckpt_le32(c, type);
	ckpt_le32(c, len);
	ckpt_put(c, body, len);
	ckpt_pad8(c, len);
}

static inline void ckpt_head(struct ckpt *c)
{
	static const char magic[32] = "Xen saved domain, xl format\n \0 \r";
	uint32_t n = sizeof(CKPT_JSON);

	memset(c, 0, sizeof(*c));
	/* xl header: magic, byte order, mandatory flags JSON|STREAMV2,
	 * optional flags, optional data length; then the config */
	ckpt_put(c, magic, 32);
	ckpt_le32(c, 0x01020304);
	ckpt_le32(c, 3);
	ckpt_le32(c, 0);
	ckpt_le32(c, 4 + n);
	ckpt_le32(c, n);
	ckpt_put(c, CKPT_JSON, n);
	/* libxl header (big-endian): "LibxlFmt", version 2, options 0 */
	ckpt_put(c, "LibxlFmt", 8);
	ckpt_be32(c, 2);
	ckpt_be32(c, 0);
	ckpt_rec(c, 1, NULL, 0); /* LIBXC_CONTEXT */
	/* libxc image header (big-endian): marker, "XENF", version 3,
	 * options 0, reserved */
	ckpt_le64(c, ~0ull);
	ckpt_be32(c, 0x58454e46);
	ckpt_be32(c, 3);
	ckpt_le64(c, 0);
	/* domain header: x86 HVM, page shift 12, Xen 4.17 */
	ckpt_le32(c, 2);
	ckpt_le32(c, 12);
	ckpt_le32(c, 4);
	ckpt_le32(c, 17);
	ckpt_rec(c, 0x10, NULL, 0); /* STATIC_DATA_END */
	c->epoch_end[0] = c->len;
}

/* PAGE_DATA: pfns[i] with data filled for epoch e; xtab pfns as holes. */
static inline void ckpt_pages(struct ckpt *c, unsigned e, const uint32_t *pfns, unsigned n,
			      const uint32_t *xtab, unsigned nx)
{
	uint8_t page[4096];

	ckpt_le32(c, 1);
	ckpt_le32(c, 8 + 8 * (n + nx) + 4096 * n);
	ckpt_le32(c, n + nx);
	ckpt_le32(c, 0);
	for (unsigned i = 0; i < n; i++)
		ckpt_le64(c, pfns[i]);
	for (unsigned i = 0; i < nx; i++)
		ckpt_le64(c, (uint64_t)0xf << 60 | xtab[i]);
	for (unsigned i = 0; i < n; i++) {
		memset(page, CKPT_FILL(e, pfns[i]), sizeof(page));
		ckpt_put(c, page, sizeof(page));
	}
}

static inline void ckpt_desc(struct ckpt *c, uint16_t code, uint16_t inst, uint32_t len)
{
	ckpt_put(c, &code, 2);
	ckpt_put(c, &inst, 2);
	ckpt_le32(c, len);
}

/* X86_TSC_INFO and HVM_CONTEXT of epoch e (system time e seconds). */
static inline void ckpt_state(struct ckpt *c, unsigned e)
{
	uint32_t len = 8 + 24 + 8 + 40 + 8 + 16 + 8;

	ckpt_le32(c, 8); /* X86_TSC_INFO: mode, khz, nsec, incarnation */
	ckpt_le32(c, 24);
	ckpt_le32(c, 0);
	ckpt_le32(c, 1000000);
	ckpt_le64(c, e * 1000000000ull);
	ckpt_le64(c, 0);
	ckpt_le32(c, 9); /* HVM_CONTEXT */
	ckpt_le32(c, len);
	ckpt_desc(c, 1, 0, 24); /* HEADER: magic, version, changeset, cpuid, khz */
	ckpt_le32(c, 0x54381286);
	ckpt_le32(c, 1);
	ckpt_le64(c, 0);
	ckpt_le32(c, 0);
	ckpt_le32(c, 1000000);
	ckpt_desc(c, 0x4660, 0, 40); /* FERRY DOMAIN: version, vcpus, shared_info,
				      * callback, system time, entry */
	ckpt_le32(c, 1);
	ckpt_le32(c, 1);
	ckpt_le64(c, 0);
	ckpt_le64(c, 0);
	ckpt_le64(c, e * 1000000000ull);
	ckpt_le64(c, 0);
	ckpt_desc(c, 0x4640, 0, 16); /* SOFT_VCPU: version, attached, timer */
	ckpt_le32(c, 1);
	ckpt_le32(c, 0);
	ckpt_le64(c, 0);
	ckpt_desc(c, 0, 0, 0); /* END */
}

/* Closes epoch e: libxc CHECKPOINT, the libxl records (a xenstore pair
 * "epoch" = e when xs), libxl CHECKPOINT_END. */
static inline void ckpt_close(struct ckpt *c, unsigned e, int xs)
{
	ckpt_rec(c, 0xe, NULL, 0);
	if (xs) {
		char body[32] = { 0 };
		int n = 8 + 6 + snprintf(body + 14, sizeof(body) - 14, "%u", e) + 1;

		memcpy(body + 8, "epoch", 6);
		ckpt_rec(c, 2, body, (uint32_t)n); /* EMULATOR_XENSTORE_DATA, id 0 */
	}
	ckpt_rec(c, 4, NULL, 0);
	c->epochs = e;
	c->epoch_end[e] = c->len;
}

static inline void ckpt_tail(struct ckpt *c)
{
	ckpt_rec(c, 0, NULL, 0); /* libxc END */
	ckpt_rec(c, 0, NULL, 0); /* libxl END */
	c->tail_end = c->len;
}

/*
 * The fixture (ckpt_fixture_two: its first two epochs): epoch 1 writes pfns 0-7; epoch 2 rewrites 2 and 3 and
 * makes 7 a hole; epoch 3 writes 7 again (the hole filled). One page in the
 * last epoch keeps the restore suite's cut at every byte of it short.
 */
static inline void ckpt_fixture_two(struct ckpt *c)
{
	static const uint32_t e1[] = { 0, 1, 2, 3, 4, 5, 6, 7 }, e2[] = { 2, 3 },
			      hole[] = { 7 };

	ckpt_head(c);
	ckpt_pages(c, 1, e1, 8, NULL, 0);
	ckpt_state(c, 1);
	ckpt_close(c, 1, 1);
	ckpt_pages(c, 2, e2, 2, hole, 1);
	ckpt_state(c, 2);
	ckpt_close(c, 2, 0);
}

/* Epoch 3's pages and state, not closed. */
static inline void ckpt_fixture_third(struct ckpt *c)
{
	static const uint32_t e3[] = { 7 };

	ckpt_pages(c, 3, e3, 1, NULL, 0);
	ckpt_state(c, 3);
}

static inline void ckpt_fixture(struct ckpt *c)
{
	ckpt_fixture_two(c);
	ckpt_fixture_third(c);
	ckpt_close(c, 3, 1);
	ckpt_tail(c);
}

/* What pfn p holds after epoch e of the fixture: its fill byte, or -1 for
 * a hole. */
static inline int ckpt_fixture_byte(unsigned e, unsigned p)
{
	int last = 0;

	if (p > 7)
		return 0; /* never written: zero */
	last = 1;
	if (e >= 2 && (p == 2 || p == 3))
		last = 2;
	if (e >= 2 && p == 7)
		last = -1;
	if (e >= 3 && p == 7)
		last = 3;
	return last < 0 ? -1 : CKPT_FILL(last, p);
}

#endif
