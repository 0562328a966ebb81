/* netaddr: socket addresses and endpoints (see netaddr.h). */
#include "config.h"

#include "front/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

socklen_t netaddr_numeric(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return sizeof(*sin);
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		return sizeof(*sin6);
	}
	return 0;
}

void netaddr_endpoint(const struct sockaddr *sa, struct endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, ep->ip, sizeof(ep->ip));
		ep->port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))   /* a v4 client on a dual-stack listener */
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ep->ip, sizeof(ep->ip));
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, ep->ip, sizeof(ep->ip));
		ep->port = ntohs(sin6->sin6_port);
	} else {
		snprintf(ep->ip, sizeof(ep->ip), "?");
	}
}
