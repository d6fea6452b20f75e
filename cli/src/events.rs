//! `telepipe events put|list`: events onto the local bus (what the platform or Chime would
//! send) and the events it published (`telepipe_local::bus`).

use crate::output::{CommandResult, Failure, Outcome, Printer};
use serde::Serialize;
use std::path::Path;
use telepipe_local::bus::{complete_envelope, published};
use telepipe_local::runtime::{open_bus, open_existing};

/// One event put, and the rules it matched.
#[derive(Serialize)]
struct Put {
    #[serde(rename = "detail-type")]
    detail_type: String,
    /// The session (or Chime meeting) it is about, when it names one.
    session_id: Option<String>,
    rules: Vec<String>,
}

/// `telepipe events put FILE`: one EventBridge envelope or an array of them.
pub fn put(file: &Path, data_dir: &Path, printer: Printer) -> CommandResult {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
    let mut envelopes = match value {
        serde_json::Value::Array(items) => items,
        single => vec![single],
    };
    // Every envelope is checked before the first is put: a bad file puts nothing.
    for (index, envelope) in envelopes.iter_mut().enumerate() {
        complete_envelope(envelope)
            .map_err(|e| Failure::Runtime(format!("{} event {index}: {e}", file.display())))?;
    }
    let bus = open_bus(data_dir).map_err(|e| e.to_string())?;
    let mut put = Vec::new();
    for envelope in &envelopes {
        let rules = bus.put(envelope).map_err(|e| e.to_string())?;
        put.push(Put {
            detail_type: envelope["detail-type"].as_str().unwrap_or("?").to_owned(),
            session_id: envelope["detail"]["session_id"]
                .as_str()
                .or(envelope["detail"]["externalMeetingId"].as_str())
                .map(str::to_owned),
            rules,
        });
    }
    printer.show(&put, |put| {
        put.iter()
            .map(|p| {
                format!(
                    "{} {:?} → {}",
                    p.detail_type,
                    p.session_id.as_deref().unwrap_or("-"),
                    if p.rules.is_empty() {
                        "no rule matched (check source and detail-type)".to_owned()
                    } else {
                        p.rules.join(", ")
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(Outcome::Done)
}

/// `telepipe events list`: what the local bus published, oldest first.
pub fn list(
    data_dir: &Path,
    detail_type: Option<&str>,
    session: Option<&str>,
    printer: Printer,
) -> CommandResult {
    let db = open_existing(data_dir).map_err(|e| e.to_string())?;
    let events = published(&db, detail_type, session).map_err(|e| e.to_string())?;
    printer.show(&events, |events| {
        if events.is_empty() {
            return "(no events)".into();
        }
        events
            .iter()
            .map(|e| format!("{}  {:<28} {}", e.time, e.detail_type, e.detail))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(Outcome::Done)
}
