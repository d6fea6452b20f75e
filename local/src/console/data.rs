//! What the console reads from a data directory: sessions with their recordings' timelines,
//! reminders and notifications; a visit's results documents and recording; queues, dead
//! letters and the outbox. Read-only (replays go through `telepipe_ops::replay`), safe
//! beside a running `telepipe run` (SQLite in WAL mode).

use crate::db::Db;
use crate::queue::{QueueDepth, Queues};
use crate::runtime::{RECORDINGS_BUCKET, RESULTS_BUCKET};
use crate::sessions::{notification_log, LocalScheduler, Timer};
use crate::status::RecordingStatus;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use telepipe_events::results::ResultsDocument;
use telepipe_workers::config::{
    prefix_or_default, Env, DEFAULT_RECORDINGS_PREFIX, DEFAULT_RESULTS_PREFIX,
};
use telepipe_workers::ports::NotificationLogEntry;

/// Audio the console serves and the report may embed: what Transcribe Medical accepts
/// and a browser plays.
const AUDIO_EXTENSIONS: [&str; 6] = ["wav", "mp3", "m4a", "mp4", "flac", "ogg"];

/// An open data directory.
pub struct DataDir {
    root: PathBuf,
    pub db: Db,
    pub queues: Queues,
    recordings_prefix: String,
    results_prefix: String,
}

/// One session as the overview lists it.
pub struct SessionOverview {
    pub session_id: String,
    pub recordings: Vec<RecordingStatus>,
    pub timers: Vec<Timer>,
    pub notifications: Vec<NotificationLogEntry>,
    pub results: usize,
}

impl DataDir {
    /// Opens `root/telepipe.db` of an existing data directory.
    pub fn open(root: &Path) -> Result<Self, String> {
        let db = crate::runtime::open_existing(root).map_err(|e| e.to_string())?;
        // The runtime's own session tables (a directory from before sessions lacks them).
        crate::sessions::ensure_schema(&db).map_err(|e| e.to_string())?;
        let env = Env::process();
        Ok(Self {
            root: root.to_path_buf(),
            queues: Queues::new(db.clone()),
            db,
            recordings_prefix: prefix_or_default(
                &env,
                "TELEPIPE_RECORDINGS_PREFIX",
                DEFAULT_RECORDINGS_PREFIX,
            ),
            results_prefix: prefix_or_default(
                &env,
                "TELEPIPE_RESULTS_PREFIX",
                DEFAULT_RESULTS_PREFIX,
            ),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bucket_dir(&self, bucket: &str, prefix: &str, session: &str) -> PathBuf {
        self.root
            .join("buckets")
            .join(bucket)
            .join(prefix.trim_end_matches('/'))
            .join(session)
    }

    /// Every session the directory knows: booked, recorded or with results, sorted.
    pub fn session_ids(&self) -> Result<Vec<String>, String> {
        self.session_ids_with(&self.recordings(None)?)
    }

    /// [`Self::session_ids`] given every recording's status, already read.
    fn session_ids_with(&self, recordings: &[RecordingStatus]) -> Result<Vec<String>, String> {
        let mut ids: BTreeSet<String> = {
            let connection = self.db.lock();
            let mut statement = connection
                .prepare("SELECT session_id FROM sessions")
                .map_err(|e| e.to_string())?;
            let rows = statement
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| e.to_string())?;
            rows.flatten().collect()
        };
        ids.extend(recordings.iter().map(|r| r.session_id.clone()));
        let results = self
            .root
            .join("buckets")
            .join(RESULTS_BUCKET)
            .join(self.results_prefix.trim_end_matches('/'));
        if let Ok(entries) = std::fs::read_dir(results) {
            ids.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok()),
            );
        }
        Ok(ids.into_iter().collect())
    }

    pub fn recordings(&self, session: Option<&str>) -> Result<Vec<RecordingStatus>, String> {
        crate::status::recordings(&self.db, &self.queues, session).map_err(|e| e.to_string())
    }

    /// Every session with its recordings, pending timers and notification log.
    pub fn overview(&self) -> Result<Vec<SessionOverview>, String> {
        let scheduler = LocalScheduler::new(self.db.clone(), self.queues.clone());
        let all = self.recordings(None)?;
        self.session_ids_with(&all)?
            .into_iter()
            .map(|session_id| {
                let timers = scheduler
                    .list(Some(&session_id))
                    .map_err(|e| e.to_string())?;
                let notifications =
                    notification_log(&self.db, &session_id).map_err(|e| e.to_string())?;
                Ok(SessionOverview {
                    recordings: all
                        .iter()
                        .filter(|r| r.session_id == session_id)
                        .cloned()
                        .collect(),
                    results: self.results_files(&session_id).len(),
                    session_id,
                    timers,
                    notifications,
                })
            })
            .collect()
    }

    fn results_files(&self, session: &str) -> Vec<PathBuf> {
        let dir = self.bucket_dir(RESULTS_BUCKET, &self.results_prefix, session);
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// The session's results documents, one per transcribed recording, in name order.
    pub fn results(&self, session: &str) -> Result<Vec<ResultsDocument>, String> {
        self.results_files(session)
            .into_iter()
            .map(|path| {
                let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
            })
            .collect()
    }

    /// The session's recording: the first audio file under its recordings folder (a Chime
    /// capture's joined recording included).
    pub fn audio(&self, session: &str) -> Option<PathBuf> {
        let mut pending =
            vec![self.bucket_dir(RECORDINGS_BUCKET, &self.recordings_prefix, session)];
        let mut found = Vec::new();
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path
                    .extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| AUDIO_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
                {
                    found.push(path);
                }
            }
        }
        found.sort();
        found.into_iter().next()
    }

    pub fn queue_depths(&self) -> Result<Vec<(String, QueueDepth)>, String> {
        crate::status::queue_depths(&self.queues).map_err(|e| e.to_string())
    }

    /// The outbox's file names (one per SMS or email "sent" locally), newest first.
    pub fn outbox(&self) -> Vec<String> {
        let mut names: Vec<(std::time::SystemTime, String)> =
            std::fs::read_dir(self.root.join("outbox"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let modified = e.metadata().ok()?.modified().ok()?;
                    Some((modified, e.file_name().into_string().ok()?))
                })
                .collect();
        names.sort_by(|a, b| b.cmp(a));
        names.into_iter().map(|(_, name)| name).collect()
    }
}

/// The MIME type a browser needs for `path`'s audio.
pub fn audio_mime(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|x| x.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mp3") => "audio/mpeg",
        Some("m4a" | "mp4") => "audio/mp4",
        Some("flac") => "audio/flac",
        Some("ogg") => "audio/ogg",
        _ => "audio/wav",
    }
}
