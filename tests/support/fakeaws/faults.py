"""Fault injection rules: deterministic for a given --seed.

Spec: comma-separated rules  SERVICE:OPERATION:KIND[=ARG][@SELECTOR]
  SERVICE    sts, cloudformation, s3, ssm, ecr, ecs, * (fnmatch globs allowed),
             or "resource" for CloudFormation resources (OPERATION is then the
             logical id or the resource type, e.g. resource:AWS::S3::Bucket:fail)
  OPERATION  operation name (DescribeStacks, PutObject, ...) or a glob
  KIND       throttle     the protocol's throttling error (400 Throttling /
                          ThrottlingException, S3 503 SlowDown)
             500 | 503    InternalFailure / ServiceUnavailable (S3: InternalError)
             reset        headers and half the body, then a TCP reset
             truncate     full Content-Length promised, half the body sent, close
             cut          the answer (200 included) with half its body and a
                          Content-Length to match: malformed XML/JSON
             slow[=MS]    wait MS (default 2000) milliseconds, then answer
             expired      the protocol's expired-security-token error
             error=CODE[/STATUS]   any error code (default status 400)
             fail[=REASON], fail-rollback, fail-delete   (resource rules only)
  SELECTOR   N (the Nth matching call), N-M, N- (from N on), p=F (probability
             F per call, drawn from a generator seeded by --seed, the rule and
             the call number), * or nothing (every call)
Each rule counts the calls it matches (whether or not an earlier rule fired);
the first rule that fires decides the call's fault.

Chaos mode (--chaos SEED, or POST /__fake/faults {"chaos": SEED}): chaos_spec
turns a seed into 1-3 ordinary rules (so /__fake/faults shows what was
injected and how often each rule fired): the first rule's kind is
CHAOS_KINDS[SEED % 8] (so consecutive seeds cover every kind evenly), the
others' kinds, the operations (CHAOS_TARGETS) and the selectors (a
probability or a burst of consecutive calls) are drawn from a generator
seeded by SEED.  `expired` only ever hits one call or 3% of calls.
"""
import fnmatch
import random
import threading

CHAOS_KINDS = ("throttle", "500", "503", "reset", "truncate", "cut", "slow", "expired")
# What lumu up / env terminate / purge call, mutating operations included
# (their retries must be idempotent), with about how many calls of each one
# run of the bundled example makes (bursts start within that range).
CHAOS_TARGETS = (("*:*", 250), ("*:*", 250), ("cloudformation:*", 250),
                 ("cloudformation:Describe*", 180), ("cloudformation:DescribeStacks", 70),
                 ("cloudformation:DescribeStackEvents", 80),
                 ("cloudformation:DescribeChangeSet", 25), ("cloudformation:CreateChangeSet", 25),
                 ("cloudformation:ExecuteChangeSet", 16), ("cloudformation:DeleteChangeSet", 8),
                 ("cloudformation:DeleteStack", 16), ("cloudformation:SetStackPolicy", 6),
                 ("cloudformation:UpdateTerminationProtection", 12), ("ssm:*", 6), ("sts:*", 3))
CHAOS_SLOW_MS = 3000


def chaos_spec(seed, slow_ms=CHAOS_SLOW_MS):
    """The fault spec of chaos seed `seed` (an int): deterministic."""
    seed = int(seed)
    rng = random.Random(f"chaos/{seed}")
    rules = []
    for i in range(rng.choice((1, 1, 2, 2, 3))):
        kind = CHAOS_KINDS[seed % len(CHAOS_KINDS)] if i == 0 else rng.choice(CHAOS_KINDS)
        target, calls = rng.choice(CHAOS_TARGETS)
        broad = calls > 100
        if kind == "expired":
            sel = rng.choice((str(rng.randint(1, calls)), "p=0.03"))
        elif rng.random() < 0.5:
            probs = ("0.02", "0.05") if kind == "slow" and broad else ("0.05", "0.1", "0.2", "0.3")
            sel = "p=" + rng.choice(probs)
        else:
            lo = rng.randint(1, calls)
            hi = lo + rng.randint(0, 3 if kind == "slow" else 7)
            sel = f"{lo}-{hi}"
        arg = f"={int(slow_ms)}" if kind == "slow" else ""
        rules.append(f"{target}:{kind}{arg}@{sel}")
    return ",".join(rules)


SERVER_KINDS = {"throttle", "500", "503", "reset", "truncate", "cut", "slow", "expired", "error"}
RESOURCE_KINDS = {"fail", "fail-rollback", "fail-delete"}


class Rule:
    def __init__(self, text, service, operation, kind, arg, sel, lo=0, hi=0, p=0.0):
        self.text = text
        self.service = service
        self.operation = operation
        self.kind = kind
        self.arg = arg
        self.sel = sel
        self.lo, self.hi, self.p = lo, hi, p
        self.count = 0
        self.fired = 0

    def as_dict(self):
        return {"rule": self.text, "service": self.service, "operation": self.operation,
                "kind": self.kind, "arg": self.arg, "calls": self.count, "fired": self.fired}


def parse(spec):
    rules = []
    for text in (spec or "").split(","):
        text = text.strip()
        if not text:
            continue
        body, _, selector = text.partition("@")
        head, _, kindarg = body.rpartition(":")
        service, _, operation = head.partition(":")
        if not service or not operation or not kindarg:
            raise ValueError(f"bad fault rule {text!r}: want SERVICE:OPERATION:KIND[@SELECTOR]")
        kind, _, arg = kindarg.partition("=")
        if service == "resource":
            if kind not in RESOURCE_KINDS:
                raise ValueError(f"bad fault rule {text!r}: resource kinds are "
                                 f"{sorted(RESOURCE_KINDS)}")
        elif kind not in SERVER_KINDS:
            raise ValueError(f"bad fault rule {text!r}: unknown kind {kind!r}")
        if kind == "slow":
            try:
                arg = int(arg or 2000)
            except ValueError:
                raise ValueError(f"bad fault rule {text!r}: slow=MILLISECONDS")
        if kind == "error" and not arg:
            raise ValueError(f"bad fault rule {text!r}: error=CODE[/STATUS]")
        selector = selector.strip()
        try:
            if selector in ("", "*"):
                rule = Rule(text, service, operation, kind, arg, "all")
            elif selector.startswith("p="):
                p = float(selector[2:])
                if not 0 <= p <= 1:
                    raise ValueError
                rule = Rule(text, service, operation, kind, arg, "prob", p=p)
            elif "-" in selector:
                lo, _, hi = selector.partition("-")
                rule = Rule(text, service, operation, kind, arg, "range", int(lo),
                            int(hi) if hi else 1 << 62)
            else:
                n = int(selector)
                rule = Rule(text, service, operation, kind, arg, "range", n, n)
        except ValueError:
            raise ValueError(f"bad fault rule {text!r}: selector must be N, N-M, N-, p=F or *")
        rules.append(rule)
    return rules


class Faults:
    def __init__(self, spec="", seed=0):
        self.lock = threading.Lock()
        self.spec = ""
        self.seed = seed
        self.rules = []
        self.set(spec, seed)

    def set(self, spec, seed=None):
        rules = parse(spec)
        with self.lock:
            self.rules = rules
            self.spec = spec or ""
            if seed is not None:
                self.seed = seed

    def _fires(self, index, rule):
        if rule.sel == "all":
            return True
        if rule.sel == "range":
            return rule.lo <= rule.count <= rule.hi
        rng = random.Random(f"{self.seed}/{index}/{rule.text}/{rule.count}")
        return rng.random() < rule.p

    def match(self, service, operation, resource_kinds=None):
        """Count the call against every matching rule and return the first
        rule that fires (None when none does).  For CloudFormation resources
        pass service="resource", operation=[logical id, type] and the kinds
        that apply to the action being simulated."""
        names = operation if isinstance(operation, list) else [operation]
        hit = None
        with self.lock:
            for i, rule in enumerate(self.rules):
                if (service == "resource") != (rule.service == "resource"):
                    continue
                if service != "resource" and not fnmatch.fnmatchcase(service, rule.service):
                    continue
                if resource_kinds is not None and rule.kind not in resource_kinds:
                    continue
                if not any(fnmatch.fnmatchcase(n, rule.operation) for n in names):
                    continue
                rule.count += 1
                if hit is None and self._fires(i, rule):
                    rule.fired += 1
                    hit = rule
        return hit

    def describe(self):
        with self.lock:
            return {"spec": self.spec, "seed": self.seed,
                    "rules": [r.as_dict() for r in self.rules]}

    def counters(self):
        with self.lock:
            return [[r.count, r.fired] for r in self.rules]

    def restore(self, counters):
        with self.lock:
            for r, c in zip(self.rules, counters or []):
                r.count, r.fired = c
