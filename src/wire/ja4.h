/* ja4: the JA4 TLS client fingerprint (FoxIO, technical_details/JA4.md)
 * computed from a decoded ClientHello.
 *
 *   t13d1516h2_8daaf6152771_e5627efa2ab1
 *   a: transport, version, SNI d/i, cipher count, extension count, ALPN
 *   b: sha256 of the sorted cipher list, first 12 hex digits
 *   c: sha256 of the sorted extension list (SNI and ALPN left out), then
 *      "_" and the signature algorithms in wire order, first 12 hex digits
 *
 * GREASE values (RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa) are ignored in every
 * list, and a GREASE ALPN identifier is skipped when choosing the first
 * ALPN value. */
#ifndef MTLSDIAG_JA4_H
#define MTLSDIAG_JA4_H

#include <stdbool.h>
#include <stdint.h>

#include "wire/facts.h"

/* Longest fingerprint is 36 characters; out must hold JA4_LEN bytes. */
#define JA4_LEN 40

/* Fills out with the JA4 fingerprint of ch.  transport is 't' (TLS over
 * TCP), 'q' (QUIC) or 'd' (DTLS); any other value is treated as 't'.
 * On an internal hashing failure out is the empty string. */
void ja4_compute(const struct client_hello *ch, char transport, char out[JA4_LEN]);

/* True for the 16 GREASE code points 0x?a?a with equal bytes. */
bool ja4_is_grease(uint16_t v);

#endif
