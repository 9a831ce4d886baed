/* Tests of lua/l_http.c (lumu._http) at the C level: closing states with
 * transfers in flight, one multi handle per state, libcurl's memory going
 * through the tracker, and allocation failures.  Only 127.0.0.1 is used: a
 * socket that listens but never accepts, and a port nobody listens on. */
#include "harness.h"
#include "host.h"

#include <lauxlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* A listening socket on 127.0.0.1 that never accepts: connections complete
 * in the kernel's backlog and then wait forever.  Returns the fd; *port set. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void close_with_transfers_in_flight(void **state)
{
    (void)state;
    int port;
    int fd = silent_listener(&port);
    lua_State *L = harness_state();
    char chunk[512];
    snprintf(chunk, sizeof chunk,
             "local h = require 'lumu._http'\n"
             "keep = {}\n"
             "for i = 1, 5 do keep[i] = h.request{url = 'http://127.0.0.1:%d/x', body = 'b'} end\n"
             "h.poll(50)\n"
             "assert(h.pending() == 5)\n",
             port);
    harness_run(L, chunk);
    harness_close(L); /* requests and multi finalised in any order, no leak */
    close(fd);
}

static void one_multi_per_state(void **state)
{
    (void)state;
    int port;
    int fd = silent_listener(&port);
    lua_State *A = harness_state();
    lua_State *B = harness_state();
    char chunk[256];
    snprintf(chunk, sizeof chunk,
             "local h = require 'lumu._http'\n"
             "keep = h.request{url = 'http://127.0.0.1:%d/'}\n"
             "h.poll(10)\n"
             "return h.pending()",
             port);
    char buf[256];
    assert_true(harness_eval(A, chunk, buf, sizeof buf));
    assert_string_equal(buf, "1");
    assert_true(harness_eval(B, chunk, buf, sizeof buf));
    assert_string_equal(buf, "1"); /* B does not see A's transfer */
    lua_close(A);
    /* B's multi still works after A's was cleaned up */
    assert_true(harness_eval(B,
                             "local h = require 'lumu._http'\n"
                             "local r = h.request{url = 'http://127.0.0.1:1/'}\n"
                             "for _ = 1, 50 do h.poll(100) if r:done() then break end end\n"
                             "local res, err = r:result()\n"
                             "return err.kind",
                             buf, sizeof buf));
    assert_string_equal(buf, "connect");
    harness_close(B);
    close(fd);
}

static void misuse_raises_and_leaks_nothing(void **state)
{
    (void)state;
    lua_State *L = harness_state();
    char buf[512];
    static const char *const bad[] = {
        "return require'lumu._http'.request{url='http://127.0.0.1/', headers={['a b']='x'}}",
        "return require'lumu._http'.request{url='http://127.0.0.1/', headers={X='a\\nb'}}",
        "return require'lumu._http'.request{url='gopher://127.0.0.1/'}",
        "return require'lumu._http'.request{url='http://127.0.0.1/', timeout=-2}",
        "return require'lumu._http'.request(42)",
        "return require'lumu._http'.poll(-5)",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(harness_eval(L, bad[i], buf, sizeof buf));
        assert_non_null(strstr(buf, "bad argument"));
    }
    assert_int_equal(lua_gettop(L), 0);
    harness_close(L);
}

/* Failing the Nth allocation while creating and running a request is an
 * error or a nil, err result, never a crash or a leak. */
static void failing_allocations(void **state)
{
    (void)state;
    int ok_runs = 0, failed_runs = 0;
    for (long n = 1; n < 1200; n += 3) {
        lua_State *L = harness_state();
        lumu_track_enable(n);
        int st = luaL_loadstring(L, "local h = require 'lumu._http'\n"
                                    "local r = h.request{url = 'http://127.0.0.1:1/a', "
                                    "headers = {A = '1', B = '2'}, body = 'xyz'}\n"
                                    "for _ = 1, 50 do h.poll(100) if r:done() then break end end\n"
                                    "local res, err = r:result()\n"
                                    "r:close()\n"
                                    "return err and err.kind");
        if (st == LUA_OK)
            st = lumu_docall(L, 0, 1);
        if (st == LUA_OK && lua_isstring(L, -1))
            ok_runs++;
        else
            failed_runs++;
        lua_close(L);
        lumu_track_enable(0);
        lumu_memstats after;
        lumu_track_stats(&after);
        assert_int_equal(after.bytes, 0);
        assert_int_equal(after.blocks, 0);
    }
    assert_true(ok_runs > 0);     /* late failures do not matter */
    assert_true(failed_runs > 0); /* early ones were really injected */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(close_with_transfers_in_flight),
        cmocka_unit_test(one_multi_per_state),
        cmocka_unit_test(misuse_raises_and_leaks_nothing),
        cmocka_unit_test(failing_allocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
