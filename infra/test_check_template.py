"""Tests of check_template.py's rule 3 (worker variables) and layout handling, against
small fake Rust trees written to a temporary folder, so the rule is known to read the
source layout it documents whatever workers/src holds today:

- config sections in `impl XxxConfig` blocks of any non-test file, the stage wiring in
  `build_<stage>` of lambda/stages.rs (following `Type::from_env(` into other impl
  blocks), shared literals elsewhere, TELEPIPE_STAGE for telepipe-lambda only;
- both FunctionLayout values of infra/template.yaml, and what each must catch, including
  the router's DLQ URLs derived from its queue URLs (TELEPIPE_DLQ_SUFFIX) and the blank
  variables it leaves unset;
- the environment size estimate (rule 7).

Run by scripts/check-infra.sh with the tools venv's Python:
    .venv-infra/bin/python infra/test_check_template.py
"""

from __future__ import annotations

import copy
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_template as ct  # noqa: E402

TEMPLATE, _ = ct.decode(str(ct.TEMPLATE))

# Shared code: read by every stage (metrics, the S3 client), and the router's own variable.
SHARED = {
    "metrics.rs": """
        pub const NAMESPACE_VAR: &str = "TELEPIPE_METRICS_NAMESPACE";
        pub const SINK_VAR: &str = "TELEPIPE_METRICS";
    """,
    "aws/mod.rs": """
        pub fn load() -> bool {
            // "TELEPIPE_NOT_A_READ" in a comment is not a read; nor is a message:
            tracing::warn!("TELEPIPE_AUDIT_BUCKET is not set: {}", '{');
            std::env::var("TELEPIPE_S3_FORCE_PATH_STYLE").is_ok()
        }
        #[cfg(test)]
        mod tests {
            const X: &str = "TELEPIPE_ONLY_IN_TESTS";
        }
    """,
    "lambda/mod.rs": """
        pub const STAGE_VARIABLE: &str = "TELEPIPE_STAGE";
        pub struct Served;
        impl Served {
            pub fn from_env(env: &Env) -> Self { let _ = env.required(STAGE_VARIABLE); Served }
        }
    """,
    "sessions/tests.rs": """
        const NEVER: &str = "TELEPIPE_FROM_A_TEST_FILE";
    """,
}


def section(name: str, variables: list[str]) -> str:
    """An `impl name` block reading `variables`, with the tricky bits real code has."""
    reads = "\n".join(f'                let _ = env.or("{v}", "{{}}"); // a "{{" in a string' for v in variables)
    return textwrap.dedent(f"""
        /// The `{name}` section ("TELEPIPE_IN_A_DOC_COMMENT" is not read).
        pub struct {name} {{ pub x: String }}

        impl {name} {{
            pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {{
        {reads}
                let _brace = '}}';
                let _raw = r#"{{ "TELEPIPE_IN_RAW_TEXT_IS_NOT_ALONE" }}"#;
                Ok(Self {{ x: String::new() }})
            }}
        }}
    """)


def written_env(function: str) -> dict:
    return TEMPLATE["Resources"][function]["Properties"]["Environment"]["Variables"]


SHARED_VARIABLES = {"TELEPIPE_METRICS", "TELEPIPE_METRICS_NAMESPACE", "TELEPIPE_S3_FORCE_PATH_STYLE"}
CONSUMER = [
    "TELEPIPE_QUEUE_URL",
    "TELEPIPE_DLQ_URL",
    "TELEPIPE_DLQ_SUFFIX",  # the router's: DLQ URL = queue URL + suffix where DLQ_URL is unset
    "TELEPIPE_MAX_RECEIVES",
    "TELEPIPE_RETRY_BASE_SECONDS",
    "TELEPIPE_RETRY_MAX_SECONDS",
]
EVENTS = ["TELEPIPE_EVENT_BUS", "TELEPIPE_EVENT_SOURCE"]
# stage -> (file of its own section, per-stage function, extra sections it reads)
STAGES = {
    "intake": ("intake.rs", "IntakeFunction", ["ConsumerConfig", "EventsConfig"]),
    "clinical": ("clinical/config.rs", "ClinicalFunction", ["ConsumerConfig", "EventsConfig"]),
    "sessions": ("sessions/config.rs", "SessionsFunction", ["ConsumerConfig", "EventsConfig"]),
    "notifier": ("notifier/config.rs", "NotifierFunction", ["ConsumerConfig", "EventsConfig"]),
    "capture": ("capture.rs", "CaptureFunction", ["ConsumerConfig", "EventsConfig"]),
    "replies": ("replies.rs", "RepliesFunction", ["ConsumerConfig", "EventsConfig"]),
    "sweeper": ("sweeper.rs", "SweeperFunction", ["EventsConfig"]),
    "sms-inbound": ("sms_inbound.rs", "SmsInboundFunction", []),
}


def own_section(stage: str) -> str:
    return stage.title().replace("-", "") + "Config"


def own_variables(stage: str) -> list[str]:
    """What the per-stage function sets beyond the shared and common sections."""
    _, function, extra = STAGES[stage]
    common = set(SHARED_VARIABLES) | {"LOG_LEVEL", "SSL_CERT_FILE"}
    if "ConsumerConfig" in extra:
        common |= set(CONSUMER)
    if "EventsConfig" in extra:
        common |= set(EVENTS)
    return sorted(v for v in written_env(function) if v not in common)


def stages_rs(stages: dict[str, list[str]]) -> str:
    """lambda/stages.rs: a consumer wrapper reading ConsumerConfig, and build_<stage>."""
    out = [
        textwrap.dedent("""
        struct Consumer { config: ConsumerConfig }

        impl Consumer {
            fn from_env(stage: Stage, env: &Env, aws: &AwsContext) -> Self {
                let config = config_or_exit(ConsumerConfig::from_env(env));
                Self { config }
            }
        }
        """)
    ]
    for stage, sections in stages.items():
        calls = []
        for name in sections:
            if name == "ConsumerConfig":
                calls.append("consumer: Consumer::from_env(Stage::X, env, aws),")
            else:
                calls.append(f"let _ = config_or_exit({name}::from_env(&env));")
        body = "\n".join("            " + c for c in calls)
        out.append(textwrap.dedent(
            f"""
        pub(crate) async fn build_{stage.replace('-', '_')}(
            env: &Env<'_>,
            aws: &AwsContext,
        ) -> Result<Box<dyn SqsStage>, lambda_runtime::Error> {{
            let label = format!("{{}} {{{{", "{stage}");
{body}
            todo!()
        }}
        """
        ))
    return "\n".join(out)


class FakeTree:
    """A workers/src-like tree matching infra/template.yaml's per-stage functions."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, str] = {name: textwrap.dedent(text) for name, text in SHARED.items()}
        self.files["config.rs"] = (
            section("ConsumerConfig", CONSUMER)
            + section("EventsConfig", EVENTS)
            + '\n#[cfg(test)]\nmod tests {\n    const T: &str = "TELEPIPE_CONFIG_TEST_ONLY";\n}\n'
        )
        self.stage_sections: dict[str, list[str]] = {}
        for stage, (path, _function, extra) in STAGES.items():
            self.files[path] = self.files.get(path, "") + section(own_section(stage), own_variables(stage))
            self.stage_sections[stage] = [own_section(stage)] + extra
        for binary in list(STAGES) + [ct.ROUTER_BINARY]:
            self.files[f"bin/{binary}.rs"] = "fn main() { serve_stage(Stage::X) }\n"

    def write(self) -> Path:
        self.files["lambda/stages.rs"] = stages_rs(self.stage_sections)
        for name, text in self.files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return self.root


def problems_for(tree: Path, template: dict = TEMPLATE, layouts=("PerStage", "Router")) -> dict[str, list[str]]:
    source = ct.Source(tree)
    found: dict[str, list[str]] = {}
    for layout in layouts:
        problems = list(source.problems)
        resolved = ct.deployed(template, {ct.LAYOUT_PARAMETER: layout})
        ct.worker_variables(template, resolved, source, problems)
        found[layout] = problems
    return found


class Rule3(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.tree = FakeTree(Path(self.tmp.name))

    def tearDown(self):
        self.tmp.cleanup()

    def assertClean(self, found):
        self.assertEqual(found, {"PerStage": [], "Router": []})

    def assertOnly(self, found, layout, *fragments):
        self.assertEqual([p for l, ps in found.items() if l != layout for p in ps], [])
        self.assertTrue(found[layout], f"no problem found in {layout}")
        for fragment in fragments:
            self.assertTrue(any(fragment in p for p in found[layout]), f"{fragment!r} not in {found[layout]}")

    def test_both_layouts_pass(self):
        self.assertClean(problems_for(self.tree.write()))

    def test_source_reading(self):
        source = ct.Source(self.tree.write())
        self.assertEqual(source.shared, SHARED_VARIABLES | {"LOG_LEVEL"})  # not TELEPIPE_STAGE, no test code
        self.assertEqual(source.sections["ConsumerConfig"], set(CONSUMER))
        self.assertEqual(source.section_files["SessionsConfig"], "sessions/config.rs")
        sections, where = source.stage_sections("intake")
        self.assertEqual(sections, {"IntakeConfig", "ConsumerConfig", "EventsConfig"})
        self.assertIn("build_intake in workers/src/lambda/stages.rs", where)
        self.assertEqual(source.stage_sections("sms-inbound")[0], {"SmsInboundConfig"})

    def test_stage_reads_a_new_variable(self):
        self.tree.files["intake.rs"] = section("IntakeConfig", own_variables("intake") + ["TELEPIPE_NEW_KNOB"])
        found = problems_for(self.tree.write())
        for layout in ("PerStage", "Router"):
            self.assertTrue(any("lacks ['TELEPIPE_NEW_KNOB" in p for p in found[layout]), found[layout])

    def test_stage_stops_reading_a_variable(self):
        self.tree.files["sessions/config.rs"] = section(
            "SessionsConfig", [v for v in own_variables("sessions") if v != "TELEPIPE_QUIET_HOURS"]
        )
        found = problems_for(self.tree.write())
        self.assertTrue(any("SessionsFunction: Environment sets ['TELEPIPE_QUIET_HOURS']" in p for p in found["PerStage"]))
        self.assertTrue(any("RouterFunction: Environment sets ['TELEPIPE_QUIET_HOURS']" in p for p in found["Router"]))

    def test_section_read_through_a_wrapper_only(self):
        # Without following Consumer::from_env, every SQS function would set "stale" queues.
        source = ct.Source(self.tree.write())
        self.assertIn("ConsumerConfig", source.stage_sections("replies")[0])
        self.assertNotIn("ConsumerConfig", source.stage_sections("sweeper")[0])

    def test_unknown_section(self):
        self.tree.stage_sections["capture"].append("ChimeConfig")
        found = problems_for(self.tree.write())
        self.assertTrue(all(any("reads ['ChimeConfig']" in p for p in found[l]) for l in found))

    def test_missing_build_function(self):
        del self.tree.stage_sections["replies"]
        found = problems_for(self.tree.write())
        self.assertTrue(any("no `fn build_replies`" in p for p in found["PerStage"]), found["PerStage"])
        self.assertTrue(any("no `fn build_replies`" in p for p in found["Router"]), found["Router"])

    def test_shared_literal_outside_a_section(self):
        self.tree.files["aws/mod.rs"] += '\npub fn region() -> Option<String> { std::env::var("TELEPIPE_REGION").ok() }\n'
        found = problems_for(self.tree.write())
        self.assertTrue(any("IntakeFunction: Environment lacks ['TELEPIPE_REGION']" in p for p in found["PerStage"]))

    def test_per_stage_function_must_not_set_the_stage_variable(self):
        template = copy.deepcopy(TEMPLATE)
        template["Resources"]["CaptureFunction"]["Properties"]["Environment"]["Variables"]["TELEPIPE_STAGE"] = "capture"
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "PerStage", "CaptureFunction: Environment sets ['TELEPIPE_STAGE']")

    def router_env(self, template):
        return template["Resources"]["RouterFunction"]["Properties"]["Environment"]["Variables"]

    def test_router_lacks_a_scoped_queue(self):
        template = copy.deepcopy(TEMPLATE)
        del self.router_env(template)["TELEPIPE_NOTIFIER__QUEUE_URL"]
        found = problems_for(self.tree.write(), template)
        # Its DLQ, derived from the queue URL, cannot be resolved either.
        self.assertOnly(found, "Router", "lacks ['TELEPIPE_QUEUE_URL (notifier)']", "notifier derives TELEPIPE_DLQ_URL")

    # ----- the router's DLQ URLs: queue URL + TELEPIPE_DLQ_SUFFIX ---------------------

    def test_the_suffix_is_a_consumer_variable_of_the_real_source(self):
        # check_template.py reads it from `impl ConsumerConfig` in workers/src/config.rs.
        source = ct.Source(ct.WORKERS)
        self.assertIn("TELEPIPE_DLQ_SUFFIX", source.sections["ConsumerConfig"])
        self.assertNotIn("TELEPIPE_DLQ_SUFFIX", source.shared)

    def test_router_derives_every_dlq(self):
        env = self.router_env(TEMPLATE)
        self.assertEqual(env["TELEPIPE_DLQ_SUFFIX"], "-dlq")
        self.assertEqual([v for v in env if v.endswith("DLQ_URL")], [])

    def test_router_without_the_suffix(self):
        template = copy.deepcopy(TEMPLATE)
        del self.router_env(template)["TELEPIPE_DLQ_SUFFIX"]
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", *(f"TELEPIPE_DLQ_URL ({stage})" for stage in ct.SQS_STAGES))

    def test_router_wrong_suffix(self):
        template = copy.deepcopy(TEMPLATE)
        self.router_env(template)["TELEPIPE_DLQ_SUFFIX"] = "-dead"
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "intake derives TELEPIPE_DLQ_URL", "IntakeDlq's QueueName is")
        self.assertEqual(len(found["Router"]), len(ct.SQS_STAGES), found["Router"])

    def test_router_suffix_must_be_plain(self):
        template = copy.deepcopy(TEMPLATE)
        self.router_env(template)["TELEPIPE_DLQ_SUFFIX"] = {"Fn::Sub": "-${NamePrefix}"}
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "must be a plain string")

    def test_dlq_not_named_after_its_queue(self):
        # The per-stage function names its DLQ, whatever its name; the router cannot.
        template = copy.deepcopy(TEMPLATE)
        template["Resources"]["NotificationsDlq"]["Properties"]["QueueName"] = {"Fn::Sub": "${NamePrefix}-notifier-dlq"}
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "notifier derives TELEPIPE_DLQ_URL", "NotificationsDlq's QueueName")

    def test_per_stage_function_uses_another_dlq(self):
        template = copy.deepcopy(TEMPLATE)
        template["Resources"]["CaptureFunction"]["Properties"]["Environment"]["Variables"]["TELEPIPE_DLQ_URL"] = {"Ref": "RepliesDlq"}
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "capture derives TELEPIPE_DLQ_URL", "not CaptureFunction's")

    def test_router_queue_url_by_getatt(self):
        template = copy.deepcopy(TEMPLATE)
        url = {"Fn::GetAtt": ["IntakeQueue", "QueueUrl"]}
        self.router_env(template)["TELEPIPE_INTAKE__QUEUE_URL"] = url
        template["Resources"]["IntakeFunction"]["Properties"]["Environment"]["Variables"]["TELEPIPE_QUEUE_URL"] = url
        self.assertClean(problems_for(self.tree.write(), template))

    def test_router_explicit_dlq_wins(self):
        template = copy.deepcopy(TEMPLATE)
        self.router_env(template)["TELEPIPE_CLINICAL__DLQ_URL"] = {"Ref": "ClinicalDlq"}
        self.assertClean(problems_for(self.tree.write(), template))
        self.router_env(template)["TELEPIPE_CLINICAL__DLQ_URL"] = {"Ref": "IntakeDlq"}
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "clinical reads TELEPIPE_DLQ_URL")

    def test_router_suffix_no_stage_uses(self):
        template = copy.deepcopy(TEMPLATE)
        env = self.router_env(template)
        for stage, dlq in zip(ct.SQS_STAGES, ("IntakeDlq", "ClinicalDlq", "SessionsDlq", "NotificationsDlq", "CaptureDlq", "RepliesDlq")):
            env[f"TELEPIPE_{ct.scope(stage)}__DLQ_URL"] = {"Ref": dlq}
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "sets TELEPIPE_DLQ_SUFFIX, which no stage uses")
        del env["TELEPIPE_DLQ_SUFFIX"]
        self.assertClean(problems_for(self.tree.write(), template))

    def test_router_scoped_suffix(self):
        template = copy.deepcopy(TEMPLATE)
        env = self.router_env(template)
        env["TELEPIPE_CAPTURE__DLQ_SUFFIX"] = "-dlq"
        self.assertClean(problems_for(self.tree.write(), template))
        env["TELEPIPE_CAPTURE__DLQ_SUFFIX"] = "-other"
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "capture derives TELEPIPE_DLQ_URL")
        self.assertEqual(len(found["Router"]), 1, found["Router"])

    def test_per_stage_function_must_not_set_the_suffix(self):
        template = copy.deepcopy(TEMPLATE)
        env = template["Resources"]["CaptureFunction"]["Properties"]["Environment"]["Variables"]
        env["TELEPIPE_DLQ_SUFFIX"] = "-dlq"
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "PerStage", "CaptureFunction: sets TELEPIPE_DLQ_SUFFIX: only a router function")
        del env["TELEPIPE_DLQ_URL"]
        found = problems_for(self.tree.write(), template)
        self.assertTrue(any("CaptureFunction: sets TELEPIPE_DLQ_SUFFIX" in p for p in found["PerStage"]), found)
        self.assertTrue(any("lacks ['TELEPIPE_DLQ_URL']" in p for p in found["PerStage"]), found)

    def test_derived_mismatch(self):
        resources = {
            "A": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "a"}},
            "ADlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "a-dlq"}},
            "B": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": ["${P}-b", {"P": "x"}]}}},
            "BDlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": ["${P}-b-dlq", {"P": "x"}]}}},
            "Unnamed": {"Type": "AWS::SQS::Queue", "Properties": {}},
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
        }
        self.assertIsNone(ct.derived_mismatch({"Ref": "A"}, "-dlq", {"Ref": "ADlq"}, resources))
        self.assertIsNone(ct.derived_mismatch({"Fn::GetAtt": "A.QueueUrl"}, " -dlq ", {"Fn::GetAtt": ["ADlq", "QueueUrl"]}, resources))
        self.assertIsNone(ct.derived_mismatch({"Ref": "B"}, "-dlq", {"Ref": "BDlq"}, resources))
        self.assertIn("QueueName", ct.derived_mismatch({"Ref": "A"}, "-dlq", {"Ref": "BDlq"}, resources))
        self.assertIn("not the URL of a queue", ct.derived_mismatch({"Fn::GetAtt": "A.Arn"}, "-dlq", {"Ref": "ADlq"}, resources))
        self.assertIn("not the URL of a queue", ct.derived_mismatch({"Ref": "Bucket"}, "-dlq", {"Ref": "ADlq"}, resources))
        self.assertIn("per-stage value", ct.derived_mismatch({"Ref": "A"}, "-dlq", "https://sqs/a-dlq", resources))
        self.assertIn("has no QueueName", ct.derived_mismatch({"Ref": "Unnamed"}, "-dlq", {"Ref": "ADlq"}, resources))

    # ----- blank variables: unset on the router ------------------------------------------

    def test_router_leaves_blank_credentials_unset(self):
        env = self.router_env(TEMPLATE)
        for variable in ("TELEPIPE_PHONE_KEY", "TELEPIPE_TWILIO_ACCOUNT_SID", "TELEPIPE_TWILIO_AUTH_TOKEN"):
            self.assertNotIn(variable, env)
            self.assertEqual(written_env("NotifierFunction")[variable], "")

    def test_router_may_omit_only_what_its_stage_sets_blank(self):
        template = copy.deepcopy(TEMPLATE)
        template["Resources"]["NotifierFunction"]["Properties"]["Environment"]["Variables"]["TELEPIPE_TWILIO_AUTH_TOKEN"] = "x"
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "lacks ['TELEPIPE_TWILIO_AUTH_TOKEN (notifier)']", "notifier reads TELEPIPE_TWILIO_AUTH_TOKEN")
        template = copy.deepcopy(TEMPLATE)
        del self.router_env(template)["TELEPIPE_CLINIC_NAME"]  # not blank per stage: required
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "lacks ['TELEPIPE_CLINIC_NAME (notifier)']")

    def test_router_sets_a_blank_variable(self):
        template = copy.deepcopy(TEMPLATE)
        self.router_env(template)["TELEPIPE_PHONE_KEY"] = ""
        self.assertClean(problems_for(self.tree.write(), template))
        self.router_env(template)["TELEPIPE_PHONE_KEY"] = "a-key"
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "sessions reads TELEPIPE_PHONE_KEY")

    def test_per_stage_function_still_sets_its_blank_variables(self):
        template = copy.deepcopy(TEMPLATE)
        del template["Resources"]["SessionsFunction"]["Properties"]["Environment"]["Variables"]["TELEPIPE_PHONE_KEY"]
        found = problems_for(self.tree.write(), template)
        self.assertTrue(any("SessionsFunction: Environment lacks ['TELEPIPE_PHONE_KEY']" in p for p in found["PerStage"]))
        # ... and the router's allowance goes with it.
        self.assertTrue(any("lacks ['TELEPIPE_PHONE_KEY (sessions)']" in p for p in found["Router"]))

    def test_router_scoped_variable_no_stage_reads(self):
        template = copy.deepcopy(TEMPLATE)
        self.router_env(template)["TELEPIPE_INTAKE__RESULTS_BUCKET"] = "x"  # clinical's, not intake's
        self.router_env(template)["TELEPIPE_SWEEPER__QUEUE_URL"] = "x"  # a stage it does not serve
        self.router_env(template)["TELEPIPE_CLINICAL__METRICS"] = "x"  # shared: never scoped
        found = problems_for(self.tree.write(), template)
        self.assertOnly(
            found,
            "Router",
            "TELEPIPE_INTAKE__RESULTS_BUCKET",
            "TELEPIPE_SWEEPER__QUEUE_URL",
            "TELEPIPE_CLINICAL__METRICS",
        )

    def test_router_value_differs_from_the_per_stage_function(self):
        template = copy.deepcopy(TEMPLATE)
        self.router_env(template)["TELEPIPE_CLINICAL__QUEUE_URL"] = {"Ref": "IntakeQueue"}
        self.router_env(template)["TELEPIPE_NLP_CONCURRENCY"] = "8"
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "clinical reads TELEPIPE_QUEUE_URL", "clinical reads TELEPIPE_NLP_CONCURRENCY")

    def test_router_scoped_override_of_a_shared_value(self):
        # A scoped value equal to the per-stage one is fine, whatever the unscoped one says.
        template = copy.deepcopy(TEMPLATE)
        env = self.router_env(template)
        env["TELEPIPE_CAPTURE__RECORDINGS_PREFIX"] = env["TELEPIPE_RECORDINGS_PREFIX"]
        self.assertClean(problems_for(self.tree.write(), template))

    def test_router_stage_value(self):
        template = copy.deepcopy(TEMPLATE)
        self.router_env(template)["TELEPIPE_STAGE"] = "everything"
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "needs TELEPIPE_STAGE set to one of")

    def test_router_statements_and_events(self):
        template = copy.deepcopy(TEMPLATE)
        resources = template["Resources"]
        statements = resources["RouterRepliesPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        statements[:] = [s for s in statements if s.get("Sid") != "SuppressionListOnly"]
        del resources["RouterFunction"]["Properties"]["Events"]["CaptureQueue"]
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "lacks statement SuppressionListOnly", "Events differ")

    def test_router_timeout_and_memory(self):
        template = copy.deepcopy(TEMPLATE)
        props = template["Resources"]["RouterFunction"]["Properties"]
        props["Timeout"] = 60
        template["Parameters"]["RouterMemorySize"] = dict(template["Parameters"]["RouterMemorySize"], Default=256)
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "Timeout 60 is below ClinicalFunction's", "MemorySize")

    def test_single_stage_router_function_drifts(self):
        template = copy.deepcopy(TEMPLATE)
        template["Resources"]["RouterSweeperFunction"]["Properties"]["Timeout"] = 900
        template["Resources"]["RouterSweeperFunction"]["Properties"]["Environment"]["Variables"]["TELEPIPE_STATUS_TTL_DAYS"] = "1"
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "RouterSweeperFunction: Timeout differs", "sweeper reads TELEPIPE_STATUS_TTL_DAYS")

    def test_router_confines_polling_to_its_queues(self):
        template = copy.deepcopy(TEMPLATE)
        policies = template["Resources"]["RouterFunction"]["Properties"]["Policies"]
        deny = next(p for p in policies if isinstance(p, dict) and "Statement" in p)["Statement"][0]
        deny["NotResource"] = deny["NotResource"][:-1]
        found = problems_for(self.tree.write(), template)
        self.assertOnly(found, "Router", "NotResource exactly its SQS events' queues")

    def test_queue_visibility_below_timeout(self):
        template = copy.deepcopy(TEMPLATE)
        template["Resources"]["RepliesQueue"]["Properties"]["VisibilityTimeout"] = 20
        found = problems_for(self.tree.write(), template)
        self.assertTrue(any("RepliesQueue VisibilityTimeout 20 is below the Timeout 30" in p for p in found["PerStage"]))
        self.assertTrue(any("RepliesQueue VisibilityTimeout 20 is below the Timeout 300" in p for p in found["Router"]))


class EnvironmentSize(unittest.TestCase):
    def sizes(self, template, layout):
        problems, warnings = [], []
        resolved = ct.deployed(template, {ct.LAYOUT_PARAMETER: layout})
        ct.environment_sizes(resolved, problems, warnings)
        return problems, warnings

    def test_estimate_uses_long_names(self):
        resolved = ct.deployed(TEMPLATE, {ct.LAYOUT_PARAMETER: "PerStage"})
        url = ct.estimate({"Ref": "IntakeQueue"}, resolved)
        self.assertEqual(url, f"https://sqs.{ct.LONG_REGION}.amazonaws.com/{ct.ACCOUNT}/{'p' * 20}-intake")
        self.assertEqual(ct.estimate({"Fn::If": ["X", "a", "abc"]}, resolved), "abc")

    def test_both_layouts_fit(self):
        # The router fits (queue URL + TELEPIPE_DLQ_SUFFIX for its DLQs): no known exception.
        self.assertNotIn("RouterFunction", ct.ENV_SIZE_KNOWN_OVER)
        self.assertEqual(self.sizes(TEMPLATE, "PerStage"), ([], []))
        self.assertEqual(self.sizes(TEMPLATE, "Router"), ([], []))

    def test_router_over_again_fails(self):
        template = copy.deepcopy(TEMPLATE)
        env = template["Resources"]["RouterFunction"]["Properties"]["Environment"]["Variables"]
        for stage, dlq in zip(ct.SQS_STAGES, ("IntakeDlq", "ClinicalDlq", "SessionsDlq", "NotificationsDlq", "CaptureDlq", "RepliesDlq")):
            env[f"TELEPIPE_{ct.scope(stage)}__DLQ_URL"] = {"Ref": dlq}
        problems, warnings = self.sizes(template, "Router")
        self.assertTrue(any("RouterFunction" in p and "the deploy would fail" in p for p in problems), problems)
        self.assertEqual(warnings, [])

    def test_a_function_over_the_limit(self):
        template = copy.deepcopy(TEMPLATE)
        written_env = template["Resources"]["IntakeFunction"]["Properties"]["Environment"]["Variables"]
        written_env["TELEPIPE_PADDING"] = "x" * 3000
        problems, _ = self.sizes(template, "PerStage")
        self.assertTrue(any("IntakeFunction" in p and "the deploy would fail" in p for p in problems), problems)

    def test_known_over_entry_expires_once_it_fits(self):
        template = copy.deepcopy(TEMPLATE)
        env = template["Resources"]["RouterFunction"]["Properties"]["Environment"]["Variables"]
        for name in list(env)[20:]:
            del env[name]
        saved = dict(ct.ENV_SIZE_KNOWN_OVER)
        ct.ENV_SIZE_KNOWN_OVER["RouterFunction"] = "test"
        try:
            problems, warnings = self.sizes(template, "Router")
        finally:
            ct.ENV_SIZE_KNOWN_OVER.clear()
            ct.ENV_SIZE_KNOWN_OVER.update(saved)
        self.assertTrue(any("remove it from ENV_SIZE_KNOWN_OVER" in p for p in problems), problems)
        self.assertEqual(warnings, [])

    def test_unknown_value(self):
        template = copy.deepcopy(TEMPLATE)
        template["Resources"]["CaptureFunction"]["Properties"]["Environment"]["Variables"]["X"] = {"Fn::ImportValue": "y"}
        problems, _ = self.sizes(template, "PerStage")
        self.assertTrue(any("cannot estimate" in p for p in problems), problems)


class Layouts(unittest.TestCase):
    def test_each_layout_has_its_functions(self):
        functions = {
            layout: sorted(
                n for n, r in ct.deployed(TEMPLATE, {ct.LAYOUT_PARAMETER: layout})["Resources"].items()
                if r["Type"] == "AWS::Serverless::Function"
            )
            for layout in ("PerStage", "Router")
        }
        self.assertEqual(
            functions["PerStage"],
            sorted(f for _, f, _ in STAGES.values()),
        )
        self.assertEqual(functions["Router"], ["RouterFunction", "RouterSmsInboundFunction", "RouterSweeperFunction"])

    def test_per_stage_layout_is_the_template_before_the_router(self):
        # Every PerStage value that depends on the layout resolves to the per-stage one.
        resolved = ct.deployed(TEMPLATE, {ct.LAYOUT_PARAMETER: "PerStage"})["Resources"]
        self.assertEqual(resolved["IntakeQueue"]["Properties"]["VisibilityTimeout"], 360)
        self.assertEqual(resolved["RepliesQueue"]["Properties"]["VisibilityTimeout"], 180)
        self.assertEqual(resolved["SmsInboundFunctionUrl"]["Properties"]["TargetFunctionArn"], {"Fn::GetAtt": ["SmsInboundFunction", "Arn"]})
        self.assertEqual(resolved["SweeperErrorsAlarm"]["Properties"]["Dimensions"][0]["Value"], {"Ref": "SweeperFunction"})
        self.assertNotIn("RouterLogGroup", resolved)

    def test_open_conditions_stay_open(self):
        resolved = ct.deployed(TEMPLATE, {ct.LAYOUT_PARAMETER: "Router"})["Resources"]
        self.assertIn("RouterSmsInboundFunction", resolved)  # UseTwilio is open: kept
        self.assertIn("Fn::If", resolved["IntakeDlq"]["Properties"]["KmsMasterKeyId"])  # CreateKmsKey open


if __name__ == "__main__":
    unittest.main(verbosity=1)
