--- Built-in nag rules: databases and data stores (RDS, Aurora, DocumentDB,
-- Neptune, Redshift, DynamoDB, DAX, ElastiCache, OpenSearch, EBS, EFS).
local util = require "lumu.nag.util"

local props, path = util.props, util.path

local DBI, DBC = "AWS::RDS::DBInstance", "AWS::RDS::DBCluster"
local DOCDB, NEPTUNE = "AWS::DocDB::DBCluster", "AWS::Neptune::DBCluster"
local REDSHIFT = "AWS::Redshift::Cluster"
local ES, OS = "AWS::Elasticsearch::Domain", "AWS::OpenSearchService::Domain"

-- A DB instance whose storage, backups and protection are governed by its
-- cluster (Aurora) or its source (read replica).
local function managed_elsewhere(r)
  local p = props(r)
  return r.Type == DBI and (p.DBClusterIdentifier ~= nil or p.SourceDBInstanceIdentifier ~= nil
    or p.SourceDBClusterIdentifier ~= nil)
end

local rules = {
  {
    id = "F17", severity = "failure",
    message = "Database storage is not encrypted",
    reason = "StorageEncrypted protects data, snapshots and replicas at rest; it can only be set "
      .. "when the database is created, so it must be right from the start.",
    types = { DBI, DBC, DOCDB, NEPTUNE }, aliases = { "F26" },
    check = util.require_true({ "StorageEncrypted" }, {
      skip = function(r, ctx)
        if managed_elsewhere(r) then return true end
        -- Aurora Serverless v1 clusters are always encrypted
        return r.Type == DBC and ctx:surely(props(r).EngineMode, function(m) return m == "serverless" end)
      end,
    }),
  },
  {
    id = "F18", severity = "failure",
    message = "RDS instance is publicly accessible",
    reason = "A public endpoint puts the database one leaked password away from the internet; "
      .. "keep it in private subnets and connect through the application or a bastion.",
    types = { DBI }, aliases = { "F22" },
    check = function(r, _, _, ctx)
      if props(r).DBClusterIdentifier ~= nil and props(r).PubliclyAccessible == nil then return nil end
      local p = props(r)
      local ok, via = ctx:possibly(p.PubliclyAccessible, util.truthy)
      if ok then
        return { { path = { "Properties", "PubliclyAccessible" }, detail = via and ("true (" .. via .. ")") or nil } }
      end
      if p.PubliclyAccessible == nil and p.DBSubnetGroupName == nil then
        return { { path = { "Properties" },
          detail = "PubliclyAccessible and DBSubnetGroupName are not set, so the instance is public in a default VPC" } }
      end
    end,
  },
  {
    id = "F19", severity = "failure",
    message = "Database master password is in plaintext",
    reason = "A literal password, a parameter without NoEcho or with a Default, or a Mappings value "
      .. "ends up in the template, the console and the API; use ManageMasterUserPassword or a "
      .. "{{resolve:secretsmanager:...}} dynamic reference.",
    types = { DBI, DBC, DOCDB, REDSHIFT }, aliases = { "F23", "F35" },
    check = function(r, _, _, ctx)
      local p = props(r)
      if p.MasterUserPassword == nil then return nil end
      local why = ctx:plaintext(p.MasterUserPassword)
      if why then return { { path = { "Properties", "MasterUserPassword" }, detail = why } } end
    end,
  },
  {
    id = "F20", severity = "failure",
    message = "RDS automated backups are disabled (BackupRetentionPeriod 0)",
    reason = "Without automated backups there is no point-in-time recovery after corruption or a "
      .. "bad deploy; keep at least 7 days.",
    types = { DBI, DBC },
    check = function(r, _, _, ctx)
      if managed_elsewhere(r) then return nil end
      local ok, via = ctx:possibly(props(r).BackupRetentionPeriod, function(v) return tonumber(v) == 0 end)
      if ok then
        return { { path = { "Properties", "BackupRetentionPeriod" }, detail = via and ("0 (" .. via .. ")") or nil } }
      end
    end,
  },
  {
    id = "W13", severity = "warning",
    message = "Database deletion protection is not enabled",
    reason = "DeletionProtection stops a stack update, a replacement or a stray delete from "
      .. "destroying the database.",
    types = { DBI, DBC, DOCDB, NEPTUNE },
    check = util.require_true({ "DeletionProtection" }, { skip = managed_elsewhere }),
  },
  {
    id = "F29", severity = "failure",
    message = "EBS volume is not encrypted",
    reason = "Unencrypted volumes and their snapshots expose data to anyone who can copy or share "
      .. "a snapshot.",
    types = { "AWS::EC2::Volume" }, aliases = { "F1" },
    check = util.require_true({ "Encrypted" }),
  },
  {
    id = "W41", severity = "warning",
    message = "EC2 block device mapping does not encrypt its EBS volume",
    reason = "Volumes created from launch templates, launch configurations and instances are "
      .. "unencrypted unless Ebs.Encrypted is true (or account-level encryption by default is on).",
    types = { "AWS::EC2::Instance", "AWS::EC2::LaunchTemplate", "AWS::AutoScaling::LaunchConfiguration" },
    check = function(r, _, _, ctx)
      local p = props(r)
      local base, list = { "Properties", "BlockDeviceMappings" }, p.BlockDeviceMappings
      if r.Type == "AWS::EC2::LaunchTemplate" then
        base = { "Properties", "LaunchTemplateData", "BlockDeviceMappings" }
        list = type(p.LaunchTemplateData) == "table" and p.LaunchTemplateData.BlockDeviceMappings or nil
      end
      local found = {}
      for _, item in ipairs(ctx:items(list)) do
        local m = item.v
        if type(m) == "table" and type(m.Ebs) == "table" then
          local ok, detail = ctx:surely(m.Ebs, util.truthy, { "Encrypted" })
          if not ok then
            found[#found + 1] = { path = path(base, item.index, "Ebs", "Encrypted"), detail = "Ebs.Encrypted " .. detail }
          end
        end
      end
      return found
    end,
  },
  {
    id = "F30", severity = "failure",
    message = "OpenSearch/Elasticsearch domain is not encrypted at rest",
    reason = "Indices, logs and snapshots of the domain sit unencrypted on disk without "
      .. "EncryptionAtRestOptions.Enabled.",
    types = { ES, OS }, aliases = { "W54" },
    check = util.require_true({ "EncryptionAtRestOptions", "Enabled" }),
  },
  {
    id = "W30", severity = "warning",
    message = "OpenSearch/Elasticsearch node-to-node encryption is not enabled",
    reason = "Without it, traffic between the domain's nodes (your documents) crosses the network "
      .. "in plaintext.",
    types = { ES, OS },
    check = util.require_true({ "NodeToNodeEncryptionOptions", "Enabled" }),
  },
  {
    id = "W31", severity = "warning",
    message = "OpenSearch/Elasticsearch domain does not enforce HTTPS",
    reason = "DomainEndpointOptions.EnforceHTTPS rejects plain-HTTP clients, which would otherwise "
      .. "send queries and credentials unencrypted.",
    types = { ES, OS },
    check = util.require_true({ "DomainEndpointOptions", "EnforceHTTPS" }),
  },
  {
    id = "F31", severity = "failure",
    message = "ElastiCache replication group is not encrypted at rest",
    reason = "Cache contents (often sessions and tokens) and backups are stored unencrypted without "
      .. "AtRestEncryptionEnabled.",
    types = { "AWS::ElastiCache::ReplicationGroup" }, aliases = { "F25" },
    check = util.require_true({ "AtRestEncryptionEnabled" }),
  },
  {
    id = "W32", severity = "warning",
    message = "ElastiCache replication group does not encrypt traffic in transit",
    reason = "Without TransitEncryptionEnabled, clients talk to Redis/Valkey in plaintext and AUTH "
      .. "tokens cannot be used.",
    types = { "AWS::ElastiCache::ReplicationGroup" },
    check = util.require_true({ "TransitEncryptionEnabled" }),
  },
  {
    id = "F32", severity = "failure",
    message = "EFS file system is not encrypted",
    reason = "Encryption at rest for EFS can only be chosen at creation; files are otherwise stored "
      .. "unencrypted.",
    types = { "AWS::EFS::FileSystem" }, aliases = { "F27" },
    check = util.require_true({ "Encrypted" }),
  },
  {
    id = "F33", severity = "failure",
    message = "Redshift cluster is not encrypted",
    reason = "Warehouse data and snapshots are stored unencrypted without Encrypted: true.",
    types = { REDSHIFT },
    check = util.require_true({ "Encrypted" }),
  },
  {
    id = "W23", severity = "warning",
    message = "DynamoDB table is not encrypted with a KMS key",
    reason = "SSESpecification.SSEEnabled uses a KMS key you can audit and revoke instead of the "
      .. "AWS-owned key.",
    types = { "AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable" }, aliases = { "W74" },
    check = util.require_true({ "SSESpecification", "SSEEnabled" }),
  },
  {
    id = "W24", severity = "warning",
    message = "DynamoDB point-in-time recovery is not enabled",
    reason = "PITR restores the table to any second of the last 35 days after a bad write or delete.",
    types = { "AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable" }, aliases = { "W78" },
    check = function(r, _, _, ctx)
      local p = props(r)
      if r.Type == "AWS::DynamoDB::Table" then
        local ok, detail = ctx:surely(p, util.truthy, { "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled" })
        if not ok then
          return { { path = { "Properties", "PointInTimeRecoverySpecification" },
            detail = "PointInTimeRecoveryEnabled " .. detail } }
        end
        return nil
      end
      local found = {}
      for _, item in ipairs(ctx:items(p.Replicas)) do
        if type(item.v) == "table" then
          local ok, detail = ctx:surely(item.v, util.truthy, { "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled" })
          if not ok then
            found[#found + 1] = { path = { "Properties", "Replicas", item.index, "PointInTimeRecoverySpecification" },
              detail = "PointInTimeRecoveryEnabled " .. detail }
          end
        end
      end
      return found
    end,
  },
  {
    id = "W39", severity = "warning",
    message = "DAX cluster is not encrypted at rest",
    reason = "SSESpecification.SSEEnabled encrypts the cached items and can only be set at creation.",
    types = { "AWS::DAX::Cluster" },
    check = util.require_true({ "SSESpecification", "SSEEnabled" }),
  },
}

return rules
