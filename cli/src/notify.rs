//! The sessions side on the local runtime: `telepipe timers` (reminders and recording
//! checks), `telepipe notifications` (a session's notification log, or the deployed one
//! with `--aws`) and `telepipe sms receive` (a patient's text for the replies stage).

use crate::output::{format_time, table, CommandResult, Failure, Outcome, Printer};
use serde::Serialize;
use std::path::Path;
use telepipe_local::runtime::queue_inbound_sms;
use telepipe_local::runtime::{open_bus, open_existing};
use telepipe_local::sessions::{mask_address, LocalScheduler};
use telepipe_workers::ports::NotificationLogEntry;

/// One pending timer (its payload, which may carry a contact, is not shown).
#[derive(Serialize)]
struct PendingTimer {
    name: String,
    /// RFC 3339, UTC.
    fire_at: String,
    time_zone: String,
    /// The queue it delivers to.
    target: String,
}

#[derive(Serialize)]
struct Timers {
    timers: Vec<PendingTimer>,
    /// How many were delivered now (`--fire`).
    fired: usize,
}

/// `telepipe timers [--session ID] [--fire]`.
pub fn timers(
    data_dir: &Path,
    session: Option<&str>,
    fire: bool,
    printer: Printer,
) -> CommandResult {
    let bus = open_bus(data_dir).map_err(|e| e.to_string())?;
    let scheduler = LocalScheduler::new(bus.db().clone(), bus.queues().clone());
    let pending = scheduler.list(session).map_err(|e| e.to_string())?;
    let mut fired = 0;
    if fire {
        for timer in &pending {
            scheduler.fire(timer).map_err(|e| e.to_string())?;
            fired += 1;
        }
    }
    let result = Timers {
        timers: pending
            .iter()
            .map(|t| PendingTimer {
                name: t.name.clone(),
                fire_at: t.fire_at.to_string(),
                time_zone: t.time_zone.clone(),
                target: t.target.clone(),
            })
            .collect(),
        fired,
    };
    printer.show(&result, |r| {
        if r.timers.is_empty() {
            return "(no pending timers)".into();
        }
        let mut t = table(["timer", "fires at (UTC)", "zone", "delivers to"]);
        for timer in &r.timers {
            t.add_row([&timer.name, &timer.fire_at, &timer.time_zone, &timer.target]);
        }
        let mut out = t.to_string();
        if r.fired > 0 {
            out.push_str(&format!(
                "\ndelivered {} timer(s) now; a running `telepipe run` processes them",
                r.fired
            ));
        }
        out
    })?;
    Ok(Outcome::Done)
}

/// `telepipe notifications --session ID`: every send, skip and failure, locally or on AWS.
pub async fn notifications(
    session: &str,
    data_dir: Option<&Path>,
    aws: bool,
    printer: Printer,
) -> CommandResult {
    let entries = if aws {
        aws_notification_log(session).await?
    } else {
        let dir = data_dir.ok_or_else(|| {
            Failure::Usage("--data-dir (or TELEPIPE_DATA_DIR) is required without --aws".into())
        })?;
        let db = open_existing(dir).map_err(|e| e.to_string())?;
        telepipe_local::sessions::notification_log(&db, session)
            .map_err(|e| format!("{}: {e}", dir.display()))?
    };
    printer.show(&entries, |entries| {
        if entries.is_empty() {
            return format!("(no notifications recorded for {session})");
        }
        let mut t = table([
            "time",
            "kind",
            "recipient",
            "channel",
            "outcome",
            "reason / provider",
            "intent",
        ]);
        for e in entries {
            let detail = e
                .reason
                .clone()
                .or_else(|| e.provider.clone())
                .unwrap_or_default();
            t.add_row([
                format_time(e.at_ms),
                e.kind.as_str().to_owned(),
                e.recipient.as_str().to_owned(),
                e.channel.as_str().to_owned(),
                e.outcome.clone(),
                detail,
                e.intent_id.clone(),
            ]);
        }
        t.to_string()
    })?;
    Ok(Outcome::Done)
}

#[cfg(feature = "aws")]
async fn aws_notification_log(session: &str) -> Result<Vec<NotificationLogEntry>, String> {
    let config = telepipe_ops::aws_session::AwsSessionConfig::from_env();
    let context = telepipe_workers::aws::AwsContext::load().await;
    telepipe_ops::aws_session::AwsSessionData::new(context, config)
        .notification_log(session)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "aws"))]
async fn aws_notification_log(_session: &str) -> Result<Vec<NotificationLogEntry>, String> {
    Err("this telepipe was built without the `aws` feature".into())
}

#[derive(Serialize)]
struct Queued {
    /// The sender, masked.
    from: String,
    message_id: String,
    queue: &'static str,
}

/// `telepipe sms receive --from N --body TEXT|-`.
pub fn receive_sms(from: &str, body: &str, data_dir: &Path, printer: Printer) -> CommandResult {
    if !telepipe_workers::notifier::address::is_e164(from) {
        return Err(Failure::Usage(
            "--from must be an E.164 number like +15551230000".to_owned(),
        ));
    }
    let body = if body == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("--body -: reading standard input: {e}"))?;
        text.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        body.to_owned()
    };
    let bus = open_bus(data_dir).map_err(|e| e.to_string())?;
    let message_id = queue_inbound_sms(&bus, from, &body).map_err(|e| e.to_string())?;
    let queued = Queued {
        from: mask_address(from),
        message_id,
        queue: telepipe_local::runtime::REPLIES_QUEUE,
    };
    printer.show(&queued, |q| {
        format!(
            "queued a text from {} for the replies stage (telepipe run processes it)",
            q.from
        )
    })?;
    Ok(Outcome::Done)
}
