/* SPDX-License-Identifier: MIT */
/*
 * A small vsnprintf for the workloads' console lines, because the guest has
 * no libc. Only what our lines use: %s %c %d %u %x %p with the l and ll
 * length modifiers, a field width and the 0 flag.
 */
#include "internal.h"

struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, uint64_t v, unsigned base, bool neg,
		    unsigned width, bool zero)
{
	char tmp[24];
	unsigned n = 0;

	do {
		unsigned d = (unsigned)(v % base);

		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	if (neg)
		width = width ? width - 1 : 0;
	if (neg && zero)
		put(o, '-');
	for (; width > n; width--)
		put(o, zero ? '0' : ' ');
	if (neg && !zero)
		put(o, '-');
	while (n)
		put(o, tmp[--n]);
}

/*
 * Long on purpose: one switch over the conversions this freestanding
 * printf supports.
 */
int wl_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		unsigned width = 0, lng = 0;
		bool zero = false;
		uint64_t u;
		int64_t s;

		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0') {
			zero = true;
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned)(*fmt++ - '0');
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
			if (lng >= 2)
				s = va_arg(ap, long long);
			else if (lng == 1)
				s = va_arg(ap, long);
			else
				s = va_arg(ap, int);
			u = s < 0 ? 0 - (uint64_t)s : (uint64_t)s;
			put_num(&o, u, 10, s < 0, width, zero);
			break;
		case 'u':
		case 'x':
			if (lng >= 2)
				u = va_arg(ap, unsigned long long);
			else if (lng == 1)
				u = va_arg(ap, unsigned long);
			else
				u = va_arg(ap, unsigned int);
			put_num(&o, u, *fmt == 'x' ? 16 : 10, false, width, zero);
			break;
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (uint64_t)(uintptr_t)va_arg(ap, void *), 16,
				false, width, zero);
			break;
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);
			unsigned n = 0;

			if (!str)
				str = "(null)";
			while (str[n])
				n++;
			for (; width > n; width--)
				put(&o, ' ');
			while (*str)
				put(&o, *str++);
			break;
		}
		case '%':
			put(&o, '%');
			break;
		case '\0':
			fmt--;	/* lone '%' at the end */
			break;
		default:
			put(&o, '%');
			put(&o, *fmt);
			break;
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int wl_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = wl_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
