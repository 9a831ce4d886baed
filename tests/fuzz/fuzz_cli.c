/* fuzz_cli: the driver tests/fuzz/cli.lua on each input (see support/lfuzz.h). */
#include "support/lfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lfuzz_run("cli", data, size);
    return 0;
}
