/* tls_msgs: (to be written) */
#include "config.h"
