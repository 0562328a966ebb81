/* x509info: (to be written) */
#include "config.h"
