//! The built `sms-inbound` binary as Lambda runs it: a stand-in Runtime API hands it
//! function-URL events, the real SDK sends to a replies queue on moto
//! (`TELEPIPE_MOTO_URL`, which scripts/test.sh sets). A correctly signed request → 200
//! with empty TwiML and one message on the queue; a wrongly signed one → 403, nothing queued.

mod support {
    pub mod mini_http;
    pub mod moto;
    pub mod runtime_api;
}

use std::process::{Command, Stdio};
use std::time::Duration;
use support::runtime_api::{runtime_api, Answer};
use telepipe_workers::aws::twilio_webhook::{twilio_signature, EMPTY_TWIML};

const WEBHOOK_URL: &str = "https://sms.example.org/twilio";
const TOKEN: &str = "test-auth-token";

fn function_url_event(params: &[(&str, &str)], signature: &str) -> String {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    serde_json::json!({
        "version": "2.0", "rawPath": "/twilio", "rawQueryString": "",
        "headers": {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature},
        "requestContext": {"domainName": "abc.lambda-url.us-east-1.on.aws", "http": {"method": "POST"}},
        "body": body, "isBase64Encoded": false,
    })
    .to_string()
}

#[tokio::test]
async fn signed_webhooks_are_queued_and_unsigned_ones_refused_by_the_built_lambda() {
    let Ok(moto) = std::env::var("TELEPIPE_MOTO_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide TELEPIPE_MOTO_URL (scripts/test.sh does)"
        );
        eprintln!("skipped: set TELEPIPE_MOTO_URL (scripts/test.sh does)");
        return;
    };
    let sdk = support::moto::sdk(&moto).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("replies-{}", fastrand::u32(..)))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let params = [
        ("MessageSid", "SM0001"),
        ("AccountSid", "AC1"),
        ("From", "+15551230000"),
        ("To", "+15559870000"),
        ("Body", "CONFIRM"),
    ];
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let good = twilio_signature(TOKEN, WEBHOOK_URL, &owned);
    let bad = twilio_signature("another-token", WEBHOOK_URL, &owned);
    let (port, responses) = runtime_api(vec![
        function_url_event(&params, &good),
        function_url_event(&params, &bad),
    ]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_sms-inbound"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "sms-inbound")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", &moto)
        .env("TELEPIPE_TWILIO_WEBHOOK_URL", WEBHOOK_URL)
        .env("TELEPIPE_TWILIO_AUTH_TOKEN", TOKEN)
        .env("TELEPIPE_REPLIES_QUEUE_URL", &queue_url)
        .env("TELEPIPE_METRICS", "off")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = responses.recv_timeout(Duration::from_secs(30));
    let second = responses.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();

    let body = |answer: Result<Answer, _>| answer.expect("an answer within 30 s").response();
    let first: serde_json::Value = serde_json::from_str(&body(first)).unwrap();
    assert_eq!(first["statusCode"], 200);
    assert_eq!(first["body"], EMPTY_TWIML);
    let second: serde_json::Value = serde_json::from_str(&body(second)).unwrap();
    assert_eq!(second["statusCode"], 403);

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages = received.messages();
    assert_eq!(
        messages.len(),
        1,
        "one message queued, none for the bad signature"
    );
    let sms: telepipe_events::replies::InboundSms =
        serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(
        (sms.from.as_str(), sms.body.as_str()),
        ("+15551230000", "CONFIRM")
    );
}
