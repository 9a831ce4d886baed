/*
 * lazy_edit: the libedit (readline-compatible API) functions lumu uses,
 * forwarded to libedit.so.2 loaded on first use (see lazylib.h).  The
 * rl_* variables are in the symbol list too, so a load checks them; lua/l_repl.c
 * reaches them through lumu_lazy_sym(&lumu_lazy_edit, "rl_...").
 * lua/l_repl.c checks availability when the module is opened.
 */
#include "lazylib.h"

#include <stdio.h>

#include <editline/readline.h>

#define EDIT_SYMBOLS(X)                                                                  \
    X(add_history)                                                                       \
    X(read_history)                                                                      \
    X(readline)                                                                          \
    X(rl_add_defun)                                                                      \
    X(rl_completion_matches)                                                             \
    X(rl_initialize)                                                                     \
    X(rl_parse_and_bind)                                                                 \
    X(stifle_history)                                                                    \
    X(write_history)                                                                     \
    /* variables */                                                                      \
    X(rl_attempted_completion_function)                                                  \
    X(rl_attempted_completion_over)                                                      \
    X(rl_basic_word_break_characters)                                                    \
    X(rl_completion_append_character)                                                    \
    X(rl_done)                                                                           \
    X(rl_line_buffer)                                                                    \
    X(rl_point)                                                                          \
    X(rl_readline_name)

LUMU_LAZY_DEFINE(lumu_lazy_edit, "edit", "libedit.so.2", EDIT_SYMBOLS);

#define FN(name) LUMU_LAZY_FN(lumu_lazy_edit, name)

LUMU_LAZY_SHIM int add_history(const char *line)
{
    return FN(add_history)(line);
}

LUMU_LAZY_SHIM int read_history(const char *path)
{
    return FN(read_history)(path);
}

LUMU_LAZY_SHIM char *readline(const char *prompt)
{
    return FN(readline)(prompt);
}

LUMU_LAZY_SHIM int rl_add_defun(const char *name, rl_command_func_t *fn, int key)
{
    return FN(rl_add_defun)(name, fn, key);
}

LUMU_LAZY_SHIM char **rl_completion_matches(const char *text, rl_compentry_func_t *gen)
{
    return FN(rl_completion_matches)(text, gen);
}

LUMU_LAZY_SHIM int rl_initialize(void)
{
    return FN(rl_initialize)();
}

LUMU_LAZY_SHIM int rl_parse_and_bind(const char *line)
{
    return FN(rl_parse_and_bind)(line);
}

LUMU_LAZY_SHIM void stifle_history(int max)
{
    FN(stifle_history)(max);
}

LUMU_LAZY_SHIM int write_history(const char *path)
{
    return FN(write_history)(path);
}
