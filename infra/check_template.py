"""Project rules for infra/template.yaml that cfn-lint and checkov do not know.

Run by scripts/check-infra.sh (optional argument: another template path) with the tools venv's Python (it uses cfn-lint's YAML
decoder, which understands the short intrinsic-function tags). Prints two summary lines
on success (rules 1-4, then rules 5-6); on failure prints every problem and exits 1.

1. Every `Metadata: checkov: skip:` entry names a check id and gives its reason.
2. EventBridge event patterns (rules and archives) are plain JSON: no intrinsic functions,
   so tests and humans can read them as they are.
3. Every variable a worker reads is set on that worker's function, and no TELEPIPE_*
   variable is set that no worker reads:
   - the function's `Metadata.BuildProperties.Binary` names workers/src/bin/<Binary>.rs;
   - the `XxxConfig::from_env` calls in that binary name the config sections it reads;
   - the "TELEPIPE_..." literals inside `impl XxxConfig` in workers/src/config.rs are
     that section's variables;
   - "TELEPIPE_..." literals anywhere else in workers/src (non-test code) and LOG_LEVEL
     (workers/src/telemetry.rs) are read by every binary.
4. Every AWS::Events::Rule's EventPattern equals the pattern declared for that resource
   in infra/event-rules.json (the single declaration the local runtime's bus also routes
   by), and every rule declared there exists in the template.
5. Audit and access (docs/audit-and-retention.md), printed as a second summary line:
   - AuditBucket has S3 Object Lock in COMPLIANCE mode with Days = AuditRetentionDays,
     versioning, no lifecycle rule, and a bucket policy denying every principal the
     deletes and retention / lifecycle changes;
   - no IAM or bucket policy statement of the template allows s3:Delete*,
     s3:PutObjectRetention, s3:PutBucketObjectLockConfiguration,
     s3:BypassGovernanceRetention or s3:PutLifecycleConfiguration on the audit bucket;
   - an AWS::Events::EventBusPolicy on the bus the platform's rule reads denies
     events:PutEvents of source telehealth.sessions to every principal but
     PlatformPrincipalArn;
   - OperatorPolicy allows no delete action (s3:DeleteObject*, dynamodb:DeleteItem,
     scheduler:DeleteSchedule, transcribe:Delete*, ...), names queues only by exact ARN
     (Fn::GetAtt of a queue of the template) and covers every DLQ and source queue;
   - BreakGlassRole (MFA trust) holds those delete actions, and no other principal does,
     except the worker grants listed in WORKER_DELETE_EXCEPTIONS, each confined to the
     DynamoDB partitions WORKER_DELETE_SCOPES names (dynamodb:LeadingKeys) where it has one.
6. Public endpoints (docs/two-way-sms.md), in the second summary line:
   - every AWS::Lambda::Permission open to Principal "*" is either lambda:InvokeFunctionUrl
     with FunctionUrlAuthType NONE or lambda:InvokeFunction with InvokedViaFunctionUrl
     true, on a function that has an AuthType NONE AWS::Lambda::Url: nobody can call
     Invoke directly;
   - every function behind an AuthType NONE URL has ReservedConcurrentExecutions (a flood
     cannot take the account's concurrency) and both permissions.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
WORKERS = ROOT / "workers" / "src"
LITERAL = re.compile(r'"(TELEPIPE_[A-Z0-9_]+)"')
TOP_LEVEL_ITEM = re.compile(r"^(pub|fn|struct|enum|mod|use|const|static|type|trait|#\[|macro_rules!)")
IMPL = re.compile(r"^impl(?:<[^>]*>)?\s+(?:[\w:<>']+\s+for\s+)?(\w+)")


def non_test_code(text: str) -> str:
    """The part of a Rust file before its `#[cfg(test)]` module."""
    return text.split("#[cfg(test)]", 1)[0]


def config_sections(config_rs: Path) -> dict[str, set[str]]:
    """Variables read inside each top-level `impl Type` block of config.rs."""
    sections: dict[str, set[str]] = {}
    current: str | None = None
    for line in non_test_code(config_rs.read_text()).splitlines():
        impl = IMPL.match(line)
        if impl:
            current = impl.group(1)
            sections.setdefault(current, set())
            continue
        if TOP_LEVEL_ITEM.match(line):
            current = None
        found = set(LITERAL.findall(line))
        if found:
            sections.setdefault(current or "<outside any impl>", set()).update(found)
    return sections


def shared_variables() -> set[str]:
    """TELEPIPE_* literals read outside config.rs (e.g. aws/mod.rs), plus LOG_LEVEL."""
    found: set[str] = {"LOG_LEVEL"}
    for path in sorted(WORKERS.rglob("*.rs")):
        # config.rs is read per section; binaries and test modules are not shared code.
        if path.name in ("config.rs", "tests.rs") or "bin" in path.relative_to(WORKERS).parts:
            continue
        found.update(LITERAL.findall(non_test_code(path.read_text())))
    return found


def has_intrinsic(value: object) -> bool:
    if isinstance(value, dict):
        return any(k == "Ref" or str(k).startswith("Fn::") or has_intrinsic(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_intrinsic(v) for v in value)
    return False


# ----- 5. audit and access -------------------------------------------------------------

# Actions that erase the audit trail or change how long it is kept.
AUDIT_FORBIDDEN = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:PutObjectRetention",
    "s3:PutBucketObjectLockConfiguration",
    "s3:BypassGovernanceRetention",
    "s3:PutLifecycleConfiguration",
)
# What the audit bucket policy must deny to every principal, unconditionally.
AUDIT_DENIED = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:BypassGovernanceRetention",
)
# Actions that erase stored data (session data, jobs, schedules).
DESTRUCTIVE = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLDelete",
    "scheduler:DeleteSchedule",
    "scheduler:DeleteScheduleGroup",
    "transcribe:DeleteMedicalTranscriptionJob",
    "transcribe:DeleteTranscriptionJob",
)
DESTRUCTIVE_PREFIXES = ("s3:deleteobject", "transcribe:delete")
# What forget needs: the break-glass role must hold each.
BREAK_GLASS_NEEDS = (
    "s3:DeleteObjectVersion",
    "dynamodb:DeleteItem",
    "scheduler:DeleteSchedule",
    "transcribe:DeleteMedicalTranscriptionJob",
)
# The only other holders of a destructive action, and why.
WORKER_DELETE_EXCEPTIONS = {
    ("SessionsFunction", "scheduler:DeleteSchedule"): "cancels its own reminder schedules",
    ("NotifierFunction", "dynamodb:DeleteItem"): "releases its own notification claims",
    ("RepliesFunction", "dynamodb:DeleteItem"): "lifts a number's suppression when it opts back in",
}
# Exceptions confined to DynamoDB partitions: every statement of the holder granting the
# action must carry a ForAllValues:StringLike / StringEquals dynamodb:LeadingKeys condition
# whose values all start with this prefix.
WORKER_DELETE_SCOPES = {
    ("RepliesFunction", "dynamodb:DeleteItem"): "suppress#",
}


def as_list(value: object) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def unwrap_if(value: object) -> list:
    """Both branches of an Fn::If (statements may be conditional), else the value."""
    if isinstance(value, dict) and list(value.keys()) == ["Fn::If"]:
        branches = value["Fn::If"][1:]
        return [b for branch in branches for b in unwrap_if(branch)]
    if isinstance(value, dict) and list(value.keys()) == ["Ref"] and value["Ref"] == "AWS::NoValue":
        return []
    return [value]


def policy_statements(resources: dict, problems: list[str]):
    """(holder, statement) for every statement of every IAM and bucket policy."""
    for name, resource in resources.items():
        kind = resource.get("Type")
        props = resource.get("Properties") or {}
        documents: list[tuple[str, object]] = []
        if kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            documents.append((name, props.get("PolicyDocument")))
        elif kind == "AWS::IAM::Role":
            for policy in as_list(props.get("Policies")):
                documents.append((name, (policy or {}).get("PolicyDocument")))
        elif kind == "AWS::S3::BucketPolicy":
            documents.append((name, props.get("PolicyDocument")))
        elif kind == "AWS::Serverless::Function":
            for policy in as_list(props.get("Policies")):
                if isinstance(policy, dict) and "Statement" in policy:
                    documents.append((name, policy))
                elif isinstance(policy, dict):
                    problems.append(
                        f"{name}: SAM policy template {sorted(policy)} is not checked by the audit "
                        "and access rules: write it as a Statement"
                    )
        for holder, document in documents:
            for statement in as_list((document or {}).get("Statement")):
                for item in unwrap_if(statement):
                    if isinstance(item, dict):
                        yield holder, item


def action_granted(statement: dict, action: str) -> bool:
    """Does the statement's Action / NotAction cover `action` (IAM wildcards)?"""
    action = action.lower()
    if "Action" in statement:
        return any(fnmatch.fnmatchcase(action, str(a).lower()) for a in as_list(statement["Action"]))
    if "NotAction" in statement:
        return not any(fnmatch.fnmatchcase(action, str(a).lower()) for a in as_list(statement["NotAction"]))
    return False


def patterns(statement: dict) -> list[str]:
    return [str(a).lower() for a in as_list(statement.get("Action"))]


def destructive_actions(statement: dict) -> set[str]:
    found = {a for a in DESTRUCTIVE if action_granted(statement, a)}
    found |= {p for p in patterns(statement) if p.startswith(DESTRUCTIVE_PREFIXES)}
    return found


def may_touch_audit_bucket(statement: dict) -> bool:
    """Conservative: named audit bucket, a wildcard bucket, or NotResource."""
    if "NotResource" in statement:
        return True
    for resource in as_list(statement.get("Resource")):
        text = json.dumps(resource)
        if re.search(r'"AuditBucket"|\$\{AuditBucket[.}]|-audit-', text):
            return True
        if text.strip('"') == "*" or "s3:::*" in text:
            return True
    return False


def leading_keys_within(statement: dict, prefix: str) -> bool:
    """Does a ForAllValues condition pin dynamodb:LeadingKeys to partitions `prefix`...?"""
    condition = statement.get("Condition") or {}
    for operator in ("ForAllValues:StringLike", "ForAllValues:StringEquals"):
        values = as_list((condition.get(operator) or {}).get("dynamodb:LeadingKeys"))
        if values and all(isinstance(v, str) and v.startswith(prefix) for v in values):
            return True
    return False


def is_getatt_of(resource: object, kinds: set[str], resources: dict) -> str | None:
    if isinstance(resource, dict) and list(resource.keys()) == ["Fn::GetAtt"]:
        target = resource["Fn::GetAtt"]
        if isinstance(target, str):
            target = target.split(".", 1)
        if len(target) == 2 and target[1] == "Arn" and resources.get(target[0], {}).get("Type") in kinds:
            return target[0]
    return None


def audit_and_access(template: dict, problems: list[str]) -> str | None:
    resources = template.get("Resources", {})
    parameters = template.get("Parameters", {})
    before = len(problems)

    # -- the audit bucket
    bucket = resources.get("AuditBucket")
    if not bucket or bucket.get("Type") != "AWS::S3::Bucket":
        problems.append("AuditBucket (AWS::S3::Bucket) is missing")
        return None
    props = bucket.get("Properties") or {}
    lock = props.get("ObjectLockConfiguration") or {}
    retention = ((lock.get("Rule") or {}).get("DefaultRetention")) or {}
    if props.get("ObjectLockEnabled") is not True or lock.get("ObjectLockEnabled") != "Enabled":
        problems.append("AuditBucket: Object Lock must be enabled (ObjectLockEnabled + ObjectLockConfiguration)")
    if retention.get("Mode") != "COMPLIANCE":
        problems.append(f"AuditBucket: default retention mode must be COMPLIANCE, not {retention.get('Mode')!r}")
    if retention.get("Days") != {"Ref": "AuditRetentionDays"} or "Years" in retention:
        problems.append("AuditBucket: default retention must be Days: !Ref AuditRetentionDays")
    if "AuditRetentionDays" not in parameters:
        problems.append("parameter AuditRetentionDays is missing")
    if ((props.get("VersioningConfiguration") or {}).get("Status")) != "Enabled":
        problems.append("AuditBucket: versioning must be enabled (Object Lock needs it)")
    if props.get("LifecycleConfiguration"):
        problems.append("AuditBucket: no lifecycle rule may expire or delete audit entries")
    if bucket.get("DeletionPolicy") != "Retain":
        problems.append("AuditBucket: DeletionPolicy must be Retain")
    audit_policies = [
        r for r in resources.values()
        if r.get("Type") == "AWS::S3::BucketPolicy"
        and (r.get("Properties") or {}).get("Bucket") == {"Ref": "AuditBucket"}
    ]
    denied: set[str] = set()
    for policy in audit_policies:
        for statement in as_list(((policy.get("Properties") or {}).get("PolicyDocument") or {}).get("Statement")):
            if statement.get("Effect") == "Deny" and statement.get("Principal") in ("*", {"AWS": "*"}) \
                    and not statement.get("Condition"):
                denied |= {a for a in AUDIT_DENIED if action_granted(statement, a)}
    missing = sorted(set(AUDIT_DENIED) - denied)
    if missing:
        problems.append(f"AuditBucket policy does not deny {missing} to every principal without condition")

    # -- no statement allows erasing or re-timing the audit trail
    checked = 0
    for holder, statement in policy_statements(resources, problems):
        checked += 1
        if statement.get("Effect") != "Allow" or not may_touch_audit_bucket(statement):
            continue
        bad = {a for a in AUDIT_FORBIDDEN if action_granted(statement, a)}
        bad |= {p for p in patterns(statement) if p.startswith("s3:delete")}
        if bad:
            problems.append(
                f"{holder}: statement {statement.get('Sid', '(no Sid)')} allows {sorted(bad)} "
                "on the audit bucket (or on any bucket)"
            )

    # -- who may publish the platform's session events
    session_buses = [
        (r.get("Properties") or {}).get("EventBusName")
        for r in resources.values()
        if r.get("Type") == "AWS::Events::Rule"
        and "telehealth.sessions" in as_list(((r.get("Properties") or {}).get("EventPattern") or {}).get("source"))
    ]
    guarded = False
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::Events::EventBusPolicy":
            continue
        props = resource.get("Properties") or {}
        statement = props.get("Statement") or {}
        condition = statement.get("Condition") or {}
        sources = as_list((condition.get("ForAnyValue:StringEquals") or {}).get("events:source"))
        principal = None
        for operator in ("ArnNotEquals", "ArnNotLike", "StringNotEquals"):
            principal = (condition.get(operator) or {}).get("aws:PrincipalArn") or principal
        if (
            props.get("EventBusName") in session_buses
            and statement.get("Effect") == "Deny"
            and statement.get("Principal") in ("*", {"AWS": "*"})
            and action_granted(statement, "events:PutEvents")
            and "telehealth.sessions" in sources
            and principal == {"Ref": "PlatformPrincipalArn"}
            and len(condition) == 2
        ):
            guarded = True
    if not session_buses:
        problems.append("no rule reads source telehealth.sessions: the bus policy check has nothing to guard")
    elif not guarded:
        problems.append(
            "no AWS::Events::EventBusPolicy on the session events' bus denies events:PutEvents with "
            "source telehealth.sessions (ForAnyValue:StringEquals events:source) to every principal "
            "but PlatformPrincipalArn (ArnNotEquals aws:PrincipalArn)"
        )
    platform = parameters.get("PlatformPrincipalArn")
    if not platform:
        problems.append("parameter PlatformPrincipalArn is missing")
    elif platform.get("Default", None) == "":
        problems.append("PlatformPrincipalArn must not default to empty (the deployer names the publisher)")

    # -- OperatorPolicy: read and replay, exact queue ARNs, no deletes
    queues = {n for n, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"}
    dlqs = {n for n in queues if n.endswith("Dlq")}
    sources_q = {n for n in queues if ((resources[n].get("Properties") or {}).get("RedrivePolicy"))}
    operator = resources.get("OperatorPolicy")
    received: set[str] = set()
    sent: set[str] = set()
    if not operator or operator.get("Type") != "AWS::IAM::ManagedPolicy":
        problems.append("OperatorPolicy (AWS::IAM::ManagedPolicy) is missing")
    else:
        document = (operator.get("Properties") or {}).get("PolicyDocument") or {}
        for statement in as_list(document.get("Statement")):
            sid = statement.get("Sid", "(no Sid)")
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement or "NotResource" in statement:
                problems.append(f"OperatorPolicy {sid}: NotAction / NotResource is not allowed here")
            bad = destructive_actions(statement)
            if bad:
                problems.append(f"OperatorPolicy {sid}: allows delete actions {sorted(bad)} (BreakGlassRole only)")
            queue_actions = [a for a in patterns(statement) if a.startswith("sqs:") and a != "sqs:listqueues"]
            if not queue_actions:
                continue
            for resource in as_list(statement.get("Resource")):
                queue = is_getatt_of(resource, {"AWS::SQS::Queue"}, resources)
                if not queue:
                    problems.append(
                        f"OperatorPolicy {sid}: queue resource {json.dumps(resource)} is not an exact "
                        "queue ARN (Fn::GetAtt <Queue>.Arn)"
                    )
                    continue
                if action_granted(statement, "sqs:ReceiveMessage"):
                    received.add(queue)
                if action_granted(statement, "sqs:SendMessage"):
                    sent.add(queue)
        if dlqs - received:
            problems.append(f"OperatorPolicy: DLQs not readable for `telepipe dlq`: {sorted(dlqs - received)}")
        if sources_q - sent:
            problems.append(f"OperatorPolicy: source queues not replayable: {sorted(sources_q - sent)}")

    # -- the break-glass role alone erases
    held: dict[str, set[str]] = {}
    scopes = {(h, a.lower()): prefix for (h, a), prefix in WORKER_DELETE_SCOPES.items()}
    for holder, statement in policy_statements(resources, []):
        if statement.get("Effect") == "Allow" and resources.get(holder, {}).get("Type") != "AWS::S3::BucketPolicy":
            actions = {a.lower() for a in destructive_actions(statement)}
            held.setdefault(holder, set()).update(actions)
            for action in sorted(actions):
                prefix = scopes.get((holder, action))
                if prefix and not leading_keys_within(statement, prefix):
                    problems.append(
                        f"{holder}: statement {statement.get('Sid', '(no Sid)')} grants {action} beyond "
                        f"the {prefix}* partitions (ForAllValues:StringLike dynamodb:LeadingKeys)"
                    )
    role = resources.get("BreakGlassRole")
    if not role or role.get("Type") != "AWS::IAM::Role":
        problems.append("BreakGlassRole (AWS::IAM::Role) is missing")
    else:
        lacking = sorted(a for a in BREAK_GLASS_NEEDS if a.lower() not in held.get("BreakGlassRole", set()))
        if lacking:
            problems.append(f"BreakGlassRole lacks {lacking} (telepipe forget --aws needs them)")
        trust = as_list(((role.get("Properties") or {}).get("AssumeRolePolicyDocument") or {}).get("Statement"))
        for statement in trust:
            mfa = ((statement.get("Condition") or {}).get("Bool") or {}).get("aws:MultiFactorAuthPresent")
            if statement.get("Effect") == "Allow" and str(mfa).lower() != "true":
                problems.append("BreakGlassRole: every trust statement must require aws:MultiFactorAuthPresent true")
    exceptions = 0
    allowed = {(h, a.lower()) for h, a in WORKER_DELETE_EXCEPTIONS}
    for holder, actions in sorted(held.items()):
        if holder == "BreakGlassRole":
            continue
        for action in sorted(actions):
            if (holder, action) in allowed:
                exceptions += 1
                continue
            problems.append(f"{holder}: holds {action}; only BreakGlassRole may erase stored data")

    if len(problems) > before:
        return None
    return (
        f"audit and access rules: ok (AuditBucket Object Lock COMPLIANCE for AuditRetentionDays, "
        f"{checked} policy statements checked, none can erase or re-time it; telehealth.sessions "
        f"only from PlatformPrincipalArn; OperatorPolicy: {len(received)} DLQs and {len(sent - received)} "
        f"source queues by exact ARN, no deletes; deletes only in BreakGlassRole (MFA) "
        f"+ {exceptions} worker exceptions)"
    )


def lambda_target(value: object) -> str | None:
    """The template function a FunctionName / TargetFunctionArn names (Ref or GetAtt Arn)."""
    if isinstance(value, dict) and list(value.keys()) == ["Ref"]:
        return str(value["Ref"])
    if isinstance(value, dict) and list(value.keys()) == ["Fn::GetAtt"]:
        target = value["Fn::GetAtt"]
        target = target.split(".", 1) if isinstance(target, str) else target
        return str(target[0]) if len(target) == 2 and target[1] == "Arn" else None
    return None


def public_endpoints(template: dict, problems: list[str]) -> str:
    """Rule 6: public invocation only through capped, AuthType NONE function URLs."""
    resources = template.get("Resources", {})
    functions = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
    open_urls: dict[str, str] = {}
    for name, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Lambda::Url" and props.get("AuthType") == "NONE":
            target = lambda_target(props.get("TargetFunctionArn"))
            if resources.get(target or "", {}).get("Type") not in functions:
                problems.append(f"{name}: public function URL whose target is not a function of the template")
                continue
            open_urls[target] = name
    granted: dict[str, set[str]] = {}
    for name, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource.get("Type") != "AWS::Lambda::Permission" or props.get("Principal") != "*":
            continue
        target = lambda_target(props.get("FunctionName"))
        action = str(props.get("Action", "")).lower()
        if action == "lambda:invokefunctionurl" and props.get("FunctionUrlAuthType") == "NONE":
            kind = "url"
        elif action == "lambda:invokefunction" and props.get("InvokedViaFunctionUrl") is True:
            kind = "invoke"
        else:
            problems.append(
                f"{name}: grants {props.get('Action')} to every principal outside a function URL "
                "(needs FunctionUrlAuthType NONE or InvokedViaFunctionUrl true)"
            )
            continue
        if target not in open_urls:
            problems.append(f"{name}: public permission on {target}, which has no AuthType NONE function URL")
            continue
        granted.setdefault(target, set()).add(kind)
    for function, url in sorted(open_urls.items()):
        props = resources[function].get("Properties") or {}
        if "ReservedConcurrentExecutions" not in props:
            problems.append(f"{function}: behind the public {url} without ReservedConcurrentExecutions")
        if granted.get(function, set()) != {"url", "invoke"}:
            problems.append(
                f"{function}: the public {url} needs both lambda:InvokeFunctionUrl (FunctionUrlAuthType "
                "NONE) and lambda:InvokeFunction (InvokedViaFunctionUrl true) for Principal *"
            )
    names = ", ".join(f"{url} -> {function}" for function, url in sorted(open_urls.items())) or "none"
    return f"public endpoints: {names} (capped concurrency, URL-only permissions)"


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE
    template, matches = decode(str(path))
    if matches or template is None:
        for match in matches:
            print(f"template does not parse: {match}")
        return 1
    resources = template.get("Resources", {})
    problems: list[str] = []

    # 1. checkov skips carry reasons
    skips = 0
    for name, resource in resources.items():
        for entry in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []:
            skips += 1
            if not isinstance(entry, dict) or not str(entry.get("id", "")).startswith("CKV"):
                problems.append(f"{name}: checkov skip without a check id: {entry!r}")
            elif len(str(entry.get("comment", "")).strip()) < 20:
                problems.append(f"{name}: checkov skip {entry['id']} has no real reason (comment)")

    # 2. plain-JSON event patterns
    patterns = 0
    for name, resource in resources.items():
        if resource.get("Type") in ("AWS::Events::Rule", "AWS::Events::Archive"):
            pattern = (resource.get("Properties") or {}).get("EventPattern")
            if pattern is None:
                continue
            patterns += 1
            if not isinstance(pattern, dict) or has_intrinsic(pattern):
                problems.append(f"{name}: EventPattern must be plain JSON (no Ref / Fn::)")

    # 4. rule patterns agree with infra/event-rules.json
    declared = {r["resource"]: r["pattern"] for r in json.loads((ROOT / "infra" / "event-rules.json").read_text())["rules"]}
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        pattern = (resource.get("Properties") or {}).get("EventPattern")
        if name not in declared:
            problems.append(f"{name}: rule not declared in infra/event-rules.json")
        elif json.loads(json.dumps(pattern)) != declared[name]:
            problems.append(f"{name}: EventPattern differs from infra/event-rules.json")
    for name in declared:
        if resources.get(name, {}).get("Type") != "AWS::Events::Rule":
            problems.append(f"infra/event-rules.json declares {name}, which the template lacks")

    # 3. environment variables per function
    sections = config_sections(WORKERS / "config.rs")
    shared = shared_variables()
    every_read: set[str] = set(shared)
    for variables in sections.values():
        every_read |= variables
    if "<outside any impl>" in sections:
        problems.append(
            "workers/src/config.rs reads "
            f"{sorted(sections['<outside any impl>'])} outside an `impl XxxConfig` block: "
            "extend infra/check_template.py to say which function needs them"
        )
    summary: list[str] = []
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = (((resource.get("Metadata") or {}).get("BuildProperties")) or {}).get("Binary")
        bin_rs = WORKERS / "bin" / f"{binary}.rs"
        if not binary or not bin_rs.is_file():
            problems.append(f"{name}: Metadata.BuildProperties.Binary {binary!r} is not a file in workers/src/bin")
            continue
        used = set(re.findall(r"\b(\w+Config)::from_env", bin_rs.read_text()))
        unknown = sorted(used - sections.keys())
        if unknown:
            problems.append(f"{name}: {bin_rs.name} reads {unknown}, not found as `impl` blocks in config.rs")
        needed = set(shared)
        for section in used & sections.keys():
            needed |= sections[section]
        env = ((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
        missing = sorted(needed - env.keys())
        stale = sorted(v for v in env if v.startswith("TELEPIPE_") and v not in every_read)
        if missing:
            problems.append(f"{name}: Environment lacks {missing} ({binary} reads them)")
        if stale:
            problems.append(f"{name}: Environment sets {stale}, which no worker reads any more")
        summary.append(f"{binary} {len(needed)}/{len(needed)}")

    # 5. audit and access; 6. public endpoints
    access_summary = audit_and_access(template, problems)
    endpoints_summary = public_endpoints(template, problems)

    if problems:
        for problem in problems:
            print(f"{path}: {problem}")
        return 1
    print(
        f"template rules: ok ({skips} checkov skips with reasons, {patterns} plain event patterns "
        f"({len(declared)} rules as in event-rules.json), "
        f"worker variables set: {', '.join(summary)})"
    )
    print(f"{access_summary}; {endpoints_summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
