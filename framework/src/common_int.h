/*
 * common_int.h - private helpers shared by several framework modules.
 */
#ifndef PETREL_COMMON_INT_H
#define PETREL_COMMON_INT_H

/** The reason phrase for an HTTP status ("Not Found"), or "" when petrel has none. Static. */
const char *petrel__reason_phrase(int status);

#endif
