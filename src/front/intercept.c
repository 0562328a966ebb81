/* intercept: the stand-in's shared state (intercept.h): its
 * configuration's lifetime. */
#include "config.h"

#include "front/intercept.h"

#include <string.h>

void intercept_config_clear(struct intercept_config *c)
{
	X509_free(c->server_cert);
	EVP_PKEY_free(c->server_key);
	sk_X509_pop_free(c->server_chain, X509_free);
	X509_free(c->forge_ca);
	EVP_PKEY_free(c->forge_ca_key);
	sk_X509_NAME_pop_free(c->ca_names, X509_NAME_free);
	X509_free(c->upstream_cert);
	EVP_PKEY_free(c->upstream_key);
	sk_X509_pop_free(c->upstream_chain, X509_free);
	X509_STORE_free(c->upstream_ca);
	sk_X509_NAME_pop_free(c->profile.ca_names, X509_NAME_free);
	/* ca_store is the proxy's --ca-bundle, freed with it */
	memset(c, 0, sizeof(*c));
}
