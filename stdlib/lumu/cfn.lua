--- CloudFormation templates: a builder, intrinsic helpers, pre-deploy checks
-- and a checker against the CloudFormation registry resource schemas.
-- Lua, sped up by the private C module lumu._cfn when the binary has it
-- (same results without it); no AWS calls.
--
-- local cfn = require "lumu.cfn"
--
-- Builder ------------------------------------------------------------------
-- cfn.template([{description = s, version = "2010-09-09"}]) -> t
-- t:parameter(name, {Type=, Default=, AllowedValues=, AllowedPattern=,
--     ConstraintDescription=, Description=, MinLength=, MaxLength=, MinValue=,
--     MaxValue=, NoEcho=}) -> handle
-- t:mapping(name, {Top = {Second = value}}) -> handle (for cfn.FindInMap)
-- t:condition(name, expr) -> handle (expr: cfn.Equals/And/Or/Not/Condition)
-- t:rule(name, {RuleCondition=, Assertions=})
-- t:metadata(key, value); t:transform(name); t:description(s)
-- t:resource(id, type [, props [, {DependsOn=, Condition=, DeletionPolicy=,
--     UpdateReplacePolicy=, UpdatePolicy=, CreationPolicy=, Metadata=}]])
--     -> handle: h.ref -> {Ref=id}; h:getatt(attr) -> {["Fn::GetAtt"]={id, attr}};
--     h.name, h.type. DependsOn/Condition take names or handles.
-- t:output(name, value [, {description=, export=name|expr, condition=}])
-- t:get(kind, name) -> copy of a declared resource/parameter/output/
--     condition/mapping entry (nil if absent)
-- t:to_table([{consume = true}]) -> fresh template table. Sections in the
--     order AWSTemplateFormatVersion, Description, Metadata, Transform,
--     Parameters, Mappings, Conditions, Rules, Resources, Outputs; entries in
--     declaration order; resource attributes Type, Condition, DependsOn,
--     Metadata, Properties, CreationPolicy, UpdatePolicy, DeletionPolicy,
--     UpdateReplacePolicy; every other object's keys sorted (json.ordered).
--     consume = true: the same table, built from the template's own tables
--     instead of copies of them (faster); t is used up: any later method
--     call on it raises (its handles keep working).
-- t:to_json([{pretty = true|false|n}]) -> string (default pretty, 2 spaces)
-- t:to_yaml([{cfn_short = bool}]) -> string (needs lumu.yaml)
--     Same calls -> same bytes, whatever order tables were filled in.
-- t:check([opts]) -> problems, info (cfn.check on t:to_table())
-- Handles of resources and parameters may be used wherever a value goes
-- (they become Refs). Misuse (bad names, duplicate ids, parameter/resource
-- name clashes, unknown options, bad types, values JSON cannot hold, cycles
-- in tables) raises "bad argument #n to 'fn' (...)" at the caller's line.
--
-- Intrinsics (fresh tables; misuse raises at the caller's line) -------------
-- cfn.Ref(name|handle)                  cfn.GetAtt(res, attr) | GetAtt("Res.Attr")
-- cfn.Sub(s [, vars])                   cfn.Join(delim, list)
-- cfn.Select(index0, list)              cfn.Split(delim, s)
-- cfn.GetAZs([region])                  cfn.If(cond, a, b)
-- cfn.Equals(a, b)                      cfn.And(c1, c2, ...) / cfn.Or(...) (2-10)
-- cfn.Not(c)                            cfn.Condition(name)
-- cfn.ImportValue(name)                 cfn.FindInMap(map, k1, k2 [, {DefaultValue=}])
-- cfn.Base64(s)                         cfn.Cidr(ip_block, count, bits)
-- cfn.Length(list)                      cfn.ToJsonString(v)
-- cfn.Transform(name [, params])
-- Conditions given to And/Or/Not may be names (strings) or condition handles.
-- Pseudo parameters (fresh {Ref="AWS::..."} on each access): cfn.AccountId,
-- cfn.Region, cfn.StackName, cfn.StackId, cfn.Partition, cfn.URLSuffix,
-- cfn.NoValue, cfn.NotificationARNs.
-- cfn.sub_refs(s) -> names referenced by an Fn::Sub string ("${!X}" skipped)
--
-- Checks --------------------------------------------------------------------
-- cfn.check(template [, {body = string, schemas = checker}]) -> problems, info
--   Works on any template table (builder-made or decoded from a file).
--   problems: list of {path = "Resources.X.Properties.Tags[0].Key",
--   message = "..."} (array indexes 0-based), empty when fine; also
--   problems.needs_s3 / problems.size (from info). info = {needs_s3 = bool,
--   size = bytes}: size of opts.body, else of the compact JSON encoding;
--   needs_s3 when over 51,200 bytes (not an error). Checked: sections and
--   attribute names; Ref / Fn::GetAtt / Fn::Sub (${X}, ${X.Attr}, ${!X},
--   variable maps) / DependsOn / Condition / Fn::If / Fn::FindInMap targets;
--   intrinsic function shapes; null values; Conditions referencing only
--   parameters; dependency cycles among resources (Ref, GetAtt, Sub,
--   DependsOn; "circular dependency: A -> B -> A") and among conditions;
--   names (1-255 alphanumerics); parameter types, Default vs AllowedValues
--   and Min/Max; duplicate export names; limits in cfn.LIMITS (1 MB body,
--   500 resources, 200 parameters, outputs and mappings). With a macro
--   transform (e.g. SAM) unknown Ref/GetAtt/DependsOn targets are allowed.
--   opts.schemas: also run checker:check_template.
-- cfn.format(problems) -> "path: message" lines
--
-- Schema checker (cfn.schema, loaded on first use) ---------------------------
-- cfn.schema.open(dir) -> checker | nil, err   dir laid out like shared/cfn
--   (types.tsv, schemas/, getatt-rules.json); schemas load lazily per type
--   and are cached (checker.stats.reads counts file reads).
-- cfn.schema.default_dir() -> "$LUMU_SHARED/cfn" | nil
-- checker:check_template(tpl) -> problems: unknown types; unknown properties
--   (additionalProperties false, in definitions too); required properties;
--   types, enums, min/max length and value, item counts, anyOf/oneOf/allOf,
--   dependencies; read-only properties set; Fn::GetAtt (and Fn::Sub
--   ${Res.Attr}) attributes per readOnlyProperties + getatt-rules.json.
--   Scalars are lenient like CloudFormation: integers/numbers accept numeric
--   strings ("80"), booleans "true"/"false", strings accept numbers and
--   booleans. Intrinsic functions match any schema (Fn::If branches are
--   checked). `pattern` is not checked.
-- checker:check_resource(id, resource) -> problems
-- checker:schema(type) -> schema | nil, err;  checker:has_type(type)
-- checker:attributes(type) -> {any=true} | {names=, set=, outputs=}
-- checker:getatt_ok(type, attr) -> true | false, why
local util = require "lumu.cfn.util"
util.own(debug.getinfo(1, "S").source)
local intrinsics = require "lumu.cfn.intrinsics"
local template = require "lumu.cfn.template"
local check = require "lumu.cfn.check"

local M = {}

for _, name in ipairs({ "Ref", "GetAtt", "Sub", "Join", "Select", "Split", "GetAZs", "If", "Equals",
  "And", "Or", "Not", "Condition", "ImportValue", "FindInMap", "Base64", "Cidr", "Length",
  "ToJsonString", "Transform", "sub_refs" }) do
  M[name] = intrinsics[name]
end

M.template = template.new
M.check = check.check
M.format = check.format
M.LIMITS = check.LIMITS
M.PSEUDO_PARAMETERS = {}
for _, v in pairs(intrinsics.PSEUDO) do M.PSEUDO_PARAMETERS[#M.PSEUDO_PARAMETERS + 1] = v end
table.sort(M.PSEUDO_PARAMETERS)

--- cfn.is_intrinsic(v) -> function name ("Ref", "Fn::Sub", ...) or nil
function M.is_intrinsic(v)
  return (util.intrinsic(v))
end

return setmetatable(M, {
  __index = function(_, k)
    local p = intrinsics.PSEUDO[k]
    if p then return { Ref = p } end
    if k == "schema" then
      local s = require "lumu.cfn.schema"
      rawset(M, "schema", s)
      return s
    end
    return nil
  end,
})
