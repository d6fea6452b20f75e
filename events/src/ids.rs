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

/// The Transcribe job name for one version of one recording object.
///
/// Deterministic, so a redelivered notification maps to the job already started
/// (Transcribe answers `ConflictException`); `object_version` is the S3 version id or,
/// on unversioned buckets, the ETag, so new content under the same key gets a new job.
pub fn job_name(session: &SessionId, bucket: &str, key: &str, object_version: &str) -> String {
    let digest = digest_hex(
        &[bucket.as_bytes(), key.as_bytes(), object_version.as_bytes()],
        12,
    );
    let name = format!("{}-{digest}", session.as_str());
    debug_assert!(is_valid_job_name(&name));
    name
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
}
