/*
 * app.h - the reference app's modules. main.c registers the core routes and
 * calls each module's init, which declares its config keys, routes and
 * lifespan hooks with petrel's public API only.
 */
#ifndef PETREL_APP_APP_H
#define PETREL_APP_APP_H

#include <petrel/petrel.h>

/* Each returns 0, or a negative PETREL_E* code (startup then exits 2). */

#endif
