"""Wire protocols, driven by botocore's service models.

Request side: the query protocol's form parameters (Foo.member.1.Bar=...)
are turned back into the nested dict botocore started from; JSON 1.1 bodies
are taken as they are.  Response side: a result dict is serialised as query
XML (<OpResponse><OpResult>..</OpResult><ResponseMetadata>..), JSON 1.1 or
bare XML (rest-xml), walking the operation's output shape so member names,
list wrappers (<member>, flattened lists), map entries and timestamp
formats come from the model.  With FAKEAWS_STRICT=1 a key that is not a
member of the shape raises, which catches misspelt members in the fake.
"""
import base64
import calendar
import datetime
import email.utils
import json
import os
import re
import threading
import xml.etree.ElementTree as ET

import botocore.session

_LOCK = threading.Lock()
_SESSION = []
_MODELS = {}

# Members that only newer botocore models have; they are dropped silently
# (even in strict mode) when the installed model does not know them.
OPTIONAL_MEMBERS = {"Path", "BeforeValue", "AfterValue", "AttributeChangeType",
                    "PolicyAction", "BeforeContext", "AfterContext", "DetectionStatus",
                    "ResourceDriftStatus", "ChecksumType", "DeploymentMode",
                    "LastOperations", "OperationId", "DetailedStatus"}

PROTOCOLS = {"cloudformation": "query", "sts": "query", "ssm": "json", "ecr": "json",
             "ecs": "json", "s3": "rest-xml"}
TARGET_PREFIX = {"AmazonSSM": "ssm", "AmazonEC2ContainerRegistry_V20150921": "ecr",
                 "AmazonEC2ContainerServiceV20141113": "ecs"}
XMLNS = {"cloudformation": "http://cloudformation.amazonaws.com/doc/2010-05-15/",
         "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
         "s3": "http://s3.amazonaws.com/doc/2006-03-01/"}


def strict():
    return os.environ.get("FAKEAWS_STRICT") == "1"


class AwsError(Exception):
    """An AWS error response: code, message, HTTP status and, for some
    services, extra top-level fields (S3's <Key>, <BucketName> ...)."""

    def __init__(self, code, message, status=400, sender=True, extra=None, headers=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender
        self.extra = extra or {}
        self.headers = headers or {}


def model(service):
    """The botocore ServiceModel of a service (cached)."""
    with _LOCK:
        if service not in _MODELS:
            if not _SESSION:
                _SESSION.append(botocore.session.get_session())
            _MODELS[service] = _SESSION[0].get_service_model(service)
        return _MODELS[service]


def wire(service):
    """How fakeaws writes responses and errors for a service: its own
    protocol for the services it implements, else the one botocore's model
    names (json for json/rest-json, query's ErrorResponse XML for the rest),
    so that even "not implemented" reaches a client in a form it parses."""
    if service in PROTOCOLS:
        return PROTOCOLS[service]
    try:
        proto = model(service).metadata.get("protocol", "query")
    except Exception:  # botocore: UnknownServiceError
        return "query"
    return "json" if proto in ("json", "rest-json") else "query"


def operation(service, name):
    try:
        return model(service).operation_model(name)
    except Exception:  # botocore raises OperationNotFoundError
        return None


# ---------------------------------------------------------------- timestamps

def iso8601(t):
    t = float(t)
    d = datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc)
    ms = int(round((t - int(t)) * 1000))
    if ms >= 1000:
        ms = 999
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % ms


def rfc822(t):
    return email.utils.formatdate(float(t), usegmt=True)


def parse_time(value):
    """ISO 8601 / epoch seconds -> epoch float (None when unparseable)."""
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip()
    try:
        return float(s)
    except ValueError:
        pass
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$", s)
    if not m:
        try:
            return float(email.utils.mktime_tz(email.utils.parsedate_tz(s)))
        except Exception:
            return None
    y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
    t = calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0)) + float(m.group(7) or 0)
    tz = m.group(8)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        tz = tz[1:].replace(":", "")
        t -= sign * (int(tz[:2]) * 3600 + int(tz[2:]) * 60)
    return t


def _fmt_time(shape, value, default):
    fmt = shape.serialization.get("timestampFormat", default)
    if fmt == "unixTimestamp":
        return round(float(value), 3)
    if fmt == "rfc822":
        return rfc822(value)
    return iso8601(value)


# ----------------------------------------------------------- query requests

def _has_prefix(params, prefix):
    if prefix in params:
        return True
    dotted = prefix + "."
    return any(k.startswith(dotted) for k in params)


_MISSING = object()


def _q_scalar(shape, raw):
    t = shape.type_name
    if t in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            raise AwsError("ValidationError", f"Invalid value '{raw}': not an integer")
    if t in ("float", "double"):
        return float(raw)
    if t == "boolean":
        return str(raw).lower() == "true"
    if t == "timestamp":
        v = parse_time(raw)
        if v is None:
            raise AwsError("ValidationError", f"Invalid timestamp '{raw}'")
        return v
    if t == "blob":
        return base64.b64decode(raw)
    return raw


def _q_parse(shape, params, prefix):
    t = shape.type_name
    if t == "structure":
        if prefix and not _has_prefix(params, prefix):
            return _MISSING
        out = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            v = _q_parse(member, params, f"{prefix}.{key}" if prefix else key)
            if v is not _MISSING:
                out[name] = v
        return out
    if t == "list":
        if params.get(prefix) == "":
            return []
        if not _has_prefix(params, prefix):
            return _MISSING
        member = shape.member
        if shape.serialization.get("flattened"):
            name = member.serialization.get("name")
            base = ".".join(prefix.split(".")[:-1] + [name]) if name else prefix
        else:
            base = f"{prefix}.{member.serialization.get('name', 'member')}"
        out, i = [], 1
        while _has_prefix(params, f"{base}.{i}"):
            out.append(_q_parse(member, params, f"{base}.{i}"))
            i += 1
        return out
    if t == "map":
        if not _has_prefix(params, prefix):
            return _MISSING
        base = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        ks = shape.key.serialization.get("name", "key")
        vs = shape.value.serialization.get("name", "value")
        out, i = {}, 1
        while _has_prefix(params, f"{base}.{i}"):
            k = params.get(f"{base}.{i}.{ks}")
            v = _q_parse(shape.value, params, f"{base}.{i}.{vs}")
            if k is not None and v is not _MISSING:
                out[k] = v
            i += 1
        return out
    if prefix not in params:
        return _MISSING
    return _q_scalar(shape, params[prefix])


def parse_query(op_model, params):
    """Form parameters (dict) -> input dict of the operation."""
    shape = op_model.input_shape
    if shape is None:
        return {}
    out = _q_parse(shape, params, "")
    return out if out is not _MISSING else {}


# -------------------------------------------------------------- validation

def _lc(name):
    return name[:1].lower() + name[1:]


def validate(op_model, params, code):
    """Required members, enums, lengths and patterns of the top-level input
    members, reported the way AWS does ("1 validation error detected: ...")."""
    shape = op_model.input_shape
    if shape is None:
        return
    errors = []
    for name in shape.required_members:
        if params.get(name) is None:
            errors.append(f"Value null at '{_lc(name)}' failed to satisfy constraint: "
                          "Member must not be null")
    for name, member in shape.members.items():
        v = params.get(name)
        if v is None:
            continue
        meta = member.metadata
        what = None
        if member.type_name == "string" and isinstance(v, str):
            enum = getattr(member, "enum", None) or []
            if enum and v not in enum:
                what = "Member must satisfy enum value set: [" + ", ".join(enum) + "]"
            elif "min" in meta and len(v) < meta["min"]:
                what = f"Member must have length greater than or equal to {meta['min']}"
            elif "max" in meta and len(v) > meta["max"]:
                what = f"Member must have length less than or equal to {meta['max']}"
            elif meta.get("pattern"):
                try:
                    if not re.fullmatch(meta["pattern"], v, re.S):
                        what = ("Member must satisfy regular expression pattern: "
                                + meta["pattern"])
                except re.error:
                    pass
            if what:
                shown = v if len(v) <= 256 else v[:256] + "..."
                errors.append(f"Value '{shown}' at '{_lc(name)}' failed to satisfy "
                              f"constraint: {what}")
        elif member.type_name in ("integer", "long") and isinstance(v, int):
            if "min" in meta and v < meta["min"]:
                what = f"Member must have value greater than or equal to {meta['min']}"
            elif "max" in meta and v > meta["max"]:
                what = f"Member must have value less than or equal to {meta['max']}"
            if what:
                errors.append(f"Value '{v}' at '{_lc(name)}' failed to satisfy constraint: {what}")
        elif member.type_name == "list" and isinstance(v, list):
            if "min" in meta and len(v) < meta["min"]:
                what = f"Member must have length greater than or equal to {meta['min']}"
            elif "max" in meta and len(v) > meta["max"]:
                what = f"Member must have length less than or equal to {meta['max']}"
            if what:
                errors.append(f"Value '{v}' at '{_lc(name)}' failed to satisfy constraint: {what}")
    if errors:
        n = len(errors)
        raise AwsError(code, f"{n} validation error{'s' if n > 1 else ''} detected: "
                       + "; ".join(errors))


# ------------------------------------------------------------ XML responses

def _check_keys(shape, value):
    if strict():
        unknown = [k for k in value if k not in shape.members and not k.startswith("_")
                   and k not in OPTIONAL_MEMBERS]
        if unknown:
            raise RuntimeError(f"fakeaws: {shape.name} has no member(s) {unknown}")


def _xml_scalar(shape, value):
    t = shape.type_name
    if t == "boolean":
        return "true" if value else "false"
    if t == "timestamp":
        return str(_fmt_time(shape, value, "iso8601"))
    if t == "blob":
        if isinstance(value, str):
            value = value.encode()
        return base64.b64encode(value).decode()
    if t in ("float", "double") and float(value) == int(value):
        return str(value)
    return str(value)


def xml_add(parent, tag, shape, value):
    t = shape.type_name
    if t == "structure":
        el = ET.SubElement(parent, tag)
        xml_struct(el, shape, value)
    elif t == "list":
        member = shape.member
        if shape.serialization.get("flattened"):
            name = member.serialization.get("name", tag)
            for v in value:
                xml_add(parent, name, member, v)
        else:
            el = ET.SubElement(parent, tag)
            name = member.serialization.get("name", "member")
            for v in value:
                xml_add(el, name, member, v)
    elif t == "map":
        flat = shape.serialization.get("flattened")
        ks = shape.key.serialization.get("name", "key")
        vs = shape.value.serialization.get("name", "value")
        el = parent if flat else ET.SubElement(parent, tag)
        for k, v in value.items():
            entry = ET.SubElement(el, tag if flat else "entry")
            ET.SubElement(entry, ks).text = str(k)
            xml_add(entry, vs, shape.value, v)
    else:
        ET.SubElement(parent, tag).text = _xml_scalar(shape, value)


def xml_struct(el, shape, value):
    _check_keys(shape, value)
    for name, member in shape.members.items():
        v = value.get(name)
        if v is None or member.serialization.get("location"):
            continue
        xml_add(el, member.serialization.get("name", name), member, v)


def query_response(service, op_model, result, request_id):
    """Body of a query-protocol success response."""
    root = ET.Element(f"{op_model.name}Response", xmlns=XMLNS[service])
    shape = op_model.output_shape
    if shape is not None:
        wrapper = op_model.output_shape.serialization.get("resultWrapper",
                                                           f"{op_model.name}Result")
        res = ET.SubElement(root, wrapper)
        xml_struct(res, shape, result or {})
    meta = ET.SubElement(root, "ResponseMetadata")
    ET.SubElement(meta, "RequestId").text = request_id
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def query_error(service, err, request_id):
    root = ET.Element("ErrorResponse", xmlns=XMLNS.get(service, XMLNS["sts"]))
    e = ET.SubElement(root, "Error")
    ET.SubElement(e, "Type").text = "Sender" if err.sender else "Receiver"
    ET.SubElement(e, "Code").text = err.code
    ET.SubElement(e, "Message").text = err.message
    for k, v in err.extra.items():
        ET.SubElement(e, k).text = str(v)
    ET.SubElement(root, "RequestId").text = request_id
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def s3_error(err, request_id, host_id):
    root = ET.Element("Error")
    ET.SubElement(root, "Code").text = err.code
    ET.SubElement(root, "Message").text = err.message
    for k, v in err.extra.items():
        ET.SubElement(root, k).text = str(v)
    ET.SubElement(root, "RequestId").text = request_id
    ET.SubElement(root, "HostId").text = host_id
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def xml_document(root_tag, shape, value, xmlns=XMLNS["s3"]):
    """A rest-xml body: <root_tag xmlns=...> with the shape's members."""
    root = ET.Element(root_tag, xmlns=xmlns) if xmlns else ET.Element(root_tag)
    xml_struct(root, shape, value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _strip_ns(tag):
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def xml_parse(shape, el):
    """Element -> dict following the shape (rest-xml request bodies)."""
    t = shape.type_name
    if t == "structure":
        out = {}
        children = list(el)
        for name, member in shape.members.items():
            tag = member.serialization.get("name", name)
            if member.type_name == "list" and member.serialization.get("flattened"):
                mtag = member.member.serialization.get("name", tag)
                items = [c for c in children if _strip_ns(c.tag) == mtag]
                if items:
                    out[name] = [xml_parse(member.member, c) for c in items]
                continue
            for c in children:
                if _strip_ns(c.tag) == tag:
                    out[name] = xml_parse(member, c)
                    break
        return out
    if t == "list":
        mtag = shape.member.serialization.get("name", "member")
        return [xml_parse(shape.member, c) for c in el if _strip_ns(c.tag) == mtag]
    text = (el.text or "").strip()
    if t == "boolean":
        return text.lower() == "true"
    if t in ("integer", "long"):
        return int(text)
    return text


# ----------------------------------------------------------- JSON responses

def to_json(shape, value):
    t = shape.type_name
    if t == "structure":
        _check_keys(shape, value)
        out = {}
        for name, member in shape.members.items():
            v = value.get(name)
            if v is not None:
                out[member.serialization.get("name", name)] = to_json(member, v)
        return out
    if t == "list":
        return [to_json(shape.member, v) for v in value]
    if t == "map":
        return {k: to_json(shape.value, v) for k, v in value.items()}
    if t == "timestamp":
        return _fmt_time(shape, value, "unixTimestamp")
    if t == "blob":
        if isinstance(value, str):
            value = value.encode()
        return base64.b64encode(value).decode()
    return value


def json_response(op_model, result):
    shape = op_model.output_shape
    body = to_json(shape, result or {}) if shape is not None else {}
    return json.dumps(body, separators=(",", ":")).encode()


def json_error(err):
    body = {"__type": err.code, "message": err.message}
    body.update(err.extra)
    return json.dumps(body).encode()
