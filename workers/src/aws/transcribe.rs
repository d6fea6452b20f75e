//! `Transcriber` on Amazon Transcribe Medical (batch jobs).

use super::{classify, AwsContext};
use crate::error::{PortError, PortErrorKind};
use crate::ports::{JobStart, JobState, MedicalJob, MedicalJobRequest, SpeakerMode, Transcriber};
use aws_sdk_transcribe::types::{
    LanguageCode, Media, MediaFormat, MedicalContentIdentificationType, MedicalTranscriptionJob,
    MedicalTranscriptionSetting, Specialty, TranscriptionJobStatus, Type,
};
use aws_sdk_transcribe::Client;

#[derive(Clone)]
pub struct TranscribeMedical {
    client: Client,
}

impl TranscribeMedical {
    pub fn new(context: &AwsContext) -> Self {
        Self {
            client: Client::new(&context.sdk),
        }
    }

    pub fn from_client(client: Client) -> Self {
        Self { client }
    }
}

impl Transcriber for TranscribeMedical {
    async fn start_medical_job(&self, request: &MedicalJobRequest) -> Result<JobStart, PortError> {
        let settings = match request.speakers {
            SpeakerMode::SpeakerLabels { max_speakers } => MedicalTranscriptionSetting::builder()
                .show_speaker_labels(true)
                .max_speaker_labels(i32::from(max_speakers)),
            SpeakerMode::ChannelIdentification => {
                MedicalTranscriptionSetting::builder().channel_identification(true)
            }
        }
        .set_vocabulary_name(request.vocabulary_name.clone())
        .build();
        let result = self
            .client
            .start_medical_transcription_job()
            .medical_transcription_job_name(&request.job_name)
            .language_code(LanguageCode::from(request.language_code.as_str()))
            .media_format(MediaFormat::from(request.media_format.as_str()))
            .media(Media::builder().media_file_uri(&request.media_uri).build())
            .output_bucket_name(&request.output_bucket)
            .output_key(&request.output_key)
            .set_output_encryption_kms_key_id(request.output_kms_key_id.clone())
            .settings(settings)
            .specialty(Specialty::from(request.specialty.as_str()))
            .r#type(Type::from(request.conversation_type.as_str()))
            .set_content_identification_type(
                request
                    .identify_phi
                    .then_some(MedicalContentIdentificationType::Phi),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(JobStart::Started),
            Err(err) => {
                let mut error = classify(&err, "transcribe", "StartMedicalTranscriptionJob");
                if let Some(modeled) = err.as_service_error() {
                    if modeled.is_conflict_exception() {
                        error.kind = PortErrorKind::AlreadyExists;
                    } else if modeled.is_limit_exceeded_exception() {
                        // Too many concurrent jobs (or requests): the pipeline's own throttle signal.
                        error.kind = PortErrorKind::QuotaExceeded;
                    } else if modeled.is_internal_failure_exception() {
                        error.kind = PortErrorKind::Unavailable;
                    } else if modeled.is_bad_request_exception() {
                        error.kind = PortErrorKind::InvalidRequest;
                    }
                }
                if error.kind == PortErrorKind::AlreadyExists {
                    Ok(JobStart::AlreadyExists)
                } else {
                    Err(error)
                }
            }
        }
    }

    async fn get_medical_job(&self, job_name: &str) -> Result<MedicalJob, PortError> {
        let output = self
            .client
            .get_medical_transcription_job()
            .medical_transcription_job_name(job_name)
            .send()
            .await
            .map_err(|err| {
                let mut error = classify(&err, "transcribe", "GetMedicalTranscriptionJob");
                if let Some(modeled) = err.as_service_error() {
                    // Transcribe answers a missing job with BadRequestException ("The
                    // requested job couldn't be found..."); the message is only matched, never kept.
                    let missing = modeled.is_bad_request_exception()
                        && modeled.meta().message().is_some_and(|m| {
                            let m = m.to_ascii_lowercase();
                            m.contains("couldn't be found")
                                || m.contains("could not be found")
                                || m.contains("not found")
                        });
                    if modeled.is_not_found_exception() || missing {
                        error.kind = PortErrorKind::NotFound;
                    } else if modeled.is_limit_exceeded_exception() {
                        error.kind = PortErrorKind::Throttled;
                    } else if modeled.is_internal_failure_exception() {
                        error.kind = PortErrorKind::Unavailable;
                    }
                }
                error
            })?;
        let job = output.medical_transcription_job().ok_or_else(|| {
            PortError::new(
                PortErrorKind::NotFound,
                "transcribe",
                "GetMedicalTranscriptionJob",
            )
        })?;
        Ok(describe(job))
    }
}

/// The job's state and, when every setting is present, the request that would start it again.
fn describe(job: &MedicalTranscriptionJob) -> MedicalJob {
    let state = match job.transcription_job_status() {
        Some(TranscriptionJobStatus::Completed) => JobState::Completed {
            transcript_uri: job
                .transcript()
                .and_then(|t| t.transcript_file_uri())
                .map(str::to_owned),
        },
        Some(TranscriptionJobStatus::Failed) => JobState::Failed {
            reason: job.failure_reason().unwrap_or_default().to_owned(),
        },
        Some(TranscriptionJobStatus::InProgress) => JobState::InProgress,
        _ => JobState::Queued,
    };
    let speakers = job.settings().map(|settings| {
        if settings.channel_identification() == Some(true) {
            SpeakerMode::ChannelIdentification
        } else {
            SpeakerMode::SpeakerLabels {
                max_speakers: settings
                    .max_speaker_labels()
                    .and_then(|n| u8::try_from(n).ok())
                    .unwrap_or(2),
            }
        }
    });
    let request = (|| {
        Some(MedicalJobRequest {
            job_name: job.medical_transcription_job_name()?.to_owned(),
            media_uri: job.media()?.media_file_uri()?.to_owned(),
            media_format: job.media_format()?.as_str().to_owned(),
            output_bucket: String::new(),
            output_key: String::new(),
            output_kms_key_id: None,
            specialty: job.specialty()?.as_str().to_owned(),
            conversation_type: job.r#type()?.as_str().to_owned(),
            speakers: speakers.unwrap_or(SpeakerMode::SpeakerLabels { max_speakers: 2 }),
            language_code: job.language_code()?.as_str().to_owned(),
            vocabulary_name: job
                .settings()
                .and_then(|s| s.vocabulary_name())
                .map(str::to_owned),
            identify_phi: job.content_identification_type()
                == Some(&MedicalContentIdentificationType::Phi),
        })
    })();
    MedicalJob { state, request }
}
