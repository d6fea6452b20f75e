//! The sessions and notifier adapters with the real AWS SDK against moto (DynamoDB,
//! EventBridge Scheduler, SNS, SES v2), and the Twilio adapter against a stand-in HTTP
//! server started by the test.

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use telepipe_events::notify::{NotificationKind, NotificationRequest, Recipient};
use telepipe_events::sessions::ContactChannel;
use telepipe_tests::{create_pk_sk_table, create_queue, moto_context, sqs_client, unique};
use telepipe_workers::aws::{
    AwsContext, Channels, DynamoIntentLedger, DynamoSessionStore, EventBridgePublisher,
    EventBridgeScheduler, SesEmail, SnsSms, SqsNotifications, TwilioSms,
};
use telepipe_workers::config::{Env, EventsConfig};
use telepipe_workers::error::{ErrorClass, PortError, PortErrorKind};
use telepipe_workers::notifier::NotifierConfig;
use telepipe_workers::notifier::{self, NotifierPorts, NotifyOutcome};
use telepipe_workers::ports::{
    Claim, IntentLedger, IntentOutcome, MessageSender, OutboundMessage, SendReceipt, SessionStore,
};
use telepipe_workers::sessions::state::SessionState;
use telepipe_workers::sessions::{self, SessionsPorts};
use telepipe_workers::sessions::{SchedulerConfig, SessionsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn events_config() -> EventsConfig {
    EventsConfig {
        bus_name: "default".into(),
        source: "telepipe".into(),
    }
}

fn scheduled_event(
    session: &str,
    version: u64,
    start: Timestamp,
    patient_channel: &str,
    address: &str,
) -> String {
    serde_json::json!({
        "version": "0", "id": "e", "detail-type": "Session Scheduled", "source": "telehealth.sessions",
        "account": "1", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "session_id": session, "version": version, "start": start.to_string(), "duration_minutes": 30,
            "patient_time_zone": "America/Chicago", "locale": "es",
            "patient": {"reference": "p-1", "channel": patient_channel, "address": address},
            "clinician": {"reference": "c-1", "channel": "email", "address": "clinician@example.org"},
            "clinic_name": "Clínica Norte"
        }
    })
    .to_string()
}

fn session_event(
    detail_type: &str,
    session: &str,
    version: u64,
    extra: serde_json::Value,
) -> String {
    let mut detail = serde_json::json!({"session_id": session, "version": version});
    detail
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::json!({
        "version": "0", "id": "e", "detail-type": detail_type, "source": "telehealth.sessions",
        "account": "1", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
        "detail": detail
    })
    .to_string()
}

#[tokio::test]
async fn the_dynamodb_session_store_conforms() {
    let context = moto_context().await;
    let table = create_pk_sk_table(&context, "sessions").await;
    let store = DynamoSessionStore::new(&context, table);
    telepipe_workers::conformance::session_store(&store, &unique("conformance")).await;
}

#[tokio::test]
async fn the_suppression_list_and_the_phone_index_live_in_dynamodb_under_keyed_hashes() {
    use telepipe_events::sessions::ContactChannel;
    use telepipe_workers::ports::Suppressions;
    let context = moto_context().await;
    let table = create_pk_sk_table(&context, "sessions").await;
    let list = telepipe_workers::aws::DynamoSuppressions::new(&context, table.clone());
    let key = telepipe_workers::replies::PhoneKey::new(b"k").digest("+15551230000");
    assert!(!list.is_suppressed(&key, ContactChannel::Sms).await.unwrap());
    list.suppress(&key, ContactChannel::Sms, "stop")
        .await
        .unwrap();
    list.suppress(&key, ContactChannel::Sms, "twilio:21610")
        .await
        .unwrap();
    assert!(list.is_suppressed(&key, ContactChannel::Sms).await.unwrap());
    assert!(!list
        .is_suppressed(&key, ContactChannel::Email)
        .await
        .unwrap());
    list.lift(&key, ContactChannel::Sms).await.unwrap();
    assert!(!list.is_suppressed(&key, ContactChannel::Sms).await.unwrap());

    let store = DynamoSessionStore::new(&context, table.clone());
    for session in ["s-a", "s-b"] {
        let mut state = SessionState::new(session);
        state.patient_phone_key = Some(key.clone());
        store.save(&state, None).await.unwrap();
    }
    let mut found = store.sessions_for_phone(&key).await.unwrap();
    found.sort();
    assert_eq!(found, ["s-a", "s-b"]);
    // No item's key holds the number.
    let scan = aws_sdk_dynamodb::Client::new(&context.sdk)
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let text = format!("{:?}", scan.items());
    assert!(!text.contains("5551230000"), "{text}");
}

#[tokio::test]
async fn session_state_expires_a_set_number_of_days_after_the_session_ends() {
    let context = moto_context().await;
    let table = create_pk_sk_table(&context, "sessions").await;
    let store = DynamoSessionStore::new(&context, table.clone()).with_retention_days(30);
    let mut state = SessionState::new("s-ttl");
    store.save(&state, None).await.unwrap();
    state.timing = Some(telepipe_workers::sessions::state::Timing {
        start: "2026-03-10T15:00:00Z".parse().unwrap(),
        duration_minutes: 30,
        time_zone: "UTC".into(),
    });
    store.save(&state, Some(1)).await.unwrap();
    let item = |id: &'static str| {
        let client = aws_sdk_dynamodb::Client::new(&context.sdk);
        let table = table.clone();
        async move {
            client
                .get_item()
                .table_name(table)
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(id.into()))
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S("state".into()),
                )
                .send()
                .await
                .unwrap()
                .item
                .unwrap()
        }
    };
    let expires: i64 = item("s-ttl").await["expires_at"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    let end: Timestamp = "2026-03-10T15:30:00Z".parse().unwrap();
    assert_eq!(expires, end.as_second() + 30 * 86_400);
}

#[tokio::test]
async fn dynamodb_state_writes_are_conditional_and_claims_are_exclusive() {
    let context = moto_context().await;
    let table = create_pk_sk_table(&context, "sessions").await;
    let store = DynamoSessionStore::new(&context, table.clone());
    let mut state = SessionState::new("s-dyn");
    assert_eq!(store.load("s-dyn").await.unwrap(), None);
    assert_eq!(store.save(&state, None).await.unwrap(), 1);
    let conflict = store.save(&state, None).await.unwrap_err();
    assert_eq!(conflict.kind, PortErrorKind::Conflict);
    state.admitted = true;
    assert_eq!(store.save(&state, Some(1)).await.unwrap(), 2);
    assert_eq!(
        store.save(&state, Some(1)).await.unwrap_err().kind,
        PortErrorKind::Conflict
    );
    let loaded = store.load("s-dyn").await.unwrap().unwrap();
    assert_eq!((loaded.revision, loaded.state.admitted), (2, true));

    let table_name = table.clone();
    let ledger = DynamoIntentLedger::new(&context, table, SignedDuration::from_hours(24));
    let now: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
    assert_eq!(
        ledger.claim("s-dyn", "i-1", "a", now).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        ledger.claim("s-dyn", "i-1", "b", now).await.unwrap(),
        Claim::InFlight { claimed_at: now }
    );
    // A claim the SDK retried after its first attempt landed: the owner gets it back.
    assert_eq!(
        ledger.claim("s-dyn", "i-1", "a", now).await.unwrap(),
        Claim::Claimed
    );
    // The notification log lives beside the ledger, in its own partition.
    let entry = telepipe_workers::ports::NotificationLogEntry {
        session_id: "s-dyn".into(),
        intent_id: "i-1".into(),
        kind: telepipe_events::notify::NotificationKind::Reminder,
        recipient: telepipe_events::notify::Recipient::Patient,
        channel: telepipe_events::sessions::ContactChannel::Sms,
        outcome: "sent".into(),
        reason: None,
        provider: Some("sns".into()),
        provider_message_id: Some("m-1".into()),
        at_ms: 1_772_359_200_000,
    };
    ledger.log(&entry).await.unwrap();
    let logged = aws_sdk_dynamodb::Client::new(&context.sdk)
        .query()
        .table_name(&table_name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S("notifylog#s-dyn".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(logged.items().len(), 1);
    assert!(logged.items()[0].contains_key("expires_at"));
    ledger.release("s-dyn", "i-1", "b").await.unwrap(); // not b's: stays
    assert!(matches!(
        ledger.claim("s-dyn", "i-1", "c", now).await.unwrap(),
        Claim::InFlight { .. }
    ));
    ledger.release("s-dyn", "i-1", "a").await.unwrap();
    assert_eq!(
        ledger.claim("s-dyn", "i-1", "d", now).await.unwrap(),
        Claim::Claimed
    );
    let sent = IntentOutcome::Sent {
        provider: "sns".into(),
        provider_message_id: Some("m-1".into()),
    };
    ledger.complete("s-dyn", "i-1", &sent).await.unwrap();
    assert_eq!(
        ledger.claim("s-dyn", "i-1", "e", now).await.unwrap(),
        Claim::Completed(sent)
    );
}

struct Deployment {
    context: AwsContext,
    table: String,
    group: String,
    notifications_url: String,
    scheduler: EventBridgeScheduler,
}

async fn deployment() -> Deployment {
    let context = moto_context().await;
    let table = create_pk_sk_table(&context, "sessions").await;
    let sqs = sqs_client(&context);
    let (notifications_url, notifications_arn) = create_queue(&sqs, &unique("notifications")).await;
    let (_, sessions_arn) = create_queue(&sqs, &unique("sessions")).await;
    let (_, dlq_arn) = create_queue(&sqs, &unique("scheduler-dlq")).await;
    let group = unique("telepipe");
    let scheduler_client = aws_sdk_scheduler::Client::new(&context.sdk);
    scheduler_client
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("schedule group");
    let scheduler = EventBridgeScheduler::from_client(
        scheduler_client,
        SchedulerConfig {
            group: group.clone(),
            role_arn: "arn:aws:iam::123456789012:role/telepipe-scheduler".into(),
            notifications_queue_arn: notifications_arn,
            sessions_queue_arn: sessions_arn,
            dead_letter_arn: dlq_arn,
        },
    );
    Deployment {
        context,
        table,
        group,
        notifications_url,
        scheduler,
    }
}

async fn schedules(
    deployment: &Deployment,
) -> Vec<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput> {
    let client = aws_sdk_scheduler::Client::new(&deployment.context.sdk);
    let listed = client
        .list_schedules()
        .group_name(&deployment.group)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for summary in listed.schedules() {
        out.push(
            client
                .get_schedule()
                .group_name(&deployment.group)
                .name(summary.name().unwrap())
                .send()
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn sessions_stage_keeps_state_in_dynamodb_and_reminders_in_scheduler() {
    let d = deployment().await;
    let store = DynamoSessionStore::new(&d.context, d.table.clone());
    let notifications = SqsNotifications::new(&d.context, d.notifications_url.clone());
    let events = EventBridgePublisher::new(&d.context, events_config());
    let ports = SessionsPorts {
        store: &store,
        scheduler: &d.scheduler,
        notifications: &notifications,
        events: &events,
    };
    let config =
        SessionsConfig::from_env(&Env::from_pairs(&[("TELEPIPE_QUIET_HOURS", "off")])).unwrap();
    let now = Timestamp::now();
    let start = now.checked_add(SignedDuration::from_hours(72)).unwrap();
    let session = unique("s");

    let outcome = sessions::handle_message(
        &ports,
        &config,
        &scheduled_event(&session, 1, start, "sms", "+12025550143"),
        now,
    )
    .await
    .unwrap();
    assert_eq!(outcome.schedules_created, 2);
    let created = schedules(&d).await;
    assert_eq!(created.len(), 2);
    for schedule in &created {
        let expression = schedule.schedule_expression().unwrap();
        assert!(
            expression.starts_with("at(") && expression.ends_with(')'),
            "{expression}"
        );
        assert_eq!(
            schedule.schedule_expression_timezone(),
            Some("America/Chicago")
        );
        let target = schedule.target().unwrap();
        let request: NotificationRequest = serde_json::from_str(target.input().unwrap()).unwrap();
        assert_eq!(request.session_id, session);
        assert_eq!(
            request.appointment_start.as_deref(),
            Some(start.to_string().as_str())
        );
        assert!(target.dead_letter_config().is_some());
        // The reminder payload names a role and a kind, never an address.
        assert!(!target.input().unwrap().contains("2025550143"));
    }
    // Redelivery: Scheduler answers ConflictException for nothing, since state says it exists.
    let again = sessions::handle_message(
        &ports,
        &config,
        &scheduled_event(&session, 1, start, "sms", "+12025550143"),
        now,
    )
    .await
    .unwrap();
    assert_eq!((again.schedules_created, again.state_written), (0, false));

    let later = start.checked_add(SignedDuration::from_hours(24)).unwrap();
    let moved = session_event(
        "Session Rescheduled",
        &session,
        2,
        serde_json::json!({"start": later.to_string(), "duration_minutes": 30}),
    );
    let outcome = sessions::handle_message(&ports, &config, &moved, now)
        .await
        .unwrap();
    assert_eq!(
        (outcome.schedules_deleted, outcome.schedules_created),
        (2, 2)
    );
    let names_after: Vec<String> = schedules(&d)
        .await
        .iter()
        .map(|s| s.name().unwrap().to_owned())
        .collect();
    let names_before: Vec<String> = created
        .iter()
        .map(|s| s.name().unwrap().to_owned())
        .collect();
    assert_eq!(names_after.len(), 2);
    assert!(names_after.iter().all(|n| !names_before.contains(n)));

    sessions::handle_message(
        &ports,
        &config,
        &session_event("Session Cancelled", &session, 3, serde_json::json!({})),
        now,
    )
    .await
    .unwrap();
    assert!(schedules(&d).await.is_empty());
    let state = store.load(&session).await.unwrap().unwrap();
    assert!(state.state.is_cancelled());
    assert_eq!(state.revision, 3);
    // The patient's notices are on the notifications queue: the new time, then the cancellation.
    let messages = telepipe_tests::receive(
        &sqs_client(&d.context),
        &d.notifications_url,
        2,
        std::time::Duration::from_secs(5),
    )
    .await;
    let mut kinds: Vec<(NotificationKind, Recipient)> = messages
        .iter()
        .map(|m| {
            let notice: NotificationRequest = serde_json::from_str(m.body().unwrap()).unwrap();
            (notice.kind, notice.recipient)
        })
        .collect();
    kinds.sort_by_key(|(kind, _)| kind.as_str());
    assert_eq!(
        kinds,
        [
            (NotificationKind::CancellationNotice, Recipient::Patient),
            (NotificationKind::RescheduleNotice, Recipient::Patient)
        ]
    );

    // Waiting room: an alert request lands on the notifications queue at once.
    let other = unique("s");
    sessions::handle_message(
        &ports,
        &config,
        &scheduled_event(&other, 1, start, "sms", "+12025550143"),
        now,
    )
    .await
    .unwrap();
    let join = session_event(
        "Waiting Room Joined",
        &other,
        2,
        serde_json::json!({"participant_reference": "p-1"}),
    );
    sessions::handle_message(&ports, &config, &join, now)
        .await
        .unwrap();
    let messages = telepipe_tests::receive(
        &sqs_client(&d.context),
        &d.notifications_url,
        1,
        std::time::Duration::from_secs(5),
    )
    .await;
    let alert: NotificationRequest = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(
        (alert.kind, alert.recipient),
        (NotificationKind::WaitingRoomAlert, Recipient::Clinician)
    );
}

/// Counts provider calls around the real senders.
struct Counting<S> {
    inner: S,
    calls: AtomicUsize,
}

impl<S: MessageSender> MessageSender for Counting<S> {
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, PortError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.send(message).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifier_sends_through_sns_and_ses_once_across_concurrent_consumers() {
    let d = deployment().await;
    let store = DynamoSessionStore::new(&d.context, d.table.clone());
    let sender_address = format!("{}@clinic.example.org", unique("reminders"));
    aws_sdk_sesv2::Client::new(&d.context.sdk)
        .create_email_identity()
        .email_identity(&sender_address)
        .send()
        .await
        .expect("SES identity");
    let sender = Counting {
        inner: Channels {
            sms: SnsSms::new(&d.context, None),
            email: Some(SesEmail::new(&d.context, sender_address, None)),
        },
        calls: AtomicUsize::new(0),
    };
    let ledger =
        DynamoIntentLedger::new(&d.context, d.table.clone(), SignedDuration::from_hours(24));
    let events = EventBridgePublisher::new(&d.context, events_config());
    let suppressions = telepipe_workers::aws::DynamoSuppressions::new(&d.context, d.table.clone());
    let ports = NotifierPorts {
        store: &store,
        ledger: &ledger,
        sender: &sender,
        events: &events,
        suppressions: &suppressions,
    };
    let config = NotifierConfig::from_env(&Env::from_pairs(&[])).unwrap();

    // The session as the sessions stage stores it.
    let notifications = SqsNotifications::new(&d.context, d.notifications_url.clone());
    let sessions_ports = SessionsPorts {
        store: &store,
        scheduler: &d.scheduler,
        notifications: &notifications,
        events: &events,
    };
    let now = Timestamp::now();
    let start = now.checked_add(SignedDuration::from_hours(30)).unwrap();
    let session = unique("s");
    let sessions_config = SessionsConfig::from_env(&Env::from_pairs(&[])).unwrap();
    sessions::handle_message(
        &sessions_ports,
        &sessions_config,
        &scheduled_event(&session, 1, start, "sms", "+12025550143"),
        now,
    )
    .await
    .unwrap();

    let sms = NotificationRequest::new(
        &session,
        NotificationKind::Reminder,
        Recipient::Patient,
        ContactChannel::Sms,
        Some(60),
        Some(start.to_string()),
        0,
    );
    let body = serde_json::to_string(&sms).unwrap();
    // Eight consumers receive the same message at once (concurrent on one runtime).
    let attempts: Vec<String> = (0..8).map(|i| format!("consumer-{i}")).collect();
    let outcomes = futures::future::join_all(
        attempts
            .iter()
            .map(|attempt| notifier::handle_message(&ports, &config, &body, attempt, now)),
    )
    .await;
    let sent = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(NotifyOutcome::Sent { provider }) if provider == "sns"))
        .count();
    assert_eq!(sent, 1, "{outcomes:?}");
    for outcome in &outcomes {
        match outcome {
            Ok(NotifyOutcome::Sent { .. }) | Ok(NotifyOutcome::Skipped(_)) => {}
            Err(err) => assert_eq!(err.reason, "notification_in_flight"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sender.calls.load(Ordering::SeqCst), 1);

    let email = NotificationRequest::new(
        &session,
        NotificationKind::WaitingRoomAlert,
        Recipient::Clinician,
        ContactChannel::Email,
        None,
        None,
        1,
    );
    let outcome = notifier::handle_message(
        &ports,
        &config,
        &serde_json::to_string(&email).unwrap(),
        "x",
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        NotifyOutcome::Sent {
            provider: "ses".into()
        }
    );
    assert_eq!(sender.calls.load(Ordering::SeqCst), 2);
}

/// A stand-in for Twilio's Messages API: records requests, answers from a script.
struct TwilioStandIn {
    base: String,
    requests: Arc<Mutex<Vec<(String, String, String)>>>,
    answers: Arc<Mutex<Vec<(u16, String)>>>,
}

async fn twilio_stand_in() -> TwilioStandIn {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let answers: Arc<Mutex<Vec<(u16, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let (seen, script) = (requests.clone(), answers.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (seen, script) = (seen.clone(), script.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = socket.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break (head.to_owned(), body.to_owned());
                        }
                    }
                };
                let request_line = head.lines().next().unwrap_or("").to_owned();
                let authorization = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .starts_with("authorization:")
                            .then(|| l[14..].trim().to_owned())
                    })
                    .unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .push((request_line, authorization, body));
                let (status, answer) = {
                    let mut script = script.lock().unwrap();
                    if script.is_empty() {
                        (201, r#"{"sid":"SM0001","status":"queued"}"#.to_owned())
                    } else {
                        script.remove(0)
                    }
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
            });
        }
    });
    TwilioStandIn {
        base,
        requests,
        answers,
    }
}

fn outbound(to: &str) -> OutboundMessage {
    OutboundMessage {
        channel: ContactChannel::Sms,
        to: to.into(),
        subject: None,
        body: "Recordatorio: su consulta por video & más".into(),
        intent_id: "i".into(),
    }
}

#[tokio::test]
async fn twilio_requests_are_authenticated_form_posts_and_errors_are_classified() {
    let stand_in = twilio_stand_in().await;
    let twilio =
        TwilioSms::with_credentials("AC0123", "token-xyz", "+15005550006", &stand_in.base).unwrap();
    let receipt = twilio.send(&outbound("+12025550143")).await.unwrap();
    assert_eq!(
        (receipt.provider, receipt.provider_message_id.as_deref()),
        ("twilio", Some("SM0001"))
    );
    let (line, authorization, body) = stand_in.requests.lock().unwrap()[0].clone();
    assert_eq!(
        line,
        "POST /2010-04-01/Accounts/AC0123/Messages.json HTTP/1.1"
    );
    let expected = base64::engine::general_purpose::STANDARD.encode("AC0123:token-xyz");
    assert_eq!(authorization, format!("Basic {expected}"));
    let form: Vec<(String, String)> = body
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            let decode = |s: &str| percent_decode(s);
            (decode(k), decode(v))
        })
        .collect();
    assert!(form.contains(&("To".into(), "+12025550143".into())));
    assert!(form.contains(&("From".into(), "+15005550006".into())));
    assert!(form.contains(&(
        "Body".into(),
        "Recordatorio: su consulta por video & más".into()
    )));

    for (status, answer, kind, class, code) in [
        (
            400,
            r#"{"code":21211,"message":"The 'To' number +1202 is not a valid phone number.","status":400}"#,
            PortErrorKind::InvalidRequest,
            ErrorClass::Permanent,
            Some("twilio:21211"),
        ),
        (
            429,
            r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
            PortErrorKind::Throttled,
            ErrorClass::Retryable,
            Some("twilio:20429"),
        ),
        (
            503,
            "<html>unavailable</html>",
            PortErrorKind::Unavailable,
            ErrorClass::Retryable,
            None,
        ),
        (
            401,
            r#"{"code":20003,"message":"Authenticate","status":401}"#,
            PortErrorKind::AccessDenied,
            ErrorClass::Permanent,
            Some("twilio:20003"),
        ),
    ] {
        stand_in
            .answers
            .lock()
            .unwrap()
            .push((status, answer.into()));
        let err = twilio.send(&outbound("+12025550143")).await.unwrap_err();
        assert_eq!(
            (err.kind, err.class(), err.code.as_deref(), err.status),
            (kind, class, code, Some(status))
        );
        // The provider's message quotes the number; the error keeps only the code.
        assert!(!err.to_string().contains("+1202"), "{err}");
    }

    // Nothing listening: refused before sending, so retryable.
    let closed =
        TwilioSms::with_credentials("AC0123", "t", "+15005550006", "http://127.0.0.1:9").unwrap();
    assert_eq!(
        closed
            .send(&outbound("+12025550143"))
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Retryable
    );
}

fn percent_decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
