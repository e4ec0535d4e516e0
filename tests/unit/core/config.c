/* tests/unit/core/config.c — the settings table: defaults, bounds, errors
 * that name the key, --config files. */
#include "core/core.h"
#include "tests/unit/unit.h"
#include <stdlib.h>
#include <unistd.h>

static void
clear_env(void)
{
    unsetenv("GATEHOUSE_LISTEN");
    unsetenv("GATEHOUSE_PUBLIC_URL");
    unsetenv("GATEHOUSE_LOG_LEVEL");
    unsetenv("GATEHOUSE_DB_POOL_SIZE");
}

static void
test_defaults(void)
{
    struct gh_err e = {0};
    clear_env();
    UNIT_EQ_INT(gh_config_load(NULL, &e), 0);
    UNIT_EQ_STR(gh_cfg.listen, "127.0.0.1:8080");
    UNIT_EQ_STR(gh_cfg.public_url, "http://127.0.0.1:8080");
    UNIT_EQ_STR(gh_cfg.log_level, "info");
}

static void
test_bad_value_names_the_key(void)
{
    struct gh_err e = {0};
    clear_env();
    setenv("GATEHOUSE_LISTEN", "not-an-address", 1);
    UNIT_TRUE(gh_config_load(NULL, &e) < 0);
    UNIT_TRUE(strstr(e.msg, "GATEHOUSE_LISTEN") != NULL);
    clear_env();
    gh_err_clear(&e);
    setenv("GATEHOUSE_LOG_LEVEL", "chatty", 1);
    UNIT_TRUE(gh_config_load(NULL, &e) < 0);
    UNIT_TRUE(strstr(e.msg, "GATEHOUSE_LOG_LEVEL") != NULL);
    clear_env();
    gh_err_clear(&e);
    setenv("GATEHOUSE_DB_POOL_SIZE", "100000", 1);
    UNIT_TRUE(gh_config_load(NULL, &e) < 0);
    UNIT_TRUE(strstr(e.msg, "GATEHOUSE_DB_POOL_SIZE") != NULL);
    clear_env();
}

static void
test_public_url_trailing_slash_dropped(void)
{
    struct gh_err e = {0};
    clear_env();
    setenv("GATEHOUSE_PUBLIC_URL", "https://auth.example.com/", 1);
    UNIT_EQ_INT(gh_config_load(NULL, &e), 0);
    UNIT_EQ_STR(gh_cfg.public_url, "https://auth.example.com");
    UNIT_TRUE(gh_config_public_https());
    clear_env();
}

static void
test_config_file_and_env_precedence(void)
{
    struct gh_err e = {0};
    char path[] = "/tmp/gh-unit-config-XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "# comment\nlisten = 127.0.0.1:9999\nlog_level = warn\n";
    UNIT_TRUE(fd >= 0);
    UNIT_EQ_INT(write(fd, text, sizeof(text) - 1), (long)sizeof(text) - 1);
    close(fd);
    clear_env();
    UNIT_EQ_INT(gh_config_load(path, &e), 0);
    UNIT_EQ_STR(gh_cfg.listen, "127.0.0.1:9999");
    UNIT_EQ_STR(gh_cfg.log_level, "warn");
    setenv("GATEHOUSE_LOG_LEVEL", "error", 1);   /* the environment wins */
    UNIT_EQ_INT(gh_config_load(path, &e), 0);
    UNIT_EQ_STR(gh_cfg.log_level, "error");
    clear_env();
    unlink(path);
}

static void
test_config_file_unknown_key(void)
{
    struct gh_err e = {0};
    char path[] = "/tmp/gh-unit-config-XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "listen_adress = 127.0.0.1:1\n";
    UNIT_EQ_INT(write(fd, text, sizeof(text) - 1), (long)sizeof(text) - 1);
    close(fd);
    clear_env();
    UNIT_TRUE(gh_config_load(path, &e) < 0);
    UNIT_TRUE(strstr(e.msg, "listen_adress") != NULL);
    unlink(path);
}

int
main(void)
{
    UNIT_RUN(test_defaults);
    UNIT_RUN(test_bad_value_names_the_key);
    UNIT_RUN(test_public_url_trailing_slash_dropped);
    UNIT_RUN(test_config_file_and_env_precedence);
    UNIT_RUN(test_config_file_unknown_key);
    return UNIT_DONE();
}
