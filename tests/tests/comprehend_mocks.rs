//! The Comprehend Medical adapter against recorded responses (aws-smithy-mocks: moto has
//! no Comprehend Medical): field mapping of all three APIs, throttling then success,
//! a 503 sequence, and errors that must not be retried.

use aws_sdk_comprehendmedical::config::retry::RetryConfig;
use aws_sdk_comprehendmedical::operation::detect_entities_v2::{
    DetectEntitiesV2Error, DetectEntitiesV2Output,
};
use aws_sdk_comprehendmedical::operation::infer_icd10_cm::{InferICD10CMError, InferIcd10CmOutput};
use aws_sdk_comprehendmedical::operation::infer_rx_norm::InferRxNormOutput;
use aws_sdk_comprehendmedical::types::error::{InvalidRequestException, TooManyRequestsException};
use aws_sdk_comprehendmedical::types::{
    Attribute, AttributeName, Entity, EntitySubType, EntityType, Icd10CmConcept, Icd10CmEntity,
    Icd10CmEntityCategory, Icd10CmEntityType, RxNormConcept, RxNormEntity, RxNormEntityCategory,
    RxNormEntityType, Trait,
};
use aws_sdk_comprehendmedical::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use std::time::Duration;
use telepipe_workers::aws::ComprehendMedicalNlp;
use telepipe_workers::clinical::analyze;
use telepipe_workers::clinical::ClinicalConfig;
use telepipe_workers::config::Env;
use telepipe_workers::error::PortErrorKind;
use telepipe_workers::ports::{ClinicalNlp, NlpApi};

/// A client as production builds it (SDK retries off) over the given rules.
fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_comprehendmedical, RuleMode::MatchAny, rules, |c| c
        .retry_config(RetryConfig::disabled()))
}

fn config() -> ClinicalConfig {
    let mut cfg =
        ClinicalConfig::from_env(&Env::from_pairs(&[("TELEPIPE_RESULTS_BUCKET", "r")])).unwrap();
    cfg.nlp_retry.initial_interval = Duration::from_millis(1);
    cfg
}

fn no_entities() -> DetectEntitiesV2Output {
    DetectEntitiesV2Output::builder()
        .set_entities(Some(Vec::new()))
        .model_version("2.0")
        .build()
        .unwrap()
}

fn no_conditions() -> InferIcd10CmOutput {
    InferIcd10CmOutput::builder()
        .set_entities(Some(Vec::new()))
        .build()
        .unwrap()
}

fn no_drugs() -> InferRxNormOutput {
    InferRxNormOutput::builder()
        .set_entities(Some(Vec::new()))
        .build()
        .unwrap()
}

const TEXT: &str = "I take aspirin 81 mg daily.";

fn aspirin_entity() -> Entity {
    Entity::builder()
        .id(0)
        .begin_offset(7)
        .end_offset(14)
        .score(0.99)
        .text("aspirin")
        .category(EntityType::Medication)
        .r#type(EntitySubType::GenericName)
        .attributes(
            Attribute::builder()
                .r#type(EntitySubType::Dosage)
                .score(0.9)
                .relationship_score(0.95)
                .begin_offset(15)
                .end_offset(20)
                .text("81 mg")
                .category(EntityType::Medication)
                .build(),
        )
        .traits(
            Trait::builder()
                .name(AttributeName::Negation)
                .score(0.1)
                .build(),
        )
        .build()
}

#[tokio::test]
async fn detect_entities_maps_every_field() {
    let rule = mock!(Client::detect_entities_v2)
        .match_requests(|r| r.text() == Some(TEXT))
        .then_output(|| {
            DetectEntitiesV2Output::builder()
                .entities(aspirin_entity())
                .model_version("2.0")
                .build()
                .unwrap()
        });
    let nlp = ComprehendMedicalNlp::from_client(client(&[&rule]));
    let entities = nlp.analyze(NlpApi::DetectEntitiesV2, TEXT).await.unwrap();
    assert_eq!(entities.len(), 1);
    let e = &entities[0];
    assert_eq!(
        (e.category.as_str(), e.kind.as_str(), e.text.as_str()),
        ("MEDICATION", "GENERIC_NAME", "aspirin")
    );
    assert_eq!((e.begin_offset, e.end_offset), (7, 14));
    assert_eq!(e.attributes[0].kind, "DOSAGE");
    assert_eq!(e.attributes[0].text, "81 mg");
    assert_eq!(
        (e.attributes[0].begin_offset, e.attributes[0].end_offset),
        (15, 20)
    );
    assert_eq!(e.traits[0].name, "NEGATION");
    assert_eq!(nlp.engine().drug_code_system, "RxNorm");
}

#[tokio::test]
async fn icd10_and_rxnorm_concepts_are_kept() {
    let icd = mock!(Client::infer_icd10_cm).then_output(|| {
        InferIcd10CmOutput::builder()
            .entities(
                Icd10CmEntity::builder()
                    .text("hypertension")
                    .begin_offset(0)
                    .end_offset(12)
                    .score(0.9)
                    .category(Icd10CmEntityCategory::MedicalCondition)
                    .r#type(Icd10CmEntityType::DxName)
                    .icd10_cm_concepts(
                        Icd10CmConcept::builder()
                            .code("I10")
                            .description("Essential (primary) hypertension")
                            .score(0.8)
                            .build(),
                    )
                    .build(),
            )
            .build()
            .unwrap()
    });
    let rx = mock!(Client::infer_rx_norm).then_output(|| {
        InferRxNormOutput::builder()
            .entities(
                RxNormEntity::builder()
                    .text("aspirin")
                    .begin_offset(0)
                    .end_offset(7)
                    .score(0.9)
                    .category(RxNormEntityCategory::Medication)
                    .r#type(RxNormEntityType::GenericName)
                    .rx_norm_concepts(
                        RxNormConcept::builder()
                            .code("1191")
                            .description("aspirin")
                            .score(0.9)
                            .build(),
                    )
                    .build(),
            )
            .build()
            .unwrap()
    });
    let nlp = ComprehendMedicalNlp::from_client(client(&[&icd, &rx]));
    let conditions = nlp
        .analyze(NlpApi::InferIcd10Cm, "hypertension")
        .await
        .unwrap();
    assert_eq!(conditions[0].concepts[0].code, "I10");
    assert_eq!(conditions[0].category, "MEDICAL_CONDITION");
    let drugs = nlp.analyze(NlpApi::InferRxNorm, "aspirin").await.unwrap();
    assert_eq!(drugs[0].concepts[0].code, "1191");
}

#[tokio::test]
async fn throttling_then_success_is_retried_by_the_stage_policy() {
    let detect = mock!(Client::detect_entities_v2)
        .sequence()
        .error(|| {
            DetectEntitiesV2Error::TooManyRequestsException(
                TooManyRequestsException::builder().build(),
            )
        })
        .times(2)
        .output(|| {
            DetectEntitiesV2Output::builder()
                .entities(aspirin_entity())
                .model_version("2.0")
                .build()
                .unwrap()
        })
        .build();
    let icd = mock!(Client::infer_icd10_cm).then_output(no_conditions);
    let rx = mock!(Client::infer_rx_norm).then_output(no_drugs);
    let nlp = ComprehendMedicalNlp::from_client(client(&[&detect, &icd, &rx]));
    let analysis = analyze(&nlp, TEXT, &config()).await.unwrap();
    assert_eq!(detect.num_calls(), 3, "two throttles, then the answer");
    assert_eq!(
        analysis.by_api[&NlpApi::DetectEntitiesV2][0].text,
        "aspirin"
    );
    assert_eq!(
        analysis.requests.detect_entities_v2, 1,
        "requests count chunks, not attempts"
    );
}

#[tokio::test]
async fn a_503_sequence_is_retried_then_surfaces_as_retryable() {
    let unavailable = mock!(Client::infer_icd10_cm)
        .sequence()
        .http_status(503, None)
        .times(3)
        .output(no_conditions);
    let unavailable = unavailable.build();
    let nlp = ComprehendMedicalNlp::from_client(client(&[&unavailable]));
    let err = nlp
        .analyze(NlpApi::InferIcd10Cm, "fever")
        .await
        .unwrap_err();
    assert_eq!(err.kind, PortErrorKind::Unavailable);
    assert_eq!(err.status, Some(503));

    let detect = mock!(Client::detect_entities_v2).then_output(no_entities);
    let rx = mock!(Client::infer_rx_norm).then_output(no_drugs);
    let always_503 = mock!(Client::infer_icd10_cm)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let nlp = ComprehendMedicalNlp::from_client(client(&[&detect, &rx, &always_503]));
    let err = analyze(&nlp, "fever", &config()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        always_503.num_calls(),
        config().nlp_retry.max_attempts as usize
    );
}

#[tokio::test]
async fn invalid_requests_are_not_retried() {
    let invalid = mock!(Client::infer_icd10_cm).then_error(|| {
        InferICD10CMError::InvalidRequestException(InvalidRequestException::builder().build())
    });
    let detect = mock!(Client::detect_entities_v2).then_output(no_entities);
    let rx = mock!(Client::infer_rx_norm).then_output(no_drugs);
    let nlp = ComprehendMedicalNlp::from_client(client(&[&invalid, &detect, &rx]));
    let err = analyze(&nlp, "fever", &config()).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(invalid.num_calls(), 1);
}
