/* livecap: an interface read live with libpcap on a libevent loop, each
 * packet into capture.c's flow table and, with -w, into a capture file. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <pcap/pcap.h>

#include "front/livecap.h"
#include "wire/capture.h"

struct livecap {
	const char *who;
	const char *iface;
	pcap_t *p;
	pcap_dumper_t *dump;
	const char *write_path;
	bool write_failed;
	int linktype;
	struct event_base *base;
	struct event *readable, *timer, *sigint, *sigterm;
	struct capture *cap;           /* during livecap_run */
	void (*tick)(void *ctx, const struct timeval *now);
	void *tick_ctx;
	bool read_failed;
	int stop_signal;
	struct pcap_stat last;         /* the kernel's last counts, to add what changed */
	struct livecap_counters counts;
};

/* What to do about an activation error, after what libpcap said. */
static void say_activate_error(const struct livecap *lc, int rc)
{
	const char *why = pcap_geterr(lc->p);

	switch (rc) {
	case PCAP_ERROR_PERM_DENIED:
		fprintf(stderr, "%s: no permission to capture on %s (%s): capturing needs CAP_NET_RAW; "
			"run as root, or give the program the capability once: "
			"sudo setcap cap_net_raw,cap_net_admin+eip $(command -v mtlsdiag)\n",
			lc->who, lc->iface, why[0] ? why : "permission denied");
		break;
	case PCAP_ERROR_NO_SUCH_DEVICE:
		fprintf(stderr, "%s: no interface named '%s' (%s); 'ip link' lists them\n", lc->who, lc->iface,
			why[0] ? why : "no such device");
		break;
	case PCAP_ERROR_IFACE_NOT_UP:
		fprintf(stderr, "%s: interface %s is down; bring it up (ip link set %s up)\n", lc->who, lc->iface,
			lc->iface);
		break;
	case PCAP_ERROR_PROMISC_PERM_DENIED:
		fprintf(stderr, "%s: no permission to put %s in promiscuous mode (%s); run without --promisc\n",
			lc->who, lc->iface, why);
		break;
	default:
		fprintf(stderr, "%s: cannot capture on %s: %s\n", lc->who, lc->iface,
			why[0] ? why : pcap_statustostr(rc));
		break;
	}
}

/* -w FILE, created with the run's mode (pcap_dump_open would use 0666). */
static int open_dump(struct livecap *lc, const struct livecap_config *cfg)
{
	int fd = open(cfg->write_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, cfg->file_mode);
	FILE *f;

	if (fd < 0) {
		fprintf(stderr, "%s: -w %s: %s\n", lc->who, cfg->write_path, strerror(errno));
		return 0;
	}
	if (!(f = fdopen(fd, "wb"))) {
		fprintf(stderr, "%s: -w %s: %s\n", lc->who, cfg->write_path, strerror(errno));
		close(fd);
		return 0;
	}
	if (!(lc->dump = pcap_dump_fopen(lc->p, f))) {
		fprintf(stderr, "%s: -w %s: %s\n", lc->who, cfg->write_path, pcap_geterr(lc->p));
		fclose(f);
		return 0;
	}
	lc->write_path = cfg->write_path;
	return 1;
}

static int set_filter(struct livecap *lc, const char *filter)
{
	struct bpf_program prog;
	int rc;

	if (pcap_compile(lc->p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		fprintf(stderr, "%s: bad filter expression \"%s\": %s\n", lc->who, filter, pcap_geterr(lc->p));
		return 0;
	}
	rc = pcap_setfilter(lc->p, &prog);
	pcap_freecode(&prog);
	if (rc != 0) {
		fprintf(stderr, "%s: cannot set the filter on %s: %s\n", lc->who, lc->iface, pcap_geterr(lc->p));
		return 0;
	}
	return 1;
}

/* The handle as asked, activated.  0 after printing why. */
static int activate(struct livecap *lc, const struct livecap_config *cfg)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	int rc;

	if (!(lc->p = pcap_create(cfg->iface, ebuf))) {
		fprintf(stderr, "%s: cannot capture on %s: %s\n", lc->who, cfg->iface, ebuf);
		return 0;
	}
	if (pcap_set_snaplen(lc->p, cfg->snaplen) != 0 ||
	    (cfg->buffer_size && pcap_set_buffer_size(lc->p, cfg->buffer_size) != 0) ||
	    pcap_set_promisc(lc->p, cfg->promisc) != 0 ||
	    pcap_set_immediate_mode(lc->p, 1) != 0) {
		fprintf(stderr, "%s: cannot set up the capture on %s\n", lc->who, cfg->iface);
		return 0;
	}
	rc = pcap_activate(lc->p);
	if (rc < 0) {
		say_activate_error(lc, rc);
		return 0;
	}
	if (rc > 0)
		fprintf(stderr, "%s: warning: %s: %s\n", lc->who, cfg->iface,
			pcap_geterr(lc->p)[0] ? pcap_geterr(lc->p) : pcap_statustostr(rc));
	lc->linktype = pcap_datalink(lc->p);
	if (!capture_linktype_supported(lc->linktype)) {
		const char *name = pcap_datalink_val_to_name(lc->linktype);

		fprintf(stderr, "%s: %s: unsupported link-layer type %s (%d)\n", lc->who, cfg->iface,
			name ? name : "unknown", lc->linktype);
		return 0;
	}
	if (cfg->filter && *cfg->filter && !set_filter(lc, cfg->filter))
		return 0;
	if (pcap_setnonblock(lc->p, 1, ebuf) != 0) {
		fprintf(stderr, "%s: %s: %s\n", lc->who, cfg->iface, ebuf);
		return 0;
	}
	return 1;
}

/* ---- the loop ---- */

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct livecap *lc = (struct livecap *)user;

	lc->counts.read++;
	if (lc->dump) {
		pcap_dump((u_char *)lc->dump, h, bytes);
		lc->counts.written++;
	}
	capture_packet(lc->cap, lc->linktype, &h->ts, bytes, h->caplen, h->len);
}

/* Reads what the kernel holds.  0 after printing why reading failed. */
static int drain(struct livecap *lc)
{
	int rc;

	/* a bounded number of packets a turn: the timer and signals still run */
	rc = pcap_dispatch(lc->p, 4096, on_packet, (u_char *)lc);
	if (rc == PCAP_ERROR) {
		fprintf(stderr, "%s: reading %s stopped: %s\n", lc->who, lc->iface, pcap_geterr(lc->p));
		lc->read_failed = true;
		return 0;
	}
	return 1;
}

/* The kernel's counts are 32 bits and wrap: what changed is added. */
static void read_counts(struct livecap *lc)
{
	struct pcap_stat now;

	if (pcap_stats(lc->p, &now) != 0)
		return;
	lc->counts.received += (uint32_t)(now.ps_recv - lc->last.ps_recv);
	lc->counts.dropped += (uint32_t)(now.ps_drop - lc->last.ps_drop);
	lc->counts.if_dropped += (uint32_t)(now.ps_ifdrop - lc->last.ps_ifdrop);
	lc->last = now;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct livecap *lc = arg;

	(void)fd;
	(void)what;
	if (!drain(lc))
		event_base_loopbreak(lc->base);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct livecap *lc = arg;
	struct timeval now;

	(void)fd;
	(void)what;
	/* packets the poll did not announce (a kernel that batches) */
	if (!drain(lc)) {
		event_base_loopbreak(lc->base);
		return;
	}
	gettimeofday(&now, NULL);
	capture_tick(lc->cap, &now);
	if (lc->tick)
		lc->tick(lc->tick_ctx, &now);
	read_counts(lc);
	if (lc->dump && !lc->write_failed && pcap_dump_flush(lc->dump) != 0) {
		fprintf(stderr, "%s: -w %s: %s; the capture file stops here\n", lc->who, lc->write_path,
			strerror(errno));
		lc->write_failed = true;
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct livecap *lc = arg;

	(void)what;
	lc->stop_signal = (int)sig;
	event_base_loopbreak(lc->base);
}

struct livecap *livecap_open(const char *who, const struct livecap_config *cfg)
{
	struct livecap *lc = calloc(1, sizeof(*lc));
	int fd;

	if (!lc) {
		fprintf(stderr, "%s: out of memory\n", who);
		return NULL;
	}
	lc->who = who;
	lc->iface = cfg->iface;
	if (!activate(lc, cfg) || (cfg->write_path && !open_dump(lc, cfg)))
		goto Fail;
	fd = pcap_get_selectable_fd(lc->p);
	if (fd < 0) {
		fprintf(stderr, "%s: %s cannot be watched for packets (no selectable descriptor)\n", who, cfg->iface);
		goto Fail;
	}
	if (!(lc->base = event_base_new()) ||
	    !(lc->readable = event_new(lc->base, fd, EV_READ | EV_PERSIST, on_readable, lc)) ||
	    !(lc->timer = event_new(lc->base, -1, EV_PERSIST, on_timer, lc)) ||
	    !(lc->sigint = evsignal_new(lc->base, SIGINT, on_signal, lc)) ||
	    !(lc->sigterm = evsignal_new(lc->base, SIGTERM, on_signal, lc))) {
		fprintf(stderr, "%s: cannot set up the event loop\n", who);
		goto Fail;
	}
	return lc;
Fail:
	(void)livecap_close(lc);
	return NULL;
}

const char *livecap_linktype_name(const struct livecap *lc)
{
	const char *name = pcap_datalink_val_to_name(lc->linktype);

	return name ? name : "unknown";
}

struct event_base *livecap_base(struct livecap *lc)
{
	return lc->base;
}

void livecap_counters(const struct livecap *lc, struct livecap_counters *out)
{
	*out = lc->counts;
}

int livecap_stop_signal(const struct livecap *lc)
{
	return lc->stop_signal;
}

int livecap_run(struct livecap *lc, struct capture *cap,
		void (*tick)(void *ctx, const struct timeval *now), void *ctx)
{
	const struct timeval second = { 1, 0 };

	lc->cap = cap;
	lc->tick = tick;
	lc->tick_ctx = ctx;
	if (event_add(lc->readable, NULL) != 0 || event_add(lc->timer, &second) != 0 ||
	    event_add(lc->sigint, NULL) != 0 || event_add(lc->sigterm, NULL) != 0) {
		fprintf(stderr, "%s: cannot set up the event loop\n", lc->who);
		return 0;
	}
	(void)event_base_dispatch(lc->base);
	event_del(lc->readable);
	event_del(lc->timer);
	/* what the kernel still holds belongs to the run */
	if (!lc->read_failed)
		(void)drain(lc);
	read_counts(lc);
	lc->cap = NULL;
	return !lc->read_failed;
}

int livecap_close(struct livecap *lc)
{
	int ok = 1;

	if (!lc)
		return 1;
	if (lc->sigint)
		event_free(lc->sigint);
	if (lc->sigterm)
		event_free(lc->sigterm);
	if (lc->timer)
		event_free(lc->timer);
	if (lc->readable)
		event_free(lc->readable);
	if (lc->base)
		event_base_free(lc->base);
	if (lc->dump) {
		FILE *f = pcap_dump_file(lc->dump);

		if (pcap_dump_flush(lc->dump) != 0 || ferror(f))
			ok = 0;
		pcap_dump_close(lc->dump);
		if (!ok && !lc->write_failed)
			fprintf(stderr, "%s: -w %s: %s\n", lc->who, lc->write_path, strerror(errno));
		if (lc->write_failed)
			ok = 0;
	}
	if (lc->p)
		pcap_close(lc->p);
	free(lc);
	return ok;
}
