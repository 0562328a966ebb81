/* netaddr: socket addresses to and from the project's struct endpoint,
 * shared by the front ends that open sockets (proxy, probe). */
#ifndef MTLSDIAG_NETADDR_H
#define MTLSDIAG_NETADDR_H

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

#endif
