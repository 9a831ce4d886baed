--- Built-in nag rules: security groups, subnets and load balancers.
local util = require "lumu.nag.util"

local props, path = util.props, util.path

local SG = "AWS::EC2::SecurityGroup"
local SG_IN = "AWS::EC2::SecurityGroupIngress"
local SG_OUT = "AWS::EC2::SecurityGroupEgress"

-- Ingress (dir "in") or egress ("out") entries of a resource: {e=, path=}.
local function entries(ctx, r, dir)
  local out = {}
  if r.Type == SG then
    local key = dir == "in" and "SecurityGroupIngress" or "SecurityGroupEgress"
    for _, item in ipairs(ctx:items(props(r)[key])) do
      if type(item.v) == "table" and not item.unknown then
        out[#out + 1] = { e = item.v, path = { "Properties", key, item.index } }
      end
    end
  elseif (dir == "in" and r.Type == SG_IN) or (dir == "out" and r.Type == SG_OUT) then
    out[1] = { e = props(r), path = { "Properties" } }
  end
  return out
end

local function is_world(x)
  return type(x) == "string" and x:gsub("%s", ""):find("/0$") ~= nil
end

-- "CidrIp", via when the entry may be open to the whole internet.
local function world_open(ctx, e)
  for _, key in ipairs({ "CidrIp", "CidrIpv6" }) do
    local ok, via = ctx:possibly(e[key], is_world)
    if ok then return key, via end
  end
  return nil
end

local PROTO = { tcp = "tcp", ["6"] = "tcp", udp = "udp", ["17"] = "udp", icmp = "icmp", ["1"] = "icmp",
  icmpv6 = "icmp", ["58"] = "icmp", ["-1"] = "all", all = "all" }

-- Port exposure of an entry: {all=bool, ports={[22]=true...}, unknown=bool, other=bool}.
local SENSITIVE = { 22, 3389, 1433, 1521, 2375, 2376, 3306, 5432, 5439, 6379, 7000, 9042, 9200, 9300,
  11211, 27017, 27018 }

local function exposure(ctx, e)
  local res = { ports = {} }
  local protos = ctx:values(e.IpProtocol)
  if #protos.unknown > 0 then res.unknown = true end
  for _, p in ipairs(protos) do
    local proto = PROTO[tostring(p.v):lower()] or (p.v == util.ABSENT and "all") or "other"
    if proto == "all" then
      res.all = true
    elseif proto == "tcp" or proto == "udp" then
      local froms, tos = ctx:values(e.FromPort), ctx:values(e.ToPort)
      if #froms.unknown > 0 or #tos.unknown > 0 then res.unknown = true end
      for _, f in ipairs(froms) do
        for _, t in ipairs(tos) do
          local a, b = tonumber(f.v), tonumber(t.v)
          if f.v == util.ABSENT or t.v == util.ABSENT or a == -1 or (a and b and a <= 0 and b >= 65535) then
            res.all = true
          elseif a and b then
            for i = 1, #SENSITIVE do
              local port = SENSITIVE[i]
              if port >= a and port <= b then res.ports[port] = true end
            end
            res.other = true
          else
            res.unknown = true
          end
        end
      end
    else
      res.other = true
    end
  end
  return res
end

local function ingress_check(select)
  return function(r, _, _, ctx)
    local found = {}
    for _, it in ipairs(entries(ctx, r, "in")) do
      local key, via = world_open(ctx, it.e)
      if key then
        local detail = select(exposure(ctx, it.e), via)
        if detail then
          found[#found + 1] = { path = path(it.path, key), detail = detail .. (via and (" (" .. via .. ")") or "") }
        end
      end
    end
    return found
  end
end

local DB_PORTS = { 1433, 1521, 2375, 2376, 3306, 5432, 5439, 6379, 7000, 9042, 9200, 9300, 11211, 27017, 27018 }

local function sensitive(x, list)
  local hit = {}
  for _, p in ipairs(list) do
    if x.ports[p] then hit[#hit + 1] = tostring(p) end
  end
  return #hit > 0 and table.concat(hit, ", ") or nil
end

local function description_missing(ctx, e)
  return not ctx:possibly(e.Description, function(v) return type(v) == "string" and v:find("%S") ~= nil end)
      and #ctx:values(e.Description).unknown == 0
end

local rules = {
  {
    id = "F1", severity = "failure",
    message = "Security group allows SSH (22) or RDP (3389) from the whole internet",
    reason = "Remote administration ports open to 0.0.0.0/0 or ::/0 are scanned and brute-forced "
      .. "within minutes; reach instances through SSM Session Manager, a bastion or a VPN instead.",
    types = { SG, SG_IN }, aliases = { "W2" },
    check = ingress_check(function(x)
      if x.all then return nil end
      local p = sensitive(x, { 22, 3389 })
      return p and ("port " .. p .. " open to the world")
    end),
  },
  {
    id = "F2", severity = "failure",
    message = "Security group allows every port from the whole internet",
    reason = "IpProtocol -1 or a 0-65535 range open to 0.0.0.0/0 or ::/0 exposes every service the "
      .. "instance runs, including ones nobody meant to publish.",
    types = { SG, SG_IN }, aliases = { "W2" },
    check = ingress_check(function(x)
      return x.all and "all ports open to the world" or nil
    end),
  },
  {
    id = "F3", severity = "failure",
    message = "Security group allows a database, cache or container-daemon port from the whole internet",
    reason = "Database, cache, search and Docker daemon ports (3306, 5432, 1433, 1521, 6379, 11211, "
      .. "27017, 9200, 2375 ...) are meant for private networks; world access invites data theft.",
    types = { SG, SG_IN }, aliases = { "W2" },
    check = ingress_check(function(x)
      if x.all then return nil end
      local p = sensitive(x, DB_PORTS)
      return p and ("port " .. p .. " open to the world")
    end),
  },
  {
    id = "W1", severity = "warning",
    message = "Security group allows ingress from the whole internet",
    reason = "0.0.0.0/0 or ::/0 on ingress is only right for public endpoints such as a load "
      .. "balancer's 80/443; anything else should name narrower CIDRs or security groups.",
    types = { SG, SG_IN }, aliases = { "W2" },
    check = ingress_check(function(x)
      if x.all or sensitive(x, SENSITIVE) then return nil end
      if x.unknown and not x.other then return "open to the world (ports cannot be evaluated before deploy)" end
      return "open to the world"
    end),
  },
  {
    id = "W2", severity = "warning",
    message = "Security group allows egress to the whole internet",
    reason = "Unrestricted egress lets a compromised workload exfiltrate data or reach command-and-"
      .. "control servers; restrict egress to the destinations the workload needs.",
    types = { SG, SG_OUT }, aliases = { "W5" },
    check = function(r, _, _, ctx)
      local found = {}
      for _, it in ipairs(entries(ctx, r, "out")) do
        local key, via = world_open(ctx, it.e)
        if key then
          found[#found + 1] = { path = path(it.path, key), detail = "open to the world" .. (via and (" (" .. via .. ")") or "") }
        end
      end
      return found
    end,
  },
  {
    id = "W3", severity = "warning",
    message = "Security group has no explicit egress rule, so all outbound traffic is allowed",
    reason = "Without SecurityGroupEgress (or an AWS::EC2::SecurityGroupEgress) AWS adds an allow-all "
      .. "egress rule; make the intended egress explicit.",
    types = { SG }, aliases = { "F1000" },
    check = function(r, id, _, ctx)
      local p = props(r)
      for _, item in ipairs(ctx:items(p.SecurityGroupEgress)) do
        if type(item.v) == "table" then return nil end
      end
      for _, e in ipairs(ctx:resources_of(SG_OUT)) do
        if ctx:refs(props(e.resource).GroupId, id) then return nil end
      end
      return { { path = { "Properties", "SecurityGroupEgress" } } }
    end,
  },
  {
    id = "W4", severity = "warning",
    message = "Security group rule has no Description",
    reason = "A description on every ingress/egress rule records why the opening exists, which is "
      .. "what reviewers and later clean-ups need.",
    types = { SG, SG_IN, SG_OUT },
    check = function(r, _, _, ctx)
      local found = {}
      for _, dir in ipairs({ "in", "out" }) do
        for _, it in ipairs(entries(ctx, r, dir)) do
          if description_missing(ctx, it.e) then
            found[#found + 1] = { path = path(it.path, "Description"),
              detail = (dir == "in" and "ingress" or "egress") .. " rule without Description" }
          end
        end
      end
      return found
    end,
  },
  {
    id = "W34", severity = "warning",
    message = "Subnet assigns public IP addresses to instances at launch",
    reason = "MapPublicIpOnLaunch gives every instance in the subnet a public address, so one "
      .. "permissive security group exposes it directly; keep workloads in private subnets.",
    types = { "AWS::EC2::Subnet" },
    check = function(r, _, _, ctx)
      local ok, via = ctx:possibly(props(r).MapPublicIpOnLaunch, util.truthy)
      if ok then
        return { { path = { "Properties", "MapPublicIpOnLaunch" }, detail = via and ("true (" .. via .. ")") or nil } }
      end
    end,
  },
}

-- Load balancers ----------------------------------------------------------------

local LISTENER = "AWS::ElasticLoadBalancingV2::Listener"
local ELBV2 = "AWS::ElasticLoadBalancingV2::LoadBalancer"
local ELB = "AWS::ElasticLoadBalancing::LoadBalancer"

local function is_http(v) return type(v) == "string" and v:upper() == "HTTP" end

local function redirects_to_https(ctx, p)
  for _, item in ipairs(ctx:items(p.DefaultActions)) do
    local a = item.v
    if type(a) == "table" and ctx:surely(a.Type, function(t) return t == "redirect" end)
        and ctx:surely(a.RedirectConfig, function(x) return type(x) == "string" and x:upper() == "HTTPS" end, { "Protocol" }) then
      return true
    end
  end
  return false
end

-- SSL policies that still allow TLS 1.0/1.1 (or are the old default).
local function outdated_policy(name)
  if name == util.ABSENT then return true end
  if type(name) ~= "string" then return false end
  return name == "ELBSecurityPolicy-2016-08" or name:find("^ELBSecurityPolicy%-2015") ~= nil
      or name:find("TLS%-1%-0") ~= nil or name:find("TLS%-1%-1") ~= nil
      or name:find("TLS13%-1%-0") ~= nil or name:find("TLS13%-1%-1") ~= nil
      or name == "ELBSecurityPolicy-FS-2018-06" or name:find("^ELBSecurityPolicy%-FS%-1%-1") ~= nil
end

local more = {
  {
    id = "W14", severity = "warning",
    message = "Load balancer listener accepts plain HTTP without redirecting to HTTPS",
    reason = "Plain HTTP exposes requests, cookies and tokens to anyone on the path; an HTTP listener "
      .. "should only redirect to HTTPS.",
    types = { LISTENER, ELB }, aliases = { "W78" },
    check = function(r, _, _, ctx)
      local p = props(r)
      if r.Type == ELB then
        local found = {}
        for _, item in ipairs(ctx:items(p.Listeners)) do
          if type(item.v) == "table" and ctx:possibly(item.v.Protocol, is_http) then
            found[#found + 1] = { path = { "Properties", "Listeners", item.index, "Protocol" } }
          end
        end
        return found
      end
      if ctx:possibly(p.Protocol, is_http) and not redirects_to_https(ctx, p) then
        return { { path = { "Properties", "DefaultActions" }, detail = "HTTP listener forwards instead of redirecting" } }
      end
    end,
  },
  {
    id = "W15", severity = "warning",
    message = "HTTPS/TLS listener uses an SSL policy that allows TLS 1.0/1.1 (or relies on the default)",
    reason = "TLS 1.0 and 1.1 are deprecated (RFC 8996); pick a policy such as "
      .. "ELBSecurityPolicy-TLS13-1-2-2021-06 explicitly.",
    types = { LISTENER }, aliases = { "W55" },
    check = function(r, _, _, ctx)
      local p = props(r)
      if not ctx:possibly(p.Protocol, function(v) return v == "HTTPS" or v == "TLS" end) then return nil end
      local ok, via = ctx:possibly(p.SslPolicy, outdated_policy)
      if ok then
        local vals = ctx:values(p.SslPolicy)
        local detail = (vals[1] and vals[1].v == util.ABSENT) and "SslPolicy not set (the default allows TLS 1.0)"
            or ("SslPolicy allows TLS 1.0/1.1" .. (via and (" (" .. via .. ")") or ""))
        return { { path = { "Properties", "SslPolicy" }, detail = detail } }
      end
    end,
  },
  {
    id = "W16", severity = "warning",
    message = "Load balancer access logging is not enabled",
    reason = "Access logs are the record of who called what; without them incident response has "
      .. "nothing to go on.",
    types = { ELBV2, ELB },
    check = function(r, _, _, ctx)
      local p = props(r)
      if r.Type == ELB then
        local ok, detail = ctx:surely(p, util.truthy, { "AccessLoggingPolicy", "Enabled" })
        if not ok then
          return { { path = { "Properties", "AccessLoggingPolicy" }, detail = "AccessLoggingPolicy.Enabled " .. detail } }
        end
        return nil
      end
      if ctx:surely(p.Type, function(t) return t == "gateway" end) then return nil end
      for _, item in ipairs(ctx:items(p.LoadBalancerAttributes)) do
        local a = item.v
        if type(a) == "table" and a.Key == "access_logs.s3.enabled" then
          local ok, detail = ctx:surely(a.Value, util.truthy)
          if ok then return nil end
          return { { path = { "Properties", "LoadBalancerAttributes", item.index, "Value" },
            detail = "access_logs.s3.enabled " .. detail } }
        end
      end
      return { { path = { "Properties", "LoadBalancerAttributes" }, detail = "access_logs.s3.enabled is not set" } }
    end,
  },
}
for _, r in ipairs(more) do rules[#rules + 1] = r end

return rules
