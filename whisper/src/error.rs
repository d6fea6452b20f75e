//! The crate's one error type: every failure names what it was about (the WAV, the model file,
//! the feature) so the local runtime can show it to a person unchanged.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// The input bytes are not a WAV file hound can read, or hold no usable audio.
    #[error("not a readable WAV file: {0}")]
    Wav(String),
    /// A WAV file of a kind this crate does not transcribe (e.g. more than two channels).
    #[error("unsupported WAV file: {0}")]
    UnsupportedWav(String),
    /// A compressed recording (MP3, AAC/MP4, FLAC, Ogg) that cannot be read or holds no audio.
    #[error("unreadable audio: {0}")]
    Media(String),
    /// A format or codec the local transcriber has no decoder for; names the codec.
    #[error("unsupported local format: {0}")]
    UnsupportedCodec(String),
    /// The model file is missing, unreadable, not a ggml Whisper model, or rejected by whisper.cpp.
    #[error("Whisper model {}: {reason}", path.display())]
    Model { path: PathBuf, reason: String },
    /// `WhisperEngine::load` in a build without the `whisper` Cargo feature.
    #[error(
        "telepipe-whisper was built without the `whisper` feature: rebuild with `--features whisper` \
         (needs cmake, clang and libclang; see scripts/setup-whisper.sh)"
    )]
    FeatureDisabled,
    /// whisper.cpp failed while transcribing.
    #[error("Whisper inference failed: {0}")]
    Inference(String),
    /// Serialising the Transcribe-format JSON failed (not expected with these types).
    #[error("cannot serialise Transcribe JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl WhisperError {
    pub(crate) fn model(path: &std::path::Path, reason: impl Into<String>) -> Self {
        WhisperError::Model {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
