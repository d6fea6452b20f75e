//! The real AWS SDK adapters against a moto server: S3 → SQS notifications feeding the
//! stages, the Transcribe Medical job as moto records it, results read back from S3,
//! events received through an EventBridge rule, dead letters with their reasons.
//! Comprehend Medical is not emulated by moto: `clinical` uses an in-memory engine here
//! (its SDK adapter is tested against recorded responses in `comprehend_mocks.rs`).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::Message;
use std::collections::BTreeMap;
use std::time::Duration;
use telepipe_tests::{create_queue, moto_context, receive, s3_client, sqs_client, unique};
use telepipe_workers::aws::{
    AwsContext, EventBridgePublisher, S3Store, SqsQueue, TranscribeMedical,
};
use telepipe_workers::batch::{process_batch, BatchResponse, Disposition, Received};
use telepipe_workers::clinical::ClinicalConfig;
use telepipe_workers::clinical::{self, ClinicalPorts};
use telepipe_workers::config::{ConsumerConfig, Env, EventsConfig};
use telepipe_workers::intake::IntakeConfig;
use telepipe_workers::intake::{self, IntakePorts};
use telepipe_workers::memory::KeywordNlp;
use telepipe_workers::synth::{transcript, SynthLabels};

fn wav_bytes() -> Vec<u8> {
    let mut bytes = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    bytes.extend([
        16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0,
    ]);
    bytes.extend(b"data\x00\x00\x00\x00");
    bytes.extend(vec![0u8; 4000]);
    bytes
}

/// One isolated set of buckets, queues and an event bus in moto.
struct Stack {
    context: AwsContext,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    recordings: String,
    transcripts: String,
    results: String,
    intake_queue: (String, String),
    intake_dlq: (String, String),
    clinical_queue: (String, String),
    clinical_dlq: (String, String),
    events_queue: String,
    bus: String,
}

impl Stack {
    async fn new() -> Self {
        let context = moto_context().await;
        let (s3, sqs) = (s3_client(&context), sqs_client(&context));
        let recordings = unique("recordings");
        let transcripts = unique("transcripts");
        let results = unique("results");
        for bucket in [&recordings, &transcripts, &results] {
            s3.create_bucket()
                .bucket(bucket)
                .send()
                .await
                .expect("create bucket");
        }
        let intake_queue = create_queue(&sqs, &unique("intake")).await;
        let intake_dlq = create_queue(&sqs, &unique("intake-dlq")).await;
        let clinical_queue = create_queue(&sqs, &unique("clinical")).await;
        let clinical_dlq = create_queue(&sqs, &unique("clinical-dlq")).await;
        let (events_queue, events_arn) = create_queue(&sqs, &unique("events")).await;
        for (bucket, queue_arn, prefix) in [
            (&recordings, &intake_queue.1, "recordings/"),
            (&transcripts, &clinical_queue.1, "transcripts/"),
        ] {
            let filter = aws_sdk_s3::types::NotificationConfigurationFilter::builder()
                .key(
                    aws_sdk_s3::types::S3KeyFilter::builder()
                        .filter_rules(
                            aws_sdk_s3::types::FilterRule::builder()
                                .name(aws_sdk_s3::types::FilterRuleName::Prefix)
                                .value(prefix)
                                .build(),
                        )
                        .build(),
                )
                .build();
            let queue = QueueConfiguration::builder()
                .queue_arn(queue_arn)
                .events(Event::from("s3:ObjectCreated:*"))
                .filter(filter)
                .build()
                .unwrap();
            s3.put_bucket_notification_configuration()
                .bucket(bucket)
                .notification_configuration(
                    NotificationConfiguration::builder()
                        .queue_configurations(queue)
                        .build(),
                )
                .send()
                .await
                .expect("configure notification");
        }
        let events = aws_sdk_eventbridge::Client::new(&context.sdk);
        let bus = unique("telepipe-bus");
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("create bus");
        // The same pattern shape the deployed rule uses: every telepipe pipeline event.
        let pattern = serde_json::json!({"source": ["telepipe"], "detail-type": [
            "Transcription Started", "Recording Rejected", "Clinical Entities Extracted"]});
        events
            .put_rule()
            .name("pipeline")
            .event_bus_name(&bus)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule("pipeline")
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("q")
                    .arn(events_arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Self {
            context,
            s3,
            sqs,
            recordings,
            transcripts,
            results,
            intake_queue,
            intake_dlq,
            clinical_queue,
            clinical_dlq,
            events_queue,
            bus,
        }
    }

    fn events_config(&self) -> EventsConfig {
        EventsConfig {
            bus_name: self.bus.clone(),
            source: "telepipe".into(),
        }
    }

    fn consumer(&self, queue: &(String, String), dlq: &(String, String)) -> ConsumerConfig {
        let pairs = [
            ("TELEPIPE_QUEUE_URL", queue.0.as_str()),
            ("TELEPIPE_DLQ_URL", dlq.0.as_str()),
        ];
        let config = ConsumerConfig::from_env(&Env::from_pairs(&pairs)).unwrap();
        config
    }

    async fn upload(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put object");
    }

    /// Receives notification messages as Lambda would get them, skipping S3's test events.
    async fn notifications(&self, queue_url: &str, want: usize) -> Vec<Received> {
        let mut received = Vec::new();
        for message in receive(&self.sqs, queue_url, want + 1, Duration::from_secs(10)).await {
            let body = message.body().unwrap_or_default();
            if body.contains("s3:TestEvent") {
                self.delete(queue_url, &message).await;
                continue;
            }
            received.push(to_received(message));
        }
        assert_eq!(received.len(), want, "notifications on {queue_url}");
        received
    }

    async fn delete(&self, queue_url: &str, message: &Message) {
        self.sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }

    /// What the Lambda service does after a partial batch response: delete the rest.
    async fn settle(&self, queue_url: &str, messages: &[Received], dispositions: &[Disposition]) {
        for (message, disposition) in messages.iter().zip(dispositions) {
            if !disposition.keeps_message() {
                self.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(&message.receipt_handle)
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Runs the real `intake` stage over `messages` through the SDK adapters, as the Lambda does.
    async fn run_intake(&self, messages: &[Received]) -> (BatchResponse, Vec<Disposition>) {
        let store = S3Store::new(&self.context);
        let transcriber = TranscribeMedical::new(&self.context);
        let events = EventBridgePublisher::new(&self.context, self.events_config());
        let queue = SqsQueue::new(
            &self.context,
            self.intake_queue.0.clone(),
            self.intake_dlq.0.clone(),
        );
        let ports = IntakePorts {
            store: &store,
            transcriber: &transcriber,
            events: &events,
            status: &telepipe_workers::memory::MemoryStatus::default(),
        };
        let config = intake_config(self);
        let consumer = self.consumer(&self.intake_queue, &self.intake_dlq);
        process_batch(
            intake::STAGE,
            messages,
            &queue,
            &consumer,
            async |body: &str| intake::handle_message(&ports, &config, body).await,
        )
        .await
    }

    async fn pipeline_events(&self, want: usize) -> Vec<serde_json::Value> {
        receive(&self.sqs, &self.events_queue, want, Duration::from_secs(10))
            .await
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }
}

fn to_received(message: Message) -> Received {
    let receive_count = message
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    Received {
        message_id: message.message_id().unwrap().to_owned(),
        receipt_handle: message.receipt_handle().unwrap().to_owned(),
        body: message.body().unwrap().to_owned(),
        receive_count,
        attributes: BTreeMap::new(),
    }
}

fn intake_config(stack: &Stack) -> IntakeConfig {
    IntakeConfig::from_env(&Env::from_pairs(&[(
        "TELEPIPE_TRANSCRIPTS_BUCKET",
        stack.transcripts.as_str(),
    )]))
    .unwrap()
}

#[tokio::test]
async fn the_s3_object_store_conforms() {
    let context = moto_context().await;
    let bucket = unique("conformance");
    s3_client(&context)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    telepipe_workers::conformance::object_store(&S3Store::new(&context), &bucket, "clinical/")
        .await;
}

#[tokio::test]
async fn s3_upload_notification_starts_a_medical_transcription_job() {
    let stack = Stack::new().await;
    let key = "recordings/sess-42/visit 1+follow-up.wav";
    stack.upload(&stack.recordings, key, wav_bytes()).await;
    let messages = stack.notifications(&stack.intake_queue.0, 1).await;

    let (response, dispositions) = stack.run_intake(&messages).await;
    assert!(response.batch_item_failures.is_empty(), "{dispositions:?}");
    stack
        .settle(&stack.intake_queue.0, &messages, &dispositions)
        .await;

    let published = stack.pipeline_events(1).await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["detail-type"], "Transcription Started");
    assert_eq!(published[0]["source"], "telepipe");
    let detail = &published[0]["detail"];
    let job_name = detail["job_name"].as_str().unwrap();
    assert_eq!(detail["session_id"], "sess-42");
    assert!(
        !published[0].to_string().contains("follow-up"),
        "no file names in events"
    );

    let transcribe = aws_sdk_transcribe::Client::new(&stack.context.sdk);
    let job = transcribe
        .get_medical_transcription_job()
        .medical_transcription_job_name(job_name)
        .send()
        .await
        .unwrap();
    let job = job.medical_transcription_job().unwrap();
    assert_eq!(
        job.media().unwrap().media_file_uri(),
        Some(format!("s3://{}/{key}", stack.recordings).as_str())
    );
    assert_eq!(job.media_format().map(|f| f.as_str()), Some("wav"));
    assert_eq!(job.specialty().map(|s| s.as_str()), Some("PRIMARYCARE"));
    assert_eq!(job.r#type().map(|t| t.as_str()), Some("CONVERSATION"));
    assert_eq!(job.language_code().map(|l| l.as_str()), Some("en-US"));
    let settings = job.settings().unwrap();
    assert_eq!(
        (
            settings.show_speaker_labels(),
            settings.max_speaker_labels()
        ),
        (Some(true), Some(2))
    );

    // The same notification again: same job, no failure, same event id.
    stack
        .upload(&stack.recordings, "recordings/other/x.wav", wav_bytes())
        .await;
    let (response, _) = stack.run_intake(&messages).await;
    assert!(response.batch_item_failures.is_empty());
    let again = stack.pipeline_events(1).await;
    assert_eq!(again[0]["detail"]["event_id"], detail["event_id"]);
    assert_eq!(again[0]["detail"]["already_started"], true);
}

#[tokio::test]
async fn a_renamed_text_file_is_rejected_and_dead_lettered_at_once_with_its_reason() {
    let stack = Stack::new().await;
    stack
        .upload(
            &stack.recordings,
            "recordings/sess-7/notes.mp3",
            b"Patient notes in plain text".repeat(40),
        )
        .await;
    let messages = stack.notifications(&stack.intake_queue.0, 1).await;

    let (response, dispositions) = stack.run_intake(&messages).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "permanent failures are not retried"
    );
    assert_eq!(
        dispositions,
        [Disposition::DeadLettered {
            reason: "format_mismatch".into()
        }]
    );
    stack
        .settle(&stack.intake_queue.0, &messages, &dispositions)
        .await;

    let letters = receive(&stack.sqs, &stack.intake_dlq.0, 1, Duration::from_secs(10)).await;
    assert_eq!(letters.len(), 1);
    let attributes = letters[0].message_attributes().unwrap();
    assert_eq!(
        attributes["telepipe.reason"].string_value(),
        Some("format_mismatch")
    );
    assert_eq!(attributes["telepipe.stage"].string_value(), Some("intake"));
    let correlation = attributes["telepipe.correlation-id"]
        .string_value()
        .unwrap();
    assert!(
        correlation.len() == 24 && correlation.bytes().all(|b| b.is_ascii_hexdigit()),
        "the recording's correlation id rides on the dead letter: {correlation}"
    );
    let details: serde_json::Value =
        serde_json::from_str(attributes["telepipe.dead-letter"].string_value().unwrap()).unwrap();
    assert_eq!(details["error_class"], "permanent");
    assert_eq!(
        details["source_message_id"],
        messages[0].message_id.as_str()
    );
    assert_eq!(
        letters[0].body(),
        Some(messages[0].body.as_str()),
        "the original body is kept for replay"
    );

    let rejected = stack.pipeline_events(1).await;
    assert_eq!(rejected[0]["detail-type"], "Recording Rejected");
    assert_eq!(rejected[0]["detail"]["reason"], "format_mismatch");
    let left = receive(&stack.sqs, &stack.intake_queue.0, 1, Duration::from_secs(2)).await;
    assert!(left.is_empty(), "the source message is gone, not retried");
}

#[tokio::test]
async fn a_transcript_in_the_bucket_becomes_a_results_document_and_an_event() {
    let stack = Stack::new().await;
    let key = "transcripts/sess-5/sess-5-0123456789abcdef01234567.json";
    stack
        .upload(
            &stack.transcripts,
            key,
            transcript(600, SynthLabels::Speakers).into_bytes(),
        )
        .await;
    // Transcribe probes its output location first; that object must be ignored.
    stack
        .upload(
            &stack.transcripts,
            "transcripts/.write_access_check_file.temp",
            b"x".to_vec(),
        )
        .await;
    let messages = stack.notifications(&stack.clinical_queue.0, 2).await;

    let store = S3Store::new(&stack.context);
    let nlp = KeywordNlp::clinical();
    let events = EventBridgePublisher::new(&stack.context, stack.events_config());
    let queue = SqsQueue::new(
        &stack.context,
        stack.clinical_queue.0.clone(),
        stack.clinical_dlq.0.clone(),
    );
    let ports = ClinicalPorts {
        store: &store,
        nlp: &nlp,
        events: &events,
        status: &telepipe_workers::memory::MemoryStatus::default(),
    };
    let config = ClinicalConfig::from_env(&Env::from_pairs(&[(
        "TELEPIPE_RESULTS_BUCKET",
        stack.results.as_str(),
    )]))
    .unwrap();
    let consumer = stack.consumer(&stack.clinical_queue, &stack.clinical_dlq);
    let (response, dispositions) = process_batch(
        clinical::STAGE,
        &messages,
        &queue,
        &consumer,
        async |body: &str| clinical::handle_message(&ports, &config, body).await,
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{dispositions:?}");

    let object = stack
        .s3
        .get_object()
        .bucket(&stack.results)
        .key("clinical/sess-5/sess-5-0123456789abcdef01234567.json")
        .send()
        .await
        .expect("results document written");
    assert_eq!(object.content_type(), Some("application/json"));
    let bytes = object.body.collect().await.unwrap().into_bytes();
    let doc: telepipe_events::results::ResultsDocument = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc.session_id, "sess-5");
    assert!(!doc.entities.is_empty());
    assert!(doc
        .entities
        .iter()
        .all(|e| e.speaker.is_some() && e.start_ms.is_some()));
    assert_eq!(
        doc.transcript.etag.as_deref().map(|e| !e.is_empty()),
        Some(true)
    );

    let published = stack.pipeline_events(1).await;
    assert_eq!(published[0]["detail-type"], "Clinical Entities Extracted");
    assert_eq!(
        published[0]["detail"]["results_uri"],
        format!(
            "s3://{}/clinical/sess-5/sess-5-0123456789abcdef01234567.json",
            stack.results
        )
    );
}

#[tokio::test]
async fn missing_objects_are_permanent_and_storage_errors_name_the_operation() {
    let stack = Stack::new().await;
    let store = S3Store::new(&stack.context);
    use telepipe_workers::ports::ObjectStore;
    let err = store
        .head(&stack.recordings, "recordings/s/none.wav", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, telepipe_workers::error::PortErrorKind::NotFound);
    assert_eq!(err.operation, "HeadObject");
    let err = store
        .get(&stack.transcripts, "transcripts/s/none.json")
        .await
        .unwrap_err();
    assert_eq!(err.kind, telepipe_workers::error::PortErrorKind::NotFound);
    let err = store
        .head("no-such-bucket-telepipe", "k", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, telepipe_workers::error::PortErrorKind::NotFound);
}

#[tokio::test]
async fn retry_later_hides_the_message_for_the_backoff() {
    use telepipe_workers::ports::MessageQueue;
    let context = moto_context().await;
    let sqs = sqs_client(&context);
    let (url, _) = create_queue(&sqs, &unique("backoff")).await;
    sqs.send_message()
        .queue_url(&url)
        .message_body("{}")
        .send()
        .await
        .unwrap();
    let message = receive(&sqs, &url, 1, Duration::from_secs(5))
        .await
        .remove(0);
    let queue = SqsQueue::new(&context, url.clone(), url.clone());
    queue
        .retry_later(message.receipt_handle().unwrap(), 600)
        .await
        .expect("change visibility");
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .unwrap();
    let invisible = &attributes.attributes().unwrap()
        [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible];
    assert_eq!(invisible, "1");
    assert!(receive(&sqs, &url, 1, Duration::from_secs(2))
        .await
        .is_empty());
}
