//! What the local runtime's tests share: fresh data directories, minimal WAV files and
//! dropping them where the runtime picks them up, and, for the real-engine tests, where
//! the engines are and the rule that CI must never skip them.
//!
//! Each test crate compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A valid 16 kHz mono PCM WAV header and `100 + extra` bytes of silence.
pub fn wav(extra: usize) -> Vec<u8> {
    let mut bytes = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    bytes.extend([
        16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0,
    ]);
    bytes.extend(b"data\x00\x00\x00\x00");
    bytes.extend(vec![0u8; 100 + extra]);
    bytes
}

/// An empty data directory of its own under the system temp dir.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "telepipe-local-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Drops a recording where `telepipe run` watches for uploads.
pub fn drop_recording(dir: &Path, session: &str, file: &str, bytes: &[u8]) {
    let folder = dir.join("buckets/recordings/recordings").join(session);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(file), bytes).unwrap();
}

/// (Whisper model, NLP data folder) from `TELEPIPE_WHISPER_MODEL` and `TELEPIPE_NLP_DATA`
/// (`scripts/test.sh` sets both). Outside CI, `None` with a note; in CI, a failure.
pub fn real_engines() -> Option<(String, String)> {
    match (
        std::env::var("TELEPIPE_WHISPER_MODEL"),
        std::env::var("TELEPIPE_NLP_DATA"),
    ) {
        (Ok(model), Ok(nlp)) => Some((model, nlp)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must provide TELEPIPE_WHISPER_MODEL and TELEPIPE_NLP_DATA")
        }
        _ => {
            eprintln!(
                "skipped: set TELEPIPE_WHISPER_MODEL and TELEPIPE_NLP_DATA (scripts/test.sh does)"
            );
            None
        }
    }
}
