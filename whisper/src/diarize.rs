//! Who spoke when on a mono recording: speaker diarization with a neural speaker encoder.
//!
//! The encoder is the GE2E voice encoder published in PyPI's `Resemblyzer` 0.1.4 (Apache-2.0):
//! a 3-layer LSTM over 40-band mel power spectra, a linear layer, ReLU and L2 normalisation,
//! giving a 256-dimension voice embedding per 1.6 s of speech. `scripts/fetch-voice-model.sh`
//! converts its PyTorch weights to `models/voice-encoder.safetensors` at set-up. No registry
//! package ships a speaker model in ONNX form, and an ONNX runtime would add a 35–47 MB native
//! library for three LSTM layers; the network is small enough to run here on `ndarray`'s matrix
//! products (the windows of a recording are batched, so each step is one matrix product).
//!
//! The method:
//! 1. the track's volume is raised to -30 dBFS (never lowered), as the encoder was trained;
//! 2. mel spectrum of the whole track (400-sample periodic Hann frames every 10 ms, 200 zeros
//!    of padding each side, Slaney mel bands, no log), once;
//! 3. windows of 160 frames every [`HOP_FRAMES`] inside the speech regions
//!    ([`crate::audio::speech_regions`]; a shorter region is one window of its own length);
//! 4. one embedding per window, then average-linkage agglomerative clustering on cosine
//!    similarity, merging while the closest clusters are more alike than [`MERGE_SIMILARITY`]
//!    (at most `max_speakers` remain; clusters with under [`MIN_CLUSTER_SHARE`] of the windows
//!    join the nearest other);
//! 5. every 10 ms frame of speech takes the speaker whose windows cover it most, and turns
//!    shorter than [`MIN_TURN_MS`] join a neighbour.
//!
//! The result is a list of [`SpeakerTurn`]s; [`crate::transcript`] gives each word the speaker
//! of the turn it falls in and writes Transcribe-style `spk_N` segments.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};
use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

use crate::audio::{speech_regions, WHISPER_SAMPLE_RATE};
use crate::WhisperError;

const N_FFT: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 40;
const HIDDEN: usize = 256;
const LAYERS: usize = 3;
const EMBEDDING: usize = 256;
/// Frames per window: 1.6 s, the partial utterance length the encoder was trained on.
pub const WINDOW_FRAMES: usize = 160;
/// Window step: 0.8 s. Halving it doubles the cost and changed no label on the test visits.
pub const HOP_FRAMES: usize = 80;
/// A region shorter than this is too short to say whose voice it is; it is labelled from its
/// neighbours in step 5.
const MIN_WINDOW_FRAMES: usize = 40;
/// Windows at least this long (1 s) find the speakers; shorter ones are assigned to them.
const FULL_WINDOW_FRAMES: usize = 100;
/// Average-linkage clusters more alike than this are one speaker. Windows of one voice are
/// mostly above 0.7, two voices mostly below 0.6 on the test visits.
pub const MERGE_SIMILARITY: f32 = 0.65;
/// A cluster holding less than this share of the windows is noise (a cough, a laugh, two
/// voices in one window), not a speaker: it joins the nearest cluster.
pub const MIN_CLUSTER_SHARE: f32 = 0.05;
/// A turn shorter than this joins the neighbouring turn it is most like.
pub const MIN_TURN_MS: u64 = 400;
/// Turns of one speaker less than this far apart become one turn.
const SAME_SPEAKER_JOIN_MS: u64 = 1_000;
/// The most speakers a recording is split into unless the caller says otherwise.
pub const DEFAULT_MAX_SPEAKERS: usize = 4;
/// Windows per batch through the LSTM: bounds memory (about 42 MB of gate inputs).
const BATCH: usize = 64;
const TARGET_DBFS: f64 = -30.0;

/// One speaker's stretch of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerTurn {
    pub start_ms: u64,
    pub end_ms: u64,
    /// 0-based, in order of first appearance.
    pub speaker: usize,
}

struct LstmLayer {
    /// [4·HIDDEN, input], gates in PyTorch's order i, f, g, o.
    w_ih: Array2<f32>,
    /// [4·HIDDEN, HIDDEN].
    w_hh: Array2<f32>,
    /// b_ih + b_hh.
    bias: Array1<f32>,
}

/// The speaker encoder's weights and the mel filter bank.
pub struct VoiceEncoder {
    layers: Vec<LstmLayer>,
    linear_w: Array2<f32>,
    linear_b: Array1<f32>,
    mel_filters: Array2<f32>,
}

impl std::fmt::Debug for VoiceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceEncoder")
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

/// Reads the tensors of a safetensors file (float32 only): an 8-byte little-endian header
/// length, a JSON header of `{name: {dtype, shape, data_offsets}}`, then the data.
/// A header entry's list of integers (`shape`, `data_offsets`); empty when absent.
fn usize_list(info: &serde_json::Value, key: &str) -> Vec<usize> {
    info.get(key)
        .and_then(|v| v.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|d| d.as_u64())
                .map(|d| d as usize)
                .collect()
        })
        .unwrap_or_default()
}

/// Tensors by name: shape and float32 values.
type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn read_safetensors(path: &Path) -> Result<Tensors, WhisperError> {
    let bad = |reason: String| WhisperError::model(path, reason);
    let bytes = std::fs::read(path).map_err(|e| {
        bad(format!(
            "cannot be read ({e}); make it with scripts/fetch-voice-model.sh"
        ))
    })?;
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
        .ok_or_else(|| bad("is not a safetensors file (too short)".into()))?;
    // A crafted length must not overflow: checked, then bounds-checked by `get`.
    let data_start = header_len
        .checked_add(8)
        .ok_or_else(|| bad("has an impossible header length".into()))?;
    let header = bytes
        .get(8..data_start)
        .ok_or_else(|| bad("is truncated (header)".into()))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| bad(format!("has an unreadable header ({e})")))?;
    let data = &bytes[data_start..];
    let mut tensors = HashMap::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        if info.get("dtype").and_then(|d| d.as_str()) != Some("F32") {
            return Err(bad(format!("tensor {name} is not F32")));
        }
        let shape = usize_list(&info, "shape");
        let offsets = usize_list(&info, "data_offsets");
        let [from, to] = offsets[..] else {
            return Err(bad(format!("tensor {name} has no data offsets")));
        };
        let raw = data
            .get(from..to)
            .filter(|raw| raw.len() == 4 * shape.iter().product::<usize>())
            .ok_or_else(|| bad(format!("tensor {name} is truncated or misshapen")))?;
        let values = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, (shape, values));
    }
    Ok(tensors)
}

fn hz_to_mel(hz: f64) -> f64 {
    // Slaney: linear below 1 kHz, logarithmic above.
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// librosa.filters.mel(sr=16000, n_fft=400, n_mels=40): Slaney scale and area norm.
pub fn mel_filters() -> Array2<f32> {
    let sr = f64::from(WHISPER_SAMPLE_RATE);
    let bins = N_FFT / 2 + 1;
    let fft_hz: Vec<f64> = (0..bins).map(|k| k as f64 * sr / N_FFT as f64).collect();
    let (low, high) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let points: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(low + (high - low) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let mut filters = Array2::zeros((N_MELS, bins));
    for m in 0..N_MELS {
        let (left, centre, right) = (points[m], points[m + 1], points[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_hz.iter().enumerate() {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            filters[[m, k]] = (lower.min(upper).max(0.0) * norm) as f32;
        }
    }
    filters
}

/// The track raised to -30 dBFS (never lowered), as Resemblyzer prepares its input.
pub fn normalize_volume(samples: &[f32]) -> Vec<f32> {
    match volume_gain(samples) {
        Some(gain) => samples.iter().map(|&s| raise(s, gain)).collect(),
        None => samples.to_vec(),
    }
}

/// The gain that raises the track to -30 dBFS; `None` when it is silent or loud enough.
fn volume_gain(samples: &[f32]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mean_square = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64;
    if mean_square <= 0.0 {
        return None;
    }
    let db = 10.0 * mean_square.log10();
    (db < TARGET_DBFS).then(|| 10f64.powf((TARGET_DBFS - db) / 20.0))
}

fn raise(sample: f32, gain: f64) -> f32 {
    (f64::from(sample) * gain) as f32
}

impl VoiceEncoder {
    /// Loads `models/voice-encoder.safetensors` (from `scripts/fetch-voice-model.sh`).
    pub fn load(path: &Path) -> Result<Self, WhisperError> {
        let mut tensors = read_safetensors(path)?;
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, WhisperError> {
            match tensors.remove(name) {
                Some((found, values)) if found == shape => Ok(values),
                Some((found, _)) => Err(WhisperError::model(
                    path,
                    format!("tensor {name} has shape {found:?}, expected {shape:?}"),
                )),
                None => Err(WhisperError::model(
                    path,
                    format!("has no tensor {name}; is it a voice encoder?"),
                )),
            }
        };
        let matrix = |values: Vec<f32>, rows: usize, cols: usize| {
            Array2::from_shape_vec((rows, cols), values).expect("shape checked above")
        };
        let mut layers = Vec::with_capacity(LAYERS);
        for l in 0..LAYERS {
            let input = if l == 0 { N_MELS } else { HIDDEN };
            let w_ih = matrix(
                take(&format!("lstm.weight_ih_l{l}"), &[4 * HIDDEN, input])?,
                4 * HIDDEN,
                input,
            );
            let w_hh = matrix(
                take(&format!("lstm.weight_hh_l{l}"), &[4 * HIDDEN, HIDDEN])?,
                4 * HIDDEN,
                HIDDEN,
            );
            let b_ih = Array1::from(take(&format!("lstm.bias_ih_l{l}"), &[4 * HIDDEN])?);
            let b_hh = Array1::from(take(&format!("lstm.bias_hh_l{l}"), &[4 * HIDDEN])?);
            layers.push(LstmLayer {
                w_ih,
                w_hh,
                bias: b_ih + b_hh,
            });
        }
        let linear_w = matrix(
            take("linear.weight", &[EMBEDDING, HIDDEN])?,
            EMBEDDING,
            HIDDEN,
        );
        let linear_b = Array1::from(take("linear.bias", &[EMBEDDING])?);
        Ok(VoiceEncoder {
            layers,
            linear_w,
            linear_b,
            mel_filters: mel_filters(),
        })
    }

    /// Mel power spectrum of a 16 kHz track (already volume-normalised): [frames, 40], one
    /// frame per 10 ms, `1 + len / 160` frames.
    pub fn mel_spectrogram(&self, samples: &[f32]) -> Array2<f32> {
        self.mel_spectrogram_raised(samples, None)
    }

    /// The mel spectrogram of the track times `gain` ([`normalize_volume`]'s arithmetic), so
    /// a long recording needs no raised copy. Frames go through the filter bank in blocks:
    /// the power spectrum (201 values a frame, 5 times the mel frame) is never held whole.
    fn mel_spectrogram_raised(&self, samples: &[f32], gain: Option<f64>) -> Array2<f32> {
        const BLOCK_FRAMES: usize = 1024;
        let n_frames = 1 + samples.len() / HOP;
        let pad = N_FFT / 2;
        let window: Vec<f32> = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        let fft = FftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        let bins = N_FFT / 2 + 1;
        let mut mel = Array2::<f32>::zeros((n_frames, N_MELS));
        let mut power = Array2::<f32>::zeros((BLOCK_FRAMES.min(n_frames), bins));
        let mut buffer = vec![Complex::new(0.0, 0.0); N_FFT];
        for block_start in (0..n_frames).step_by(BLOCK_FRAMES) {
            let block_frames = BLOCK_FRAMES.min(n_frames - block_start);
            for row in 0..block_frames {
                let frame = block_start + row;
                for (n, slot) in buffer.iter_mut().enumerate() {
                    // Sample index in the unpadded track (the padding is zeros).
                    let i = (frame * HOP + n) as isize - pad as isize;
                    let sample = usize::try_from(i)
                        .ok()
                        .and_then(|i| samples.get(i))
                        .map_or(0.0, |&s| gain.map_or(s, |gain| raise(s, gain)));
                    *slot = Complex::new(sample * window[n], 0.0);
                }
                fft.process(&mut buffer);
                for (k, value) in buffer[..bins].iter().enumerate() {
                    power[[row, k]] = value.norm_sqr();
                }
            }
            let block = power
                .slice_axis(Axis(0), Slice::from(..block_frames))
                .dot(&self.mel_filters.t());
            mel.slice_axis_mut(
                Axis(0),
                Slice::from(block_start..block_start + block_frames),
            )
            .assign(&block);
        }
        mel
    }

    /// Embeddings of equal-length windows of mel frames: `windows[b]` is the first frame of
    /// window b, each `frames` long. Returns [windows, 256], unit rows.
    fn embed_windows(&self, mel: ArrayView2<f32>, starts: &[usize], frames: usize) -> Array2<f32> {
        let batch = starts.len();
        // Layer input, time-major: row t·batch + b is window b's frame t.
        let mut input = Array2::<f32>::zeros((frames * batch, N_MELS));
        for (b, &start) in starts.iter().enumerate() {
            for t in 0..frames {
                input.row_mut(t * batch + b).assign(&mel.row(start + t));
            }
        }
        let mut h = Array2::<f32>::zeros((batch, HIDDEN));
        for layer in &self.layers {
            // All time steps' input contributions in one product.
            let gates_in = input.dot(&layer.w_ih.t()) + &layer.bias;
            let mut output = Array2::<f32>::zeros((frames * batch, HIDDEN));
            h.fill(0.0);
            let mut c = Array2::<f32>::zeros((batch, HIDDEN));
            for t in 0..frames {
                let gates = &gates_in.slice_axis(Axis(0), Slice::from(t * batch..(t + 1) * batch))
                    + &h.dot(&layer.w_hh.t());
                for b in 0..batch {
                    let g = gates.row(b);
                    for j in 0..HIDDEN {
                        let i_gate = sigmoid(g[j]);
                        let f_gate = sigmoid(g[HIDDEN + j]);
                        let cell = g[2 * HIDDEN + j].tanh();
                        let o_gate = sigmoid(g[3 * HIDDEN + j]);
                        let c_new = f_gate * c[[b, j]] + i_gate * cell;
                        c[[b, j]] = c_new;
                        h[[b, j]] = o_gate * c_new.tanh();
                    }
                }
                output
                    .slice_axis_mut(Axis(0), Slice::from(t * batch..(t + 1) * batch))
                    .assign(&h);
            }
            input = output;
        }
        let mut embeddings = h.dot(&self.linear_w.t()) + &self.linear_b;
        embeddings.mapv_inplace(|v| v.max(0.0));
        for mut row in embeddings.axis_iter_mut(Axis(0)) {
            let norm = row.dot(&row).sqrt();
            if norm > 0.0 {
                row /= norm;
            }
        }
        embeddings
    }

    /// The embedding of `frames` mel frames from `start` (for tests and single windows).
    pub fn embed(&self, mel: ArrayView2<f32>, start: usize, frames: usize) -> Vec<f32> {
        self.embed_windows(mel, &[start], frames).row(0).to_vec()
    }

    /// Diarizes a 16 kHz mono track into at most `max_speakers` speakers, on as many threads as
    /// the machine has cores.
    pub fn diarize(&self, samples: &[f32], max_speakers: usize) -> Vec<SpeakerTurn> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.diarize_regions(samples, &speech_regions(samples), max_speakers, cores)
    }

    /// Diarizes a track whose speech regions (from [`speech_regions`]) are known already, on at
    /// most `workers` threads.
    pub fn diarize_regions(
        &self,
        samples: &[f32],
        speech: &[(u64, u64)],
        max_speakers: usize,
        workers: usize,
    ) -> Vec<SpeakerTurn> {
        if speech.is_empty() {
            return Vec::new();
        }
        let mel = self.mel_spectrogram_raised(samples, volume_gain(samples));
        let n_frames = mel.nrows();
        // Windows: (first frame, length in frames).
        let mut windows: Vec<(usize, usize)> = Vec::new();
        for &(start_ms, end_ms) in speech {
            let first = (start_ms / 10) as usize;
            let last = ((end_ms / 10) as usize).min(n_frames);
            let len = last.saturating_sub(first);
            if len < MIN_WINDOW_FRAMES {
                continue;
            }
            if len <= WINDOW_FRAMES {
                windows.push((first, len));
                continue;
            }
            let mut at = first;
            while at + WINDOW_FRAMES <= last {
                windows.push((at, WINDOW_FRAMES));
                at += HOP_FRAMES;
            }
            // The region's tail, so its last words are covered too.
            if at < last && at + WINDOW_FRAMES > last {
                windows.push((last - WINDOW_FRAMES, WINDOW_FRAMES));
            }
        }
        if windows.is_empty() {
            return speech
                .iter()
                .map(|&(start_ms, end_ms)| SpeakerTurn {
                    start_ms,
                    end_ms,
                    speaker: 0,
                })
                .collect();
        }
        let embeddings = self.embed_all(mel.view(), &windows, workers);
        // Short windows ("Yes.", "Better.") give noisy embeddings that would form clusters of
        // their own: the speakers are found from the full-length windows, and every window
        // then takes the speaker whose windows its voice is most like on average.
        let full: Vec<usize> = (0..windows.len())
            .filter(|&i| windows[i].1 >= FULL_WINDOW_FRAMES)
            .collect();
        let labels = if full.len() >= 2 {
            let full_embeddings = embeddings.select(Axis(0), &full);
            let full_labels = cluster(&full_embeddings, max_speakers.max(1));
            assign_to_clusters(&embeddings, &full_embeddings, &full_labels)
        } else {
            cluster(&embeddings, max_speakers.max(1))
        };
        turns_from_windows(speech, &windows, &labels)
    }

    /// Embeddings of all windows, batched by length, spread over at most `workers` threads.
    fn embed_all(
        &self,
        mel: ArrayView2<f32>,
        windows: &[(usize, usize)],
        workers: usize,
    ) -> Array2<f32> {
        let mut by_length: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, &(_, len)) in windows.iter().enumerate() {
            by_length.entry(len).or_default().push(i);
        }
        let mut batches: Vec<(usize, Vec<usize>)> = Vec::new();
        for (len, indices) in by_length {
            for chunk in indices.chunks(BATCH) {
                batches.push((len, chunk.to_vec()));
            }
        }
        let workers = workers.min(batches.len()).max(1);
        let mut out = Array2::<f32>::zeros((windows.len(), EMBEDDING));
        let results: Vec<Vec<(usize, Vec<f32>)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let batches = &batches;
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        for (len, indices) in batches.iter().skip(w).step_by(workers) {
                            let starts: Vec<usize> =
                                indices.iter().map(|&i| windows[i].0).collect();
                            let embedded = self.embed_windows(mel, &starts, *len);
                            for (row, &i) in indices.iter().enumerate() {
                                done.push((i, embedded.row(row).to_vec()));
                            }
                        }
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                // A worker's panic is a bug: re-raise it rather than leave its windows without
                // embeddings (zero vectors would silently become a "speaker").
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        for (i, embedding) in results.into_iter().flatten() {
            out.row_mut(i).assign(&Array1::from(embedding));
        }
        out
    }
}

/// Each row of `embeddings` gets the label whose `clustered` rows it is most similar to on
/// average (the labels of `clustered` are kept as they are for rows among them).
fn assign_to_clusters(
    embeddings: &Array2<f32>,
    clustered: &Array2<f32>,
    labels: &[usize],
) -> Vec<usize> {
    let speakers = labels.iter().copied().max().map_or(1, |m| m + 1);
    let similarity = embeddings.dot(&clustered.t());
    similarity
        .axis_iter(Axis(0))
        .map(|row| {
            let mut sums = vec![0.0f32; speakers];
            let mut counts = vec![0usize; speakers];
            for (&value, &label) in row.iter().zip(labels) {
                sums[label] += value;
                counts[label] += 1;
            }
            (0..speakers)
                .max_by(|&a, &b| {
                    let mean = |s: usize| sums[s] / counts[s].max(1) as f32;
                    mean(a).total_cmp(&mean(b))
                })
                .unwrap_or(0)
        })
        .collect()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The average similarity between clusters `a` and `b` (summed similarity over member pairs).
fn average(sums: &Array2<f32>, members: &[Vec<usize>], a: usize, b: usize) -> f32 {
    sums[[a, b]] / (members[a].len() * members[b].len()) as f32
}

/// Cluster `a`'s most similar live cluster among those after it, the first of equals.
fn most_similar_after(
    sums: &Array2<f32>,
    members: &[Vec<usize>],
    alive: &[bool],
    a: usize,
) -> Option<(f32, usize)> {
    let mut best: Option<(f32, usize)> = None;
    for (b, _) in alive
        .iter()
        .enumerate()
        .skip(a + 1)
        .filter(|(_, &live)| live)
    {
        let similarity = average(sums, members, a, b);
        if similarity > best.map_or(f32::NEG_INFINITY, |(top, _)| top) {
            best = Some((similarity, b));
        }
    }
    best
}

/// Merges cluster `b` into `a`: members, liveness, and `a`'s summed similarities.
fn merge_pair(
    sums: &mut Array2<f32>,
    members: &mut [Vec<usize>],
    alive: &mut [bool],
    a: usize,
    b: usize,
) {
    let moved = std::mem::take(&mut members[b]);
    members[a].extend(moved);
    alive[b] = false;
    for c in 0..alive.len() {
        if alive[c] && c != a {
            let merged = sums[[a, c]] + sums[[b, c]];
            sums[[a, c]] = merged;
            sums[[c, a]] = merged;
        }
    }
}

/// Merges the most similar pair of live clusters (the first pair `a < b` of equals; `b` into
/// `a`) while its average similarity is at least [`MERGE_SIMILARITY`] or more than
/// `max_clusters` are live. Each cluster keeps its most similar partner after it, so a merge
/// updates O(n) entries instead of rescanning all O(n²) pairs: an hour of speech (about 4,000
/// windows) would otherwise take O(n³). The merges are the same as a rescan's (tested).
fn merge_most_similar(
    sums: &mut Array2<f32>,
    members: &mut [Vec<usize>],
    alive: &mut [bool],
    max_clusters: usize,
) {
    let n = alive.len();
    let mut live = alive.iter().filter(|&&a| a).count();
    let mut partner: Vec<Option<(f32, usize)>> = (0..n)
        .map(|a| {
            alive[a]
                .then(|| most_similar_after(sums, members, alive, a))
                .flatten()
        })
        .collect();
    while live > 1 {
        let mut best: Option<(f32, usize, usize)> = None;
        for (a, candidate) in partner.iter().enumerate() {
            if let Some((similarity, b)) = *candidate {
                if similarity > best.map_or(f32::NEG_INFINITY, |(top, _, _)| top) {
                    best = Some((similarity, a, b));
                }
            }
        }
        let Some((similarity, a, b)) = best else {
            break;
        };
        if similarity < MERGE_SIMILARITY && live <= max_clusters {
            break;
        }
        merge_pair(sums, members, alive, a, b);
        partner[b] = None;
        live -= 1;
        partner[a] = most_similar_after(sums, members, alive, a);
        // Only clusters before b can have had a or b as their partner.
        for c in 0..b {
            if !alive[c] || c == a {
                continue;
            }
            partner[c] = match partner[c] {
                Some((_, p)) if p == a || p == b => most_similar_after(sums, members, alive, c),
                Some((top, p)) if c < a => {
                    let with_a = average(sums, members, c, a);
                    if with_a > top || (with_a == top && a < p) {
                        Some((with_a, a))
                    } else {
                        Some((top, p))
                    }
                }
                kept @ Some(_) => kept,
                None => most_similar_after(sums, members, alive, c),
            };
        }
    }
}

/// Average-linkage agglomerative clustering of unit vectors on cosine similarity: merge the
/// most similar pair while it is above [`MERGE_SIMILARITY`] or more than `max_clusters`
/// remain; then clusters under [`MIN_CLUSTER_SHARE`] of the points join their nearest.
/// Returns a label per row, numbered by first appearance.
pub fn cluster(embeddings: &Array2<f32>, max_clusters: usize) -> Vec<usize> {
    let n = embeddings.nrows();
    if n == 0 {
        return Vec::new();
    }
    // Cluster members, and the summed similarity between every pair of live clusters.
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut sums: Array2<f32> = embeddings.dot(&embeddings.t());
    let mut alive: Vec<bool> = vec![true; n];
    merge_most_similar(&mut sums, &mut members, &mut alive, max_clusters);
    // Small clusters join the nearest large one.
    let min_size = ((n as f32 * MIN_CLUSTER_SHARE).ceil() as usize).max(1);
    let large: Vec<usize> = (0..n)
        .filter(|&c| alive[c] && members[c].len() >= min_size)
        .collect();
    if !large.is_empty() {
        for c in 0..n {
            if alive[c] && members[c].len() < min_size {
                let target = *large
                    .iter()
                    .max_by(|&&x, &&y| {
                        average(&sums, &members, c, x).total_cmp(&average(&sums, &members, c, y))
                    })
                    .unwrap_or(&large[0]);
                let moved = std::mem::take(&mut members[c]);
                members[target].extend(moved);
                alive[c] = false;
            }
        }
    }
    let mut label_of = vec![0; n];
    for (c, group) in members.iter().enumerate() {
        for &i in group {
            label_of[i] = c;
        }
    }
    // Renumber by first appearance.
    let mut renumber: HashMap<usize, usize> = HashMap::new();
    label_of
        .iter()
        .map(|c| {
            let next = renumber.len();
            *renumber.entry(*c).or_insert(next)
        })
        .collect()
}

/// Frame-level speaker votes from the windows, then turns; short turns join a neighbour.
/// A region no window covers (shorter than [`MIN_WINDOW_FRAMES`]) gets no turn: its words take
/// the nearest turn's speaker when the transcript is labelled.
fn turns_from_windows(
    speech: &[(u64, u64)],
    windows: &[(usize, usize)],
    labels: &[usize],
) -> Vec<SpeakerTurn> {
    let speakers = labels.iter().copied().max().map_or(1, |m| m + 1);
    let end_frame = speech.last().map_or(0, |r| (r.1 / 10) as usize + 1);
    let mut votes = vec![vec![0.0f32; speakers]; end_frame];
    for (&(start, len), &label) in windows.iter().zip(labels) {
        let covered = votes
            .iter_mut()
            .enumerate()
            .take((start + len).min(end_frame))
            .skip(start);
        for (frame, frame_votes) in covered {
            // Frames near a window's centre weigh more: the edges may hold the other voice.
            let from_centre = (frame as f32 - (start as f32 + len as f32 / 2.0)).abs();
            frame_votes[label] += 1.0 - from_centre / len as f32;
        }
    }
    // Each speech region's frames; a frame no window covers takes the label of the nearest
    // covered frame in its region.
    let mut turns: Vec<SpeakerTurn> = Vec::new();
    for &(start_ms, end_ms) in speech {
        let (first, last) = (
            (start_ms / 10) as usize,
            ((end_ms / 10) as usize).min(end_frame),
        );
        let mut frame_labels: Vec<Option<usize>> = (first..last)
            .map(|f| {
                let v = &votes[f];
                let (best, &weight) = v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
                (weight > 0.0).then_some(best)
            })
            .collect();
        fill_gaps(&mut frame_labels);
        for (at, label) in (first..).zip(frame_labels) {
            let frame_start = at as u64 * 10;
            let frame_end = (frame_start + 10).min(end_ms);
            let Some(speaker) = label else { continue };
            match turns.last_mut() {
                Some(turn) if turn.speaker == speaker && turn.end_ms >= frame_start => {
                    turn.end_ms = frame_end;
                }
                _ => turns.push(SpeakerTurn {
                    start_ms: frame_start.max(start_ms),
                    end_ms: frame_end,
                    speaker,
                }),
            }
        }
    }
    absorb_short_turns(&mut turns);
    turns
}

fn fill_gaps(labels: &mut [Option<usize>]) {
    let known: Vec<(usize, usize)> = labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.map(|l| (i, l)))
        .collect();
    if known.is_empty() {
        return;
    }
    for (i, label) in labels.iter_mut().enumerate() {
        if label.is_none() {
            let nearest = known
                .iter()
                .min_by_key(|(j, _)| j.abs_diff(i))
                .map(|&(_, l)| l);
            *label = nearest;
        }
    }
}

/// Turns shorter than [`MIN_TURN_MS`] take the speaker of the turn before them (the one after,
/// for the first); same-speaker turns closer than [`SAME_SPEAKER_JOIN_MS`] become one.
fn absorb_short_turns(turns: &mut Vec<SpeakerTurn>) {
    let mut i = 0;
    while turns.len() > 1 && i < turns.len() {
        let turn = turns[i];
        if turn.end_ms - turn.start_ms >= MIN_TURN_MS {
            i += 1;
            continue;
        }
        let neighbour = if i > 0 { i - 1 } else { i + 1 };
        turns[i].speaker = turns[neighbour].speaker;
        // Merge equal neighbours.
        let mut merged: Vec<SpeakerTurn> = Vec::with_capacity(turns.len());
        for t in turns.drain(..) {
            match merged.last_mut() {
                Some(last)
                    if last.speaker == t.speaker
                        && t.start_ms <= last.end_ms + SAME_SPEAKER_JOIN_MS =>
                {
                    last.end_ms = last.end_ms.max(t.end_ms);
                }
                _ => merged.push(t),
            }
        }
        *turns = merged;
        i = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_match_librosa_shape_and_norm() {
        let filters = mel_filters();
        assert_eq!(filters.dim(), (40, 201));
        // Slaney area normalisation: each triangle's area is 2 / (band width in Hz) x width/2
        // ... i.e. rows sum to about 0.025 at this resolution (helper's numpy check).
        for row in filters.axis_iter(Axis(0)) {
            let sum: f32 = row.sum();
            assert!(sum > 0.0, "empty band");
        }
    }

    /// An encoder with only the filter bank: enough for the spectrogram.
    fn spectrogram_only() -> VoiceEncoder {
        VoiceEncoder {
            layers: Vec::new(),
            linear_w: Array2::zeros((0, 0)),
            linear_b: Array1::zeros(0),
            mel_filters: mel_filters(),
        }
    }

    #[test]
    fn the_raised_spectrogram_is_that_of_the_raised_copy_across_blocks() {
        let encoder = spectrogram_only();
        // 30 s of a quiet warble: 3,001 frames, so three blocks of filter-bank products.
        let quiet: Vec<f32> = (0..480_000)
            .map(|i| 0.001 * ((i as f32) * 0.05).sin() * (1.0 + ((i as f32) * 0.0003).sin()))
            .collect();
        let gain = volume_gain(&quiet);
        assert!(gain.is_some());
        let raised = encoder.mel_spectrogram_raised(&quiet, gain);
        assert_eq!(raised, encoder.mel_spectrogram(&normalize_volume(&quiet)));
        // A frame in the second block equals the same frame computed in the first block of
        // the track cut 1,024 frames later (frames from the third on see no padding).
        let later = encoder.mel_spectrogram(&quiet[1024 * HOP..]);
        let whole = encoder.mel_spectrogram(&quiet);
        for frame in [2, 500, 1023, 1500] {
            for (a, b) in whole.row(1024 + frame).iter().zip(later.row(frame)) {
                assert!((a - b).abs() <= 1e-6 * a.abs().max(1e-12), "frame {frame}");
            }
        }
    }

    #[test]
    fn volume_is_raised_never_lowered() {
        let quiet = vec![0.001f32; 1600];
        let loud = vec![0.5f32; 1600];
        let raised = normalize_volume(&quiet);
        let level = 20.0 * (raised[0] as f64).log10();
        assert!((level - TARGET_DBFS).abs() < 0.01, "{level}");
        assert_eq!(normalize_volume(&loud), loud);
        assert_eq!(normalize_volume(&[0.0; 10]), vec![0.0; 10]);
    }

    #[test]
    fn clustering_separates_two_directions_and_keeps_one_together() {
        let mut rows = Vec::new();
        for i in 0..10 {
            let e = 0.05 * (i as f32 % 3.0);
            rows.extend([1.0, e, 0.0]);
        }
        for i in 0..10 {
            let e = 0.05 * (i as f32 % 3.0);
            rows.extend([0.0, e, 1.0]);
        }
        let mut m = Array2::from_shape_vec((20, 3), rows).unwrap();
        for mut row in m.axis_iter_mut(Axis(0)) {
            let n = row.dot(&row).sqrt();
            row /= n;
        }
        let labels = cluster(&m, 4);
        assert!(labels[..10].iter().all(|&l| l == 0));
        assert!(labels[10..].iter().all(|&l| l == 1));
        // One voice stays one speaker.
        let one = m.slice_axis(Axis(0), Slice::from(..10)).to_owned();
        assert!(cluster(&one, 4).iter().all(|&l| l == 0));
        // A cap on speakers is honoured.
        assert!(cluster(&m, 1).iter().all(|&l| l == 0));
    }

    /// The merge loop as first written: rescan every live pair for the first maximum.
    fn merge_by_rescanning(
        sums: &mut Array2<f32>,
        members: &mut [Vec<usize>],
        alive: &mut [bool],
        max_clusters: usize,
    ) {
        let n = alive.len();
        let mut live = n;
        while live > 1 {
            let mut best = (f32::NEG_INFINITY, 0, 0);
            for a in (0..n).filter(|&a| alive[a]) {
                for b in (a + 1..n).filter(|&b| alive[b]) {
                    let similarity = average(sums, members, a, b);
                    if similarity > best.0 {
                        best = (similarity, a, b);
                    }
                }
            }
            let (similarity, a, b) = best;
            if similarity < MERGE_SIMILARITY && live <= max_clusters {
                break;
            }
            merge_pair(sums, members, alive, a, b);
            live -= 1;
        }
    }

    #[test]
    fn merging_with_kept_partners_merges_as_a_rescan_does() {
        // Random unit vectors around three centres, or (even rounds) the centres themselves,
        // whose many equal similarities test the choice among ties; every speaker cap.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let (mut merges, mut points) = (0, 0);
        for round in 0..40 {
            let n = 5 + round * 3;
            let dims = 8;
            let centres: Vec<f32> = (0..3 * dims).map(|_| next()).collect();
            let mut rows = Array2::<f32>::zeros((n, dims));
            for (i, mut row) in rows.axis_iter_mut(Axis(0)).enumerate() {
                let centre = &centres[(i % 3) * dims..(i % 3 + 1) * dims];
                for (d, value) in row.iter_mut().enumerate() {
                    // Even rounds: exact copies of the centres, so equal similarities abound.
                    *value = centre[d] + if round % 2 == 0 { 0.0 } else { 0.6 * next() };
                }
                let norm = row.dot(&row).sqrt().max(1e-6);
                row /= norm;
            }
            let max_clusters = 1 + round % 4;
            let start = || {
                (
                    rows.dot(&rows.t()),
                    (0..n).map(|i| vec![i]).collect::<Vec<_>>(),
                    vec![true; n],
                )
            };
            let (mut sums, mut members, mut alive) = start();
            merge_most_similar(&mut sums, &mut members, &mut alive, max_clusters);
            let (mut sums_r, mut members_r, mut alive_r) = start();
            merge_by_rescanning(&mut sums_r, &mut members_r, &mut alive_r, max_clusters);
            assert_eq!(members, members_r, "round {round}");
            assert_eq!(alive, alive_r, "round {round}");
            merges += alive.iter().filter(|&&a| !a).count();
            points += n;
        }
        // Not a comparison of two loops that stop at once: most points were merged.
        assert!(merges * 2 > points, "{merges} merges of {points} points");
    }

    #[test]
    fn short_turns_join_a_neighbour() {
        let mut turns = vec![
            SpeakerTurn {
                start_ms: 0,
                end_ms: 3_000,
                speaker: 0,
            },
            SpeakerTurn {
                start_ms: 3_000,
                end_ms: 3_200,
                speaker: 1,
            },
            SpeakerTurn {
                start_ms: 3_200,
                end_ms: 6_000,
                speaker: 0,
            },
            SpeakerTurn {
                start_ms: 6_500,
                end_ms: 9_000,
                speaker: 1,
            },
        ];
        absorb_short_turns(&mut turns);
        assert_eq!(
            turns,
            vec![
                SpeakerTurn {
                    start_ms: 0,
                    end_ms: 6_000,
                    speaker: 0
                },
                SpeakerTurn {
                    start_ms: 6_500,
                    end_ms: 9_000,
                    speaker: 1
                },
            ]
        );
    }

    #[test]
    fn a_missing_model_file_says_how_to_make_it() {
        let err =
            VoiceEncoder::load(Path::new("/nonexistent/voice-encoder.safetensors")).unwrap_err();
        assert!(err.to_string().contains("fetch-voice-model.sh"), "{err}");
    }
}
