//! The local stand-in for the Chime SDK media pipelines API: `MediaPipelines` whose
//! concatenation decodes a capture's audio chunks in time order and writes one WAV
//! recording, `{recordings prefix}{session}/audio/{pipeline id}.wav`, which then takes the
//! normal path (intake → transcription → clinical).
//!
//! Locally there is no pipeline registry: captures are made by dropping chunks under
//! `DATA_DIR/buckets/recordings/{capture prefix}{session}/audio/`, so every pipeline id
//! this adapter did not create itself is taken to be a capture. The concatenations it
//! creates are kept in SQLite by idempotency token: the same token never joins twice, and
//! a join interrupted by a crash is redone (same bytes, same key) on redelivery.
//!
//! A chunk that cannot be decoded (damaged, or a codec the local decoder lacks) is left
//! out and counted; the rest are joined. With no readable chunk at all the answer is
//! `NoAudio`, which the capture stage publishes as `capture_empty`.

use crate::db::{now_ms, Db};
use crate::store::FsStore;
use rusqlite::{params, OptionalExtension};
use telepipe_events::capture::{is_audio_chunk, AUDIO_FOLDER};
use telepipe_events::ids::digest_hex;
use telepipe_whisper::audio::WHISPER_SAMPLE_RATE;
use telepipe_whisper::media::decode_media;
use telepipe_whisper::WhisperError;
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::ports::{
    CapturePipeline, Concatenation, ConcatenationRequest, MediaPipelineKind, MediaPipelines,
    ObjectListing, ObjectStore, PutOptions,
};
use tracing::{info, warn};

/// More chunks than a 24-hour capture holds at 5 seconds each.
const MAX_CHUNKS: usize = 20_000;

#[derive(Clone)]
pub struct LocalMediaPipelines {
    db: Db,
    store: FsStore,
}

fn storage(operation: &'static str) -> impl Fn(rusqlite::Error) -> PortError {
    move |_| PortError::new(PortErrorKind::Unavailable, "local-chime", operation)
}

/// A UUID-shaped pipeline id derived from the idempotency token, as Chime's ids look.
pub fn pipeline_id_for(token: &str) -> String {
    let hex = digest_hex(&[b"media-concatenation", token.as_bytes()], 16);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Why a chunk was left out of the joined recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The chunk's bytes do not decode (truncated, damaged, not audio).
    Unreadable,
    /// A format or codec the local decoder has no support for.
    UnsupportedCodec,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable_chunk",
            Self::UnsupportedCodec => "unsupported_codec",
        }
    }
}

/// What joining a capture's chunks produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// 16 kHz 16-bit PCM WAV; `None` when no chunk could be read.
    pub wav: Option<Vec<u8>>,
    pub chunks_joined: usize,
    pub skipped: Vec<SkipReason>,
    pub audio_ms: u64,
}

/// The format `decode_media` is asked for, by a chunk's extension.
fn chunk_format(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "mp4" | "m4a" => "mp4",
        "mp3" => "mp3",
        "flac" => "flac",
        "ogg" => "ogg",
        "wav" => "wav",
        _ => return None,
    })
}

/// Decodes chunks in the order given (time order: chunk names start with their UTC time)
/// and writes them one after another into a single WAV. Channels follow the first
/// readable chunk; a later chunk with another layout is mixed down or duplicated to fit.
/// Memory holds the output and one decoded chunk at a time.
pub fn join_chunks<'a>(chunks: impl IntoIterator<Item = (&'a str, Vec<u8>)>) -> Joined {
    let mut wav: Option<Vec<u8>> = None;
    let mut out_channels = 0usize;
    let mut frames = 0u64;
    let mut joined = 0usize;
    let mut skipped = Vec::new();
    for (name, bytes) in chunks {
        let Some(format) = chunk_format(name) else {
            skipped.push(SkipReason::UnsupportedCodec);
            continue;
        };
        let audio = match decode_media(&bytes, format) {
            Ok(decoded) => decoded.audio,
            Err(WhisperError::UnsupportedCodec(_)) => {
                skipped.push(SkipReason::UnsupportedCodec);
                continue;
            }
            Err(_) => {
                skipped.push(SkipReason::Unreadable);
                continue;
            }
        };
        let out = wav.get_or_insert_with(|| {
            out_channels = audio.channels.len().clamp(1, 2);
            wav_header(out_channels as u16)
        });
        let length = audio.channels[0].len();
        out.reserve(length * out_channels * 2);
        for i in 0..length {
            for c in 0..out_channels {
                let sample = if audio.channels.len() == out_channels {
                    audio.channels[c][i]
                } else if out_channels == 1 {
                    audio.channels.iter().map(|t| t[i]).sum::<f32>() / audio.channels.len() as f32
                } else {
                    audio.channels[0][i]
                };
                let value = (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        frames += length as u64;
        joined += 1;
    }
    if let Some(out) = wav.as_mut() {
        finish_wav(out);
    }
    Joined {
        wav,
        chunks_joined: joined,
        skipped,
        audio_ms: frames * 1000 / u64::from(WHISPER_SAMPLE_RATE),
    }
}

/// The 44-byte header of a 16 kHz 16-bit PCM WAV; sizes are filled in by [`finish_wav`].
/// Written by hand so samples can be appended as they are decoded.
fn wav_header(channels: u16) -> Vec<u8> {
    let block_align = channels * 2;
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes()); // PCM
    header.extend_from_slice(&channels.to_le_bytes());
    header.extend_from_slice(&WHISPER_SAMPLE_RATE.to_le_bytes());
    header.extend_from_slice(&(WHISPER_SAMPLE_RATE * u32::from(block_align)).to_le_bytes());
    header.extend_from_slice(&block_align.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data\0\0\0\0");
    header
}

fn finish_wav(wav: &mut [u8]) {
    let data = u32::try_from(wav.len() - 44).unwrap_or(u32::MAX);
    wav[4..8].copy_from_slice(&(data.saturating_add(36)).to_le_bytes());
    wav[40..44].copy_from_slice(&data.to_le_bytes());
}

impl LocalMediaPipelines {
    pub fn new(db: Db, store: FsStore) -> Self {
        Self { db, store }
    }

    /// Reads the capture's audio chunks (in key order) from the filesystem store: those no
    /// earlier concatenation of the folder joined (a meeting captured twice, say paused and
    /// resumed, shares its sink; each capture's recording holds only its own chunks).
    async fn read_chunks(
        &self,
        request: &ConcatenationRequest,
        pipeline_id: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, PortError> {
        let prefix = format!("{}{AUDIO_FOLDER}", request.capture_folder);
        let keys = self
            .store
            .list_keys(&request.capture_bucket, &prefix, MAX_CHUNKS)
            .await?;
        let mut chunks = Vec::new();
        for key in keys {
            let name = key[prefix.len()..].to_owned();
            if !is_audio_chunk(&name)
                || self.joined_elsewhere(&request.capture_bucket, &key, pipeline_id)?
            {
                continue;
            }
            match self.store.get(&request.capture_bucket, &key).await {
                Ok(body) => chunks.push((name, body.bytes)),
                // Deleted between listing and reading: nothing to join from it.
                Err(err) if err.kind == PortErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(chunks)
    }

    /// Whether another concatenation already joined this chunk.
    fn joined_elsewhere(
        &self,
        bucket: &str,
        key: &str,
        pipeline_id: &str,
    ) -> Result<bool, PortError> {
        let by: Option<String> = self
            .db
            .lock()
            .query_row(
                "SELECT pipeline_id FROM joined_chunks WHERE bucket = ?1 AND key = ?2",
                params![bucket, key],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage("CreateMediaConcatenationPipeline"))?;
        Ok(by.is_some_and(|by| by != pipeline_id))
    }

    fn mark_joined(
        &self,
        bucket: &str,
        keys: &[String],
        pipeline_id: &str,
    ) -> Result<(), PortError> {
        let connection = self.db.lock();
        for key in keys {
            connection
                .execute(
                    "INSERT INTO joined_chunks (bucket, key, pipeline_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![bucket, key, pipeline_id],
                )
                .map_err(storage("CreateMediaConcatenationPipeline"))?;
        }
        Ok(())
    }

    fn set_status(
        &self,
        token: &str,
        status: &str,
        sink_key: Option<&str>,
        joined: &Joined,
    ) -> Result<(), PortError> {
        self.db
            .lock()
            .execute(
                "UPDATE media_concatenations SET status = ?1, sink_key = ?2, chunks_joined = ?3,
                 chunks_skipped = ?4, audio_ms = ?5, updated_at = ?6 WHERE token = ?7",
                params![
                    status,
                    sink_key,
                    joined.chunks_joined as i64,
                    joined.skipped.len() as i64,
                    joined.audio_ms as i64,
                    now_ms(),
                    token
                ],
            )
            .map_err(storage("CreateMediaConcatenationPipeline"))?;
        Ok(())
    }
}

impl MediaPipelines for LocalMediaPipelines {
    async fn get_media_pipeline(
        &self,
        media_pipeline_id: &str,
    ) -> Result<MediaPipelineKind, PortError> {
        let ours: Option<i64> = self
            .db
            .lock()
            .query_row(
                "SELECT 1 FROM media_concatenations WHERE pipeline_id = ?1",
                [media_pipeline_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage("GetMediaPipeline"))?;
        Ok(match ours {
            Some(_) => MediaPipelineKind::Concatenation,
            None => MediaPipelineKind::Capture(CapturePipeline {
                arn: format!("arn:aws:chime:local:000000000000:media-pipeline/{media_pipeline_id}"),
                sink_arn: None,
                kms_key_id: None,
            }),
        })
    }

    async fn create_concatenation(
        &self,
        request: &ConcatenationRequest,
    ) -> Result<Concatenation, PortError> {
        let token = &request.client_request_token;
        let pipeline_id = pipeline_id_for(token);
        let now = now_ms();
        let status: String = {
            let connection = self.db.lock();
            connection
                .execute(
                    "INSERT INTO media_concatenations (token, pipeline_id, capture_pipeline_arn, status, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 'InProgress', ?4, ?4) ON CONFLICT (token) DO NOTHING",
                    params![token, pipeline_id, request.capture_pipeline_arn, now],
                )
                .map_err(storage("CreateMediaConcatenationPipeline"))?;
            connection
                .query_row(
                    "SELECT status FROM media_concatenations WHERE token = ?1",
                    [token],
                    |r| r.get(0),
                )
                .map_err(storage("CreateMediaConcatenationPipeline"))?
        };
        match status.as_str() {
            "Stopped" => return Ok(Concatenation::Started(pipeline_id)),
            "NoAudio" => return Ok(Concatenation::NoAudio),
            _ => {}
        }

        let started = std::time::Instant::now();
        let chunks = self.read_chunks(request, &pipeline_id).await?;
        let listed = chunks.len();
        let chunk_keys: Vec<String> = chunks
            .iter()
            .map(|(name, _)| format!("{}{AUDIO_FOLDER}{name}", request.capture_folder))
            .collect();
        let joined = tokio::task::spawn_blocking(move || {
            join_chunks(
                chunks
                    .iter()
                    .map(|(name, bytes)| (name.as_str(), bytes.clone())),
            )
        })
        .await
        .map_err(|_| {
            PortError::new(
                PortErrorKind::Unavailable,
                "local-chime",
                "CreateMediaConcatenationPipeline",
            )
        })?;
        for reason in [SkipReason::Unreadable, SkipReason::UnsupportedCodec] {
            let n = joined.skipped.iter().filter(|r| **r == reason).count() as u64;
            if n > 0 {
                telepipe_workers::metrics::capture_chunks_skipped(reason.as_str(), n);
                warn!(
                    reason = reason.as_str(),
                    chunks = n,
                    "capture chunks left out of the recording"
                );
            }
        }
        let Some(wav) = joined.wav.clone() else {
            self.set_status(token, "NoAudio", None, &joined)?;
            return Ok(Concatenation::NoAudio);
        };
        let key = format!("{}audio/{pipeline_id}.wav", request.sink_folder);
        let options = PutOptions {
            content_type: Some("audio/wav".into()),
            kms_key_id: None,
        };
        self.store
            .put(&request.sink_bucket, &key, wav, &options)
            .await?;
        self.mark_joined(&request.capture_bucket, &chunk_keys, &pipeline_id)?;
        self.set_status(token, "Stopped", Some(&key), &joined)?;
        info!(
            media_pipeline_id = %pipeline_id,
            chunks = listed,
            joined = joined.chunks_joined,
            skipped = joined.skipped.len(),
            audio_ms = joined.audio_ms,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "capture joined into one recording"
        );
        Ok(Concatenation::Started(pipeline_id))
    }
}

/// A local concatenation, as `telepipe status` and tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcatenationRow {
    pub pipeline_id: String,
    pub status: String,
    pub sink_key: Option<String>,
    pub chunks_joined: u32,
    pub chunks_skipped: u32,
    pub audio_ms: u64,
}

/// Every local concatenation, oldest first.
pub fn concatenations(db: &Db) -> rusqlite::Result<Vec<ConcatenationRow>> {
    let connection = db.lock();
    let mut statement = connection.prepare(
        "SELECT pipeline_id, status, sink_key, chunks_joined, chunks_skipped, audio_ms
         FROM media_concatenations ORDER BY created_at, token",
    )?;
    let rows = statement
        .query_map([], |r| {
            Ok(ConcatenationRow {
                pipeline_id: r.get(0)?,
                status: r.get(1)?,
                sink_key: r.get(2)?,
                chunks_joined: r.get(3)?,
                chunks_skipped: r.get(4)?,
                audio_ms: r.get::<_, i64>(5)?.max(0) as u64,
            })
        })?
        .collect();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chime_chunks() -> Vec<(String, Vec<u8>)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/chime-capture/audio");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let bytes = std::fs::read(dir.join(&n)).unwrap();
                (n, bytes)
            })
            .collect()
    }

    #[test]
    fn chunks_join_in_order_into_one_recording_of_their_total_length() {
        let chunks = chime_chunks();
        assert_eq!(chunks.len(), 3);
        let joined = join_chunks(chunks.iter().map(|(n, b)| (n.as_str(), b.clone())));
        assert_eq!(joined.chunks_joined, 3);
        assert!(joined.skipped.is_empty());
        // 5 s + 5 s + 3.518 s, priming and padding trimmed.
        assert!(
            (joined.audio_ms as i64 - 13_518).abs() < 30,
            "{}",
            joined.audio_ms
        );
        let audio = telepipe_whisper::decode_wav(&joined.wav.unwrap()).unwrap();
        assert_eq!(audio.channels.len(), 1);
    }

    #[test]
    fn bad_chunks_are_left_out_and_counted_and_the_rest_joined() {
        let chunks = chime_chunks();
        let mut corrupt = chunks[1].1.clone();
        corrupt.truncate(200);
        let list = vec![
            (chunks[0].0.as_str(), chunks[0].1.clone()),
            ("2026-12-01-15-00-05-000.mp4", corrupt),
            (
                "2026-12-01-15-00-07-000.webm",
                b"\x1aE\xdf\xa3webm".to_vec(),
            ),
            (chunks[2].0.as_str(), chunks[2].1.clone()),
        ];
        let joined = join_chunks(list);
        assert_eq!(joined.chunks_joined, 2);
        assert_eq!(
            joined.skipped,
            vec![SkipReason::Unreadable, SkipReason::UnsupportedCodec]
        );
        assert!(joined.audio_ms > 8_000 && joined.audio_ms < 9_000);
    }

    #[test]
    fn no_readable_chunk_gives_no_recording() {
        let joined = join_chunks(vec![("a.mp4", b"garbage".to_vec())]);
        assert_eq!(joined.wav, None);
        assert_eq!(joined.skipped, vec![SkipReason::Unreadable]);
        assert_eq!(join_chunks(Vec::<(&str, Vec<u8>)>::new()).wav, None);
    }

    #[test]
    fn pipeline_ids_look_like_chime_ids_and_follow_the_token() {
        let id = pipeline_id_for("telepipe-e40ee45e-2ed1-408e-9156-f52b8208a491");
        assert_eq!(id.len(), 36);
        assert_eq!(
            id,
            pipeline_id_for("telepipe-e40ee45e-2ed1-408e-9156-f52b8208a491")
        );
        assert_ne!(id, pipeline_id_for("telepipe-other"));
    }
}
