//! `telepipe audit`: a session's (or every) audit entry, from the data directory's
//! append-only table (`telepipe_local::audit`) or the deployed audit bucket (`--aws`);
//! `telepipe audit verify`: the local hash chain.

use crate::output::{format_time, table, CommandResult, Failure, Outcome, Printer};
use serde::Serialize;
use std::path::Path;
use telepipe_events::audit::AuditEntry;
use telepipe_local::runtime::open_existing;

/// `telepipe audit [--session ID] [--since D]`, oldest first.
pub async fn show(
    data_dir: Option<&Path>,
    session: Option<&str>,
    since_ms: i64,
    aws: bool,
    printer: Printer,
) -> CommandResult {
    let entries = if aws {
        aws_audit(session.unwrap_or_default(), since_ms).await?
    } else {
        let dir = data_dir.ok_or_else(|| {
            Failure::Usage("--data-dir (or TELEPIPE_DATA_DIR) is required without --aws".into())
        })?;
        let db = open_existing(dir).map_err(|e| e.to_string())?;
        telepipe_local::audit::LocalAuditLog::new(db)
            .and_then(|log| log.entries(session, since_ms))
            .map_err(|e| format!("{}: {e}", dir.display()))?
    };
    printer.show(&entries, |entries| {
        if entries.is_empty() {
            return "(no audit entries)".into();
        }
        let mut t = table(["time", "session", "action", "actor", "refs"]);
        for entry in entries {
            t.add_row([
                format_time(entry.at_ms),
                entry.session_id.clone().unwrap_or_else(|| "-".into()),
                entry.action.as_str().to_owned(),
                entry.actor.clone(),
                format!(
                    "{}{}",
                    entry.refs.join(" "),
                    entry
                        .reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            ]);
        }
        t.to_string()
    })?;
    Ok(Outcome::Done)
}

#[cfg(feature = "aws")]
async fn aws_audit(session: &str, since_ms: i64) -> Result<Vec<AuditEntry>, String> {
    let config = telepipe_ops::aws_session::AwsSessionConfig::from_env();
    let context = telepipe_workers::aws::AwsContext::load().await;
    telepipe_ops::aws_session::AwsSessionData::new(context, config)
        .audit_trail(session, since_ms)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "aws"))]
async fn aws_audit(_session: &str, _since_ms: i64) -> Result<Vec<AuditEntry>, String> {
    Err("this telepipe was built without the `aws` feature".into())
}

#[derive(Serialize)]
struct Verified {
    intact: bool,
    entries: u64,
    /// The last entry's digest: keep it elsewhere to detect a truncated tail later.
    head: String,
    /// The first entry that breaks the chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    broken_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'static str>,
}

/// `telepipe audit verify`: done when the chain is intact, failed (exit 1) when broken.
pub fn verify(data_dir: &Path, printer: Printer) -> CommandResult {
    let db = open_existing(data_dir).map_err(|e| e.to_string())?;
    let report =
        telepipe_local::audit::verify(&db).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let verified = Verified {
        intact: report.broken.is_none(),
        entries: report.entries,
        head: report.head,
        broken_at: report.broken.map(|(seq, _)| seq),
        why: report.broken.map(|(_, why)| why),
    };
    printer.show(&verified, |v| match (v.broken_at, v.why) {
        (Some(seq), Some(why)) => format!("audit trail BROKEN at entry {seq}: {why}"),
        _ => format!("audit trail intact: {} entries, head {}", v.entries, v.head),
    })?;
    Ok(if verified.intact {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}
