//! Which recordings Transcribe Medical can take: by extension *and* by leading bytes.
//!
//! The extension names the format we tell Transcribe; the bytes must agree, so a text
//! file renamed `.wav` is refused before a job is spent on it. MP3 is the awkward one:
//! files may open with an ID3 tag of any size or with padding before the first frame,
//! so it is recognised by an ID3 tag or by a valid MPEG audio frame header anywhere in
//! the bytes read.

/// How many leading bytes `intake` reads to recognise a format.
pub const SNIFF_BYTES: u64 = 8192;

/// Transcribe Medical `MediaFormat` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaFormat {
    Mp3,
    Mp4,
    M4a,
    Wav,
    Flac,
    Ogg,
    Amr,
    Webm,
}

impl MediaFormat {
    pub fn from_extension(file_name: &str) -> Option<Self> {
        let (_, ext) = file_name.rsplit_once('.')?;
        Some(match ext.to_ascii_lowercase().as_str() {
            "mp3" => Self::Mp3,
            "mp4" => Self::Mp4,
            "m4a" => Self::M4a,
            "wav" | "wave" => Self::Wav,
            "flac" => Self::Flac,
            "ogg" | "oga" | "opus" => Self::Ogg,
            "amr" => Self::Amr,
            "webm" => Self::Webm,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mp3 => "mp3",
            Self::Mp4 => "mp4",
            Self::M4a => "m4a",
            Self::Wav => "wav",
            Self::Flac => "flac",
            Self::Ogg => "ogg",
            Self::Amr => "amr",
            Self::Webm => "webm",
        }
    }

    /// Whether `leading` (the first bytes of the file) look like this format.
    pub fn matches(self, leading: &[u8]) -> bool {
        match self {
            Self::Mp3 => leading.starts_with(b"ID3") || find_mpeg_audio_frame(leading).is_some(),
            Self::Mp4 | Self::M4a => leading.len() >= 8 && &leading[4..8] == b"ftyp",
            Self::Wav => {
                leading.len() >= 12
                    && (&leading[..4] == b"RIFF" || &leading[..4] == b"RF64")
                    && &leading[8..12] == b"WAVE"
            }
            Self::Flac => {
                leading.starts_with(b"fLaC")
                    || (leading.starts_with(b"ID3") && contains(leading, b"fLaC"))
            }
            Self::Ogg => leading.starts_with(b"OggS"),
            Self::Amr => leading.starts_with(b"#!AMR\n") || leading.starts_with(b"#!AMR-WB\n"),
            Self::Webm => leading.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Offset of the first plausible MPEG audio frame: a valid header whose successor (when
/// it lies within `bytes`) is a valid header too.
pub fn find_mpeg_audio_frame(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len().saturating_sub(3)).find(|&at| match frame_length(&bytes[at..]) {
        Some(len) if at + len + 4 <= bytes.len() => frame_length(&bytes[at + len..]).is_some(),
        Some(_) => true,
        None => false,
    })
}

/// Length in bytes of the MPEG audio frame whose header starts `bytes`, if it is one.
fn frame_length(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..4)?;
    if header[0] != 0xFF || header[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (header[1] >> 3) & 0b11; // 00 = 2.5, 01 reserved, 10 = 2, 11 = 1
    let layer = (header[1] >> 1) & 0b11; // 01 = III, 10 = II, 11 = I, 00 reserved
    let bitrate_index = usize::from(header[2] >> 4);
    let rate_index = usize::from((header[2] >> 2) & 0b11);
    let padding = usize::from((header[2] >> 1) & 1);
    if version == 0b01
        || layer == 0b00
        || bitrate_index == 0
        || bitrate_index == 15
        || rate_index == 3
    {
        return None;
    }
    const V1_L1: [u32; 15] = [
        0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ];
    const V1_L2: [u32; 15] = [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ];
    const V1_L3: [u32; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const V2_L1: [u32; 15] = [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ];
    const V2_L23: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let mpeg1 = version == 0b11;
    let kbps = match (mpeg1, layer) {
        (true, 0b11) => V1_L1[bitrate_index],
        (true, 0b10) => V1_L2[bitrate_index],
        (true, _) => V1_L3[bitrate_index],
        (false, 0b11) => V2_L1[bitrate_index],
        (false, _) => V2_L23[bitrate_index],
    } as usize;
    let base_rate = [44_100, 48_000, 32_000][rate_index];
    let sample_rate = match version {
        0b11 => base_rate,
        0b10 => base_rate / 2,
        _ => base_rate / 4,
    };
    let len = if layer == 0b11 {
        (12 * kbps * 1000 / sample_rate + padding) * 4
    } else if layer == 0b01 && !mpeg1 {
        72 * kbps * 1000 / sample_rate + padding
    } else {
        144 * kbps * 1000 / sample_rate + padding
    };
    (len >= 4).then_some(len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run of valid MPEG-1 Layer III frames (128 kbps, 44.1 kHz, 417 bytes each).
    pub fn mp3_frames(count: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..count {
            let mut frame = vec![0u8; 417];
            frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
            out.extend(frame);
        }
        out
    }

    pub fn wav_header() -> Vec<u8> {
        let mut out = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
        out.extend([
            16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3E, 0, 0, 0, 0x7D, 0, 0, 2, 0, 16, 0,
        ]);
        out.extend(b"data\x00\x00\x00\x00");
        out
    }

    #[test]
    fn extensions_map_case_insensitively() {
        assert_eq!(
            MediaFormat::from_extension("visit.WAV"),
            Some(MediaFormat::Wav)
        );
        assert_eq!(
            MediaFormat::from_extension("a.b.m4a"),
            Some(MediaFormat::M4a)
        );
        assert_eq!(MediaFormat::from_extension("notes.txt"), None);
        assert_eq!(MediaFormat::from_extension("noextension"), None);
    }

    #[test]
    fn renamed_text_is_not_audio() {
        let text = b"Patient reports chest pain since Tuesday. This is a text file.".repeat(50);
        for format in [
            MediaFormat::Mp3,
            MediaFormat::Wav,
            MediaFormat::Flac,
            MediaFormat::Mp4,
            MediaFormat::Ogg,
        ] {
            assert!(!format.matches(&text), "{format:?}");
        }
    }

    #[test]
    fn mp3_is_recognised_with_id3_padding_or_bare_frames() {
        assert!(MediaFormat::Mp3.matches(&mp3_frames(3)));
        let mut padded = vec![0u8; 700];
        padded.extend(mp3_frames(3));
        assert!(
            MediaFormat::Mp3.matches(&padded),
            "junk before the first frame"
        );
        let mut tagged = b"ID3\x04\x00\x00\x00\x10\x00\x00".to_vec();
        tagged.extend(vec![0u8; 4000]);
        assert!(
            MediaFormat::Mp3.matches(&tagged),
            "large ID3 tag, no frame within the sniffed bytes"
        );
    }

    #[test]
    fn a_lone_sync_pattern_followed_by_garbage_is_not_mp3() {
        let mut bytes = vec![b'x'; 100];
        bytes.extend([0xFF, 0xFB, 0x90, 0x64]);
        bytes.extend(vec![b'x'; 1000]);
        assert!(!MediaFormat::Mp3.matches(&bytes));
    }

    #[test]
    fn containers_are_recognised() {
        assert!(MediaFormat::Wav.matches(&wav_header()));
        assert!(MediaFormat::Flac.matches(b"fLaC\x00\x00\x00\x22"));
        assert!(MediaFormat::Ogg.matches(b"OggS\x00\x02"));
        assert!(MediaFormat::M4a.matches(b"\x00\x00\x00\x20ftypM4A "));
        assert!(MediaFormat::Webm.matches(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F]));
        assert!(MediaFormat::Amr.matches(b"#!AMR\n\x3c"));
        assert!(!MediaFormat::Wav.matches(b"fLaC\x00\x00\x00\x22\x00\x00\x00\x00"));
    }
}
