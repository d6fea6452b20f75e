//! `ClinicalNlp` on the offline engine (`telepipe-nlp`): the same port Comprehend Medical
//! implements on AWS, so `clinical` runs unchanged.

use std::sync::Arc;
use telepipe_events::results::{ClinicalEntity, EngineInfo};
use telepipe_nlp::{Analysis, Engine};
use telepipe_workers::error::PortError;
use telepipe_workers::ports::{ClinicalNlp, NlpApi};

#[derive(Clone)]
pub struct OfflineNlp(pub Arc<Engine>);

impl ClinicalNlp for OfflineNlp {
    async fn analyze(&self, api: NlpApi, text: &str) -> Result<Vec<ClinicalEntity>, PortError> {
        let analysis = match api {
            NlpApi::DetectEntitiesV2 => Analysis::Entities,
            NlpApi::InferIcd10Cm => Analysis::Icd10Cm,
            NlpApi::InferRxNorm => Analysis::Drugs,
        };
        Ok(self.0.analyze(analysis, text))
    }

    fn engine(&self) -> EngineInfo {
        self.0.info()
    }
}
