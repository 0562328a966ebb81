#ifndef MTLSDIAG_FLOW_H
#define MTLSDIAG_FLOW_H
#endif
