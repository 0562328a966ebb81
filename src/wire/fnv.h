/* fnv: FNV-1a, the hash of the project's small in-memory tables (memos of
 * parsed names and times, JA4 strings, per-source counts, gateway legs).
 * Not for anything an attacker could aim at a table's size. */
#ifndef MTLSDIAG_FNV_H
#define MTLSDIAG_FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV32_BASIS 2166136261u
#define FNV64_BASIS 0xcbf29ce484222325ULL

static inline uint32_t fnv32_step(uint32_t h, uint8_t b)
{
	return (h ^ b) * 16777619u;
}

static inline uint64_t fnv64_step(uint64_t h, uint8_t b)
{
	return (h ^ b) * 0x100000001b3ULL;
}

static inline uint32_t fnv32(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = FNV32_BASIS;

	while (n--)
		h = fnv32_step(h, *b++);
	return h;
}

static inline uint64_t fnv64(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = FNV64_BASIS;

	while (n--)
		h = fnv64_step(h, *b++);
	return h;
}

#endif
