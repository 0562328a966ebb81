/* report: (to be written) */
#include "config.h"
