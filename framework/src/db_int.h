/*
 * db_int.h - private: what other framework modules need from db.c.
 */
#ifndef PETREL_DB_INT_H
#define PETREL_DB_INT_H

#include "petrel/config.h"

/** Declares the database.* keys; called by petrel_config_new() (config.c). */
int petrel__db_declare(petrel_config_t *cfg);

#endif
