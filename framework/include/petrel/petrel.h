/*
 * petrel/petrel.h - umbrella header: include this to use petrel.
 */
#ifndef PETREL_PETREL_H
#define PETREL_PETREL_H

#include "app.h"
#include "common.h"
#include "config.h"
#include "db.h"
#include "fiber.h"
#include "http.h"
#include "limits.h"
#include "log.h"
#include "metrics.h"
#include "openapi.h"
#include "queue.h"
#include "req.h"
#include "route.h"
#include "task.h"

#endif
