"""SSM Parameter Store: PutParameter, GetParameter, GetParameters,
GetParametersByPath, DeleteParameter, DeleteParameters.

SecureString values are stored as given and returned as an opaque
ciphertext unless WithDecryption is true.  Every overwrite increments the
version; "name:VERSION" selectors read old versions.  Names under
/aws/service/ are answered like AWS's public parameters (a fake AMI id).
"""
import base64
import hashlib
import re

from .protocol import AwsError

NAME_RE = re.compile(r"^/?[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
BAD_NAME = ("Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). "
            "If formed as a path, it can consist of sub-paths divided by slash symbol; each "
            "sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_")


def _params(ctx, account=None, region=None):
    return ctx.store("ssm", account, region).setdefault("params", {})


def _arn(ctx, name):
    return f"arn:aws:ssm:{ctx.region}:{ctx.account}:parameter/{name.lstrip('/')}"


def _cipher(value):
    digest = hashlib.sha256(value.encode()).digest()
    return "AQICAHfakeaws" + base64.b64encode(digest + b"\x00" * 8).decode()


def _check_name(name):
    first = name.lstrip("/").split("/")[0].lower()
    if not NAME_RE.match(name) or first.startswith(("aws", "ssm")):
        raise AwsError("ValidationException", BAD_NAME)
    if "/" in name and not name.startswith("/"):
        raise AwsError("ValidationException", "Parameter name must be a fully qualified name.")


def _public(ctx, name):
    if not name.startswith("/aws/service/"):
        return None
    h = hashlib.sha256(name.encode()).hexdigest()
    value = f"ami-0{h[:16]}" if ("ami" in name or name.endswith("image_id")) else f"fake-{h[:12]}"
    return {"Name": name, "Type": "String", "Value": value, "Version": 1,
            "LastModifiedDate": 1600000000.0, "DataType": "text",
            "ARN": f"arn:aws:ssm:{ctx.region}::parameter{name}"}


def lookup(ctx, name, account=None, region=None):
    """The latest record of a parameter (None when missing); used by the
    CloudFormation engine for AWS::SSM::Parameter::Value<> parameters."""
    rec = _params(ctx, account, region).get(name)
    return rec if rec is not None else _public(ctx, name)


def _view(rec, decrypt, version=None, selector=None):
    h = rec
    if version is not None:
        h = next((x for x in rec.get("history", []) if x["Version"] == version), None)
        if h is None:
            return None
    value = h["Value"]
    if h["Type"] == "SecureString" and not decrypt:
        value = _cipher(value)
    out = {"Name": rec["Name"], "Type": h["Type"], "Value": value, "Version": h["Version"],
           "LastModifiedDate": h["LastModifiedDate"], "ARN": rec["ARN"],
           "DataType": rec.get("DataType", "text")}
    if selector:
        out["Selector"] = selector
    return out


def _get(ctx, name, decrypt):
    base, sel = name, None
    m = re.match(r"^(.*?):([^:/]+)$", name)
    if m:
        base, sel = m.group(1), ":" + m.group(2)
    rec = lookup(ctx, base)
    if rec is None:
        return None, base, sel
    if sel is None:
        return _view(rec, decrypt), base, sel
    if sel[1:].isdigit():
        v = _view(rec, decrypt, int(sel[1:]), sel)
        if v is None:
            raise AwsError("ParameterVersionNotFound", f"Systems Manager could not find version "
                           f"{sel[1:]} of {base}. Verify the version and try again.")
        return v, base, sel
    for h in rec.get("history", []):
        if sel[1:] in h.get("Labels", []):
            return _view(rec, decrypt, h["Version"], sel), base, sel
    return None, base, sel


def put_parameter(ctx, p):
    name, value = p["Name"], p["Value"]
    _check_name(name)
    params = _params(ctx)
    old = params.get(name)
    if p.get("Tags") and p.get("Overwrite"):
        raise AwsError("ValidationException", "Invalid request: tags and overwrite can't be "
                       "used together. To create a parameter with tags, please remove overwrite "
                       "flag. To update tags for an existing parameter, please use "
                       "AddTagsToResource or RemoveTagsFromResource.")
    if old is not None and not p.get("Overwrite"):
        raise AwsError("ParameterAlreadyExists", "The parameter already exists. To overwrite "
                       "this value, set the overwrite option in the request to true.")
    ptype = p.get("Type") or (old or {}).get("Type")
    if not ptype:
        raise AwsError("ValidationException", "A parameter type is required when you create "
                       "a parameter.")
    if p.get("KeyId") and ptype != "SecureString":
        raise AwsError("ValidationException", "KeyId is required for SecureString type "
                       "parameter only.")
    tier = p.get("Tier") or (old or {}).get("Tier") or "Standard"
    if tier in ("Standard", "Intelligent-Tiering") and len(value) > 4096 and tier == "Standard":
        raise AwsError("ValidationException", "Standard tier parameters support a maximum "
                       "parameter value of 4096 characters. To create a larger parameter value, "
                       "upgrade the parameter to use the advanced-parameter tier. For more "
                       "information, see https://docs.aws.amazon.com/systems-manager/latest/"
                       "userguide/parameter-store-advanced-parameters.html")
    pattern = p.get("AllowedPattern") or (old or {}).get("AllowedPattern")
    if pattern:
        try:
            ok = re.fullmatch(pattern, value) is not None
        except re.error:
            ok = True
        if not ok:
            raise AwsError("ParameterPatternMismatchException", "Parameter value, cannot be "
                           f"validated against allowedPattern: {pattern}")
    version = (old["Version"] + 1) if old else 1
    rec = dict(old or {})
    rec.update(Name=name, Type=ptype, Value=value, Version=version, LastModifiedDate=ctx.now,
               ARN=_arn(ctx, name), DataType=p.get("DataType") or rec.get("DataType", "text"),
               Tier=tier)
    for k in ("Description", "AllowedPattern", "KeyId"):
        if p.get(k) is not None:
            rec[k] = p[k]
    if ptype == "SecureString" and not rec.get("KeyId"):
        rec["KeyId"] = "alias/aws/ssm"
    if p.get("Tags"):
        rec["Tags"] = p["Tags"]
    history = list((old or {}).get("history", []))
    history.append({"Version": version, "Value": value, "Type": ptype,
                    "LastModifiedDate": ctx.now, "Labels": []})
    rec["history"] = history[-100:]
    params[name] = rec
    return {"Version": version, "Tier": tier}


def get_parameter(ctx, p):
    v, _, _ = _get(ctx, p["Name"], p.get("WithDecryption", False))
    if v is None:
        raise AwsError("ParameterNotFound", "")
    return {"Parameter": v}


def get_parameters(ctx, p):
    found, invalid = [], []
    for name in p["Names"]:
        v, _, _ = _get(ctx, name, p.get("WithDecryption", False))
        (found if v else invalid).append(v or name)
    return {"Parameters": found, "InvalidParameters": invalid}


def get_parameters_by_path(ctx, p):
    path = p["Path"]
    if not path.startswith("/"):
        raise AwsError("ValidationException", "The parameter doesn't meet the parameter name "
                       "requirements. The parameter name must begin with a forward slash \"/\".")
    prefix = path.rstrip("/") + "/"
    names = []
    for name in sorted(_params(ctx)):
        if not name.startswith(prefix) and path != "/":
            continue
        rest = name[len(prefix):] if path != "/" else name.lstrip("/")
        if not p.get("Recursive") and "/" in rest:
            continue
        names.append(name)
    size = min(int(p.get("MaxResults") or 10), ctx.page_size("GetParametersByPath", 10))
    start = int(p.get("NextToken") or 0)
    page = names[start:start + size]
    params = _params(ctx)
    out = {"Parameters": [_view(params[n], p.get("WithDecryption", False)) for n in page]}
    if start + size < len(names):
        out["NextToken"] = str(start + size)
    return out


def delete_parameter(ctx, p):
    if _params(ctx).pop(p["Name"], None) is None:
        raise AwsError("ParameterNotFound", "")
    return {}


def delete_parameters(ctx, p):
    deleted, invalid = [], []
    for name in p["Names"]:
        (deleted if _params(ctx).pop(name, None) is not None else invalid).append(name)
    return {"DeletedParameters": deleted, "InvalidParameters": invalid}


def seed(world, account, region, data):
    params = world.store(account, region, "ssm").setdefault("params", {})
    for name, v in data.items():
        if not isinstance(v, dict):
            v = {"Value": str(v)}
        ptype = v.get("Type", "String")
        old = params.get(name)
        version = old["Version"] + 1 if old else 1
        params[name] = {"Name": name, "Type": ptype, "Value": v["Value"], "Version": version,
                        "LastModifiedDate": world.now(), "DataType": "text", "Tier": "Standard",
                        "ARN": f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}",
                        "history": ((old or {}).get("history", []) + [
                            {"Version": version, "Value": v["Value"], "Type": ptype,
                             "LastModifiedDate": world.now(), "Labels": []}])}


OPS = {"PutParameter": put_parameter, "GetParameter": get_parameter,
       "GetParameters": get_parameters, "GetParametersByPath": get_parameters_by_path,
       "DeleteParameter": delete_parameter, "DeleteParameters": delete_parameters}
