//! The replay journal: one JSON line per step of each replayed message, keyed by its id
//! on the dead-letter queue. It is both the audit record and what makes a replay safe to
//! interrupt and re-run.
//!
//! States, in order: `intent` (about to send), `sent` (the copy is on the target queue,
//! with its new id), `deleted` (move only: the original is gone); `aborted` withdraws an
//! intent whose send the service refused (so nothing was sent and a re-run may send).
//! Each line is written and synced before the step it allows, so after a crash the last
//! line of a message never claims more than happened.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Intent,
    Aborted,
    Sent,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at_ms: i64,
    pub state: State,
    /// The message's id on the dead-letter queue.
    pub message_id: String,
    pub dlq: String,
    pub target: String,
    /// `move` or `copy`.
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_message_id: Option<String>,
    /// Why it had been parked, for the audit (ids and codes only, never the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// Set when `--force` resent a message whose earlier send was uncertain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}

/// Where replay steps are recorded.
pub trait Journal: Send {
    /// The last recorded state of every message id.
    fn states(&self) -> io::Result<HashMap<String, State>>;
    /// Records steps durably (one sync for all) before returning.
    fn record_all(&mut self, entries: &[Entry]) -> io::Result<()>;

    fn record(&mut self, entry: &Entry) -> io::Result<()> {
        self.record_all(std::slice::from_ref(entry))
    }
}

/// Where a local data directory keeps the replay journal of dead-letter queue `queue`:
/// `DATA_DIR/replay/{queue}.jsonl`, so every tool (the command line, the console) resumes
/// the same record of what was sent.
pub fn local_journal_path(data_dir: &Path, queue: &str) -> PathBuf {
    data_dir
        .join("replay")
        .join(format!("{}.jsonl", file_safe(queue)))
}

/// A queue name as a file name: letters, digits, `.`, `_`, `-` kept, the rest `_`.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A JSON lines file, appended to and synced line by line.
pub struct FileJournal {
    path: PathBuf,
    file: File,
}

impl FileJournal {
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        // After a torn last line, start on a fresh line so the next entry stays readable.
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Last state per id from JSON lines; a torn last line (a crash mid-write) is ignored, which
/// at worst leaves its message at the previous, weaker state.
fn fold_states(lines: impl Iterator<Item = String>) -> HashMap<String, State> {
    let mut states = HashMap::new();
    for line in lines {
        if let Ok(entry) = serde_json::from_str::<Entry>(&line) {
            states.insert(entry.message_id, entry.state);
        }
    }
    states
}

impl Journal for FileJournal {
    fn states(&self) -> io::Result<HashMap<String, State>> {
        let reader = BufReader::new(File::open(&self.path)?);
        let lines: Vec<String> = reader.lines().collect::<Result<_, _>>()?;
        Ok(fold_states(lines.into_iter()))
    }

    fn record_all(&mut self, entries: &[Entry]) -> io::Result<()> {
        let mut lines = String::new();
        for entry in entries {
            lines.push_str(&serde_json::to_string(entry).map_err(io::Error::other)?);
            lines.push('\n');
        }
        self.file.write_all(lines.as_bytes())?;
        self.file.sync_data()
    }
}

/// A journal in memory (tests), optionally refusing any write that would take it past
/// `fail_at` entries.
#[derive(Default)]
pub struct MemoryJournal {
    pub entries: Vec<Entry>,
    pub fail_at: Option<usize>,
}

impl Journal for MemoryJournal {
    fn states(&self) -> io::Result<HashMap<String, State>> {
        Ok(fold_states(self.entries.iter().map(|e| {
            serde_json::to_string(e).expect("entries serialize")
        })))
    }

    fn record_all(&mut self, entries: &[Entry]) -> io::Result<()> {
        if self
            .fail_at
            .is_some_and(|n| self.entries.len() + entries.len() > n)
        {
            return Err(io::Error::other("injected journal failure"));
        }
        self.entries.extend_from_slice(entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, state: State) -> Entry {
        Entry {
            at_ms: 1,
            state,
            message_id: id.into(),
            dlq: "q-dlq".into(),
            target: "q".into(),
            mode: "move".into(),
            new_message_id: None,
            reason: None,
            stage: None,
            session_ids: vec![],
            body_sha256: None,
            forced: false,
        }
    }

    #[test]
    fn file_journal_keeps_the_last_state_and_survives_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("telepipe-journal-{}", std::process::id()));
        let path = dir.join("j.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut journal = FileJournal::open(&path).unwrap();
        journal.record(&entry("a", State::Intent)).unwrap();
        journal.record(&entry("a", State::Sent)).unwrap();
        journal.record(&entry("b", State::Intent)).unwrap();
        // A crash in the middle of writing b's `sent` line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"at_ms":2,"state":"sent","message_id":"b""#)
            .unwrap();
        let mut reopened = FileJournal::open(&path).unwrap();
        let states = reopened.states().unwrap();
        assert_eq!(states["a"], State::Sent);
        assert_eq!(states["b"], State::Intent);
        reopened.record(&entry("b", State::Aborted)).unwrap();
        assert_eq!(reopened.states().unwrap()["b"], State::Aborted);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
