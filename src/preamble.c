/* preamble: (to be written) */
#include "config.h"
