/* fuzz_json: the driver tests/fuzz/json.lua on each input (see support/lfuzz.h). */
#include "support/lfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lfuzz_run("json", data, size);
    return 0;
}
