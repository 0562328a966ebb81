#ifndef MTLSDIAG_TLS_H
#define MTLSDIAG_TLS_H
#endif
