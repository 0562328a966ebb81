/* fuzz_http: libFuzzer target for the decrypted-HTTP readers (http1.c and
 * http2.c).  The input is read as the server's first bytes and as the
 * client's, whole and cut at every length up to 64 bytes: each reader
 * must decide or ask for more without reading past its input, and a
 * status it reports is a three-digit number. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/http1.h"
#include "wire/http2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const uint8_t *data, size_t size, bool complete)
{
	struct http1_response resp;
	struct cursor c;
	char line[256];

	cursor_init(&c, data, size);
	(void)http2_client_preface(&c);
	(void)http2_server_preface(&c);
	(void)http1_request_line(&c, line, sizeof(line));
	if (http2_response(&c, complete, &resp) == HTTP1_DONE && (resp.status < 100 || resp.status > 999))
		abort();
	if (http1_response(&c, complete, &resp) == HTTP1_DONE && (resp.status < 100 || resp.status > 999))
		abort();
	/* the Server header's value: printable and terminated */
	if (strnlen(resp.server, sizeof(resp.server)) == sizeof(resp.server))
		abort();
	for (const char *p = resp.server; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut;

	read_all(data, size, true);
	for (cut = 0; cut < size && cut <= 64; cut++)
		read_all(data, cut, false);
	return 0;
}
