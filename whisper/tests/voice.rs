//! The speaker encoder against its reference (numpy, from the same weights) and diarization of
//! the bundled two-voice samples against their known turns.
//!
//! Needs `models/voice-encoder.safetensors` and `models/voice-encoder.reference.json` from
//! `scripts/fetch-voice-model.sh` (set-up makes both); fails with that hint when they are missing.

use std::path::{Path, PathBuf};

use telepipe_whisper::decode_wav;
use telepipe_whisper::diarize::{normalize_volume, SpeakerTurn, VoiceEncoder};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn encoder() -> VoiceEncoder {
    VoiceEncoder::load(&root().join("models/voice-encoder.safetensors"))
        .expect("run scripts/fetch-voice-model.sh (scripts/setup.sh does)")
}

fn reference() -> serde_json::Value {
    let path = root().join("models/voice-encoder.reference.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-voice-model.sh", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// The reference signal (its formula is in the JSON's "signal").
fn reference_signal() -> Vec<f32> {
    use std::f64::consts::PI;
    (0..32_000)
        .map(|n| {
            let t = n as f64 / 16_000.0;
            (0.1 * (0.55 + 0.45 * (2.0 * PI * 3.0 * t).sin())
                * (0.35 * (2.0 * PI * 220.0 * t).sin()
                    + 0.25 * (2.0 * PI * 660.0 * t + 0.5).sin()
                    + 0.15 * (2.0 * PI * 1500.0 * t + 1.0).sin()
                    + 0.25 * (2.0 * PI * (300.0 * t + 450.0 * t * t)).sin())) as f32
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

#[test]
fn mel_spectrum_and_embedding_match_the_reference() {
    let encoder = encoder();
    let reference = reference();
    let signal = normalize_volume(&reference_signal());
    let mel = encoder.mel_spectrogram(&signal);
    assert_eq!(mel.nrows() as u64, reference["n_frames"].as_u64().unwrap());
    assert_close(
        &mel.row(0).to_vec(),
        &floats(&reference["mel_first_frame"]),
        1e-4,
        "mel frame 0",
    );
    assert_close(
        &mel.row(80).to_vec(),
        &floats(&reference["mel_frame_80"]),
        1e-4,
        "mel frame 80",
    );
    let embedding = encoder.embed(mel.view(), 0, 160);
    assert_close(
        &embedding,
        &floats(&reference["embedding"]),
        1e-3,
        "embedding",
    );
    let norm: f32 = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
}

/// The speaker label holding most of each true turn; every doctor turn must share one label,
/// every patient turn the other.
fn check_turns(sample: &str) {
    let wav = std::fs::read(root().join("samples").join(format!("{sample}.wav"))).unwrap();
    let audio = decode_wav(&wav).unwrap();
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("samples").join(format!("{sample}.turns.json")))
            .unwrap(),
    )
    .unwrap();
    let turns: Vec<SpeakerTurn> = encoder().diarize(&audio.channels[0], 4);
    let speakers: std::collections::BTreeSet<usize> = turns.iter().map(|t| t.speaker).collect();
    assert_eq!(speakers.len(), 2, "{sample}: {turns:?}");
    let mut label_of = std::collections::BTreeMap::new();
    for turn in truth["turns"].as_array().unwrap() {
        let (start, end) = (
            turn["start_ms"].as_u64().unwrap(),
            turn["end_ms"].as_u64().unwrap(),
        );
        let mut overlap = [0u64; 4];
        for t in &turns {
            let shared = t.end_ms.min(end).saturating_sub(t.start_ms.max(start));
            overlap[t.speaker] += shared;
        }
        let best = (0..4).max_by_key(|&s| overlap[s]).unwrap();
        let who = turn["speaker"].as_str().unwrap().to_string();
        let previous = label_of.insert(who.clone(), best);
        assert!(
            previous.is_none() || previous == Some(best),
            "{sample}: {who} turn at {start} ms labelled {best}, earlier {previous:?}: {turns:?}"
        );
    }
    assert_ne!(
        label_of["doctor"], label_of["patient"],
        "{sample}: {turns:?}"
    );
}

#[test]
fn the_two_voices_of_the_chest_pain_visit_are_told_apart() {
    check_turns("visit-chest-pain");
}

#[test]
fn the_two_voices_of_the_diabetes_visit_are_told_apart() {
    check_turns("visit-diabetes-followup");
}

#[test]
fn one_voice_is_one_speaker() {
    let wav = std::fs::read(root().join("samples/short-metformin.wav")).unwrap();
    let audio = decode_wav(&wav).unwrap();
    let turns = encoder().diarize(&audio.channels[0], 4);
    assert!(!turns.is_empty());
    assert!(turns.iter().all(|t| t.speaker == 0), "{turns:?}");
}
