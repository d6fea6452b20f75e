//! `ClinicalNlp` on Amazon Comprehend Medical: DetectEntitiesV2, InferICD10CM, InferRxNorm.
//!
//! The SDK's own retries are turned off: the stage's retry policy (jittered, bounded)
//! is the single place throttling is retried, so attempts do not multiply.

use super::{classify, AwsContext};
use crate::error::{PortError, PortErrorKind};
use crate::ports::{ClinicalNlp, NlpApi};
use aws_sdk_comprehendmedical::config::retry::RetryConfig;
use aws_sdk_comprehendmedical::Client;
use telepipe_events::results::{ClinicalEntity, Concept, EngineInfo, EntityAttribute, EntityTrait};

#[derive(Clone)]
pub struct ComprehendMedicalNlp {
    client: Client,
}

impl ComprehendMedicalNlp {
    pub fn new(context: &AwsContext) -> Self {
        let config = aws_sdk_comprehendmedical::config::Builder::from(&context.sdk)
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }

    pub fn from_client(client: Client) -> Self {
        Self { client }
    }
}

/// Classifies by the modeled error variant first (exact even when a response carries no
/// error code), then by code and status.
macro_rules! classify_modeled {
    ($err:expr, $operation:literal) => {{
        let err = $err;
        let modeled = err.as_service_error().and_then(|e| {
            if e.is_too_many_requests_exception() {
                Some(PortErrorKind::Throttled)
            } else if e.is_service_unavailable_exception() || e.is_internal_server_exception() {
                Some(PortErrorKind::Unavailable)
            } else if e.is_invalid_request_exception()
                || e.is_invalid_encoding_exception()
                || e.is_text_size_limit_exceeded_exception()
            {
                Some(PortErrorKind::InvalidRequest)
            } else {
                None
            }
        });
        let mut port_error = classify(&err, "comprehendmedical", $operation);
        if let Some(kind) = modeled {
            port_error.kind = kind;
        }
        port_error
    }};
}

fn offset(value: Option<i32>) -> u32 {
    value.unwrap_or(0).max(0) as u32
}

macro_rules! traits {
    ($traits:expr) => {
        $traits
            .iter()
            .map(|t| EntityTrait {
                name: t.name().map(|n| n.as_str().to_owned()).unwrap_or_default(),
                score: t.score().unwrap_or(0.0),
            })
            .collect()
    };
}

macro_rules! concepts {
    ($concepts:expr) => {
        $concepts
            .iter()
            .map(|c| Concept {
                code: c.code().unwrap_or_default().to_owned(),
                description: c.description().unwrap_or_default().to_owned(),
                score: c.score().unwrap_or(0.0),
            })
            .collect()
    };
}

/// Maps any of the three SDK entity shapes; `$attribute` maps one attribute.
macro_rules! entity {
    ($e:expr, $attribute:expr, $concepts:expr) => {
        ClinicalEntity {
            id: String::new(),
            category: $e
                .category()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            kind: $e
                .r#type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            text: $e.text().unwrap_or_default().to_owned(),
            score: $e.score().unwrap_or(0.0),
            begin_offset: offset($e.begin_offset()),
            end_offset: offset($e.end_offset()),
            speaker: None,
            role: None,
            start_ms: None,
            end_ms: None,
            turn: None,
            traits: traits!($e.traits()),
            attributes: $e.attributes().iter().map($attribute).collect(),
            concepts: $concepts,
        }
    };
}

macro_rules! attribute {
    ($a:expr, $category:expr, $relationship:expr) => {
        EntityAttribute {
            kind: $a
                .r#type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            category: $category,
            text: $a.text().unwrap_or_default().to_owned(),
            score: $a.score().unwrap_or(0.0),
            relationship_score: $a.relationship_score(),
            relationship_type: $relationship,
            begin_offset: offset($a.begin_offset()),
            end_offset: offset($a.end_offset()),
            traits: traits!($a.traits()),
        }
    };
}

impl ClinicalNlp for ComprehendMedicalNlp {
    async fn analyze(&self, api: NlpApi, text: &str) -> Result<Vec<ClinicalEntity>, PortError> {
        match api {
            NlpApi::DetectEntitiesV2 => {
                let output = self
                    .client
                    .detect_entities_v2()
                    .text(text)
                    .send()
                    .await
                    .map_err(|e| classify_modeled!(e, "DetectEntitiesV2"))?;
                Ok(output
                    .entities()
                    .iter()
                    .map(|e| {
                        entity!(
                            e,
                            |a: &aws_sdk_comprehendmedical::types::Attribute| attribute!(
                                a,
                                a.category().map(|c| c.as_str().to_owned()),
                                a.relationship_type().map(|r| r.as_str().to_owned())
                            ),
                            Vec::new()
                        )
                    })
                    .collect())
            }
            NlpApi::InferIcd10Cm => {
                let output = self
                    .client
                    .infer_icd10_cm()
                    .text(text)
                    .send()
                    .await
                    .map_err(|e| classify_modeled!(e, "InferICD10CM"))?;
                Ok(output
                    .entities()
                    .iter()
                    .map(|e| {
                        entity!(
                            e,
                            |a: &aws_sdk_comprehendmedical::types::Icd10CmAttribute| attribute!(
                                a,
                                a.category().map(|c| c.as_str().to_owned()),
                                a.relationship_type().map(|r| r.as_str().to_owned())
                            ),
                            concepts!(e.icd10_cm_concepts())
                        )
                    })
                    .collect())
            }
            NlpApi::InferRxNorm => {
                let output = self
                    .client
                    .infer_rx_norm()
                    .text(text)
                    .send()
                    .await
                    .map_err(|e| classify_modeled!(e, "InferRxNorm"))?;
                Ok(output
                    .entities()
                    .iter()
                    .map(|e| {
                        entity!(
                            e,
                            |a: &aws_sdk_comprehendmedical::types::RxNormAttribute| attribute!(
                                a, None, None
                            ),
                            concepts!(e.rx_norm_concepts())
                        )
                    })
                    .collect())
            }
        }
    }

    fn engine(&self) -> EngineInfo {
        EngineInfo {
            name: "amazon-comprehend-medical".to_owned(),
            drug_code_system: "RxNorm".to_owned(),
        }
    }
}
