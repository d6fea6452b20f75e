//! Offline Whisper transcription (skeleton; being written).
