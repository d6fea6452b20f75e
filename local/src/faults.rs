//! Fault injection for the local runtime: wrappers that make a port fail a share of its
//! calls, retryably or permanently, so a run can prove that nothing is lost or doubled
//! under failure. (Queue redelivery is injected by `runtime::Faults`.)

use crate::transcriber::{SpeechToText, SttError};
use std::sync::Mutex;
use telepipe_events::results::{ClinicalEntity, EngineInfo};
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::ports::{ClinicalNlp, NlpApi};

/// Shares of calls to fail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRates {
    pub retryable: f64,
    pub permanent: f64,
}

/// What a draw decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    Pass,
    Retryable,
    Permanent,
}

/// A seeded source of failures, shared by the wrappers of one run.
pub struct Dice {
    rng: Mutex<fastrand::Rng>,
    rates: FailureRates,
}

impl Dice {
    pub fn new(seed: u64, rates: FailureRates) -> Self {
        Self {
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            rates,
        }
    }

    pub fn roll(&self) -> Draw {
        let x = self.rng.lock().unwrap_or_else(|p| p.into_inner()).f64();
        if x < self.rates.permanent {
            Draw::Permanent
        } else if x < self.rates.permanent + self.rates.retryable {
            Draw::Retryable
        } else {
            Draw::Pass
        }
    }
}

/// A clinical NLP engine that fails some calls.
pub struct FlakyNlp<N> {
    pub inner: N,
    pub dice: Dice,
}

impl<N: ClinicalNlp> ClinicalNlp for FlakyNlp<N> {
    async fn analyze(&self, api: NlpApi, text: &str) -> Result<Vec<ClinicalEntity>, PortError> {
        match self.dice.roll() {
            Draw::Pass => self.inner.analyze(api, text).await,
            Draw::Retryable => Err(PortError::new(
                PortErrorKind::Throttled,
                "injected",
                api.as_str(),
            )),
            Draw::Permanent => Err(PortError::new(
                PortErrorKind::InvalidRequest,
                "injected",
                api.as_str(),
            )),
        }
    }

    fn engine(&self) -> EngineInfo {
        self.inner.engine()
    }
}

/// A speech-to-text engine that fails some calls.
pub struct FlakyStt<E> {
    pub inner: E,
    pub dice: Dice,
}

impl<E: SpeechToText> SpeechToText for FlakyStt<E> {
    fn transcribe(
        &self,
        media: &[u8],
        media_format: &str,
        job_name: &str,
    ) -> Result<Vec<u8>, SttError> {
        match self.dice.roll() {
            Draw::Pass => self.inner.transcribe(media, media_format, job_name),
            Draw::Retryable => Err(SttError {
                retryable: true,
                reason: "injected_retryable".into(),
                detail: "injected".into(),
            }),
            Draw::Permanent => Err(SttError {
                retryable: false,
                reason: "injected_permanent".into(),
                detail: "injected".into(),
            }),
        }
    }
}
