//! The local runtime: the very same `intake` and `clinical` stages and the same batch
//! driver as the Lambda workers, driven over the filesystem store, SQLite queues, the
//! local bus, the local transcriber and an offline NLP engine.
//!
//! One loop does a round at a time: announce dropped files, consume the capture queue
//! (Chime captures joined into recordings) and the intake queue, run one transcription
//! job, consume the clinical queue; every
//! `TELEPIPE_SWEEP_EVERY_ROUNDS` rounds (default 100) the sweeper runs too. Messages are deleted only
//! after their batch is disposed of, so stopping at any point (Ctrl-C, kill -9) loses
//! nothing: the next start releases what was in flight and does it again.

use crate::audit::LocalAuditLog;
use crate::bus::{deployed_rules, LocalBus};
use crate::capture::LocalMediaPipelines;
use crate::db::Db;
use crate::queue::{LocalMessage, QueueSpec, Queues};
use crate::sessions::{
    LocalLedger, LocalNotifications, LocalScheduler, LocalSessionStore, LocalSuppressions, Outbox,
    NOTIFICATIONS_DLQ, NOTIFICATIONS_QUEUE, SESSIONS_DLQ, SESSIONS_QUEUE,
};
use crate::status_store::{QueueSender, SqliteStatus};
use crate::store::{FsStore, Notification};
use crate::transcriber::{self, JobOutcome, JobWorker, LocalTranscriber, SpeechToText};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use telepipe_workers::audit::AuditedStatus;
use telepipe_workers::batch::{process_batch, Received};
use telepipe_workers::capture::CaptureConfig;
use telepipe_workers::capture::{self as capture_stage, CapturePorts};
use telepipe_workers::clinical::ClinicalConfig;
use telepipe_workers::clinical::{self, ClinicalPorts};
use telepipe_workers::config::{ConfigError, ConsumerConfig, Env, EventsConfig};
use telepipe_workers::error::PortError;
use telepipe_workers::intake::IntakeConfig;
use telepipe_workers::intake::{self, IntakePorts};
use telepipe_workers::notifier::NotifierConfig;
use telepipe_workers::notifier::{self, NotifierPorts};
use telepipe_workers::ports::ClinicalNlp;
use telepipe_workers::sessions::SessionsConfig;
use telepipe_workers::sessions::{self, SessionsPorts};
use telepipe_workers::sweeper::{self, SweepReport, SweeperConfig, SweeperPorts};

pub const RECORDINGS_BUCKET: &str = "recordings";
pub const TRANSCRIPTS_BUCKET: &str = "transcripts";
pub const RESULTS_BUCKET: &str = "results";
pub const INTAKE_QUEUE: &str = "intake";
pub const INTAKE_DLQ: &str = "intake-dlq";
pub const CLINICAL_QUEUE: &str = "clinical";
pub const CLINICAL_DLQ: &str = "clinical-dlq";
pub const TRANSCRIBE_DLQ: &str = "transcription-dlq";
/// Chime media pipeline events (the `chime-media-pipeline-events` rule's local queue).
pub const CAPTURE_QUEUE: &str = "capture";
pub const CAPTURE_DLQ: &str = "capture-dlq";
/// Patients' texts (`telepipe sms receive`, as the webhook and SNS feed it on AWS).
pub const REPLIES_QUEUE: &str = "replies";
pub const REPLIES_DLQ: &str = "replies-dlq";

/// Local values for what the Lambda functions get from the template; any `TELEPIPE_*`
/// variable set in the environment still wins.
const LOCAL_DEFAULTS: &[(&str, &str)] = &[
    ("TELEPIPE_TRANSCRIPTS_BUCKET", TRANSCRIPTS_BUCKET),
    ("TELEPIPE_RECORDINGS_BUCKET", RECORDINGS_BUCKET),
    ("TELEPIPE_RESULTS_BUCKET", RESULTS_BUCKET),
    ("TELEPIPE_RETRY_BASE_SECONDS", "2"),
    ("TELEPIPE_RETRY_MAX_SECONDS", "60"),
];

/// What can stop the runtime from starting; each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {}: {source}", path.display())]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("event rules (infra/event-rules.json): {0}")]
    Rules(#[from] crate::pattern::PatternError),
    #[error("another telepipe runtime (pid {pid}) is using {}; stop it first", path.display())]
    Locked { path: PathBuf, pid: u32 },
    #[error("{} has no telepipe.db: not a data directory", path.display())]
    NotADataDir { path: PathBuf },
    #[error("{0}")]
    Port(#[from] PortError),
}

/// Probabilities of injected faults (for the fault-injection run; zero otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// A finished message is not deleted, so the queue delivers it again.
    pub redelivery: f64,
}

pub struct Pipeline<N: ClinicalNlp, E: SpeechToText> {
    pub data_dir: PathBuf,
    pub db: Db,
    pub queues: Queues,
    pub store: FsStore,
    pub bus: LocalBus,
    pub transcriber: LocalTranscriber,
    pub worker: JobWorker<E>,
    pub nlp: N,
    pub intake: IntakeConfig,
    pub clinical: ClinicalConfig,
    /// Joins Chime captures dropped under the capture prefix into recordings.
    pub pipelines: LocalMediaPipelines,
    pub capture: CaptureConfig,
    pub capture_consumer: ConsumerConfig,
    pub intake_consumer: ConsumerConfig,
    pub clinical_consumer: ConsumerConfig,
    pub session_store: LocalSessionStore,
    pub scheduler: LocalScheduler,
    pub notifications: LocalNotifications,
    pub ledger: LocalLedger,
    /// Where "sent" SMS and email go: `DATA_DIR/outbox/`, one JSON file each.
    pub outbox: Outbox,
    pub sessions: SessionsConfig,
    pub notifier: NotifierConfig,
    /// Numbers that opted out of SMS.
    pub suppressions: LocalSuppressions,
    pub replies: telepipe_workers::replies::RepliesConfig,
    pub replies_consumer: ConsumerConfig,
    pub sessions_consumer: ConsumerConfig,
    pub notifications_consumer: ConsumerConfig,
    pub faults: Faults,
    pub status: SqliteStatus,
    /// The hash-chained audit trail every status transition is appended to.
    pub audit: LocalAuditLog,
    pub sweeper: SweeperConfig,
    /// `TELEPIPE_SWEEP_EVERY_ROUNDS` (default 100; 0 = never): rounds between sweeps.
    pub sweep_every_rounds: u64,
    rounds: std::sync::atomic::AtomicU64,
}

/// Work done in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    pub announced: usize,
    pub capture_messages: usize,
    pub intake_messages: usize,
    pub job: Option<JobOutcome>,
    pub clinical_messages: usize,
    pub timers_fired: usize,
    pub session_messages: usize,
    pub notification_messages: usize,
    pub reply_messages: usize,
    /// What the sweeper did, on the rounds it ran.
    pub sweep: Option<usize>,
}

impl Round {
    pub fn did_work(&self) -> bool {
        self.announced
            + self.capture_messages
            + self.intake_messages
            + self.clinical_messages
            + self.timers_fired
            + self.session_messages
            + self.notification_messages
            + self.reply_messages
            > 0
            || self.job.as_ref().is_some_and(|j| *j != JobOutcome::Idle)
    }
}

fn to_received(message: &LocalMessage) -> Received {
    Received {
        message_id: message.id.clone(),
        receipt_handle: message.receipt.clone(),
        body: message.body.clone(),
        receive_count: message.receive_count,
        attributes: message.attributes.clone(),
    }
}

impl<N: ClinicalNlp, E: SpeechToText> Pipeline<N, E> {
    /// Opens (creating if needed) a data directory and wires every adapter.
    pub fn open(data_dir: &Path, nlp: N, engine: Arc<E>) -> Result<Self, LocalError> {
        let dir_error = |source| LocalError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(data_dir.join("buckets")).map_err(dir_error)?;
        for bucket in [RECORDINGS_BUCKET, TRANSCRIPTS_BUCKET, RESULTS_BUCKET] {
            std::fs::create_dir_all(data_dir.join("buckets").join(bucket)).map_err(dir_error)?;
        }
        let db_path = data_dir.join("telepipe.db");
        let db = Db::open(&db_path).map_err(|source| LocalError::Database {
            path: db_path.clone(),
            source,
        })?;
        crate::sessions::ensure_schema(&db).map_err(|source| LocalError::Database {
            path: db_path.clone(),
            source,
        })?;
        let queues = Queues::new(db.clone());
        declare_queues(&queues).map_err(|source| LocalError::Database {
            path: db_path.clone(),
            source,
        })?;
        let env = Env::process_with_defaults(LOCAL_DEFAULTS);
        let intake = IntakeConfig::from_env(&env)?;
        let capture = CaptureConfig::from_env(&env)?;
        let clinical = ClinicalConfig::from_env(&env)?;
        let events = EventsConfig::from_env(&env)?;
        let phone_key = phone_key(data_dir).map_err(dir_error)?;
        let mut sessions = SessionsConfig::from_env(&env)?;
        sessions.phone_key = Some(phone_key.clone());
        let mut notifier = NotifierConfig::from_env(&env)?;
        notifier.phone_key = Some(phone_key.clone());
        let sweeper = SweeperConfig::from_env(&env)?;
        let sweep_every_rounds = env.parsed(
            "TELEPIPE_SWEEP_EVERY_ROUNDS",
            100u64,
            "a whole number of rounds (0 = never)",
        )?;
        let consumer = |queue: &str, dlq: &str| {
            let pairs = [("TELEPIPE_QUEUE_URL", queue), ("TELEPIPE_DLQ_URL", dlq)];
            let local = Env::from_pairs(&pairs);
            let mut config = ConsumerConfig::from_env(&Env::process_with_defaults(LOCAL_DEFAULTS))
                .or_else(|_| ConsumerConfig::from_env(&local))?;
            config.queue_url = queue.to_owned();
            config.dlq_url = dlq.to_owned();
            Ok::<_, ConfigError>(config)
        };
        let notifications = vec![
            Notification {
                bucket: RECORDINGS_BUCKET.into(),
                prefix: intake.recordings_prefix.clone(),
                suffix: String::new(),
                queue: INTAKE_QUEUE.into(),
            },
            Notification {
                bucket: intake.transcripts_bucket.clone(),
                prefix: intake.transcripts_prefix.clone(),
                suffix: ".json".into(),
                queue: CLINICAL_QUEUE.into(),
            },
        ];
        let store = FsStore::new(
            data_dir.join("buckets"),
            db.clone(),
            queues.clone(),
            notifications,
        );
        let bus = LocalBus::new(db.clone(), queues.clone(), events.source, deployed_rules()?);
        Ok(Self {
            suppressions: LocalSuppressions::new(db.clone()),
            replies: telepipe_workers::replies::RepliesConfig { phone_key },
            replies_consumer: consumer(REPLIES_QUEUE, REPLIES_DLQ)?,
            pipelines: LocalMediaPipelines::new(db.clone(), store.clone()),
            capture,
            capture_consumer: consumer(CAPTURE_QUEUE, CAPTURE_DLQ)?,
            data_dir: data_dir.to_path_buf(),
            transcriber: LocalTranscriber::new(db.clone()),
            status: SqliteStatus::new(db.clone()),
            audit: LocalAuditLog::new(db.clone()).map_err(|source| LocalError::Database {
                path: db_path.clone(),
                source,
            })?,
            sweeper,
            sweep_every_rounds,
            rounds: std::sync::atomic::AtomicU64::new(0),
            worker: JobWorker {
                db: db.clone(),
                store: store.clone(),
                engine,
                dead_letters: queues.port(TRANSCRIBE_DLQ, TRANSCRIBE_DLQ),
                retry_base_ms: 1000,
            },
            intake_consumer: consumer(INTAKE_QUEUE, INTAKE_DLQ)?,
            clinical_consumer: consumer(CLINICAL_QUEUE, CLINICAL_DLQ)?,
            sessions_consumer: consumer(SESSIONS_QUEUE, SESSIONS_DLQ)?,
            notifications_consumer: consumer(NOTIFICATIONS_QUEUE, NOTIFICATIONS_DLQ)?,
            session_store: LocalSessionStore::new(db.clone()),
            scheduler: LocalScheduler::new(db.clone(), queues.clone()),
            notifications: LocalNotifications::new(queues.clone()),
            ledger: LocalLedger::new(db.clone(), notifier.idempotency_window),
            outbox: Outbox::new(&data_dir.join("outbox")),
            sessions,
            notifier,
            db,
            queues,
            store,
            bus,
            nlp,
            intake,
            clinical,
            faults: Faults::default(),
        })
    }

    /// The status store as the stages see it: every transition also appended to the audit trail.
    pub fn audited_status(&self) -> AuditedStatus<'_, SqliteStatus, LocalAuditLog> {
        AuditedStatus {
            inner: &self.status,
            audit: Some(&self.audit),
            actor: "local",
        }
    }

    /// Makes work a previous run left in flight (stopped or killed) due again.
    pub fn recover(&self) -> Result<(usize, usize), LocalError> {
        let path = self.data_dir.join("telepipe.db");
        let db_error = |source| LocalError::Database {
            path: path.clone(),
            source,
        };
        Ok((
            self.queues.release_in_flight().map_err(db_error)?,
            transcriber::release_claims(&self.db).map_err(db_error)?,
        ))
    }

    fn settle(
        &self,
        messages: &[LocalMessage],
        keep: impl Fn(usize) -> bool,
    ) -> Result<(), PortError> {
        for (index, message) in messages.iter().enumerate() {
            let lose_delete =
                self.faults.redelivery > 0.0 && fastrand::f64() < self.faults.redelivery;
            if !keep(index) && !lose_delete {
                self.queues.delete(&message.receipt)?;
            }
        }
        Ok(())
    }

    async fn consume_capture(&self) -> Result<usize, PortError> {
        let messages = self.queues.receive(CAPTURE_QUEUE, 10)?;
        if messages.is_empty() {
            return Ok(0);
        }
        let received: Vec<Received> = messages.iter().map(to_received).collect();
        let port = self.queues.port(CAPTURE_QUEUE, CAPTURE_DLQ);
        let ports = CapturePorts {
            pipelines: &self.pipelines,
            listing: &self.store,
            events: &self.bus,
            audit: Some(&self.audit),
            actor: "local",
        };
        let (_, dispositions) = process_batch(
            capture_stage::STAGE,
            &received,
            &port,
            &self.capture_consumer,
            async |body: &str| capture_stage::handle_message(&ports, &self.capture, body).await,
        )
        .await;
        self.settle(&messages, |i| dispositions[i].keeps_message())?;
        Ok(messages.len())
    }

    async fn consume_replies(&self) -> Result<usize, PortError> {
        let messages = self.queues.receive(REPLIES_QUEUE, 10)?;
        if messages.is_empty() {
            return Ok(0);
        }
        let received: Vec<Received> = messages.iter().map(to_received).collect();
        let port = self.queues.port(REPLIES_QUEUE, REPLIES_DLQ);
        let ports = telepipe_workers::replies::RepliesPorts {
            sessions: &self.session_store,
            suppressions: &self.suppressions,
            notifications: &self.notifications,
            events: &self.bus,
            audit: Some(&self.audit),
        };
        let (_, dispositions) = process_batch(
            telepipe_workers::replies::STAGE,
            &received,
            &port,
            &self.replies_consumer,
            async |body: &str| {
                telepipe_workers::replies::handle_message(
                    &ports,
                    &self.replies,
                    body,
                    jiff::Timestamp::now(),
                )
                .await
            },
        )
        .await;
        self.settle(&messages, |i| dispositions[i].keeps_message())?;
        Ok(messages.len())
    }

    async fn consume_intake(&self) -> Result<usize, PortError> {
        let messages = self.queues.receive(INTAKE_QUEUE, 10)?;
        if messages.is_empty() {
            return Ok(0);
        }
        let received: Vec<Received> = messages.iter().map(to_received).collect();
        let port = self.queues.port(INTAKE_QUEUE, INTAKE_DLQ);
        let status = self.audited_status();
        let ports = IntakePorts {
            store: &self.store,
            transcriber: &self.transcriber,
            events: &self.bus,
            status: &status,
        };
        let (_, dispositions) = process_batch(
            intake::STAGE,
            &received,
            &port,
            &self.intake_consumer,
            async |body: &str| intake::handle_message(&ports, &self.intake, body).await,
        )
        .await;
        self.settle(&messages, |i| dispositions[i].keeps_message())?;
        Ok(messages.len())
    }

    async fn consume_clinical(&self) -> Result<usize, PortError> {
        let messages = self.queues.receive(CLINICAL_QUEUE, 10)?;
        if messages.is_empty() {
            return Ok(0);
        }
        let received: Vec<Received> = messages.iter().map(to_received).collect();
        let port = self.queues.port(CLINICAL_QUEUE, CLINICAL_DLQ);
        let status = self.audited_status();
        let ports = ClinicalPorts {
            store: &self.store,
            nlp: &self.nlp,
            events: &self.bus,
            status: &status,
        };
        let (_, dispositions) = process_batch(
            clinical::STAGE,
            &received,
            &port,
            &self.clinical_consumer,
            async |body: &str| clinical::handle_message(&ports, &self.clinical, body).await,
        )
        .await;
        self.settle(&messages, |i| dispositions[i].keeps_message())?;
        Ok(messages.len())
    }

    async fn consume_sessions(&self) -> Result<usize, PortError> {
        let messages = self.queues.receive(SESSIONS_QUEUE, 10)?;
        if messages.is_empty() {
            return Ok(0);
        }
        let received: Vec<Received> = messages.iter().map(to_received).collect();
        let port = self.queues.port(SESSIONS_QUEUE, SESSIONS_DLQ);
        let ports = SessionsPorts {
            store: &self.session_store,
            scheduler: &self.scheduler,
            notifications: &self.notifications,
            events: &self.bus,
        };
        let (_, dispositions) = process_batch(
            sessions::STAGE,
            &received,
            &port,
            &self.sessions_consumer,
            async |body: &str| {
                sessions::handle_message(&ports, &self.sessions, body, jiff::Timestamp::now()).await
            },
        )
        .await;
        self.settle(&messages, |i| dispositions[i].keeps_message())?;
        Ok(messages.len())
    }

    async fn consume_notifications(&self) -> Result<usize, PortError> {
        let messages = self.queues.receive(NOTIFICATIONS_QUEUE, 10)?;
        if messages.is_empty() {
            return Ok(0);
        }
        let received: Vec<Received> = messages.iter().map(to_received).collect();
        let port = self.queues.port(NOTIFICATIONS_QUEUE, NOTIFICATIONS_DLQ);
        let ports = NotifierPorts {
            store: &self.session_store,
            ledger: &self.ledger,
            sender: &self.outbox,
            events: &self.bus,
            suppressions: &self.suppressions,
        };
        let (_, dispositions) = process_batch(
            notifier::STAGE,
            &received,
            &port,
            &self.notifications_consumer,
            async |body: &str| {
                let attempt = crate::db::random_id();
                notifier::handle_message(
                    &ports,
                    &self.notifier,
                    body,
                    &attempt,
                    jiff::Timestamp::now(),
                )
                .await
            },
        )
        .await;
        self.settle(&messages, |i| dispositions[i].keeps_message())?;
        Ok(messages.len())
    }

    /// One round of every stage.
    /// One sweep at `now_ms` over the local status store, transcriber, bus and clinical queue.
    pub async fn sweep(&self, now_ms: i64) -> Result<SweepReport, PortError> {
        let clinical_queue = QueueSender {
            queues: self.queues.clone(),
            queue: CLINICAL_QUEUE.to_owned(),
        };
        let status = self.audited_status();
        let ports = SweeperPorts {
            transcriber: &self.transcriber,
            events: &self.bus,
            status: &status,
            clinical_queue: &clinical_queue,
        };
        sweeper::sweep(&ports, &self.sweeper, now_ms)
            .await
            .map_err(|err| {
                err.source.unwrap_or_else(|| {
                    PortError::new(
                        telepipe_workers::error::PortErrorKind::Unavailable,
                        "local",
                        "Sweep",
                    )
                })
            })
    }

    /// One round of every stage (and of the sweeper, every `sweep_every_rounds`).
    pub async fn round(&self) -> Result<Round, PortError> {
        let number = self
            .rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut round = Round {
            announced: self.store.scan()?,
            capture_messages: self.consume_capture().await?,
            intake_messages: self.consume_intake().await?,
            job: Some(self.worker.run_one().await?),
            clinical_messages: self.consume_clinical().await?,
            timers_fired: self.scheduler.fire_due(jiff::Timestamp::now())?,
            session_messages: self.consume_sessions().await?,
            reply_messages: self.consume_replies().await?,
            notification_messages: self.consume_notifications().await?,
            sweep: None,
        };
        if number.checked_rem(self.sweep_every_rounds) == Some(0) {
            let report = self.sweep(crate::db::now_ms()).await?;
            round.sweep = Some(report.actions.len());
        }
        Ok(round)
    }

    /// Whether anything is still to do (now or later: delayed retries, queued jobs).
    pub fn pending(&self) -> Result<bool, PortError> {
        let unavailable = |_| {
            PortError::new(
                telepipe_workers::error::PortErrorKind::Unavailable,
                "local",
                "Pending",
            )
        };
        let mut pending = transcriber::pending_jobs(&self.db).map_err(unavailable)? > 0;
        // Timers due later are not pending work: a reminder next week must not keep `demo` running.
        for queue in [
            REPLIES_QUEUE,
            CAPTURE_QUEUE,
            INTAKE_QUEUE,
            CLINICAL_QUEUE,
            SESSIONS_QUEUE,
            NOTIFICATIONS_QUEUE,
        ] {
            let depth = self.queues.depth(queue).map_err(unavailable)?;
            pending |= depth.visible + depth.in_flight + depth.delayed > 0;
        }
        Ok(pending)
    }

    /// Runs rounds until nothing is pending, calling `after_round` after each.
    pub async fn run_until_idle(
        &self,
        mut after_round: impl FnMut(&Round),
    ) -> Result<(), PortError> {
        loop {
            let round = self.round().await?;
            after_round(&round);
            if !round.did_work() {
                if !self.pending()? && self.store.scan()? == 0 {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// The data directory's phone key (`DATA_DIR/phone-key`, 32 random bytes as hex, mode
/// 0600), made on first use: locally what the deployment's Secrets Manager secret is.
pub fn phone_key(data_dir: &Path) -> std::io::Result<telepipe_workers::replies::PhoneKey> {
    let path = data_dir.join("phone-key");
    let valid = |text: &str| text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
    match std::fs::read_to_string(&path) {
        Ok(text) if valid(text.trim()) => {
            return Ok(telepipe_workers::replies::PhoneKey::new(text.trim().as_bytes()))
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a phone key (64 hex characters); it keys every stored number, so it is not replaced silently",
                    path.display()
                ),
            ))
        }
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        Err(_) => {}
    }
    // Written whole to a temporary file, then linked into place (never replacing one that
    // appeared meanwhile), so no reader ever sees a partial key.
    let secret = crate::db::random_secret_hex()?;
    let temp = data_dir.join(format!(".phone-key-{}", crate::db::random_id()));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        std::io::Write::write_all(&mut file, secret.as_bytes())?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&temp, &path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(telepipe_workers::replies::PhoneKey::new(secret.as_bytes())),
        // Another process made it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => phone_key(data_dir),
        Err(err) => Err(err),
    }
}

/// Declares every local queue (idempotent).
fn declare_queues(queues: &Queues) -> rusqlite::Result<()> {
    for (name, visibility_secs, dlq) in [
        (INTAKE_QUEUE, 60, Some(INTAKE_DLQ)),
        (CLINICAL_QUEUE, 300, Some(CLINICAL_DLQ)),
        (INTAKE_DLQ, 60, None),
        (CLINICAL_DLQ, 60, None),
        (TRANSCRIBE_DLQ, 60, None),
        (CAPTURE_QUEUE, 300, Some(CAPTURE_DLQ)),
        (CAPTURE_DLQ, 60, None),
        (REPLIES_QUEUE, 60, Some(REPLIES_DLQ)),
        (REPLIES_DLQ, 60, None),
        (SESSIONS_QUEUE, 60, Some(SESSIONS_DLQ)),
        (NOTIFICATIONS_QUEUE, 60, Some(NOTIFICATIONS_DLQ)),
        (SESSIONS_DLQ, 60, None),
        (NOTIFICATIONS_DLQ, 60, None),
    ] {
        let spec = QueueSpec {
            name: name.into(),
            visibility_secs,
            max_receives: 8,
            dead_letter_queue: dlq.map(Into::into),
        };
        queues.declare(&spec)?;
    }
    Ok(())
}

/// The bus of a data directory without the engines: how `telepipe events put` injects
/// events next to (or without) a running runtime.
pub fn open_bus(data_dir: &Path) -> Result<LocalBus, LocalError> {
    std::fs::create_dir_all(data_dir).map_err(|source| LocalError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let db_path = data_dir.join("telepipe.db");
    let db_error = |source| LocalError::Database {
        path: db_path.clone(),
        source,
    };
    let db = Db::open(&db_path).map_err(db_error)?;
    crate::sessions::ensure_schema(&db).map_err(db_error)?;
    let queues = Queues::new(db.clone());
    declare_queues(&queues).map_err(db_error)?;
    let events = EventsConfig::from_env(&Env::process_with_defaults(LOCAL_DEFAULTS))?;
    Ok(LocalBus::new(db, queues, events.source, deployed_rules()?))
}

/// The database of an existing data directory, for the commands that read one: never
/// creates one, so a mistyped path says so instead of showing an empty pipeline.
pub fn open_existing(data_dir: &Path) -> Result<Db, LocalError> {
    let path = data_dir.join("telepipe.db");
    if !path.exists() {
        return Err(LocalError::NotADataDir {
            path: data_dir.to_path_buf(),
        });
    }
    Db::open(&path).map_err(|source| LocalError::Database { path, source })
}

/// Exclusive use of a data directory by one long-running runtime.
pub struct DirLock {
    path: PathBuf,
}

impl DirLock {
    pub fn acquire(data_dir: &Path) -> Result<Self, LocalError> {
        let path = data_dir.join("runtime.lock");
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(pid) = text.trim().parse::<u32>() {
                if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
                    return Err(LocalError::Locked {
                        path: data_dir.to_path_buf(),
                        pid,
                    });
                }
            }
        }
        std::fs::write(&path, std::process::id().to_string()).map_err(|source| {
            LocalError::DataDir {
                path: data_dir.to_path_buf(),
                source,
            }
        })?;
        Ok(Self { path })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why a patient's text was not queued.
#[derive(Debug, thiserror::Error)]
pub enum InboundSmsError {
    #[error("the sender must be an E.164 number like +15551230000")]
    NotE164,
    #[error(transparent)]
    Port(#[from] PortError),
}

/// One patient's text on the replies queue, as the webhook or SNS would put it on AWS;
/// `telepipe run` then hands it to the replies stage. Returns the message id given to it.
pub fn queue_inbound_sms(
    bus: &crate::bus::LocalBus,
    from: &str,
    body: &str,
) -> Result<String, InboundSmsError> {
    if !telepipe_workers::notifier::address::is_e164(from) {
        return Err(InboundSmsError::NotE164);
    }
    let sms = telepipe_events::replies::InboundSms {
        provider: telepipe_events::replies::InboundProvider::Local,
        message_id: format!("local-{}", crate::db::random_id()),
        from: from.to_owned(),
        to: String::new(),
        body: body.to_owned(),
        opt_out_type: None,
    };
    let text = serde_json::to_string(&sms).expect("an inbound text serializes");
    bus.queues()
        .send(REPLIES_QUEUE, &text, &std::collections::BTreeMap::new(), 0)?;
    Ok(sms.message_id)
}
