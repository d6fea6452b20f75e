//! `MediaPipelines` on the Amazon Chime SDK media pipelines API: tells a capture pipeline
//! from the others and asks for the concatenation of its audio.

use super::{classify, AwsContext};
use crate::error::PortError;
use crate::error::PortErrorKind;
use crate::ports::{
    CapturePipeline, Concatenation, ConcatenationRequest, MediaPipelineKind, MediaPipelines,
};
use aws_sdk_chimesdkmediapipelines::operation::create_media_concatenation_pipeline::CreateMediaConcatenationPipelineError;
use aws_sdk_chimesdkmediapipelines::operation::get_media_pipeline::GetMediaPipelineError;
use aws_sdk_chimesdkmediapipelines::types::{
    ArtifactsConcatenationConfiguration, ArtifactsConcatenationState,
    AudioArtifactsConcatenationState, AudioConcatenationConfiguration,
    ChimeSdkMeetingConcatenationConfiguration, CompositedVideoConcatenationConfiguration,
    ConcatenationSink, ConcatenationSinkType, ConcatenationSource, ConcatenationSourceType,
    ContentConcatenationConfiguration, DataChannelConcatenationConfiguration,
    MediaCapturePipelineSourceConfiguration, MeetingEventsConcatenationConfiguration,
    S3BucketSinkConfiguration, TranscriptionMessagesConcatenationConfiguration,
    VideoConcatenationConfiguration,
};
use aws_sdk_chimesdkmediapipelines::Client;

/// The kind a modeled Chime error names: throttling, 5xx and `ServiceUnavailable` are
/// retryable; `BadRequest`, `NotFound`, `Forbidden` and `Unauthorized` are not (the stage
/// keeps the kind as the dead letter's reason).
fn get_error_kind(err: &GetMediaPipelineError) -> Option<PortErrorKind> {
    use GetMediaPipelineError as E;
    Some(match err {
        E::NotFoundException(_) => PortErrorKind::NotFound,
        E::BadRequestException(_) => PortErrorKind::InvalidRequest,
        E::ForbiddenException(_) | E::UnauthorizedClientException(_) => PortErrorKind::AccessDenied,
        E::ThrottledClientException(_) => PortErrorKind::Throttled,
        E::ServiceFailureException(_) | E::ServiceUnavailableException(_) => {
            PortErrorKind::Unavailable
        }
        _ => return None,
    })
}

fn create_error_kind(err: &CreateMediaConcatenationPipelineError) -> Option<PortErrorKind> {
    use CreateMediaConcatenationPipelineError as E;
    Some(match err {
        E::BadRequestException(_) => PortErrorKind::InvalidRequest,
        E::ForbiddenException(_) | E::UnauthorizedClientException(_) => PortErrorKind::AccessDenied,
        E::ResourceLimitExceededException(_) => PortErrorKind::QuotaExceeded,
        E::ThrottledClientException(_) => PortErrorKind::Throttled,
        E::ServiceFailureException(_) | E::ServiceUnavailableException(_) => {
            PortErrorKind::Unavailable
        }
        _ => return None,
    })
}

#[derive(Clone)]
pub struct ChimeMediaPipelines {
    client: Client,
}

impl ChimeMediaPipelines {
    pub fn new(context: &AwsContext) -> Self {
        Self {
            client: Client::new(&context.sdk),
        }
    }

    pub fn from_client(client: Client) -> Self {
        Self { client }
    }
}

/// `arn:aws:s3:::bucket/folder` without the folder's trailing slash, as the API's sink
/// destinations are written.
fn s3_destination(bucket: &str, folder: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{}", folder.trim_end_matches('/'))
}

/// Audio only: telepipe transcribes speech, and every other artifact would be one more
/// copy of the visit to protect and delete.
fn audio_only() -> Result<ArtifactsConcatenationConfiguration, PortError> {
    let invalid = |_| {
        PortError::new(
            PortErrorKind::InvalidRequest,
            "chime",
            "CreateMediaConcatenationPipeline",
        )
    };
    let off = ArtifactsConcatenationState::Disabled;
    Ok(ArtifactsConcatenationConfiguration::builder()
        .audio(
            AudioConcatenationConfiguration::builder()
                .state(AudioArtifactsConcatenationState::Enabled)
                .build()
                .map_err(invalid)?,
        )
        .video(
            VideoConcatenationConfiguration::builder()
                .state(off.clone())
                .build()
                .map_err(invalid)?,
        )
        .content(
            ContentConcatenationConfiguration::builder()
                .state(off.clone())
                .build()
                .map_err(invalid)?,
        )
        .data_channel(
            DataChannelConcatenationConfiguration::builder()
                .state(off.clone())
                .build()
                .map_err(invalid)?,
        )
        .transcription_messages(
            TranscriptionMessagesConcatenationConfiguration::builder()
                .state(off.clone())
                .build()
                .map_err(invalid)?,
        )
        .meeting_events(
            MeetingEventsConcatenationConfiguration::builder()
                .state(off.clone())
                .build()
                .map_err(invalid)?,
        )
        .composited_video(
            CompositedVideoConcatenationConfiguration::builder()
                .state(off)
                .build()
                .map_err(invalid)?,
        )
        .build())
}

impl MediaPipelines for ChimeMediaPipelines {
    async fn get_media_pipeline(
        &self,
        media_pipeline_id: &str,
    ) -> Result<MediaPipelineKind, PortError> {
        let output = self
            .client
            .get_media_pipeline()
            .media_pipeline_id(media_pipeline_id)
            .send()
            .await
            .map_err(|err| {
                let mut error = classify(&err, "chime", "GetMediaPipeline");
                if let Some(kind) = err.as_service_error().and_then(get_error_kind) {
                    error.kind = kind;
                }
                error
            })?;
        let Some(pipeline) = output.media_pipeline() else {
            return Ok(MediaPipelineKind::Other);
        };
        // `MediaPipeline` sets exactly one member, naming the pipeline's kind.
        if let Some(capture) = pipeline.media_capture_pipeline() {
            let arn = capture.media_pipeline_arn().unwrap_or_default().to_owned();
            return Ok(MediaPipelineKind::Capture(CapturePipeline {
                arn,
                sink_arn: capture.sink_arn().map(str::to_owned),
                kms_key_id: capture
                    .sse_aws_key_management_params()
                    .map(|params| params.aws_kms_key_id().to_owned()),
            }));
        }
        if pipeline.media_concatenation_pipeline().is_some() {
            return Ok(MediaPipelineKind::Concatenation);
        }
        Ok(MediaPipelineKind::Other)
    }

    async fn create_concatenation(
        &self,
        request: &ConcatenationRequest,
    ) -> Result<Concatenation, PortError> {
        const OPERATION: &str = "CreateMediaConcatenationPipeline";
        let invalid = |_| PortError::new(PortErrorKind::InvalidRequest, "chime", OPERATION);
        let source = ConcatenationSource::builder()
            .r#type(ConcatenationSourceType::MediaCapturePipeline)
            .media_capture_pipeline_source_configuration(
                MediaCapturePipelineSourceConfiguration::builder()
                    .media_pipeline_arn(&request.capture_pipeline_arn)
                    .chime_sdk_meeting_configuration(
                        ChimeSdkMeetingConcatenationConfiguration::builder()
                            .artifacts_configuration(audio_only()?)
                            .build(),
                    )
                    .build()
                    .map_err(invalid)?,
            )
            .build()
            .map_err(invalid)?;
        let sink = ConcatenationSink::builder()
            .r#type(ConcatenationSinkType::S3Bucket)
            .s3_bucket_sink_configuration(
                S3BucketSinkConfiguration::builder()
                    .destination(s3_destination(&request.sink_bucket, &request.sink_folder))
                    .build()
                    .map_err(invalid)?,
            )
            .build()
            .map_err(invalid)?;
        // The API takes no KMS parameter for concatenation (sources, sinks, token, tags):
        // the joined file is encrypted by the recordings bucket's default SSE-KMS key.
        let output = self
            .client
            .create_media_concatenation_pipeline()
            .sources(source)
            .sinks(sink)
            .client_request_token(&request.client_request_token)
            .send()
            .await
            .map_err(|err| {
                let mut error = classify(&err, "chime", OPERATION);
                if let Some(kind) = err.as_service_error().and_then(create_error_kind) {
                    error.kind = kind;
                }
                error
            })?;
        let id = output
            .media_concatenation_pipeline()
            .and_then(|p| p.media_pipeline_id())
            .unwrap_or_default()
            .to_owned();
        Ok(Concatenation::Started(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_destinations_are_bucket_arns_with_the_folder() {
        assert_eq!(
            s3_destination("rec", "recordings/visit-1/"),
            "arn:aws:s3:::rec/recordings/visit-1"
        );
    }

    #[test]
    fn only_audio_is_concatenated() {
        let config = audio_only().unwrap();
        assert_eq!(
            config.audio().unwrap().state(),
            &AudioArtifactsConcatenationState::Enabled
        );
        for state in [
            config.video().map(|c| c.state()),
            config.content().map(|c| c.state()),
            config.data_channel().map(|c| c.state()),
            config.transcription_messages().map(|c| c.state()),
            config.meeting_events().map(|c| c.state()),
            config.composited_video().map(|c| c.state()),
        ] {
            assert_eq!(state, Some(&ArtifactsConcatenationState::Disabled));
        }
    }
}
