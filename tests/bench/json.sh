#!/usr/bin/env bash
# JSON encoder benchmark: json.encode (the direct writer) next to the jansson
# tree path it falls back to (lumu._json._encode_jansson), on a generated
# CloudFormation-like document, compact and pretty; MB/s (best of runs).
# Also checks that both give the same bytes.  Usage: tests/bench/json.sh [path/to/lumu] [runs]
set -euo pipefail
LUMU=${1:-build/lumu}
RUNS=${2:-5}
exec "$LUMU" -e '
local json, core = require "lumu.json", require "lumu._json"
local runs = tonumber(arg and arg[1]) or '"$RUNS"'
local res = {}
for i = 1, 3000 do
  res["Res" .. i] = json.ordered({ Type = "AWS::S3::Bucket", Properties = {
    BucketName = { ["Fn::Sub"] = "${AWS::StackName}-bucket-" .. i },
    Tags = { { Key = "Name", Value = "bucket \"" .. i .. "\"\n" }, { Key = "n", Value = i } },
    Versioning = { Status = "Enabled" }, Size = i, Enabled = i % 2 == 0 } }, { "Type", "Properties" })
end
local doc = json.ordered({ AWSTemplateFormatVersion = "2010-09-09", Resources = res, Ratio = 0.25 },
  { "AWSTemplateFormatVersion", "Resources" })
for _, pretty in ipairs({ false, true }) do
  local opts = { pretty = pretty }
  local a, b = json.encode(doc, opts), core._encode_jansson(doc, opts)
  assert(a == b, "the two encoders differ")
  local line = {}
  for _, f in ipairs({ { "json.encode", json.encode }, { "jansson path", core._encode_jansson } }) do
    local best = math.huge
    for _ = 1, runs do
      local t0 = os.clock()
      f[2](doc, opts)
      best = math.min(best, os.clock() - t0)
    end
    line[#line + 1] = string.format("%s %.1f ms (%.0f MB/s)", f[1], best * 1000, #a / best / 1e6)
  end
  print(string.format("%-7s %8d bytes: %s", pretty and "pretty" or "compact", #a, table.concat(line, "; ")))
end
'
