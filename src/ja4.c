/* ja4: (to be written) */
#include "config.h"
