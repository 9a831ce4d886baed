-- lumu's landing-zone example: the organization, its guardrails, account
-- vending, a service delivered from a tools account to acceptance and
-- production accounts, and Cloud9 dev environments.
-- `lumu synth -c scripts/org-example/lumu.lua -o out` writes every template;
-- scripts/org-example/mu.yml is the same project in mu.yml form.
namespace "acme"

-- Accounts ------------------------------------------------------------------
-- The management account runs `lumu org up` (the caller's own credentials
-- here); a laptop reaches the others through one profile per account (the
-- `profiles` mapping) or by assuming a role.
organization {
  account = "100000000000",
  rootId = "r-a1b2",
  id = "o-a1b2c3d4e5",
  units = {
    { name = "Security" },
    { name = "Infrastructure" },
    { name = "Workloads" },
    { name = "Production", parent = "Workloads" },
  },
  accounts = {
    -- existing accounts (they joined the organization before lumu): not created
    -- nor moved; policies and vending refer to them by name
    { name = "log-archive", id = "200000000000" },
    { name = "tools", id = "300000000000" },
    { name = "acceptance", id = "400000000000" },
    { name = "production", id = "500000000000" },
    -- a new account, created by the stack
    { name = "sandbox", email = "aws-sandbox@example.com", unit = "Workloads", tags = { team = "platform" } },
  },
  -- the default guardrails on the whole organization, with a region
  -- allow-list; the break-glass role is exempt
  guardrails = {
    regions = { "eu-west-1", "eu-central-1" },
    exemptRoles = { "acme-break-glass" },
  },
  -- one more service control policy, only on the workloads
  policies = {
    { name = "deny-public-ami-sharing", description = "AMIs are never made public",
      statements = { { Sid = "DenyPublicAmis", Effect = "Deny", Action = "ec2:ModifyImageAttribute",
        Resource = "*", Condition = { StringEquals = { ["ec2:Add/group"] = "all" } } } },
      targets = { "Workloads" } },
  },
  logArchive = "log-archive",
  -- teams order their own account from the Service Catalog portfolio
  vending = { unit = "Workloads", regions = { "eu-west-1" } },
}

-- where the pipelines run
tools { account = "300000000000", role = "arn:aws:iam::300000000000:role/OrganizationAccountAccessRole" }

-- Environments, each in its own account ---------------------------------------
environment {
  name = "acceptance",
  provider = "ecs-fargate",
  account = "400000000000",
  role = "arn:aws:iam::400000000000:role/acme-deploy",
  profile = "acme-acceptance",
}

environment {
  name = "production",
  provider = "ecs-fargate",
  account = "500000000000",
  -- role: the default, arn:aws:iam::500000000000:role/acme-deploy (the vending baseline's)
}

profiles { ["500000000000"] = "acme-production" }

-- The service and its pipeline (in the tools account) -------------------------
service {
  name = "orders",
  port = 8080,
  pathPatterns = { "/orders/*" },
}

pipeline {
  source = { repo = "acme/orders", branch = "main" },
  notify = { "orders-team@example.com" },
}

-- The catalog portfolio (the vending product joins it) ------------------------
catalog { iamUsers = { "team-lead" } }

-- Dev environments: one Cloud9 per team member in the acceptance VPC ----------
devenv {
  environment = "acceptance",
  automaticStopTimeMinutes = 30,
  members = {
    { name = "alice", ownerArn = "arn:aws:iam::400000000000:user/alice" },
    { name = "bob", ownerArn = "arn:aws:iam::400000000000:user/bob", instanceType = "t3.medium" },
  },
}
