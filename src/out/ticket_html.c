/* ticket_html: the folder's index.html (filled in below). */
#include "config.h"

#include <stdio.h>

#include "out/ticket_int.h"

void tk_index_html(FILE *out, const struct ticket *t)
{
	(void)t;
	fprintf(out, "<!doctype html>\n");
}
