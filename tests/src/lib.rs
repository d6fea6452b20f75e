//! Shared harness of the cross-crate tests: a moto server to point the real AWS SDK at.
//!
//! `scripts/test.sh` starts one moto server and passes `TELEPIPE_MOTO_URL`; when that is
//! unset the harness starts `moto_server` itself (from `TELEPIPE_MOTO_SERVER`, or the
//! project venv `.venv/bin/moto_server`) under a watchdog that stops it when the test
//! process exits. Tests isolate themselves by unique resource names, not by resets,
//! so they can run in parallel against one server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use telepipe_workers::aws::AwsContext;

static ENDPOINT: OnceLock<String> = OnceLock::new();
static WATCHDOG: OnceLock<std::sync::Mutex<std::process::Child>> = OnceLock::new();

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn start_moto() -> String {
    let server = std::env::var("TELEPIPE_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/moto_server"));
    assert!(
        server.exists(),
        "moto_server not found at {}: run scripts/setup-python.sh (or set TELEPIPE_MOTO_URL to a running server)",
        server.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The shell watches this test process and stops moto when it is gone, so no server outlives the run.
    let script = format!(
        "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & moto=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $moto",
        server.display(),
        std::process::id()
    );
    let watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server watchdog");
    // Kept, never waited on: it outlives every test and ends itself with this process.
    WATCHDOG.get_or_init(|| std::sync::Mutex::new(watchdog));
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    endpoint
}

/// The moto endpoint every test in this process shares.
pub fn moto_endpoint() -> &'static str {
    ENDPOINT.get_or_init(|| std::env::var("TELEPIPE_MOTO_URL").unwrap_or_else(|_| start_moto()))
}

/// SDK configuration aimed at moto, with static test credentials.
pub async fn moto_context() -> AwsContext {
    let credentials =
        aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "telepipe-tests");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await;
    AwsContext::new(sdk, true)
}

/// A name no other test in this run uses (S3 bucket rules: lowercase, digits, hyphens).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn s3_client(context: &AwsContext) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&context.sdk)
            .force_path_style(true)
            .build(),
    )
}

pub fn sqs_client(context: &AwsContext) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&context.sdk)
}

/// Creates a queue and returns (url, arn).
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .unwrap();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let arn =
        attributes.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    (url, arn)
}

/// Receives until `want` messages arrived or `timeout` passed.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    want: usize,
    timeout: Duration,
) -> Vec<aws_sdk_sqs::types::Message> {
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    while messages.len() < want && Instant::now() < deadline {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        messages.extend(output.messages.unwrap_or_default());
    }
    messages
}

/// Creates an on-demand DynamoDB table keyed by string `pk`/`sk` (the sessions table's
/// shape; the status table's GSIs are not needed by tests that only write and read items).
pub async fn create_pk_sk_table(context: &AwsContext, prefix: &str) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let table = unique(prefix);
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    aws_sdk_dynamodb::Client::new(&context.sdk)
        .create_table()
        .table_name(&table)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    table
}
