//! The Lambda side of every stage: which stage a process serves (`Stage`, from the
//! binary or `TELEPIPE_STAGE`), configuration errors that stop start-up with the variable
//! named, and the loop that turns an SQS event into a partial batch response — routed,
//! when one function serves every SQS stage, by each record's queue.
//!
//! How each stage is wired to its AWS adapters lives in `stages`.

pub mod stages;

use crate::batch::{BatchResponse, Received};
use crate::config::{ConfigError, ConsumerConfig, Env};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use futures::future::LocalBoxFuture;
use lambda_runtime::{service_fn, LambdaEvent};
use std::time::{Duration, Instant, SystemTime};

/// A stage a Lambda function can serve. Its name is `TELEPIPE_STAGE`'s value and the
/// per-stage binary's name; its scope prefixes the router's per-stage variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Intake,
    Clinical,
    Sessions,
    Notifier,
    Capture,
    Replies,
    Sweeper,
    SmsInbound,
}

impl Stage {
    /// The stages fed by an SQS queue: what `TELEPIPE_STAGE=auto` serves in one function.
    pub const SQS: [Stage; 6] = [
        Stage::Intake,
        Stage::Clinical,
        Stage::Sessions,
        Stage::Notifier,
        Stage::Capture,
        Stage::Replies,
    ];
    /// Every stage: the SQS stages, then the sweeper (a schedule) and sms-inbound (a URL).
    pub const ALL: [Stage; 8] = {
        let mut all = [Stage::Sweeper; 8];
        let mut i = 0;
        while i < Stage::SQS.len() {
            all[i] = Stage::SQS[i];
            i += 1;
        }
        all[7] = Stage::SmsInbound;
        all
    };

    pub fn name(self) -> &'static str {
        match self {
            Stage::Intake => "intake",
            Stage::Clinical => "clinical",
            Stage::Sessions => "sessions",
            Stage::Notifier => "notifier",
            Stage::Capture => "capture",
            Stage::Replies => "replies",
            Stage::Sweeper => "sweeper",
            Stage::SmsInbound => "sms-inbound",
        }
    }

    /// `TELEPIPE_{scope}__X` is this stage's own value of `TELEPIPE_X` in the router.
    pub fn scope(self) -> &'static str {
        match self {
            Stage::Intake => "INTAKE",
            Stage::Clinical => "CLINICAL",
            Stage::Sessions => "SESSIONS",
            Stage::Notifier => "NOTIFIER",
            Stage::Capture => "CAPTURE",
            Stage::Replies => "REPLIES",
            Stage::Sweeper => "SWEEPER",
            Stage::SmsInbound => "SMS_INBOUND",
        }
    }
}

/// What `TELEPIPE_STAGE` asks a `telepipe-lambda` process to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    One(Stage),
    /// Every SQS stage, each record routed by its queue.
    EverySqsStage,
}

/// The variable naming the stage `telepipe-lambda` serves.
pub const STAGE_VARIABLE: &str = "TELEPIPE_STAGE";

impl Served {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let value = env.required(STAGE_VARIABLE)?;
        let value = value.trim();
        if value == "auto" {
            return Ok(Served::EverySqsStage);
        }
        Stage::ALL
            .into_iter()
            .find(|stage| stage.name() == value)
            .map(Served::One)
            .ok_or_else(|| ConfigError {
                variable: STAGE_VARIABLE,
                problem: format!(
                    "must be auto or one of {} (got {value:?})",
                    Stage::ALL.map(Stage::name).join(", ")
                ),
            })
    }
}

/// Unwraps a configuration result or exits with status 2 and the variable named (Lambda
/// reports it as an init error in the function's log).
pub fn config_or_exit<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|err| {
        tracing::error!(variable = err.variable, problem = %err.problem, "invalid configuration");
        eprintln!("{err}");
        std::process::exit(2)
    })
}

/// The Lambda main of the per-stage binary `stage`.
pub async fn serve_stage(stage: Stage) -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init_json_logging();
    serve(Served::One(stage)).await
}

/// The Lambda main of `telepipe-lambda`: the stage(s) `TELEPIPE_STAGE` names.
pub async fn serve_from_env() -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init_json_logging();
    serve(config_or_exit(Served::from_env(&Env::process()))).await
}

async fn serve(served: Served) -> Result<(), lambda_runtime::Error> {
    let env = Env::process();
    config_or_exit(crate::metrics::install_from_env(&env));
    let aws = crate::aws::AwsContext::load().await;
    match served {
        Served::One(Stage::Sweeper) => stages::build_sweeper(&env, &aws).await?.serve().await,
        Served::One(Stage::SmsInbound) => {
            stages::build_sms_inbound(&env, &aws).await?.serve().await
        }
        Served::One(stage) => serve_sqs_stages(vec![stages::build(stage, &env, &aws).await?]).await,
        Served::EverySqsStage => {
            let mut built = Vec::with_capacity(Stage::SQS.len());
            for stage in Stage::SQS {
                built.push(stages::build(stage, &env.scoped(stage.scope()), &aws).await?);
            }
            serve_sqs_stages(built).await
        }
    }
}

/// A stage built for its queue: its consumer settings and what it does with a batch.
pub trait SqsStage {
    fn stage(&self) -> Stage;
    fn consumer(&self) -> &ConsumerConfig;
    /// No message is begun with less than this left of the invocation (the notifier: a
    /// send cut off by the timeout has an unknown outcome).
    fn deadline_margin(&self) -> Option<Duration> {
        None
    }
    /// Runs the stage over `received`, beginning no message after `start_before`.
    fn process<'a>(
        &'a self,
        received: &'a [Received],
        start_before: Option<Instant>,
    ) -> LocalBoxFuture<'a, BatchResponse>;
}

/// Serves SQS events to `stages`: with one stage every record is its; with several, each
/// record goes to the stage whose queue it came from.
pub async fn serve_sqs_stages(stages: Vec<Box<dyn SqsStage>>) -> Result<(), lambda_runtime::Error> {
    let stages = &stages;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = event.context.deadline();
        let mut response = BatchResponse::default();
        for (stage, records) in route(stages, event.payload.records) {
            let mut received = Vec::with_capacity(records.len());
            for record in records {
                let id = record.message_id.clone();
                match (stage, Received::from_lambda(record)) {
                    (Some(_), Some(message)) => received.push(message),
                    // A queue no stage of this function reads: a deployment error. The
                    // record stays on its queue (its redrive policy ends it in the DLQ).
                    (None, _) => {
                        tracing::error!(
                            message_id = id.as_deref().unwrap_or(""),
                            "record from a queue no stage of this function consumes"
                        );
                        response.add_failure(id.unwrap_or_default());
                    }
                    // Without an id the message cannot be reported alone: fail the whole
                    // invocation so SQS redelivers everything rather than drop it.
                    (Some(_), None) => {
                        return Err(lambda_runtime::Error::from(
                            "SQS record without messageId or receiptHandle",
                        ))
                    }
                }
            }
            let Some(stage) = stage else { continue };
            let start_before = stage.deadline_margin().and_then(|margin| {
                let remaining = deadline.duration_since(SystemTime::now()).ok()?;
                Instant::now().checked_add(remaining.saturating_sub(margin))
            });
            let answered = stage.process(&received, start_before).await;
            response
                .batch_item_failures
                .extend(answered.batch_item_failures);
        }
        Ok::<BatchResponse, lambda_runtime::Error>(response)
    }))
    .await
}

/// Groups records by the stage that consumes their queue, in order of first appearance
/// (an event source mapping sends one queue per invocation; the grouping is for safety).
fn route(
    stages: &[Box<dyn SqsStage>],
    records: Vec<SqsMessage>,
) -> Vec<(Option<&dyn SqsStage>, Vec<SqsMessage>)> {
    let mut groups: Vec<(Option<&dyn SqsStage>, Vec<SqsMessage>)> = Vec::new();
    for record in records {
        let stage = match stages {
            [only] => Some(only.as_ref()),
            _ => record.event_source_arn.as_deref().and_then(|arn| {
                stages
                    .iter()
                    .find(|stage| same_queue(arn, &stage.consumer().queue_url))
                    .map(|stage| stage.as_ref())
            }),
        };
        let key = stage.map(|s| s.stage());
        match groups.iter_mut().find(|(s, _)| s.map(|s| s.stage()) == key) {
            Some((_, group)) => group.push(record),
            None => groups.push((stage, vec![record])),
        }
    }
    groups
}

/// Whether a queue ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`) and a queue URL
/// (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or an emulator's `http://host/ACCOUNT/NAME`)
/// name the same queue.
pub fn same_queue(arn: &str, queue_url: &str) -> bool {
    let mut arn_parts = arn.rsplitn(3, ':');
    let (Some(name), Some(account)) = (arn_parts.next(), arn_parts.next()) else {
        return false;
    };
    let mut url_parts = queue_url.trim_end_matches('/').rsplitn(3, '/');
    url_parts.next() == Some(name) && url_parts.next() == Some(account)
}

/// The audit trail of a Lambda function: the Object Lock bucket when configured; without
/// one, says so once (at start-up, not per message) and audits nothing.
pub fn audit_log(
    aws: &crate::aws::AwsContext,
    config: crate::config::AuditConfig,
) -> Option<crate::aws::S3AuditLog> {
    match config.bucket {
        Some(bucket) => Some(crate::aws::S3AuditLog::new(aws, bucket)),
        None => {
            tracing::warn!("TELEPIPE_AUDIT_BUCKET is not set: no audit entries are written");
            None
        }
    }
}

/// The phone key, read once at start-up (Secrets Manager, or the value itself); `None`
/// when not configured (said once). A secret that cannot be read stops the start-up: a
/// notifier without it would text numbers that opted out.
pub async fn phone_key(
    aws: &crate::aws::AwsContext,
    config: crate::config::PhoneKeyConfig,
) -> Result<Option<crate::replies::PhoneKey>, crate::error::PortError> {
    use crate::config::PhoneKeyConfig;
    match config {
        PhoneKeyConfig::Value(secret) => Ok(Some(crate::replies::PhoneKey::new(
            secret.expose().as_bytes(),
        ))),
        PhoneKeyConfig::Secret(arn) => {
            let value = aws.secret_string(&arn).await?.trim().to_owned();
            if value.len() < 16 {
                return Err(crate::error::PortError::new(
                    crate::error::PortErrorKind::InvalidRequest,
                    "secretsmanager",
                    "GetSecretValue",
                )
                .with_code("PhoneKeyTooShort"));
            }
            Ok(Some(crate::replies::PhoneKey::new(value.as_bytes())))
        }
        PhoneKeyConfig::None => {
            tracing::warn!("no phone key (TELEPIPE_PHONE_KEY_SECRET_ARN): texts back cannot find sessions and opt-outs are not checked");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns_match_the_urls_of_the_same_queue_only() {
        let arn = "arn:aws:sqs:eu-west-1:123456789012:telepipe-intake";
        assert!(same_queue(
            arn,
            "https://sqs.eu-west-1.amazonaws.com/123456789012/telepipe-intake"
        ));
        assert!(same_queue(
            arn,
            "http://127.0.0.1:5000/123456789012/telepipe-intake/"
        ));
        assert!(!same_queue(
            arn,
            "https://sqs.eu-west-1.amazonaws.com/123456789012/telepipe-intake-dlq"
        ));
        assert!(!same_queue(
            arn,
            "https://sqs.eu-west-1.amazonaws.com/210987654321/telepipe-intake"
        ));
        assert!(!same_queue("not-an-arn", "https://sqs/x/y"));
    }

    #[test]
    fn telepipe_stage_names_a_stage_or_auto() {
        let served = |value: &str| Served::from_env(&Env::from_pairs(&[(STAGE_VARIABLE, value)]));
        assert_eq!(served("auto").unwrap(), Served::EverySqsStage);
        for stage in Stage::ALL {
            assert_eq!(served(stage.name()).unwrap(), Served::One(stage));
        }
        let err = served("transcode").unwrap_err();
        assert_eq!(err.variable, STAGE_VARIABLE);
        assert!(err.problem.contains("sms-inbound"), "{}", err.problem);
        assert_eq!(
            Served::from_env(&Env::from_pairs(&[]))
                .unwrap_err()
                .variable,
            STAGE_VARIABLE
        );
    }
}
