"""Project rules for infra/template.yaml that cfn-lint and checkov do not know.

Run by scripts/check-infra.sh with the tools venv's Python (it uses cfn-lint's YAML decoder,
which understands the short intrinsic-function tags):

    check_template.py [TEMPLATE] [--layout PerStage|Router ...] [--workers DIR]

TEMPLATE defaults to infra/template.yaml; --workers (default workers/src) is the Rust source
rule 3 reads, e.g. a small fake tree in a test. Rules 1, 2 and 4 look at the template as
written; rules 3, 5, 6 and 7 run once per FunctionLayout value (--layout, default: every
AllowedValue), on the template as that layout deploys it: resources whose Condition is false
for it are left out, and every Fn::If on a condition it decides takes its branch (conditions
on other parameters stay open: both branches are checked, as before). On success prints one
summary line for rules 1, 2 and 4 and two per layout (rules 3 and 7; rules 5 and 6); on
failure prints every problem and exits 1.

1. Every `Metadata: checkov: skip:` entry names a check id and gives its reason.
2. EventBridge event patterns (rules and archives) are plain JSON: no intrinsic functions,
   so tests and humans can read them as they are.
3. Every variable a function's stage(s) read is set on it, and nothing else TELEPIPE_*:
   - config sections: each top-level `impl <Name>` block whose type name ends in `Config`,
     in any non-test .rs file under workers/src (not bin/); the "TELEPIPE_..." string
     literals inside it are that section's variables. Non-test: files named tests.rs or
     under a tests/ folder, and every item carrying #[cfg(test)], are skipped;
   - a stage's sections: the `XxxConfig::from_env(` calls in the body of
     `fn build_<stage>(` (stage name, `-` as `_`) in workers/src/lambda/stages.rs, and
     through every other `Type::from_env(` call there, those in `fn from_env` of that
     type's top-level impl blocks (e.g. a consumer wrapper reading ConsumerConfig);
   - shared variables, read by every stage: "TELEPIPE_..." literals anywhere else in
     non-test workers/src code outside bin/, plus LOG_LEVEL (workers/src/telemetry.rs),
     except TELEPIPE_STAGE, which only the telepipe-lambda binary reads; literals in
     workers/src/bin/<Binary>.rs are read by that binary's functions;
   - a function's stage: its `Metadata.BuildProperties.Binary` (workers/src/bin/<Binary>.rs
     must exist); for Binary telepipe-lambda, its TELEPIPE_STAGE: one stage name, or `auto`
     for the SQS stages intake, clinical, sessions, notifier, capture, replies;
   - with TELEPIPE_STAGE auto a section variable TELEPIPE_X may instead be set for one stage
     as TELEPIPE_{STAGE}__X (STAGE upper-cased, `-` as `_`), which that stage reads first;
     a scoped variable must be a section variable of a stage the function serves, and
     shared variables are set unscoped (they are not read through a stage's scope);
   - derived variables (DERIVED): with TELEPIPE_STAGE auto, TELEPIPE_DLQ_URL may be unset
     for a stage where TELEPIPE_DLQ_SUFFIX is set (scoped or not): that stage's DLQ URL is
     then its TELEPIPE_QUEUE_URL + the suffix. A suffix must be used by some stage (an
     explicit TELEPIPE_DLQ_URL wins), and is set on no other function: per-stage functions
     name their DLQ;
   - no unscoped TELEPIPE_* variable is set that none of the function's stages reads;
   - parity with the per-stage layout: a telepipe-lambda function gives every variable its
     stages read the value the function of that stage's own binary has (unset = '': a
     variable that function sets to a blank literal may be left unset); a derived DLQ URL
     matches when the stage's queue is a queue of the template (Ref, or Fn::GetAtt
     QueueUrl) whose QueueName + the suffix is the QueueName of the queue the per-stage
     function's TELEPIPE_DLQ_URL names (plain string or Fn::Sub, compared as written); one
     serving a single stage has that function's properties but for its description; the
     `auto` one has their SQS events, at least their timeout and memory (parameter
     defaults), and their IAM statements, unchanged, but for the `ConfineSqsPollingToOwnQueue`
     Deny, replaced by one Deny for all its queues;
   - every SQS event's queue has a VisibilityTimeout of at least the function's Timeout
     (Lambda refuses the event source otherwise).
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
7. Every function's environment fits Lambda's 4 KB (4,096 bytes of the variables as compact
   JSON, names included, as Lambda measures them), estimated for long names: NamePrefix of
   20 characters, a 14-character region, generated role names of 64 characters, the other
   parameters at their defaults, and the longer branch of every open Fn::If. A function
   listed in ENV_SIZE_KNOWN_OVER (with its reason; none today) is reported as a WARNING
   while it is over, and is a problem once it fits.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
WORKERS = ROOT / "workers" / "src"
VARIABLE = re.compile(r"TELEPIPE_[A-Z0-9_]+")
FROM_ENV = re.compile(r"\b(\w+)::from_env\s*\(")
IMPL = re.compile(r"^impl(?:<[^>{]*>)?\s+(?:[\w:<>', ]+?\s+for\s+)?(?:[\w]+::)*(\w+)", re.M)
CFG_TEST = re.compile(r"#\[cfg\(test\)\]")

# The router (workers/src/lambda/, workers/src/bin/telepipe-lambda.rs).
ROUTER_BINARY = "telepipe-lambda"
STAGE_VARIABLE = "TELEPIPE_STAGE"
SQS_STAGES = ("intake", "clinical", "sessions", "notifier", "capture", "replies")
STAGES = SQS_STAGES + ("sweeper", "sms-inbound")
AUTO = "auto"
STAGES_RS = Path("lambda") / "stages.rs"
LAYOUT_PARAMETER = "FunctionLayout"
# The per-stage statement the router replaces by one Deny for all of its queues.
CONFINE_SID = "ConfineSqsPollingToOwnQueue"
SQS_POLLING = {"sqs:receivemessage", "sqs:deletemessage", "sqs:getqueueattributes"}


def scope(stage: str) -> str:
    """TELEPIPE_{scope}__X is the router's value of TELEPIPE_X for this stage."""
    return stage.upper().replace("-", "_")


# ----- Rust source (rule 3) ---------------------------------------------------------------


class RustFile:
    """A Rust file with comments and literals blanked out (same offsets), its string
    literals, and the spans of its #[cfg(test)] items."""

    def __init__(self, text: str):
        self.text = text
        self.code, self.strings = self._mask(text)
        self.test_spans = self._test_spans()

    @staticmethod
    def _mask(text: str) -> tuple[str, list[tuple[int, str]]]:
        out = list(text)
        strings: list[tuple[int, str]] = []
        i, n = 0, len(text)

        def blank(a: int, b: int) -> None:
            for k in range(a, min(b, n)):
                if out[k] != "\n":
                    out[k] = " "

        while i < n:
            c = text[i]
            if text.startswith("//", i):
                j = text.find("\n", i)
                j = n if j < 0 else j
                blank(i, j)
                i = j
            elif text.startswith("/*", i):
                depth, j = 1, i + 2
                while j < n and depth:
                    if text.startswith("/*", j):
                        depth, j = depth + 1, j + 2
                    elif text.startswith("*/", j):
                        depth, j = depth - 1, j + 2
                    else:
                        j += 1
                blank(i, j)
                i = j
            elif (raw := re.match(r'b?r(#*)"', text[i : i + 260])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
                close = '"' + raw.group(1)
                start = i + raw.end()
                j = text.find(close, start)
                j = n if j < 0 else j
                strings.append((i, text[start:j]))
                blank(i, j + len(close))
                i = j + len(close)
            elif c == '"' or (c == "b" and text.startswith('b"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
                start = i + (2 if c == "b" else 1)
                j = start
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                strings.append((i, text[start:j]))
                blank(i, j + 1)
                i = j + 1
            elif c == "'":
                # A char literal ('x', '\n', '\u{7f}', '{'), or a lifetime ('a), left alone.
                if text.startswith("\\", i + 1):
                    j = i + 2
                    while j < n and text[j] != "'":
                        j += 1
                    blank(i, j + 1)
                    i = j + 1
                elif i + 2 < n and text[i + 2] == "'":
                    blank(i, i + 3)
                    i += 3
                else:
                    i += 1
            else:
                i += 1
        return "".join(out), strings

    def matching(self, open_at: int) -> int:
        """Offset just past the brace closing the one at `open_at` (in code)."""
        depth = 0
        for k in range(open_at, len(self.code)):
            if self.code[k] == "{":
                depth += 1
            elif self.code[k] == "}":
                depth -= 1
                if depth == 0:
                    return k + 1
        return len(self.code)

    def item_end(self, start: int) -> int:
        """End of the item starting at `start`: its `;` or its closing brace."""
        semi = self.code.find(";", start)
        brace = self.code.find("{", start)
        if brace < 0 or (0 <= semi < brace):
            return len(self.code) if semi < 0 else semi + 1
        return self.matching(brace)

    def _test_spans(self) -> list[tuple[int, int]]:
        return [(m.start(), self.item_end(m.end())) for m in CFG_TEST.finditer(self.code)]

    def in_test(self, offset: int) -> bool:
        return any(a <= offset < b for a, b in self.test_spans)

    def variables(self, start: int = 0, end: int | None = None) -> set[str]:
        """The "TELEPIPE_..." string literals in [start, end) outside test items."""
        end = len(self.text) if end is None else end
        return {
            value
            for at, value in self.strings
            if start <= at < end and VARIABLE.fullmatch(value) and not self.in_test(at)
        }

    def impls(self) -> list[tuple[str, int, int]]:
        """(type name, start, end) of each top-level `impl` block outside test items."""
        found = []
        for m in IMPL.finditer(self.code):
            if self.in_test(m.start()):
                continue
            brace = self.code.find("{", m.end())
            if brace >= 0:
                found.append((m.group(1), m.start(), self.matching(brace)))
        return found

    def fn_body(self, name: str, start: int = 0, end: int | None = None) -> str | None:
        """The code (literals blanked) of the body of `fn name(` in [start, end), if any."""
        end = len(self.code) if end is None else end
        m = re.compile(r"\bfn\s+%s\s*[(<]" % re.escape(name)).search(self.code, start, end)
        if not m or self.in_test(m.start()):
            return None
        paren = self.code.find("(", m.start())
        depth, k = 0, paren
        while k < len(self.code):
            depth += {"(": 1, ")": -1}.get(self.code[k], 0)
            if depth == 0:
                break
            k += 1
        brace = self.code.find("{", k)
        return None if brace < 0 else self.code[brace : self.matching(brace)]


def is_test_file(path: Path, workers: Path) -> bool:
    parts = path.relative_to(workers).parts
    return path.name == "tests.rs" or "tests" in parts[:-1]


class Source:
    """What rule 3 knows of workers/src: config sections, shared variables, stages."""

    def __init__(self, workers: Path):
        self.workers = workers
        self.sections: dict[str, set[str]] = {}
        self.section_files: dict[str, str] = {}
        self.shared: set[str] = {"LOG_LEVEL"}
        self.problems: list[str] = []
        # Every other top-level impl block: `Type::from_env(` calls are followed through it.
        self.impls: dict[str, list[tuple[RustFile, int, int]]] = {}
        for path in sorted(workers.rglob("*.rs")):
            relative = path.relative_to(workers)
            if is_test_file(path, workers) or relative.parts[0] == "bin":
                continue
            rust = RustFile(path.read_text())
            inside: list[tuple[int, int]] = []
            for name, start, end in rust.impls():
                if not name.endswith("Config"):
                    self.impls.setdefault(name, []).append((rust, start, end))
                    continue
                self.sections.setdefault(name, set()).update(rust.variables(start, end))
                self.section_files[name] = str(relative)
                inside.append((start, end))
            self.shared |= {
                value
                for at, value in rust.strings
                if VARIABLE.fullmatch(value)
                and not rust.in_test(at)
                and not any(a <= at < b for a, b in inside)
            }
        self.shared.discard(STAGE_VARIABLE)
        stages_rs = workers / STAGES_RS
        self.stages_rust = RustFile(stages_rs.read_text()) if stages_rs.is_file() else None

    def binary(self, binary: str) -> RustFile | None:
        path = self.workers / "bin" / f"{binary}.rs"
        return RustFile(path.read_text()) if path.is_file() else None

    def sections_read(self, code: str, seen: set[str] | None = None) -> set[str]:
        """The sections `code` reads: its `XxxConfig::from_env(` calls, and those of the
        `from_env` of every other type it calls `Type::from_env(` on (e.g. a consumer
        wrapper reading ConsumerConfig), followed through that type's impl blocks."""
        seen = set() if seen is None else seen
        found: set[str] = set()
        for name in FROM_ENV.findall(code):
            if name.endswith("Config"):
                found.add(name)
            elif name not in seen:
                seen.add(name)
                for rust, start, end in self.impls.get(name, []):
                    body = rust.fn_body("from_env", start, end)
                    if body is not None:
                        found |= self.sections_read(body, seen)
        return found

    def stage_sections(self, stage: str) -> tuple[set[str], str] | None:
        """The config sections `stage` reads, and where they were found."""
        function = "build_" + stage.replace("-", "_")
        if self.stages_rust is not None:
            body = self.stages_rust.fn_body(function)
            if body is not None:
                return self.sections_read(body), f"{function} in workers/src/{STAGES_RS}"
        return None

    def section_variables(self, sections: set[str]) -> set[str]:
        return set().union(*(self.sections.get(s, set()) for s in sections)) if sections else set()


def served_stages(name: str, binary: str, env: dict, problems: list[str]) -> list[str] | None:
    """The stages a function serves: its binary's, or telepipe-lambda's TELEPIPE_STAGE."""
    if binary != ROUTER_BINARY:
        return [binary]
    value = env.get(STAGE_VARIABLE)
    if value == AUTO:
        return list(SQS_STAGES)
    if isinstance(value, str) and value in STAGES:
        return [value]
    problems.append(
        f"{name}: Binary {ROUTER_BINARY} needs {STAGE_VARIABLE} set to one of {', '.join(STAGES)} "
        f"or {AUTO} (a plain string), not {json.dumps(value)}"
    )
    return None


def blank(value: object) -> object:
    """A variable's value as the workers see it: unset and '' (or spaces) are the same."""
    return "" if value is None or (isinstance(value, str) and not value.strip()) else value


def lookup(env: dict, variable: str, stage: str | None) -> object:
    """TELEPIPE_X as a stage sees it (workers' Env): with a stage (TELEPIPE_STAGE auto),
    TELEPIPE_{STAGE}__X first, then TELEPIPE_X; a blank value is unset (None)."""
    names = [variable]
    if stage is not None and variable.startswith("TELEPIPE_"):
        names.insert(0, f"TELEPIPE_{scope(stage)}__{variable[len('TELEPIPE_'):]}")
    for name in names:
        if blank(env.get(name)) != "":
            return env[name]
    return None


def lookup_name(env: dict, variable: str, stage: str | None) -> str | None:
    """Which variable `lookup` takes its value from, if any."""
    names = [variable]
    if stage is not None and variable.startswith("TELEPIPE_"):
        names.insert(0, f"TELEPIPE_{scope(stage)}__{variable[len('TELEPIPE_'):]}")
    return next((name for name in names if blank(env.get(name)) != ""), None)


# Variables a stage derives when they are unset: X -> (base, suffix): X = base's value +
# suffix's value (ConsumerConfig::dlq_url in workers/src/config.rs: every DLQ of the
# template is named after its source queue, `{queue}-dlq`). Only the router (TELEPIPE_STAGE
# auto), whose variables must fit Lambda's 4 KB, sets a suffix; per-stage functions name
# their DLQ.
DERIVED = {"TELEPIPE_DLQ_URL": ("TELEPIPE_QUEUE_URL", "TELEPIPE_DLQ_SUFFIX")}
SUFFIXES = {suffix: variable for variable, (_base, suffix) in DERIVED.items()}


def queue_of(value: object, resources: dict) -> str | None:
    """The AWS::SQS::Queue whose URL `value` is (Ref, or Fn::GetAtt QueueUrl)."""
    name = None
    if isinstance(value, dict) and list(value) == ["Ref"]:
        name = value["Ref"]
    elif isinstance(value, dict) and list(value) == ["Fn::GetAtt"]:
        target = value["Fn::GetAtt"]
        target = target.split(".", 1) if isinstance(target, str) else target
        if isinstance(target, list) and len(target) == 2 and target[1] == "QueueUrl":
            name = target[0]
    if isinstance(name, str) and (resources.get(name) or {}).get("Type") == "AWS::SQS::Queue":
        return name
    return None


def with_suffix(name: object, suffix: str) -> object:
    """A QueueName (plain, or Fn::Sub) with `suffix` appended, as the template writes it."""
    if isinstance(name, str):
        return name + suffix
    if isinstance(name, dict) and list(name) == ["Fn::Sub"]:
        sub = name["Fn::Sub"]
        if isinstance(sub, str):
            return {"Fn::Sub": sub + suffix}
        if isinstance(sub, list) and len(sub) == 2 and isinstance(sub[0], str):
            return {"Fn::Sub": [sub[0] + suffix, sub[1]]}
    return None


def derived_mismatch(base: object, suffix: object, expected: object, resources: dict) -> str | None:
    """Why base + suffix (a queue's URL and a plain suffix) is not the URL `expected` (a
    queue's URL too), comparing the two queues' QueueName properties; None if it is."""
    if not isinstance(suffix, str) or "$" in suffix:
        return f"the suffix {json.dumps(suffix)} must be a plain string"
    source = queue_of(base, resources)
    if source is None:
        return f"{json.dumps(base)} is not the URL of a queue of the template (Ref or Fn::GetAtt QueueUrl)"
    target = queue_of(expected, resources)
    if target is None:
        return f"the per-stage value {json.dumps(expected)} is not the URL of a queue of the template"
    name = ((resources[source].get("Properties")) or {}).get("QueueName")
    wanted = with_suffix(name, suffix.strip())
    if wanted is None:
        return f"{source} has no QueueName (plain or Fn::Sub) to append {json.dumps(suffix)} to"
    actual = ((resources[target].get("Properties")) or {}).get("QueueName")
    if json.dumps(actual, sort_keys=True) != json.dumps(wanted, sort_keys=True):
        return f"{target}'s QueueName is {json.dumps(actual)}, not {source}'s + {json.dumps(suffix)} ({json.dumps(wanted)})"
    return None


def per_stage_functions(all_resources: dict) -> dict[str, tuple[str, dict]]:
    """stage -> (name, resource) of the function built from that stage's own binary."""
    found: dict[str, tuple[str, dict]] = {}
    for name, resource in all_resources.items():
        if resource.get("Type") == "AWS::Serverless::Function":
            binary = (((resource.get("Metadata") or {}).get("BuildProperties")) or {}).get("Binary")
            if binary in STAGES:
                found.setdefault(binary, (name, resource))
    return found


def statement_key(statement: object) -> str:
    return json.dumps(statement, sort_keys=True)


def function_statements(props: dict, all_resources: dict) -> list[dict]:
    """Inline statements and those of the template's managed policies the function names."""
    found: list[dict] = []
    for policy in as_list(props.get("Policies")):
        if isinstance(policy, dict) and "Statement" in policy:
            found += [s for s in as_list(policy["Statement"]) if isinstance(s, dict)]
        elif isinstance(policy, dict) and list(policy) == ["Ref"]:
            managed = all_resources.get(policy["Ref"], {})
            if managed.get("Type") == "AWS::IAM::ManagedPolicy":
                document = (managed.get("Properties") or {}).get("PolicyDocument") or {}
                found += [s for s in as_list(document.get("Statement")) if isinstance(s, dict)]
    return found


def default_number(value: object, parameters: dict) -> int | None:
    if isinstance(value, dict) and list(value) == ["Ref"]:
        value = (parameters.get(value["Ref"]) or {}).get("Default")
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def router_parity(
    name: str, props: dict, served: list[str], template: dict, problems: list[str]
) -> None:
    """A telepipe-lambda function against the per-stage functions of its stages."""
    all_resources = template.get("Resources", {})
    parameters = template.get("Parameters", {})
    originals = per_stage_functions(all_resources)
    missing = [s for s in served if s not in originals]
    if missing:
        problems.append(f"{name}: no per-stage function (Binary {'/'.join(missing)}) to check it against")
        return
    if len(served) == 1:
        original_name, original = originals[served[0]]
        mine = json.loads(json.dumps(props))
        theirs = json.loads(json.dumps(original.get("Properties") or {}))
        for p in (mine, theirs):
            p.pop("Description", None)
            ((p.get("Environment") or {}).get("Variables") or {}).pop(STAGE_VARIABLE, None)
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                problems.append(f"{name}: {key} differs from {original_name}'s (they must stay equal)")
        return
    # TELEPIPE_STAGE auto: the SQS stages in one function.
    events: dict = {}
    statements: dict[str, dict] = {}
    queues: list[object] = []
    for stage in served:
        original_name, original = originals[stage]
        theirs = original.get("Properties") or {}
        for event, spec in (theirs.get("Events") or {}).items():
            events[event] = spec
            if (spec or {}).get("Type") == "SQS":
                queues.append((spec.get("Properties") or {}).get("Queue"))
        for statement in function_statements(theirs, all_resources):
            if statement.get("Sid") != CONFINE_SID:
                statements[statement_key(statement)] = statement
        for key in ("CodeUri", "Handler", "Runtime", "Architectures", "Tracing"):
            if props.get(key) != theirs.get(key):
                problems.append(f"{name}: {key} differs from {original_name}'s")
        timeout, own = default_number(props.get("Timeout"), parameters), default_number(theirs.get("Timeout"), parameters)
        if timeout is None or own is None or timeout < own:
            problems.append(f"{name}: Timeout {props.get('Timeout')} is below {original_name}'s ({theirs.get('Timeout')})")
        memory, own = default_number(props.get("MemorySize"), parameters), default_number(theirs.get("MemorySize"), parameters)
        if memory is None or own is None or memory < own:
            problems.append(
                f"{name}: MemorySize {json.dumps(props.get('MemorySize'))} (default) is below "
                f"{original_name}'s ({json.dumps(theirs.get('MemorySize'))})"
            )
    if (props.get("Events") or {}) != events:
        problems.append(f"{name}: Events differ from the SQS events of the per-stage functions of {', '.join(served)}")
    mine = {statement_key(s): s for s in function_statements(props, all_resources)}
    confine = [s for s in mine.values() if s.get("Effect") == "Deny" and "NotResource" in s]
    for key, statement in mine.items():
        if key not in statements and statement not in confine:
            problems.append(f"{name}: statement {statement.get('Sid', '(no Sid)')} is in no per-stage function of its stages")
    for key, statement in statements.items():
        if key not in mine:
            problems.append(f"{name}: lacks statement {statement.get('Sid', '(no Sid)')} of its stages' functions (unchanged)")
    if len(confine) != 1 or not (
        {str(a).lower() for a in as_list(confine[0].get("Action"))} == SQS_POLLING
        and sorted(map(statement_key, as_list(confine[0]["NotResource"]))) == sorted(map(statement_key, queues))
    ):
        problems.append(
            f"{name}: needs one Deny of {sorted(SQS_POLLING)} with NotResource exactly its SQS events' queues "
            f"(it replaces each stage's {CONFINE_SID})"
        )


def worker_variables(template: dict, resolved: dict, source: Source, problems: list[str]) -> list[str]:
    """Rule 3 on the resolved template; `template` is the template as written (parity)."""
    resources = resolved.get("Resources", {})
    all_resources = template.get("Resources", {})
    summary: list[str] = []
    sections_of: dict[str, set[str]] = {}
    for stage in STAGES:
        found = source.stage_sections(stage)
        if found is not None:
            sections_of[stage] = found[0]
            unknown = sorted(found[0] - source.sections.keys())
            if unknown:
                problems.append(f"{found[1]} reads {unknown}, not found as `impl` blocks under workers/src")
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = (((resource.get("Metadata") or {}).get("BuildProperties")) or {}).get("Binary")
        bin_rs = source.binary(binary) if isinstance(binary, str) else None
        if bin_rs is None:
            problems.append(f"{name}: Metadata.BuildProperties.Binary {binary!r} is not a file in workers/src/bin")
            continue
        props = resource.get("Properties") or {}
        env = (props.get("Environment") or {}).get("Variables") or {}
        served = served_stages(name, binary, env, problems)
        if served is None:
            continue
        router = binary == ROUTER_BINARY
        auto = router and env.get(STAGE_VARIABLE) == AUTO
        base = set(source.shared) | bin_rs.variables()
        if router:
            base.add(STAGE_VARIABLE)
        reads: set[str] = set(base)  # everything some served stage reads, unscoped
        own: dict[str, set[str]] = {}  # stage -> its section variables
        for stage in served:
            if stage in sections_of:
                own[stage] = source.section_variables(sections_of[stage])
            else:
                problems.append(f"{name}: stage {stage}: no `fn build_{stage.replace('-', '_')}` in workers/src/{STAGES_RS}")
                own[stage] = set()
            reads |= own[stage]
        scopes = {scope(s): s for s in served}
        missing: list[str] = []
        needed = {(None, v) for v in base} | {(s, v) for s in served for v in own[s] - base}
        # A router function leaves unset what its stage's own function sets blank (the
        # workers read '' as unset), to save bytes of Lambda's 4 KB (rule 7).
        originals = per_stage_functions(all_resources) if router else {}
        their_env = {
            stage: (((originals[stage][1].get("Properties") or {}).get("Environment")) or {}).get("Variables") or {}
            for stage in served
            if stage in originals
        }
        stage_scope = {stage: (stage if auto else None) for stage in served}
        used_suffixes: set[str] = set()
        for stage in served:
            for variable in sorted(base | own[stage]):
                scoped = f"TELEPIPE_{scope(stage)}__{variable[len('TELEPIPE_'):]}"
                if variable in SUFFIXES and variable in own[stage]:
                    # Optional: the variable it derives is required instead. Used where that
                    # one is unset.
                    if lookup(env, SUFFIXES[variable], stage_scope[stage]) is None:
                        used = lookup_name(env, variable, stage_scope[stage])
                        if used is not None:
                            used_suffixes.add(used)
                    continue
                if variable in env or (auto and variable in own[stage] and scoped in env):
                    continue
                derived = DERIVED.get(variable)
                if (
                    auto
                    and derived is not None
                    and derived[1] in own[stage]
                    and lookup(env, derived[1], stage) is not None
                ):
                    continue
                theirs = their_env.get(stage, {})
                if variable in theirs and isinstance(theirs[variable], str) and blank(theirs[variable]) == "":
                    continue
                missing.append(variable if len(served) == 1 else f"{variable} ({stage})")
        for variable in env:
            suffix = variable
            if variable.startswith("TELEPIPE_") and "__" in variable[len("TELEPIPE_"):]:
                suffix = "TELEPIPE_" + variable[len("TELEPIPE_"):].split("__", 1)[1]
            if suffix not in SUFFIXES or suffix not in reads or blank(env[variable]) == "":
                continue  # (a suffix no stage reads is reported as such below)
            if not auto:
                problems.append(
                    f"{name}: sets {variable}: only a router function (TELEPIPE_STAGE auto) derives "
                    f"{SUFFIXES[suffix]} from {DERIVED[SUFFIXES[suffix]][0]} + {suffix}; set {SUFFIXES[suffix]}"
                )
            elif variable not in used_suffixes:
                problems.append(
                    f"{name}: sets {variable}, which no stage uses: each stage it applies to has "
                    f"{SUFFIXES[suffix]} set, which wins"
                )
        stale: list[str] = []
        for variable in env:
            if not variable.startswith("TELEPIPE_"):
                continue
            head, sep, rest = variable[len("TELEPIPE_"):].partition("__")
            if sep:
                stage = scopes.get(head)
                if not auto or stage is None or f"TELEPIPE_{rest}" not in own[stage]:
                    stale.append(variable)
            elif variable not in reads:
                stale.append(variable)
        if missing:
            problems.append(f"{name}: Environment lacks {missing} ({'/'.join(served)} reads them)")
        if stale:
            problems.append(
                f"{name}: Environment sets {stale}, which {'/'.join(served)} does not read"
                + (" (TELEPIPE_{STAGE}__X: X must be a config variable of a stage it serves, with TELEPIPE_STAGE auto)" if any("__" in v for v in stale) else "")
            )
        if router:
            # Parity is about the template as written (both layouts' resources).
            written = (all_resources.get(name) or {}).get("Properties") or {}
            router_parity(name, written, served, template, problems)
            written_env = (written.get("Environment") or {}).get("Variables") or {}
            for stage in served:
                if stage not in originals:
                    continue
                original_name, original = originals[stage]
                theirs = their_env[stage]
                for variable in sorted((base | own[stage]) - {STAGE_VARIABLE}):
                    if variable in SUFFIXES:
                        continue  # compared through the variable it derives
                    value = lookup(written_env, variable, stage_scope[stage])
                    if variable in DERIVED and value is None and auto:
                        base_variable, suffix_variable = DERIVED[variable]
                        suffix = lookup(written_env, suffix_variable, stage)
                        if suffix is not None:
                            why = derived_mismatch(
                                lookup(written_env, base_variable, stage), suffix, theirs.get(variable), all_resources
                            )
                            if why:
                                problems.append(
                                    f"{name}: {stage} derives {variable} as {base_variable} + {suffix_variable}, "
                                    f"not {original_name}'s {json.dumps(theirs.get(variable))}: {why}"
                                )
                            continue
                    if blank(value) != blank(theirs.get(variable)):
                        problems.append(
                            f"{name}: {stage} reads {variable} = {json.dumps(value)}, "
                            f"{original_name} has {json.dumps(theirs.get(variable))}"
                        )
        # Lambda refuses an SQS event source whose queue's visibility is below the timeout.
        timeout = props.get("Timeout")
        for event, spec in (props.get("Events") or {}).items():
            if (spec or {}).get("Type") != "SQS":
                continue
            queue = is_getatt_of((spec.get("Properties") or {}).get("Queue"), {"AWS::SQS::Queue"}, resources)
            visibility = ((resources.get(queue or "", {}).get("Properties")) or {}).get("VisibilityTimeout", 30)
            if isinstance(visibility, int) and isinstance(timeout, int) and visibility < timeout:
                problems.append(f"{name}: event {event}: {queue} VisibilityTimeout {visibility} is below the Timeout {timeout}")
        label = binary if not router else f"{ROUTER_BINARY}[{env.get(STAGE_VARIABLE)}]"
        summary.append(f"{label} {len(needed) - len(missing)}/{len(needed)}")
    return summary


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
# With FunctionLayout Router, RouterFunction's role holds the same grants through one
# managed policy per stage (Router<Stage>Policy): the holder is that policy.
WORKER_DELETE_EXCEPTIONS = {
    ("SessionsFunction", "scheduler:DeleteSchedule"): "cancels its own reminder schedules",
    ("NotifierFunction", "dynamodb:DeleteItem"): "releases its own notification claims",
    ("RepliesFunction", "dynamodb:DeleteItem"): "lifts a number's suppression when it opts back in",
    ("RouterSessionsPolicy", "scheduler:DeleteSchedule"): "the sessions stage's grant, in the router",
    ("RouterNotifierPolicy", "dynamodb:DeleteItem"): "the notifier stage's grant, in the router",
    ("RouterRepliesPolicy", "dynamodb:DeleteItem"): "the replies stage's grant, in the router",
}
# Exceptions confined to DynamoDB partitions: every statement of the holder granting the
# action must carry a ForAllValues:StringLike / StringEquals dynamodb:LeadingKeys condition
# whose values all start with this prefix.
WORKER_DELETE_SCOPES = {
    ("RepliesFunction", "dynamodb:DeleteItem"): "suppress#",
    ("RouterRepliesPolicy", "dynamodb:DeleteItem"): "suppress#",
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
                elif (
                    isinstance(policy, dict)
                    and list(policy) == ["Ref"]
                    and resources.get(str(policy["Ref"]), {}).get("Type") == "AWS::IAM::ManagedPolicy"
                ):
                    continue  # a managed policy of the template: its statements are its own
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



# ----- layouts: the template as one FunctionLayout deploys it ---------------------------

NO_VALUE = object()


def condition_values(template: dict, fixed: dict[str, str]) -> dict[str, bool | None]:
    """Each condition's value when only the `fixed` parameters are known (None: open)."""
    conditions = template.get("Conditions") or {}
    values: dict[str, bool | None] = {}

    def operand(value: object) -> str | None:
        if isinstance(value, dict) and list(value) == ["Ref"]:
            return fixed.get(str(value["Ref"]))
        return value if isinstance(value, str) else None

    def evaluate(expression: object) -> bool | None:
        if not isinstance(expression, dict) or len(expression) != 1:
            return None
        (function, args), = expression.items()
        if function == "Condition":
            return value_of(str(args))
        if function == "Fn::Equals":
            a, b = (operand(x) for x in args)
            return None if a is None or b is None else a == b
        if function == "Fn::Not":
            inner = evaluate(args[0])
            return None if inner is None else not inner
        if function in ("Fn::And", "Fn::Or"):
            results = [evaluate(x) for x in args]
            decisive = function == "Fn::Or"  # Or: any True decides; And: any False decides
            if decisive in results:
                return decisive
            return None if None in results else not decisive
        return None

    def value_of(name: str) -> bool | None:
        if name not in values:
            values[name] = None  # no cycles in valid templates; guards recursion anyway
            values[name] = evaluate(conditions.get(name))
        return values[name]

    for name in conditions:
        value_of(name)
    return values


def resolve(value: object, conditions: dict[str, bool | None]) -> object:
    """Fn::If on a decided condition takes its branch; AWS::NoValue disappears."""
    if isinstance(value, dict):
        if list(value) == ["Fn::If"] and isinstance(value["Fn::If"], list) and len(value["Fn::If"]) == 3:
            name, yes, no = value["Fn::If"]
            decided = conditions.get(str(name))
            if decided is not None:
                return resolve(yes if decided else no, conditions)
            branches = [resolve(branch, conditions) for branch in (yes, no)]
            return {"Fn::If": [name] + [{"Ref": "AWS::NoValue"} if b is NO_VALUE else b for b in branches]}
        if list(value) == ["Ref"] and value["Ref"] == "AWS::NoValue":
            return NO_VALUE
        out = {}
        for key, item in value.items():
            item = resolve(item, conditions)
            if item is not NO_VALUE:
                out[key] = item
        return out
    if isinstance(value, list):
        return [item for item in (resolve(x, conditions) for x in value) if item is not NO_VALUE]
    return value


def deployed(template: dict, fixed: dict[str, str]) -> dict:
    """The template as deployed with `fixed` parameters: false-conditioned resources out."""
    conditions = condition_values(template, fixed)
    resolved = dict(template)
    resources = {}
    for name, resource in (template.get("Resources") or {}).items():
        if conditions.get(str(resource.get("Condition"))) is False:
            continue
        resources[name] = resolve(resource, conditions)
    resolved["Resources"] = resources
    return resolved


# ----- 7. environment size ----------------------------------------------------------------

ENV_LIMIT = 4096  # bytes: Lambda's quota for a function's variables, not adjustable
LONG_NAME_PREFIX = "p" * 20  # NamePrefix's AllowedPattern allows up to 20 characters
LONG_REGION = "ap-southeast-4"  # 14 characters, the longest region codes
ACCOUNT = "123456789012"
GENERATED_ROLE_NAME = "r" * 64  # CloudFormation's generated role names reach 64


# Functions known to exceed the limit: each run prints a WARNING naming it (its layout does
# not deploy), and the check fails once it fits, so the entry cannot outlive its cause.
# None today: RouterFunction fits since its stages derive their DLQ URLs from their queue
# URLs (TELEPIPE_DLQ_SUFFIX) and it leaves the blank credential variables unset.
ENV_SIZE_KNOWN_OVER: dict[str, str] = {}


class Unknown(Exception):
    pass


def estimate(value: object, template: dict) -> str:
    """A value's longest plausible text once deployed (see rule 7)."""
    resources = template.get("Resources") or {}
    parameters = template.get("Parameters") or {}

    def named(resource: str, prop: str) -> str:
        props = (resources.get(resource) or {}).get("Properties") or {}
        if prop not in props:
            raise Unknown(f"{resource} has no {prop}")
        return estimate(props[prop], template)

    def ref(name: str) -> str:
        pseudo = {"AWS::Region": LONG_REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if name == "NamePrefix":
            return LONG_NAME_PREFIX
        if name in parameters:
            return str(parameters[name].get("Default", ""))
        kind = (resources.get(name) or {}).get("Type")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{LONG_REGION}.amazonaws.com/{ACCOUNT}/" + named(name, "QueueName")
        if kind == "AWS::S3::Bucket":
            return named(name, "BucketName")
        if kind == "AWS::DynamoDB::Table":
            return named(name, "TableName")
        if kind in ("AWS::Events::EventBus", "AWS::Scheduler::ScheduleGroup"):
            return named(name, "Name")
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{LONG_REGION}:{ACCOUNT}:secret:" + named(name, "Name") + "-AbCdEf"
        raise Unknown(f"Ref {name} ({kind})")

    def getatt(name: str, attribute: str) -> str:
        kind = (resources.get(name) or {}).get("Type")
        props = (resources.get(name) or {}).get("Properties") or {}
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return f"arn:aws:sqs:{LONG_REGION}:{ACCOUNT}:" + named(name, "QueueName")
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return named(name, "QueueName")
        if kind == "AWS::KMS::Key" and attribute == "Arn":
            return f"arn:aws:kms:{LONG_REGION}:{ACCOUNT}:key/" + "k" * 36
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            role = estimate(props["RoleName"], template) if "RoleName" in props else GENERATED_ROLE_NAME
            return f"arn:aws:iam::{ACCOUNT}:role/" + role
        raise Unknown(f"Fn::GetAtt {name}.{attribute} ({kind})")

    def sub(text: str, variables: dict) -> str:
        def one(match: re.Match) -> str:
            key = match.group(1)
            if key in variables:
                return estimate(variables[key], template)
            if "." in key:
                return getatt(*key.split(".", 1))
            return ref(key)

        return re.sub(r"\$\{(?!!)([^}]+)\}", one, text)

    if isinstance(value, (str, int, float, bool)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, dict) and len(value) == 1:
        (function, args), = value.items()
        if function == "Ref":
            return ref(str(args))
        if function == "Fn::GetAtt":
            target = args.split(".", 1) if isinstance(args, str) else args
            return getatt(str(target[0]), str(target[1]))
        if function == "Fn::Sub":
            return sub(args, {}) if isinstance(args, str) else sub(args[0], args[1])
        if function == "Fn::If":
            branches = [estimate(branch, template) for branch in args[1:]]
            return max(branches, key=len)
        if function == "Fn::Join":
            return str(args[0]).join(estimate(x, template) for x in args[1])
    raise Unknown(json.dumps(value))


def environment_sizes(resolved: dict, problems: list[str], warnings: list[str]) -> str:
    largest: tuple[int, str] = (0, "none")
    known_over: list[str] = []
    for name, resource in (resolved.get("Resources") or {}).items():
        if resource.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            continue
        variables = (((resource.get("Properties") or {}).get("Environment")) or {}).get("Variables") or {}
        try:
            rendered = {key: estimate(value, resolved) for key, value in variables.items()}
        except Unknown as unknown:
            problems.append(f"{name}: cannot estimate the size of its environment ({unknown}): teach rule 7")
            continue
        size = len(json.dumps(rendered, separators=(",", ":")))
        if name in ENV_SIZE_KNOWN_OVER:
            if size <= ENV_LIMIT:
                problems.append(
                    f"{name}: its environment fits now (about {size:,} bytes): remove it from ENV_SIZE_KNOWN_OVER"
                )
            else:
                known_over.append(f"{name} ({size:,} bytes)")
                warnings.append(
                    f"{name}: its {len(variables)} variables take about {size:,} bytes, over Lambda's "
                    f"{ENV_LIMIT:,}: this layout does NOT deploy ({ENV_SIZE_KNOWN_OVER[name]})"
                )
            continue
        largest = max(largest, (size, name))
        if size > ENV_LIMIT:
            problems.append(
                f"{name}: its {len(variables)} variables take about {size:,} bytes as Lambda measures them "
                f"(compact JSON, names included; NamePrefix of 20 characters, a 14-character region), over "
                f"Lambda's limit of {ENV_LIMIT:,}: the deploy would fail (infra/README.md, "
                "\"Router environment size\")"
            )
    fits = f"environments within Lambda's 4 KB (largest {largest[1]}, about {largest[0]:,} bytes with long names)"
    return fits + (f", except {', '.join(known_over)}: see the WARNING" if known_over else "")


# ----- main -----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("template", nargs="?", type=Path, default=TEMPLATE)
    parser.add_argument("--layout", action="append", help=f"{LAYOUT_PARAMETER} value(s) to check (default: all)")
    parser.add_argument("--workers", type=Path, default=WORKERS, help="the workers' Rust source (default workers/src)")
    args = parser.parse_args()
    path: Path = args.template
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

    # 3, 5, 6, 7 per layout
    source = Source(args.workers)
    problems += source.problems
    allowed = ((template.get("Parameters") or {}).get(LAYOUT_PARAMETER) or {}).get("AllowedValues")
    layouts = args.layout or (list(allowed) if allowed else [None])
    lines: list[str] = []
    warnings: list[str] = []
    for layout in layouts:
        if layout is not None and allowed and layout not in allowed:
            problems.append(f"--layout {layout}: {LAYOUT_PARAMETER} allows {allowed}")
            continue
        fixed = {} if layout is None else {LAYOUT_PARAMETER: layout}
        resolved = deployed(template, fixed)
        found: list[str] = []
        summary = worker_variables(template, resolved, source, found)
        found_warnings: list[str] = []
        sizes = environment_sizes(resolved, found, found_warnings)
        access_summary = audit_and_access(resolved, found)
        endpoints_summary = public_endpoints(resolved, found)
        tag = f"[{LAYOUT_PARAMETER} {layout}] " if layout else ""
        problems += [tag + problem for problem in found]
        warnings += [tag + warning for warning in found_warnings]
        lines.append(f"{tag}worker variables set: {', '.join(summary)}; {sizes}")
        lines.append(f"{tag}{access_summary}; {endpoints_summary}")

    if problems:
        for problem in problems:
            print(f"{path}: {problem}")
        return 1
    print(
        f"template rules: ok ({skips} checkov skips with reasons, {patterns} plain event patterns "
        f"({len(declared)} rules as in event-rules.json))"
    )
    for line in lines:
        print(line)
    for warning in warnings:
        print(f"WARNING: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
