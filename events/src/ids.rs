//! Identifiers: session id validation, deterministic job names and content-derived ids.

use sha2::{Digest, Sha256};
use std::fmt;

/// Longest job name Transcribe accepts.
pub const MAX_JOB_NAME_LEN: usize = 200;
/// Longest session id telepipe accepts (keeps derived job names under the Transcribe cap).
pub const MAX_SESSION_ID_LEN: usize = 128;

/// A validated session id: 1–128 of ASCII letters, digits, `.`, `_`, `-`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

/// Why a string is not a session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionIdError {
    Empty,
    TooLong,
    ForbiddenCharacter,
    DotSegment,
}

impl fmt::Display for SessionIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "session id is empty",
            Self::TooLong => "session id is longer than 128 characters",
            Self::ForbiddenCharacter => {
                "session id may hold only letters, digits, '.', '_' and '-'"
            }
            Self::DotSegment => "session id may not be '.' or '..'",
        })
    }
}

impl std::error::Error for SessionIdError {}

impl SessionId {
    pub fn parse(raw: &str) -> Result<Self, SessionIdError> {
        if raw.is_empty() {
            return Err(SessionIdError::Empty);
        }
        if raw.len() > MAX_SESSION_ID_LEN {
            return Err(SessionIdError::TooLong);
        }
        if !raw.bytes().all(is_id_byte) {
            return Err(SessionIdError::ForbiddenCharacter);
        }
        // Path segments `.`/`..` would make object keys that resolve elsewhere on a filesystem store.
        if raw == "." || raw == ".." {
            return Err(SessionIdError::DotSegment);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Whether `name` is a job name Transcribe accepts (`^[0-9a-zA-Z._-]+$`, ≤ 200 chars).
pub fn is_valid_job_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_JOB_NAME_LEN && name.bytes().all(is_id_byte)
}

/// Hex of the first `len` bytes of SHA-256 over the parts, each length-prefixed so
/// that `("ab","c")` and `("a","bc")` differ.
pub fn digest_hex(parts: &[&[u8]], len: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(len * 2);
    for byte in digest.iter().take(len) {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// A Transcribe job name: the one place job names are built, suffixed and read back.
///
/// telepipe names a recording's first job `{session_id}-{24 hex}`: deterministic, so a
/// redelivered notification maps to the job already started (Transcribe answers
/// `ConflictException`); the hex digests bucket, key and object version (the S3 version
/// id or, on unversioned buckets, the ETag), so new content under the same key gets a new
/// job, and doubles as the recording's correlation id. A retried attempt `n` (the
/// sweeper's) is `{recording}-a{n}`. Names telepipe did not make are carried as they are:
/// their own recording, attempt 1, no correlation id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobName {
    name: String,
    /// Length of the recording's (first attempt's) name within `name`.
    recording_len: usize,
    attempt: u32,
}

/// Hex digits of the digest ending a recording's job name.
pub const JOB_DIGEST_HEX: usize = 24;

impl JobName {
    /// The first attempt's job for one version of one recording object.
    pub fn for_recording(
        session: &SessionId,
        bucket: &str,
        key: &str,
        object_version: &str,
    ) -> Self {
        let digest = recording_digest(bucket, key, object_version);
        let name = format!("{}-{digest}", session.as_str());
        debug_assert!(is_valid_job_name(&name));
        Self {
            recording_len: name.len(),
            name,
            attempt: 1,
        }
    }

    /// A job name as Transcribe (or a transcript's key) gives it; `None` when Transcribe
    /// would not accept it. Attempt suffixes are recognised on telepipe's names only.
    pub fn parse(name: &str) -> Option<Self> {
        if !is_valid_job_name(name) {
            return None;
        }
        let retried = name.rsplit_once("-a").and_then(|(recording, n)| {
            let canonical = !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit());
            let attempt = n.parse::<u32>().ok().filter(|n| canonical && *n >= 2)?;
            digest_of(recording).map(|_| (recording.len(), attempt))
        });
        let (recording_len, attempt) = retried.unwrap_or((name.len(), 1));
        Some(Self {
            name: name.to_owned(),
            recording_len,
            attempt,
        })
    }

    /// The job of attempt `attempt` (1 is the recording's own name) of this recording.
    pub fn attempt_of(&self, attempt: u32) -> Self {
        let recording = self.recording();
        let name = if attempt <= 1 {
            recording.to_owned()
        } else {
            format!("{recording}-a{attempt}")
        };
        // Session ids are at most 128 characters: 128 + 25 + `-a` + 10 digits < 200.
        debug_assert!(is_valid_job_name(&name));
        Self {
            recording_len: recording.len(),
            name,
            attempt: attempt.max(1),
        }
    }

    /// The whole name, as Transcribe knows the job.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The recording's name: the first attempt's job name.
    pub fn recording(&self) -> &str {
        &self.name[..self.recording_len]
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The recording's correlation id (the digest), on names telepipe made.
    pub fn correlation_id(&self) -> Option<&str> {
        digest_of(self.recording())
    }

    /// Whether telepipe made this name for a recording of `session`.
    pub fn is_of_session(&self, session: &str) -> bool {
        self.recording()
            .strip_prefix(session)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(is_digest)
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The digest of one version of one recording object: its job name's suffix and its
/// correlation id.
pub fn recording_digest(bucket: &str, key: &str, object_version: &str) -> String {
    digest_hex(
        &[bucket.as_bytes(), key.as_bytes(), object_version.as_bytes()],
        JOB_DIGEST_HEX / 2,
    )
}

fn is_digest(text: &str) -> bool {
    text.len() == JOB_DIGEST_HEX && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The digest ending a recording's job name `{session}-{24 hex}`.
fn digest_of(recording: &str) -> Option<&str> {
    let (_, digest) = recording.rsplit_once('-')?;
    is_digest(digest).then_some(digest)
}

/// The Transcribe job name for one version of one recording object (its first attempt).
pub fn job_name(session: &SessionId, bucket: &str, key: &str, object_version: &str) -> String {
    JobName::for_recording(session, bucket, key, object_version).name
}

/// A short, non-reversible reference to an object key for logs and events: keys carry
/// user-chosen file names, which may name a patient, so they never leave the buckets.
pub fn object_ref(bucket: &str, key: &str) -> String {
    digest_hex(&[bucket.as_bytes(), key.as_bytes()], 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_accept_the_documented_alphabet() {
        for ok in ["a", "S-1", "visit_2026.11.22", &"x".repeat(128)] {
            assert!(SessionId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn session_ids_reject_everything_else() {
        assert_eq!(SessionId::parse(""), Err(SessionIdError::Empty));
        assert_eq!(
            SessionId::parse(&"x".repeat(129)),
            Err(SessionIdError::TooLong)
        );
        assert_eq!(SessionId::parse(".."), Err(SessionIdError::DotSegment));
        for bad in ["a b", "a/b", "é", "a\0", "a%20", "a+b"] {
            assert_eq!(
                SessionId::parse(bad),
                Err(SessionIdError::ForbiddenCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn job_name_is_stable_per_object_version_and_valid() {
        let s = SessionId::parse(&"s".repeat(128)).unwrap();
        let a = job_name(&s, "b", "recordings/s/visit 1.wav", "v1");
        assert_eq!(a, job_name(&s, "b", "recordings/s/visit 1.wav", "v1"));
        assert_ne!(a, job_name(&s, "b", "recordings/s/visit 1.wav", "v2"));
        assert_ne!(a, job_name(&s, "b", "recordings/s/visit 2.wav", "v1"));
        assert!(is_valid_job_name(&a));
        assert!(a.len() <= MAX_JOB_NAME_LEN);
    }

    #[test]
    fn digest_separates_parts() {
        assert_ne!(digest_hex(&[b"ab", b"c"], 8), digest_hex(&[b"a", b"bc"], 8));
    }

    #[test]
    fn job_names_own_their_attempts_and_correlation_id() {
        let session = SessionId::parse("visit-7").unwrap();
        let first = JobName::for_recording(&session, "b", "recordings/visit-7/a.wav", "v1");
        assert_eq!(first.attempt(), 1);
        assert_eq!(first.recording(), first.as_str());
        let id = first.correlation_id().unwrap().to_owned();
        assert_eq!(first.as_str(), format!("visit-7-{id}"));
        assert!(first.is_of_session("visit-7") && !first.is_of_session("visit"));

        let third = first.attempt_of(3);
        assert_eq!(third.as_str(), format!("visit-7-{id}-a3"));
        assert_eq!((third.recording(), third.attempt()), (first.as_str(), 3));
        assert_eq!(third.correlation_id(), Some(id.as_str()));
        assert_eq!(JobName::parse(third.as_str()), Some(third.clone()));
        assert_eq!(third.attempt_of(1), first);
        assert!(third.is_of_session("visit-7"));

        // Names telepipe did not make: carried whole, attempt 1, no correlation id.
        for foreign in ["visit-a2", "visit-7-nothex", "x-a02"] {
            let job = JobName::parse(foreign).unwrap();
            assert_eq!((job.recording(), job.attempt()), (foreign, 1));
            assert_eq!(job.correlation_id(), None);
        }
        assert_eq!(
            JobName::parse(&format!("visit-7-{id}-a1"))
                .unwrap()
                .attempt(),
            1
        );
        assert_eq!(JobName::parse("has space"), None);
        assert_eq!(JobName::parse(""), None);
        let longest = SessionId::parse(&"s".repeat(MAX_SESSION_ID_LEN)).unwrap();
        let long = JobName::for_recording(&longest, "b", "k", "v").attempt_of(4_000_000_000);
        assert!(is_valid_job_name(long.as_str()));
    }
}
