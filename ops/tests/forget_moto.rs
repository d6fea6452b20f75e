//! `forget` and `reprocess` over the AWS adapter against moto (`TELEPIPE_MOTO_URL`, or one
//! the harness starts): a versioned recordings bucket holding several versions and a delete
//! marker, transcripts and results buckets, the status table, the sessions table (state,
//! intents, audit items) and a schedule group, for two sessions; one is forgotten.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use telepipe_ops::aws_session::{AwsSessionConfig, AwsSessionData, AUDIT_PK};
use telepipe_ops::session_data::{forget, reprocess, SessionData, Stage, Store};
use telepipe_tests::{
    create_pk_sk_table, create_queue, moto_context, receive, s3_client, sqs_client, unique,
};
use telepipe_workers::aws::{AwsContext, DynamoStatus};
use telepipe_workers::sessions::state::SessionState;
use telepipe_workers::status::{State, StatusStore, Transition};

struct Deployment {
    context: AwsContext,
    config: AwsSessionConfig,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    scheduler: aws_sdk_scheduler::Client,
}

const BASE: &str = "0123456789abcdef01234567";

/// Transcribe job names are global to the moto server: one test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn deployment() -> (Deployment, tokio::sync::MutexGuard<'static, ()>) {
    let serial = SERIAL.lock().await;
    let context = moto_context().await;
    let s3 = s3_client(&context);
    let dynamodb = aws_sdk_dynamodb::Client::new(&context.sdk);
    let scheduler = aws_sdk_scheduler::Client::new(&context.sdk);
    let sqs = sqs_client(&context);
    let buckets = [unique("rec"), unique("tra"), unique("res")];
    for bucket in &buckets {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    // The audit bucket as the template makes it: Object Lock, compliance mode.
    let audit_bucket = unique("audit");
    s3.create_bucket()
        .bucket(&audit_bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    s3.put_object_lock_configuration()
        .bucket(&audit_bucket)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Compliance)
                                .days(2557)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_bucket_versioning()
        .bucket(&buckets[0])
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let status_table = create_pk_sk_table(&context, "status").await;
    let sessions_table = create_pk_sk_table(&context, "sessions").await;
    let group = unique("telepipe");
    scheduler
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .unwrap();
    let (intake_url, _) = create_queue(&sqs, &unique("intake")).await;
    let (clinical_url, _) = create_queue(&sqs, &unique("clinical")).await;
    let config = AwsSessionConfig {
        recordings_bucket: Some(buckets[0].clone()),
        recordings_prefix: "recordings/".into(),
        capture_prefix: "captures/".into(),
        transcripts_bucket: Some(buckets[1].clone()),
        transcripts_prefix: "transcripts/".into(),
        results_bucket: Some(buckets[2].clone()),
        results_prefix: "clinical/".into(),
        status_table: Some(status_table),
        sessions_table: Some(sessions_table),
        schedule_group: Some(group),
        intake_queue_url: Some(intake_url),
        clinical_queue_url: Some(clinical_url),
        operator: Some("tester".into()),
        scan_schedules: false,
        audit_bucket: Some(audit_bucket),
    };
    let deployment = Deployment {
        context,
        config,
        s3,
        dynamodb,
        scheduler,
    };
    for session in ["visit-a", "visit-b"] {
        deployment.populate(session).await;
    }
    (deployment, serial)
}

impl Deployment {
    fn data(&self) -> AwsSessionData {
        AwsSessionData::new(self.context.clone(), self.config.clone())
    }

    async fn put(&self, bucket: &str, key: &str, body: &str) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }

    async fn populate(&self, session: &str) {
        let c = &self.config;
        let recordings = c.recordings_bucket.as_deref().unwrap();
        let key = format!("recordings/{session}/Maria Lopez.wav");
        // Two versions, a delete marker, and the current version.
        self.put(recordings, &key, "v1").await;
        self.put(recordings, &key, "v2").await;
        self.s3
            .delete_object()
            .bucket(recordings)
            .key(&key)
            .send()
            .await
            .unwrap();
        self.put(recordings, &key, "v3").await;
        // A Chime capture chunk of the same visit, in the same bucket.
        self.put(
            recordings,
            &format!("captures/{session}/audio/2026-12-01-15-00-00-000.mp4"),
            "chunk",
        )
        .await;
        let job = format!("{session}-{BASE}");
        self.put(
            c.transcripts_bucket.as_deref().unwrap(),
            &format!("transcripts/{session}/{job}.json"),
            "{}",
        )
        .await;
        self.put(
            c.results_bucket.as_deref().unwrap(),
            &format!("clinical/{session}/{job}.json"),
            "{}",
        )
        .await;
        // The session's Transcribe Medical job, as intake starts it (its record keeps the
        // media URI). Job names are per account and region, shared by every test on this
        // moto server: the tests run one at a time and each starts from a fresh job.
        let transcribe = aws_sdk_transcribe::Client::new(&self.context.sdk);
        let _ = transcribe
            .delete_medical_transcription_job()
            .medical_transcription_job_name(&job)
            .send()
            .await;
        transcribe
            .start_medical_transcription_job()
            .medical_transcription_job_name(&job)
            .language_code(aws_sdk_transcribe::types::LanguageCode::EnUs)
            .media(
                aws_sdk_transcribe::types::Media::builder()
                    .media_file_uri(format!("s3://{recordings}/{key}"))
                    .build(),
            )
            .output_bucket_name(c.transcripts_bucket.as_deref().unwrap())
            .specialty(aws_sdk_transcribe::types::Specialty::Primarycare)
            .r#type(aws_sdk_transcribe::types::Type::Conversation)
            .send()
            .await
            .unwrap();
        let status = DynamoStatus::new(&self.context, c.status_table.clone().unwrap(), 0);
        for state in [State::Received, State::Transcribing] {
            status
                .record(&Transition::new(session, &job, 1, state, 1_000).job(&job))
                .await
                .unwrap();
        }
        let check = format!("tp-c-{session}");
        let mut state = SessionState::new(session);
        state.recording_check = Some(check.clone());
        state.patient_phone_key = Some(format!("key-{session}"));
        let table = c.sessions_table.as_deref().unwrap();
        for (pk, sk, doc) in [
            (
                session.to_owned(),
                "state".to_owned(),
                serde_json::to_string(&state).unwrap(),
            ),
            (
                session.to_owned(),
                format!("intent#{session}-i1"),
                "-".to_owned(),
            ),
            // The phone index item the sessions stage writes beside the state.
            (
                format!("phone#key-{session}"),
                session.to_owned(),
                "-".to_owned(),
            ),
        ] {
            self.dynamodb
                .put_item()
                .table_name(table)
                .item("pk", AttributeValue::S(pk))
                .item("sk", AttributeValue::S(sk))
                .item("doc", AttributeValue::S(doc))
                .item("rev", AttributeValue::N("1".into()))
                .send()
                .await
                .unwrap();
        }
        self.schedule(&check, session).await;
    }

    /// A one-time schedule whose target input names the session, as the sessions stage makes them.
    async fn schedule(&self, name: &str, session: &str) {
        self.scheduler
            .create_schedule()
            .group_name(self.config.schedule_group.as_deref().unwrap())
            .name(name)
            .schedule_expression("at(2030-01-01T00:00:00)")
            .flexible_time_window(
                aws_sdk_scheduler::types::FlexibleTimeWindow::builder()
                    .mode(aws_sdk_scheduler::types::FlexibleTimeWindowMode::Off)
                    .build()
                    .unwrap(),
            )
            .target(
                aws_sdk_scheduler::types::Target::builder()
                    .arn("arn:aws:sqs:us-east-1:123456789012:sessions")
                    .role_arn("arn:aws:iam::123456789012:role/scheduler")
                    .input(format!(
                        "{{\"kind\":\"recording_check\",\"schema_version\":1,\"session_id\":\"{session}\"}}"
                    ))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    async fn counts(&self, session: &str) -> Vec<(Store, usize)> {
        let data = self.data();
        let mut counts = Vec::new();
        for store in Store::ALL {
            counts.push((store, data.inventory(session, store).await.unwrap().len()));
        }
        counts
    }
}

#[tokio::test]
async fn forget_deletes_every_version_and_item_of_one_session_only() {
    let (d, _serial) = deployment().await;
    let data = d.data();
    let expected = vec![
        (Store::Schedules, 1),
        (Store::QueuedMessages, 0),
        (Store::Outbox, 0),
        (Store::Intents, 1),
        // The state and its phone index item.
        (Store::SessionState, 2),
        (Store::Status, 3),
        (Store::History, 1),
        (Store::Results, 1),
        (Store::Transcripts, 1),
        // 3 versions and a delete marker of the upload, 1 Chime capture chunk.
        (Store::Recordings, 5),
    ];
    assert_eq!(d.counts("visit-a").await, expected);

    let plan = forget(&data, "visit-a", true).await.unwrap();
    assert_eq!(plan.found[&Store::Recordings].len(), 5);
    let printed = format!("{:?}", plan.found);
    assert!(
        !printed.contains("Maria") && !printed.contains("recordings/"),
        "{printed}"
    );
    assert_eq!(
        d.counts("visit-a").await,
        expected,
        "a dry run deletes nothing"
    );

    let report = forget(&data, "visit-a", false).await.unwrap();
    let audit = report.audit.unwrap();
    assert!(audit.is_completed());
    assert_eq!(audit.by, "aws:tester");
    assert_eq!(
        audit.deleted["recordings"], 5,
        "4 versions and markers, 1 capture chunk"
    );
    assert_eq!(audit.deleted["schedules"], 1);
    assert!(d.counts("visit-a").await.iter().all(|(_, n)| *n == 0));
    assert_eq!(
        d.counts("visit-b").await,
        expected,
        "the other session is untouched"
    );
    let versions =
        d.s3.list_object_versions()
            .bucket(d.config.recordings_bucket.as_deref().unwrap())
            .prefix("recordings/visit-a/")
            .send()
            .await
            .unwrap();
    assert!(versions.versions().is_empty() && versions.delete_markers().is_empty());
    let captures =
        d.s3.list_object_versions()
            .bucket(d.config.recordings_bucket.as_deref().unwrap())
            .prefix("captures/visit-a/")
            .send()
            .await
            .unwrap();
    assert!(
        captures.versions().is_empty(),
        "the capture chunks are gone too"
    );

    // The audit item: in the sessions table, completed, no PHI.
    let items = d
        .dynamodb
        .query()
        .table_name(d.config.sessions_table.as_deref().unwrap())
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(AUDIT_PK.into()))
        .send()
        .await
        .unwrap();
    assert_eq!(items.items().len(), 1);
    let item = &items.items()[0];
    assert_eq!(item["state"].as_s().unwrap(), "completed");
    assert_eq!(item["session_id"].as_s().unwrap(), "visit-a");
    let text = item["entry"].as_s().unwrap();
    assert!(
        !text.contains("Maria") && !text.contains("recordings/"),
        "{text}"
    );
    assert!(data.unfinished_audit("visit-a").await.unwrap().is_none());

    // The session's Transcribe Medical job is gone; the other session's is not.
    let transcribe = aws_sdk_transcribe::Client::new(&d.context.sdk);
    let job = |session: &str| format!("{session}-{BASE}");
    assert!(transcribe
        .get_medical_transcription_job()
        .medical_transcription_job_name(job("visit-a"))
        .send()
        .await
        .is_err());
    transcribe
        .get_medical_transcription_job()
        .medical_transcription_job_name(job("visit-b"))
        .send()
        .await
        .expect("the other session's job is kept");
    assert_eq!(audit.deleted["history"], 1, "one transcription job");

    // The audit trail in the Object Lock bucket: started and completed, retained in
    // compliance mode, no PHI, readable through `telepipe audit --aws`.
    let trail = data.audit_trail("visit-a", 0).await.unwrap();
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["forget_started", "forget_completed"]);
    assert!(trail.iter().all(|e| e.actor == "operator:aws:tester"));
    let bucket = d.config.audit_bucket.as_deref().unwrap();
    let key = trail[1].object_key();
    // (moto answers GetObjectRetention with the object; its HEAD carries the lock.)
    let head =
        d.s3.head_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
    assert_eq!(
        head.object_lock_mode(),
        Some(&aws_sdk_s3::types::ObjectLockMode::Compliance)
    );
    let retain_until = head.object_lock_retain_until_date().unwrap().secs();
    let seven_years = 2557 * 86_400;
    assert!(
        retain_until > jiff::Timestamp::now().as_second() + seven_years - 86_400,
        "retained for AuditRetentionDays"
    );
    for entry in &trail {
        let text = entry.to_json();
        assert!(
            !text.contains("Maria") && !text.contains("recordings/"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn an_unfinished_aws_forget_is_resumed() {
    let (d, _serial) = deployment().await;
    let data = d.data();
    // A forget that died after writing its plan: the entry is started.
    let mut entry = telepipe_ops::session_data::AuditEntry {
        id: "2026-01-01T00:00:00.000Z#visit-a".into(),
        action: "forget".into(),
        session_id: "visit-a".into(),
        state: "started".into(),
        started_at: "2026-01-01T00:00:00.000Z".into(),
        completed_at: None,
        by: "aws:tester".into(),
        steps: Store::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
        done: vec!["schedules".into()],
        deleted: [("schedules".to_owned(), 1)].into(),
        runs: 1,
    };
    data.write_audit(&entry).await.unwrap();
    let report = forget(&data, "visit-a", false).await.unwrap();
    assert!(report.resumed);
    entry = report.audit.unwrap();
    assert_eq!((entry.runs, entry.state.as_str()), (2, "completed"));
    assert_eq!(entry.deleted["schedules"], 2, "counts add up over runs");
    assert!(d.counts("visit-a").await.iter().all(|(_, n)| *n == 0));
}

#[tokio::test]
async fn reprocess_sends_notifications_to_the_stage_queues() {
    let (d, _serial) = deployment().await;
    let data = d.data();
    let sqs = sqs_client(&d.context);
    let sent = reprocess(&data, "visit-a", Stage::Transcription, false)
        .await
        .unwrap();
    assert_eq!((sent.len(), sent[0].attempt), (1, Some(2)));
    let messages = receive(
        &sqs,
        d.config.intake_queue_url.as_deref().unwrap(),
        1,
        std::time::Duration::from_secs(5),
    )
    .await;
    let body = messages[0].body().unwrap();
    assert_eq!(telepipe_workers::intake::reprocess_attempt(body), 2);
    assert_eq!(
        telepipe_ops::message::session_ids(body),
        vec!["visit-a".to_owned()]
    );
    let sent = reprocess(&data, "visit-a", Stage::Clinical, false)
        .await
        .unwrap();
    assert_eq!((sent.len(), sent[0].attempt), (1, None));
    let messages = receive(
        &sqs,
        d.config.clinical_queue_url.as_deref().unwrap(),
        1,
        std::time::Duration::from_secs(5),
    )
    .await;
    assert_eq!(messages.len(), 1);
}

#[tokio::test]
async fn a_schedule_scan_finds_schedules_the_state_no_longer_lists() {
    let (mut d, _serial) = deployment().await;
    d.schedule("tp-r-orphan-a", "visit-a").await;
    d.schedule("tp-r-orphan-b", "visit-b").await;
    assert_eq!(
        d.data()
            .inventory("visit-a", Store::Schedules)
            .await
            .unwrap()
            .len(),
        1,
        "without the scan only the state's schedules are seen"
    );
    d.config.scan_schedules = true;
    let data = d.data();
    let found = data.inventory("visit-a", Store::Schedules).await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    forget(&data, "visit-a", false).await.unwrap();
    let left: Vec<String> = d
        .scheduler
        .list_schedules()
        .group_name(d.config.schedule_group.as_deref().unwrap())
        .send()
        .await
        .unwrap()
        .schedules()
        .iter()
        .filter_map(|s| s.name().map(str::to_owned))
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(
        left,
        vec!["tp-c-visit-b".to_owned(), "tp-r-orphan-b".to_owned()]
    );
}
