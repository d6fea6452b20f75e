//! `Scheduler` on Amazon EventBridge Scheduler: one-time `at()` schedules that deliver
//! their payload to an SQS queue once and delete themselves.

use super::{classify, AwsContext};
use crate::error::PortError;
use crate::error::PortErrorKind;
use crate::ports::{OneTimeSchedule, ScheduleCreated, ScheduleTarget, Scheduler};
use crate::sessions::policy::at_expression;
use crate::sessions::SchedulerConfig;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};
use aws_sdk_scheduler::Client;

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
