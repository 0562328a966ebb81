/* fuzz_tls: libFuzzer target for the TLS decoder, the preamble scanner,
 * the observer and the verdict rules together.
 *
 * Input: one flags byte (bit 0: the capture saw the SYN; bit 1: the
 * initiator closes first), then chunks of [side byte][u16 length][bytes],
 * fed in order as the two directions of one connection. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wire/cursor.h"
#include "fuzzutil.h"
#include "analysis/observer.h"
#include "wire/x509info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cert_cache *certs;
	struct observer_config cfg = { 0 };
	struct endpoint a = { "192.0.2.1", 40000 }, b = { "192.0.2.2", 443 };
	struct timeval ts = { 1700000000, 0 };
	struct cursor in;
	struct obs_conn *c;
	uint8_t flags, side;

	if (!certs)
		certs = cert_cache_new(64);
	cfg.certs = certs;
	cursor_init(&in, data, size);
	if (!cursor_get_u8(&in, &flags))
		return 0;
	c = obs_conn_new(&cfg, &a, &b, &ts, flags & 1);
	if (!c)
		return 0;
	while (cursor_get_u8(&in, &side)) {
		struct cursor chunk;
		uint16_t len;

		if (!cursor_get_u16(&in, &len))
			break;
		if (!cursor_get_bytes(&in, &chunk, len < cursor_len(&in) ? len : cursor_len(&in)))
			break;
		ts.tv_usec += 10;
		if (side == 0xff)
			obs_conn_gap(c, SIDE_CLIENT, len, &ts);
		else
			obs_conn_feed(c, (side & 1) ? SIDE_SERVER : SIDE_CLIENT, cursor_data(&chunk),
				      cursor_len(&chunk), &ts);
	}
	obs_conn_close(c, (flags & 2) ? SIDE_CLIENT : SIDE_SERVER, CLOSE_FIN, &ts);
	fuzz_finish_and_report(c, &ts);
	obs_conn_free(c);
	return 0;
}
