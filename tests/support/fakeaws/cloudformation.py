"""CloudFormation: stacks, change sets, events, exports, simulated over time.

Every stack operation is planned when it is requested: resources are
evaluated in dependency order (Ref / Fn::GetAtt / Fn::Sub / DependsOn),
each takes resource_ms x time_scale (Metadata "fake:duration-ms" per
resource), independent resources run in parallel, and the resulting events
and status changes go on the stack's timeline with absolute times.  The
timeline is applied lazily whenever a request comes in, so a restarted
server (--state-file) simply carries on.

Failure injection, per resource:
  Metadata {"fake:fail": "reason"} or a logical id containing "FakeFail"
      -> CREATE_FAILED / UPDATE_FAILED with that reason, then rollback
  Metadata {"fake:fail-rollback": "reason"} -> the first update rollback of
      that resource fails (UPDATE_ROLLBACK_FAILED; ContinueUpdateRollback works)
  Metadata {"fake:fail-delete": "reason"} -> DELETE_FAILED
  fault rules resource:<LogicalId|Type>:fail|fail-rollback|fail-delete[@N]
Realistic failures: custom-named resource replacement, S3 bucket / ECR
repository / SSM parameter name already taken, non-empty bucket or
repository on delete, ImportValue of a missing export, export in use,
stack policy denials.  AWS::S3::Bucket, AWS::SSM::Parameter,
AWS::ECR::Repository, AWS::ECS::Cluster/TaskDefinition/Service resources
also appear in the fake S3, SSM, ECR and ECS (ECS services take
ecs_stabilize_ms to stabilise; Metadata {"fake:ecs": {"never_stable": true}}
makes the resource and the service hang, {"fail": true} trips the circuit
breaker).
"""
import copy
import hashlib
import heapq
import json
import re
from urllib.parse import unquote, urlsplit

from . import ecr as ECR
from . import ecs as ECS
from . import resources as R
from . import s3 as S3
from . import ssm as SSM
from . import template as T
from .protocol import AwsError

STACK_NAME = re.compile(r"^[a-zA-Z][-a-zA-Z0-9]{0,127}$")
CS_NAME = re.compile(r"^[a-zA-Z][-a-zA-Z0-9]{0,127}$")
UPDATABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE",
             "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
NO_CHANGES = ("The submitted information didn't contain changes. Submit different "
              "information to create a change set.")
MISSING = object()


def V(msg):
    return AwsError("ValidationError", msg)


def _cfn(world, account, region):
    s = world.store(account, region, "cloudformation")
    for k in ("stacks", "names", "changesets", "exports"):
        s.setdefault(k, {})
    return s


def _store(ctx):
    return _cfn(ctx.world, ctx.account, ctx.region)


def _stack(ctx, ref, deleted_ok=False):
    s = _store(ctx)
    if ref is None:
        raise V("Stack name is required")
    if ref.startswith("arn:"):
        st = s["stacks"].get(ref)
        if st is not None and (deleted_ok or st["StackStatus"] != "DELETE_COMPLETE"):
            return st
    else:
        sid = s["names"].get(ref)
        if sid is not None:
            return s["stacks"][sid]
    raise V(f"Stack with id {ref} does not exist")


def _in_progress(stack):
    return stack["StackStatus"].endswith("_IN_PROGRESS") and \
        stack["StackStatus"] != "REVIEW_IN_PROGRESS"


# ================================================================ templates

def _template_from(ctx, p, stack=None):
    """(body text, parsed template) from TemplateBody / TemplateURL /
    UsePreviousTemplate."""
    body, url, prev = p.get("TemplateBody"), p.get("TemplateURL"), p.get("UsePreviousTemplate")
    given = [x for x in (body, url) if x is not None] + ([True] if prev else [])
    if len(given) > 1:
        raise V("Specify exactly one of TemplateBody, TemplateURL or UsePreviousTemplate.")
    if not given:
        raise V("Either Template URL or Template Body must be specified.")
    if prev:
        if stack is None or stack.get("_body") is None:
            raise V("UsePreviousTemplate can only be used with an existing stack")
        body = stack["_body"]
    elif url is not None:
        body = _fetch_url(ctx, url)
    elif len(body.encode()) > T.MAX_BODY:
        raise V(f"1 validation error detected: Value '{body[:40]}...' at 'templateBody' failed "
                f"to satisfy constraint: Member must have length less than or equal to "
                f"{T.MAX_BODY}")
    try:
        tpl = T.parse(body)
        T.check(tpl)
    except T.TemplateError as e:
        raise V(str(e))
    return body, tpl


def _fetch_url(ctx, url):
    parts = urlsplit(url)
    host, path = parts.hostname or "", unquote(parts.path)
    bucket = key = None
    m = re.match(r"^(.+)\.s3([.-][a-z0-9-]+)?(\.dualstack)?(\.[a-z0-9-]+)?\.amazonaws\.com$", host)
    if m and not host.startswith("s3.") and not host.startswith("s3-"):
        bucket, key = m.group(1), path.lstrip("/")
    elif re.match(r"^s3([.-][a-z0-9-]+)?(\.[a-z0-9-]+)?\.amazonaws\.com$", host) or \
            host in ("127.0.0.1", "localhost"):
        bucket, _, key = path.lstrip("/").partition("/")
    elif host.endswith(".localhost") or host.endswith(".127.0.0.1"):
        bucket, key = host.split(".", 1)[0], path.lstrip("/")
    if not bucket or not key:
        raise V("TemplateURL must be a supported URL.")
    data = S3.fetch(ctx.world, bucket, key)
    if data is None:
        raise V("TemplateURL must reference a valid S3 object to which you have access.")
    if len(data) > T.MAX_URL_BODY:
        raise V("Template may not exceed 1048576 bytes in size.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise V("Template format error: unsupported structure.")


def _norm(tpl):
    return json.dumps(tpl, sort_keys=True, separators=(",", ":"))


def _given_params(plist):
    out = {}
    for item in plist or []:
        k = item.get("ParameterKey")
        if item.get("UsePreviousValue"):
            if item.get("ParameterValue") is not None:
                raise V(f"Invalid input for parameter key {k}. Cannot specify usePreviousValue "
                        "as true and non empty value for a parameter")
            out[k] = {"use_previous": True}
        else:
            out[k] = {"value": item.get("ParameterValue", "")}
    return out


def _resolve_params(ctx, tpl, plist, stack=None):
    previous = {i["ParameterKey"]: i["ParameterValue"] for i in (stack or {}).get("Parameters", [])}
    try:
        return T.parameters(tpl, _given_params(plist), previous,
                            lambda name: SSM.lookup(ctx, name))
    except T.TemplateError as e:
        raise V(str(e))


def _check_caps(tpl, caps):
    need, why = T.capabilities_needed(tpl)
    caps = set(caps or [])
    missing = sorted(c for c in need if c not in caps and not (
        c == "CAPABILITY_IAM" and "CAPABILITY_NAMED_IAM" in caps))
    if missing:
        raise AwsError("InsufficientCapabilitiesException",
                       f"Requires capabilities : [{', '.join(missing)}]")


# ================================================================ evaluation

def _pseudo(stack):
    return {"AWS::AccountId": stack["_account"], "AWS::Region": stack["_region"],
            "AWS::StackName": stack["StackName"], "AWS::StackId": stack["StackId"],
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": list(stack.get("NotificationARNs") or [])}


def _evaluator(world, stack, tpl, values, records, dynamic=None, importing=True):
    exports = _cfn(world, stack["_account"], stack["_region"])["exports"]

    def rref(name):
        if dynamic is not None and name in dynamic:
            return "{{fakeaws:ref:%s}}" % name
        rec = records.get(name)
        if rec is None or rec.get("PhysicalResourceId") is None:
            raise T.TemplateError(f"Template format error: Unresolved resource dependencies "
                                  f"[{name}] in the Resources block of the template")
        return rec["PhysicalResourceId"]

    def ratt(name, attr):
        if dynamic is not None and name in dynamic:
            return "{{fakeaws:att:%s.%s}}" % (name, attr)
        rec = records.get(name)
        if rec is None or rec.get("PhysicalResourceId") is None:
            raise T.TemplateError(f"Template format error: Unresolved resource dependencies "
                                  f"[{name}] in the Resources block of the template")
        attrs = rec.get("_attrs") or {}
        if attr in attrs:
            return attrs[attr]
        return R.generic_attribute(rec["ResourceType"], rec["PhysicalResourceId"], attr,
                                   stack["_region"], stack["_account"])

    def imp(name):
        e = exports.get(name)
        if e is None:
            raise T.ImportMissing(name)
        return e["Value"]
    return T.Evaluator(tpl, values, _pseudo(stack), rref, ratt, imp if importing else None)


def _analyze(world, stack, tpl, values):
    try:
        ev = _evaluator(world, stack, tpl, values, {})
        conds = ev.all_conditions()
        active, deps, order = T.graph(tpl, conds)
    except T.TemplateError as e:
        raise V(str(e))
    return conds, deps, order


def _find_marker(v):
    if isinstance(v, str):
        m = re.search(r"\{\{fakeaws:(ref|att):([^}]+)\}\}", v)
        return (m.group(1), m.group(2)) if m else None
    if isinstance(v, dict):
        v = list(v.values())
    if isinstance(v, list):
        for x in v:
            r = _find_marker(x)
            if r:
                return r
    return None


def _diff_path(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(b) + [k for k in a if k not in b]:
            if a.get(k, MISSING) != b.get(k, MISSING):
                return f"/{k}" + _diff_path(a.get(k, MISSING), b.get(k, MISSING))
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else MISSING
            y = b[i] if i < len(b) else MISSING
            if x != y:
                return f"/{i}" + _diff_path(x, y)
    return ""


def _details(old_rec, props, meta, new_def, old_def, values, old_values, old_records):
    rtype = old_rec["ResourceType"]
    out = []
    oldp = old_rec.get("_props") or {}
    keys = list(props) + [k for k in oldp if k not in props]
    for k in keys:
        a, b = oldp.get(k, MISSING), props.get(k, MISSING)
        if a == b:
            continue
        raw_old = ((old_def or {}).get("Properties") or {}).get(k, MISSING)
        raw_new = (new_def.get("Properties") or {}).get(k, MISSING)
        marker = _find_marker(b) if b is not MISSING else None
        causing = None
        if marker:
            source = "ResourceReference" if marker[0] == "ref" else "ResourceAttribute"
            evaluation, causing = "Dynamic", marker[1]
        elif _norm(raw_old) != _norm(raw_new) if raw_old is not MISSING and raw_new is not MISSING \
                else raw_old is not raw_new:
            source, evaluation = "DirectModification", "Static"
        else:
            refs = T.references(raw_new)
            changed = [r for r in sorted(refs) if r in values and
                       values.get(r) != old_values.get(r)]
            if changed:
                source, evaluation, causing = "ParameterReference", "Static", changed[0]
            else:
                res_refs = sorted(r for r in refs if r in old_records)
                source, evaluation = "ResourceReference", "Dynamic"
                causing = res_refs[0] if res_refs else None
        attribute = "Tags" if k == "Tags" else "Properties"
        target = {"Attribute": attribute,
                  "RequiresRecreation": R.requires_recreation(rtype, k)
                  if attribute == "Properties" else "Never"}
        if attribute == "Properties":
            target["Name"] = k
        target["Path"] = f"/Properties/{k}" + _diff_path(a, b)
        d = {"Target": target, "Evaluation": evaluation, "ChangeSource": source}
        if causing:
            d["CausingEntity"] = causing
        out.append(d)
    if _norm(meta) != _norm(old_rec.get("_meta")):
        out.append({"Target": {"Attribute": "Metadata", "RequiresRecreation": "Never",
                               "Path": "/Metadata"},
                    "Evaluation": "Static", "ChangeSource": "DirectModification"})
    return out


def _replacement(details):
    if any(d["Target"]["RequiresRecreation"] == "Always" and d["Evaluation"] == "Static"
           for d in details):
        return "True"
    if any(d["Target"]["RequiresRecreation"] == "Conditionally" or
           (d["Target"]["RequiresRecreation"] == "Always" and d["Evaluation"] == "Dynamic")
           for d in details):
        return "Conditional"
    return "False"


def _new_phys(ctx, stack, L, rtype, props, planned_revs):
    fam_rev = None
    if rtype == "AWS::ECS::TaskDefinition":
        fam = str(props.get("Family") or f"{stack['StackName']}{L}")[:255]
        have = len(ctx.world.store(stack["_account"], stack["_region"], "ecs")
                   .get("taskdefs", {}).get(fam, []))
        planned_revs[fam] = planned_revs.get(fam, have) + 1
        fam_rev = (fam, planned_revs[fam])
    return R.physical_id(rtype, L, props, stack["StackName"], stack["_region"],
                         stack["_account"], lambda n: ctx.rand(n), fam_rev)


def _plan_records(ctx, stack, tpl, values, conds, deps, order, mode):
    """New resource records in dependency order plus the change list.
    mode "exec" assigns new physical ids to added and replaced resources;
    mode "changeset" leaves them dynamic ({{fakeaws:ref:X}} markers)."""
    world = ctx.world
    old = stack["_resources"]
    old_tpl = stack.get("_template") or {"Resources": {}}
    old_values = stack.get("_values") or {}
    records, kinds, changes, details_of = {}, {}, [], {}
    dynamic = set() if mode == "changeset" else None
    ev = _evaluator(world, stack, tpl, values, records, dynamic)
    ev.conds = dict(conds)
    planned_revs = {}
    for L in order:
        d = tpl["Resources"][L]
        rtype = d["Type"]
        try:
            props = ev.eval(d.get("Properties") or {})
            meta = ev.eval(d["Metadata"]) if "Metadata" in d else None
        except T.TemplateError as e:
            raise V(str(e))
        o = old.get(L)
        if o is not None and o["ResourceType"] != rtype:
            raise V("Update of resource type is not permitted. The new template modifies "
                    f"resource type of the following resources: [{L}]")
        base = {"LogicalResourceId": L, "ResourceType": rtype, "_props": props, "_meta": meta,
                "_deps": deps[L], "_policy": d.get("DeletionPolicy"),
                "_replace_policy": d.get("UpdateReplacePolicy"), "ResourceStatus": None,
                "ResourceStatusReason": None, "Timestamp": None, "_live": False}
        if o is None:
            kinds[L] = "Add"
            if mode == "exec":
                phys = _new_phys(ctx, stack, L, rtype, props, planned_revs)
                base.update(PhysicalResourceId=phys, _attrs=R.attributes(
                    rtype, phys, props, stack["_region"], stack["_account"], L))
            else:
                dynamic.add(L)
                base.update(PhysicalResourceId=None, _attrs={})
            records[L] = base
            changes.append({"Action": "Add", "LogicalResourceId": L, "ResourceType": rtype,
                            "Scope": [], "Details": []})
            continue
        details = _details(o, props, meta, d, old_tpl["Resources"].get(L), values, old_values,
                           old)
        if not details:
            kinds[L] = None
            records[L] = copy.deepcopy(o)
            records[L]["_deps"] = deps[L]
            continue
        repl = _replacement(details)
        if mode == "exec":
            replace = any(x["Target"]["RequiresRecreation"] == "Always" for x in details)
        else:
            replace = repl == "True"
        rec = copy.deepcopy(o)
        rec.update(_props=props, _meta=meta, _deps=deps[L], _policy=base["_policy"],
                   _replace_policy=base["_replace_policy"])
        if replace and mode == "exec":
            kinds[L] = "Replace"
            rec["_old"] = copy.deepcopy(o)
            rec["_old"].pop("_old", None)
            name_prop = R.NAME_PROPS.get(rtype)
            if name_prop and props.get(name_prop) is not None and \
                    (o.get("_props") or {}).get(name_prop) == props.get(name_prop):
                rec["_custom_name_clash"] = True
            else:
                phys = _new_phys(ctx, stack, L, rtype, props, planned_revs)
                rec.update(PhysicalResourceId=phys, _attrs=R.attributes(
                    rtype, phys, props, stack["_region"], stack["_account"], L), _live=False)
        else:
            kinds[L] = "Modify"
            if replace:
                dynamic.add(L)
            if mode == "exec":
                rec["_attrs"] = R.attributes(rtype, rec["PhysicalResourceId"], props,
                                             stack["_region"], stack["_account"], L) or \
                    rec.get("_attrs", {})
        records[L] = rec
        details_of[L] = details
        scope = [s for s in ("Properties", "Metadata", "Tags")
                 if any(x["Target"]["Attribute"] == s for x in details)]
        changes.append({"Action": "Modify", "LogicalResourceId": L,
                        "PhysicalResourceId": o.get("PhysicalResourceId"), "ResourceType": rtype,
                        "Replacement": repl, "Scope": scope, "Details": details})
    removed = [L for L in old if L not in records]
    for L in removed:
        changes.append({"Action": "Remove", "LogicalResourceId": L,
                        "PhysicalResourceId": old[L].get("PhysicalResourceId"),
                        "ResourceType": old[L]["ResourceType"], "Scope": [], "Details": []})
    return records, kinds, removed, changes, list(ev.imports)


def _outputs(world, stack, tpl=None, values=None, records=None):
    """[(Output dict, export name or None)] of the stack's current state."""
    tpl = tpl if tpl is not None else stack.get("_template") or {}
    values = values if values is not None else stack.get("_values") or {}
    records = records if records is not None else stack["_resources"]
    ev = _evaluator(world, stack, tpl, values, records)
    out = []
    for key, o in (tpl.get("Outputs") or {}).items():
        try:
            if o.get("Condition") and not ev.condition(o["Condition"]):
                continue
            value = ev.eval(o["Value"])
            item = {"OutputKey": key, "OutputValue": T._scalar_str(value)}
            if o.get("Description") is not None:
                item["Description"] = str(o["Description"])
            export = None
            if isinstance(o.get("Export"), dict):
                export = T._scalar_str(ev.eval(o["Export"]["Name"]))
                item["ExportName"] = export
            out.append(item)
        except (T.TemplateError, T.ImportMissing):
            continue
    return out


# ================================================================ timeline

def _event_id(stack, L, status):
    n = stack.setdefault("_evseq", 0) + 1
    stack["_evseq"] = n
    if L == stack["StackName"]:
        h = hashlib.sha256(f"{stack['StackId']}/{n}".encode()).hexdigest()
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
    return f"{L}-{status}-{n:06d}"


def _event(stack, t, L, phys, rtype, status, reason, props=None, token=None):
    ev = {"StackId": stack["StackId"], "EventId": _event_id(stack, L, status),
          "StackName": stack["StackName"], "LogicalResourceId": L, "PhysicalResourceId": phys or "",
          "ResourceType": rtype, "Timestamp": t, "ResourceStatus": status}
    if reason:
        ev["ResourceStatusReason"] = reason
    if props is not None:
        ev["ResourceProperties"] = json.dumps(props, separators=(",", ":"))
    if token:
        ev["ClientRequestToken"] = token
    stack["_events"].append(ev)


class Planner:
    """Collects timeline entries for one operation."""

    def __init__(self, ctx, stack, token=None):
        self.ctx = ctx
        self.world = ctx.world
        self.stack = stack
        self.token = token
        self.entries = []
        cfg = self.world.config
        self.base = ctx.seconds(float(cfg.get("resource_ms", 50)))

    def stack_ev(self, t, status, reason=None):
        self.entries.append({"t": t, "k": "stack", "status": status, "reason": reason,
                             "token": self.token})

    def res(self, t, L, status, reason=None, record=None, phys=None, remove=False, mat=None,
            props=False):
        self.entries.append({"t": t, "k": "res", "logical": L, "status": status,
                             "reason": reason, "record": copy.deepcopy(record)
                             if record is not None else None, "phys": phys, "remove": remove,
                             "mat": copy.deepcopy(mat), "props": props, "token": self.token})

    def hook(self, t, name, **args):
        self.entries.append({"t": t, "k": "hook", "name": name, "args": args})

    def state_after(self, state):
        """A copy of state with this planner's entries applied (no side effects)."""
        sim = {k: v for k, v in state.items() if k not in ("_events", "_timeline")}
        sim = copy.deepcopy(sim)
        sim["_events"] = []
        for e in self.entries:
            apply_entry(self.world, sim, e, live=False)
        return sim

    # --- helpers
    def duration(self, rec, phase):
        meta = rec.get("_meta") or {}
        dur = self.base
        if isinstance(meta, dict) and meta.get("fake:duration-ms") is not None:
            dur = self.ctx.seconds(float(meta["fake:duration-ms"]))
        if rec["ResourceType"] == "AWS::ECS::Service" and phase in ("create", "update"):
            flags = (meta.get("fake:ecs") if isinstance(meta, dict) else None) or {}
            stab = self.ctx.seconds(float(flags.get(
                "stabilize_ms", self.world.config.get("ecs_stabilize_ms", 300))))
            dur = max(dur, stab)
            if flags.get("never_stable"):
                dur = self.ctx.seconds(3 * 3600 * 1000.0)
        if rec.get("ResourceStatus") in ("CREATE_FAILED",) and phase == "delete":
            dur = dur * 0.2
        return dur

    def fail_reason(self, rec, phase, attempt=1):
        meta = rec.get("_meta") if isinstance(rec.get("_meta"), dict) else {}
        L, rt = rec["LogicalResourceId"], rec["ResourceType"]
        key = {"create": "fake:fail", "update": "fake:fail", "rollback": "fake:fail-rollback",
               "delete": "fake:fail-delete"}[phase]
        v = meta.get(key)
        if v and (phase != "rollback" or attempt == 1):
            return v if isinstance(v, str) else f"Resource {L} failed ({key})"
        if phase in ("create", "update") and "FakeFail" in L:
            return f"Resource {L} failed (fakeaws: logical id contains FakeFail)"
        kind = {"create": "fail", "update": "fail", "rollback": "fail-rollback",
                "delete": "fail-delete"}[phase]
        rule = self.world.faults.match("resource", [L, rt], {kind})
        if rule is not None:
            return rule.arg or f"Resource {L} failed (fault rule {rule.text})"
        return None


def _simulate(P, actions, t0):
    """Run actions (dicts: id, deps, dur, fail, start, ok, failev, cancelev)
    in dependency order, in parallel where possible.  Returns (ok, end time,
    failed id, cancelled ids, done ids)."""
    amap = {a["id"]: a for a in actions}
    done, started, heap = [], set(), []

    def launch(t):
        for i, a in enumerate(actions):
            if a["id"] in started:
                continue
            if all(d in done or d not in amap for d in a["deps"]):
                started.add(a["id"])
                for ev in a["start"]:
                    P.res(t, a["id"], **ev)
                heapq.heappush(heap, (t + a["dur"], i, a["id"]))
    launch(t0)
    t = t0
    while heap:
        t, i, aid = heapq.heappop(heap)
        a = amap[aid]
        if a.get("fail"):
            P.res(t, aid, **dict(a["failev"], reason=a["fail"]))
            cancelled = []
            for _, _, other in sorted(heap):
                P.res(t, other, **amap[other]["cancelev"])
                cancelled.append(other)
            return False, t, aid, cancelled, done
        for ev in a["ok"]:
            P.res(t, aid, **ev)
        done.append(aid)
        launch(t)
    return True, t, None, [], done


def _reverse_deps(records, names):
    names = set(names)
    rdeps = {n: [] for n in names}
    for n in names:
        for d in records[n].get("_deps") or []:
            if d in names:
                rdeps[d].append(n)
    return rdeps


def _delete_actions(P, records, names, phase, retain=(), old_of=None):
    """Delete actions for names (dependents first).  old_of: {L: record}
    deletes a replaced resource's old physical resource without removing
    the logical record."""
    rdeps = _reverse_deps(records, names)
    actions = []
    for L in names:
        rec = records[L] if old_of is None else old_of[L]
        reason = None
        policy = rec.get("_replace_policy") if old_of is not None else rec.get("_policy")
        if L in retain or policy == "Retain" or (policy == "RetainExceptOnCreate" and
                                                  phase != "rollback"):
            actions.append({"id": L, "deps": rdeps[L], "dur": 0.0, "fail": None, "start": [],
                            "ok": [dict(status="DELETE_SKIPPED", record=None if old_of else rec,
                                        phys=rec.get("PhysicalResourceId"),
                                        remove=old_of is None)],
                            "failev": {}, "cancelev": {}})
            continue
        if rec.get("_live") or rec.get("ResourceStatus") not in (None, "CREATE_FAILED"):
            reason = P.fail_reason(rec, "delete") or _external_delete_problem(P, rec)
        phys = rec.get("PhysicalResourceId")
        actions.append({
            "id": L, "deps": rdeps[L], "dur": P.duration(rec, "delete"), "fail": reason,
            "start": [dict(status="DELETE_IN_PROGRESS", phys=phys)],
            "ok": [dict(status="DELETE_COMPLETE", phys=phys, remove=old_of is None,
                        mat={"action": "delete", "record": rec})],
            "failev": dict(status="DELETE_FAILED", phys=phys),
            "cancelev": dict(status="DELETE_FAILED", phys=phys,
                             reason="Resource deletion cancelled")})
    return actions


def _external_delete_problem(P, rec):
    if not rec.get("_live"):
        return None
    world, stack = P.world, P.stack
    rt, phys = rec["ResourceType"], rec.get("PhysicalResourceId")
    if rt == "AWS::S3::Bucket":
        b = S3.buckets(world).get(phys)
        if b is not None and b["objects"]:
            return ("Resource handler returned message: \"The bucket you tried to delete is not "
                    "empty (Service: S3, Status Code: 409, Request ID: FAKEAWS)\"")
    if rt == "AWS::ECR::Repository" and not (rec.get("_props") or {}).get("EmptyOnDelete"):
        repo = world.store(stack["_account"], stack["_region"], "ecr").get(
            "repositories", {}).get(phys)
        if repo and repo["images"]:
            return ("Resource handler returned message: \"The repository with name "
                    f"'{phys}' in registry with id '{stack['_account']}' cannot be deleted "
                    "because it still contains images\"")
    return None


def _external_create_problem(P, rec):
    world, stack = P.world, P.stack
    rt, phys = rec["ResourceType"], rec.get("PhysicalResourceId")
    props = rec.get("_props") or {}
    if rt == "AWS::S3::Bucket" and props.get("BucketName") and phys in S3.buckets(world):
        return f"{phys} already exists"
    if rt == "AWS::ECR::Repository" and props.get("RepositoryName") and \
            phys in world.store(stack["_account"], stack["_region"], "ecr").get(
                "repositories", {}):
        return (f"Resource of type 'AWS::ECR::Repository' with identifier '{phys}' already "
                "exists.")
    if rt == "AWS::SSM::Parameter" and props.get("Name") and \
            phys in world.store(stack["_account"], stack["_region"], "ssm").get("params", {}):
        return f"Resource of type 'AWS::SSM::Parameter' with identifier '{phys}' already exists."
    return None


def _create_action(P, L, rec, deps, fail):
    first = dict(rec, PhysicalResourceId=None)
    mat_start = {"action": "create"} if rec["ResourceType"] == "AWS::ECS::Service" else None
    mat_end = None if mat_start else {"action": "create"}
    return {"id": L, "deps": deps, "dur": P.duration(rec, "create"), "fail": fail,
            "start": [dict(status="CREATE_IN_PROGRESS", record=first, props=True),
                      dict(status="CREATE_IN_PROGRESS", reason="Resource creation Initiated",
                           record=rec, props=True, mat=mat_start)],
            "ok": [dict(status="CREATE_COMPLETE", record=rec, props=True, mat=mat_end)],
            "failev": dict(status="CREATE_FAILED", record=dict(rec, _live=bool(mat_start))),
            "cancelev": dict(status="CREATE_FAILED", reason="Resource creation cancelled")}


def _policy_denial(policy, rec, action):
    if not policy:
        return None
    try:
        doc = json.loads(policy)
    except ValueError:
        return None
    import fnmatch
    stmts = doc.get("Statement", [])
    stmts = stmts if isinstance(stmts, list) else [stmts]
    allowed = False
    want = f"Update:{action}"
    res_name = f"LogicalResourceId/{rec['LogicalResourceId']}"

    def listify(x):
        return x if isinstance(x, list) else [x]
    for i, s in enumerate(stmts, 1):
        if "Action" in s:
            act_ok = any(fnmatch.fnmatchcase(want, a) for a in listify(s["Action"]))
        else:
            act_ok = not any(fnmatch.fnmatchcase(want, a) for a in listify(s.get("NotAction", [])))
        if "Resource" in s:
            res_ok = any(fnmatch.fnmatchcase(res_name, r) for r in listify(s["Resource"]))
        else:
            res_ok = not any(fnmatch.fnmatchcase(res_name, r)
                             for r in listify(s.get("NotResource", [])))
        cond = s.get("Condition") or {}
        for op, kv in cond.items():
            for k, v in kv.items():
                if k == "ResourceType":
                    if not any(fnmatch.fnmatchcase(rec["ResourceType"], x) for x in listify(v)):
                        res_ok = False
        if act_ok and res_ok:
            if s.get("Effect") == "Deny":
                return f"Action denied by stack policy: Statement [#{i}] has a Deny effect"
            allowed = True
    return None if allowed else "Action not allowed by stack policy"


# ------------------------------------------------------------ operations

def _plan_create(P, stack, t0, records, order, opts):
    P.stack_ev(t0, "CREATE_IN_PROGRESS", "User Initiated")
    problem = opts.get("stack_failure")
    if problem is None:
        actions = []
        for L in order:
            rec = records[L]
            fail = P.fail_reason(rec, "create") or _external_create_problem(P, rec)
            if rec["ResourceType"] == "AWS::ECS::Service" and \
                    ((rec.get("_meta") or {}).get("fake:ecs") or {}).get("fail"):
                fail = fail or "Error occurred during operation 'ECS Deployment Circuit " \
                               "Breaker was triggered'."
            actions.append(_create_action(P, L, rec, rec["_deps"], fail))
        ok, t, failed, cancelled, done = _simulate(P, actions, t0)
        if ok:
            sim = P.state_after(stack)
            problem = _export_problems(P, sim, _outputs(P.world, sim), None)
            if problem is None:
                P.hook(t, "commit")
                P.stack_ev(t, "CREATE_COMPLETE")
                P.hook(t, "finish", result="ok")
                return
        else:
            problem = f"The following resource(s) failed to create: [{failed}]. "
    else:
        t = t0
    if opts.get("on_failure") == "DO_NOTHING":
        P.stack_ev(t, "CREATE_FAILED", problem)
        P.hook(t, "finish", result="failed")
        return
    P.stack_ev(t, "ROLLBACK_IN_PROGRESS", _with_rollback(problem))
    ok, t = _plan_create_rollback(P, P.state_after(stack), t)
    if ok and opts.get("on_failure") == "DELETE":
        P.stack_ev(t, "DELETE_IN_PROGRESS", "User Initiated")
        P.stack_ev(t, "DELETE_COMPLETE")
        P.hook(t, "deleted")


def _with_rollback(problem):
    p = problem.rstrip()
    return (p if p.endswith(".") else p + ".") + " Rollback requested by user."


def _plan_create_rollback(P, state, t0):
    names = list(state["_resources"])
    actions = _delete_actions(P, state["_resources"], names, "rollback")
    ok, t, failed, _, _ = _simulate(P, actions, t0)
    if ok:
        P.stack_ev(t, "ROLLBACK_COMPLETE")
        P.hook(t, "finish", result="rolled_back")
        return True, t
    P.stack_ev(t, "ROLLBACK_FAILED", f"The following resource(s) failed to delete: [{failed}]. ")
    P.hook(t, "finish", result="failed")
    return False, t


def _export_problems(P, sim, outputs, prev_outputs):
    """Export name clashes with other stacks, and (on update) exports in use
    that would be removed or changed."""
    world, stack = P.world, P.stack
    exports = _cfn(world, stack["_account"], stack["_region"])["exports"]
    for o in outputs:
        name = o.get("ExportName")
        if name and name in exports and exports[name]["ExportingStackId"] != stack["StackId"]:
            other = exports[name]["ExportingStackId"].split("/")[1]
            return f"Export with name {name} is already exported by stack {other}"
    if prev_outputs is not None:
        new = {o["ExportName"]: o["OutputValue"] for o in outputs if o.get("ExportName")}
        for o in prev_outputs:
            name = o.get("ExportName")
            if not name:
                continue
            users = _importers(world, stack, name)
            if not users:
                continue
            if name not in new:
                return f"Export {name} cannot be deleted as it is in use by {users[0]}"
            if new[name] != o["OutputValue"]:
                return f"Cannot update export {name} as it is in use by {users[0]}"
    return None


def _importers(world, stack, name):
    s = _cfn(world, stack["_account"], stack["_region"])
    out = []
    for st in s["stacks"].values():
        if st["StackStatus"] != "DELETE_COMPLETE" and name in (st.get("_imports") or []) and \
                st["StackId"] != stack["StackId"]:
            out.append(st["StackName"])
    return sorted(out)


def _plan_update(P, stack, t0, records, kinds, removed, order, opts):
    state = stack
    P.stack_ev(t0, "UPDATE_IN_PROGRESS", "User Initiated")
    problem = opts.get("stack_failure")
    policy = opts.get("policy")
    failed_action = None
    if problem is None:
        actions = []
        for L in order:
            kind = kinds[L]
            if kind is None:
                continue
            rec = records[L]
            deps = rec["_deps"]
            if kind == "Add":
                fail = P.fail_reason(rec, "create") or _external_create_problem(P, rec)
                actions.append(_create_action(P, L, rec, deps, fail))
                continue
            fail = _policy_denial(policy, rec, "Replace" if kind == "Replace" else "Modify")
            fail = fail or P.fail_reason(rec, "update")
            if rec.get("_custom_name_clash"):
                fail = fail or ("CloudFormation cannot update a stack when a custom-named "
                                "resource requires replacing. Rename "
                                f"{rec['PhysicalResourceId']} and update the stack again.")
            if rec["ResourceType"] == "AWS::ECS::Service" and \
                    ((rec.get("_meta") or {}).get("fake:ecs") or {}).get("fail"):
                fail = fail or "Error occurred during operation 'ECS Deployment Circuit " \
                               "Breaker was triggered'."
            is_ecs = rec["ResourceType"] == "AWS::ECS::Service"
            mat_start = {"action": "update"} if is_ecs and not fail else None
            if kind == "Replace":
                start = [dict(status="UPDATE_IN_PROGRESS",
                              reason="Requested update requires the creation of a new physical "
                                     "resource; hence creating one.", props=True,
                              record=dict(state["_resources"][L], _props=rec["_props"])),
                         dict(status="UPDATE_IN_PROGRESS", reason="Resource creation Initiated",
                              record=rec, props=True,
                              mat={"action": "create"} if is_ecs and not fail else None)]
                ok = [dict(status="UPDATE_COMPLETE", record=rec, props=True,
                           mat=None if is_ecs else {"action": "create"})]
            else:
                start = [dict(status="UPDATE_IN_PROGRESS", record=rec, props=True,
                              mat=mat_start)]
                ok = [dict(status="UPDATE_COMPLETE", record=rec, props=True,
                           mat=None if mat_start else {"action": "update"})]
            actions.append({"id": L, "deps": deps, "dur": P.duration(rec, "update"),
                            "fail": fail, "start": start, "ok": ok,
                            "failev": dict(status="UPDATE_FAILED"),
                            "cancelev": dict(status="UPDATE_FAILED",
                                             reason="Resource update cancelled")})
        ok, t, failed, cancelled, done = _simulate(P, actions, t0)
        if ok:
            sim = P.state_after(stack)
            outs = _outputs(P.world, sim)
            problem = _export_problems(P, sim, outs, stack.get("Outputs") or [])
            if problem is None:
                P.stack_ev(t, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
                P.hook(t, "commit")
                cleanup = _delete_actions(P, stack["_resources"], removed, "cleanup")
                replaced = [L for L in order if kinds[L] == "Replace"
                            and records[L].get("_old") is not None
                            and not records[L].get("_custom_name_clash")]
                old_of = {L: records[L]["_old"] for L in replaced}
                if replaced:
                    cleanup += _delete_actions(P, {**stack["_resources"], **old_of},
                                               replaced, "cleanup", old_of=old_of)
                for a in cleanup:  # cleanup failures do not fail the update
                    if a.get("fail"):
                        a["ok"] = [dict(a["failev"], reason=a["fail"])]
                        a["fail"] = None
                _, t, _, _, _ = _simulate(P, cleanup, t)
                P.stack_ev(t, "UPDATE_COMPLETE")
                P.hook(t, "finish", result="ok")
                return
        else:
            failed_action = kinds.get(failed)
            verb = "create" if failed_action == "Add" else "update"
            problem = f"The following resource(s) failed to {verb}: [{failed}]. "
    else:
        t = t0
    P.stack_ev(t, "UPDATE_ROLLBACK_IN_PROGRESS", problem)
    _plan_update_rollback(P, P.state_after(stack), stack["_op"]["prev"], t, 1)


def _plan_update_rollback(P, state, prev, t0, attempt, skip=()):
    prev_res = prev["resources"]
    revert, cleanup, old_phys = [], [], {}
    for L, s in state["_resources"].items():
        p = prev_res.get(L)
        if p is None:
            cleanup.append(L)
            continue
        if L in skip:
            continue
        touched = (s.get("PhysicalResourceId") != p.get("PhysicalResourceId") or
                   _norm(s.get("_props")) != _norm(p.get("_props")) or
                   _norm(s.get("_meta")) != _norm(p.get("_meta")) or
                   (s.get("ResourceStatus") or "").endswith("FAILED"))
        if touched:
            revert.append(L)
            if s.get("PhysicalResourceId") and \
                    s.get("PhysicalResourceId") != p.get("PhysicalResourceId") and s.get("_live"):
                old_phys[L] = dict(s)
    actions = []
    for L in revert:
        s, p = state["_resources"][L], prev_res[L]
        fail = P.fail_reason(s, "rollback", attempt)
        back = dict(p, _live=True)
        actions.append({"id": L, "deps": [d for d in (p.get("_deps") or []) if d in revert],
                        "dur": P.duration(p, "rollback"), "fail": fail,
                        "start": [dict(status="UPDATE_IN_PROGRESS")],
                        "ok": [dict(status="UPDATE_COMPLETE", record=back, props=True,
                                    mat={"action": "update"})],
                        "failev": dict(status="UPDATE_FAILED"),
                        "cancelev": dict(status="UPDATE_FAILED",
                                         reason="Resource update cancelled")})
    ok, t, failed, _, _ = _simulate(P, actions, t0)
    if not ok:
        P.stack_ev(t, "UPDATE_ROLLBACK_FAILED",
                   f"The following resource(s) failed to update: [{failed}]. ")
        P.hook(t, "finish", result="rollback_failed", attempt=attempt)
        return
    P.stack_ev(t, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
    P.hook(t, "revert")
    records = dict(state["_resources"])
    acts = _delete_actions(P, records, cleanup, "cleanup")
    if old_phys:
        acts += _delete_actions(P, {**records, **old_phys}, list(old_phys), "cleanup",
                                old_of=old_phys)
    for a in acts:
        if a.get("fail"):
            a["ok"] = [dict(a["failev"], reason=a["fail"])]
            a["fail"] = None
    _, t, _, _, _ = _simulate(P, acts, t)
    P.stack_ev(t, "UPDATE_ROLLBACK_COMPLETE")
    P.hook(t, "finish", result="rolled_back")


def _plan_delete(P, stack, t0, retain):
    prior = stack["StackStatus"]
    P.stack_ev(t0, "DELETE_IN_PROGRESS", "User Initiated")
    for o in stack.get("Outputs") or []:
        name = o.get("ExportName")
        users = _importers(P.world, stack, name) if name else []
        if users:
            P.stack_ev(t0, prior, f"Export {name} cannot be deleted as it is in use by "
                                  f"{users[0]}")
            P.hook(t0, "finish", result="failed")
            return
    names = list(stack["_resources"])
    actions = _delete_actions(P, stack["_resources"], names, "delete", retain)
    ok, t, failed, _, _ = _simulate(P, actions, t0)
    if ok:
        P.stack_ev(t, "DELETE_COMPLETE")
        P.hook(t, "deleted")
        return
    P.stack_ev(t, "DELETE_FAILED", f"The following resource(s) failed to delete: [{failed}]. ")
    P.hook(t, "finish", result="failed")


# ------------------------------------------------------------ applying

def apply_entry(world, stack, e, live):
    t = e["t"]
    k = e["k"]
    if k == "stack":
        status = e["status"]
        stack["StackStatus"] = status
        if e.get("reason"):
            stack["StackStatusReason"] = e["reason"]
        else:
            stack.pop("StackStatusReason", None)
        if status in ("UPDATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"):
            stack["LastUpdatedTime"] = t
        if status == "DELETE_IN_PROGRESS":
            stack["DeletionTime"] = t
        _event(stack, t, stack["StackName"], stack["StackId"], "AWS::CloudFormation::Stack",
               status, e.get("reason"), token=e.get("token"))
    elif k == "res":
        L = e["logical"]
        rec = stack["_resources"].get(L)
        if e.get("record") is not None:
            rec = copy.deepcopy(e["record"])
            old_live = (stack["_resources"].get(L) or {}).get("_live")
            if old_live and rec.get("PhysicalResourceId") == \
                    stack["_resources"][L].get("PhysicalResourceId"):
                rec["_live"] = True
            stack["_resources"][L] = rec
        if rec is None:
            return
        phys = e.get("phys") or rec.get("PhysicalResourceId")
        if e.get("phys") is None or e["phys"] == rec.get("PhysicalResourceId"):
            rec["ResourceStatus"] = e["status"]
            if e.get("reason"):
                rec["ResourceStatusReason"] = e["reason"]
            else:
                rec.pop("ResourceStatusReason", None)
            rec["Timestamp"] = t
        _event(stack, t, L, phys, rec["ResourceType"], e["status"], e.get("reason"),
               rec.get("_props") if e.get("props") else None, e.get("token"))
        mat = e.get("mat")
        if mat:
            if live:
                _materialize(world, stack, mat.get("record") or rec, mat["action"], t)
            if mat["action"] != "delete":
                rec["_live"] = True
            elif mat.get("record") is None or \
                    mat["record"].get("PhysicalResourceId") == rec.get("PhysicalResourceId"):
                rec["_live"] = False
        if e.get("remove") and stack["_resources"].get(L) is rec:
            del stack["_resources"][L]
    elif k == "hook":
        HOOKS[e["name"]](world, stack, t, live, **e.get("args", {}))


def _hook_commit(world, stack, t, live):
    op = stack.get("_op") or {}
    stack["Outputs"] = _outputs(world, stack)
    stack["_imports"] = list(op.get("imports") or [])
    if live:
        _sync_exports(world, stack)


def _hook_revert(world, stack, t, live):
    prev = (stack.get("_op") or {}).get("prev")
    if not prev:
        return
    for k in ("_template", "_body", "_values", "Parameters", "Description", "Outputs",
              "_imports", "Capabilities", "Tags", "NotificationARNs"):
        if k in prev:
            stack[k] = copy.deepcopy(prev[k])
    if live:
        _sync_exports(world, stack)


def _hook_finish(world, stack, t, live, result, attempt=1):
    op = stack.get("_op") or {}
    cs_id = op.get("changeset")
    if live and cs_id:
        cs = _cfn(world, stack["_account"], stack["_region"])["changesets"].get(cs_id)
        if cs:
            cs["ExecutionStatus"] = "EXECUTE_COMPLETE" if result == "ok" else "EXECUTE_FAILED"
    if result == "rollback_failed":
        op["attempt"] = attempt
        op["state"] = "rollback_failed"
    else:
        stack.pop("_op", None)


def _hook_deleted(world, stack, t, live):
    stack["_resources"] = {}
    stack["_imports"] = []
    stack["DeletionTime"] = stack.get("DeletionTime") or t
    stack.pop("_op", None)
    if live:
        s = _cfn(world, stack["_account"], stack["_region"])
        if s["names"].get(stack["StackName"]) == stack["StackId"]:
            del s["names"][stack["StackName"]]
        for name in [n for n, e in s["exports"].items()
                     if e["ExportingStackId"] == stack["StackId"]]:
            del s["exports"][name]
        for cid in [c for c, cs in s["changesets"].items() if cs["StackId"] == stack["StackId"]]:
            del s["changesets"][cid]


HOOKS = {"commit": _hook_commit, "revert": _hook_revert, "finish": _hook_finish,
         "deleted": _hook_deleted}


def _sync_exports(world, stack):
    s = _cfn(world, stack["_account"], stack["_region"])
    for name in [n for n, e in s["exports"].items() if e["ExportingStackId"] == stack["StackId"]]:
        del s["exports"][name]
    for o in stack.get("Outputs") or []:
        if o.get("ExportName"):
            s["exports"][o["ExportName"]] = {"ExportingStackId": stack["StackId"],
                                             "Name": o["ExportName"], "Value": o["OutputValue"]}


def _materialize(world, stack, rec, action, t):
    acct, region = stack["_account"], stack["_region"]
    rt, phys = rec["ResourceType"], rec.get("PhysicalResourceId")
    p = rec.get("_props") or {}
    if not phys:
        return
    if rt == "AWS::S3::Bucket":
        if action == "delete":
            S3.buckets(world).pop(phys, None)
            return
        b = S3.make_bucket(world, acct, region, phys, t)
        status = (p.get("VersioningConfiguration") or {}).get("Status")
        if status:
            b["versioning"] = status
        enc = (p.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")
        if enc:
            b["encryption"] = {"Rules": [
                {"ApplyServerSideEncryptionByDefault": r.get("ServerSideEncryptionByDefault", {}),
                 "BucketKeyEnabled": bool(r.get("BucketKeyEnabled", False))} for r in enc]}
        pab = p.get("PublicAccessBlockConfiguration")
        if isinstance(pab, dict):
            b["pab"] = {k: str(v).lower() == "true" for k, v in pab.items()}
    elif rt == "AWS::SSM::Parameter":
        params = world.store(acct, region, "ssm").setdefault("params", {})
        if action == "delete":
            params.pop(phys, None)
        else:
            SSM.seed(world, acct, region, {phys: {"Type": p.get("Type", "String"),
                                                  "Value": str(p.get("Value", ""))}})
    elif rt == "AWS::ECR::Repository":
        if action == "delete":
            ECR.delete_repository(world, acct, region, phys)
        else:
            ECR.make_repository(world, acct, region, phys, t)
    elif rt == "AWS::ECS::Cluster":
        if action == "delete":
            ECS.delete_cluster(world, acct, region, phys)
        else:
            c = ECS._store(world, acct, region)["clusters"].get(phys)
            if c is None or c["status"] != "ACTIVE":
                ECS.make_cluster(world, acct, region, phys, t)
    elif rt == "AWS::ECS::TaskDefinition":
        if action == "delete":
            return
        fam, rev = phys.rsplit("/", 1)[1].rsplit(":", 1)
        revs = ECS._store(world, acct, region)["taskdefs"].setdefault(fam, [])
        if len(revs) >= int(rev):
            return
        containers = []
        for c in p.get("ContainerDefinitions") or []:
            containers.append({"name": c.get("Name", "app"), "image": c.get("Image", ""),
                               "environment": [{"name": e.get("Name"), "value": e.get("Value")}
                                               for e in c.get("Environment") or []]})
        while len(revs) < int(rev) - 1:
            ECS.register_taskdef(world, acct, region, fam, containers, t)
        ECS.register_taskdef(world, acct, region, fam, containers, t)
    elif rt == "AWS::ECS::Service":
        cluster = str(p.get("Cluster") or "default").rsplit("/", 1)[-1]
        name = phys.rsplit("/", 1)[-1]
        if action == "delete":
            ECS.delete_service(world, acct, region, cluster, name, t)
            return
        flags = (rec.get("_meta") or {}).get("fake:ecs") if isinstance(rec.get("_meta"), dict) \
            else None
        try:
            desired = int(p.get("DesiredCount", 1))
        except (TypeError, ValueError):
            desired = 1
        ECS.put_service(world, acct, region, cluster, name, t, str(p.get("TaskDefinition", "")),
                        desired, p.get("LaunchType") or "FARGATE", flags or {})


def advance(world, now):
    for account, region, services in list(world.regions()):
        s = services.get("cloudformation")
        if not s:
            continue
        for stack in list(s.get("stacks", {}).values()):
            tl = stack.get("_timeline")
            while tl and tl[0]["t"] <= now:
                apply_entry(world, stack, tl.pop(0), live=True)


def _schedule(stack, entries):
    entries = sorted(entries, key=lambda e: e["t"])  # stable: keeps planning order
    stack["_timeline"] = entries


# ================================================================ API

def _stack_view(stack):
    out = {k: v for k, v in stack.items() if not k.startswith("_")}
    params = []
    for p in stack.get("Parameters") or []:
        item = {k: v for k, v in p.items() if not k.startswith("_")}
        if p.get("_noecho"):
            item["ParameterValue"] = "****"
        params.append(item)
    out["Parameters"] = params
    if stack["StackStatus"] != "DELETE_COMPLETE":
        out.pop("DeletionTime", None)
    return out


def _new_stack(ctx, name, p, tpl, body):
    sid = f"arn:aws:cloudformation:{ctx.region}:{ctx.account}:stack/{name}/{ctx.world.uuid()}"
    stack = {"StackId": sid, "StackName": name, "CreationTime": ctx.now,
             "RollbackConfiguration": {}, "StackStatus": "CREATE_IN_PROGRESS",
             "DisableRollback": bool(p.get("DisableRollback", False)),
             "NotificationARNs": list(p.get("NotificationARNs") or []),
             "Capabilities": list(p.get("Capabilities") or []), "Outputs": [],
             "Tags": list(p.get("Tags") or []),
             "EnableTerminationProtection": bool(p.get("EnableTerminationProtection", False)),
             "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
             "_account": ctx.account, "_region": ctx.region, "_resources": {}, "_events": [],
             # who created it: the account and ARN of the credentials (an assumed
             # role's keys carry the role's account, sts.py)
             "_created_by": {"account": ctx.caller.get("account", ctx.account),
                             "arn": ctx.caller.get("arn"), "access_key": ctx.access_key},
             "_timeline": [], "_tokens": {}, "_template": None, "_body": None, "_values": {}}
    if p.get("TimeoutInMinutes") is not None:
        stack["TimeoutInMinutes"] = p["TimeoutInMinutes"]
    if p.get("RoleARN"):
        stack["RoleARN"] = p["RoleARN"]
    if p.get("StackPolicyBody"):
        stack["_policy"] = p["StackPolicyBody"]
    return stack


def _set_template(stack, tpl, body, values, listing):
    stack["_template"] = tpl
    stack["_body"] = body
    stack["_values"] = values
    stack["Parameters"] = listing
    if tpl.get("Description") is not None:
        stack["Description"] = str(tpl["Description"])
    else:
        stack.pop("Description", None)


def _snapshot(stack):
    return {"resources": copy.deepcopy(stack["_resources"]),
            **{k: copy.deepcopy(stack.get(k)) for k in (
                "_template", "_body", "_values", "Parameters", "Description", "Outputs",
                "_imports", "Capabilities", "Tags", "NotificationARNs") if k in stack}}


ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


def _role_arn(p):
    """The RoleARN (CloudFormation service role) of a request, checked; None."""
    role = p.get("RoleARN")
    if role is None:
        return None
    if not ROLE_ARN.match(role):
        raise V(f"Role {role} is invalid or cannot be assumed")
    return role


def _check_name(name):
    if not STACK_NAME.match(name or ""):
        raise V(f"1 validation error detected: Value '{name}' at 'stackName' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: "
                "[a-zA-Z][-a-zA-Z0-9]*")


def _start_create(ctx, stack, tpl, body, values, listing, opts, token, cs_id=None):
    conds, deps, order = _analyze(ctx.world, stack, tpl, values)
    _set_template(stack, tpl, body, values, listing)
    stack["_op"] = {"kind": "create", "token": token, "changeset": cs_id,
                    "prev": _snapshot(stack)}
    try:
        records, kinds, removed, changes, imports = _plan_records(
            ctx, stack, tpl, values, conds, deps, order, "exec")
    except T.ImportMissing as e:
        records, order, imports = {}, [], []
        opts = dict(opts, stack_failure=f"No export named {e.name} found.")
    stack["_op"]["imports"] = imports
    P = Planner(ctx, stack, token)
    _plan_create(P, stack, ctx.now, records, order, opts)
    _schedule(stack, P.entries)
    advance_stack(ctx, stack)


def _start_update(ctx, stack, tpl, body, values, listing, opts, token, cs_id=None):
    conds, deps, order = _analyze(ctx.world, stack, tpl, values)
    prev = _snapshot(stack)
    try:
        records, kinds, removed, changes, imports = _plan_records(
            ctx, stack, tpl, values, conds, deps, order, "exec")
    except T.ImportMissing as e:
        records, kinds, removed, order, imports = {}, {}, [], [], []
        opts = dict(opts, stack_failure=f"No export named {e.name} found.")
    _set_template(stack, tpl, body, values, listing)
    stack["_op"] = {"kind": "update", "token": token, "changeset": cs_id, "prev": prev,
                    "imports": imports}
    P = Planner(ctx, stack, token)
    _plan_update(P, stack, ctx.now, records, kinds, removed, order, opts)
    _schedule(stack, P.entries)
    advance_stack(ctx, stack)


def advance_stack(ctx, stack):
    tl = stack.get("_timeline")
    while tl and tl[0]["t"] <= ctx.now:
        apply_entry(ctx.world, stack, tl.pop(0), live=True)


def create_stack(ctx, p):
    name = p["StackName"]
    _check_name(name)
    s = _store(ctx)
    token = p.get("ClientRequestToken")
    if name in s["names"]:
        existing = s["stacks"][s["names"][name]]
        if token and existing.get("_tokens", {}).get(token) == "create":
            return {"StackId": existing["StackId"]}
        raise AwsError("AlreadyExistsException", f"Stack [{name}] already exists")
    if p.get("DisableRollback") is not None and p.get("OnFailure") is not None:
        raise V("Either DisableRollback or OnFailure can be specified, not both.")
    body, tpl = _template_from(ctx, p)
    _check_caps(tpl, p.get("Capabilities"))
    stack = _new_stack(ctx, name, p, tpl, body)
    values, resolved, listing = _resolve_params(ctx, tpl, p.get("Parameters"))
    on_failure = p.get("OnFailure") or ("DO_NOTHING" if p.get("DisableRollback") else "ROLLBACK")
    s["stacks"][stack["StackId"]] = stack
    s["names"][name] = stack["StackId"]
    if token:
        stack["_tokens"][token] = "create"
    try:
        _start_create(ctx, stack, tpl, body, values, listing, {"on_failure": on_failure}, token)
    except AwsError:
        del s["stacks"][stack["StackId"]]
        del s["names"][name]
        raise
    return {"StackId": stack["StackId"]}


def _check_updatable(stack):
    if stack["StackStatus"] not in UPDATABLE:
        raise V(f"Stack:{stack['StackId']} is in {stack['StackStatus']} state and can not be "
                "updated.")


def update_stack(ctx, p):
    stack = _stack(ctx, p["StackName"])
    token = p.get("ClientRequestToken")
    if token and stack["_tokens"].get(token) == "update":
        return {"StackId": stack["StackId"]}
    _check_updatable(stack)
    body, tpl = _template_from(ctx, p, stack)
    caps = p.get("Capabilities") or []
    _check_caps(tpl, caps)
    values, resolved, listing = _resolve_params(ctx, tpl, p.get("Parameters"), stack)
    tags = p.get("Tags") if p.get("Tags") is not None else stack.get("Tags")
    if _norm(tpl) == _norm(stack["_template"]) and values == stack["_values"] and \
            _norm(tags) == _norm(stack.get("Tags")):
        raise V("No updates are to be performed.")
    stack["Tags"] = list(tags or [])
    stack["Capabilities"] = list(caps)
    if p.get("NotificationARNs") is not None:
        stack["NotificationARNs"] = list(p["NotificationARNs"])
    if p.get("DisableRollback") is not None:
        stack["DisableRollback"] = bool(p["DisableRollback"])
    if token:
        stack["_tokens"][token] = "update"
    policy = p.get("StackPolicyDuringUpdateBody") or stack.get("_policy")
    _start_update(ctx, stack, tpl, body, values, listing, {"policy": policy}, token)
    return {"StackId": stack["StackId"]}


def delete_stack(ctx, p):
    ref = p["StackName"]
    try:
        stack = _stack(ctx, ref)
    except AwsError:
        return {}  # deleting a stack that does not exist succeeds
    token = p.get("ClientRequestToken")
    if token and stack["_tokens"].get(token) == "delete":
        return {}
    if stack.get("EnableTerminationProtection"):
        raise V(f"Stack [{stack['StackName']}] cannot be deleted while TerminationProtection is "
                "enabled")
    role = _role_arn(p)
    if role:
        stack["RoleARN"] = role
    status = stack["StackStatus"]
    if status == "DELETE_IN_PROGRESS":
        return {}
    if _in_progress(stack):
        raise V(f"Stack [{stack['StackName']}] cannot be deleted while in status {status}")
    retain = list(p.get("RetainResources") or [])
    if retain and status != "DELETE_FAILED":
        raise V(f"Invalid operation on stack [{stack['StackId']}]. RetainResources can only be "
                "specified when the stack is in the DELETE_FAILED state")
    if token:
        stack["_tokens"][token] = "delete"
    stack["_op"] = {"kind": "delete", "token": token, "prev": _snapshot(stack)}
    P = Planner(ctx, stack, token)
    _plan_delete(P, stack, ctx.now, retain)
    _schedule(stack, P.entries)
    advance_stack(ctx, stack)
    return {}


def _page(ctx, op, items, token, default):
    size = ctx.page_size(op, default)
    try:
        start = int(token) if token else 0
    except ValueError:
        raise V("Invalid NextToken")
    page = items[start:start + size]
    nxt = str(start + size) if start + size < len(items) else None
    return page, nxt


def describe_stacks(ctx, p):
    if p.get("StackName"):
        return {"Stacks": [_stack_view(_stack(ctx, p["StackName"], deleted_ok=True))]}
    s = _store(ctx)
    live = [st for st in s["stacks"].values() if st["StackStatus"] != "DELETE_COMPLETE"]
    live.sort(key=lambda st: st["CreationTime"], reverse=True)
    page, nxt = _page(ctx, "DescribeStacks", live, p.get("NextToken"), 100)
    return {"Stacks": [_stack_view(st) for st in page], "NextToken": nxt}


def list_stacks(ctx, p):
    s = _store(ctx)
    wanted = set(p.get("StackStatusFilter") or [])
    items = [st for st in s["stacks"].values() if not wanted or st["StackStatus"] in wanted]
    items.sort(key=lambda st: st["CreationTime"], reverse=True)
    page, nxt = _page(ctx, "ListStacks", items, p.get("NextToken"), 100)
    out = []
    for st in page:
        item = {"StackId": st["StackId"], "StackName": st["StackName"],
                "CreationTime": st["CreationTime"], "StackStatus": st["StackStatus"],
                "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"}}
        for k in ("LastUpdatedTime", "StackStatusReason"):
            if st.get(k) is not None:
                item[k] = st[k]
        if st["StackStatus"] == "DELETE_COMPLETE":
            item["DeletionTime"] = st.get("DeletionTime")
        if st.get("Description"):
            item["TemplateDescription"] = st["Description"]
        out.append(item)
    return {"StackSummaries": out, "NextToken": nxt}


def describe_stack_events(ctx, p):
    stack = _stack(ctx, p["StackName"], deleted_ok=True)
    events = stack["_events"]
    size = ctx.page_size("DescribeStackEvents", 100)
    token = p.get("NextToken")
    try:
        end = int(token) if token else len(events)
    except ValueError:
        raise V("Invalid NextToken")
    start = max(0, end - size)
    page = list(reversed(events[start:end]))
    return {"StackEvents": page, "NextToken": str(start) if start > 0 else None}


def _resource_view(stack, rec, detail=False):
    out = {"StackName": stack["StackName"], "StackId": stack["StackId"],
           "LogicalResourceId": rec["LogicalResourceId"], "ResourceType": rec["ResourceType"],
           "ResourceStatus": rec.get("ResourceStatus"),
           "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"}}
    if rec.get("PhysicalResourceId"):
        out["PhysicalResourceId"] = rec["PhysicalResourceId"]
    if rec.get("ResourceStatusReason"):
        out["ResourceStatusReason"] = rec["ResourceStatusReason"]
    if detail:
        out["LastUpdatedTimestamp"] = rec.get("Timestamp")
        if rec.get("_meta") is not None:
            out["Metadata"] = json.dumps(rec["_meta"])
    else:
        out["Timestamp"] = rec.get("Timestamp")
    return out


def describe_stack_resources(ctx, p):
    if p.get("StackName"):
        stack = _stack(ctx, p["StackName"], deleted_ok=True)
    elif p.get("PhysicalResourceId"):
        stack = next((st for st in _store(ctx)["stacks"].values()
                      if any(r.get("PhysicalResourceId") == p["PhysicalResourceId"]
                             for r in st["_resources"].values())), None)
        if stack is None:
            raise V(f"Stack for {p['PhysicalResourceId']} does not exist")
    else:
        raise V("Either StackName or PhysicalResourceId must be specified.")
    out = [_resource_view(stack, r) for r in stack["_resources"].values()
           if not p.get("LogicalResourceId") or r["LogicalResourceId"] == p["LogicalResourceId"]]
    return {"StackResources": out}


def describe_stack_resource(ctx, p):
    stack = _stack(ctx, p["StackName"], deleted_ok=True)
    rec = stack["_resources"].get(p["LogicalResourceId"])
    if rec is None:
        raise V(f"Resource {p['LogicalResourceId']} does not exist for stack "
                f"{stack['StackName']}")
    return {"StackResourceDetail": _resource_view(stack, rec, detail=True)}


def list_stack_resources(ctx, p):
    stack = _stack(ctx, p["StackName"], deleted_ok=True)
    items = []
    for r in stack["_resources"].values():
        v = _resource_view(stack, r)
        v["LastUpdatedTimestamp"] = v.pop("Timestamp")
        for k in ("StackName", "StackId"):
            v.pop(k)
        items.append(v)
    page, nxt = _page(ctx, "ListStackResources", items, p.get("NextToken"), 100)
    return {"StackResourceSummaries": page, "NextToken": nxt}


def get_template(ctx, p):
    if p.get("ChangeSetName"):
        cs = _changeset(ctx, p["ChangeSetName"], p.get("StackName"))
        body = cs["_body"]
    else:
        body = _stack(ctx, p["StackName"], deleted_ok=True)["_body"]
    return {"TemplateBody": body, "StagesAvailable": ["Original", "Processed"]}


def validate_template(ctx, p):
    body, tpl = _template_from(ctx, p)
    params = []
    for name, d in (tpl.get("Parameters") or {}).items():
        item = {"ParameterKey": name,
                "NoEcho": str(d.get("NoEcho", "false")).lower() == "true"}
        if "Default" in d:
            dv = d["Default"]
            item["DefaultValue"] = ",".join(map(str, dv)) if isinstance(dv, list) else str(dv)
        if d.get("Description") is not None:
            item["Description"] = str(d["Description"])
        params.append(item)
    need, why = T.capabilities_needed(tpl)
    out = {"Parameters": params, "DeclaredTransforms": []}
    if tpl.get("Description") is not None:
        out["Description"] = str(tpl["Description"])
    if need:
        out["Capabilities"] = sorted(need)
        out["CapabilitiesReason"] = f"The following resource(s) require capabilities: " \
                                    f"[{', '.join(why)}]"
    return out


# ------------------------------------------------------------ change sets

def _changeset(ctx, name, stack_ref=None):
    s = _store(ctx)
    if name.startswith("arn:"):
        cs = s["changesets"].get(name)
    else:
        if not stack_ref:
            raise V("StackName must be specified if ChangeSetName is not specified as an ARN.")
        try:
            stack = _stack(ctx, stack_ref)
        except AwsError:
            raise AwsError("ChangeSetNotFound", f"ChangeSet [{name}] does not exist", 404)
        cs = next((c for c in s["changesets"].values()
                   if c["StackId"] == stack["StackId"] and c["ChangeSetName"] == name), None)
    if cs is None:
        raise AwsError("ChangeSetNotFound", f"ChangeSet [{name}] does not exist", 404)
    return cs


def _cs_status(ctx, cs):
    if ctx.now < cs["_ready"] and cs["ExecutionStatus"] == "UNAVAILABLE" and \
            cs["_final"]["Status"] != "DELETE_COMPLETE":
        phase = "CREATE_PENDING" if ctx.now < cs["CreationTime"] + (cs["_ready"] -
                                                                     cs["CreationTime"]) / 3 \
            else "CREATE_IN_PROGRESS"
        return phase, "UNAVAILABLE", None
    if cs.get("_finalized") is None:
        cs["_finalized"] = True
        cs["Status"] = cs["_final"]["Status"]
        cs["ExecutionStatus"] = cs["_final"]["ExecutionStatus"]
        if cs["_final"].get("StatusReason"):
            cs["StatusReason"] = cs["_final"]["StatusReason"]
    return cs["Status"], cs["ExecutionStatus"], cs.get("StatusReason")


def create_change_set(ctx, p):
    s = _store(ctx)
    name, cs_name = p["StackName"], p["ChangeSetName"]
    if not CS_NAME.match(cs_name):
        raise V(f"1 validation error detected: Value '{cs_name}' at 'changeSetName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                "[a-zA-Z][-a-zA-Z0-9]*")
    cstype = p.get("ChangeSetType") or "UPDATE"
    stack = None
    if name.startswith("arn:") or name in s["names"]:
        stack = _stack(ctx, name)
    if cstype == "CREATE":
        if stack is not None and stack["StackStatus"] != "REVIEW_IN_PROGRESS":
            raise V(f"Stack [{stack['StackName']}] already exists and cannot be created again "
                    f"with the changeSet [{cs_name}].")
        _check_name(name)
    elif cstype == "UPDATE":
        if stack is None:
            raise V(f"Stack [{name}] does not exist")
        _check_updatable(stack)
    else:
        raise V(f"ChangeSetType {cstype} is not supported by fakeaws")
    if stack is not None and any(c["StackId"] == stack["StackId"] and
                                 c["ChangeSetName"] == cs_name for c in s["changesets"].values()):
        raise AwsError("AlreadyExistsException", f"ChangeSet {cs_name} already exists")
    body, tpl = _template_from(ctx, p, stack)
    _check_caps(tpl, p.get("Capabilities"))
    role = _role_arn(p)
    new_stack = None
    if stack is None:
        new_stack = stack = _new_stack(ctx, name, p, tpl, body)
        stack["StackStatus"] = "REVIEW_IN_PROGRESS"
    values, resolved, listing = _resolve_params(ctx, tpl, p.get("Parameters"),
                                                stack if cstype == "UPDATE" else None)
    conds, deps, order = _analyze(ctx.world, stack, tpl, values)
    final = {"Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE"}
    changes = []
    try:
        _, _, _, changes, _ = _plan_records(ctx, stack, tpl, values, conds, deps, order,
                                            "changeset")
    except T.ImportMissing as e:
        final = {"Status": "FAILED", "ExecutionStatus": "UNAVAILABLE",
                 "StatusReason": f"No export named {e.name} found."}
    tags = p.get("Tags") if p.get("Tags") is not None else (stack.get("Tags") or [])
    if cstype == "UPDATE" and final["Status"] != "FAILED" and not changes and \
            _norm(tpl) == _norm(stack["_template"]) and values == stack["_values"] and \
            _norm(tags) == _norm(stack.get("Tags")):
        final = {"Status": "FAILED", "ExecutionStatus": "UNAVAILABLE", "StatusReason": NO_CHANGES}
    if new_stack is not None:
        s["stacks"][stack["StackId"]] = stack
        s["names"][name] = stack["StackId"]
        P = Planner(ctx, stack)
        P.stack_ev(ctx.now, "REVIEW_IN_PROGRESS", "User Initiated")
        for e in P.entries:
            apply_entry(ctx.world, stack, e, live=True)
    cs_id = (f"arn:aws:cloudformation:{ctx.region}:{ctx.account}:changeSet/{cs_name}/"
             f"{ctx.world.uuid()}")
    cs = {"ChangeSetId": cs_id, "ChangeSetName": cs_name, "StackId": stack["StackId"],
          "StackName": stack["StackName"], "CreationTime": ctx.now,
          "ExecutionStatus": "UNAVAILABLE", "Status": "CREATE_PENDING",
          "NotificationARNs": list(p.get("NotificationARNs") or []),
          "RollbackConfiguration": {}, "Capabilities": list(p.get("Capabilities") or []),
          "Tags": list(tags), "Parameters": [{k: v for k, v in i.items() if not k.startswith("_")}
                                             if not i.get("_noecho") else
                                             {"ParameterKey": i["ParameterKey"],
                                              "ParameterValue": "****"} for i in listing],
          "Changes": [{"Type": "Resource", "ResourceChange": c} for c in changes],
          "IncludeNestedStacks": False, "_type": cstype, "_template": tpl, "_body": body,
          "_values": values, "_listing": listing, "_final": final,
          "_ready": ctx.now + ctx.seconds(float(ctx.world.config.get("changeset_ms", 50))),
          "_disable_rollback": p.get("OnFailure") == "DO_NOTHING", "_role": role,
          "_on_failure": p.get("OnFailure")}
    if p.get("Description"):
        cs["Description"] = p["Description"]
    s["changesets"][cs_id] = cs
    return {"Id": cs_id, "StackId": stack["StackId"]}


def describe_change_set(ctx, p):
    cs = _changeset(ctx, p["ChangeSetName"], p.get("StackName"))
    status, exe, reason = _cs_status(ctx, cs)
    out = {k: v for k, v in cs.items() if not k.startswith("_")}
    out.update(Status=status, ExecutionStatus=exe)
    if reason:
        out["StatusReason"] = reason
    else:
        out.pop("StatusReason", None)
    if status in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
        out["Changes"] = []
    page, nxt = _page(ctx, "DescribeChangeSet", out["Changes"], p.get("NextToken"), 100)
    page = copy.deepcopy(page)
    out["Changes"] = page
    out["NextToken"] = nxt
    if not p.get("IncludePropertyValues"):
        for c in page:
            for d in c["ResourceChange"].get("Details", []):
                d["Target"].pop("BeforeValue", None)
                d["Target"].pop("AfterValue", None)
    return out


def list_change_sets(ctx, p):
    stack = _stack(ctx, p["StackName"])
    s = _store(ctx)
    items = []
    for cs in s["changesets"].values():
        if cs["StackId"] != stack["StackId"]:
            continue
        status, exe, reason = _cs_status(ctx, cs)
        item = {"StackId": cs["StackId"], "StackName": cs["StackName"],
                "ChangeSetId": cs["ChangeSetId"], "ChangeSetName": cs["ChangeSetName"],
                "ExecutionStatus": exe, "Status": status, "CreationTime": cs["CreationTime"],
                "IncludeNestedStacks": False}
        if reason:
            item["StatusReason"] = reason
        if cs.get("Description"):
            item["Description"] = cs["Description"]
        items.append(item)
    page, nxt = _page(ctx, "ListChangeSets", items, p.get("NextToken"), 100)
    return {"Summaries": page, "NextToken": nxt}


def execute_change_set(ctx, p):
    cs = _changeset(ctx, p["ChangeSetName"], p.get("StackName"))
    status, exe, reason = _cs_status(ctx, cs)
    s = _store(ctx)
    stack = s["stacks"][cs["StackId"]]
    token = p.get("ClientRequestToken")
    if token and stack["_tokens"].get(token) == "execute:" + cs["ChangeSetId"]:
        return {}
    if exe != "AVAILABLE":
        raise AwsError("InvalidChangeSetStatus", f"ChangeSet [{cs['ChangeSetId']}] cannot be "
                       f"executed in its current status of [{status}]")
    if _in_progress(stack):
        raise AwsError("InvalidChangeSetStatus", f"ChangeSet [{cs['ChangeSetId']}] cannot be "
                       f"executed in its current execution status of [{exe}]")
    if token:
        stack["_tokens"][token] = "execute:" + cs["ChangeSetId"]
    for cid in [c for c, x in s["changesets"].items()
                if x["StackId"] == stack["StackId"] and c != cs["ChangeSetId"]]:
        del s["changesets"][cid]
    cs["ExecutionStatus"] = "EXECUTE_IN_PROGRESS"
    stack["ChangeSetId"] = cs["ChangeSetId"]
    tpl, body, values, listing = cs["_template"], cs["_body"], cs["_values"], cs["_listing"]
    stack["Tags"] = list(cs["Tags"])
    stack["Capabilities"] = list(cs["Capabilities"])
    if cs.get("_role"):  # without one, the stack keeps the role it had
        stack["RoleARN"] = cs["_role"]
    if p.get("DisableRollback") is not None:
        stack["DisableRollback"] = bool(p["DisableRollback"])
    if cs["_type"] == "CREATE":
        on_failure = cs.get("_on_failure") or ("DO_NOTHING" if stack.get("DisableRollback")
                                               else "ROLLBACK")
        stack["CreationTime"] = stack["CreationTime"]
        _start_create(ctx, stack, tpl, body, values, listing, {"on_failure": on_failure},
                      token, cs["ChangeSetId"])
    else:
        _start_update(ctx, stack, tpl, body, values, listing,
                      {"policy": stack.get("_policy")}, token, cs["ChangeSetId"])
    return {}


def delete_change_set(ctx, p):
    cs = _changeset(ctx, p["ChangeSetName"], p.get("StackName"))
    status, exe, _ = _cs_status(ctx, cs)
    if exe == "EXECUTE_IN_PROGRESS":
        raise AwsError("InvalidChangeSetStatus", f"ChangeSet [{cs['ChangeSetId']}] cannot be "
                       f"deleted in its current status of [{exe}]")
    del _store(ctx)["changesets"][cs["ChangeSetId"]]
    return {}


# ------------------------------------------------------------ other operations

def continue_update_rollback(ctx, p):
    stack = _stack(ctx, p["StackName"])
    if stack["StackStatus"] != "UPDATE_ROLLBACK_FAILED":
        raise V("ContinueUpdateRollback cannot be called from current stack status")
    op = stack.get("_op") or {}
    prev = op.get("prev")
    if prev is None:
        raise V("ContinueUpdateRollback cannot be called from current stack status")
    role = _role_arn(p)
    if role:
        stack["RoleARN"] = role
    skip = list(p.get("ResourcesToSkip") or [])
    for L in skip:
        rec = stack["_resources"].get(L)
        if rec is None or not (rec.get("ResourceStatus") or "").endswith("FAILED"):
            raise V(f"Nested stacks could not be rolled back: resource {L} is not in a "
                    "failed state")
    op["token"] = p.get("ClientRequestToken")
    P = Planner(ctx, stack, op["token"])
    P.stack_ev(ctx.now, "UPDATE_ROLLBACK_IN_PROGRESS", "User Initiated")
    for L in skip:
        back = dict(prev["resources"].get(L) or stack["_resources"][L], _live=True)
        P.res(ctx.now, L, "UPDATE_COMPLETE", "Resource skipped during UpdateRollback",
              record=back)
    state = P.state_after(stack)
    _plan_update_rollback(P, state, prev, ctx.now, op.get("attempt", 1) + 1, skip)
    _schedule(stack, P.entries)
    advance_stack(ctx, stack)
    return {}


def cancel_update_stack(ctx, p):
    stack = _stack(ctx, p["StackName"])
    if stack["StackStatus"] != "UPDATE_IN_PROGRESS":
        raise V("CancelUpdateStack cannot be called from current stack status")
    op = stack["_op"]
    stack["_timeline"] = []
    P = Planner(ctx, stack, op.get("token"))
    for L, rec in stack["_resources"].items():
        st = rec.get("ResourceStatus") or ""
        if st.endswith("_IN_PROGRESS"):
            fail = "CREATE_FAILED" if st.startswith("CREATE") else "UPDATE_FAILED"
            what = "creation" if st.startswith("CREATE") else "update"
            P.res(ctx.now, L, fail, f"Resource {what} cancelled")
    P.stack_ev(ctx.now, "UPDATE_ROLLBACK_IN_PROGRESS", "Stack update cancelled")
    _plan_update_rollback(P, P.state_after(stack), op["prev"], ctx.now, 1)
    _schedule(stack, P.entries)
    advance_stack(ctx, stack)
    return {}


def set_stack_policy(ctx, p):
    stack = _stack(ctx, p["StackName"])
    body = p.get("StackPolicyBody")
    if body is None and p.get("StackPolicyURL"):
        body = _fetch_url(ctx, p["StackPolicyURL"])
    try:
        json.loads(body or "")
    except ValueError:
        raise V("Error validating stack policy: Unknown error")
    stack["_policy"] = body
    return {}


def get_stack_policy(ctx, p):
    stack = _stack(ctx, p["StackName"])
    return {"StackPolicyBody": stack.get("_policy")}


def update_termination_protection(ctx, p):
    stack = _stack(ctx, p["StackName"])
    stack["EnableTerminationProtection"] = bool(p["EnableTerminationProtection"])
    return {"StackId": stack["StackId"]}


def list_exports(ctx, p):
    items = sorted(_store(ctx)["exports"].values(), key=lambda e: e["Name"])
    page, nxt = _page(ctx, "ListExports", items, p.get("NextToken"), 100)
    return {"Exports": page, "NextToken": nxt}


def list_imports(ctx, p):
    name = p["ExportName"]
    users = []
    for st in _store(ctx)["stacks"].values():
        if st["StackStatus"] != "DELETE_COMPLETE" and name in (st.get("_imports") or []):
            users.append(st["StackName"])
    if not users:
        raise V(f"Export '{name}' is not imported by any stack.")
    page, nxt = _page(ctx, "ListImports", sorted(users), p.get("NextToken"), 100)
    return {"Imports": page, "NextToken": nxt}


OPS = {"CreateStack": create_stack, "UpdateStack": update_stack, "DeleteStack": delete_stack,
       "DescribeStacks": describe_stacks, "ListStacks": list_stacks,
       "DescribeStackEvents": describe_stack_events,
       "DescribeStackResources": describe_stack_resources,
       "DescribeStackResource": describe_stack_resource,
       "ListStackResources": list_stack_resources, "GetTemplate": get_template,
       "ValidateTemplate": validate_template, "CreateChangeSet": create_change_set,
       "DescribeChangeSet": describe_change_set, "ExecuteChangeSet": execute_change_set,
       "DeleteChangeSet": delete_change_set, "ListChangeSets": list_change_sets,
       "ContinueUpdateRollback": continue_update_rollback,
       "CancelUpdateStack": cancel_update_stack, "SetStackPolicy": set_stack_policy,
       "GetStackPolicy": get_stack_policy,
       "UpdateTerminationProtection": update_termination_protection,
       "ListExports": list_exports, "ListImports": list_imports}
