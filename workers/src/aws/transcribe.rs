//! `Transcriber` on Amazon Transcribe Medical (batch jobs).

use super::{classify, AwsContext};
use crate::error::{PortError, PortErrorKind};
use crate::ports::{JobStart, MedicalJobRequest, SpeakerMode, Transcriber};
use aws_sdk_transcribe::types::{
    LanguageCode, Media, MediaFormat, MedicalTranscriptionSetting, Specialty, Type,
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
}
