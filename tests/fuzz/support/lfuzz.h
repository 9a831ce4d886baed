/*
 * lfuzz: shared part of the harnesses whose code under test is Lua (the
 * embedded stdlib): one lua_State per process, made the way cmd/main.c makes
 * it (lumu_newstate + lumu_openlibs), and a driver, tests/fuzz/<name>.lua,
 * that returns function(input).  Each input is one protected call of that
 * function with the input as a Lua string.  The driver returns normally for
 * inputs the code under test accepts or rejects the documented way
 * (`nil, err`); anything it raises is a finding: the harness prints it with
 * a traceback and aborts, so libFuzzer saves the input.
 *
 * The driver file is read from $LUMU_FUZZ_DIR when set, else from the
 * source tree the harness was built from (LUMU_FUZZ_DIR define).
 */
#ifndef LUMU_LFUZZ_H
#define LUMU_LFUZZ_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point, defined by every harness. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs driver `name` (tests/fuzz/<name>.lua) on one input; creates the state
 * and loads the driver on the first call.  Aborts on a raised error. */
void lfuzz_run(const char *name, const uint8_t *data, size_t size);

#endif
