/* observer: (to be written) */
#include "config.h"
