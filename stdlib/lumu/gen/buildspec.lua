--- The CodeBuild buildspecs of lumu's pipelines (mu.md §5.7): the lumu
-- download, the image action (`lumu svc push`), the deploy actions
-- (`lumu env up` / `db up` / `svc deploy`, then env.json and lumu-env.sh) and
-- the default test buildspecs written when a repository has none.
-- Pure Lua; no AWS calls.  Buildspec texts are deterministic YAML
-- (version 0.2, bash); everything that differs per project comes from the
-- project's environment variables, so the texts only vary with `opts`.
--
-- local buildspec = require "lumu.gen.buildspec"
--
-- buildspec.download_url(baseurl, version [, file]) -> url
--   "<baseurl>/v<version>/<file>" (file default "lumu-linux-amd64"); a
--   leading "v" in version is not doubled; trailing "/" in baseurl dropped.
-- buildspec.image([opts]) -> yaml string   the Build stage's second action:
--   installs lumu and runs `lumu svc push` in $LUMU_BASEDIR (privileged
--   CodeBuild: Docker).
-- buildspec.deploy(opts) -> yaml string   a deploy action.  opts:
--   test_buildspec  the stage's test buildspec (default "buildspec-test.yml"):
--                   written with buildspec.default_test() when missing so the
--                   test action always has one
--   assume_role     true: deploy through the role in $LUMU_DEPLOY_ROLE_ARN
--                   (an AWS profile with credential_source = EcsContainer,
--                   i.e. assumed from the CodeBuild container credentials;
--                   used for other accounts)
--   Runs, in $CODEBUILD_SRC_DIR/$LUMU_BASEDIR: buildspec.COMMANDS.deploy
--   (env up, db up, svc deploy for $LUMU_ENV, all with --yes), then writes
--   env.json and lumu-env.sh (BASE_URL) with buildspec.COMMANDS.show_*, copies
--   lumu-env.sh to mu-env.sh (mu's name), and passes every file on.
-- buildspec.default_test([name]) -> yaml string   a smoke test: sources
--   lumu-env.sh and fetches $BASE_URL (retries while the service starts).
-- buildspec.install_commands() -> list of shell lines (download + verify)
-- buildspec.render(spec) -> yaml string   spec: {env=, phases=, artifacts=}
--   (keys in buildspec order: version, env, phases{install, pre_build,
--   build, post_build}, artifacts).
-- buildspec.ENV: the variables the buildspecs read (set them on the project):
--   LUMU_DOWNLOAD_URL (https:// or s3://), LUMU_SHA256 (optional: hex
--   sha256 of the binary; the build fails on mismatch), LUMU_BASEDIR
--   (config directory relative to the source root, "." by default),
--   LUMU_ENV, MU_NAMESPACE, LUMU_CFN_ROLE_ARN (the CloudFormation service
--   role lumu must pass for every stack), LUMU_DISABLE_IAM ("true": lumu must
--   not create or update IAM stacks; they exist already), LUMU_DEPLOY_ROLE_ARN
--   (assume_role), LUMU_REVISION (set per pipeline action: the source
--   commit/version; the image tag).
-- Misuse (bad option types) raises.
local json = require "lumu.json"
local yaml = require "lumu.yaml"

local M = {}

M.BINARY = "lumu-linux-amd64"

M.ENV = {
  "LUMU_DOWNLOAD_URL", "LUMU_SHA256", "LUMU_BASEDIR", "LUMU_ENV", "MU_NAMESPACE",
  "LUMU_CFN_ROLE_ARN", "LUMU_DISABLE_IAM", "LUMU_DEPLOY_ROLE_ARN", "LUMU_REVISION",
}

-- The lumu command lines the buildspecs run (one place for the CLI's syntax).
M.COMMANDS = {
  -- the build stage checks the templates first: `lumu synth` runs lumu nag
  -- and fails on any failure, before an image is pushed
  check = { 'lumu synth -o "${TMPDIR:-/tmp}/lumu-synth"' },
  push = { 'lumu svc push' },
  deploy = {
    'lumu env up "$LUMU_ENV" --yes',
    'lumu db up "$LUMU_ENV" --yes',
    'lumu svc deploy "$LUMU_ENV" --yes',
  },
  show_json = 'lumu env show "$LUMU_ENV" --format json > env.json',
  show_shell = 'lumu env show "$LUMU_ENV" --format shell > lumu-env.sh',
}

local function argerr(n, fname, msg)
  error(string.format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

function M.download_url(baseurl, version, file)
  if type(baseurl) ~= "string" or baseurl == "" then argerr(1, "download_url", "base URL expected") end
  if type(version) ~= "string" or version == "" then argerr(2, "download_url", "version expected") end
  if file ~= nil and (type(file) ~= "string" or file == "") then argerr(3, "download_url", "file name expected") end
  baseurl = baseurl:gsub("/+$", "")
  version = version:gsub("^v", "")
  return baseurl .. "/v" .. version .. "/" .. (file or M.BINARY)
end

local function list(t) return setmetatable(t, json.array_mt) end

function M.render(spec)
  if type(spec) ~= "table" then argerr(1, "render", "table expected") end
  local phases = {}
  local order = {}
  for _, name in ipairs({ "install", "pre_build", "build", "post_build" }) do
    local cmds = spec.phases and spec.phases[name]
    if cmds then
      if type(cmds) ~= "table" or #cmds == 0 then argerr(1, "render", "phases." .. name .. ": command list expected") end
      phases[name] = { commands = list(cmds) }
      order[#order + 1] = name
    end
  end
  local doc = { version = 0.2 }
  local keys = { "version" }
  if spec.env then doc.env = spec.env; keys[#keys + 1] = "env" end
  doc.phases = json.ordered(phases, order); keys[#keys + 1] = "phases"
  if spec.artifacts then doc.artifacts = spec.artifacts; keys[#keys + 1] = "artifacts" end
  return yaml.dump(json.ordered(doc, keys))
end

function M.install_commands()
  return {
    table.concat({
      'set -euo pipefail',
      'case "$LUMU_DOWNLOAD_URL" in',
      '  s3://*) aws s3 cp --only-show-errors "$LUMU_DOWNLOAD_URL" /tmp/lumu ;;',
      '  *) curl -fsSL --retry 3 -o /tmp/lumu "$LUMU_DOWNLOAD_URL" ;;',
      'esac',
      'if [ -n "${LUMU_SHA256:-}" ]; then',
      '  echo "$LUMU_SHA256  /tmp/lumu" | sha256sum -c -',
      'else',
      '  echo "warning: muSha256 is not set; the lumu download is not verified" >&2',
      'fi',
      'install -m 0755 /tmp/lumu /usr/local/bin/lumu',
      'lumu version',
    }, "\n") .. "\n",
  }
end

local ENV_BLOCK = { shell = "bash" }

local function script(lines)
  return "set -euo pipefail\n" .. table.concat(lines, "\n") .. "\n"
end

local CD = 'cd "$CODEBUILD_SRC_DIR/${LUMU_BASEDIR:-.}"'

function M.image(opts)
  if opts ~= nil and type(opts) ~= "table" then argerr(1, "image", "table or nil expected") end
  local lines = { CD }
  for _, c in ipairs(M.COMMANDS.check) do lines[#lines + 1] = c end
  for _, c in ipairs(M.COMMANDS.push) do lines[#lines + 1] = c end
  return M.render({
    env = ENV_BLOCK,
    phases = { install = M.install_commands(), build = { script(lines) } },
  })
end

function M.default_test(name)
  if name ~= nil and type(name) ~= "string" then argerr(1, "default_test", "string or nil expected") end
  return M.render({
    env = ENV_BLOCK,
    phases = {
      build = {
        script({
          ". ./lumu-env.sh",
          'echo "smoke test ($LUMU_ENV): GET $BASE_URL"',
          'curl -fsS -o /dev/null --retry 10 --retry-delay 6 --retry-all-errors "$BASE_URL"',
        }),
      },
    },
  })
end

local function valid_spec_name(s)
  return type(s) == "string" and s:match("^[%w][%w%._/%-]*$") and not s:find("..", 1, true)
end

function M.deploy(opts)
  if type(opts) ~= "table" then argerr(1, "deploy", "table expected") end
  local test = opts.test_buildspec or "buildspec-test.yml"
  if not valid_spec_name(test) then argerr(1, "deploy", "test_buildspec: relative file name expected") end
  if opts.assume_role ~= nil and type(opts.assume_role) ~= "boolean" then
    argerr(1, "deploy", "assume_role: boolean expected")
  end
  local pre = { CD,
    "if [ ! -f " .. test .. " ]; then",
    '  echo "' .. test .. ' not found: writing lumu\'s default smoke test"',
    "  cat > " .. test .. " <<'LUMU_EOF'",
  }
  for line in M.default_test():gmatch("([^\n]*)\n") do pre[#pre + 1] = line end
  pre[#pre + 1] = "LUMU_EOF"
  pre[#pre + 1] = "fi"
  local build = { CD }
  if opts.assume_role then
    build[#build + 1] = 'mkdir -p "$HOME/.aws"'
    build[#build + 1] = 'printf "[profile lumu-deploy]\\nrole_arn = %s\\ncredential_source = EcsContainer\\n'
      .. 'role_session_name = lumu-pipeline\\n" "$LUMU_DEPLOY_ROLE_ARN" >> "$HOME/.aws/config"'
    build[#build + 1] = "export AWS_PROFILE=lumu-deploy"
  end
  for _, c in ipairs(M.COMMANDS.deploy) do build[#build + 1] = c end
  build[#build + 1] = M.COMMANDS.show_json
  build[#build + 1] = M.COMMANDS.show_shell
  build[#build + 1] = "cp lumu-env.sh mu-env.sh"
  return M.render({
    env = ENV_BLOCK,
    phases = {
      install = M.install_commands(),
      pre_build = { script(pre) },
      build = { script(build) },
    },
    artifacts = json.ordered({ files = list({ "**/*" }), ["discard-paths"] = "no" }, { "files", "discard-paths" }),
  })
end

return M
