/* fuzz_nag: the driver tests/fuzz/nag.lua on each input (see support/lfuzz.h). */
#include "support/lfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lfuzz_run("nag", data, size);
    return 0;
}
