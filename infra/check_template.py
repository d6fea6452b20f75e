"""Project rules for infra/template.yaml that cfn-lint and checkov do not know.

Run by scripts/check-infra.sh (optional argument: another template path) with the tools venv's Python (it uses cfn-lint's YAML
decoder, which understands the short intrinsic-function tags). Prints one summary line
on success; on failure prints every problem and exits 1.

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
"""

from __future__ import annotations

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

    if problems:
        for problem in problems:
            print(f"{path}: {problem}")
        return 1
    print(
        f"template rules: ok ({skips} checkov skips with reasons, {patterns} plain event patterns "
        f"({len(declared)} rules as in event-rules.json), "
        f"worker variables set: {', '.join(summary)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
