/*
 * lumu._repl: the C core of lumu.repl (stdlib/lumu/repl.lua): line editing,
 * history and tab completion over libedit's readline-compatible API
 * (<editline/readline.h>, loaded with dlopen, see lazylib.h).
 *
 *   readline(prompt) -> line | nil | false
 *       One edited line without its newline; nil at end of input (Ctrl-D on
 *       an empty line); false when Ctrl-C abandoned the line.  Raises if
 *       called while another readline() is running (from a completer).
 *   add_history(line) -> nothing
 *   history_load(path) -> true | nil, err
 *   history_save(path) -> true | nil, err   (a new file is created mode 0600;
 *       at most HISTORY_MAX entries are kept)
 *   set_completer(fn | nil) -> nothing
 *       fn(line_before_cursor, word) -> { candidate, ... } is called on TAB;
 *       candidates are full replacements of `word` (e.g. "string.format" for
 *       "string.fo"); those not starting with `word` are ignored.
 *
 * libedit keeps one editor per process and so does this module.  Use it only
 * when standard input is a terminal (repl.lua reads plain lines otherwise).
 * libedit.so.2 is loaded when the module is opened (lazylib.h): require
 * raises "libedit.so.2 not available: <reason>" without it.
 *
 * Ctrl-C at the prompt: the tty's ISIG flag is turned off in libedit's edit
 * mode ("setty -d -isig"), so the interrupt character arrives as a key bound
 * to a function that ends readline() with the line marked abandoned.  A
 * SIGINT that still arrives (kill -INT, or an ~/.editrc that turns ISIG back
 * on) is caught for the duration of the call and has the same effect once
 * readline() returns.
 *
 * Locale: libedit decodes input and history with the C library's multibyte
 * functions, which in the "C" locale lumu runs in drop every non-ASCII byte.
 * Each call into libedit therefore runs with the user's LC_CTYPE (UTF-8
 * usually), and the previous LC_CTYPE is restored afterwards.
 *
 * Completion: libedit calls the completion hook from inside its own frames,
 * so the hook never raises: it calls the Lua completer with lua_pcall on the
 * main thread (looked up from the registry for the duration of readline(),
 * never a coroutine's state, never kept afterwards) and copies the strings
 * out only after the protected call has returned.  Strings handed to libedit
 * are malloc'd (libedit frees them with free()), not lumu_malloc'd.
 */
#include "host.h"

#include <lauxlib.h>

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <editline/readline.h>

#include "lazylib.h"

/* libedit is loaded on first use (lazylib.h): its variables are reached
 * through pointers into the loaded library, filled by luaopen_lumu__repl,
 * which raises when libedit is not available.  The macros keep the code
 * below written against the readline API. */
static struct {
    __typeof__(rl_readline_name) *readline_name;
    __typeof__(rl_line_buffer) *line_buffer;
    __typeof__(rl_point) *point;
    __typeof__(rl_basic_word_break_characters) *basic_word_break_characters;
    __typeof__(rl_attempted_completion_function) *attempted_completion_function;
    __typeof__(rl_attempted_completion_over) *attempted_completion_over;
    __typeof__(rl_completion_append_character) *completion_append_character;
    __typeof__(rl_done) *done;
} s_rl;
#define rl_readline_name (*s_rl.readline_name)
#define rl_line_buffer (*s_rl.line_buffer)
#define rl_point (*s_rl.point)
#define rl_basic_word_break_characters (*s_rl.basic_word_break_characters)
#define rl_attempted_completion_function (*s_rl.attempted_completion_function)
#define rl_attempted_completion_over (*s_rl.attempted_completion_over)
#define rl_completion_append_character (*s_rl.completion_append_character)
#define rl_done (*s_rl.done)

#define REPL_COMPLETER "lumu.repl.completer" /* registry key of the completer */
#define HISTORY_MAX 1000                     /* entries kept in the history */
#define COMPLETIONS_MAX 10000                /* candidates taken from the completer */

/* Word boundaries for completion: everything that cannot be part of a
 * `name.field:method` chain. */
static const char s_break_chars[] = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^~#";

static int s_inited;                     /* rl_initialize done */
static int s_tty_ready;                  /* ISIG off, ^C bound */
static lua_State *s_main;                /* main thread, only during readline() */
static int s_ctrl_c;                     /* the interrupt key was pressed */
static volatile sig_atomic_t s_sigint;   /* SIGINT arrived during readline() */

/* Candidates of the completion in progress, handed to libedit one by one. */
static char **s_cands;
static size_t s_ncands, s_next;

/* ---------------------------------------------------------------------------
 * Locale scope
 * ------------------------------------------------------------------------- */

typedef struct {
    char saved[256];
    int active;
} repl_locale;

/* Switches LC_CTYPE to the user's (from the environment) until
 * repl_locale_leave. */
static void repl_locale_enter(repl_locale *lc)
{
    const char *cur = setlocale(LC_CTYPE, NULL);
    lc->active = cur != NULL && strlen(cur) < sizeof lc->saved;
    if (lc->active) {
        strcpy(lc->saved, cur);
        if (setlocale(LC_CTYPE, "") == NULL)
            lc->active = 0;
    }
}

static void repl_locale_leave(repl_locale *lc)
{
    if (lc->active)
        setlocale(LC_CTYPE, lc->saved);
}

/* ---------------------------------------------------------------------------
 * Completion
 * ------------------------------------------------------------------------- */

typedef struct {
    const char *line; /* text before the cursor */
    size_t linelen;
    const char *word; /* the word being completed */
} repl_complete_args;

/* Protected part of a completion: completer(line, word) -> table, left on the
 * stack (or nothing when there is no completer or it returned no table).
 * [-0, +(0|1), e] */
static int repl_call_completer(lua_State *L)
{
    const repl_complete_args *a = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (lua_getfield(L, LUA_REGISTRYINDEX, REPL_COMPLETER) != LUA_TFUNCTION)
        return 0;
    lua_pushlstring(L, a->line, a->linelen);
    lua_pushstring(L, a->word);
    lua_call(L, 2, 1);
    return lua_istable(L, -1) ? 1 : 0;
}

/* Generator for rl_completion_matches: gives away s_cands one by one. */
static char *repl_generator(const char *text, int state)
{
    (void)text;
    if (state == 0)
        s_next = 0;
    if (s_next < s_ncands) {
        char *c = s_cands[s_next];
        s_cands[s_next++] = NULL; /* libedit owns it now */
        return c;
    }
    return NULL;
}

static void repl_free_cands(void)
{
    for (size_t i = 0; i < s_ncands; i++)
        free(s_cands[i]);
    free(s_cands);
    s_cands = NULL;
    s_ncands = s_next = 0;
}

/* rl_attempted_completion_function.  Never raises, never longjmps. */
static char **repl_complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* no file name completion fallback */
    lua_State *L = s_main;
    if (L == NULL || text == NULL || !lua_checkstack(L, 4))
        return NULL;

    repl_complete_args a;
    size_t len = rl_line_buffer ? strlen(rl_line_buffer) : 0;
    size_t point = rl_point > 0 ? (size_t)rl_point : 0;
    a.line = rl_line_buffer ? rl_line_buffer : "";
    a.linelen = point < len ? point : len;
    a.word = text;

    int top = lua_gettop(L);
    lua_pushcfunction(L, repl_call_completer);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK || lua_gettop(L) == top) {
        lua_settop(L, top); /* the completer failed or gave nothing */
        return NULL;
    }
    /* [.., table]: copy the matching strings out; nothing below raises
     * (raw access to a table, no conversions). */
    int t = lua_gettop(L);
    lua_Unsigned n = lua_rawlen(L, t);
    if (n > COMPLETIONS_MAX)
        n = COMPLETIONS_MAX;
    size_t wlen = strlen(text);
    s_cands = calloc((size_t)n + 1, sizeof *s_cands);
    s_ncands = 0;
    for (lua_Unsigned i = 1; s_cands && i <= n; i++) {
        if (lua_rawgeti(L, t, (lua_Integer)i) == LUA_TSTRING) {
            size_t clen;
            const char *c = lua_tolstring(L, -1, &clen);
            if (clen >= wlen && memcmp(c, text, wlen) == 0 && strlen(c) == clen) {
                char *copy = strdup(c);
                if (copy)
                    s_cands[s_ncands++] = copy;
            }
        }
        lua_pop(L, 1);
    }
    lua_settop(L, top);

    char **matches = NULL;
    if (s_ncands > 0)
        matches = rl_completion_matches(text, repl_generator);
    repl_free_cands(); /* whatever libedit did not take */
    return matches;
}

/* ---------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------- */

/* The interrupt key: end readline() and mark the line abandoned. */
static int repl_key_interrupt(int count, int key)
{
    (void)count;
    (void)key;
    s_ctrl_c = 1;
    rl_done = 1; /* libedit ends el_gets() as at end of input */
    return 0;
}

static void repl_on_sigint(int sig)
{
    (void)sig;
    s_sigint = 1;
}

/* Initialises libedit once (history and completion work without a tty).
 * Call inside a locale scope. */
static void repl_init(void)
{
    if (s_inited)
        return;
    s_inited = 1;
    rl_readline_name = "lumu"; /* "lumu:" lines in ~/.editrc */
    rl_basic_word_break_characters = s_break_chars;
    rl_attempted_completion_function = repl_complete;
    rl_completion_append_character = '\0';
    rl_initialize();
    stifle_history(HISTORY_MAX);
}

/* Terminal-only set-up: the interrupt character becomes a key. */
static void repl_init_tty(void)
{
    if (s_tty_ready || !isatty(STDIN_FILENO))
        return;
    s_tty_ready = 1;
    int intr = 3; /* ^C */
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &t) == 0 && t.c_cc[VINTR] != _POSIX_VDISABLE)
        intr = t.c_cc[VINTR];
    rl_parse_and_bind("setty -d -isig");
    rl_add_defun("lumu-interrupt", repl_key_interrupt, intr);
}

/* ---------------------------------------------------------------------------
 * lumu._repl
 * ------------------------------------------------------------------------- */

/* Pushes s (malloc'd, from libedit) and frees it, also when pushing raises.
 * [-0, +1, m] */
static int repl_pushstring(lua_State *L)
{
    lua_pushstring(L, lua_touserdata(L, 1));
    return 1;
}

static int repl_push_and_free(lua_State *L, char *s)
{
    lua_pushcfunction(L, repl_pushstring); /* stack space checked by the caller */
    lua_pushlightuserdata(L, s);
    int status = lua_pcall(L, 1, 1, 0);
    free(s);
    if (status != LUA_OK)
        return lua_error(L);
    return 1;
}

/* readline(prompt) -> line | nil | false  [-0, +1, e] */
static int repl_readline(lua_State *L)
{
    const char *prompt = luaL_optstring(L, 1, "");
    if (s_main != NULL)
        return luaL_error(L, "readline: already reading a line");
    luaL_checkstack(L, 4, "readline");
    repl_locale lc;
    repl_locale_enter(&lc);
    repl_init();
    repl_init_tty();

    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    s_main = lua_tothread(L, -1);
    lua_pop(L, 1);
    s_ctrl_c = 0;
    s_sigint = 0;

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = repl_on_sigint;
    sigemptyset(&sa.sa_mask);
    int have_old = sigaction(SIGINT, &sa, &old) == 0;

    char *line = readline(prompt);

    if (have_old)
        sigaction(SIGINT, &old, NULL);
    s_main = NULL;
    repl_locale_leave(&lc);

    if (s_ctrl_c || s_sigint) {
        free(line);
        lua_pushboolean(L, 0);
        return 1;
    }
    if (line == NULL) {
        lua_pushnil(L);
        return 1;
    }
    return repl_push_and_free(L, line);
}

/* add_history(line)  [-0, +0, v] */
static int repl_add_history(lua_State *L)
{
    const char *line = luaL_checkstring(L, 1);
    repl_locale lc;
    repl_locale_enter(&lc);
    repl_init();
    add_history(line);
    repl_locale_leave(&lc);
    return 0;
}

/* history_load(path) -> true | nil, err  [-0, +(1|3), v] */
static int repl_history_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    repl_locale lc;
    repl_locale_enter(&lc);
    repl_init();
    errno = 0;
    int rc = read_history(path);
    repl_locale_leave(&lc);
    if (rc != 0)
        errno = rc;
    return luaL_fileresult(L, rc == 0, path);
}

/* history_save(path) -> true | nil, err  [-0, +(1|3), v] */
static int repl_history_save(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    /* history may hold secrets: a new file is private */
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return luaL_fileresult(L, 0, path);
    close(fd);
    repl_locale lc;
    repl_locale_enter(&lc);
    repl_init();
    errno = 0;
    int rc = write_history(path);
    repl_locale_leave(&lc);
    if (rc != 0)
        errno = rc;
    return luaL_fileresult(L, rc == 0, path);
}

/* set_completer(fn | nil)  [-0, +0, v] */
static int repl_set_completer(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, REPL_COMPLETER);
    return 0;
}

/* Loads libedit and finds its variables, or raises
 * "libedit.so.2 not available: ...".  [-0, +0, v] */
static void repl_bind(lua_State *L)
{
    lumu_lazy_check(L, &lumu_lazy_edit);
    if (s_rl.done)
        return;
#define BIND(field, name)                                                                \
    if (!(s_rl.field = lumu_lazy_sym(&lumu_lazy_edit, name)))                            \
        luaL_error(L, "libedit.so.2 not available: no %s", name);
    BIND(readline_name, "rl_readline_name")
    BIND(line_buffer, "rl_line_buffer")
    BIND(point, "rl_point")
    BIND(basic_word_break_characters, "rl_basic_word_break_characters")
    BIND(attempted_completion_function, "rl_attempted_completion_function")
    BIND(attempted_completion_over, "rl_attempted_completion_over")
    BIND(completion_append_character, "rl_completion_append_character")
    BIND(done, "rl_done") /* last: marks the binding complete */
#undef BIND
}

int luaopen_lumu__repl(lua_State *L)
{
    repl_bind(L);
    static const luaL_Reg fns[] = {
        {"readline", repl_readline},
        {"add_history", repl_add_history},
        {"history_load", repl_history_load},
        {"history_save", repl_history_save},
        {"set_completer", repl_set_completer},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushinteger(L, HISTORY_MAX);
    lua_setfield(L, -2, "HISTORY_MAX");
    return 1;
}
