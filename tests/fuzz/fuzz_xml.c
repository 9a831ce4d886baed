/* fuzz_xml: the driver tests/fuzz/xml.lua on each input (see support/lfuzz.h). */
#include "support/lfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lfuzz_run("xml", data, size);
    return 0;
}
