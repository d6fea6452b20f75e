//! What both stages do with an S3 notification message: parse it, ignore S3's test
//! event, run the stage on every record in its own span, and answer for the message with
//! the worst failure (retryable wins: the message comes back and the records that
//! succeeded are redone idempotently).

use crate::error::Reason;
use crate::error::StageError;
use telepipe_events::s3::{parse_notification, S3Notification, S3Record};
use tracing::{field, info, info_span, Instrument};

/// Runs `handle` on each record of the notification in `body`.
///
/// Each call runs inside a `record` span with empty `session_id`, `job_name`,
/// `object_ref` and `correlation_id` fields for the stage to fill, so every log line
/// carries them.
pub async fn for_each_record<O, F>(body: &str, mut handle: F) -> Result<Vec<O>, StageError>
where
    F: AsyncFnMut(&S3Record) -> Result<O, StageError>,
{
    let records = match parse_notification(body) {
        Ok(S3Notification::TestEvent) => {
            info!("ignoring s3:TestEvent");
            return Ok(Vec::new());
        }
        Ok(S3Notification::Records(records)) => records,
        Err(err) => {
            return Err(StageError::permanent(
                Reason::MalformedNotification,
                err.to_string(),
            ))
        }
    };
    let mut outcomes = Vec::with_capacity(records.len());
    let mut worst: Option<StageError> = None;
    for (index, record) in records.iter().enumerate() {
        let span = info_span!(
            "record",
            index,
            session_id = field::Empty,
            job_name = field::Empty,
            object_ref = field::Empty,
            correlation_id = field::Empty
        );
        match handle(record).instrument(span).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => {
                if worst
                    .as_ref()
                    .is_none_or(|w| !w.is_retryable() && err.is_retryable())
                {
                    worst = Some(err);
                }
            }
        }
    }
    worst.map_or(Ok(outcomes), Err)
}
