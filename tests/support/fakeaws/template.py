"""CloudFormation templates: parsing (JSON or YAML), structural checks,
parameters, conditions, dependency graph and intrinsic functions.

Errors are TemplateError(message) carrying the message AWS's ValidationError
would carry ("Template format error: ...", "Parameters: [X] must have
values", "Circular dependency between resources: [A, B]", ...).
"""
import base64
import ipaddress
import json
import re

from . import yamlish

PSEUDO = ("AWS::AccountId", "AWS::Region", "AWS::StackName", "AWS::StackId",
          "AWS::Partition", "AWS::URLSuffix", "AWS::NotificationARNs", "AWS::NoValue")
SECTIONS = {"AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Mappings",
            "Conditions", "Transform", "Resources", "Outputs", "Rules", "Hooks"}
PARAM_TYPE = re.compile(r"^(String|Number|List<Number>|CommaDelimitedList|"
                        r"AWS::SSM::Parameter::Name|AWS::SSM::Parameter::Value<.+>|"
                        r"AWS::EC2::[A-Za-z]+::[A-Za-z]+|AWS::Route53::HostedZone::Id|"
                        r"List<AWS::EC2::[A-Za-z]+::[A-Za-z]+>|List<AWS::Route53::HostedZone::Id>)$")
RESOURCE_TYPE = re.compile(r"^(AWS|Alexa)::[A-Za-z0-9]+::[A-Za-z0-9]+$|^Custom::[A-Za-z0-9_@-]+$"
                           r"|^[A-Za-z0-9]+::[A-Za-z0-9]+::[A-Za-z0-9]+::MODULE$")
LOGICAL_ID = re.compile(r"^[A-Za-z0-9]+$")
NOVALUE = object()
MAX_BODY = 51200
MAX_URL_BODY = 1024 * 1024


class TemplateError(Exception):
    pass


class ImportMissing(Exception):
    def __init__(self, name):
        super().__init__(name)
        self.name = name


# ---------------------------------------------------------------- parsing

def parse(body):
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            t = json.loads(text)
        except json.JSONDecodeError as e:
            raise TemplateError(f"Template format error: JSON not well-formed. (line {e.lineno}, "
                                f"column {e.colno})")
    else:
        try:
            t = yamlish.loads(text)
        except yamlish.YamlError as e:
            raise TemplateError(f"Template format error: YAML not well-formed. (line {e.line}, "
                                f"column {e.col})")
    if not isinstance(t, dict):
        raise TemplateError("Template format error: unsupported structure.")
    return t


def check(t):
    """Structure checks that need no parameter values."""
    extra = sorted(k for k in t if k not in SECTIONS)
    if extra:
        raise TemplateError("Template format error: Invalid template property or properties "
                            f"[{', '.join(extra)}]")
    if t.get("Transform"):
        raise TemplateError("Template format error: fakeaws does not process Transform "
                            f"{t['Transform']!r}")
    res = t.get("Resources")
    if not isinstance(res, dict) or not res:
        raise TemplateError("Template format error: At least one Resources member must be "
                            "defined.")
    for section in ("Parameters", "Mappings", "Conditions", "Outputs"):
        if section in t and not isinstance(t[section], dict):
            raise TemplateError(f"Template format error: {section} section must be an object")
    bad_types = []
    for name, r in res.items():
        if not LOGICAL_ID.match(name):
            raise TemplateError(f"Template format error: Resource name {name} is "
                                "non alphanumeric.")
        if not isinstance(r, dict) or not isinstance(r.get("Type"), str):
            raise TemplateError(f"Template format error: [/Resources/{name}] Every Resources "
                                "object must contain a Type member.")
        if not RESOURCE_TYPE.match(r["Type"]):
            bad_types.append(r["Type"])
        for k in r:
            if k not in ("Type", "Properties", "DependsOn", "Metadata", "Condition",
                         "DeletionPolicy", "UpdateReplacePolicy", "UpdatePolicy",
                         "CreationPolicy", "Version"):
                raise TemplateError(f"Template format error: Unrecognized resource attribute "
                                    f"[{k}] in [/Resources/{name}]")
    if bad_types:
        raise TemplateError("Template format error: Unrecognized resource types: "
                            f"[{', '.join(sorted(set(bad_types)))}]")
    for name, p in (t.get("Parameters") or {}).items():
        if not isinstance(p, dict) or "Type" not in p:
            raise TemplateError("Template format error: Every Parameters object must contain "
                                "a Type member.")
        if not PARAM_TYPE.match(str(p["Type"])):
            raise TemplateError(f"Template format error: Unrecognized parameter type: {p['Type']}")
    for name, o in (t.get("Outputs") or {}).items():
        if not isinstance(o, dict) or "Value" not in o:
            raise TemplateError("Template format error: Every Outputs member must contain a "
                                "Value object, the Value object must not be null.")
        exp = o.get("Export")
        if exp is not None:
            if not isinstance(exp, dict) or "Name" not in exp:
                raise TemplateError(f"Template format error: Output {name} is malformed. "
                                    "Export must have a Name.")
            refs = references(exp["Name"])
            if refs & set(res) or _has_fn(exp["Name"], ("Fn::ImportValue", "Fn::GetAZs")):
                raise TemplateError(f"Template format error: Output {name} is malformed. The "
                                    "Name field of Export must not depend on any resources, "
                                    "imported values, or Fn::GetAZs.")
    # unresolved names
    names = set(res) | set(t.get("Parameters") or {}) | set(PSEUDO)
    for section in ("Resources", "Outputs"):
        missing = set()
        for key, body in (t.get(section) or {}).items():
            refs = references(body, getatt_only=False)
            missing |= {r for r in refs if r not in names}
            if section == "Resources":
                for d in _depends_on(body):
                    if d not in res:
                        missing.add(d)
        if missing:
            raise TemplateError(f"Template format error: Unresolved resource dependencies "
                                f"[{', '.join(sorted(missing))}] in the {section} block of the "
                                "template")
    conds = t.get("Conditions") or {}
    for where in ("Resources", "Outputs"):
        for key, body in (t.get(where) or {}).items():
            c = body.get("Condition") if isinstance(body, dict) else None
            if c is not None and c not in conds:
                raise TemplateError(f"Template format error: Unresolved dependencies [{c}]. "
                                    f"Cannot reference resources in the Conditions block of the "
                                    "template")
            for name in _if_conditions(body):
                if name not in conds:
                    raise TemplateError(f"Template error: unresolved condition dependency "
                                        f"{name} in Fn::If")


def _has_fn(node, names):
    if isinstance(node, dict):
        return any(k in names or _has_fn(v, names) for k, v in node.items())
    if isinstance(node, list):
        return any(_has_fn(v, names) for v in node)
    return False


def _if_conditions(node):
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Fn::If" and isinstance(v, list) and v and isinstance(v[0], str):
                out.append(v[0])
            out.extend(_if_conditions(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(_if_conditions(v))
    return out


def _depends_on(body):
    d = body.get("DependsOn") if isinstance(body, dict) else None
    if d is None:
        return []
    return [d] if isinstance(d, str) else list(d)


SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def _sub_names(s, local=()):
    out = set()
    for m in SUB_VAR.finditer(s):
        v = m.group(1).strip()
        if v.startswith("!"):
            continue
        name = v.split(".", 1)[0]
        if v in local or name in local:
            continue
        out.add(name)
    return out


def references(node, getatt_only=False, conditions=None):
    """Names referenced by Ref / Fn::GetAtt / Fn::Sub in node (Fn::If branches
    are pruned when a conditions dict is given)."""
    out = set()
    if isinstance(node, dict):
        if len(node) == 1:
            k, v = next(iter(node.items()))
            if k == "Ref" and isinstance(v, str):
                out.add(v)
                return out
            if k == "Fn::GetAtt":
                if isinstance(v, list) and v and isinstance(v[0], str):
                    out.add(v[0])
                    return out | references(v[1:], getatt_only, conditions)
                if isinstance(v, str):
                    out.add(v.split(".", 1)[0])
                    return out
            if k == "Fn::Sub":
                if isinstance(v, str):
                    return _sub_names(v)
                if isinstance(v, list) and v and isinstance(v[0], str):
                    local = set(v[1]) if len(v) > 1 and isinstance(v[1], dict) else set()
                    out |= _sub_names(v[0], local)
                    if len(v) > 1:
                        out |= references(v[1], getatt_only, conditions)
                    return out
            if k == "Fn::If" and conditions is not None and isinstance(v, list) and len(v) == 3:
                return references(v[1] if conditions.get(v[0]) else v[2], getatt_only,
                                  conditions)
        for v in node.values():
            out |= references(v, getatt_only, conditions)
    elif isinstance(node, list):
        for v in node:
            out |= references(v, getatt_only, conditions)
    return out


def imports_of(node):
    """Fn::ImportValue arguments (unevaluated) found in node."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Fn::ImportValue":
                out.append(v)
            else:
                out.extend(imports_of(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(imports_of(v))
    return out


# ------------------------------------------------------------- parameters

def parameters(t, given, previous, ssm_lookup):
    """given: {key: {"value": str} | {"use_previous": True}}; previous: old
    values (str) for UsePreviousValue.  Returns (values, resolved, listing)
    where values are what Ref yields (str, or list for list types),
    resolved the SSM-resolved values and listing the DescribeStacks view."""
    decl = t.get("Parameters") or {}
    unknown = sorted(k for k in given if k not in decl)
    if unknown:
        raise TemplateError(f"Parameters: [{', '.join(unknown)}] do not exist in the template")
    values, resolved, listing, missing, pending = {}, {}, [], [], []
    for name, p in decl.items():
        g = given.get(name)
        if g is not None and g.get("use_previous"):
            if name not in (previous or {}):
                raise TemplateError(f"Invalid input for parameter key {name}. Cannot specify "
                                    "usePreviousValue as true for a parameter key not in the "
                                    "previous template")
            raw = previous[name]
        elif g is not None:
            raw = g.get("value", "")
        elif "Default" in p:
            raw = p["Default"]
            raw = ",".join(str(x) for x in raw) if isinstance(raw, list) else str(raw)
        else:
            missing.append(name)
            continue
        raw = "" if raw is None else str(raw)
        ptype = str(p["Type"])
        _check_param(name, p, raw, ptype)
        pending.append((name, p, raw, ptype))
    if missing:
        raise TemplateError(f"Parameters: [{', '.join(missing)}] must have values")
    for name, p, raw, ptype in pending:
        value = raw
        if ptype.startswith("AWS::SSM::Parameter::Value<"):
            rec = ssm_lookup(raw)
            if rec is None:
                raise TemplateError(f"Parameters: [ssm:{raw}] cannot be found.")
            resolved[name] = rec["Value"]
            value = rec["Value"]
            if "List<" in ptype or "CommaDelimitedList" in ptype:
                value = [v.strip() for v in value.split(",")]
        elif ptype.startswith("List<") or ptype == "CommaDelimitedList":
            value = [v.strip() if ptype != "CommaDelimitedList" else v
                     for v in raw.split(",")] if raw != "" else []
        values[name] = value
        item = {"ParameterKey": name, "ParameterValue": raw}
        if name in resolved:
            item["ResolvedValue"] = resolved[name]
        if str(p.get("NoEcho", "false")).lower() == "true":
            item["_noecho"] = True
        listing.append(item)
    return values, resolved, listing


def _check_param(name, p, raw, ptype):
    desc = p.get("ConstraintDescription")

    def fail(msg):
        raise TemplateError(f"Parameter '{name}' failed to satisfy constraint: {desc}"
                            if desc else msg)

    items = raw.split(",") if ptype.startswith("List<") or ptype == "CommaDelimitedList" else [raw]
    allowed = p.get("AllowedValues")
    if allowed is not None and any(i not in [str(a) for a in allowed] for i in items):
        fail(f"Parameter '{name}' must be one of AllowedValues")
    if "AllowedPattern" in p:
        try:
            if not all(re.fullmatch(str(p["AllowedPattern"]), i) for i in items):
                fail(f"Parameter '{name}' must match pattern {p['AllowedPattern']}")
        except re.error:
            pass
    if "MinLength" in p and len(raw) < int(p["MinLength"]):
        fail(f"Parameter '{name}' must contain at least {p['MinLength']} characters")
    if "MaxLength" in p and len(raw) > int(p["MaxLength"]):
        fail(f"Parameter '{name}' must contain at most {p['MaxLength']} characters")
    if ptype in ("Number", "List<Number>"):
        for i in items:
            try:
                n = float(i)
            except ValueError:
                fail(f"Parameter '{name}' must be a number")
            if "MinValue" in p and n < float(p["MinValue"]):
                fail(f"Parameter '{name}' must be a number not less than {p['MinValue']}")
            if "MaxValue" in p and n > float(p["MaxValue"]):
                fail(f"Parameter '{name}' must be a number not greater than {p['MaxValue']}")


# ------------------------------------------------------------- evaluation

class Evaluator:
    """Evaluates intrinsic functions.  resource_ref(name) / resource_att(name,
    attr) give the values of resources; import_value(name) raises
    ImportMissing for an unknown export."""

    def __init__(self, t, values, pseudo, resource_ref=None, resource_att=None,
                 import_value=None):
        self.t = t
        self.values = values
        self.pseudo = pseudo
        self.resource_ref = resource_ref
        self.resource_att = resource_att
        self.import_value = import_value
        self.conds = {}
        self._evaluating = set()
        self.imports = []

    def condition(self, name):
        if name in self.conds:
            return self.conds[name]
        defs = self.t.get("Conditions") or {}
        if name not in defs:
            raise TemplateError(f"Template error: unresolved condition dependency {name}")
        if name in self._evaluating:
            raise TemplateError(f"Template error: circular condition dependency {name}")
        self._evaluating.add(name)
        v = bool(self._cond(defs[name]))
        self._evaluating.discard(name)
        self.conds[name] = v
        return v

    def all_conditions(self):
        for name in self.t.get("Conditions") or {}:
            self.condition(name)
        return dict(self.conds)

    def _cond(self, node):
        if isinstance(node, dict) and len(node) == 1:
            k, v = next(iter(node.items()))
            if k == "Fn::Equals":
                a, b = (self.eval(x) for x in v)
                return _scalar_str(a) == _scalar_str(b)
            if k == "Fn::And":
                return all(self._cond(x) for x in v)
            if k == "Fn::Or":
                return any(self._cond(x) for x in v)
            if k == "Fn::Not":
                return not self._cond(v[0])
            if k == "Condition":
                return self.condition(v)
        v = self.eval(node)
        if isinstance(v, bool):
            return v
        return str(v).lower() == "true"

    def ref(self, name):
        if name in self.values:
            return self.values[name]
        if name == "AWS::NoValue":
            return NOVALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if self.resource_ref is not None:
            return self.resource_ref(name)
        raise TemplateError(f"Template format error: Unresolved resource dependencies [{name}]")

    def getatt(self, name, attr):
        if self.resource_att is None:
            raise TemplateError(f"Template error: Fn::GetAtt {name}.{attr} is not allowed here")
        return self.resource_att(name, attr)

    def eval(self, node):
        if isinstance(node, list):
            out = [self.eval(v) for v in node]
            return [v for v in out if v is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            k, v = next(iter(node.items()))
            fn = _FUNCS.get(k)
            if fn is not None:
                return fn(self, v)
        out = {}
        for k, v in node.items():
            r = self.eval(v)
            if r is not NOVALUE:
                out[k] = r
        return out

    # --- functions
    def f_ref(self, v):
        return self.ref(v)

    def f_getatt(self, v):
        if isinstance(v, str):
            name, _, attr = v.partition(".")
        else:
            name, attr = v[0], self.eval(v[1])
        return self.getatt(name, attr)

    def f_sub(self, v):
        if isinstance(v, list):
            text, local = v[0], {k: self.eval(x) for k, x in (v[1] if len(v) > 1 else {}).items()}
        else:
            text, local = v, {}

        def repl(m):
            var = m.group(1).strip()
            if var.startswith("!"):
                return "${" + var[1:] + "}"
            if var in local:
                return _scalar_str(local[var])
            if "." in var and var.split(".", 1)[0] not in self.values and \
                    var not in self.pseudo:
                name, attr = var.split(".", 1)
                return _scalar_str(self.getatt(name, attr))
            return _scalar_str(self.ref(var))
        return SUB_VAR.sub(repl, text)

    def f_join(self, v):
        sep, items = v[0], self.eval(v[1])
        if not isinstance(items, list):
            raise TemplateError("Template error: every Fn::Join object requires two parameters, "
                                "(1) a string delimiter and (2) a list of strings to be joined")
        return str(sep).join(_scalar_str(i) for i in items)

    def f_select(self, v):
        idx, items = self.eval(v[0]), self.eval(v[1])
        try:
            i = int(idx)
            if not isinstance(items, list) or i < 0:
                raise IndexError
            return items[i]
        except (IndexError, ValueError):
            raise TemplateError("Template error: Fn::Select cannot select nonexistent value at "
                                f"index {idx}")

    def f_split(self, v):
        return str(self.eval(v[1])).split(str(v[0]))

    def f_getazs(self, v):
        region = self.eval(v) or self.pseudo["AWS::Region"]
        return [f"{region}a", f"{region}b", f"{region}c"]

    def f_base64(self, v):
        return base64.b64encode(_scalar_str(self.eval(v)).encode()).decode()

    def f_findinmap(self, v):
        args = [self.eval(x) for x in v[:3]]
        try:
            return (self.t.get("Mappings") or {})[args[0]][str(args[1])][str(args[2])]
        except (KeyError, TypeError):
            if len(v) > 3 and isinstance(v[3], dict) and "DefaultValue" in v[3]:
                return self.eval(v[3]["DefaultValue"])
            raise TemplateError(f"Template error: Unable to get mapping for "
                                f"{args[0]}::{args[1]}::{args[2]}")

    def f_if(self, v):
        return self.eval(v[1] if self.condition(v[0]) else v[2])

    def f_condition(self, v):
        return self.condition(v)

    def f_importvalue(self, v):
        name = _scalar_str(self.eval(v))
        self.imports.append(name)
        if self.import_value is None:
            raise ImportMissing(name)
        return self.import_value(name)

    def f_cidr(self, v):
        block, count, bits = self.eval(v[0]), int(self.eval(v[1])), int(self.eval(v[2]))
        net = ipaddress.ip_network(str(block), strict=False)
        new_prefix = net.max_prefixlen - bits
        out = []
        for sub in net.subnets(new_prefix=new_prefix):
            out.append(str(sub))
            if len(out) == count:
                break
        return out

    def f_length(self, v):
        x = self.eval(v)
        return len(x) if isinstance(x, list) else 1

    def f_tojson(self, v):
        return json.dumps(self.eval(v), separators=(",", ":"))

    def f_equals(self, v):
        return self._cond({"Fn::Equals": v})

    def f_and(self, v):
        return self._cond({"Fn::And": v})

    def f_or(self, v):
        return self._cond({"Fn::Or": v})

    def f_not(self, v):
        return self._cond({"Fn::Not": v})


_FUNCS = {"Ref": Evaluator.f_ref, "Fn::GetAtt": Evaluator.f_getatt, "Fn::Sub": Evaluator.f_sub,
          "Fn::Join": Evaluator.f_join, "Fn::Select": Evaluator.f_select,
          "Fn::Split": Evaluator.f_split, "Fn::GetAZs": Evaluator.f_getazs,
          "Fn::Base64": Evaluator.f_base64, "Fn::FindInMap": Evaluator.f_findinmap,
          "Fn::If": Evaluator.f_if, "Condition": Evaluator.f_condition,
          "Fn::ImportValue": Evaluator.f_importvalue, "Fn::Cidr": Evaluator.f_cidr,
          "Fn::Length": Evaluator.f_length, "Fn::ToJsonString": Evaluator.f_tojson,
          "Fn::Equals": Evaluator.f_equals, "Fn::And": Evaluator.f_and,
          "Fn::Or": Evaluator.f_or, "Fn::Not": Evaluator.f_not}


def _scalar_str(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v == int(v):
        return str(int(v))
    if isinstance(v, list):
        return ",".join(_scalar_str(x) for x in v)
    if v is None:
        return ""
    return str(v)


# ------------------------------------------------------------- graph

def graph(t, conditions):
    """Active resources (template order), their dependencies and a
    topological order.  Raises TemplateError on unresolved references to
    inactive resources and on cycles."""
    res = t["Resources"]
    active = [n for n, r in res.items()
              if r.get("Condition") is None or conditions.get(r["Condition"])]
    act = set(active)
    deps = {}
    for n in active:
        r = res[n]
        refs = references({k: v for k, v in r.items() if k in ("Properties", "Metadata")},
                          conditions=conditions)
        d = {x for x in refs if x in res} | set(_depends_on(r))
        bad = sorted(x for x in d if x not in act)
        if bad:
            raise TemplateError("Template format error: Unresolved resource dependencies "
                                f"[{', '.join(bad)}] in the Resources block of the template")
        d.discard(n)
        deps[n] = sorted(d, key=active.index)
    order, done = [], set()
    indeg = {n: len(deps[n]) for n in active}
    users = {n: [] for n in active}
    for n in active:
        for d in deps[n]:
            users[d].append(n)
    ready = [n for n in active if indeg[n] == 0]
    while ready:
        n = ready.pop(0)
        order.append(n)
        done.add(n)
        for u in users[n]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
                ready.sort(key=active.index)
    if len(order) != len(active):
        left = [n for n in active if n not in done]
        cycle = _find_cycle(left, deps)
        raise TemplateError(f"Circular dependency between resources: [{', '.join(cycle)}]")
    return active, deps, order


def _find_cycle(nodes, deps):
    left = set(nodes)
    for start in nodes:
        path, seen = [start], {start}
        while True:
            nxt = next((d for d in deps[path[-1]] if d in left), None)
            if nxt is None:
                break
            if nxt in seen:
                return path[path.index(nxt):]
            path.append(nxt)
            seen.add(nxt)
    return sorted(left)


def capabilities_needed(t, conditions=None):
    from .resources import IAM_TYPES, NAMED_IAM
    need, why = set(), []
    for name, r in t["Resources"].items():
        rt = r.get("Type")
        if rt in IAM_TYPES:
            props = r.get("Properties") or {}
            if NAMED_IAM.get(rt) and props.get(NAMED_IAM[rt]) is not None:
                need.add("CAPABILITY_NAMED_IAM")
            else:
                need.add("CAPABILITY_IAM")
            why.append(rt)
    return need, sorted(set(why))
