//! A structural check of whisper.cpp's ggml model file, done in Rust before whisper.cpp sees it.
//!
//! whisper.cpp trusts the sizes in the file: a truncated download or a wrong file can make it
//! allocate absurd amounts or read past the end instead of failing cleanly. Walking the header,
//! vocabulary and tensor table here (seeking over tensor data, so it costs milliseconds) turns
//! those cases into an error that names the file. The layout is the one
//! `scripts/ct2_to_ggml.py` writes and documents.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use crate::WhisperError;

const GGML_MAGIC: u32 = 0x6767_6d6c;

/// The model's hyperparameters, as read from the file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
    /// Tensors in the file.
    pub n_tensors: usize,
}

impl ModelInfo {
    /// Whisper's size name from the layer count ("tiny", "base", ...).
    pub fn size_name(&self) -> &'static str {
        match self.n_audio_layer {
            4 => "tiny",
            6 => "base",
            12 => "small",
            24 => "medium",
            32 => "large",
            _ => "unknown",
        }
    }

    /// English-only models have one token fewer than multilingual ones.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

/// Bytes for `elements` values of ggml tensor type `ttype` (f32, f16 and the block-quantised
/// types whisper.cpp's `quantize` writes).
fn tensor_bytes(ttype: i32, elements: u64) -> Option<u64> {
    let (block, block_bytes) = match ttype {
        0 => (1, 4),   // f32
        1 => (1, 2),   // f16
        2 => (32, 18), // q4_0
        3 => (32, 20), // q4_1
        6 => (32, 22), // q5_0
        7 => (32, 24), // q5_1
        8 => (32, 34), // q8_0
        _ => return None,
    };
    // Quantised tensors come in whole blocks.
    let blocks = elements / block;
    (blocks * block == elements).then_some(blocks * block_bytes)
}

/// Reads the file front to back, seeking over bulk data, with errors that name the file.
struct Walker<'p> {
    path: &'p Path,
    reader: BufReader<File>,
    size: u64,
}

impl Walker<'_> {
    fn bad(&self, reason: impl Into<String>) -> WhisperError {
        WhisperError::model(self.path, reason)
    }

    fn position(&mut self) -> Result<u64, WhisperError> {
        self.reader
            .stream_position()
            .map_err(|e| self.bad(format!("cannot seek: {e}")))
    }

    fn i32(&mut self, what: &str) -> Result<i32, WhisperError> {
        let mut buf = [0u8; 4];
        match self.reader.read_exact(&mut buf) {
            Ok(()) => Ok(i32::from_le_bytes(buf)),
            Err(_) => Err(self.bad(format!("truncated: file ends inside {what}"))),
        }
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>, WhisperError> {
        let mut buf = vec![0u8; n];
        match self.reader.read_exact(&mut buf) {
            Ok(()) => Ok(buf),
            Err(_) => Err(self.bad(format!("truncated: file ends inside {what}"))),
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), WhisperError> {
        let here = self.position()?;
        if here.saturating_add(n) > self.size {
            return Err(self.bad(format!("truncated: file ends inside {what}")));
        }
        let n = i64::try_from(n).map_err(|_| self.bad(format!("{what} is too large")))?;
        self.reader
            .seek_relative(n)
            .map_err(|e| self.bad(format!("cannot seek: {e}")))
    }
}

/// Checks that `path` is a complete ggml Whisper model and returns its hyperparameters.
pub fn check_model_file(path: &Path) -> Result<ModelInfo, WhisperError> {
    let file =
        File::open(path).map_err(|e| WhisperError::model(path, format!("cannot open: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| WhisperError::model(path, format!("cannot stat: {e}")))?
        .len();
    let mut w = Walker {
        path,
        reader: BufReader::new(file),
        size,
    };

    let magic = w.i32("the header")? as u32;
    if magic != GGML_MAGIC {
        return Err(w.bad(format!(
            "not a ggml Whisper model (magic {magic:#010x}, expected {GGML_MAGIC:#010x}); \
             convert CTranslate2 weights with scripts/fetch-whisper-model.sh"
        )));
    }
    let mut hp = [0i32; 11];
    for value in &mut hp {
        *value = w.i32("the header")?;
    }
    let [n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype] =
        hp;
    let sane = |v: i32, max: i32| (1..=max).contains(&v);
    if !(sane(n_vocab, 1 << 20)
        && sane(n_audio_ctx, 1 << 16)
        && sane(n_audio_state, 1 << 16)
        && sane(n_audio_head, 1024)
        && sane(n_audio_layer, 1024)
        && sane(n_text_ctx, 1 << 16)
        && sane(n_text_state, 1 << 16)
        && sane(n_text_head, 1024)
        && sane(n_text_layer, 1024)
        && sane(n_mels, 1024)
        && ftype >= 0)
    {
        return Err(w.bad(format!("implausible hyperparameters {hp:?}")));
    }

    let n_mel_rows = w.i32("the mel filters")?;
    let n_fft = w.i32("the mel filters")?;
    if n_mel_rows != n_mels || !sane(n_fft, 4096) {
        return Err(w.bad(format!(
            "mel filter bank is {n_mel_rows}x{n_fft} for a {n_mels}-mel model"
        )));
    }
    w.skip(4 * n_mel_rows as u64 * n_fft as u64, "the mel filters")?;

    let n_tokens = w.i32("the vocabulary")?;
    if !(0..=n_vocab).contains(&n_tokens) {
        return Err(w.bad(format!(
            "vocabulary has {n_tokens} tokens for n_vocab {n_vocab}"
        )));
    }
    for _ in 0..n_tokens {
        let len = w.i32("the vocabulary")?;
        if !(0..1024).contains(&len) {
            return Err(w.bad(format!("vocabulary token of length {len}")));
        }
        w.skip(len as u64, "the vocabulary")?;
    }

    let mut n_tensors = 0usize;
    while w.position()? < size {
        let here = w.position()?;
        let n_dims = w.i32("a tensor header")?;
        let name_len = w.i32("a tensor header")?;
        let ttype = w.i32("a tensor header")?;
        if !(1..=4).contains(&n_dims) || !(1..256).contains(&name_len) {
            return Err(w.bad(format!(
                "malformed tensor header at byte {here} (dims {n_dims}, name length {name_len})"
            )));
        }
        let mut elements = 1u64;
        for _ in 0..n_dims {
            let ne = w.i32("a tensor header")?;
            if ne < 1 {
                return Err(w.bad(format!("tensor dimension {ne} at byte {here}")));
            }
            elements = elements.saturating_mul(ne as u64);
        }
        let name = w.bytes(name_len as usize, "a tensor name")?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let bytes = tensor_bytes(ttype, elements)
            .ok_or_else(|| w.bad(format!("tensor {name} has unsupported type {ttype}")))?;
        w.skip(bytes, &format!("tensor {name}"))?;
        n_tensors += 1;
    }
    if n_tensors == 0 {
        return Err(w.bad("holds no tensors"));
    }
    Ok(ModelInfo {
        n_vocab,
        n_audio_ctx,
        n_audio_state,
        n_audio_head,
        n_audio_layer,
        n_text_ctx,
        n_text_state,
        n_text_head,
        n_text_layer,
        n_mels,
        ftype,
        n_tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny but well-formed ggml file: header, 2x3 mel filters, two tokens, two tensors.
    fn tiny_model() -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |v: i32| out.extend_from_slice(&v.to_le_bytes());
        push(GGML_MAGIC as i32);
        for v in [51864, 1500, 4, 1, 4, 448, 4, 1, 4, 2, 1] {
            push(v);
        }
        push(2);
        push(3);
        for _ in 0..6 {
            push(0);
        }
        push(2);
        out.extend_from_slice(&1i32.to_le_bytes());
        out.push(b'a');
        out.extend_from_slice(&2i32.to_le_bytes());
        out.extend_from_slice(b" b");
        // A 4x2 f16 tensor and a 4-element f32 tensor.
        for (name, ttype, dims, bytes) in [
            ("decoder.ln.weight", 0i32, vec![4i32], 16),
            ("decoder.token_embedding.weight", 1, vec![4, 2], 16),
        ] {
            out.extend_from_slice(&(dims.len() as i32).to_le_bytes());
            out.extend_from_slice(&(name.len() as i32).to_le_bytes());
            out.extend_from_slice(&ttype.to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.extend(std::iter::repeat_n(0u8, bytes));
        }
        out
    }

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("telepipe-whisper-ggml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn accepts_a_complete_file() {
        let path = write("ok.bin", &tiny_model());
        let info = check_model_file(&path).unwrap();
        assert_eq!(info.n_vocab, 51864);
        assert_eq!(info.n_mels, 2);
        assert_eq!(info.n_tensors, 2);
        assert_eq!(info.size_name(), "tiny");
        assert!(!info.is_multilingual());
    }

    #[test]
    fn truncated_file_is_an_error_naming_it() {
        let model = tiny_model();
        let path = write("truncated.bin", &model[..model.len() - 5]);
        let err = check_model_file(&path).unwrap_err().to_string();
        assert!(err.contains("truncated.bin"), "{err}");
        assert!(
            err.contains("truncated: file ends inside tensor decoder.token_embedding.weight"),
            "{err}"
        );
    }

    #[test]
    fn non_ggml_file_is_an_error_naming_it() {
        let path = write("model.bin", b"\x06\x00\x00\x00\x0c\x00WhisperSpec\x00");
        let err = check_model_file(&path).unwrap_err().to_string();
        assert!(err.contains("model.bin"), "{err}");
        assert!(err.contains("not a ggml Whisper model"), "{err}");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let err = check_model_file(Path::new("/nonexistent/ggml-tiny.en.bin"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ggml-tiny.en.bin"), "{err}");
        assert!(err.contains("cannot open"), "{err}");
    }

    #[test]
    fn absurd_sizes_are_rejected_before_whisper_cpp_sees_them() {
        let mut model = tiny_model();
        model[4..8].copy_from_slice(&(-7i32).to_le_bytes());
        let path = write("absurd.bin", &model);
        let err = check_model_file(&path).unwrap_err().to_string();
        assert!(err.contains("implausible hyperparameters"), "{err}");
    }
}
