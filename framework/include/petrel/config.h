/*
 * petrel/config.h - typed configuration from YAML, overridden by environment.
 *
 * Keys are dotted paths ("server.port"). Every key must be declared (the
 * framework declares server.*, log.*, ...; an app declares its own); an
 * unknown key, a wrong type or a bad value is an error naming file, line and
 * key. Environment variables PETREL_<UPPER_SNAKE_PATH> override the file
 * (server.port -> PETREL_SERVER_PORT). A path segment "*" declares a map of
 * named sections ("upstreams.*.base_url"): any name is accepted there.
 */
#ifndef PETREL_CONFIG_H
#define PETREL_CONFIG_H

#include <stdbool.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct petrel_config petrel_config_t;

typedef enum petrel_cfg_type {
    PETREL_CFG_STR = 1,
    PETREL_CFG_INT,
    PETREL_CFG_FLOAT,
    PETREL_CFG_BOOL,
    PETREL_CFG_STRLIST, /**< YAML sequence of strings, or a comma-separated env value */
} petrel_cfg_type_t;

/** One declared key. */
typedef struct petrel_cfg_key {
    const char *path; /**< "server.port", "upstreams.*.base_url" */
    petrel_cfg_type_t type;
    const char *dflt;           /**< default as text; NULL: no default (str: NULL, numbers: 0) */
    const char *help;           /**< one line for the README / --help */
    double min, max;            /**< numeric bounds, inclusive; both 0: unbounded */
    const char *const *choices; /**< NULL-terminated allowed strings, or NULL */
} petrel_cfg_key_t;

/** Creates an empty config with the framework's keys declared. Owned: petrel_config_free(). */
PETREL_API petrel_config_t *petrel_config_new(void);
PETREL_API void petrel_config_free(petrel_config_t *cfg);
/** Declares `n` more keys (borrowed: must outlive cfg). Returns 0 or PETREL_EINVAL (duplicate). */
PETREL_API PETREL_NODISCARD int petrel_config_declare(petrel_config_t *cfg,
                                                      const petrel_cfg_key_t *keys, size_t n);
/**
 * Loads `file` (NULL: defaults only), then applies PETREL_* environment
 * overrides from `envp` (NULL: the process environment). On failure returns
 * PETREL_ECONFIG, writes one line naming file:line and key (or
 * "environment: VAR") into err, and leaves cfg as it was. A PETREL_* variable
 * that matches no key is an error, except PETREL_CONFIG, PETREL_TEST_* and
 * PETREL_BENCH_*, which scripts use and which are ignored here. A YAML null,
 * or an empty string, for a str/strlist key unsets it (its default applies).
 */
PETREL_API PETREL_NODISCARD int petrel_config_load(petrel_config_t *cfg, const char *file,
                                                   char *const *envp, char *err, size_t errlen);
/** Sets one key from text as if read from the file (for tests and CLI flags). */
PETREL_API PETREL_NODISCARD int petrel_config_set(petrel_config_t *cfg, const char *path,
                                                  const char *value, char *err, size_t errlen);

/**
 * Typed reads of a declared key (its default when unset). Strings are borrowed from cfg.
 * Reading an undeclared path, or with the wrong type, is a bug: it aborts with a message.
 */
PETREL_API const char *petrel_config_str(const petrel_config_t *cfg, const char *path);
PETREL_API int64_t petrel_config_int(const petrel_config_t *cfg, const char *path);
PETREL_API double petrel_config_float(const petrel_config_t *cfg, const char *path);
PETREL_API bool petrel_config_bool(const petrel_config_t *cfg, const char *path);
/** A STRLIST key; borrowed, NULL-terminated (never NULL itself). Sets *n. */
PETREL_API const char *const *petrel_config_strlist(const petrel_config_t *cfg, const char *path,
                                                    size_t *n);
/** True when `path` was set by the file or the environment. */
PETREL_API bool petrel_config_isset(const petrel_config_t *cfg, const char *path);
/** Names present under a map prefix ("upstreams" -> {"weather","prices"}). Borrowed; sets *n. */
PETREL_API const char *const *petrel_config_map_names(const petrel_config_t *cfg,
                                                      const char *prefix, size_t *n);
/** Iterates declared keys (for docs): returns the i-th key or NULL past the end. */
PETREL_API const petrel_cfg_key_t *petrel_config_key_at(const petrel_config_t *cfg, size_t i);

#ifdef __cplusplus
}
#endif
#endif
