/* capture: (to be written) */
#include "config.h"
