/* flow: (to be written) */
#include "config.h"
