"""STS: GetCallerIdentity, AssumeRole, AssumeRoleWithWebIdentity.

Assumed keys (ASIA...) are added to the credential table with their session
token and expiration, so the SigV4 check accepts them and the call log
attributes their calls to the role's account (taken from the role ARN).
config "deny_assume": fnmatch patterns of role ARNs that AssumeRole refuses
with AccessDenied.
"""
import base64
import fnmatch
import json
import re

from .protocol import AwsError

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})$")
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def get_caller_identity(ctx, p):
    c = ctx.caller
    return {"UserId": c["user_id"], "Account": c["account"], "Arn": c["arn"]}


def _role(ctx, role_arn):
    m = ROLE_ARN.match(role_arn or "")
    if not m:
        raise AwsError("ValidationError", f"{role_arn} is invalid")
    roles = ctx.world.state.setdefault("sts_roles", {})
    if role_arn not in roles:
        roles[role_arn] = "AROA" + ctx.rand(17)
    return m.group(1), m.group(2), roles[role_arn]


def _issue(ctx, role_arn, session, duration, source):
    if not re.fullmatch(r"[\w+=,.@-]{2,64}", session or ""):
        raise AwsError("ValidationError", f"1 validation error detected: Value '{session}' at "
                       "'roleSessionName' failed to satisfy constraint: Member must satisfy "
                       "regular expression pattern: [\\w+=,.@-]*")
    account, name, role_id = _role(ctx, role_arn)
    if duration > 3600:
        raise AwsError("ValidationError", "The requested DurationSeconds exceeds the "
                       "MaxSessionDuration set for this role.")
    akid = "ASIA" + ctx.rand(16)
    secret = ctx.rand(40, ALNUM + "+/")
    token = "FwoGZXIvYXdzEFAKE" + ctx.rand(180, ALNUM + "+/") + "=="
    expiration = int(ctx.now) + duration
    arn = f"arn:aws:sts::{account}:assumed-role/{name}/{session}"
    user_id = f"{role_id}:{session}"
    ctx.world.state["credentials"][akid] = {
        "secret": secret, "token": token, "account": account, "arn": arn, "user_id": user_id,
        "expiration": expiration, "role_arn": role_arn, "source": source}
    return {"Credentials": {"AccessKeyId": akid, "SecretAccessKey": secret,
                            "SessionToken": token, "Expiration": expiration},
            "AssumedRoleUser": {"AssumedRoleId": user_id, "Arn": arn}}


def assume_role(ctx, p):
    role_arn = p["RoleArn"]
    for pattern in ctx.world.config.get("deny_assume", []):
        if fnmatch.fnmatchcase(role_arn, pattern):
            raise AwsError("AccessDenied", f"User: {ctx.caller['arn']} is not authorized to "
                           f"perform: sts:AssumeRole on resource: {role_arn}", 403)
    out = _issue(ctx, role_arn, p["RoleSessionName"], p.get("DurationSeconds", 3600),
                 ctx.access_key)
    out["PackedPolicySize"] = 0 if p.get("Policy") or p.get("PolicyArns") else None
    out["SourceIdentity"] = p.get("SourceIdentity")
    return out


def _b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def assume_role_with_web_identity(ctx, p):
    token = p["WebIdentityToken"]
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError
        claims = json.loads(_b64url(parts[1]))
        if not isinstance(claims, dict):
            raise ValueError
    except ValueError:
        raise AwsError("InvalidIdentityToken", "The ID token provided is not a valid JWT. "
                       "(You may see this error if you sent an Access Token)")
    if "exp" in claims and float(claims["exp"]) <= ctx.now:
        raise AwsError("ExpiredTokenException", f"Token expired: current date/time "
                       f"{int(ctx.now)} must be before the expiration date/time"
                       f"{int(claims['exp'])}")
    out = _issue(ctx, p["RoleArn"], p["RoleSessionName"], p.get("DurationSeconds", 3600),
                 None)
    aud = claims.get("aud")
    out.update(SubjectFromWebIdentityToken=str(claims.get("sub", "")),
               Provider=str(claims.get("iss", p.get("ProviderId") or "")).replace("https://", ""),
               Audience=aud[0] if isinstance(aud, list) and aud else aud)
    return out


OPS = {"GetCallerIdentity": get_caller_identity, "AssumeRole": assume_role,
       "AssumeRoleWithWebIdentity": assume_role_with_web_identity}
