//! Whether an upload can be transcribed: pure decisions over what intake has read so far,
//! in the order it reads it (the key, then HEAD, then the leading bytes), so the stage
//! never reads more of an object than the last decision needs.

use super::IntakeConfig;
use crate::media::MediaFormat;
use crate::ports::ObjectHead;
use telepipe_events::ids::SessionId;
use telepipe_events::pipeline::RejectReason;

/// Why an upload is refused, with an id-only explanation (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RejectReason,
    pub why: String,
}

impl Refusal {
    fn new(reason: RejectReason, why: impl Into<String>) -> Self {
        Self {
            reason,
            why: why.into(),
        }
    }
}

/// What a recordings-bucket key says about an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Under the capture prefix: the capture stage joins these chunks, intake only
    /// acknowledges them.
    CaptureArtifact,
    /// A recording of `session` in `format`; HEAD decides next.
    Recording {
        session: SessionId,
        format: MediaFormat,
    },
}

/// The key: `{recordings prefix}{session_id}/{file}` with a Transcribe Medical extension.
pub fn check_key(config: &IntakeConfig, key: &str) -> Result<KeyVerdict, Refusal> {
    if !config.capture_prefix.is_empty() && key.starts_with(config.capture_prefix.as_str()) {
        return Ok(KeyVerdict::CaptureArtifact);
    }
    let Some((session, file_name)) = key
        .strip_prefix(config.recordings_prefix.as_str())
        .and_then(|rest| rest.split_once('/'))
        .filter(|(_, file)| !file.is_empty())
    else {
        return Err(Refusal::new(
            RejectReason::OutsidePrefix,
            format!(
                "key is not {}{{session_id}}/{{file}}",
                config.recordings_prefix
            ),
        ));
    };
    let session = SessionId::parse(session)
        .map_err(|err| Refusal::new(RejectReason::InvalidSessionId, err.to_string()))?;
    let format = MediaFormat::from_extension(file_name).ok_or_else(|| {
        Refusal::new(
            RejectReason::UnsupportedFormat,
            "extension is not a Transcribe Medical format",
        )
    })?;
    Ok(KeyVerdict::Recording { session, format })
}

/// The object as HEAD describes it: not empty, within the size limit.
pub fn check_head(config: &IntakeConfig, head: &ObjectHead) -> Result<(), Refusal> {
    if head.size == 0 {
        return Err(Refusal::new(RejectReason::EmptyObject, "object is empty"));
    }
    if head.size > config.max_recording_bytes {
        return Err(Refusal::new(
            RejectReason::TooLarge,
            format!(
                "{} bytes exceeds the limit of {}",
                head.size, config.max_recording_bytes
            ),
        ));
    }
    Ok(())
}

/// The leading bytes: the format the extension names (a renamed text file is refused).
pub fn check_leading_bytes(format: MediaFormat, leading: &[u8]) -> Result<(), Refusal> {
    if format.matches(leading) {
        Ok(())
    } else {
        Err(Refusal::new(
            RejectReason::FormatMismatch,
            format!("leading bytes are not {}", format.as_str()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn config(pairs: &[(&str, &str)]) -> IntakeConfig {
        let mut all = vec![("TELEPIPE_TRANSCRIPTS_BUCKET", "t")];
        all.extend_from_slice(pairs);
        let config = IntakeConfig::from_env(&Env::from_pairs(&all)).unwrap();
        config
    }

    fn refused(result: Result<impl std::fmt::Debug, Refusal>) -> RejectReason {
        result.unwrap_err().reason
    }

    #[test]
    fn keys_name_a_session_and_a_format_or_are_refused_with_the_reason() {
        let cfg = config(&[]);
        assert_eq!(
            check_key(&cfg, "recordings/visit-1/a b.m4a").unwrap(),
            KeyVerdict::Recording {
                session: SessionId::parse("visit-1").unwrap(),
                format: MediaFormat::from_extension("x.m4a").unwrap(),
            }
        );
        assert_eq!(
            check_key(&cfg, "captures/visit-1/audio/1.mp4").unwrap(),
            KeyVerdict::CaptureArtifact
        );
        for (key, reason) in [
            ("elsewhere/visit-1/a.wav", RejectReason::OutsidePrefix),
            ("recordings/visit-1/", RejectReason::OutsidePrefix),
            ("recordings/a.wav", RejectReason::OutsidePrefix),
            (
                "recordings/bad session/a.wav",
                RejectReason::InvalidSessionId,
            ),
            (
                "recordings/visit-1/notes.txt",
                RejectReason::UnsupportedFormat,
            ),
        ] {
            assert_eq!(refused(check_key(&cfg, key)), reason, "{key}");
        }
        // The refusal explains with the configured prefix, never the key.
        let why = check_key(&cfg, "elsewhere/patient-name.wav")
            .unwrap_err()
            .why;
        assert!(!why.contains("patient"), "{why}");
        // A configured recordings prefix moves recordings, not the capture chunks.
        let cfg = config(&[("TELEPIPE_RECORDINGS_PREFIX", "calls")]);
        assert!(matches!(
            check_key(&cfg, "calls/visit-1/a.wav"),
            Ok(KeyVerdict::Recording { .. })
        ));
        assert_eq!(
            refused(check_key(&cfg, "recordings/visit-1/a.wav")),
            RejectReason::OutsidePrefix
        );
    }

    #[test]
    fn heads_must_be_non_empty_and_within_the_limit() {
        let cfg = config(&[("TELEPIPE_MAX_RECORDING_BYTES", "1000")]);
        let head = |size| ObjectHead {
            size,
            etag: None,
            version_id: None,
        };
        assert_eq!(check_head(&cfg, &head(1000)), Ok(()));
        assert_eq!(
            refused(check_head(&cfg, &head(0))),
            RejectReason::EmptyObject
        );
        assert_eq!(
            refused(check_head(&cfg, &head(1001))),
            RejectReason::TooLarge
        );
    }

    #[test]
    fn leading_bytes_must_be_the_named_format() {
        let wav = MediaFormat::from_extension("a.wav").unwrap();
        assert_eq!(check_leading_bytes(wav, b"RIFF\0\0\0\0WAVEfmt "), Ok(()));
        assert_eq!(
            refused(check_leading_bytes(wav, b"Dear doctor, ...")),
            RejectReason::FormatMismatch
        );
    }
}
