//! `sweeper` decisions with an injected clock and a fake Transcribe, and the status
//! transitions the stages record (idempotent under duplicate deliveries).

use telepipe_events::s3::{encode_key, parse_notification, S3Notification};
use telepipe_workers::clinical::ClinicalConfig;
use telepipe_workers::clinical::{self, ClinicalPorts};
use telepipe_workers::config::Env;
use telepipe_workers::error::{ErrorClass, PortErrorKind};
use telepipe_workers::intake::IntakeConfig;
use telepipe_workers::intake::{self, IntakePorts, RecordOutcome};
use telepipe_workers::memory::{
    KeywordNlp, MemoryEvents, MemoryRefeed, MemoryStatus, MemoryStore, MemoryTranscriber,
};
use telepipe_workers::ports::{JobState, MedicalJobRequest, SpeakerMode, Transcriber};
use telepipe_workers::status::{State, StatusStore, Transition};
use telepipe_workers::sweeper::{sweep, SweepAction, SweeperConfig, SweeperPorts};
use telepipe_workers::synth::{transcript, SynthLabels};

const MIN: i64 = 60_000;
const T0: i64 = 1_800_000_000_000;
const SESSION: &str = "sess-7";
const BASE: &str = "sess-7-0123456789abcdef01234567";

fn config() -> SweeperConfig {
    SweeperConfig::from_env(&Env::from_pairs(&[(
        "TELEPIPE_TRANSCRIPTS_BUCKET",
        "transcripts-bucket",
    )]))
    .unwrap()
}

#[derive(Default)]
struct World {
    transcriber: MemoryTranscriber,
    events: MemoryEvents,
    status: MemoryStatus,
    clinical_queue: MemoryRefeed,
}

impl World {
    fn ports(
        &self,
    ) -> SweeperPorts<'_, MemoryTranscriber, MemoryEvents, MemoryStatus, MemoryRefeed> {
        SweeperPorts {
            transcriber: &self.transcriber,
            events: &self.events,
            status: &self.status,
            clinical_queue: &self.clinical_queue,
        }
    }

    /// A recording whose job `BASE` was started at `T0` (as intake leaves it).
    async fn transcribing() -> Self {
        let world = Self::default();
        let request = MedicalJobRequest {
            job_name: BASE.into(),
            media_uri: "s3://recordings-bucket/recordings/sess-7/visit.wav".into(),
            media_format: "wav".into(),
            output_bucket: "transcripts-bucket".into(),
            output_key: format!("transcripts/{SESSION}/{BASE}.json"),
            output_kms_key_id: None,
            specialty: "PRIMARYCARE".into(),
            conversation_type: "CONVERSATION".into(),
            speakers: SpeakerMode::SpeakerLabels { max_speakers: 2 },
            language_code: "en-US".into(),
            vocabulary_name: None,
            identify_phi: false,
        };
        world.transcriber.start_medical_job(&request).await.unwrap();
        for state in [State::Received, State::Transcribing] {
            let t = Transition::new(SESSION, BASE, 1, state, T0)
                .job(BASE)
                .object("0011223344556677");
            world.status.record(&t).await.unwrap();
        }
        world
    }

    async fn sweep_at(&self, now: i64) -> Vec<SweepAction> {
        let report = sweep(&self.ports(), &config(), now).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        report.actions
    }

    fn current(&self) -> (State, u32, Option<String>) {
        let c = self.status.current_of(SESSION, BASE).expect("recorded");
        (c.state, c.attempt, c.reason)
    }
}

#[tokio::test]
async fn nothing_happens_before_a_deadline() {
    let world = World::transcribing().await;
    world.transcriber.set_state(
        BASE,
        JobState::Failed {
            reason: "Internal failure".into(),
        },
    );
    // Transcribing is looked at after 10 minutes by default.
    assert!(world.sweep_at(T0 + 9 * MIN).await.is_empty());
    // Past the look-after age but queued and within the 60-minute deadline: waiting.
    let world = World::transcribing().await;
    assert_eq!(
        world.sweep_at(T0 + 30 * MIN).await,
        [SweepAction::Waiting {
            recording: BASE.into()
        }]
    );
    assert!(world.events.published.lock().unwrap().is_empty());
}

#[tokio::test]
async fn transient_failure_is_retried_under_a_new_job_name_with_an_event() {
    let world = World::transcribing().await;
    world.transcriber.set_state(
        BASE,
        JobState::Failed {
            reason: "Internal failure. Please try your request again.".into(),
        },
    );
    let actions = world.sweep_at(T0 + 11 * MIN).await;
    let next = format!("{BASE}-a2");
    assert_eq!(
        actions,
        [SweepAction::Retried {
            recording: BASE.into(),
            failed_job: BASE.into(),
            next_job_name: next.clone(),
            attempt: 2,
            reason: "internal_failure".into(),
        }]
    );
    let jobs = world.transcriber.jobs.lock().unwrap().clone();
    let retry = &jobs[&next];
    assert_eq!(retry.media_uri, jobs[BASE].media_uri);
    assert_eq!(
        retry.output_key,
        format!("transcripts/{SESSION}/{next}.json")
    );
    let failed = world.events.of_type("Transcription Failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["reason"], "internal_failure");
    assert_eq!(failed[0]["attempt"], 1);
    assert_eq!(failed[0]["will_retry"], true);
    assert_eq!(failed[0]["next_job_name"], next);
    assert_eq!(world.current(), (State::Transcribing, 2, None));
    // The retry is a new transcribing attempt: the next sweep waits for it.
    assert!(world.sweep_at(T0 + 12 * MIN).await.is_empty());
}

#[tokio::test]
async fn permanent_failure_is_parked_with_its_reason() {
    let world = World::transcribing().await;
    world.transcriber.set_state(
        BASE,
        JobState::Failed {
            reason: "The media format provided does not match the detected media format.".into(),
        },
    );
    let actions = world.sweep_at(T0 + 11 * MIN).await;
    assert_eq!(
        actions,
        [SweepAction::Parked {
            recording: BASE.into(),
            job_name: BASE.into(),
            reason: "unsupported_media".into(),
        }]
    );
    assert_eq!(world.transcriber.jobs.lock().unwrap().len(), 1, "no retry");
    let failed = world.events.of_type("Transcription Failed");
    assert_eq!(failed[0]["will_retry"], false);
    assert_eq!(failed[0]["transient"], false);
    assert!(failed[0].get("next_job_name").is_none());
    assert_eq!(
        world.current(),
        (State::Failed, 1, Some("unsupported_media".into()))
    );
    // Parked is terminal: later sweeps leave it alone.
    assert!(world.sweep_at(T0 + 300 * MIN).await.is_empty());
}

#[tokio::test]
async fn attempts_are_bounded() {
    let world = World::transcribing().await;
    let config = config();
    let mut now = T0;
    for attempt in 1..=config.max_attempts {
        let job = if attempt == 1 {
            BASE.to_owned()
        } else {
            format!("{BASE}-a{attempt}")
        };
        world.transcriber.set_state(
            &job,
            JobState::Failed {
                reason: "Service Unavailable".into(),
            },
        );
        now += 11 * MIN;
        let actions = world.sweep_at(now).await;
        if attempt < config.max_attempts {
            assert!(
                matches!(&actions[..], [SweepAction::Retried { .. }]),
                "{actions:?}"
            );
        } else {
            assert_eq!(
                actions,
                [SweepAction::Parked {
                    recording: BASE.into(),
                    job_name: job,
                    reason: "retries_exhausted:service_unavailable".into(),
                }]
            );
        }
    }
    assert_eq!(world.transcriber.jobs.lock().unwrap().len(), 3);
    let failed = world.events.of_type("Transcription Failed");
    assert_eq!(
        failed
            .iter()
            .map(|e| e["will_retry"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [true, true, false]
    );
    assert_eq!(world.current().0, State::Failed);
}

#[tokio::test]
async fn completed_job_with_a_lost_transcript_is_refed_exactly_once() {
    let world = World::transcribing().await;
    world.transcriber.set_state(
        BASE,
        JobState::Completed {
            transcript_uri: None,
        },
    );
    let actions = world.sweep_at(T0 + 11 * MIN).await;
    assert_eq!(
        actions,
        [SweepAction::Refed {
            recording: BASE.into(),
            job_name: BASE.into()
        }]
    );
    // Swept again (a second schedule tick, or two overlapping sweeps' second half).
    assert!(world.sweep_at(T0 + 12 * MIN).await.is_empty());
    let sent = world.clinical_queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let Ok(S3Notification::Records(records)) = parse_notification(&sent[0]) else {
        panic!("{}", sent[0])
    };
    assert_eq!(records[0].bucket, "transcripts-bucket");
    assert_eq!(
        records[0].key.as_deref(),
        Ok(format!("transcripts/{SESSION}/{BASE}.json").as_str())
    );
    assert!(records[0].is_object_created());
    assert_eq!(
        world.current(),
        (State::Transcribed, 1, Some("refed_by_sweeper".into()))
    );
}

#[tokio::test]
async fn a_job_still_running_past_its_deadline_is_reported_stalled_once() {
    let world = World::transcribing().await;
    world.transcriber.set_state(BASE, JobState::InProgress);
    let actions = world.sweep_at(T0 + 61 * MIN).await;
    assert_eq!(
        actions,
        [SweepAction::Stalled {
            recording: BASE.into(),
            stage: State::Transcribing
        }]
    );
    let stalled = world.events.of_type("Stage Stalled");
    assert_eq!(stalled.len(), 1);
    assert_eq!(stalled[0]["stage"], "transcribing");
    assert_eq!(stalled[0]["job_status"], "IN_PROGRESS");
    assert_eq!(stalled[0]["minutes_stuck"], 61);
    assert_eq!(stalled[0]["deadline_minutes"], 60);
    assert_eq!(
        world.sweep_at(T0 + 66 * MIN).await,
        [SweepAction::StillStalled {
            recording: BASE.into(),
            stage: State::Transcribing
        }]
    );
    assert_eq!(world.events.of_type("Stage Stalled").len(), 1);
    // The stall mark does not change the state: when the job then fails, it is handled.
    assert_eq!(world.current().0, State::Transcribing);
    world.transcriber.set_state(
        BASE,
        JobState::Failed {
            reason: "Internal failure".into(),
        },
    );
    assert!(matches!(
        &world.sweep_at(T0 + 71 * MIN).await[..],
        [SweepAction::Retried { .. }]
    ));
}

#[tokio::test]
async fn other_stages_past_their_deadline_are_stalled_and_unknown_jobs_too() {
    let world = World::default();
    let t = Transition::new(SESSION, "rec-extracting", 1, State::Extracting, T0);
    world.status.record(&t).await.unwrap();
    let t = Transition::new(SESSION, BASE, 1, State::Transcribing, T0).job(BASE);
    world.status.record(&t).await.unwrap();
    assert!(world
        .sweep_at(T0 + 29 * MIN)
        .await
        .iter()
        .all(|a| matches!(a, SweepAction::Waiting { .. })));
    let actions = world.sweep_at(T0 + 61 * MIN).await;
    assert_eq!(actions.len(), 2, "{actions:?}");
    let stalled = world.events.of_type("Stage Stalled");
    let mut stages: Vec<(&str, Option<&str>)> = stalled
        .iter()
        .map(|e| (e["stage"].as_str().unwrap(), e["job_status"].as_str()))
        .collect();
    stages.sort();
    assert_eq!(
        stages,
        [("extracting", None), ("transcribing", Some("NOT_FOUND"))]
    );
}

#[tokio::test]
async fn a_transcribe_outage_is_reported_and_retried_by_the_next_sweep() {
    let world = World::transcribing().await;
    world
        .transcriber
        .get_failures
        .push(Some(PortErrorKind::Throttled));
    let report = sweep(&world.ports(), &config(), T0 + 11 * MIN)
        .await
        .unwrap();
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].is_retryable());
    world.transcriber.set_state(
        BASE,
        JobState::Completed {
            transcript_uri: None,
        },
    );
    assert!(matches!(
        &world.sweep_at(T0 + 16 * MIN).await[..],
        [SweepAction::Refed { .. }]
    ));
}

// --- the stages' transitions ---------------------------------------------------------

fn wav() -> Vec<u8> {
    let mut bytes = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    bytes.extend([
        16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0,
    ]);
    bytes.extend(b"data\x00\x00\x00\x00");
    bytes.extend(vec![0u8; 1000]);
    bytes
}

fn notification(bucket: &str, key: &str) -> String {
    serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encode_key(key), "eTag": "e1"}}}]})
    .to_string()
}

fn states(status: &MemoryStatus) -> Vec<(String, u32, State)> {
    let mut all: Vec<_> = status
        .all()
        .into_iter()
        .map(|t| (t.recording, t.attempt, t.state))
        .collect();
    all.sort_by_key(|(_, _, s)| *s);
    all
}

#[tokio::test]
async fn intake_and_clinical_record_each_transition_once_under_redelivery() {
    let store = MemoryStore::default();
    let (transcriber, events, status) = (
        MemoryTranscriber::default(),
        MemoryEvents::default(),
        MemoryStatus::default(),
    );
    store.insert("recordings", "recordings/sess-7/Jane Doe.wav", wav());
    let intake_ports = IntakePorts {
        store: &store,
        transcriber: &transcriber,
        events: &events,
        status: &status,
    };
    let intake_config = IntakeConfig::from_env(&Env::from_pairs(&[(
        "TELEPIPE_TRANSCRIPTS_BUCKET",
        "transcripts",
    )]))
    .unwrap();
    let body = notification("recordings", "recordings/sess-7/Jane Doe.wav");
    let mut job = String::new();
    for _ in 0..2 {
        let outcomes = intake::handle_message(&intake_ports, &intake_config, &body)
            .await
            .unwrap();
        match &outcomes[..] {
            [RecordOutcome::Started { job_name } | RecordOutcome::AlreadyStarted { job_name }] => {
                job = job_name.clone()
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        states(&status),
        [
            (job.clone(), 1, State::Received),
            (job.clone(), 1, State::Transcribing)
        ]
    );
    // Ids only: the file name (a patient's) is nowhere in the status store.
    assert!(!format!("{:?}", status.all()).contains("Jane"));

    let key = format!("transcripts/sess-7/{job}.json");
    store.insert("transcripts", &key, transcript(40, SynthLabels::Speakers));
    let nlp = KeywordNlp::clinical();
    let clinical_ports = ClinicalPorts {
        store: &store,
        nlp: &nlp,
        events: &events,
        status: &status,
    };
    let clinical_config =
        ClinicalConfig::from_env(&Env::from_pairs(&[("TELEPIPE_RESULTS_BUCKET", "results")]))
            .unwrap();
    for _ in 0..2 {
        clinical::handle_message(
            &clinical_ports,
            &clinical_config,
            &notification("transcripts", &key),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        states(&status)
            .into_iter()
            .map(|(_, _, s)| s)
            .collect::<Vec<_>>(),
        [
            State::Received,
            State::Transcribing,
            State::Transcribed,
            State::Extracting,
            State::Extracted
        ]
    );
    assert_eq!(
        status.current_of(SESSION, &job).unwrap().state,
        State::Extracted
    );
    // A late redelivery of the upload does not move the recording back.
    intake::handle_message(&intake_ports, &intake_config, &body)
        .await
        .unwrap();
    assert_eq!(
        status.current_of(SESSION, &job).unwrap().state,
        State::Extracted
    );
}

#[tokio::test]
async fn rejections_and_permanent_failures_are_recorded_and_status_outages_retry() {
    let store = MemoryStore::default();
    let (transcriber, events, status) = (
        MemoryTranscriber::default(),
        MemoryEvents::default(),
        MemoryStatus::default(),
    );
    let ports = IntakePorts {
        store: &store,
        transcriber: &transcriber,
        events: &events,
        status: &status,
    };
    let config = IntakeConfig::from_env(&Env::from_pairs(&[(
        "TELEPIPE_TRANSCRIPTS_BUCKET",
        "transcripts",
    )]))
    .unwrap();
    store.insert(
        "recordings",
        "recordings/sess-7/notes.wav",
        b"not audio at all".to_vec(),
    );
    let err = intake::handle_message(
        &ports,
        &config,
        &notification("recordings", "recordings/sess-7/notes.wav"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason, "format_mismatch");
    let rejected = status.all();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[1].state, State::Rejected);
    assert_eq!(rejected[1].reason.as_deref(), Some("format_mismatch"));
    assert_eq!(rejected[1].error_class.as_deref(), Some("permanent"));

    // Transcribe refuses the request: permanent, recorded as failed under the job name.
    store.insert("recordings", "recordings/sess-7/visit.wav", wav());
    transcriber
        .failures
        .push(Some(PortErrorKind::InvalidRequest));
    let err = intake::handle_message(
        &ports,
        &config,
        &notification("recordings", "recordings/sess-7/visit.wav"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    let failed = status
        .all()
        .into_iter()
        .find(|t| t.state == State::Failed)
        .expect("failed recorded");
    assert_eq!(failed.reason.as_deref(), Some("invalid_request"));
    assert!(failed.job_name.is_some());

    // The status store is down: the message must come back, not be finished.
    store.insert("recordings", "recordings/sess-7/second.wav", wav());
    status.failures.push(Some(PortErrorKind::AccessDenied));
    let err = intake::handle_message(
        &ports,
        &config,
        &notification("recordings", "recordings/sess-7/second.wav"),
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.reason, "status_write_failed");
}
