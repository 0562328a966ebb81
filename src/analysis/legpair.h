/* legpair: pairs the two legs of a TLS-terminating gateway in one capture
 * (taken on the gateway, or two taps merged with mergecap).
 *
 * The capture front end offers each decided connection.  Connections that
 * cannot be a leg (verdict_leg_role) go straight to `emit`, in the order
 * offered: the common case costs one test.  A possible leg is held until
 * its partner arrives (matched by SNI, CONNECT target or server address,
 * and overlapping time), for at most `hold_s` seconds of capture time after
 * it ended and at most `max_held` at once; then it is emitted as it was. */
#ifndef MTLSDIAG_LEGPAIR_H
#define MTLSDIAG_LEGPAIR_H

#include <stddef.h>
#include <sys/time.h>

#include "wire/facts.h"
#include "analysis/verdict.h"

/* Prints (and frees) one connection; `v` may differ from the verdict
 * offered (paired legs). */
typedef void (*legpair_emit_fn)(void *ctx, void *conn, const struct conn_facts *f,
				const struct verdict *v);

struct legpair;

struct legpair *legpair_new(size_t max_held, unsigned hold_s, legpair_emit_fn emit, void *ctx)
	__attribute__((warn_unused_result));

/* A decided connection; `f` and `v` stay valid until `emit` is called for
 * `conn`, and `v` may be changed (a paired leg). */
void legpair_offer(struct legpair *lp, void *conn, const struct conn_facts *f,
		   struct verdict *v) __attribute__((nonnull));

/* From now on a leg is held at most hold_s seconds (a capture found to be
 * live holds its legs for less). */
void legpair_set_hold(struct legpair *lp, unsigned hold_s) __attribute__((nonnull));

/* Time (a live capture's clock) has reached `now` without an offer: emits
 * the connections held longer than hold_s. */
void legpair_tick(struct legpair *lp, const struct timeval *now) __attribute__((nonnull));

/* End of the input: emits every held connection. */
void legpair_flush(struct legpair *lp) __attribute__((nonnull));

/* Flushes, then frees. */
void legpair_free(struct legpair *lp);

/* Two legs a gateway could have relayed for the same request: the client
 * leg's CONNECT host names the server leg's SNI or address and its port is
 * the server leg's port, or (no CONNECT: a transparent gateway) both have
 * the same SNI and server port; and the two overlap in time (within
 * `slack_s` seconds). */
bool legpair_match(const struct conn_facts *client_leg, const struct conn_facts *server_leg,
		   unsigned slack_s) __attribute__((nonnull));

#endif
