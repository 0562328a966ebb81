/* netaddr: socket addresses to and from the project's struct endpoint,
 * shared by the front ends that open sockets (proxy, probe), and the
 * proxy's address checks: listen addresses, loopback, where a redirected
 * connection was headed.  HOST:PORT strings and --allow patterns are
 * parsed here too, under the names proxy.h gives them. */
#ifndef MTLSDIAG_NETADDR_H
#define MTLSDIAG_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "wire/facts.h"

/* A numeric IPv4 or IPv6 address and a port as a sockaddr: its length,
 * or 0 when host is not a numeric address (a name, to be resolved). */
socklen_t netaddr_numeric(const char *host, uint16_t port, struct sockaddr_storage *ss)
	__attribute__((nonnull));

/* The endpoint of sa (an IPv4-mapped IPv6 address as IPv4; "?" for
 * another family). */
void netaddr_endpoint(const struct sockaddr *sa, struct endpoint *ep) __attribute__((nonnull));

/* A --listen address "ADDR:PORT", numeric ("localhost" is 127.0.0.1), as a
 * sockaddr.  1 on success, 0 when it is not one. */
int netaddr_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
	__attribute__((nonnull, warn_unused_result));

/* Whether sa is a loopback address (127/8, ::1). */
bool netaddr_is_loopback(const struct sockaddr *sa) __attribute__((nonnull));

/* Where a connection redirected by netfilter (REDIRECT, DNAT) to the
 * socket fd was headed (SO_ORIGINAL_DST).  0 with a reason in why when
 * the socket was not redirected, or was addressed to the proxy itself. */
int netaddr_original_dst(int fd, struct sockaddr_storage *out, char *why, size_t whylen)
	__attribute__((nonnull, warn_unused_result));

#endif
