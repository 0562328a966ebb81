/* Tests for the bounds-checked cursor. */
#include <criterion/criterion.h>

#include "wire/cursor.h"

Test(cursor, reads_big_endian_and_moves_only_on_success)
{
	static const uint8_t b[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06 };
	struct cursor c;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;

	cursor_init(&c, b, sizeof(b));
	cr_assert(cursor_get_u8(&c, &u8));
	cr_assert_eq(u8, 1);
	cr_assert(cursor_get_u16(&c, &u16));
	cr_assert_eq(u16, 0x0203);
	cr_assert(cursor_get_u24(&c, &u32));
	cr_assert_eq(u32, 0x040506);
	cr_assert_eq(cursor_len(&c), 0);
	cr_assert_not(cursor_get_u8(&c, &u8));
	cr_assert_eq(u8, 1, "a failed read must not write its output");
}

Test(cursor, failed_read_leaves_cursor_unchanged)
{
	static const uint8_t b[] = { 0xaa, 0xbb, 0xcc };
	struct cursor c;
	uint32_t v;

	cursor_init(&c, b, sizeof(b));
	cr_assert_not(cursor_get_u32(&c, &v));
	cr_assert_eq(cursor_len(&c), 3);
	cr_assert_eq(cursor_data(&c), b);
}

Test(cursor, length_prefixed_vector_is_confined)
{
	/* u16 length 3, then 3 bytes, then one more byte outside the vector */
	static const uint8_t b[] = { 0x00, 0x03, 'a', 'b', 'c', 'z' };
	struct cursor c, inner;
	uint8_t x;

	cursor_init(&c, b, sizeof(b));
	cr_assert(cursor_get_u16_prefixed(&c, &inner));
	cr_assert_eq(cursor_len(&inner), 3);
	cr_assert(cursor_skip(&inner, 3));
	cr_assert_not(cursor_get_u8(&inner, &x), "reads past the vector must fail");
	cr_assert(cursor_get_u8(&c, &x));
	cr_assert_eq(x, 'z');
}

Test(cursor, overlong_prefix_fails_without_moving)
{
	static const uint8_t b[] = { 0x00, 0x00, 0x09, 1, 2, 3 };
	struct cursor c, inner;

	cursor_init(&c, b, sizeof(b));
	cr_assert_not(cursor_get_u24_prefixed(&c, &inner));
	cr_assert_eq(cursor_len(&c), sizeof(b));
	cr_assert_not(cursor_get_u8_prefixed(&c, &inner) && cursor_len(&inner) == 1);
}

Test(cursor, little_endian_for_capture_headers)
{
	static const uint8_t b[] = { 0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00 };
	struct cursor c;
	uint32_t magic;
	uint16_t major;

	cursor_init(&c, b, sizeof(b));
	cr_assert(cursor_get_u32le(&c, &magic));
	cr_assert_eq(magic, 0xa1b2c3d4u);
	cr_assert(cursor_get_u16le(&c, &major));
	cr_assert_eq(major, 2);
}

Test(cursor, find_and_prefix)
{
	static const char s[] = "HTTP/1.1 200 Connection established\r\n\r\nrest";
	struct cursor c;
	size_t at;

	cursor_init(&c, (const uint8_t *)s, sizeof(s) - 1);
	cr_assert(cursor_starts_with(&c, "http/1.", 7, 1));
	cr_assert_not(cursor_starts_with(&c, "http/1.", 7, 0));
	cr_assert(cursor_find(&c, "\r\n\r\n", 4, &at));
	cr_assert_eq(at, 35);
	cr_assert_not(cursor_find(&c, "absent", 6, &at));
}
