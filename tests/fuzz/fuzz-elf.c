// SPDX-License-Identifier: MIT
/* libFuzzer target: the guest kernel loader on hostile ELF images. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "loader.h"

#define MEM (8u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static uint8_t *mem;
	uint8_t *img;
	uint64_t entry;

	if (!mem) {
		log_set_stderr(0);
		mem = calloc(1, MEM);
	}
	/* The loader wants an 8-byte aligned image, as read_file's malloc gives. */
	img = malloc(len ? len : 1);
	memcpy(img, data, len);
	hyp_loader_load_elf_image(mem, MEM, img, len, "fuzz", &entry);
	free(img);
	return 0;
}
