//! WAV decoding for Whisper: any PCM/float WAV hound reads becomes one 16 kHz mono `f32` track
//! per channel, which is the only input whisper.cpp accepts.
//!
//! Channels are kept apart, not mixed: a two-channel telehealth recording has one speaker per
//! channel, and transcribing each separately is what gives `channel_labels`.

use crate::WhisperError;

/// Whisper's one sample rate.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;

/// Channels this crate transcribes: mono, or two channels (one speaker each), as Transcribe's
/// channel identification does.
pub const MAX_CHANNELS: usize = 2;

/// Decoded audio: one 16 kHz track per channel, samples in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// The file's own sample rate, before resampling.
    pub source_sample_rate: u32,
    /// One track per channel, each at [`WHISPER_SAMPLE_RATE`]; all the same length.
    pub channels: Vec<Vec<f32>>,
}

impl Audio {
    /// Length in seconds (of the resampled tracks).
    pub fn duration_secs(&self) -> f64 {
        self.channels
            .first()
            .map_or(0.0, |c| c.len() as f64 / f64::from(WHISPER_SAMPLE_RATE))
    }
}

/// Decodes WAV bytes: 8/16/24/32-bit integer PCM or 32-bit float, any sample rate, one or two
/// channels. Each channel is resampled to 16 kHz.
pub fn decode_wav(wav: &[u8]) -> Result<Audio, WhisperError> {
    let reader = hound::WavReader::new(wav).map_err(|e| WhisperError::Wav(e.to_string()))?;
    let spec = reader.spec();
    let n_channels = usize::from(spec.channels);
    if n_channels == 0 || n_channels > MAX_CHANNELS {
        return Err(WhisperError::UnsupportedWav(format!(
            "{n_channels} channels; only mono or two-channel audio is transcribed"
        )));
    }
    if spec.sample_rate == 0 {
        return Err(WhisperError::Wav("sample rate is 0".into()));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(WhisperError::UnsupportedWav(format!(
                    "{}-bit float samples; only 32-bit float is read",
                    spec.bits_per_sample
                )));
            }
            reader
                .into_samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(|e| WhisperError::Wav(e.to_string()))?
        }
        hound::SampleFormat::Int => {
            if !(1..=32).contains(&spec.bits_per_sample) {
                return Err(WhisperError::UnsupportedWav(format!(
                    "{}-bit integer samples",
                    spec.bits_per_sample
                )));
            }
            // Full scale of a signed n-bit sample; 8-bit WAV is unsigned on disk but hound
            // already recentres it to signed.
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| WhisperError::Wav(e.to_string()))?
        }
    };
    let frames = interleaved.len() / n_channels;
    let channels = (0..n_channels)
        .map(|c| {
            let track: Vec<f32> = interleaved
                .iter()
                .skip(c)
                .step_by(n_channels)
                .take(frames)
                .copied()
                .collect();
            resample_linear(&track, spec.sample_rate, WHISPER_SAMPLE_RATE)
        })
        .collect();
    Ok(Audio {
        source_sample_rate: spec.sample_rate,
        channels,
    })
}

/// Number of output samples [`resample_linear`] gives: `len * to / from`, rounded to nearest.
pub fn resampled_len(len: usize, from_rate: u32, to_rate: u32) -> usize {
    let (len, from, to) = (len as u128, u128::from(from_rate), u128::from(to_rate));
    ((len * to + from / 2) / from) as usize
}

/// Resamples by linear interpolation between neighbouring samples.
///
/// Linear interpolation is enough for speech recognition at these rates: Whisper only looks at
/// 0-8 kHz, and the mild aliasing from not low-pass filtering when downsampling (e.g. 44.1 kHz
/// to 16 kHz) sits in the high band with little speech energy. It is not a hi-fi resampler.
pub fn resample_linear(input: &[f32], from_rate: u32, to_rate: u32) -> Vec<f32> {
    if from_rate == to_rate || input.is_empty() {
        return input.to_vec();
    }
    let out_len = resampled_len(input.len(), from_rate, to_rate);
    let step = f64::from(from_rate) / f64::from(to_rate);
    let last = input.len() - 1;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let idx = (pos.floor() as usize).min(last);
            let frac = (pos - idx as f64) as f32;
            let next = input[(idx + 1).min(last)];
            input[idx] + (next - input[idx]) * frac
        })
        .collect()
}

/// Speech detection frame: 20 ms, the resolution of Whisper's own alignment.
const FRAME_MS: u64 = 20;
/// Silences shorter than this are pauses inside speech, not gaps between utterances.
const MIN_GAP_MS: u64 = 300;
/// Speech regions are widened by this on each side: soft onsets and endings ("f", "h", "s")
/// sit below the energy threshold.
const REGION_PAD_MS: u64 = 60;

/// Where a 16 kHz track has speech, as `[start, end)` millisecond ranges, by frame energy.
///
/// Used to pack speech into Whisper chunks, to correct word times and to skip a channel with
/// no sound at all. Empty when the track is silent (peak frame RMS under 1e-4, about
/// -80 dBFS). A frame is speech when
/// its RMS is above both 12 dB over the track's noise floor (10th percentile frame) and
/// 34 dB under its loudest frame; gaps shorter than 300 ms are bridged. Steady loud noise
/// makes everything one region, which simply leaves Whisper's times as they are.
pub fn speech_regions(samples: &[f32]) -> Vec<(u64, u64)> {
    let frame = (u64::from(WHISPER_SAMPLE_RATE) * FRAME_MS / 1000) as usize;
    let rms: Vec<f32> = samples
        .chunks(frame)
        .map(|c| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    let peak = rms.iter().copied().fold(0.0f32, f32::max);
    if peak < 1e-4 {
        return Vec::new();
    }
    let mut sorted = rms.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[sorted.len() / 10];
    let threshold = (floor * 4.0).max(peak * 0.02);

    let total_ms = samples.len() as u64 * 1000 / u64::from(WHISPER_SAMPLE_RATE);
    let mut regions: Vec<(u64, u64)> = Vec::new();
    for (i, &level) in rms.iter().enumerate() {
        if level <= threshold {
            continue;
        }
        let (start, end) = (
            i as u64 * FRAME_MS,
            ((i as u64 + 1) * FRAME_MS).min(total_ms),
        );
        match regions.last_mut() {
            Some(last) if start <= last.1 + MIN_GAP_MS => last.1 = end,
            _ => regions.push((start, end)),
        }
    }
    for region in &mut regions {
        region.0 = region.0.saturating_sub(REGION_PAD_MS);
        region.1 = (region.1 + REGION_PAD_MS).min(total_ms);
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_bytes<S: hound::Sample + Copy>(spec: hound::WavSpec, samples: &[S]) -> Vec<u8> {
        let mut cursor = std::io::Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for &s in samples {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        cursor.into_inner()
    }

    fn spec(channels: u16, rate: u32, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn decodes_16_bit_mono_at_16k_without_resampling() {
        let samples: Vec<i16> = vec![0, 16384, -16384, i16::MAX, i16::MIN];
        let audio = decode_wav(&wav_bytes(
            spec(1, 16_000, 16, hound::SampleFormat::Int),
            &samples,
        ))
        .unwrap();
        assert_eq!(audio.source_sample_rate, 16_000);
        assert_eq!(audio.channels.len(), 1);
        let got = &audio.channels[0];
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], 0.0);
        assert!((got[1] - 0.5).abs() < 1e-6);
        assert!((got[2] + 0.5).abs() < 1e-6);
        assert!((got[3] - 1.0).abs() < 1e-4);
        assert_eq!(got[4], -1.0);
    }

    #[test]
    fn decodes_32_bit_float() {
        let samples = [0.25f32, -0.75, 1.0];
        let audio = decode_wav(&wav_bytes(
            spec(1, 16_000, 32, hound::SampleFormat::Float),
            &samples,
        ))
        .unwrap();
        assert_eq!(audio.channels[0], samples.to_vec());
    }

    #[test]
    fn decodes_24_bit_integer() {
        let samples = [1 << 22, -(1 << 22)];
        let audio = decode_wav(&wav_bytes(
            spec(1, 16_000, 24, hound::SampleFormat::Int),
            &samples,
        ))
        .unwrap();
        assert_eq!(audio.channels[0], vec![0.5, -0.5]);
    }

    #[test]
    fn keeps_stereo_channels_apart() {
        // Left counts up, right is silent: what a two-line recorder gives while one side talks.
        let interleaved: Vec<i16> = (0..8).flat_map(|i| [i * 1000, 0]).collect();
        let audio = decode_wav(&wav_bytes(
            spec(2, 16_000, 16, hound::SampleFormat::Int),
            &interleaved,
        ))
        .unwrap();
        assert_eq!(audio.channels.len(), 2);
        assert_eq!(audio.channels[0].len(), 8);
        assert!((audio.channels[0][3] - 3000.0 / 32768.0).abs() < 1e-7);
        assert!(audio.channels[1].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn resamples_other_rates_to_16k() {
        for (rate, frames, expected) in [
            (8_000u32, 8_000usize, 16_000usize),
            (44_100, 44_100, 16_000),
            (48_000, 24_000, 8_000),
            (22_050, 1_000, 726), // 1000 * 16000 / 22050 = 725.6
        ] {
            let samples = vec![0i16; frames];
            let audio = decode_wav(&wav_bytes(
                spec(1, rate, 16, hound::SampleFormat::Int),
                &samples,
            ))
            .unwrap();
            assert_eq!(audio.source_sample_rate, rate);
            assert_eq!(audio.channels[0].len(), expected, "from {rate} Hz");
        }
    }

    #[test]
    fn stereo_at_another_rate_resamples_each_channel() {
        let interleaved: Vec<f32> = (0..4_410).flat_map(|_| [0.5f32, -0.5]).collect();
        let audio = decode_wav(&wav_bytes(
            spec(2, 44_100, 32, hound::SampleFormat::Float),
            &interleaved,
        ))
        .unwrap();
        assert_eq!(audio.channels[0].len(), 1_600);
        assert_eq!(audio.channels[1].len(), 1_600);
        assert!(audio.channels[0].iter().all(|&s| (s - 0.5).abs() < 1e-6));
        assert!(audio.channels[1].iter().all(|&s| (s + 0.5).abs() < 1e-6));
        assert!((audio.duration_secs() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn linear_interpolation_between_samples() {
        // Upsampling 8 kHz -> 16 kHz puts a midpoint between each pair.
        let out = resample_linear(&[0.0, 1.0, 0.0], 8_000, 16_000);
        assert_eq!(out.len(), 6);
        assert_eq!(&out[..5], &[0.0, 0.5, 1.0, 0.5, 0.0]);
        // A ramp stays a ramp when downsampled.
        let ramp: Vec<f32> = (0..300).map(|i| i as f32).collect();
        let down = resample_linear(&ramp, 48_000, 16_000);
        assert_eq!(down.len(), 100);
        assert!(down.iter().enumerate().all(|(i, &v)| v == (i * 3) as f32));
    }

    #[test]
    fn rejects_non_wav_bytes() {
        let err = decode_wav(b"ID3\x03\x00 this is an mp3, not a wav").unwrap_err();
        assert!(matches!(err, WhisperError::Wav(_)));
        assert!(
            err.to_string().starts_with("not a readable WAV file"),
            "{err}"
        );
        assert!(decode_wav(b"").is_err());
    }

    #[test]
    fn finds_speech_regions_between_silences() {
        let rate = WHISPER_SAMPLE_RATE as usize;
        // 0.5 s silence, 1 s tone, 0.2 s silence (bridged), 0.5 s tone, 1 s silence, 0.5 s tone.
        let tone = |secs: f32| -> Vec<f32> {
            (0..(secs * rate as f32) as usize)
                .map(|i| 0.3 * (i as f32 * 0.2).sin())
                .collect()
        };
        let silence = |secs: f32| vec![0.0f32; (secs * rate as f32) as usize];
        let track = [
            silence(0.5),
            tone(1.0),
            silence(0.2),
            tone(0.5),
            silence(1.0),
            tone(0.5),
        ]
        .concat();
        assert_eq!(speech_regions(&track), vec![(440, 2260), (3140, 3700)]);
        assert!(speech_regions(&silence(2.0)).is_empty());
        // Quiet hiss under the speech stays silence.
        let noisy: Vec<f32> = track
            .iter()
            .enumerate()
            .map(|(i, s)| s + if i % 2 == 0 { 0.002 } else { -0.002 })
            .collect();
        assert_eq!(speech_regions(&noisy), vec![(440, 2260), (3140, 3700)]);
    }

    #[test]
    fn rejects_more_than_two_channels() {
        let err = decode_wav(&wav_bytes(
            spec(3, 16_000, 16, hound::SampleFormat::Int),
            &[0i16; 9],
        ))
        .unwrap_err();
        assert!(err.to_string().contains("3 channels"), "{err}");
    }
}
