//! What a clinician sees of one visit, decided from its results document alone (pure, no
//! I/O): the transcript by speaker turn cut into plain text and highlighted findings, every
//! finding with its codes, dose and frequency, and the summary (problems, medications,
//! pertinent negatives).

use serde::Serialize;
use std::collections::BTreeMap;
use telepipe_events::results::{ClinicalEntity, ResultsDocument};

/// One finding of the visit: a span of the transcript with everything the three
/// Comprehend Medical passes said about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `f{n}`: the anchor of the finding's highlight and table row.
    pub id: String,
    pub text: String,
    /// Comprehend Medical's category (`MEDICAL_CONDITION`, `MEDICATION`, ...).
    pub category: String,
    pub kind: String,
    pub speaker: Option<String>,
    /// `clinician` or `patient` when the clinical stage could tell.
    pub role: Option<String>,
    pub start_ms: Option<u64>,
    pub begin_offset: u32,
    pub end_offset: u32,
    pub negated: bool,
    pub historical: bool,
    pub family: bool,
    /// ICD-10-CM codes, best first, with their descriptions.
    pub icd10cm: Vec<(String, String)>,
    /// Drug codes (RxNorm, or the offline engine's drug vocabulary), best first.
    pub drug_codes: Vec<(String, String)>,
    pub dose: Option<String>,
    pub frequency: Option<String>,
    /// Every other attribute Comprehend Medical linked (route, duration, ...).
    pub attributes: Vec<(String, String)>,
}

/// A piece of a turn's text: plain, or the finding it highlights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Piece {
    Text(String),
    Finding { index: usize, text: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnView {
    pub speaker: String,
    /// `clinician` or `patient` when the clinical stage could tell.
    pub role: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Medication {
    pub name: String,
    pub code: Option<(String, String)>,
    pub dose: Option<String>,
    pub frequency: Option<String>,
    pub finding: usize,
}

/// A condition stated of the patient (not negated, not a relative's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub text: String,
    /// The best ICD-10-CM code and its description.
    pub code: Option<(String, String)>,
    pub finding: usize,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Summary {
    pub problems: Vec<Problem>,
    pub medications: Vec<Medication>,
    /// Findings said to be absent ("no chest pain").
    pub negatives: Vec<(String, usize)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visit {
    pub session_id: String,
    pub job_name: String,
    pub duration_ms: u64,
    pub speakers: Vec<String>,
    pub engine: String,
    pub turns: Vec<TurnView>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

fn has_trait(entity: &ClinicalEntity, name: &str) -> bool {
    entity.traits.iter().any(|t| t.name == name)
}

fn attribute(entity: &ClinicalEntity, kinds: &[&str]) -> Option<String> {
    entity
        .attributes
        .iter()
        .find(|a| kinds.contains(&a.kind.as_str()))
        .map(|a| a.text.clone())
}

/// One finding per distinct span: the DetectEntities entity, with the ICD-10-CM and drug
/// passes' codes and attributes for the same span merged in.
fn findings(document: &ResultsDocument) -> Vec<Finding> {
    let mut by_span: BTreeMap<(u32, u32), Finding> = BTreeMap::new();
    let passes = [
        (&document.entities, Pass::Entities),
        (&document.icd10cm, Pass::Icd10cm),
        (&document.rxnorm, Pass::Drugs),
    ];
    for (entities, pass) in passes {
        for entity in entities.iter() {
            let finding = by_span
                .entry((entity.begin_offset, entity.end_offset))
                .or_insert_with(|| Finding {
                    id: String::new(),
                    text: entity.text.clone(),
                    category: entity.category.clone(),
                    kind: entity.kind.clone(),
                    speaker: entity.speaker.clone(),
                    role: entity.role.map(|r| r.as_str().to_string()),
                    start_ms: entity.start_ms,
                    begin_offset: entity.begin_offset,
                    end_offset: entity.end_offset,
                    negated: false,
                    historical: false,
                    family: false,
                    icd10cm: Vec::new(),
                    drug_codes: Vec::new(),
                    dose: None,
                    frequency: None,
                    attributes: Vec::new(),
                });
            finding.negated |= has_trait(entity, "NEGATION");
            finding.historical |= has_trait(entity, "PAST_HISTORY");
            finding.family |= has_trait(entity, "PERTAINS_TO_FAMILY");
            let codes = entity
                .concepts
                .iter()
                .map(|c| (c.code.clone(), c.description.clone()));
            match pass {
                Pass::Icd10cm if finding.icd10cm.is_empty() => finding.icd10cm = codes.collect(),
                Pass::Drugs if finding.drug_codes.is_empty() => {
                    finding.drug_codes = codes.collect()
                }
                _ => {}
            }
            if finding.dose.is_none() {
                finding.dose = attribute(entity, &["DOSAGE", "STRENGTH"]);
            }
            if finding.frequency.is_none() {
                finding.frequency = attribute(entity, &["FREQUENCY"]);
            }
            for a in &entity.attributes {
                let pair = (a.kind.clone(), a.text.clone());
                let shown = matches!(a.kind.as_str(), "DOSAGE" | "STRENGTH" | "FREQUENCY");
                if !shown && !finding.attributes.contains(&pair) {
                    finding.attributes.push(pair);
                }
            }
        }
    }
    let mut all: Vec<Finding> = by_span.into_values().collect();
    for (n, finding) in all.iter_mut().enumerate() {
        finding.id = format!("f{n}");
    }
    all
}

#[derive(Clone, Copy)]
enum Pass {
    Entities,
    Icd10cm,
    Drugs,
}

/// A turn's text cut at the findings inside it; where findings overlap, the earlier and
/// then longer one is highlighted (the others still appear in the findings table).
fn pieces(chars: &[char], begin: usize, end: usize, findings: &[Finding]) -> Vec<Piece> {
    let mut inside: Vec<(usize, &Finding)> = findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.begin_offset as usize >= begin && f.end_offset as usize <= end)
        .filter(|(_, f)| f.begin_offset < f.end_offset)
        .collect();
    inside.sort_by_key(|(_, f)| (f.begin_offset, std::cmp::Reverse(f.end_offset)));
    let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
    let mut out = Vec::new();
    let mut at = begin;
    for (index, finding) in inside {
        let (from, to) = (finding.begin_offset as usize, finding.end_offset as usize);
        if from < at {
            continue;
        }
        if from > at {
            out.push(Piece::Text(text(at, from)));
        }
        out.push(Piece::Finding {
            index,
            text: text(from, to),
        });
        at = to;
    }
    if at < end {
        out.push(Piece::Text(text(at, end)));
    }
    out
}

fn summary(findings: &[Finding]) -> Summary {
    let mut summary = Summary::default();
    let mut seen = std::collections::BTreeSet::new();
    for (index, f) in findings.iter().enumerate() {
        let key = (f.category.clone(), f.text.to_lowercase());
        // A relative's history is neither the patient's problem nor a pertinent negative.
        if f.family {
            continue;
        }
        if f.negated {
            if seen.insert(("negative".to_owned(), key.1.clone())) {
                summary.negatives.push((f.text.clone(), index));
            }
            continue;
        }
        if !seen.insert(key) {
            continue;
        }
        match f.category.as_str() {
            "MEDICAL_CONDITION" => {
                summary.problems.push(Problem {
                    text: f.text.clone(),
                    code: f.icd10cm.first().cloned(),
                    finding: index,
                });
            }
            "MEDICATION" => summary.medications.push(Medication {
                name: f.text.clone(),
                code: f.drug_codes.first().cloned(),
                dose: f.dose.clone(),
                frequency: f.frequency.clone(),
                finding: index,
            }),
            _ => {}
        }
    }
    summary
}

/// The visit as the console and the report show it.
pub fn visit(document: &ResultsDocument) -> Visit {
    let findings = findings(document);
    let chars: Vec<char> = document.text.chars().collect();
    let turns = document
        .turns
        .iter()
        .map(|turn| {
            let end = (turn.end_offset as usize).min(chars.len());
            let begin = (turn.begin_offset as usize).min(end);
            TurnView {
                speaker: turn.speaker.clone(),
                role: turn.role.map(|r| r.as_str().to_string()),
                start_ms: turn.start_ms,
                end_ms: turn.end_ms,
                pieces: pieces(&chars, begin, end, &findings),
            }
        })
        .collect();
    Visit {
        session_id: document.session_id.clone(),
        job_name: document.job_name.clone(),
        duration_ms: document.duration_ms,
        speakers: document.speakers_with_roles(),
        engine: document.engine.name.clone(),
        turns,
        summary: summary(&findings),
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> ResultsDocument {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "session_id": "s-1", "job_name": "s-1-0123456789abcdef01234567",
            "transcript": {"bucket": "t", "key": "transcripts/s-1/j.json"},
            "engine": {"name": "offline", "drug_code_system": "RXNORM"},
            "labelling": "channel_labels", "speakers": ["ch_0", "ch_1"], "duration_ms": 9000,
            "speaker_roles": {"ch_0": "clinician", "ch_1": "patient"},
            "text": "Any chest pain?\nNo chest pain. I take lisinopril 10 mg daily.",
            "turns": [
                {"speaker": "ch_0", "start_ms": 0, "end_ms": 1500, "begin_offset": 0, "end_offset": 15},
                {"speaker": "ch_1", "role": "patient", "start_ms": 1600, "end_ms": 6000, "begin_offset": 16, "end_offset": 61}
            ],
            "entities": [
                {"id": "entity-0", "category": "MEDICAL_CONDITION", "type": "DX_NAME", "text": "chest pain",
                 "score": 0.9, "begin_offset": 4, "end_offset": 14, "speaker": "ch_0", "start_ms": 300, "turn": 0,
                 "traits": [{"name": "SYMPTOM", "score": 0.9}]},
                {"id": "entity-1", "category": "MEDICAL_CONDITION", "type": "DX_NAME", "text": "chest pain",
                 "score": 0.9, "begin_offset": 19, "end_offset": 29, "speaker": "ch_1", "start_ms": 1700, "turn": 1,
                 "traits": [{"name": "NEGATION", "score": 0.9}]},
                {"id": "entity-2", "category": "MEDICATION", "type": "GENERIC_NAME", "text": "lisinopril",
                 "score": 0.9, "begin_offset": 38, "end_offset": 48, "speaker": "ch_1", "role": "patient",
                 "start_ms": 3000, "turn": 1}
            ],
            "icd10cm": [
                {"id": "icd10cm-0", "category": "MEDICAL_CONDITION", "type": "DX_NAME", "text": "chest pain",
                 "score": 0.9, "begin_offset": 4, "end_offset": 14, "speaker": "ch_0", "start_ms": 300, "turn": 0,
                 "concepts": [{"code": "R07.9", "description": "Chest pain, unspecified", "score": 0.8}]}
            ],
            "rxnorm": [
                {"id": "rxnorm-0", "category": "MEDICATION", "type": "GENERIC_NAME", "text": "lisinopril",
                 "score": 0.9, "begin_offset": 38, "end_offset": 48, "speaker": "ch_1", "start_ms": 3000, "turn": 1,
                 "attributes": [
                    {"type": "DOSAGE", "text": "10 mg", "score": 0.9, "begin_offset": 49, "end_offset": 54},
                    {"type": "FREQUENCY", "text": "daily", "score": 0.9, "begin_offset": 55, "end_offset": 60}],
                 "concepts": [{"code": "29046", "description": "lisinopril", "score": 0.9}]}
            ],
            "requests": {"detect_entities_v2": 1, "infer_icd10cm": 1, "infer_rxnorm": 1},
            "characters_sent": {"detect_entities_v2": 61, "infer_icd10cm": 61, "infer_rxnorm": 61}
        }))
        .expect("a results document")
    }

    #[test]
    fn roles_stand_beside_the_speaker_labels() {
        let visit = visit(&document());
        assert_eq!(visit.speakers, vec!["ch_0 clinician", "ch_1 patient"]);
        assert_eq!(
            visit.turns[0].role, None,
            "the turn itself carries no role here"
        );
        assert_eq!(visit.turns[1].role.as_deref(), Some("patient"));
        let lisinopril = visit
            .findings
            .iter()
            .find(|f| f.text == "lisinopril")
            .unwrap();
        assert_eq!(lisinopril.speaker.as_deref(), Some("ch_1"));
        assert_eq!(lisinopril.role.as_deref(), Some("patient"));
    }

    #[test]
    fn findings_merge_the_three_passes_by_span() {
        let visit = visit(&document());
        assert_eq!(visit.findings.len(), 3);
        let pain = &visit.findings[0];
        assert_eq!(pain.icd10cm[0].0, "R07.9");
        assert!(!pain.negated);
        assert!(visit.findings[1].negated);
        let drug = &visit.findings[2];
        assert_eq!(drug.drug_codes[0].0, "29046");
        assert_eq!(drug.dose.as_deref(), Some("10 mg"));
        assert_eq!(drug.frequency.as_deref(), Some("daily"));
    }

    #[test]
    fn turns_are_cut_at_their_findings_and_keep_all_text() {
        let visit = visit(&document());
        let second = &visit.turns[1];
        let text: String = second
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) | Piece::Finding { text: t, .. } => t.as_str(),
            })
            .collect();
        assert_eq!(text, "No chest pain. I take lisinopril 10 mg daily.");
        let highlighted: Vec<usize> = second
            .pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Finding { index, .. } => Some(*index),
                Piece::Text(_) => None,
            })
            .collect();
        assert_eq!(highlighted, vec![1, 2]);
    }

    #[test]
    fn the_summary_lists_problems_medications_and_pertinent_negatives() {
        let summary = visit(&document()).summary;
        assert_eq!(summary.problems.len(), 1);
        assert_eq!(summary.problems[0].text, "chest pain");
        assert_eq!(summary.medications[0].name, "lisinopril");
        assert_eq!(summary.medications[0].dose.as_deref(), Some("10 mg"));
        assert_eq!(summary.negatives, vec![("chest pain".to_owned(), 1)]);
    }
}
