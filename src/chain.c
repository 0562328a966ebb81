/* chain: (to be written) */
#include "config.h"
