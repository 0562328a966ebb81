#ifndef MTLSDIAG_CHAIN_H
#define MTLSDIAG_CHAIN_H
#endif
