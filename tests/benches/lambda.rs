//! The Lambda binaries as Lambda runs them, against a stand-in Runtime API:
//! - cold start: process start until the first `GET /runtime/invocation/next`, median of
//!   10, for `intake` and `clinical`, next to a Python 3.11 + boto3 handler building the
//!   same clients, and for the single artifact `telepipe-lambda` serving `intake` alone
//!   (`TELEPIPE_STAGE=intake`) and every SQS stage (`TELEPIPE_STAGE=auto`), each next to
//!   the per-stage `intake` binary (all measured in the same run);
//! - peak RSS of `clinical` processing a 4-hour transcript (S3, EventBridge and SQS on
//!   moto; Comprehend Medical on a stub answering empty CBOR results).
//!
//! Run: `scripts/bench.sh` (builds the release binaries first), or
//! `cargo build --release -p telepipe-workers --bins && cargo bench -p telepipe-tests --bench lambda`.

#[path = "../../workers/tests/support/comprehend_stub.rs"]
mod comprehend_stub;
#[path = "../../workers/tests/support/mini_http.rs"]
mod mini_http;

use comprehend_stub::comprehend_stub;
use mini_http::{read_request, respond};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};
use telepipe_tests::{create_queue, moto_context, moto_endpoint, s3_client, sqs_client, unique};
use telepipe_workers::synth::{transcript, SynthLabels};

const RUNS: usize = 10;

/// What the stand-in Runtime API saw.
enum Seen {
    Next(Instant),
    Response(String),
    Error(String),
}

/// A minimal HTTP/1.1 Runtime API: `/next` hands out `event` once (then holds), responses are reported.
fn runtime_api(event: Option<String>) -> (u16, Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut event = event;
        for stream in listener.incoming().flatten() {
            let tx: Sender<Seen> = tx.clone();
            let (path, body) = read_request(&stream);
            if path.ends_with("/invocation/next") {
                let _ = tx.send(Seen::Next(Instant::now()));
                match event.take() {
                    Some(payload) => {
                        let deadline = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_millis()
                            + 300_000;
                        let headers = format!(
                            "Lambda-Runtime-Aws-Request-Id: req-1\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n"
                        );
                        respond(stream, "200 OK", &headers, payload.as_bytes());
                    }
                    // Hold the connection: the process is measured, then killed.
                    None => {
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_secs(600));
                            drop(stream)
                        });
                    }
                }
            } else if path.contains("/response") {
                let _ = tx.send(Seen::Response(body));
                respond(stream, "202 Accepted", "", b"{}");
            } else {
                let _ = tx.send(Seen::Error(format!("{path}: {body}")));
                respond(stream, "202 Accepted", "", b"{}");
            }
        }
    });
    (port, rx)
}

fn binary(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    let path = target.join("release").join(name);
    assert!(
        path.exists(),
        "{} missing: run cargo build --release -p telepipe-workers --bins",
        path.display()
    );
    path
}

fn lambda_env(command: &mut Command, runtime_port: u16) {
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("127.0.0.1:{runtime_port}"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("TELEPIPE_QUEUE_URL", "http://127.0.0.1:1/q")
        .env("TELEPIPE_DLQ_URL", "http://127.0.0.1:1/dlq")
        .env("TELEPIPE_TRANSCRIPTS_BUCKET", "transcripts")
        .env("TELEPIPE_RESULTS_BUCKET", "results")
        .env("TELEPIPE_STATUS_TABLE", "status")
        .env("TELEPIPE_METRICS", "off")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
}

/// Median time from spawn to the first `/next` over `RUNS` starts.
fn cold_start(mut make: impl FnMut(u16) -> Command) -> Duration {
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let (port, seen) = runtime_api(None);
        let mut command = make(port);
        let started = Instant::now();
        let mut child = command.spawn().expect("spawn");
        match seen.recv_timeout(Duration::from_secs(30)) {
            Ok(Seen::Next(at)) => samples.push(at - started),
            Ok(Seen::Error(e)) => panic!("init error: {e}"),
            _ => panic!("no request for an event within 30 s"),
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    samples.sort();
    samples[RUNS / 2]
}

fn peak_rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let handler = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/boto3_handler.py");
    // As deployed, SSL_CERT_FILE names the one CA bundle (the template sets it); without
    // it rustls-native-certs also reads every file of the certificate directory, which
    // on Debian is ~280 files.
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    let mut results = Vec::new();
    for (name, with_bundle) in [
        ("intake", true),
        ("clinical", true),
        ("intake", false),
        ("clinical", false),
    ] {
        let path = binary(name);
        let median = cold_start(|port| {
            let mut command = Command::new(&path);
            lambda_env(&mut command, port);
            if with_bundle {
                command.env("SSL_CERT_FILE", bundle);
            }
            command
        });
        let label = if with_bundle {
            format!("{name} (Rust, SSL_CERT_FILE as deployed)")
        } else {
            format!("{name} (Rust, certificate directory scanned)")
        };
        results.push((label, median));
    }
    // The router: the same intake function from the one artifact, then one function
    // serving all six SQS stages (every stage's variables set, queues scoped).
    let router = binary("telepipe-lambda");
    let served = |stage: &'static str| {
        let router = router.clone();
        move |port| {
            let mut command = Command::new(&router);
            lambda_env(&mut command, port);
            command
                .env("SSL_CERT_FILE", bundle)
                .env("TELEPIPE_STAGE", stage);
            if stage == "auto" {
                for scope in [
                    "INTAKE", "CLINICAL", "SESSIONS", "NOTIFIER", "CAPTURE", "REPLIES",
                ] {
                    let queue = format!("http://127.0.0.1:1/123456789012/{scope}");
                    command
                        .env(format!("TELEPIPE_{scope}__QUEUE_URL"), &queue)
                        .env(format!("TELEPIPE_{scope}__DLQ_URL"), format!("{queue}-dlq"));
                }
                let arn = "arn:aws:sqs:us-east-1:123456789012:q";
                command
                    .env("TELEPIPE_RECORDINGS_BUCKET", "recordings")
                    .env("TELEPIPE_SESSIONS_TABLE", "sessions")
                    .env("TELEPIPE_NOTIFICATIONS_QUEUE_URL", "http://127.0.0.1:1/n")
                    .env("TELEPIPE_NOTIFICATIONS_QUEUE_ARN", arn)
                    .env("TELEPIPE_SESSIONS_QUEUE_ARN", arn)
                    .env("TELEPIPE_SCHEDULER_DLQ_ARN", arn)
                    .env("TELEPIPE_SCHEDULE_GROUP", "telepipe")
                    .env(
                        "TELEPIPE_SCHEDULER_ROLE_ARN",
                        "arn:aws:iam::123456789012:role/s",
                    )
                    .env("TELEPIPE_PHONE_KEY", "a-bench-phone-key-of-enough-length");
            }
            command
        }
    };
    let own_intake = results[0].1;
    let router_intake = cold_start(served("intake"));
    let router_auto = cold_start(served("auto"));

    let boto3 = cold_start(|port| {
        let mut command = Command::new(&python);
        command.arg(&handler);
        lambda_env(&mut command, port);
        command
    });
    println!("Cold start: process start → first request for an event (median of {RUNS})");
    println!("| handler | median | speed-up vs Python 3.11 + boto3 |");
    println!("|---|---|---|");
    for (name, median) in &results {
        println!(
            "| {name} | {:.1} ms | {:.0}× |",
            median.as_secs_f64() * 1e3,
            boto3.as_secs_f64() / median.as_secs_f64()
        );
    }
    println!(
        "| Python 3.11 + boto3 (5 clients) | {:.1} ms | 1× |",
        boto3.as_secs_f64() * 1e3
    );
    println!();
    println!("One artifact for every stage (SSL_CERT_FILE as deployed), same run");
    println!("| function | median | vs the per-stage intake binary |");
    println!("|---|---|---|");
    for (label, median) in [
        ("intake (per-stage binary)", own_intake),
        ("telepipe-lambda, TELEPIPE_STAGE=intake", router_intake),
        (
            "telepipe-lambda, TELEPIPE_STAGE=auto (6 SQS stages)",
            router_auto,
        ),
    ] {
        println!(
            "| {label} | {:.1} ms | {:.2}× |",
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() / own_intake.as_secs_f64()
        );
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (bucket, key, results_bucket, status_table, size) = runtime.block_on(async {
        let context = moto_context().await;
        let s3 = s3_client(&context);
        let (transcripts, results) = (unique("bench-transcripts"), unique("bench-results"));
        s3.create_bucket()
            .bucket(&transcripts)
            .send()
            .await
            .unwrap();
        s3.create_bucket().bucket(&results).send().await.unwrap();
        let body = transcript(240 * 150, SynthLabels::Speakers);
        let size = body.len();
        let key = "transcripts/bench-4h/bench-4h-000000000000000000000000.json".to_owned();
        s3.put_object()
            .bucket(&transcripts)
            .key(&key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
        let sqs = sqs_client(&context);
        create_queue(&sqs, "bench-clinical").await;
        let bus = aws_sdk_eventbridge::Client::new(&context.sdk);
        let _ = bus.create_event_bus().name("bench-bus").send().await;
        let status_table = telepipe_tests::create_pk_sk_table(&context, "bench-status").await;
        (transcripts, key, results, status_table, size)
    });
    let notification = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]});
    let event = serde_json::json!({"Records": [{"messageId": "m-1", "receiptHandle": "rh-1",
        "body": notification.to_string(), "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-clinical",
        "awsRegion": "us-east-1"}]});
    let (port, seen) = runtime_api(Some(event.to_string()));
    let stub = comprehend_stub();
    let mut command = Command::new(binary("clinical"));
    lambda_env(&mut command, port);
    command
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env(
            "AWS_ENDPOINT_URL_COMPREHENDMEDICAL",
            format!("http://127.0.0.1:{stub}"),
        )
        .env("TELEPIPE_S3_FORCE_PATH_STYLE", "true")
        .env("TELEPIPE_RESULTS_BUCKET", &results_bucket)
        .env("TELEPIPE_STATUS_TABLE", &status_table)
        .env("TELEPIPE_EVENT_BUS", "bench-bus");
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let response = loop {
        match seen
            .recv_timeout(Duration::from_secs(120))
            .expect("clinical answered within 120 s")
        {
            Seen::Response(body) => break body,
            Seen::Error(e) => panic!("clinical failed: {e}"),
            Seen::Next(_) => continue,
        }
    };
    let elapsed = started.elapsed();
    // Wait for the next /next so the peak includes everything after the answer too.
    let _ = seen.recv_timeout(Duration::from_secs(5));
    let peak = peak_rss_kib(&child);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        response, r#"{"batchItemFailures":[]}"#,
        "the transcript was processed"
    );
    println!();
    println!(
        "clinical on a 4-hour transcript ({:.1} MB): peak RSS {:.1} MB, answered in {:.0} ms (incl. start-up, moto S3 and the Comprehend stub)",
        size as f64 / 1e6,
        peak as f64 / 1024.0,
        elapsed.as_secs_f64() * 1e3
    );
}
