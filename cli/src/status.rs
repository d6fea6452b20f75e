//! `telepipe status`: where each recording of a data directory is and the queues
//! (`telepipe_local::status`); with `--session`, `--since`, `--state` or `--aws`, the
//! per-recording timelines of the status store (`telepipe_local::timeline`).

use crate::output::{format_time, table, CommandResult, Failure, Outcome, Printer};
use serde::Serialize;
use std::path::Path;
use telepipe_local::queue::{QueueDepth, Queues};
use telepipe_local::runtime::open_existing;
use telepipe_local::status::{self, RecordingStatus};
use telepipe_local::timeline::{select, RecordingTimeline, Selection};
use telepipe_workers::status::{State, Transition};

/// What to show, from the command line.
pub struct StatusArgs<'a> {
    pub data_dir: Option<&'a Path>,
    pub session: Option<&'a str>,
    /// A window, in milliseconds back from now.
    pub since: Option<i64>,
    pub state: Option<State>,
    pub aws: bool,
}

#[derive(Serialize)]
struct QueueRow {
    name: String,
    #[serde(flatten)]
    depth: QueueDepth,
}

#[derive(Serialize)]
struct TransitionView {
    at_ms: i64,
    state: &'static str,
    attempt: u32,
    job_name: Option<String>,
    error_class: Option<String>,
    reason: Option<String>,
}

impl From<&Transition> for TransitionView {
    fn from(t: &Transition) -> Self {
        Self {
            at_ms: t.at_ms,
            state: t.state.as_str(),
            attempt: t.attempt,
            job_name: t.job_name.clone(),
            error_class: t.error_class.clone(),
            reason: t.reason.clone(),
        }
    }
}

#[derive(Serialize)]
struct TimelineView {
    session_id: String,
    recording: String,
    object_ref: Option<String>,
    transitions: Vec<TransitionView>,
}

impl From<&RecordingTimeline> for TimelineView {
    fn from(t: &RecordingTimeline) -> Self {
        Self {
            session_id: t.session_id.clone(),
            recording: t.recording.clone(),
            object_ref: t.object_ref.clone(),
            transitions: t.transitions.iter().map(TransitionView::from).collect(),
        }
    }
}

/// Everything `status` shows; the parts a mode does not show are left out.
#[derive(Serialize, Default)]
struct StatusReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    recordings: Option<Vec<RecordingStatus>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queues: Option<Vec<QueueRow>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timelines: Option<Vec<TimelineView>>,
}

pub async fn run(args: StatusArgs<'_>, printer: Printer) -> CommandResult {
    let now = telepipe_local::db::now_ms();
    let selection = Selection {
        session: args.session.map(str::to_owned),
        since_ms: args.since.map(|d| now - d),
        state: args.state,
    };
    let mut report = StatusReport::default();
    match args.data_dir {
        Some(dir) if !args.aws && args.since.is_none() && args.state.is_none() => {
            let db = open_existing(dir).map_err(|e| e.to_string())?;
            let queues = Queues::new(db.clone());
            report.recordings =
                Some(status::recordings(&db, &queues, args.session).map_err(|e| e.to_string())?);
            report.queues = Some(
                status::queue_depths(&queues)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|(name, depth)| QueueRow { name, depth })
                    .collect(),
            );
            if args.session.is_some() {
                report.timelines = Some(timelines(Some(dir), false, &selection, now).await?);
            }
        }
        _ => report.timelines = Some(timelines(args.data_dir, args.aws, &selection, now).await?),
    }
    printer.show(&report, |r| render(r, args.session))?;
    Ok(Outcome::Done)
}

async fn timelines(
    data_dir: Option<&Path>,
    aws: bool,
    selection: &Selection,
    now: i64,
) -> Result<Vec<TimelineView>, Failure> {
    let found = if aws {
        aws_timelines(selection, now).await?
    } else {
        let dir = data_dir.ok_or_else(|| {
            Failure::Usage("--data-dir (or TELEPIPE_DATA_DIR) is required without --aws".into())
        })?;
        let db = open_existing(dir).map_err(|e| e.to_string())?;
        select(
            &telepipe_local::status_store::SqliteStatus::new(db),
            selection,
            now,
        )
        .await?
    };
    Ok(found.iter().map(TimelineView::from).collect())
}

#[cfg(feature = "aws")]
async fn aws_timelines(selection: &Selection, now: i64) -> Result<Vec<RecordingTimeline>, String> {
    use telepipe_workers::config::Env;
    let config = telepipe_workers::status::StatusConfig::from_env(&Env::process())
        .map_err(|e| e.to_string())?;
    let context = telepipe_workers::aws::AwsContext::load().await;
    let store = telepipe_workers::aws::DynamoStatus::new(&context, config.table, config.ttl_days);
    select(&store, selection, now).await
}

#[cfg(not(feature = "aws"))]
async fn aws_timelines(
    _selection: &Selection,
    _now: i64,
) -> Result<Vec<RecordingTimeline>, String> {
    Err("--aws needs telepipe built with the `aws` feature".into())
}

fn render(report: &StatusReport, session: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(recordings) = &report.recordings {
        if recordings.is_empty() {
            out.push_str(&format!(
                "(no recordings{})\n",
                session
                    .map(|s| format!(" for session {s}"))
                    .unwrap_or_default()
            ));
        } else {
            let mut t = table([
                "session",
                "job / object",
                "stage",
                "since",
                "error / results",
            ]);
            for s in recordings {
                let detail = s
                    .error
                    .clone()
                    .or_else(|| s.results_uri.clone())
                    .unwrap_or_default();
                t.add_row([
                    s.session_id.clone(),
                    s.reference.clone(),
                    s.stage.to_owned(),
                    format_time(s.since_ms),
                    detail,
                ]);
            }
            out.push_str(&format!("{t}\n"));
        }
    }
    if let Some(queues) = &report.queues {
        let mut t = table(["queue", "visible", "in flight", "delayed", "oldest"]);
        for q in queues {
            t.add_row([
                q.name.clone(),
                q.depth.visible.to_string(),
                q.depth.in_flight.to_string(),
                q.depth.delayed.to_string(),
                q.depth
                    .oldest_sent_ms
                    .map(format_time)
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&format!("\n{t}\n"));
    }
    if let Some(timelines) = &report.timelines {
        if report.recordings.is_some() {
            out.push_str("\ntimeline (status store):\n");
        }
        out.push_str(&render_timelines(timelines));
    }
    out
}

/// One block per recording, its transitions oldest first.
fn render_timelines(timelines: &[TimelineView]) -> String {
    let mut out = String::new();
    for timeline in timelines {
        let object = timeline
            .object_ref
            .as_deref()
            .map(|o| format!("  object {o}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "session {}  recording {}{object}\n",
            timeline.session_id, timeline.recording
        ));
        for t in &timeline.transitions {
            let state = match t.state {
                "stalled" => format!("stalled ({})", t.reason.as_deref().unwrap_or("?")),
                state => state.to_owned(),
            };
            let mut detail = Vec::new();
            if t.attempt > 1 {
                detail.push(format!("attempt {}", t.attempt));
            }
            if let Some(job) = &t.job_name {
                detail.push(format!("job {job}"));
            }
            if let (Some(class), Some(reason)) = (&t.error_class, &t.reason) {
                detail.push(format!("{class}: {reason}"));
            } else if let (Some(reason), false) = (&t.reason, t.state == "stalled") {
                detail.push(reason.clone());
            }
            out.push_str(&format!(
                "  {:<21} {:<24} {}\n",
                format_time(t.at_ms),
                state,
                detail.join("  ")
            ));
        }
    }
    if out.is_empty() {
        out.push_str("(no recordings match)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelines_render_one_block_per_recording() {
        let failed = TransitionView {
            at_ms: 1_800_000_000_000,
            state: "failed",
            attempt: 1,
            job_name: Some("r1".into()),
            error_class: Some("permanent".into()),
            reason: Some("unsupported_media".into()),
        };
        let text = render_timelines(&[TimelineView {
            session_id: "s1".into(),
            recording: "r1".into(),
            object_ref: None,
            transitions: vec![failed],
        }]);
        assert!(text.contains("session s1  recording r1"), "{text}");
        assert!(text.contains("permanent: unsupported_media"), "{text}");
        assert_eq!(render_timelines(&[]), "(no recordings match)\n");
    }
}
