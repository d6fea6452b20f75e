//! The built Lambda binaries end to end, as Lambda runs them: a stand-in Runtime API
//! hands each an SQS event, the real SDK talks to S3, SQS, DynamoDB, EventBridge and
//! Transcribe on moto (`TELEPIPE_MOTO_URL`, which scripts/test.sh sets) and to a
//! Comprehend Medical stand-in.
//!
//! The same checks run against the per-stage binaries (`intake`, `clinical`) and against
//! `telepipe-lambda` with `TELEPIPE_STAGE=intake` / `clinical` and the same variables,
//! then against one `telepipe-lambda` with `TELEPIPE_STAGE=auto` serving every SQS stage,
//! each record routed by its queue ARN and each stage reading its own
//! `TELEPIPE_{STAGE}__QUEUE_URL`.

mod support {
    pub mod comprehend_stub;
    pub mod mini_http;
    pub mod moto;
    pub mod runtime_api;
}

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::comprehend_stub::comprehend_stub;
use support::runtime_api::{runtime_api, Answer};
use telepipe_workers::synth::{transcript, SynthLabels};

const ACCOUNT: &str = "123456789012";

/// Buckets, queues, a status table and a bus of one test run in moto.
struct Stack {
    moto: String,
    sdk: aws_config::SdkConfig,
    suffix: String,
    recordings: String,
    transcripts: String,
    results: String,
    status_table: String,
    bus: String,
    /// (queue URL, DLQ URL) per stage name.
    queues: Vec<(&'static str, String, String)>,
}

impl Stack {
    async fn new(moto: String) -> Self {
        let sdk = support::moto::sdk(&moto).await;
        let suffix = format!("{:08x}", fastrand::u32(..));
        let s3 = self::s3(&sdk);
        let name = |what: &str| format!("lambda-{what}-{suffix}");
        let (recordings, transcripts, results) =
            (name("recordings"), name("transcripts"), name("results"));
        for bucket in [&recordings, &transcripts, &results] {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let mut queues = Vec::new();
        for stage in [
            "intake", "clinical", "sessions", "notifier", "capture", "replies",
        ] {
            let mut urls = Vec::new();
            for kind in ["queue", "dlq"] {
                let queue = sqs
                    .create_queue()
                    .queue_name(name(&format!("{stage}-{kind}")))
                    .send()
                    .await
                    .unwrap();
                urls.push(queue.queue_url.unwrap());
            }
            queues.push((stage, urls[0].clone(), urls[1].clone()));
        }
        let status_table = name("status");
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .unwrap()
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        aws_sdk_dynamodb::Client::new(&sdk)
            .create_table()
            .table_name(&status_table)
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attribute("pk"))
            .attribute_definitions(attribute("sk"))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
        let bus = name("bus");
        aws_sdk_eventbridge::Client::new(&sdk)
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .unwrap();
        Self {
            moto,
            sdk,
            suffix,
            recordings,
            transcripts,
            results,
            status_table,
            bus,
            queues,
        }
    }

    fn queue(&self, stage: &str) -> (&str, &str) {
        let (_, url, dlq) = self.queues.iter().find(|(s, ..)| *s == stage).unwrap();
        (url, dlq)
    }

    fn queue_arn(&self, stage: &str) -> String {
        let name = self.queue(stage).0.rsplit('/').next().unwrap().to_owned();
        format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}")
    }

    /// A process as Lambda starts it, with the variables every stage shares.
    fn command(&self, binary: &str, runtime_port: u16, comprehend_port: u16) -> Command {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("127.0.0.1:{runtime_port}"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "telepipe-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", &self.moto)
            .env(
                "AWS_ENDPOINT_URL_COMPREHENDMEDICAL",
                format!("http://127.0.0.1:{comprehend_port}"),
            )
            .env("TELEPIPE_S3_FORCE_PATH_STYLE", "true")
            .env("TELEPIPE_TRANSCRIPTS_BUCKET", &self.transcripts)
            .env("TELEPIPE_RESULTS_BUCKET", &self.results)
            .env("TELEPIPE_STATUS_TABLE", &self.status_table)
            .env("TELEPIPE_EVENT_BUS", &self.bus)
            .env("TELEPIPE_METRICS", "off")
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    }

    /// The variables of one stage's own function.
    fn for_stage(&self, command: &mut Command, stage: &str) {
        let (url, dlq) = self.queue(stage);
        command
            .env("TELEPIPE_QUEUE_URL", url)
            .env("TELEPIPE_DLQ_URL", dlq);
    }

    /// The router's variables: every SQS stage's queues, scoped, and what the stages
    /// not exercised here need to start (they make no calls at start-up).
    fn for_router(&self, command: &mut Command) {
        for (stage, url, dlq) in &self.queues {
            let scope = stage.to_ascii_uppercase();
            command
                .env(format!("TELEPIPE_{scope}__QUEUE_URL"), url)
                .env(format!("TELEPIPE_{scope}__DLQ_URL"), dlq);
        }
        let arn = |stage: &str| self.queue_arn(stage);
        command
            .env("TELEPIPE_STAGE", "auto")
            .env("TELEPIPE_RECORDINGS_BUCKET", &self.recordings)
            .env(
                "TELEPIPE_SESSIONS_TABLE",
                format!("sessions-{}", self.suffix),
            )
            .env("TELEPIPE_NOTIFICATIONS_QUEUE_URL", self.queue("notifier").0)
            .env("TELEPIPE_NOTIFICATIONS_QUEUE_ARN", arn("notifier"))
            .env("TELEPIPE_SESSIONS_QUEUE_ARN", arn("sessions"))
            .env("TELEPIPE_SCHEDULE_GROUP", "telepipe")
            .env(
                "TELEPIPE_SCHEDULER_ROLE_ARN",
                format!("arn:aws:iam::{ACCOUNT}:role/scheduler"),
            )
            .env("TELEPIPE_SCHEDULER_DLQ_ARN", arn("sessions"))
            .env("TELEPIPE_PHONE_KEY", "a-test-phone-key-of-enough-length");
    }

    /// An upload of a recording for `session` and the SQS event announcing it.
    async fn recording(&self, session: &str) -> (String, String) {
        let key = format!("recordings/{session}/visit.wav");
        let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
        wav.extend([
            16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0,
        ]);
        wav.extend(b"data\x00\x00\x00\x00");
        wav.extend(vec![0u8; 4000]);
        s3(&self.sdk)
            .put_object()
            .bucket(&self.recordings)
            .key(&key)
            .body(wav.into())
            .send()
            .await
            .unwrap();
        let event = sqs_event(&self.queue_arn("intake"), &self.recordings, &key);
        (key, event)
    }

    /// A finished transcript for `session` and the SQS event announcing it.
    async fn transcript(&self, session: &str) -> String {
        let key = format!("transcripts/{session}/{session}-000000000000000000000000.json");
        s3(&self.sdk)
            .put_object()
            .bucket(&self.transcripts)
            .key(&key)
            .body(transcript(300, SynthLabels::Speakers).into_bytes().into())
            .send()
            .await
            .unwrap();
        sqs_event(&self.queue_arn("clinical"), &self.transcripts, &key)
    }

    /// The medical transcription job reading `key`, if one was started.
    async fn job_for(&self, key: &str) -> Option<String> {
        let transcribe = aws_sdk_transcribe::Client::new(&self.sdk);
        let jobs = transcribe
            .list_medical_transcription_jobs()
            .send()
            .await
            .unwrap();
        for summary in jobs.medical_transcription_job_summaries() {
            let name = summary.medical_transcription_job_name().unwrap().to_owned();
            let job = transcribe
                .get_medical_transcription_job()
                .medical_transcription_job_name(&name)
                .send()
                .await
                .unwrap();
            let uri = job
                .medical_transcription_job()
                .and_then(|j| j.media())
                .and_then(|m| m.media_file_uri())
                .unwrap_or_default()
                .to_owned();
            if uri == format!("s3://{}/{key}", self.recordings) {
                return Some(name);
            }
        }
        None
    }

    /// The keys of the results documents written for `session`.
    async fn results_for(&self, session: &str) -> Vec<String> {
        let listed = s3(&self.sdk)
            .list_objects_v2()
            .bucket(&self.results)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter(|key| key.contains(&format!("/{session}/")))
            .map(str::to_owned)
            .collect()
    }
}

fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// An SQS event of one record from `queue_arn` carrying an S3 notification.
fn sqs_event(queue_arn: &str, bucket: &str, key: &str) -> String {
    let notification = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 4044}}}]});
    serde_json::json!({"Records": [{"messageId": format!("m-{}", fastrand::u32(..)),
        "receiptHandle": "rh-1", "body": notification.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1"}]})
    .to_string()
}

/// Runs `command` over `events` and returns its answers, in order.
fn run(mut command: Command, answers: std::sync::mpsc::Receiver<Answer>, n: usize) -> Vec<String> {
    let mut child = command.spawn().expect("spawn the binary");
    let mut bodies = Vec::new();
    for _ in 0..n {
        match answers.recv_timeout(Duration::from_secs(60)) {
            Ok(answer) => bodies.push(answer.response()),
            Err(_) => {
                let _ = child.kill();
                panic!("no answer within 60 s");
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    bodies
}

fn moto_or_skip() -> Option<String> {
    match std::env::var("TELEPIPE_MOTO_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide TELEPIPE_MOTO_URL (scripts/test.sh does)"
            );
            eprintln!("skipped: set TELEPIPE_MOTO_URL (scripts/test.sh does)");
            None
        }
    }
}

const NO_FAILURES: &str = r#"{"batchItemFailures":[]}"#;

#[tokio::test]
async fn intake_and_clinical_do_the_same_from_their_binaries_and_from_telepipe_lambda() {
    let Some(moto) = moto_or_skip() else { return };
    let stack = Stack::new(moto).await;
    let comprehend = comprehend_stub();
    let router = env!("CARGO_BIN_EXE_telepipe-lambda");
    let servings = [
        ("own", env!("CARGO_BIN_EXE_intake"), "intake", None),
        ("own", env!("CARGO_BIN_EXE_clinical"), "clinical", None),
        ("router", router, "intake", Some("intake")),
        ("router", router, "clinical", Some("clinical")),
    ];
    for (how, binary, stage, stage_variable) in servings {
        let session = format!("{how}-{stage}-{}", stack.suffix);
        let (event, key) = if stage == "intake" {
            let (key, event) = stack.recording(&session).await;
            (event, Some(key))
        } else {
            (stack.transcript(&session).await, None)
        };
        let (port, answers) = runtime_api(vec![event]);
        let mut command = stack.command(binary, port, comprehend);
        stack.for_stage(&mut command, stage);
        if let Some(value) = stage_variable {
            command.env("TELEPIPE_STAGE", value);
        }
        let bodies = run(command, answers, 1);
        assert_eq!(bodies[0], NO_FAILURES, "{how} {stage}");
        match key {
            Some(key) => assert!(
                stack.job_for(&key).await.is_some(),
                "{how} {stage}: a Transcribe Medical job reads the recording"
            ),
            None => assert_eq!(
                stack.results_for(&session).await.len(),
                1,
                "{how} {stage}: one results document"
            ),
        }
    }
}

#[tokio::test]
async fn one_router_serves_every_sqs_stage_routing_records_by_queue() {
    let Some(moto) = moto_or_skip() else { return };
    let stack = Stack::new(moto).await;
    let comprehend = comprehend_stub();
    let session = format!("auto-{}", stack.suffix);
    let (key, intake_event) = stack.recording(&session).await;
    let clinical_event = stack.transcript(&session).await;
    let stray = sqs_event(
        &format!("arn:aws:sqs:us-east-1:{ACCOUNT}:a-queue-nobody-consumes"),
        &stack.recordings,
        &key,
    );
    let (port, answers) = runtime_api(vec![intake_event, clinical_event, stray.clone()]);
    let mut command = stack.command(env!("CARGO_BIN_EXE_telepipe-lambda"), port, comprehend);
    stack.for_router(&mut command);
    let bodies = run(command, answers, 3);

    assert_eq!(bodies[0], NO_FAILURES);
    assert!(
        stack.job_for(&key).await.is_some(),
        "the intake record reached intake"
    );
    assert_eq!(bodies[1], NO_FAILURES);
    assert_eq!(
        stack.results_for(&session).await.len(),
        1,
        "the clinical record reached clinical"
    );
    // A record from a queue no stage reads stays on its queue (reported failed).
    let stray: serde_json::Value = serde_json::from_str(&stray).unwrap();
    let failed: serde_json::Value = serde_json::from_str(&bodies[2]).unwrap();
    assert_eq!(
        failed["batchItemFailures"][0]["itemIdentifier"],
        stray["Records"][0]["messageId"]
    );
}

#[test]
fn telepipe_lambda_refuses_an_unknown_stage_naming_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_telepipe-lambda"))
        .env_clear()
        .env("TELEPIPE_STAGE", "transcode")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TELEPIPE_STAGE"), "{stderr}");
    assert!(stderr.contains("auto or one of intake"), "{stderr}");
}
