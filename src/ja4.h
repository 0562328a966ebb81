#ifndef MTLSDIAG_JA4_H
#define MTLSDIAG_JA4_H
#endif
