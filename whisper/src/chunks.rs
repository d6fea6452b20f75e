//! Packs a track's speech into Whisper-sized chunks with the silence between utterances left
//! out, and maps times in a chunk back to the track. Pure: the engine cuts the audio with
//! [`Chunk::audio`] and recognises the chunks (in parallel when it has workers), then
//! [`Chunk::to_track_ms`] puts every token back on the recording's own clock.
//!
//! Why: whisper.cpp encodes a fixed 30-second window whatever it holds, so the cost of a
//! recording is the number of windows. Whisper's own seeking advances by its last complete
//! segment (often 20–25 s), and pauses, hold music or a muted microphone fill windows with
//! nothing. Packing the detected speech regions ([`crate::audio::speech_regions`]) into windows
//! of up to [`MAX_CHUNK_MS`], each region kept whole and joined to the next by a short
//! [`JOIN_GAP_MS`] pause, spends every window on speech; and independent chunks can be
//! recognised side by side on several cores.

use crate::audio::WHISPER_SAMPLE_RATE;

/// Longest chunk: under Whisper's 30 s window, with room for the model to close its last
/// segment.
pub const MAX_CHUNK_MS: u64 = 29_000;
/// Silence put between two regions joined in one chunk (each region already carries 60 ms of
/// padding): long enough for Whisper to hear a turn boundary, short enough to waste little of
/// the window. 250 ms and 29 s windows gave the same word error rate as 400 ms and 28 s on the
/// 7-minute visit, with one window fewer.
pub const JOIN_GAP_MS: u64 = 250;
/// A region longer than a chunk is cut at its quietest 20 ms frame in the last this-many
/// milliseconds before the limit, so a cut falls between words where it can.
const CUT_SEARCH_MS: u64 = 8_000;
const FRAME_MS: u64 = 20;

/// One piece of the track inside a chunk: `[track_start, track_end)` of the recording,
/// starting at `chunk_start` in the chunk's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub track_start_ms: u64,
    pub track_end_ms: u64,
    pub chunk_start_ms: u64,
}

/// Speech regions joined into one unit of recognition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub pieces: Vec<Piece>,
}

fn ms_to_samples(ms: u64) -> usize {
    (ms * u64::from(WHISPER_SAMPLE_RATE) / 1000) as usize
}

impl Chunk {
    /// The chunk's length in milliseconds (its pieces and the gaps between them).
    pub fn len_ms(&self) -> u64 {
        self.pieces.last().map_or(0, |p| {
            p.chunk_start_ms + (p.track_end_ms - p.track_start_ms)
        })
    }

    /// The chunk's audio cut from the 16 kHz track: each piece, silence between them.
    pub fn audio(&self, track: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; ms_to_samples(self.len_ms())];
        for piece in &self.pieces {
            let from = ms_to_samples(piece.track_start_ms).min(track.len());
            let to = ms_to_samples(piece.track_end_ms).min(track.len());
            let at = ms_to_samples(piece.chunk_start_ms).min(out.len());
            let n = (to - from).min(out.len() - at);
            out[at..at + n].copy_from_slice(&track[from..from + n]);
        }
        out
    }

    /// A time in the chunk's audio as a time in the track. A time in a joining gap belongs to
    /// the piece before it (its end): the gap is silence Whisper may stretch a word into.
    pub fn to_track_ms(&self, chunk_ms: u64) -> u64 {
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.chunk_start_ms <= chunk_ms)
            .unwrap_or(&self.pieces[0]);
        let offset = chunk_ms.saturating_sub(piece.chunk_start_ms);
        (piece.track_start_ms + offset).min(piece.track_end_ms)
    }
}

/// Splits `[start, end)` into pieces no longer than `max_ms`, each cut at the quietest frame of
/// the last [`CUT_SEARCH_MS`] before the limit (frame energies from `track`).
fn split_long(track: &[f32], start: u64, end: u64, max_ms: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut from = start;
    while end - from > max_ms {
        let limit = from + max_ms;
        let search_from = limit.saturating_sub(CUT_SEARCH_MS).max(from + FRAME_MS);
        let energy = |t: u64| -> f32 {
            let a = ms_to_samples(t).min(track.len());
            let b = ms_to_samples(t + FRAME_MS).min(track.len());
            track[a..b].iter().map(|s| s * s).sum()
        };
        let mut cut = limit - FRAME_MS;
        let mut quietest = f32::INFINITY;
        let mut t = search_from;
        while t + FRAME_MS <= limit {
            let e = energy(t);
            if e < quietest {
                quietest = e;
                cut = t;
            }
            t += FRAME_MS;
        }
        // Cut in the middle of the quietest frame.
        let cut = (cut + FRAME_MS / 2).clamp(from + 1, limit);
        out.push((from, cut));
        from = cut;
    }
    out.push((from, end));
    out
}

/// Packs speech regions (`[start, end)` ms, in order, as [`crate::audio::speech_regions`] gives
/// them) into chunks of at most `max_ms`: regions in order, each whole (a longer one is first
/// cut at quiet frames), joined by [`JOIN_GAP_MS`] of silence. Silence between regions is left
/// out.
pub fn plan_chunks(track: &[f32], speech: &[(u64, u64)], max_ms: u64) -> Vec<Chunk> {
    let max_ms = max_ms.max(1_000);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut current = Chunk { pieces: Vec::new() };
    for &(start, end) in speech {
        if end <= start {
            continue;
        }
        for (a, b) in split_long(track, start, end, max_ms) {
            let at = if current.pieces.is_empty() {
                0
            } else {
                current.len_ms() + JOIN_GAP_MS
            };
            if !current.pieces.is_empty() && at + (b - a) > max_ms {
                chunks.push(std::mem::replace(
                    &mut current,
                    Chunk { pieces: Vec::new() },
                ));
                current.pieces.push(Piece {
                    track_start_ms: a,
                    track_end_ms: b,
                    chunk_start_ms: 0,
                });
            } else {
                current.pieces.push(Piece {
                    track_start_ms: a,
                    track_end_ms: b,
                    chunk_start_ms: at,
                });
            }
        }
    }
    if !current.pieces.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(ms: u64) -> Vec<f32> {
        vec![0.0; ms_to_samples(ms)]
    }

    #[test]
    fn regions_are_packed_whole_with_the_silence_between_them_left_out() {
        let track = silence(100_000);
        let speech = [(1_000, 11_000), (20_000, 30_000), (31_000, 41_000)];
        let chunks = plan_chunks(&track, &speech, 28_000);
        // 10 s + a join + 10 s fits; adding another join and 10 s would not.
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            chunks[0].pieces,
            vec![
                Piece {
                    track_start_ms: 1_000,
                    track_end_ms: 11_000,
                    chunk_start_ms: 0
                },
                Piece {
                    track_start_ms: 20_000,
                    track_end_ms: 30_000,
                    chunk_start_ms: 10_000 + JOIN_GAP_MS
                },
            ]
        );
        assert_eq!(chunks[0].len_ms(), 20_000 + JOIN_GAP_MS);
        assert_eq!(chunks[1].pieces[0].track_start_ms, 31_000);
        assert_eq!(chunks[1].pieces[0].chunk_start_ms, 0);
        // Every chunk fits Whisper's window.
        assert!(chunks.iter().all(|c| c.len_ms() <= 28_000));
    }

    #[test]
    fn chunk_times_map_back_to_the_track() {
        let track = silence(60_000);
        let chunks = plan_chunks(&track, &[(1_000, 11_000), (20_000, 30_000)], 28_000);
        let chunk = &chunks[0];
        assert_eq!(chunk.to_track_ms(0), 1_000);
        assert_eq!(chunk.to_track_ms(5_000), 6_000);
        // Inside the joining gap: the end of the piece before it.
        assert_eq!(chunk.to_track_ms(10_000 + JOIN_GAP_MS / 2), 11_000);
        assert_eq!(chunk.to_track_ms(10_000 + JOIN_GAP_MS), 20_000);
        assert_eq!(chunk.to_track_ms(12_000 + JOIN_GAP_MS), 22_000);
        // Past the end: clamped to the last piece.
        assert_eq!(chunk.to_track_ms(99_000), 30_000);
    }

    #[test]
    fn audio_is_cut_from_the_track_with_silence_between_pieces() {
        // A ramp so every sample says where it came from.
        let track: Vec<f32> = (0..ms_to_samples(3_000)).map(|i| i as f32).collect();
        let chunks = plan_chunks(&track, &[(0, 1_000), (2_000, 3_000)], 28_000);
        let audio = chunks[0].audio(&track);
        assert_eq!(audio.len(), ms_to_samples(2_000 + JOIN_GAP_MS));
        assert_eq!(audio[0], 0.0);
        assert_eq!(
            audio[ms_to_samples(1_000) - 1],
            track[ms_to_samples(1_000) - 1]
        );
        assert!(
            audio[ms_to_samples(1_000)..ms_to_samples(1_000 + JOIN_GAP_MS)]
                .iter()
                .all(|&s| s == 0.0)
        );
        assert_eq!(
            audio[ms_to_samples(1_000 + JOIN_GAP_MS)],
            track[ms_to_samples(2_000)]
        );
        assert_eq!(*audio.last().unwrap(), *track.last().unwrap());
    }

    #[test]
    fn a_region_longer_than_a_chunk_is_cut_at_its_quietest_frame() {
        // 60 s of "speech" with one quiet stretch at 25.0–25.1 s.
        let mut track = vec![0.5f32; ms_to_samples(60_000)];
        for s in &mut track[ms_to_samples(25_000)..ms_to_samples(25_100)] {
            *s = 0.0;
        }
        let chunks = plan_chunks(&track, &[(0, 60_000)], 28_000);
        let first = &chunks[0].pieces[0];
        assert!(
            (25_000..=25_100).contains(&first.track_end_ms),
            "cut at {}",
            first.track_end_ms
        );
        // Nothing lost or repeated: the pieces tile the region.
        let pieces: Vec<Piece> = chunks.iter().flat_map(|c| c.pieces.clone()).collect();
        assert_eq!(pieces[0].track_start_ms, 0);
        for pair in pieces.windows(2) {
            assert_eq!(pair[0].track_end_ms, pair[1].track_start_ms);
        }
        assert_eq!(pieces.last().unwrap().track_end_ms, 60_000);
        assert!(chunks.iter().all(|c| c.len_ms() <= 28_000));
    }

    #[test]
    fn no_speech_is_no_chunks() {
        assert!(plan_chunks(&silence(5_000), &[], 28_000).is_empty());
    }
}
