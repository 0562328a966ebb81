/* verdict: (to be written) */
#include "config.h"
