// SPDX-License-Identifier: MIT
/*
 * Record encoder: builds the header, length and padding bytes of each
 * header or record in the encoder and points iovecs at them and at the
 * caller's bodies. Nothing is copied and nothing is written anywhere.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "formats/libxc-stream.h"
#include "formats/libxl-stream.h"
#include "formats/xl-header.h"
#include "internal-codec.h"
#include "stream/codec.h"

struct strm_enc {
	/* The bytes the last call's iovecs point at (besides the caller's). */
	uint8_t hdr[64];
};

/* Padding and the config's NUL come from here, for every encoder. */
static const uint8_t zeros[8];

int strm_enc_new(struct strm_enc **out)
{
	struct strm_enc *enc = calloc(1, sizeof(*enc));

	if (!enc)
		return -ENOMEM;
	*out = enc;
	return 0;
}

void strm_enc_free(struct strm_enc *enc)
{
	free(enc);
}

size_t strm_iov_len(const struct iovec *iov, int n)
{
	size_t len = 0;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

static void iov_set(struct iovec *iov, const void *base, size_t len)
{
	iov->iov_base = (void *)base;
	iov->iov_len = len;
}

int strm_enc_xl_header(struct strm_enc *enc, const char *json,
		       uint32_t mandatory_flags, struct iovec *out)
{
	struct xl_save_header h;
	size_t json_len = json ? strlen(json) : 0;
	uint32_t cfg_len = (uint32_t)json_len + 1;
	int n = 0;

	if (!enc || !out || (mandatory_flags & ~XL_MANDATORY_FLAGS_KNOWN))
		return -EINVAL;
	if (json && json_len + 1 > XL_CONFIG_MAX)
		return -E2BIG;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, XL_SAVE_MAGIC, XL_SAVE_MAGIC_LEN);
	h.byteorder = XL_SAVE_BYTEORDER;
	h.mandatory_flags = mandatory_flags | XL_MANDATORY_FLAG_STREAMV2;
	if (json)
		h.mandatory_flags |= XL_MANDATORY_FLAG_JSON;
	else
		h.mandatory_flags &= ~XL_MANDATORY_FLAG_JSON;
	h.optional_data_len = json ? cfg_len + 4 : 0;
	memcpy(enc->hdr, &h, sizeof(h));
	if (!json) {
		iov_set(&out[n++], enc->hdr, sizeof(h));
		return n;
	}
	put_le32(enc->hdr + sizeof(h), cfg_len);
	iov_set(&out[n++], enc->hdr, sizeof(h) + 4);
	if (json_len)
		iov_set(&out[n++], json, json_len);
	iov_set(&out[n++], zeros, 1);
	return n;
}

int strm_enc_libxl_header(struct strm_enc *enc, struct iovec *out)
{
	if (!enc || !out)
		return -EINVAL;
	put_be64(enc->hdr, LIBXL_STREAM_IDENT);
	put_be32(enc->hdr + 8, LIBXL_STREAM_VERSION);
	put_be32(enc->hdr + 12, 0);
	iov_set(out, enc->hdr, sizeof(struct libxl_sr_hdr));
	return 1;
}

/* A record (libxl and libxc frame them alike): header, body, padding. */
static int enc_rec(struct strm_enc *enc, uint32_t type, const struct iovec *body,
		   int nbody, struct iovec *out)
{
	uint64_t len = 0;
	int n = 0;

	if (!enc || !out || nbody < 0 || (nbody && !body))
		return -EINVAL;
	for (int i = 0; i < nbody; i++) {
		if (body[i].iov_len && !body[i].iov_base)
			return -EINVAL;
		if (body[i].iov_len > REC_LENGTH_MAX)
			return -E2BIG;
		len += body[i].iov_len;
		if (len > REC_LENGTH_MAX)
			return -E2BIG;
	}
	put_le32(enc->hdr, type);
	put_le32(enc->hdr + 4, (uint32_t)len);
	iov_set(&out[n++], enc->hdr, 8);
	for (int i = 0; i < nbody; i++)
		if (body[i].iov_len)
			out[n++] = body[i];
	if (len % REC_ALIGN)
		iov_set(&out[n++], zeros, REC_ALIGN - len % REC_ALIGN);
	return n;
}

int strm_enc_libxl_rec(struct strm_enc *enc, uint32_t type,
		       const struct iovec *body, int nbody, struct iovec *out)
{
	return enc_rec(enc, type, body, nbody, out);
}

int strm_enc_libxc_ihdr(struct strm_enc *enc, struct iovec *out)
{
	if (!enc || !out)
		return -EINVAL;
	memset(enc->hdr, 0, sizeof(struct xc_sr_ihdr));
	put_be64(enc->hdr, IHDR_MARKER);
	put_be32(enc->hdr + 8, IHDR_ID);
	put_be32(enc->hdr + 12, IHDR_VERSION);
	put_be16(enc->hdr + 16, 0); /* little-endian records */
	iov_set(out, enc->hdr, sizeof(struct xc_sr_ihdr));
	return 1;
}

int strm_enc_libxc_dhdr(struct strm_enc *enc, uint32_t type, uint32_t xen_major,
			uint32_t xen_minor, struct iovec *out)
{
	struct xc_sr_dhdr d = {
		.type = type,
		.page_shift = 12,
		.xen_major = xen_major,
		.xen_minor = xen_minor,
	};

	if (!enc || !out || (type != DHDR_TYPE_X86_HVM && type != DHDR_TYPE_X86_PV))
		return -EINVAL;
	memcpy(enc->hdr, &d, sizeof(d));
	iov_set(out, enc->hdr, sizeof(d));
	return 1;
}

int strm_enc_libxc_rec(struct strm_enc *enc, uint32_t type,
		       const struct iovec *body, int nbody, struct iovec *out)
{
	return enc_rec(enc, type, body, nbody, out);
}

int strm_enc_page_data(struct strm_enc *enc, const uint64_t *pfns, uint32_t count,
		       const void *const *pages, struct iovec *out)
{
	uint32_t ndata = 0;
	uint64_t len;
	int n = 0;

	if (!enc || !out || !pfns || count == 0 || count > PAGE_DATA_BATCH_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++) {
		unsigned t = (unsigned)(pfns[i] >> PAGE_DATA_TYPE_SHIFT);

		if (!strm_page_type_known(t) || (pfns[i] & STRM_PAGE_DATA_RES_MASK))
			return -EINVAL;
		if (strm_page_type_has_data(t)) {
			if (!pages || !pages[ndata])
				return -EINVAL;
			ndata++;
		}
	}
	len = 8 + 8 * (uint64_t)count + 4096 * (uint64_t)ndata;
	put_le32(enc->hdr, REC_TYPE_PAGE_DATA);
	put_le32(enc->hdr + 4, (uint32_t)len);
	put_le32(enc->hdr + 8, count);
	put_le32(enc->hdr + 12, 0);
	iov_set(&out[n++], enc->hdr, 16);
	iov_set(&out[n++], pfns, 8 * (size_t)count);
	for (uint32_t j = 0; j < ndata; j++) {
		/* Pages adjacent in memory share one iovec: a writer then takes
		 * them as one run (TLS encrypts it in place of copying it). */
		if (j && (const uint8_t *)pages[j] ==
				 (const uint8_t *)out[n - 1].iov_base + out[n - 1].iov_len)
			out[n - 1].iov_len += 4096;
		else
			iov_set(&out[n++], pages[j], 4096);
	}
	return n;
}
