//! Every format the local runtime reads, decoded to Whisper's input: AAC in MP4/M4A, MP3,
//! FLAC, Ogg Vorbis (through `symphonia`, pure Rust) and WAV (through `hound`, as before),
//! each channel resampled to 16 kHz.
//!
//! These are the formats Transcribe Medical takes that a pure-Rust decoder can read; AMR,
//! WebM and Opus are not, and say so by name ([`WhisperError::UnsupportedCodec`]) rather
//! than as unreadable audio. A damaged packet inside an otherwise readable file is skipped
//! and counted (as a streaming decoder would), not fatal.

use crate::audio::{decode_wav, resample_linear, Audio, MAX_CHANNELS, WHISPER_SAMPLE_RATE};
use crate::WhisperError;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{self, CodecType, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Decoded audio and what had to be left out on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedMedia {
    pub audio: Audio,
    /// Packets that failed to decode and were skipped.
    pub skipped_packets: u32,
}

/// The formats [`decode_media`] reads, by the names intake gives them (Transcribe's
/// `MediaFormat` values).
pub const LOCAL_FORMATS: [&str; 6] = ["wav", "mp3", "mp4", "m4a", "flac", "ogg"];

/// Decodes `bytes` of the named format (`wav`, `mp3`, `mp4`, `m4a`, `flac`, `ogg`; other
/// Transcribe formats are refused as unsupported) into 16 kHz tracks, one per channel.
pub fn decode_media(bytes: &[u8], format: &str) -> Result<DecodedMedia, WhisperError> {
    match format {
        "wav" => Ok(DecodedMedia {
            audio: decode_wav(bytes)?,
            skipped_packets: 0,
        }),
        "mp3" | "mp4" | "m4a" | "flac" | "ogg" => decode_with_symphonia(bytes, format),
        other => Err(WhisperError::UnsupportedCodec(format!(
            "{other} (the local transcriber reads {})",
            LOCAL_FORMATS.join(", ")
        ))),
    }
}

/// A readable name for a codec symphonia found but cannot decode here.
fn codec_name(codec: CodecType) -> String {
    let known = [
        (codecs::CODEC_TYPE_OPUS, "opus"),
        (codecs::CODEC_TYPE_ALAC, "alac"),
        (codecs::CODEC_TYPE_SPEEX, "speex"),
        (codecs::CODEC_TYPE_EAC3, "e-ac-3"),
        (codecs::CODEC_TYPE_AC4, "ac-4"),
        (codecs::CODEC_TYPE_DCA, "dts"),
        (codecs::CODEC_TYPE_WMA, "wma"),
        (codecs::CODEC_TYPE_WAVPACK, "wavpack"),
        (codecs::CODEC_TYPE_MONKEYS_AUDIO, "monkeys-audio"),
        (codecs::CODEC_TYPE_TTA, "tta"),
    ];
    known
        .iter()
        .find(|(c, _)| *c == codec)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| format!("codec {codec}"))
}

fn decode_with_symphonia(bytes: &[u8], format: &str) -> Result<DecodedMedia, WhisperError> {
    let source = MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        Default::default(),
    );
    let mut hint = Hint::new();
    hint.with_extension(format);
    let options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, source, &options, &MetadataOptions::default())
        .map_err(|err| match err {
            SymphoniaError::Unsupported(_) => WhisperError::Media(format!(
                "no {format} stream found in the file (not a {format} file, or a container this build cannot read)"
            )),
            other => WhisperError::Media(format!("{format}: {other}")),
        })?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| WhisperError::Media(format!("{format}: no audio track")))?;
    let (track_id, params) = (track.id, track.codec_params.clone());
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|err| match err {
            SymphoniaError::Unsupported(_) => {
                WhisperError::UnsupportedCodec(format!("{} in {format}", codec_name(params.codec)))
            }
            other => WhisperError::Media(format!("{format}: {other}")),
        })?;

    let mut interleaved: Vec<f32> = Vec::new();
    let mut channels = params.channels.map(|c| c.count()).unwrap_or(0);
    let mut rate = params.sample_rate.unwrap_or(0);
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut skipped_packets = 0u32;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            // The normal end of a stream.
            Err(SymphoniaError::IoError(err))
                if err.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            // A container damaged past this point: keep what was read.
            Err(SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_)) => {
                skipped_packets += 1;
                break;
            }
            Err(other) => return Err(WhisperError::Media(format!("{format}: {other}"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(decoded) => {
                let spec = *decoded.spec();
                if channels == 0 {
                    channels = spec.channels.count();
                }
                if rate == 0 {
                    rate = spec.rate;
                }
                let frames = decoded.capacity() as u64;
                let buffer = buffer.get_or_insert_with(|| SampleBuffer::<f32>::new(frames, spec));
                if buffer.capacity() < decoded.capacity() * spec.channels.count() {
                    *buffer = SampleBuffer::<f32>::new(frames, spec);
                }
                buffer.copy_interleaved_ref(decoded);
                interleaved.extend_from_slice(buffer.samples());
            }
            Err(SymphoniaError::DecodeError(_)) => skipped_packets += 1,
            Err(SymphoniaError::IoError(_)) => {
                skipped_packets += 1;
                break;
            }
            Err(other) => return Err(WhisperError::Media(format!("{format}: {other}"))),
        }
    }
    if channels == 0 || rate == 0 || interleaved.is_empty() {
        return Err(WhisperError::Media(format!(
            "{format}: no audio could be decoded"
        )));
    }
    if channels > MAX_CHANNELS {
        return Err(WhisperError::UnsupportedWav(format!(
            "{channels} channels; only mono or two-channel audio is transcribed"
        )));
    }
    let (start, frames) = content_frames(&params, interleaved.len() / channels);
    let interleaved = &interleaved[start * channels..(start + frames) * channels];
    let tracks = (0..channels)
        .map(|c| {
            let track: Vec<f32> = interleaved
                .iter()
                .skip(c)
                .step_by(channels)
                .take(frames)
                .copied()
                .collect();
            resample_linear(&track, rate, WHISPER_SAMPLE_RATE)
        })
        .collect();
    Ok(DecodedMedia {
        audio: Audio {
            source_sample_rate: rate,
            channels: tracks,
        },
        skipped_packets,
    })
}

/// Samples an AAC encoder puts before the audio (ffmpeg's and most encoders' priming).
/// MP4 records the exact figure in an edit list, which symphonia 0.5 does not apply; Apple's
/// encoder primes 2,112, so a chunk from it keeps ~23 ms more at 48 kHz.
const AAC_PRIMING_FRAMES: usize = 1024;

/// The decoded frames that are the recording: without the encoder's priming and the
/// padding of the last packet, so joined chunks keep their real length (5-second AAC
/// chunks otherwise gain ~34 ms each, a minute of drift over an hour of capture).
fn content_frames(
    params: &symphonia::core::codecs::CodecParameters,
    decoded: usize,
) -> (usize, usize) {
    // `n_frames` counts frames only when the track's time base is one sample (isomp4 gives
    // the media header's duration in the track's own timescale, which may be coarser).
    let per_sample = match (params.time_base, params.sample_rate) {
        (Some(tb), Some(rate)) => tb.numer == 1 && tb.denom == rate,
        _ => false,
    };
    let declared = params
        .n_frames
        .filter(|_| per_sample)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .map_or(decoded, |n| n.min(decoded));
    let start = if params.codec == codecs::CODEC_TYPE_AAC && params.delay.is_none() {
        AAC_PRIMING_FRAMES.min(declared / 2)
    } else {
        0
    };
    (start, declared - start)
}

/// 16-bit PCM WAV bytes of 16 kHz tracks (one per channel): how the local concatenator
/// writes a joined recording.
pub fn encode_wav(audio: &Audio) -> Vec<u8> {
    let channels = audio.channels.len().max(1);
    let spec = hound::WavSpec {
        channels: channels as u16,
        sample_rate: WHISPER_SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let frames = audio.channels.first().map_or(0, Vec::len);
    let mut cursor = std::io::Cursor::new(Vec::with_capacity(44 + frames * channels * 2));
    {
        let mut writer =
            hound::WavWriter::new(&mut cursor, spec).expect("writing to memory cannot fail");
        for i in 0..frames {
            for track in &audio.channels {
                let sample = track.get(i).copied().unwrap_or(0.0).clamp(-1.0, 1.0);
                writer
                    .write_sample((sample * f32::from(i16::MAX)).round() as i16)
                    .expect("writing to memory cannot fail");
            }
        }
        writer.finalize().expect("writing to memory cannot fail");
    }
    cursor.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../samples")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn every_local_format_decodes_to_the_same_length_as_the_wav() {
        let wav = decode_media(&sample("short-metformin.wav"), "wav").unwrap();
        let expected = wav.audio.channels[0].len() as f64;
        for (file, format) in [
            ("formats/short-metformin.mp3", "mp3"),
            ("formats/short-metformin.m4a", "m4a"),
            ("formats/short-metformin.flac", "flac"),
            ("formats/short-metformin.ogg", "ogg"),
        ] {
            let decoded = decode_media(&sample(file), format).unwrap();
            assert_eq!(decoded.audio.channels.len(), 1, "{file}");
            let got = decoded.audio.channels[0].len() as f64;
            // Priming and padding are trimmed: within a few milliseconds of the source.
            assert!(
                (got - expected).abs() < 0.01 * 16_000.0,
                "{file}: {got} vs {expected}"
            );
            let energy: f32 = decoded.audio.channels[0].iter().map(|s| s * s).sum();
            assert!(energy > 1.0, "{file} decoded to silence");
        }
    }

    #[test]
    fn a_chime_chunk_decodes_from_aac_in_mp4_at_48k() {
        let chunk = sample("chime-capture/audio/2026-12-01-15-00-00-000.mp4");
        let decoded = decode_media(&chunk, "mp4").unwrap();
        assert_eq!(decoded.audio.source_sample_rate, 48_000);
        let secs = decoded.audio.duration_secs();
        assert!((secs - 5.0).abs() < 0.002, "{secs}");
    }

    #[test]
    fn unreadable_and_unsupported_input_say_which() {
        let err = decode_media(b"#!AMR\n....", "amr").unwrap_err();
        assert!(matches!(err, WhisperError::UnsupportedCodec(_)), "{err}");
        assert!(err.to_string().contains("amr"), "{err}");
        let err = decode_media(b"definitely not audio at all", "m4a").unwrap_err();
        assert!(matches!(err, WhisperError::Media(_)), "{err}");
        let mut truncated = sample("formats/short-metformin.mp3");
        truncated.truncate(40);
        assert!(decode_media(&truncated, "mp3").is_err());
    }

    #[test]
    fn joined_audio_round_trips_through_wav() {
        let audio = Audio {
            source_sample_rate: 16_000,
            channels: vec![vec![0.0, 0.5, -0.5, 1.0]],
        };
        let wav = encode_wav(&audio);
        let back = decode_wav(&wav).unwrap();
        assert_eq!(back.channels[0].len(), 4);
        assert!((back.channels[0][1] - 0.5).abs() < 1e-3);
    }
}
