"""ECS: DescribeClusters, DescribeServices, ListTasks, DescribeTasks, RunTask,
StopTask.

Services roll out over simulated time: a deployment is IN_PROGRESS with
pending tasks, then (after ecs_stabilize_ms x time_scale) COMPLETED with
runningCount == desiredCount, the older deployment drained and the usual
service events ("has started N tasks", "deployment completed", "has reached
a steady state").  Flags per service (seed "flags" or CloudFormation
Metadata {"fake:ecs": {...}}):
  never_stable: true   the deployment never completes (hung-deploy tests):
                       pending tasks, "unable to place a task" events
  fail: true           the circuit breaker fails the deployment (FAILED)
  stabilize_ms: N      this service's own rollout time
RunTask tasks go PROVISIONING -> PENDING -> RUNNING -> STOPPED after
task_run_ms; a container override or task definition environment variable
FAKEAWS_EXIT_CODE sets the exit code, FAKEAWS_RUN_MS the run time ("never":
keeps running until StopTask).
"""
import hashlib

from .protocol import AwsError


def _store(world, account, region):
    s = world.store(account, region, "ecs")
    for k in ("clusters", "services", "tasks", "taskdefs"):
        s.setdefault(k, {})
    return s


def _hex(*parts, n=32):
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:n]


def _cluster_name(ref):
    return ref.rsplit("/", 1)[-1] if ref and ref.startswith("arn:") else (ref or "default")


def _scale(world, ms):
    return float(ms) / 1000.0 * float(world.config.get("time_scale", 1.0))


# ------------------------------------------------------------ records

def make_cluster(world, account, region, name, now, tags=None):
    s = _store(world, account, region)
    s["clusters"][name] = {
        "clusterArn": f"arn:aws:ecs:{region}:{account}:cluster/{name}", "clusterName": name,
        "status": "ACTIVE", "registeredContainerInstancesCount": 0, "runningTasksCount": 0,
        "pendingTasksCount": 0, "activeServicesCount": 0, "statistics": [],
        "tags": tags or [], "settings": [{"name": "containerInsights", "value": "disabled"}],
        "capacityProviders": [], "defaultCapacityProviderStrategy": []}
    return s["clusters"][name]


def delete_cluster(world, account, region, name):
    c = _store(world, account, region)["clusters"].get(name)
    if c:
        c["status"] = "INACTIVE"


def register_taskdef(world, account, region, family, containers, now, extra=None):
    s = _store(world, account, region)
    revs = s["taskdefs"].setdefault(family, [])
    rev = len(revs) + 1
    td = {"taskDefinitionArn": f"arn:aws:ecs:{region}:{account}:task-definition/{family}:{rev}",
          "family": family, "revision": rev, "status": "ACTIVE",
          "containerDefinitions": containers, "registeredAt": now}
    td.update(extra or {})
    revs.append(td)
    return td


def _taskdef(s, ref):
    name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
    family, _, rev = name.partition(":")
    revs = s["taskdefs"].get(family)
    if not revs:
        return None
    if rev:
        return revs[int(rev) - 1] if rev.isdigit() and 0 < int(rev) <= len(revs) else None
    return revs[-1]


def put_service(world, account, region, cluster, name, now, taskdef, desired=1,
                launch_type="FARGATE", flags=None, extra=None):
    """Create a service or start a new deployment of it."""
    s = _store(world, account, region)
    if cluster not in s["clusters"]:
        make_cluster(world, account, region, cluster, now)
    key = f"{cluster}/{name}"
    svc = s["services"].get(key)
    if svc is None or svc["status"] != "ACTIVE":
        svc = {"serviceArn": f"arn:aws:ecs:{region}:{account}:service/{cluster}/{name}",
               "serviceName": name, "clusterArn": s["clusters"][cluster]["clusterArn"],
               "loadBalancers": [], "serviceRegistries": [], "status": "ACTIVE",
               "desiredCount": desired, "runningCount": 0, "pendingCount": 0,
               "launchType": launch_type, "taskDefinition": taskdef,
               "deploymentConfiguration": {
                   "deploymentCircuitBreaker": {"enable": False, "rollback": False},
                   "maximumPercent": 200, "minimumHealthyPercent": 100},
               "deployments": [], "events": [], "createdAt": now, "placementConstraints": [],
               "placementStrategy": [], "schedulingStrategy": "REPLICA",
               "enableECSManagedTags": False, "propagateTags": "NONE",
               "enableExecuteCommand": False, "_history": [], "_flags": {}}
        s["services"][key] = svc
    svc["_flags"] = dict(flags if flags is not None else (svc.get("_flags") or {}))
    svc.update(extra or {})
    svc["desiredCount"] = desired
    svc["taskDefinition"] = taskdef
    svc["launchType"] = launch_type
    dep_id = "ecs-svc/" + str(int(_hex(key, len(svc["_history"]), now, n=15), 16))[:19]
    stab = _scale(world, svc["_flags"].get("stabilize_ms",
                                           world.config.get("ecs_stabilize_ms", 300)))
    svc["_history"].append({"id": dep_id, "t0": now, "stab": stab, "desired": desired,
                            "taskDefinition": taskdef, "launchType": launch_type,
                            "never": bool(svc["_flags"].get("never_stable")),
                            "fail": bool(svc["_flags"].get("fail"))})
    refresh_service(world, account, region, svc, now)
    return svc


def delete_service(world, account, region, cluster, name, now):
    s = _store(world, account, region)
    svc = s["services"].get(f"{cluster}/{name}")
    if svc:
        svc["status"] = "INACTIVE"
        svc["desiredCount"] = 0
        svc["_deleted"] = now
        for t in s["tasks"].values():
            if t.get("_service") == f"{cluster}/{name}" and t["desiredStatus"] != "STOPPED":
                _stop(t, now, "Scaling activity initiated by (deployment deleted)",
                      "ServiceSchedulerInitiated")


def _stop(task, at, reason, code):
    task["desiredStatus"] = "STOPPED"
    task["_timeline"] = [e for e in task["_timeline"] if e[0] <= at]
    task["_timeline"].append([at, "DEPROVISIONING"])
    task["_timeline"].append([at + 0.001, "STOPPED"])
    task["stoppedReason"] = reason
    task["stopCode"] = code
    if task.get("_exit") is None:
        task["_exit"] = 137
    task["_stop_at"] = at


def _new_task(world, account, region, cluster, td, now, timeline, group, started_by,
              exit_code, service=None, overrides=None, launch_type="FARGATE"):
    s = _store(world, account, region)
    tid = _hex(cluster, td["taskDefinitionArn"], now, len(s["tasks"]))
    arn = f"arn:aws:ecs:{region}:{account}:task/{cluster}/{tid}"
    containers = [{"containerArn": f"arn:aws:ecs:{region}:{account}:container/{cluster}/{tid}/"
                                   + _hex(tid, c.get("name"), n=36),
                   "taskArn": arn, "name": c.get("name", "app"), "image": c.get("image", ""),
                   "lastStatus": "PENDING", "networkInterfaces": []}
                  for c in td["containerDefinitions"] or [{"name": "app"}]]
    task = {"taskArn": arn, "clusterArn": f"arn:aws:ecs:{region}:{account}:cluster/{cluster}",
            "taskDefinitionArn": td["taskDefinitionArn"], "lastStatus": "PROVISIONING",
            "desiredStatus": "RUNNING", "createdAt": now, "group": group,
            "launchType": launch_type, "containers": containers, "cpu": "256", "memory": "512",
            "version": 1, "availabilityZone": f"{region}a",
            "overrides": overrides or {"containerOverrides": []}, "_timeline": timeline,
            "_exit": exit_code, "_service": service}
    if started_by:
        task["startedBy"] = started_by
    s["tasks"][tid] = task
    return task


def _task_view(task, now):
    status = "PROVISIONING"
    for t, st in task["_timeline"]:
        if t <= now:
            status = st
    out = {k: v for k, v in task.items() if not k.startswith("_")}
    out["lastStatus"] = status
    started = next((t for t, st in task["_timeline"] if st == "RUNNING" and t <= now), None)
    if started is not None:
        out["startedAt"] = started
        out["pullStartedAt"] = task["createdAt"]
        out["pullStoppedAt"] = started
    if status in ("DEPROVISIONING", "STOPPED"):
        out["desiredStatus"] = "STOPPED"
    if status == "STOPPED":
        stop = next(t for t, st in task["_timeline"] if st == "STOPPED")
        out["stoppedAt"] = stop
        out["stoppingAt"] = task.get("_stop_at", stop)
        out["executionStoppedAt"] = stop
        out.setdefault("stopCode", "EssentialContainerExited")
        out.setdefault("stoppedReason", "Essential container in task exited")
    elif not task.get("_stop_at"):
        for k in ("stopCode", "stoppedReason"):
            out.pop(k, None)
    containers = []
    for c in task["containers"]:
        c = dict(c)
        c["lastStatus"] = {"PROVISIONING": "PENDING", "PENDING": "PENDING",
                           "ACTIVATING": "PENDING", "RUNNING": "RUNNING",
                           "DEPROVISIONING": "STOPPED", "STOPPED": "STOPPED"}.get(status,
                                                                                  "PENDING")
        if status == "STOPPED" and task.get("_exit") is not None:
            c["exitCode"] = int(task["_exit"])
        containers.append(c)
    out["containers"] = containers
    return out


# ------------------------------------------------------------ rollout

def refresh_service(world, account, region, svc, now):
    s = _store(world, account, region)
    key = svc["serviceArn"].split(":service/", 1)[1]
    cluster = key.split("/")[0]
    history = svc["_history"]
    deployments, events = [], []
    name = svc["serviceName"]
    for i, d in enumerate(history):
        newer = history[i + 1] if i + 1 < len(history) else None
        done_at = d["t0"] + d["stab"]
        later_done = [x for x in history[i + 1:] if not x["never"] and not x["fail"] and
                      now >= x["t0"] + x["stab"]]
        newer_done = bool(later_done)
        if later_done:
            newer = min(later_done, key=lambda x: x["t0"] + x["stab"])
        td = _taskdef(s, d["taskDefinition"]) or {"taskDefinitionArn": d["taskDefinition"],
                                                  "containerDefinitions": [{"name": "app"}]}
        # tasks of this deployment
        if "tasks" not in d:
            d["tasks"] = []
            for n in range(int(d["desired"])):
                run = 1e18 if (d["never"] or d["fail"]) else done_at
                tl = [[d["t0"], "PROVISIONING"], [d["t0"] + d["stab"] * 0.3, "PENDING"]]
                if run < 1e17:
                    tl.append([run, "RUNNING"])
                t = _new_task(world, account, region, cluster, td, d["t0"], tl,
                              f"service:{name}", d["id"], None, service=key,
                              launch_type=d["launchType"])
                d["tasks"].append(t["taskArn"].rsplit("/", 1)[1])
            if d["tasks"]:
                events.append((d["t0"] + d["stab"] * 0.1, f"(service {name}) has started "
                               f"{len(d['tasks'])} tasks: " + " ".join(
                                   f"(task {t})" for t in d["tasks"]) + "."))
        if newer_done or svc["status"] != "ACTIVE":
            stop_at = (newer["t0"] + newer["stab"]) if newer_done else svc.get("_deleted", now)
            for tid in d["tasks"]:
                t = s["tasks"].get(tid)
                if t and t["desiredStatus"] != "STOPPED":
                    _stop(t, stop_at, "Scaling activity initiated by (deployment "
                          f"{newer['id'] if newer else d['id']})", "ServiceSchedulerInitiated")
            continue
        started = [tid for tid in d["tasks"] if tid in s["tasks"]]
        running = sum(1 for tid in started
                      if _task_view(s["tasks"][tid], now)["lastStatus"] == "RUNNING")
        pending = len(started) - running
        status = "PRIMARY" if newer is None else "ACTIVE"
        rollout, reason = "IN_PROGRESS", f"ECS deployment {d['id']} in progress."
        failed = 0
        if d["fail"] and now >= done_at:
            rollout = "FAILED"
            reason = "ECS deployment circuit breaker: tasks failed to start."
            failed = int(d["desired"]) * 2 or 1
        elif d["never"]:
            periods = int(min(20, max(0, (now - d["t0"]) // max(d["stab"], 0.001))))
            failed = periods
            for k in range(1, periods + 1):
                events.append((d["t0"] + k * d["stab"], f"(service {name}) was unable to place "
                               "a task because no container instance met all of its "
                               "requirements."))
        elif now >= done_at:
            rollout, reason = "COMPLETED", f"ECS deployment {d['id']} completed."
        if status == "PRIMARY" and rollout == "COMPLETED":
            events.append((done_at, f"(service {name}) deployment {d['id']} deployment "
                           "completed."))
            events.append((done_at + 0.0005, f"(service {name}) has reached a steady state."))
        deployments.insert(0, {
            "id": d["id"], "status": status, "taskDefinition": d["taskDefinition"],
            "desiredCount": int(d["desired"]) if status == "PRIMARY" else 0,
            "pendingCount": pending, "runningCount": running, "failedTasks": failed,
            "createdAt": d["t0"], "updatedAt": min(now, max(d["t0"], done_at)),
            "launchType": d["launchType"], "rolloutState": rollout,
            "rolloutStateReason": reason})
    svc["deployments"] = deployments
    svc["runningCount"] = sum(d["runningCount"] for d in deployments)
    svc["pendingCount"] = sum(d["pendingCount"] for d in deployments)
    events = [e for e in events if e[0] <= now]
    events.sort(key=lambda e: e[0], reverse=True)
    svc["events"] = [{"id": _hex(key, t, msg, n=36), "createdAt": t, "message": msg}
                     for t, msg in events[:100]]


def advance(world, now):
    pass  # ECS state is computed when it is read


def _refresh_all(ctx):
    s = _store(ctx.world, ctx.account, ctx.region)
    for svc in s["services"].values():
        if svc["status"] == "ACTIVE" or svc.get("_deleted", 0) > ctx.now - 3600:
            refresh_service(ctx.world, ctx.account, ctx.region, svc, ctx.now)
    return s


def _cluster(ctx, s, ref):
    name = _cluster_name(ref)
    c = s["clusters"].get(name)
    if c is None or c["status"] != "ACTIVE":
        raise AwsError("ClusterNotFoundException", "Cluster not found.")
    return name, c


# ------------------------------------------------------------ operations

def describe_clusters(ctx, p):
    s = _refresh_all(ctx)
    out, failures = [], []
    for ref in p.get("clusters") or ["default"]:
        name = _cluster_name(ref)
        c = s["clusters"].get(name)
        if c is None:
            failures.append({"arn": f"arn:aws:ecs:{ctx.region}:{ctx.account}:cluster/{name}",
                             "reason": "MISSING"})
            continue
        c = dict(c)
        tasks = [_task_view(t, ctx.now) for t in s["tasks"].values()
                 if t["clusterArn"] == c["clusterArn"]]
        c["runningTasksCount"] = sum(1 for t in tasks if t["lastStatus"] == "RUNNING")
        c["pendingTasksCount"] = sum(1 for t in tasks
                                     if t["lastStatus"] in ("PROVISIONING", "PENDING"))
        c["activeServicesCount"] = sum(1 for k, v in s["services"].items()
                                       if k.startswith(name + "/") and v["status"] == "ACTIVE")
        if "TAGS" not in (p.get("include") or []):
            c.pop("tags", None)
        out.append(c)
    return {"clusters": out, "failures": failures}


def describe_services(ctx, p):
    s = _refresh_all(ctx)
    cluster, _ = _cluster(ctx, s, p.get("cluster"))
    out, failures = [], []
    for ref in p["services"]:
        name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
        svc = s["services"].get(f"{cluster}/{name}")
        if svc is None:
            failures.append({"arn": f"arn:aws:ecs:{ctx.region}:{ctx.account}:service/"
                                    f"{cluster}/{name}", "reason": "MISSING"})
            continue
        out.append({k: v for k, v in svc.items() if not k.startswith("_")})
    return {"services": out, "failures": failures}


def _task_id(ref):
    return ref.rsplit("/", 1)[-1]


def list_tasks(ctx, p):
    s = _refresh_all(ctx)
    cluster, c = _cluster(ctx, s, p.get("cluster"))
    want = p.get("desiredStatus", "RUNNING")
    arns = []
    for tid, t in s["tasks"].items():
        if t["clusterArn"] != c["clusterArn"]:
            continue
        v = _task_view(t, ctx.now)
        if v["desiredStatus"] != want:
            continue
        if p.get("serviceName") and t.get("_service") != f"{cluster}/{p['serviceName']}":
            continue
        if p.get("startedBy") and t.get("startedBy") != p["startedBy"]:
            continue
        if p.get("family") and f"task-definition/{p['family']}:" not in t["taskDefinitionArn"]:
            continue
        arns.append(t["taskArn"])
    if p.get("serviceName") and f"{cluster}/{p['serviceName']}" not in s["services"]:
        raise AwsError("ServiceNotFoundException", "Service not found.")
    size = min(int(p.get("maxResults") or 100), ctx.page_size("ListTasks", 100))
    start = int(p.get("nextToken") or 0)
    out = {"taskArns": arns[start:start + size]}
    if start + size < len(arns):
        out["nextToken"] = str(start + size)
    return out


def describe_tasks(ctx, p):
    s = _refresh_all(ctx)
    cluster, c = _cluster(ctx, s, p.get("cluster"))
    out, failures = [], []
    for ref in p["tasks"]:
        t = s["tasks"].get(_task_id(ref))
        if t is None or t["clusterArn"] != c["clusterArn"]:
            failures.append({"arn": ref if ref.startswith("arn:") else
                             f"arn:aws:ecs:{ctx.region}:{ctx.account}:task/{cluster}/{ref}",
                             "reason": "MISSING"})
            continue
        out.append(_task_view(t, ctx.now))
    return {"tasks": out, "failures": failures}


def _env(overrides, td):
    env = {}
    for c in td.get("containerDefinitions", []):
        for e in c.get("environment", []) or []:
            env[e.get("name")] = e.get("value")
    for c in (overrides or {}).get("containerOverrides", []) or []:
        for e in c.get("environment", []) or []:
            env[e.get("name")] = e.get("value")
    return env


def run_task(ctx, p):
    s = _refresh_all(ctx)
    cluster, _ = _cluster(ctx, s, p.get("cluster"))
    td = _taskdef(s, p["taskDefinition"])
    if td is None:
        raise AwsError("ClientException", "TaskDefinition not found.")
    count = int(p.get("count") or 1)
    if not 1 <= count <= 10:
        raise AwsError("InvalidParameterException", "count must be between 1 and 10.")
    env = _env(p.get("overrides"), td)
    try:
        exit_code = int(env.get("FAKEAWS_EXIT_CODE", 0))
    except ValueError:
        exit_code = 1
    run_ms = env.get("FAKEAWS_RUN_MS", ctx.world.config.get("task_run_ms", 300))
    step = ctx.seconds(ctx.world.config.get("ecs_stabilize_ms", 300)) / 3
    tasks = []
    for i in range(count):
        t0 = ctx.now
        tl = [[t0, "PROVISIONING"], [t0 + step, "PENDING"], [t0 + 2 * step, "RUNNING"]]
        if str(run_ms) != "never":
            end = t0 + 2 * step + ctx.seconds(float(run_ms))
            tl += [[end, "DEPROVISIONING"], [end + step / 10, "STOPPED"]]
        t = _new_task(ctx.world, ctx.account, ctx.region, cluster, td, t0, tl,
                      p.get("group") or f"family:{td['family']}", p.get("startedBy"),
                      exit_code, overrides=p.get("overrides"),
                      launch_type=p.get("launchType") or "FARGATE")
        if str(run_ms) != "never":
            t["desiredStatus"] = "RUNNING"
        tasks.append(_task_view(t, ctx.now))
    return {"tasks": tasks, "failures": []}


def stop_task(ctx, p):
    s = _refresh_all(ctx)
    cluster, c = _cluster(ctx, s, p.get("cluster"))
    t = s["tasks"].get(_task_id(p["task"]))
    if t is None or t["clusterArn"] != c["clusterArn"]:
        raise AwsError("InvalidParameterException", "The referenced task was not found.")
    if _task_view(t, ctx.now)["lastStatus"] != "STOPPED":
        _stop(t, ctx.now, p.get("reason") or "Task stopped by user", "UserInitiated")
        t["_exit"] = 137 if t.get("_exit") in (None, 0) else t["_exit"]
    return {"task": _task_view(t, ctx.now)}


def seed(world, account, region, data):
    now = world.now()
    for c in data.get("clusters", []):
        make_cluster(world, account, region, c if isinstance(c, str) else c["clusterName"], now)
    for td in data.get("taskDefinitions", []):
        register_taskdef(world, account, region, td["family"],
                         td.get("containerDefinitions", [{"name": "app", "image": "app"}]), now)
    for svc in data.get("services", []):
        cluster = _cluster_name(svc.get("cluster", "default"))
        taskdef = svc.get("taskDefinition")
        if not taskdef:
            fam = svc["serviceName"]
            taskdef = register_taskdef(world, account, region, fam,
                                       [{"name": "app", "image": "app"}], now)[
                "taskDefinitionArn"]
        put_service(world, account, region, cluster, svc["serviceName"], now, taskdef,
                    int(svc.get("desiredCount", 1)), svc.get("launchType", "FARGATE"),
                    svc.get("flags"))


OPS = {"DescribeClusters": describe_clusters, "DescribeServices": describe_services,
       "ListTasks": list_tasks, "DescribeTasks": describe_tasks, "RunTask": run_task,
       "StopTask": stop_task}
