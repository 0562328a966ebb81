/* netaddr: socket addresses and endpoints, HOST:PORT strings and --allow
 * patterns (see netaddr.h).  proxy_split_hostport and proxy_allow_* are
 * declared in proxy.h, the names the command line and the tests know. */
#include "config.h"

#include "front/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/proxy.h"

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

int proxy_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hlen, i;
	char *end;
	unsigned long p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return 0;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return 0;
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return 0;   /* an IPv6 address needs brackets */
	}
	if (hlen == 0 || hlen >= hostlen || !colon[1])
		return 0;
	for (i = 0; i < hlen; i++) {
		unsigned char ch = (unsigned char)h[i];

		/* a name or an address (':' and '%' zone only inside brackets) */
		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !(ch >= '0' && ch <= '9') &&
		    ch != '.' && ch != '-' && ch != '_' && !(h != s && (ch == ':' || ch == '%')))
			return 0;
	}
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || p == 0 || p > 65535 || colon[1] == '+' || colon[1] == '-' || colon[1] == ' ')
		return 0;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)p;
	return 1;
}

int netaddr_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char host[256];
	uint16_t port;

	if (!proxy_split_hostport(spec, host, sizeof(host), &port))
		return 0;
	*sslen = netaddr_numeric(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port, ss);
	return *sslen != 0;
}

bool netaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

static bool sockaddr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port && IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr);
	}
	return false;
}

int netaddr_original_dst(int fd, struct sockaddr_storage *out, char *why, size_t whylen)
{
	struct sockaddr_storage ss, local;
	socklen_t len = sizeof(ss), llen = sizeof(local);
	int r;

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0) {
		snprintf(why, whylen, "getsockname: %s", strerror(errno));
		return 0;
	}
	/* a v4 client on a dual-stack listener was redirected by the IPv4 table */
	if (local.ss_family == AF_INET6 &&
	    !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)&local)->sin6_addr))
		r = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len);
	else
		r = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
	if (r != 0) {
		snprintf(why, whylen, "no original destination (SO_ORIGINAL_DST: %s): was it redirected by iptables/nftables?",
			 strerror(errno));
		return 0;
	}
	if (local.ss_family == AF_INET6 && ss.ss_family == AF_INET) {
		const struct sockaddr_in6 *l6 = (const struct sockaddr_in6 *)&local;
		struct sockaddr_in *l4 = (struct sockaddr_in *)&local;
		struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = l6->sin6_port };

		memcpy(&v4.sin_addr, &l6->sin6_addr.s6_addr[12], 4);
		*l4 = v4;
	}
	if (sockaddr_same(&ss, &local)) {
		snprintf(why, whylen, "addressed to the proxy itself, not redirected: refusing to loop");
		return 0;
	}
	*out = ss;
	return 1;
}

int proxy_allow_valid(const char *pattern, char *err, size_t errlen)
{
	const char *colon = strrchr(pattern, ':');
	char *end;
	unsigned long p;

	if (!colon || colon == pattern || !colon[1]) {
		snprintf(err, errlen, "expected HOST:PORT (*.example.com:443, 10.1.2.*:*, [2001:db8::*]:443)");
		return 0;
	}
	if (strcmp(colon + 1, "*") == 0)
		return 1;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || p == 0 || p > 65535 || colon[1] == '-' || colon[1] == '+') {
		snprintf(err, errlen, "the port must be a number from 1 to 65535 or *");
		return 0;
	}
	return 1;
}

bool proxy_allow_match(const char *pattern, const char *host, uint16_t port)
{
	const char *colon = strrchr(pattern, ':');
	char hp[300];
	size_t n;
	bool bracketed = false;

	if (!colon)
		return false;
	if (strcmp(colon + 1, "*") != 0 && strtoul(colon + 1, NULL, 10) != port)
		return false;
	n = (size_t)(colon - pattern);
	if (n >= 2 && pattern[0] == '[' && pattern[n - 1] == ']') {   /* [v6 pattern] */
		pattern++;
		n -= 2;
		bracketed = true;
	}
	if (n >= sizeof(hp))
		return false;
	memcpy(hp, pattern, n);
	hp[n] = '\0';
	if (fnmatch(hp, host, FNM_CASEFOLD) != 0)
		return false;
	/* an address pattern admits addresses only: "10.1.2.*" must not let
	 * "10.1.2.example.net" through to wherever that name points */
	if (strspn(hp, "0123456789.*?") == n && strpbrk(hp, "0123456789")) {
		struct in_addr a4;

		return inet_pton(AF_INET, host, &a4) == 1;
	}
	if (bracketed) {
		struct in6_addr a6;

		return inet_pton(AF_INET6, host, &a6) == 1;
	}
	return true;
}
