//! The Whisper engine: loads a ggml model through whisper-rs and turns WAV bytes into
//! Transcribe-format JSON. Without the `whisper` feature it still exists, but `load` says the
//! build lacks the feature, so callers compile either way.

use std::path::{Path, PathBuf};

use crate::audio::{decode_wav, speech_regions};
use crate::diarize::VoiceEncoder;
use crate::ggml::{check_model_file, ModelInfo};
use crate::transcript::{to_json, Recognized};
use crate::WhisperError;

/// Vocabulary prompt for the clinical telehealth visits telepipe transcribes. Whisper conditions
/// on it as if it were the preceding text, which makes it spell drug and condition names the
/// way the clinical stage's dictionaries do (without it, small models hear "metformin" as
/// "Met Forman").
pub const CLINICAL_PROMPT: &str = "Doctor and patient visit. Chest pain, shortness of breath, \
    fever, hypertension, type 2 diabetes, heart attack. Metformin 500 mg twice daily, \
    lisinopril 10 mg daily, aspirin 81 mg, atorvastatin.";

/// The default number of workers stops here: past it a worker's state costs memory for little.
const MAX_DEFAULT_JOBS: usize = 4;

/// How Whisper runs.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperOptions {
    /// CPU threads per worker. Default 1: whisper.cpp's threads spin while they wait, so on a
    /// small machine several one-thread workers beat one many-thread worker.
    pub threads: usize,
    /// Chunks of one recording recognised at once, each by its own worker with its own
    /// decoding state (about 20 MB for tiny.en). Default: the machine's cores, at most 4.
    pub jobs: usize,
    /// Text Whisper treats as preceding the audio: a vocabulary list of drug and condition
    /// names. Default [`CLINICAL_PROMPT`].
    pub initial_prompt: Option<String>,
    /// Spoken language (ISO 639-1). Default "en"; English-only models (`*.en`) need "en".
    pub language: String,
}

impl Default for WhisperOptions {
    fn default() -> Self {
        WhisperOptions {
            threads: 1,
            jobs: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_DEFAULT_JOBS),
            initial_prompt: Some(CLINICAL_PROMPT.to_string()),
            language: "en".to_string(),
        }
    }
}

/// A loaded Whisper model. `transcribe_wav` takes `&self` and keeps its decoding state per call,
/// so one engine can serve several threads.
pub struct WhisperEngine {
    model_path: PathBuf,
    info: ModelInfo,
    options: WhisperOptions,
    inner: imp::Inner,
    /// Diarizes mono recordings when set ([`WhisperEngine::with_voice_encoder`]).
    voices: Option<(VoiceEncoder, usize)>,
}

impl std::fmt::Debug for WhisperEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperEngine")
            .field("model_path", &self.model_path)
            .field("info", &self.info)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl WhisperEngine {
    /// Loads a whisper.cpp ggml model (e.g. `models/ggml-tiny.en.bin` from
    /// `scripts/fetch-whisper-model.sh`).
    ///
    /// The file is checked structurally first (see [`crate::ggml`]), so a missing, truncated or
    /// non-ggml file is an error naming it rather than a crash inside whisper.cpp.
    pub fn load(model_path: &Path, options: WhisperOptions) -> Result<Self, WhisperError> {
        if !cfg!(feature = "whisper") {
            return Err(WhisperError::FeatureDisabled);
        }
        if options.threads == 0 || options.jobs == 0 {
            return Err(WhisperError::Inference(
                "threads and jobs must each be at least 1".into(),
            ));
        }
        let info = check_model_file(model_path)?;
        if !info.is_multilingual() && options.language != "en" {
            return Err(WhisperError::model(
                model_path,
                format!(
                    "is an English-only model but language {:?} was asked for",
                    options.language
                ),
            ));
        }
        let inner = imp::Inner::load(model_path, &info)?;
        Ok(WhisperEngine {
            model_path: model_path.to_path_buf(),
            info,
            options,
            inner,
            voices: None,
        })
    }

    /// Diarizes mono recordings with `encoder` into at most `max_speakers` speakers, so their
    /// transcripts carry `spk_0`, `spk_1`, ... instead of one speaker.
    pub fn with_voice_encoder(mut self, encoder: VoiceEncoder, max_speakers: usize) -> Self {
        self.voices = Some((encoder, max_speakers.max(1)));
        self
    }

    /// The model's hyperparameters.
    pub fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    /// The options the engine runs with.
    pub fn options(&self) -> &WhisperOptions {
        &self.options
    }

    /// Transcribes a WAV file's bytes; returns Transcribe Medical-format JSON bytes.
    ///
    /// Mono audio is one speaker (`speaker_labels`, `spk_0`), or its diarized speakers with a
    /// voice encoder; two-channel audio is one speaker per channel (`channel_labels`,
    /// `ch_0`/`ch_1`), each channel transcribed on its own.
    pub fn transcribe_wav(&self, wav: &[u8], job_name: &str) -> Result<Vec<u8>, WhisperError> {
        self.transcribe_audio(&decode_wav(wav)?, job_name)
    }

    /// Transcribes a recording in any format [`crate::media::decode_media`] reads.
    pub fn transcribe_media(
        &self,
        media: &[u8],
        format: &str,
        job_name: &str,
    ) -> Result<Vec<u8>, WhisperError> {
        let decoded = crate::media::decode_media(media, format)?;
        self.transcribe_audio(&decoded.audio, job_name)
    }

    fn transcribe_audio(
        &self,
        audio: &crate::audio::Audio,
        job_name: &str,
    ) -> Result<Vec<u8>, WhisperError> {
        let recognized = if audio.channels.len() == 1 {
            let samples = &audio.channels[0];
            // One voice-activity pass serves both the chunking and the diarization.
            let speech = speech_regions(samples);
            let segments = self.inner.recognize(samples, &speech, &self.options)?;
            match &self.voices {
                Some((encoder, max_speakers)) => Recognized::Diarized {
                    segments,
                    turns: encoder.diarize_regions(
                        samples,
                        &speech,
                        *max_speakers,
                        self.options.jobs,
                    ),
                },
                None => Recognized::Mono(segments),
            }
        } else {
            Recognized::Channels(
                audio
                    .channels
                    .iter()
                    .map(|track| {
                        self.inner
                            .recognize(track, &speech_regions(track), &self.options)
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
        to_json(job_name, &recognized)
    }
}

#[cfg(feature = "whisper")]
mod imp {
    use std::path::Path;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use whisper_rs::{
        DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext,
        WhisperContextParameters, WhisperState,
    };

    use super::WhisperOptions;
    use crate::audio::WHISPER_SAMPLE_RATE;
    use crate::chunks::{plan_chunks, Chunk, MAX_CHUNK_MS};
    use crate::ggml::ModelInfo;
    use crate::transcript::RecognizedSegment;
    use crate::words::{place_tokens, TokenPiece};
    use crate::WhisperError;

    /// whisper.cpp skips input shorter than one second; shorter clips are padded with silence.
    const MIN_SAMPLES: usize = WHISPER_SAMPLE_RATE as usize * 11 / 10;

    pub(super) struct Inner {
        ctx: WhisperContext,
    }

    /// Word times come from DTW over the cross-attention of the model's alignment heads
    /// (OpenAI's word-timestamp method). whisper.cpp's other token timestamps are a heuristic
    /// that drifts by seconds over pauses, which put a two-channel call's turns out of order.
    /// The heads are known per released model; an unknown size uses the top half of the
    /// decoder's layers.
    fn dtw_mode(info: &ModelInfo) -> DtwMode<'static> {
        let english = !info.is_multilingual();
        let preset = match (info.n_audio_layer, info.n_text_layer, english) {
            (4, 4, true) => Some(DtwModelPreset::TinyEn),
            (4, 4, false) => Some(DtwModelPreset::Tiny),
            (6, 6, true) => Some(DtwModelPreset::BaseEn),
            (6, 6, false) => Some(DtwModelPreset::Base),
            (12, 12, true) => Some(DtwModelPreset::SmallEn),
            (12, 12, false) => Some(DtwModelPreset::Small),
            (24, 24, true) => Some(DtwModelPreset::MediumEn),
            (24, 24, false) => Some(DtwModelPreset::Medium),
            (32, 4, _) => Some(DtwModelPreset::LargeV3Turbo),
            _ => None,
        };
        match preset {
            Some(model_preset) => DtwMode::ModelPreset { model_preset },
            None => DtwMode::TopMost {
                n_top: (info.n_text_layer / 2).max(1),
            },
        }
    }

    fn inference(e: whisper_rs::WhisperError) -> WhisperError {
        WhisperError::Inference(e.to_string())
    }

    impl Inner {
        pub(super) fn load(path: &Path, info: &ModelInfo) -> Result<Self, WhisperError> {
            // whisper.cpp logs every tensor at load; route it to `tracing` instead of stderr.
            whisper_rs::install_logging_hooks();
            let mut params = WhisperContextParameters::default();
            params.use_gpu(false);
            params.dtw_parameters(DtwParameters {
                mode: dtw_mode(info),
                ..DtwParameters::default()
            });
            let ctx = WhisperContext::new_with_params(path, params).map_err(|e| {
                WhisperError::model(
                    path,
                    format!("whisper.cpp could not load it ({e}); is it a whisper.cpp ggml model?"),
                )
            })?;
            Ok(Inner { ctx })
        }

        /// Runs Whisper over one 16 kHz track; token times in ms from the track's start.
        ///
        /// The track's speech regions (`speech`, from [`crate::audio::speech_regions`], which
        /// the caller computes once for diarization too) are packed into chunks
        /// ([`crate::chunks`]) and the chunks are recognised by up to `options.jobs` workers
        /// at once, each with its own decoding state and `options.threads` threads; their
        /// tokens are put back on the track's clock.
        pub(super) fn recognize(
            &self,
            samples: &[f32],
            speech: &[(u64, u64)],
            options: &WhisperOptions,
        ) -> Result<Vec<RecognizedSegment>, WhisperError> {
            // A muted channel (or a silent file) is not sent to Whisper at all: it costs a
            // full pass and Whisper hallucinates on silence ("you", "Thank you.").
            if speech.is_empty() {
                return Ok(Vec::new());
            }
            let audio_ms = samples.len() as u64 * 1000 / u64::from(WHISPER_SAMPLE_RATE);
            let chunks = plan_chunks(samples, speech, MAX_CHUNK_MS);
            let workers = options.jobs.clamp(1, chunks.len());
            // Every worker's decoding state is made before any starts: a failure is one error,
            // and every chunk is then recognised by some worker.
            let states = (0..workers)
                .map(|_| self.ctx.create_state().map_err(inference))
                .collect::<Result<Vec<_>, _>>()?;
            let next = AtomicUsize::new(0);
            let results: Mutex<Vec<ChunkOutcome>> =
                Mutex::new((0..chunks.len()).map(|_| None).collect());
            std::thread::scope(|scope| {
                for mut state in states {
                    let (next, results, chunks) = (&next, &results, &chunks);
                    scope.spawn(move || loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(chunk) = chunks.get(i) else { break };
                        let outcome = self
                            .recognize_window(&mut state, &chunk.audio(samples), options)
                            .map(|segments| to_track_clock(segments, chunk));
                        results.lock().unwrap()[i] = Some(outcome);
                    });
                }
            });
            let mut segments = Vec::new();
            for outcome in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
                segments.extend(outcome.expect("the workers take every chunk before they stop")?);
            }
            place_tokens(&mut segments, speech, audio_ms);
            Ok(segments)
        }

        /// Recognises one chunk of audio (at most one Whisper window); times in ms from its
        /// start.
        fn recognize_window(
            &self,
            state: &mut WhisperState,
            samples: &[f32],
            options: &WhisperOptions,
        ) -> Result<Vec<RecognizedSegment>, WhisperError> {
            let audio_ms = samples.len() as u64 * 1000 / u64::from(WHISPER_SAMPLE_RATE);
            let padded;
            let samples = if samples.len() < MIN_SAMPLES {
                padded = [samples, &vec![0.0; MIN_SAMPLES - samples.len()]].concat();
                &padded[..]
            } else {
                samples
            };

            // Greedy decoding (best_of 5 only matters when whisper.cpp falls back to sampling
            // at a higher temperature): beam search costs ~3x the time for little gain here.
            let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 5 });
            params.set_n_threads(i32::try_from(options.threads).unwrap_or(i32::MAX));
            params.set_language(Some(&options.language));
            params.set_translate(false);
            params.set_token_timestamps(true);
            // Each chunk stands alone (chunks run in parallel): the vocabulary prompt is its
            // context, not the text of the chunk before.
            params.set_no_context(true);
            // Keep "[music]"-style non-speech tokens out of a clinical transcript.
            params.set_suppress_nst(true);
            params.set_print_special(false);
            params.set_print_progress(false);
            params.set_print_realtime(false);
            params.set_print_timestamps(false);
            if let Some(prompt) = &options.initial_prompt {
                params.set_initial_prompt(prompt);
            }
            state.full(params, samples).map_err(inference)?;

            let eot = self.ctx.token_eot();
            let clamp = |centis: i64| (centis.max(0) as u64 * 10).min(audio_ms);
            // (segment bounds, tokens with DTW start times); token ends are filled in later.
            let mut segments = Vec::new();
            for segment in state.as_iter() {
                let start_ms = clamp(segment.start_timestamp());
                let end_ms = clamp(segment.end_timestamp()).max(start_ms);
                let mut tokens = Vec::new();
                for i in 0..segment.n_tokens() {
                    let Some(token) = segment.get_token(i) else {
                        continue;
                    };
                    // Ids from end-of-text up are special: timestamps, language, task markers.
                    if token.token_id() >= eot {
                        continue;
                    }
                    let data = token.token_data();
                    let text = token.to_bytes().map_err(inference)?.to_vec();
                    // t_dtw is where the token starts (-1 if DTW could not place it).
                    let start = if data.t_dtw >= 0 {
                        clamp(data.t_dtw)
                    } else {
                        clamp(data.t0)
                    };
                    tokens.push(TokenPiece {
                        text,
                        start_ms: start,
                        end_ms: start,
                        probability: data.p,
                    });
                }
                segments.push(RecognizedSegment {
                    start_ms,
                    end_ms,
                    tokens,
                });
            }
            Ok(segments)
        }
    }

    /// What became of one chunk: `None` until a worker has recognised it.
    type ChunkOutcome = Option<Result<Vec<RecognizedSegment>, WhisperError>>;

    /// Moves a chunk's segments from the chunk's clock to the track's.
    fn to_track_clock(
        mut segments: Vec<RecognizedSegment>,
        chunk: &Chunk,
    ) -> Vec<RecognizedSegment> {
        for segment in &mut segments {
            segment.start_ms = chunk.to_track_ms(segment.start_ms);
            segment.end_ms = chunk.to_track_ms(segment.end_ms).max(segment.start_ms);
            for token in &mut segment.tokens {
                token.start_ms = chunk.to_track_ms(token.start_ms);
            }
        }
        segments
    }
}

#[cfg(not(feature = "whisper"))]
mod imp {
    use std::path::Path;

    use super::WhisperOptions;
    use crate::ggml::ModelInfo;
    use crate::transcript::RecognizedSegment;
    use crate::WhisperError;

    /// No engine exists without the feature: `load` fails before building one, so this type
    /// has no values and `recognize` can never run.
    pub(super) enum Inner {}

    impl Inner {
        pub(super) fn load(_path: &Path, _info: &ModelInfo) -> Result<Self, WhisperError> {
            Err(WhisperError::FeatureDisabled)
        }

        pub(super) fn recognize(
            &self,
            _samples: &[f32],
            _speech: &[(u64, u64)],
            _options: &WhisperOptions,
        ) -> Result<Vec<RecognizedSegment>, WhisperError> {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "whisper"))]
    #[test]
    fn load_without_the_feature_says_so() {
        let err = WhisperEngine::load(
            Path::new("models/ggml-tiny.en.bin"),
            WhisperOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, WhisperError::FeatureDisabled));
        assert!(
            err.to_string()
                .contains("built without the `whisper` feature"),
            "{err}"
        );
    }

    #[test]
    fn engine_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<WhisperEngine>();
    }

    #[test]
    fn default_options_are_one_thread_english_with_the_clinical_prompt() {
        let options = WhisperOptions::default();
        assert_eq!(options.threads, 1);
        assert_eq!(options.language, "en");
        assert!(options
            .initial_prompt
            .as_deref()
            .is_some_and(|p| p.contains("metformin") || p.contains("Metformin")));
    }
}
