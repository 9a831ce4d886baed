/* fuzz_yaml: the driver tests/fuzz/yaml.lua on each input (see support/lfuzz.h). */
#include "support/lfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lfuzz_run("yaml", data, size);
    return 0;
}
