//! `telepipe demo`'s work on a pipeline: the sample recordings (and a Chime-style capture
//! in 5-second chunks) uploaded into a fresh data directory, and, once the pipeline is
//! idle, what came out for each: stage timings, entity counts, codes and drugs. The
//! command line runs the pipeline and renders the outcome.

use crate::runtime::{Pipeline, RECORDINGS_BUCKET, RESULTS_BUCKET};
use crate::status::RecordingStatus;
use crate::transcriber::SpeechToText;
use serde::Serialize;
use std::path::{Path, PathBuf};
use telepipe_events::results::ResultsDocument;
use telepipe_workers::ports::ClinicalNlp;

/// The demo's Chime-style visit: a meeting captured in 5-second chunks.
pub const CHIME_DEMO_SESSION: &str = "demo-chime-visit";

/// One recording the demo put into the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upload {
    pub session_id: String,
    /// The sample's file name, or what the capture was.
    pub source: String,
}

/// What came out for one upload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub session_id: String,
    pub source: String,
    /// Where the recording ended (`extracted`, `failed`, ...); `None` when nothing records it.
    pub stage: Option<String>,
    pub error: Option<String>,
    /// Seconds from upload to transcription start, of transcription, of extraction.
    pub intake_secs: Option<f64>,
    pub transcribe_secs: Option<f64>,
    pub clinical_secs: Option<f64>,
    pub words: Option<usize>,
    pub conditions: Option<usize>,
    pub medications: Option<usize>,
    /// Distinct ICD-10-CM codes, first concept of each entity, in order of appearance.
    pub icd10cm: Vec<String>,
    /// Distinct RxNorm entity texts, lower case, sorted.
    pub drugs: Vec<String>,
    /// The speakers' labels, each with its role when the clinical stage could tell
    /// (`spk_0 clinician`).
    pub speakers: Vec<String>,
    /// The results document, when one was written and reads as one.
    pub results: Option<PathBuf>,
}

/// Session id of a sample file: `demo-` and its stem, other characters than letters,
/// digits, `.`, `_` and `-` replaced.
pub fn session_id_for(file: &Path) -> String {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("sample");
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("demo-{clean}")
}

/// The `.wav` recordings of a samples folder, sorted; an error when there are none.
pub fn sample_recordings(samples: &Path) -> Result<Vec<PathBuf>, String> {
    let mut wavs: Vec<PathBuf> = std::fs::read_dir(samples)
        .map_err(|e| format!("samples folder {}: {e}", samples.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("wav")))
        .collect();
    wavs.sort();
    if wavs.is_empty() {
        return Err(format!(
            "samples folder {} holds no .wav recordings",
            samples.display()
        ));
    }
    Ok(wavs)
}

/// An error unless `data_dir` is missing or empty: the demo's results must be its own.
pub fn check_fresh(data_dir: &Path) -> Result<(), String> {
    let used = data_dir.exists()
        && std::fs::read_dir(data_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
    if used {
        return Err(format!(
            "data directory {} is not empty: the demo needs a fresh one",
            data_dir.display()
        ));
    }
    Ok(())
}

/// Uploads each recording as its own session, then the samples' Chime capture if they
/// hold one (`samples/chime-capture/`).
pub fn upload<N: ClinicalNlp, E: SpeechToText>(
    pipeline: &Pipeline<N, E>,
    recordings: &[PathBuf],
    samples: &Path,
) -> Result<Vec<Upload>, String> {
    let mut uploaded = Vec::new();
    for wav in recordings {
        let session = session_id_for(wav);
        let name = wav
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("recording.wav");
        let key = format!("{}{session}/{name}", pipeline.intake.recordings_prefix);
        let bytes = std::fs::read(wav).map_err(|e| format!("{}: {e}", wav.display()))?;
        pipeline
            .store
            .put_if_absent(RECORDINGS_BUCKET, &key, &bytes)
            .map_err(|e| format!("uploading {}: {e}", wav.display()))?;
        uploaded.push(Upload {
            session_id: session,
            source: name.to_owned(),
        });
    }
    if let Some(chunks) = drop_chime_capture(pipeline, samples)? {
        uploaded.push(Upload {
            session_id: CHIME_DEMO_SESSION.to_owned(),
            source: format!("Chime capture, {chunks} chunks"),
        });
    }
    Ok(uploaded)
}

/// Writes `samples/chime-capture/` (audio chunks, meeting events, data channel) where a
/// Chime media capture pipeline with the sink `captures/demo-chime-visit` would, then puts
/// the capture's `chime:MediaPipelineDeleted` on the bus, as Chime does when it stops.
/// Returns the number of audio chunks, or `None` when the samples hold no capture.
fn drop_chime_capture<N: ClinicalNlp, E: SpeechToText>(
    pipeline: &Pipeline<N, E>,
    samples: &Path,
) -> Result<Option<usize>, String> {
    let capture = samples.join("chime-capture");
    if !capture.join("audio").is_dir() {
        return Ok(None);
    }
    let folder = pipeline.capture.capture_folder(CHIME_DEMO_SESSION);
    let mut chunks = 0;
    for artifact in ["audio", "meeting-events", "data-channel"] {
        let Ok(entries) = std::fs::read_dir(capture.join(artifact)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("chunk");
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            pipeline
                .store
                .put_if_absent(
                    RECORDINGS_BUCKET,
                    &format!("{folder}{artifact}/{name}"),
                    &bytes,
                )
                .map_err(|e| format!("writing capture {}: {e}", file.display()))?;
            chunks += usize::from(artifact == "audio");
        }
    }
    let event = serde_json::json!({
        "version": "0", "id": "demo-capture-ended", "detail-type": "Chime Media Pipeline State Change",
        "source": "aws.chime", "account": "000000000000", "time": jiff::Timestamp::now().to_string(),
        "region": "local", "resources": [],
        "detail": {
            "version": "0", "eventType": "chime:MediaPipelineDeleted",
            "timestamp": jiff::Timestamp::now().as_millisecond(),
            "meetingId": "00000000-0000-4000-8000-00000000d3e0",
            "externalMeetingId": CHIME_DEMO_SESSION,
            "mediaPipelineId": "00000000-0000-4000-8000-0000000c4b7e",
            "mediaRegion": "local",
        },
    });
    pipeline
        .bus
        .put(&event)
        .map_err(|e| format!("putting the capture's end on the bus: {e}"))?;
    Ok(Some(chunks))
}

/// What came out for each upload, from the recordings' statuses and results documents.
pub fn outcomes<N: ClinicalNlp, E: SpeechToText>(
    pipeline: &Pipeline<N, E>,
    uploads: &[Upload],
    statuses: &[RecordingStatus],
) -> Vec<Outcome> {
    uploads
        .iter()
        .map(|upload| outcome(pipeline, upload, statuses))
        .collect()
}

fn outcome<N: ClinicalNlp, E: SpeechToText>(
    pipeline: &Pipeline<N, E>,
    upload: &Upload,
    statuses: &[RecordingStatus],
) -> Outcome {
    let mut outcome = Outcome {
        session_id: upload.session_id.clone(),
        source: upload.source.clone(),
        stage: None,
        error: None,
        intake_secs: None,
        transcribe_secs: None,
        clinical_secs: None,
        words: None,
        conditions: None,
        medications: None,
        icd10cm: Vec::new(),
        drugs: Vec::new(),
        speakers: Vec::new(),
        results: None,
    };
    let Some(status) = statuses.iter().find(|s| s.session_id == upload.session_id) else {
        outcome.error = Some(format!("no record of {}", upload.source));
        return outcome;
    };
    outcome.stage = Some(status.stage.to_owned());
    outcome.error = status.error.clone();
    let at = |stage: &str| {
        status
            .timeline
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, t)| *t)
    };
    let span = |from: Option<i64>, to: Option<i64>| match (from, to) {
        (Some(a), Some(b)) => Some((b - a) as f64 / 1000.0),
        _ => None,
    };
    let first = status.timeline.first().map(|(_, t)| *t);
    outcome.intake_secs = span(first, at("transcribing"));
    outcome.transcribe_secs = span(at("transcribing"), at("transcribed"));
    outcome.clinical_secs = span(at("transcribed"), at("extracted"));
    let Some(uri) = &status.results_uri else {
        return outcome;
    };
    let key = uri
        .split_once(&format!("{RESULTS_BUCKET}/"))
        .map(|(_, k)| k)
        .unwrap_or_default();
    let Ok(path) = pipeline.store.path(RESULTS_BUCKET, key) else {
        outcome.error = Some("results document key is not a path in the results bucket".into());
        return outcome;
    };
    let Some(doc) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ResultsDocument>(&b).ok())
    else {
        outcome.error = Some(format!("results document {} unreadable", path.display()));
        return outcome;
    };
    let count = |category: &str| {
        doc.entities
            .iter()
            .filter(|e| e.category == category)
            .count()
    };
    for code in doc
        .icd10cm
        .iter()
        .filter_map(|e| e.concepts.first().map(|c| c.code.clone()))
    {
        if !outcome.icd10cm.contains(&code) {
            outcome.icd10cm.push(code);
        }
    }
    let mut drugs: Vec<String> = doc.rxnorm.iter().map(|e| e.text.to_lowercase()).collect();
    drugs.sort();
    drugs.dedup();
    outcome.drugs = drugs;
    outcome.speakers = doc.speakers_with_roles();
    outcome.words = Some(doc.text.split_whitespace().count());
    outcome.conditions = Some(count("MEDICAL_CONDITION"));
    outcome.medications = Some(count("MEDICATION"));
    outcome.results = Some(path);
    outcome
}
