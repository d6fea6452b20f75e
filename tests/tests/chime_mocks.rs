//! The Chime SDK media pipelines adapter with the real SDK client over aws-smithy-mocks
//! (moto has no media pipelines): the request `CreateMediaConcatenationPipeline` is sent
//! with, the idempotency token, how `GetMediaPipeline` answers are read, and every error
//! class, then the capture stage end to end over the mocked client.

use aws_sdk_chimesdkmediapipelines::config::retry::RetryConfig;
use aws_sdk_chimesdkmediapipelines::operation::create_media_concatenation_pipeline::{
    CreateMediaConcatenationPipelineError, CreateMediaConcatenationPipelineOutput,
};
use aws_sdk_chimesdkmediapipelines::operation::get_media_pipeline::{
    GetMediaPipelineError, GetMediaPipelineOutput,
};
use aws_sdk_chimesdkmediapipelines::types::error::{
    BadRequestException, ForbiddenException, NotFoundException, ServiceUnavailableException,
    ThrottledClientException,
};
use aws_sdk_chimesdkmediapipelines::types::{
    ArtifactsConcatenationState, AudioArtifactsConcatenationState, ConcatenationSinkType,
    ConcatenationSourceType, MediaCapturePipeline, MediaConcatenationPipeline, MediaPipeline,
    MediaStreamPipeline, SseAwsKeyManagementParams,
};
use aws_sdk_chimesdkmediapipelines::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use telepipe_workers::aws::ChimeMediaPipelines;
use telepipe_workers::capture::CaptureConfig;
use telepipe_workers::capture::{handle_message, CaptureOutcome, CapturePorts};
use telepipe_workers::config::Env;
use telepipe_workers::error::PortErrorKind;
use telepipe_workers::memory::{MemoryAudit, MemoryEvents, MemoryStore};
use telepipe_workers::ports::{
    CapturePipeline, Concatenation, ConcatenationRequest, MediaPipelineKind, MediaPipelines,
};

const CAPTURE_ID: &str = "e40ee45e-2ed1-408e-9156-f52b8208a491";
const CAPTURE_ARN: &str =
    "arn:aws:chime:us-east-1:111122223333:media-pipeline/e40ee45e-2ed1-408e-9156-f52b8208a491";
const CONCAT_ID: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

fn client(rules: &[&Rule]) -> Client {
    mock_client!(
        aws_sdk_chimesdkmediapipelines,
        RuleMode::MatchAny,
        rules,
        |c| c.retry_config(RetryConfig::disabled())
    )
}

fn capture_output() -> GetMediaPipelineOutput {
    GetMediaPipelineOutput::builder()
        .media_pipeline(
            MediaPipeline::builder()
                .media_capture_pipeline(
                    MediaCapturePipeline::builder()
                        .media_pipeline_id(CAPTURE_ID)
                        .media_pipeline_arn(CAPTURE_ARN)
                        .sink_arn("arn:aws:s3:::rec/captures/visit-1")
                        .sse_aws_key_management_params(
                            SseAwsKeyManagementParams::builder()
                                .aws_kms_key_id("alias/telepipe")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

fn concatenation_output() -> CreateMediaConcatenationPipelineOutput {
    CreateMediaConcatenationPipelineOutput::builder()
        .media_concatenation_pipeline(
            MediaConcatenationPipeline::builder()
                .media_pipeline_id(CONCAT_ID)
                .build(),
        )
        .build()
}

fn request() -> ConcatenationRequest {
    ConcatenationRequest {
        client_request_token: format!("telepipe-{CAPTURE_ID}"),
        capture_pipeline_arn: CAPTURE_ARN.into(),
        capture_bucket: "rec".into(),
        capture_folder: "captures/visit-1/".into(),
        sink_bucket: "rec".into(),
        sink_folder: "recordings/visit-1/".into(),
    }
}

#[tokio::test]
async fn get_media_pipeline_tells_captures_from_other_pipelines() {
    let capture = mock!(Client::get_media_pipeline)
        .match_requests(|r| r.media_pipeline_id() == Some(CAPTURE_ID))
        .then_output(capture_output);
    let concatenation = mock!(Client::get_media_pipeline)
        .match_requests(|r| r.media_pipeline_id() == Some(CONCAT_ID))
        .then_output(|| {
            GetMediaPipelineOutput::builder()
                .media_pipeline(
                    MediaPipeline::builder()
                        .media_concatenation_pipeline(
                            MediaConcatenationPipeline::builder()
                                .media_pipeline_id(CONCAT_ID)
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let stream = mock!(Client::get_media_pipeline)
        .match_requests(|r| r.media_pipeline_id() == Some("stream"))
        .then_output(|| {
            GetMediaPipelineOutput::builder()
                .media_pipeline(
                    MediaPipeline::builder()
                        .media_stream_pipeline(MediaStreamPipeline::builder().build())
                        .build(),
                )
                .build()
        });
    let gone = mock!(Client::get_media_pipeline)
        .match_requests(|r| r.media_pipeline_id() == Some("gone"))
        .then_error(|| {
            GetMediaPipelineError::NotFoundException(NotFoundException::builder().build())
        });
    let pipelines =
        ChimeMediaPipelines::from_client(client(&[&capture, &concatenation, &stream, &gone]));

    assert_eq!(
        pipelines.get_media_pipeline(CAPTURE_ID).await.unwrap(),
        MediaPipelineKind::Capture(CapturePipeline {
            arn: CAPTURE_ARN.into(),
            sink_arn: Some("arn:aws:s3:::rec/captures/visit-1".into()),
            kms_key_id: Some("alias/telepipe".into()),
        })
    );
    assert_eq!(
        pipelines.get_media_pipeline(CONCAT_ID).await.unwrap(),
        MediaPipelineKind::Concatenation
    );
    assert_eq!(
        pipelines.get_media_pipeline("stream").await.unwrap(),
        MediaPipelineKind::Other
    );
    let err = pipelines.get_media_pipeline("gone").await.unwrap_err();
    assert_eq!(err.kind, PortErrorKind::NotFound);
}

#[tokio::test]
async fn the_concatenation_joins_audio_only_into_the_session_recordings_folder() {
    let create = mock!(Client::create_media_concatenation_pipeline)
        .match_requests(|r| {
            let token_ok = r.client_request_token() == Some(&format!("telepipe-{CAPTURE_ID}"));
            let source = &r.sources()[0];
            let config = source
                .media_capture_pipeline_source_configuration()
                .unwrap();
            let artifacts = config
                .chime_sdk_meeting_configuration()
                .and_then(|c| c.artifacts_configuration())
                .unwrap();
            let others_off = [
                artifacts.video().map(|c| c.state()),
                artifacts.content().map(|c| c.state()),
                artifacts.data_channel().map(|c| c.state()),
                artifacts.transcription_messages().map(|c| c.state()),
                artifacts.meeting_events().map(|c| c.state()),
                artifacts.composited_video().map(|c| c.state()),
            ]
            .iter()
            .all(|s| *s == Some(&ArtifactsConcatenationState::Disabled));
            let sink = &r.sinks()[0];
            token_ok
                && r.sources().len() == 1
                && source.r#type() == &ConcatenationSourceType::MediaCapturePipeline
                && config.media_pipeline_arn() == CAPTURE_ARN
                && artifacts.audio().map(|a| a.state())
                    == Some(&AudioArtifactsConcatenationState::Enabled)
                && others_off
                && r.sinks().len() == 1
                && sink.r#type() == &ConcatenationSinkType::S3Bucket
                && sink.s3_bucket_sink_configuration().map(|s| s.destination())
                    == Some("arn:aws:s3:::rec/recordings/visit-1")
        })
        .then_output(concatenation_output);
    let pipelines = ChimeMediaPipelines::from_client(client(&[&create]));
    assert_eq!(
        pipelines.create_concatenation(&request()).await.unwrap(),
        Concatenation::Started(CONCAT_ID.into())
    );
    assert_eq!(create.num_calls(), 1, "the request had the expected shape");
}

#[tokio::test]
async fn each_error_class_is_retryable_or_permanent_as_documented() {
    type E = CreateMediaConcatenationPipelineError;
    type MakeError = Box<dyn Fn() -> E + Send + Sync>;
    let cases: Vec<(MakeError, PortErrorKind, bool)> = vec![
        (
            Box::new(|| E::ThrottledClientException(ThrottledClientException::builder().build())),
            PortErrorKind::Throttled,
            true,
        ),
        (
            Box::new(|| {
                E::ServiceUnavailableException(ServiceUnavailableException::builder().build())
            }),
            PortErrorKind::Unavailable,
            true,
        ),
        (
            Box::new(|| E::BadRequestException(BadRequestException::builder().build())),
            PortErrorKind::InvalidRequest,
            false,
        ),
        (
            Box::new(|| E::ForbiddenException(ForbiddenException::builder().build())),
            PortErrorKind::AccessDenied,
            false,
        ),
    ];
    for (error, kind, retryable) in cases {
        let rule = mock!(Client::create_media_concatenation_pipeline).then_error(error);
        let pipelines = ChimeMediaPipelines::from_client(client(&[&rule]));
        let err = pipelines
            .create_concatenation(&request())
            .await
            .unwrap_err();
        assert_eq!(err.kind, kind);
        assert_eq!(err.kind.class().as_str() == "retryable", retryable, "{err}");
    }
    // A bare 5xx with no modeled error is retryable too.
    let rule = mock!(Client::create_media_concatenation_pipeline)
        .sequence()
        .http_status(500, None)
        .build();
    let pipelines = ChimeMediaPipelines::from_client(client(&[&rule]));
    let err = pipelines
        .create_concatenation(&request())
        .await
        .unwrap_err();
    assert_eq!(err.kind, PortErrorKind::Unavailable);
}

fn deleted_event() -> String {
    serde_json::json!({
        "version": "0", "id": "e", "detail-type": "Chime Media Pipeline State Change",
        "source": "aws.chime", "account": "111122223333", "region": "us-east-1",
        "resources": [], "detail": {
            "eventType": "chime:MediaPipelineDeleted", "externalMeetingId": "visit-1",
            "mediaPipelineId": CAPTURE_ID, "meetingId": "m", "mediaRegion": "us-east-1",
        },
    })
    .to_string()
}

/// The capture stage's ports over the mocked Chime client and in-memory stores.
fn capture_ports<'a>(
    pipelines: &'a ChimeMediaPipelines,
    listing: &'a MemoryStore,
    events: &'a MemoryEvents,
    audit: &'a MemoryAudit,
) -> CapturePorts<'a, ChimeMediaPipelines, MemoryStore, MemoryEvents, MemoryAudit> {
    CapturePorts {
        pipelines,
        listing,
        events,
        audit: Some(audit),
        actor: "lambda:capture",
    }
}

#[tokio::test]
async fn the_stage_asks_once_per_delivery_with_the_same_token_and_sorts_failures() {
    let config =
        CaptureConfig::from_env(&Env::from_pairs(&[("TELEPIPE_RECORDINGS_BUCKET", "rec")]))
            .unwrap();
    let listing = MemoryStore::default();
    listing.insert(
        "rec",
        "captures/visit-1/audio/2026-12-01-15-00-00-000.mp4",
        b"chunk".to_vec(),
    );
    let events = MemoryEvents::default();
    let audit = MemoryAudit::default();

    let get = mock!(Client::get_media_pipeline).then_output(capture_output);
    let create = mock!(Client::create_media_concatenation_pipeline)
        .match_requests(|r| r.client_request_token() == Some(&format!("telepipe-{CAPTURE_ID}")))
        .then_output(concatenation_output);
    let pipelines = ChimeMediaPipelines::from_client(client(&[&get, &create]));
    let ports = capture_ports(&pipelines, &listing, &events, &audit);
    for _ in 0..2 {
        assert_eq!(
            handle_message(&ports, &config, &deleted_event())
                .await
                .unwrap(),
            CaptureOutcome::Concatenating {
                concatenation_pipeline_id: CONCAT_ID.into()
            }
        );
    }
    assert_eq!(
        create.num_calls(),
        2,
        "a redelivery asks again with the same token"
    );
    let joined = audit.entries();
    assert_eq!(
        joined.len(),
        1,
        "one audit entry per join, redelivery or not"
    );
    assert_eq!(joined[0].action.as_str(), "capture_joined");
    assert_eq!(
        joined[0].refs,
        [
            format!("capture:{CAPTURE_ID}"),
            format!("concatenation:{CONCAT_ID}")
        ]
    );

    let throttled = mock!(Client::get_media_pipeline).then_error(|| {
        GetMediaPipelineError::ThrottledClientException(ThrottledClientException::builder().build())
    });
    let pipelines = ChimeMediaPipelines::from_client(client(&[&throttled]));
    let ports = capture_ports(&pipelines, &listing, &events, &audit);
    let err = handle_message(&ports, &config, &deleted_event())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");

    let forbidden = mock!(Client::get_media_pipeline).then_output(capture_output);
    let refused = mock!(Client::create_media_concatenation_pipeline).then_error(|| {
        CreateMediaConcatenationPipelineError::ForbiddenException(
            ForbiddenException::builder().build(),
        )
    });
    let pipelines = ChimeMediaPipelines::from_client(client(&[&forbidden, &refused]));
    let ports = capture_ports(&pipelines, &listing, &events, &audit);
    let err = handle_message(&ports, &config, &deleted_event())
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(err.reason, "access_denied");
    assert!(
        events.published.lock().unwrap().is_empty(),
        "nothing published for a refused request"
    );
}
