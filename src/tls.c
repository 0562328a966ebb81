/* tls: (to be written) */
#include "config.h"
