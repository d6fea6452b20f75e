//! The results document `clinical` writes per transcript: the text it analysed, its
//! speaker turns, and every entity with offsets into that text, speaker and audio time.
//!
//! This document holds PHI and lives only in the (KMS-encrypted) results bucket.
//! It is deterministic: the same transcript and the same engine answers give the same bytes.

use crate::pipeline::RequestCounts;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResultsDocument {
    pub schema_version: u32,
    pub session_id: String,
    pub job_name: String,
    pub transcript: TranscriptSource,
    pub engine: EngineInfo,
    /// How speakers were told apart: `speaker_labels`, `channel_labels` or `none`.
    pub labelling: Labelling,
    pub speakers: Vec<String>,
    /// Who a speaker label is, where the conversation makes it clear (questions,
    /// instructions, prescribing language against first-person symptoms): raw label →
    /// `clinician` or `patient`. Labels the content leaves unclear are absent; absent or
    /// empty when no role is clear. Inferred from the words alone, so a hint, not identity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub speaker_roles: BTreeMap<String, SpeakerRole>,
    pub duration_ms: u64,
    /// The analysed text: one line per speaker turn, no speaker prefixes. Offsets below are
    /// 0-based code-point offsets into this string.
    pub text: String,
    pub turns: Vec<Turn>,
    /// DetectEntitiesV2 entities.
    pub entities: Vec<ClinicalEntity>,
    /// InferICD10CM entities with their ICD-10-CM concepts.
    pub icd10cm: Vec<ClinicalEntity>,
    /// InferRxNorm entities with their drug concepts.
    pub rxnorm: Vec<ClinicalEntity>,
    pub requests: RequestCounts,
    /// Characters sent per API, the unit Comprehend Medical bills by.
    pub characters_sent: CharacterCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptSource {
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EngineInfo {
    /// `amazon-comprehend-medical` or the name of an offline engine.
    pub name: String,
    /// Code system of `rxnorm[].concepts` (`RxNorm`, or e.g. `DrugBank` offline).
    pub drug_code_system: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Labelling {
    SpeakerLabels,
    ChannelLabels,
    None,
}

/// The part a speaker plays in the visit, inferred from what they say.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SpeakerRole {
    Clinician,
    Patient,
}

impl ResultsDocument {
    /// Each speaker label with its role beside it, when there is one ("spk_0 clinician").
    pub fn speakers_with_roles(&self) -> Vec<String> {
        self.speakers
            .iter()
            .map(|label| match self.speaker_roles.get(label) {
                Some(role) => format!("{label} {}", role.as_str()),
                None => label.clone(),
            })
            .collect()
    }
}

impl SpeakerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clinician => "clinician",
            Self::Patient => "patient",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CharacterCounts {
    pub detect_entities_v2: u64,
    pub infer_icd10cm: u64,
    pub infer_rxnorm: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Turn {
    pub speaker: String,
    /// `speaker_roles[speaker]`, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<SpeakerRole>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub begin_offset: u32,
    pub end_offset: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClinicalEntity {
    /// Stable within the document: `{api}-{n}` in offset order.
    pub id: String,
    pub category: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub score: f32,
    pub begin_offset: u32,
    pub end_offset: u32,
    /// Speaker of the words the entity spans (the first word's, if it spans a turn change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    /// `speaker_roles[speaker]`, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<SpeakerRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<EntityTrait>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<EntityAttribute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concepts: Vec<Concept>,
}

impl ClinicalEntity {
    /// An entity as an engine reports it: offsets relative to the text it was given, no
    /// id, speaker, role, times, traits, attributes or concepts yet.
    pub fn found(
        category: &str,
        kind: &str,
        text: &str,
        score: f32,
        begin_offset: u32,
        end_offset: u32,
    ) -> Self {
        Self {
            id: String::new(),
            category: category.to_owned(),
            kind: kind.to_owned(),
            text: text.to_owned(),
            score,
            begin_offset,
            end_offset,
            speaker: None,
            role: None,
            start_ms: None,
            end_ms: None,
            turn: None,
            traits: Vec::new(),
            attributes: Vec::new(),
            concepts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntityTrait {
    pub name: String,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EntityAttribute {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub text: String,
    pub score: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship_score: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship_type: Option<String>,
    pub begin_offset: u32,
    pub end_offset: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<EntityTrait>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Concept {
    pub code: String,
    pub description: String,
    pub score: f32,
}
