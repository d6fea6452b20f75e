//! `Scheduler` on Amazon EventBridge Scheduler: one-time `at()` schedules that deliver
//! their payload to an SQS queue once and delete themselves.

use super::{classify, AwsContext};
use crate::config::{ConfigError, Env};
use crate::error::PortError;
use crate::error::PortErrorKind;
use crate::ports::{OneTimeSchedule, ScheduleCreated, ScheduleTarget, Scheduler};
use crate::sessions::policy::at_expression;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};
use aws_sdk_scheduler::Client;

/// Where schedules live and deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// `TELEPIPE_SCHEDULE_GROUP` (required): the schedule group of this deployment.
    pub group: String,
    /// `TELEPIPE_SCHEDULER_ROLE_ARN` (required): the role Scheduler assumes to send to the queues.
    pub role_arn: String,
    /// `TELEPIPE_NOTIFICATIONS_QUEUE_ARN` (required).
    pub notifications_queue_arn: String,
    /// `TELEPIPE_SESSIONS_QUEUE_ARN` (required): recording checks come back here.
    pub sessions_queue_arn: String,
    /// `TELEPIPE_SCHEDULER_DLQ_ARN` (required): deliveries Scheduler gives up on.
    pub dead_letter_arn: String,
}

impl SchedulerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            group: env.required("TELEPIPE_SCHEDULE_GROUP")?,
            role_arn: env.required("TELEPIPE_SCHEDULER_ROLE_ARN")?,
            notifications_queue_arn: env.required("TELEPIPE_NOTIFICATIONS_QUEUE_ARN")?,
            sessions_queue_arn: env.required("TELEPIPE_SESSIONS_QUEUE_ARN")?,
            dead_letter_arn: env.required("TELEPIPE_SCHEDULER_DLQ_ARN")?,
        })
    }
}

#[derive(Clone)]
pub struct EventBridgeScheduler {
    client: Client,
    config: SchedulerConfig,
}

impl EventBridgeScheduler {
    pub fn new(context: &AwsContext, config: SchedulerConfig) -> Self {
        Self::from_client(Client::new(&context.sdk), config)
    }

    pub fn from_client(client: Client, config: SchedulerConfig) -> Self {
        Self { client, config }
    }
}

impl Scheduler for EventBridgeScheduler {
    async fn create(&self, schedule: &OneTimeSchedule) -> Result<ScheduleCreated, PortError> {
        let (expression, zone) = at_expression(schedule.fire_at, &schedule.time_zone);
        let queue_arn = match schedule.target {
            ScheduleTarget::Notifications => &self.config.notifications_queue_arn,
            ScheduleTarget::Sessions => &self.config.sessions_queue_arn,
        };
        let target = Target::builder()
            .arn(queue_arn)
            .role_arn(&self.config.role_arn)
            .input(&schedule.payload)
            .dead_letter_config(
                DeadLetterConfig::builder()
                    .arn(&self.config.dead_letter_arn)
                    .build(),
            )
            // Scheduler retries delivery to SQS for up to an hour; a reminder later than
            // that is worse than none, and the DLQ keeps it for operators.
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_event_age_in_seconds(3600)
                    .maximum_retry_attempts(20)
                    .build(),
            )
            .build()
            .map_err(|_| {
                PortError::new(PortErrorKind::InvalidRequest, "scheduler", "CreateSchedule")
            })?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|_| {
                PortError::new(PortErrorKind::InvalidRequest, "scheduler", "CreateSchedule")
            })?;
        let created = self
            .client
            .create_schedule()
            .name(&schedule.name)
            .group_name(&self.config.group)
            .schedule_expression(expression)
            .schedule_expression_timezone(zone)
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await
            .map_err(|e| classify(&e, "scheduler", "CreateSchedule"));
        match created {
            Ok(_) => Ok(ScheduleCreated::Created),
            Err(err) if err.kind == PortErrorKind::AlreadyExists => {
                Ok(ScheduleCreated::AlreadyExists)
            }
            Err(err) => Err(err),
        }
    }

    async fn delete(&self, name: &str) -> Result<bool, PortError> {
        let deleted = self
            .client
            .delete_schedule()
            .name(name)
            .group_name(&self.config.group)
            .send()
            .await
            .map_err(|e| classify(&e, "scheduler", "DeleteSchedule"));
        match deleted {
            Ok(_) => Ok(true),
            Err(err) if err.kind == PortErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }
}
