//! How each stage is wired for Lambda: the configuration sections it reads and the AWS
//! adapters behind its ports. One `build_<stage>` per stage, used by the per-stage binaries
//! and by `telepipe-lambda` alike (`infra/check_template.py` reads the `from_env` calls
//! here to check that every variable a stage needs is set on its function).

use super::{audit_log, config_or_exit, phone_key, SqsStage, Stage};
use crate::audit::{lambda_actor, AuditedStatus};
use crate::aws::{
    twilio_credentials, twilio_webhook, AwsContext, Channels, ChimeMediaPipelines,
    ComprehendMedicalNlp, DynamoIntentLedger, DynamoSessionStore, DynamoStatus, DynamoSuppressions,
    EventBridgePublisher, EventBridgeScheduler, S3AuditLog, S3Store, SesEmail, SmsSender, SnsSms,
    SqsNotifications, SqsQueue, SqsSender, TranscribeMedical, TwilioSms,
};
use crate::batch::{process_batch_before, BatchResponse, Received};
use crate::capture::{CaptureConfig, CapturePorts};
use crate::clinical::{ClinicalConfig, ClinicalPorts};
use crate::config::{AuditConfig, ConsumerConfig, Env, EventsConfig, PhoneKeyConfig, Secret};
use crate::error::StageError;
use crate::intake::{IntakeConfig, IntakePorts};
use crate::notifier::{
    NotifierAwsConfig, NotifierConfig, NotifierPorts, SmsProvider, TwilioConfig,
};
use crate::replies::{InboundConfig, RepliesConfig, RepliesPorts};
use crate::sessions::{SchedulerConfig, SessionsAwsConfig, SessionsConfig, SessionsPorts};
use crate::status::{now_ms, StatusConfig};
use crate::sweeper::{RefeedConfig, SweeperConfig, SweeperPorts};
use futures::future::LocalBoxFuture;
use lambda_runtime::{service_fn, LambdaEvent};
use std::time::{Duration, Instant};

type Built = Result<Box<dyn SqsStage>, lambda_runtime::Error>;

/// The SQS stage `stage`, wired from `env`.
pub async fn build(stage: Stage, env: &Env<'_>, aws: &AwsContext) -> Built {
    match stage {
        Stage::Intake => build_intake(env, aws).await,
        Stage::Clinical => build_clinical(env, aws).await,
        Stage::Sessions => build_sessions(env, aws).await,
        Stage::Notifier => build_notifier(env, aws).await,
        Stage::Capture => build_capture(env, aws).await,
        Stage::Replies => build_replies(env, aws).await,
        Stage::Sweeper | Stage::SmsInbound => {
            Err(format!("{} is not fed by an SQS queue", stage.name()).into())
        }
    }
}

/// The queue a stage consumes, with the settings its batch loop needs.
struct Consumer {
    stage: Stage,
    config: ConsumerConfig,
    queue: SqsQueue,
}

impl Consumer {
    fn from_env(stage: Stage, env: &Env, aws: &AwsContext) -> Self {
        let config = config_or_exit(ConsumerConfig::from_env(env));
        let queue = SqsQueue::new(aws, config.queue_url.clone(), config.dlq_url.clone());
        Self {
            stage,
            config,
            queue,
        }
    }

    /// The stage's batch loop over `received`, each body handed to `handle`.
    async fn run<T>(
        &self,
        received: &[Received],
        start_before: Option<Instant>,
        handle: impl AsyncFn(&str) -> Result<T, StageError>,
    ) -> BatchResponse {
        let stage = self.stage.name();
        let (response, _) = process_batch_before(
            stage,
            received,
            &self.queue,
            &self.config,
            start_before,
            handle,
        )
        .await;
        response
    }
}

/// Implements [`SqsStage`] for a wired stage: `$process` runs one batch with `self`.
macro_rules! sqs_stage {
    ($wired:ty, margin = $margin:expr, |$this:ident, $received:ident, $start:ident| $process:block) => {
        impl SqsStage for $wired {
            fn stage(&self) -> Stage {
                self.consumer.stage
            }
            fn consumer(&self) -> &ConsumerConfig {
                &self.consumer.config
            }
            fn deadline_margin(&self) -> Option<Duration> {
                $margin
            }
            fn process<'a>(
                &'a self,
                $received: &'a [Received],
                $start: Option<Instant>,
            ) -> LocalBoxFuture<'a, BatchResponse> {
                let $this = self;
                Box::pin(async move $process)
            }
        }
    };
}

struct Intake {
    consumer: Consumer,
    config: IntakeConfig,
    store: S3Store,
    transcriber: TranscribeMedical,
    events: EventBridgePublisher,
    table: DynamoStatus,
    audit: Option<S3AuditLog>,
    actor: String,
}

pub async fn build_intake(env: &Env<'_>, aws: &AwsContext) -> Built {
    let config = config_or_exit(IntakeConfig::from_env(env));
    let events = config_or_exit(EventsConfig::from_env(env));
    let status = config_or_exit(StatusConfig::from_env(env));
    let audit = config_or_exit(AuditConfig::from_env(env));
    Ok(Box::new(Intake {
        consumer: Consumer::from_env(Stage::Intake, env, aws),
        config,
        store: S3Store::new(aws),
        transcriber: TranscribeMedical::new(aws),
        events: EventBridgePublisher::new(aws, events),
        table: DynamoStatus::new(aws, status.table, status.ttl_days),
        audit: audit_log(aws, audit),
        actor: lambda_actor(),
    }))
}

sqs_stage!(Intake, margin = None, |this, received, start_before| {
    let status = AuditedStatus {
        inner: &this.table,
        audit: this.audit.as_ref(),
        actor: &this.actor,
    };
    let ports = IntakePorts {
        store: &this.store,
        transcriber: &this.transcriber,
        events: &this.events,
        status: &status,
    };
    let handle = async |body: &str| crate::intake::handle_message(&ports, &this.config, body).await;
    this.consumer.run(received, start_before, handle).await
});

struct Clinical {
    consumer: Consumer,
    config: ClinicalConfig,
    store: S3Store,
    nlp: ComprehendMedicalNlp,
    events: EventBridgePublisher,
    table: DynamoStatus,
    audit: Option<S3AuditLog>,
    actor: String,
}

pub async fn build_clinical(env: &Env<'_>, aws: &AwsContext) -> Built {
    let config = config_or_exit(ClinicalConfig::from_env(env));
    let events = config_or_exit(EventsConfig::from_env(env));
    let status = config_or_exit(StatusConfig::from_env(env));
    let audit = config_or_exit(AuditConfig::from_env(env));
    Ok(Box::new(Clinical {
        consumer: Consumer::from_env(Stage::Clinical, env, aws),
        config,
        store: S3Store::new(aws),
        nlp: ComprehendMedicalNlp::new(aws),
        events: EventBridgePublisher::new(aws, events),
        table: DynamoStatus::new(aws, status.table, status.ttl_days),
        audit: audit_log(aws, audit),
        actor: lambda_actor(),
    }))
}

sqs_stage!(Clinical, margin = None, |this, received, start_before| {
    let status = AuditedStatus {
        inner: &this.table,
        audit: this.audit.as_ref(),
        actor: &this.actor,
    };
    let ports = ClinicalPorts {
        store: &this.store,
        nlp: &this.nlp,
        events: &this.events,
        status: &status,
    };
    let handle =
        async |body: &str| crate::clinical::handle_message(&ports, &this.config, body).await;
    this.consumer.run(received, start_before, handle).await
});

struct Sessions {
    consumer: Consumer,
    config: SessionsConfig,
    store: DynamoSessionStore,
    scheduler: EventBridgeScheduler,
    notifications: SqsNotifications,
    events: EventBridgePublisher,
}

pub async fn build_sessions(env: &Env<'_>, aws: &AwsContext) -> Built {
    let mut config = config_or_exit(SessionsConfig::from_env(env));
    let key = config_or_exit(PhoneKeyConfig::from_env(env));
    let events = config_or_exit(EventsConfig::from_env(env));
    let scheduler = config_or_exit(SchedulerConfig::from_env(env));
    let deployed = config_or_exit(SessionsAwsConfig::from_env(env));
    config.phone_key = phone_key(aws, key).await?;
    Ok(Box::new(Sessions {
        consumer: Consumer::from_env(Stage::Sessions, env, aws),
        config,
        store: DynamoSessionStore::new(aws, deployed.table)
            .with_retention_days(deployed.state_ttl_days),
        scheduler: EventBridgeScheduler::new(aws, scheduler),
        notifications: SqsNotifications::new(aws, deployed.notifications_queue_url),
        events: EventBridgePublisher::new(aws, events),
    }))
}

sqs_stage!(Sessions, margin = None, |this, received, start_before| {
    let ports = SessionsPorts {
        store: &this.store,
        scheduler: &this.scheduler,
        notifications: &this.notifications,
        events: &this.events,
    };
    let handle = async |body: &str| {
        let now = jiff::Timestamp::now();
        crate::sessions::handle_message(&ports, &this.config, body, now).await
    };
    this.consumer.run(received, start_before, handle).await
});

struct Notifier {
    consumer: Consumer,
    config: NotifierConfig,
    sender: Channels<SmsSender, SesEmail>,
    store: DynamoSessionStore,
    suppressions: DynamoSuppressions,
    ledger: DynamoIntentLedger,
    events: EventBridgePublisher,
}

pub async fn build_notifier(env: &Env<'_>, aws: &AwsContext) -> Built {
    let mut config = config_or_exit(NotifierConfig::from_env(env));
    let key = config_or_exit(PhoneKeyConfig::from_env(env));
    let events = config_or_exit(EventsConfig::from_env(env));
    let deployed = config_or_exit(NotifierAwsConfig::from_env(env));
    config.phone_key = phone_key(aws, key).await?;
    let sms = match config.sms_provider {
        SmsProvider::Sns => SmsSender::Sns(SnsSms::new(aws, deployed.sns_origination_number)),
        SmsProvider::Twilio => {
            let twilio = config_or_exit(TwilioConfig::from_env(env));
            match TwilioSms::new(aws, twilio).await {
                Ok(sender) => SmsSender::Twilio(Box::new(sender)),
                Err(err) => {
                    tracing::error!(error = %err, "could not load the Twilio credentials");
                    return Err(err.into());
                }
            }
        }
    };
    let email = (deployed.email_from)
        .map(|from| SesEmail::new(aws, from, deployed.ses_configuration_set.clone()));
    let table = deployed.table;
    Ok(Box::new(Notifier {
        consumer: Consumer::from_env(Stage::Notifier, env, aws),
        sender: Channels { sms, email },
        store: DynamoSessionStore::new(aws, table.clone()),
        suppressions: DynamoSuppressions::new(aws, table.clone()),
        ledger: DynamoIntentLedger::new(aws, table, config.idempotency_window)
            .with_log_days(config.notification_log_days),
        events: EventBridgePublisher::new(aws, events),
        config,
    }))
}

// A send needs up to the provider timeout (15 s) plus the ledger writes: none is begun
// with less than that left, so the invocation timeout never cuts one off mid-way.
sqs_stage!(
    Notifier,
    margin = Some(Duration::from_secs(20)),
    |this, received, start_before| {
        let ports = NotifierPorts {
            store: &this.store,
            ledger: &this.ledger,
            sender: &this.sender,
            events: &this.events,
            suppressions: &this.suppressions,
        };
        let handle = async |body: &str| {
            // Each attempt owns the claim it makes; a random token is unique enough.
            let attempt = format!("{:016x}", fastrand::u64(..));
            let now = jiff::Timestamp::now();
            crate::notifier::handle_message(&ports, &this.config, body, &attempt, now).await
        };
        this.consumer.run(received, start_before, handle).await
    }
);

struct Capture {
    consumer: Consumer,
    config: CaptureConfig,
    pipelines: ChimeMediaPipelines,
    listing: S3Store,
    events: EventBridgePublisher,
    audit: Option<S3AuditLog>,
    actor: String,
}

pub async fn build_capture(env: &Env<'_>, aws: &AwsContext) -> Built {
    let config = config_or_exit(CaptureConfig::from_env(env));
    let events = config_or_exit(EventsConfig::from_env(env));
    let audit = config_or_exit(AuditConfig::from_env(env));
    Ok(Box::new(Capture {
        consumer: Consumer::from_env(Stage::Capture, env, aws),
        config,
        pipelines: ChimeMediaPipelines::new(aws),
        listing: S3Store::new(aws),
        events: EventBridgePublisher::new(aws, events),
        audit: audit_log(aws, audit),
        actor: lambda_actor(),
    }))
}

sqs_stage!(Capture, margin = None, |this, received, start_before| {
    let ports = CapturePorts {
        pipelines: &this.pipelines,
        listing: &this.listing,
        events: &this.events,
        audit: this.audit.as_ref(),
        actor: &this.actor,
    };
    let handle =
        async |body: &str| crate::capture::handle_message(&ports, &this.config, body).await;
    this.consumer.run(received, start_before, handle).await
});

struct Replies {
    consumer: Consumer,
    config: RepliesConfig,
    sessions: DynamoSessionStore,
    suppressions: DynamoSuppressions,
    notifications: SqsNotifications,
    events: EventBridgePublisher,
    audit: Option<S3AuditLog>,
}

pub async fn build_replies(env: &Env<'_>, aws: &AwsContext) -> Built {
    let events = config_or_exit(EventsConfig::from_env(env));
    let deployed = config_or_exit(SessionsAwsConfig::from_env(env));
    let key = config_or_exit(PhoneKeyConfig::from_env(env));
    let audit = config_or_exit(AuditConfig::from_env(env));
    let Some(phone_key) = phone_key(aws, key).await? else {
        return Err("the replies stage needs TELEPIPE_PHONE_KEY_SECRET_ARN".into());
    };
    Ok(Box::new(Replies {
        consumer: Consumer::from_env(Stage::Replies, env, aws),
        config: RepliesConfig { phone_key },
        sessions: DynamoSessionStore::new(aws, deployed.table.clone()),
        suppressions: DynamoSuppressions::new(aws, deployed.table),
        notifications: SqsNotifications::new(aws, deployed.notifications_queue_url),
        events: EventBridgePublisher::new(aws, events),
        audit: audit_log(aws, audit),
    }))
}

sqs_stage!(Replies, margin = None, |this, received, start_before| {
    let ports = RepliesPorts {
        sessions: &this.sessions,
        suppressions: &this.suppressions,
        notifications: &this.notifications,
        events: &this.events,
        audit: this.audit.as_ref(),
    };
    let handle = async |body: &str| {
        let now = jiff::Timestamp::now();
        crate::replies::handle_message(&ports, &this.config, body, now).await
    };
    this.consumer.run(received, start_before, handle).await
});

/// The sweeper, wired: invoked by an EventBridge schedule (every 5 minutes by default),
/// whose event's content it ignores.
pub struct Sweeper {
    config: SweeperConfig,
    transcriber: TranscribeMedical,
    events: EventBridgePublisher,
    status: DynamoStatus,
    clinical_queue: SqsSender,
}

pub async fn build_sweeper(
    env: &Env<'_>,
    aws: &AwsContext,
) -> Result<Sweeper, lambda_runtime::Error> {
    let config = config_or_exit(SweeperConfig::from_env(env));
    let events = config_or_exit(EventsConfig::from_env(env));
    let status = config_or_exit(StatusConfig::from_env(env));
    let refeed = config_or_exit(RefeedConfig::from_env(env));
    Ok(Sweeper {
        config,
        transcriber: TranscribeMedical::new(aws),
        events: EventBridgePublisher::new(aws, events),
        status: DynamoStatus::new(aws, status.table, status.ttl_days),
        clinical_queue: SqsSender::new(aws, refeed.clinical_queue_url),
    })
}

impl Sweeper {
    pub async fn serve(self) -> Result<(), lambda_runtime::Error> {
        let ports = &SweeperPorts {
            transcriber: &self.transcriber,
            events: &self.events,
            status: &self.status,
            clinical_queue: &self.clinical_queue,
        };
        let config = &self.config;
        lambda_runtime::run(service_fn(
            move |_event: LambdaEvent<serde_json::Value>| async move {
                let report = crate::sweeper::sweep(ports, config, now_ms()).await?;
                // Per-recording failures are retried by the next scheduled sweep; the
                // invocation fails only when nothing could be swept at all.
                Ok::<serde_json::Value, lambda_runtime::Error>(serde_json::json!({
                    "examined": report.examined,
                    "actions": report.actions.len(),
                    "errors": report.errors.len(),
                }))
            },
        ))
        .await
    }
}

/// The Twilio inbound-SMS webhook behind a function URL, wired: signature-checked, onto
/// the replies queue, answered at once with empty TwiML.
pub struct SmsInbound {
    webhook_url: Option<String>,
    auth_token: Secret,
    replies: SqsSender,
}

pub async fn build_sms_inbound(
    env: &Env<'_>,
    aws: &AwsContext,
) -> Result<SmsInbound, lambda_runtime::Error> {
    let config = config_or_exit(InboundConfig::from_env(env));
    // The auth token is read once, here, and never printed.
    let (_, auth_token) = twilio_credentials(aws, config.credentials.clone()).await?;
    Ok(SmsInbound {
        webhook_url: config.webhook_url,
        auth_token,
        replies: SqsSender::new(aws, config.replies_queue_url),
    })
}

impl SmsInbound {
    pub async fn serve(self) -> Result<(), lambda_runtime::Error> {
        let this = &self;
        lambda_runtime::run(service_fn(
            move |event: LambdaEvent<serde_json::Value>| async move {
                let url = this.webhook_url.as_deref();
                let answer =
                    twilio_webhook::serve(&event.payload, url, &this.auth_token, &this.replies)
                        .await;
                Ok::<serde_json::Value, lambda_runtime::Error>(answer)
            },
        ))
        .await
    }
}
