//! S3 event notifications as they arrive in an SQS message body.
//!
//! Parsed tolerantly: real S3 sends `userIdentity`, `requestParameters` and
//! `responseElements`, moto does not; configuring a notification sends an
//! `s3:TestEvent` that is not an S3 event at all. Keys arrive URL-encoded (space as `+`).

use percent_encoding::percent_decode;
use serde::Deserialize;
use std::fmt;

/// What one SQS message body from an S3 notification holds.
#[derive(Debug, Clone, PartialEq)]
pub enum S3Notification {
    /// The probe S3 sends when a notification is configured; nothing to do.
    TestEvent,
    Records(Vec<S3Record>),
}

/// One record, with the key already decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Record {
    pub event_name: String,
    pub bucket: String,
    /// The decoded key; `Err` keeps the record (so its siblings still run) but says why it is unusable.
    pub key: Result<String, KeyError>,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub sequencer: Option<String>,
}

impl S3Record {
    pub fn is_object_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
    }
}

/// Why a message body is not an S3 notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationError {
    NotJson,
    WrongShape(String),
    NoRecords,
}

impl fmt::Display for NotificationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson => f.write_str("message body is not JSON"),
            Self::WrongShape(why) => write!(f, "message body is not an S3 notification: {why}"),
            Self::NoRecords => f.write_str("S3 notification holds no records"),
        }
    }
}

impl std::error::Error for NotificationError {}

/// Why an encoded key cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    Empty,
    /// Percent-escapes that do not decode to UTF-8.
    NotUtf8,
    /// Decodes to a NUL or other control character.
    ControlCharacter,
    /// Longer than S3's 1,024-byte key limit.
    TooLong,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "object key is empty",
            Self::NotUtf8 => "object key does not decode to UTF-8",
            Self::ControlCharacter => "object key holds a control character",
            Self::TooLong => "object key is longer than 1024 bytes",
        })
    }
}

/// Decodes an S3 notification key: `+` is a space, then percent-escapes.
pub fn decode_key(encoded: &str) -> Result<String, KeyError> {
    if encoded.is_empty() {
        return Err(KeyError::Empty);
    }
    let plus_as_space = encoded.replace('+', " ");
    let decoded = percent_decode(plus_as_space.as_bytes())
        .decode_utf8()
        .map_err(|_| KeyError::NotUtf8)?;
    if decoded.len() > 1024 {
        return Err(KeyError::TooLong);
    }
    if decoded.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter);
    }
    Ok(decoded.into_owned())
}

/// Encodes a key the way S3 does in notifications (used by local object stores and tests).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'*' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[derive(Deserialize)]
struct RawBody {
    #[serde(rename = "Records")]
    records: Option<Vec<serde_json::Value>>,
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord {
    #[serde(default)]
    event_name: String,
    s3: RawS3,
}

#[derive(Deserialize)]
struct RawS3 {
    bucket: RawBucket,
    object: RawObject,
}

#[derive(Deserialize)]
struct RawBucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObject {
    key: String,
    size: Option<u64>,
    e_tag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// Parses an SQS message body from an S3 notification.
pub fn parse_notification(body: &str) -> Result<S3Notification, NotificationError> {
    let raw: RawBody = match serde_json::from_str(body) {
        Ok(raw) => raw,
        Err(err) if err.is_syntax() || err.is_eof() => return Err(NotificationError::NotJson),
        Err(_) => return Err(NotificationError::WrongShape("not a JSON object".into())),
    };
    if raw.event.as_deref() == Some("s3:TestEvent") {
        return Ok(S3Notification::TestEvent);
    }
    let records = raw
        .records
        .ok_or_else(|| NotificationError::WrongShape("no Records array".into()))?;
    if records.is_empty() {
        return Err(NotificationError::NoRecords);
    }
    records
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let raw: RawRecord = serde_json::from_value(value).map_err(|err| {
                NotificationError::WrongShape(format!("record {index}: {}", shape_only(&err)))
            })?;
            Ok(S3Record {
                event_name: raw.event_name,
                bucket: raw.s3.bucket.name,
                key: decode_key(&raw.s3.object.key),
                size: raw.s3.object.size,
                etag: raw.s3.object.e_tag.filter(|t| !t.is_empty()),
                version_id: raw.s3.object.version_id.filter(|v| !v.is_empty()),
                sequencer: raw.s3.object.sequencer,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(S3Notification::Records)
}

/// serde's message for a shape error names fields and types, never values, so it is safe to keep.
fn shape_only(err: &serde_json::Error) -> String {
    let text = err.to_string();
    // "invalid type: string \"...\", expected u64" would echo a value: cut at the first quote.
    match text.find('"') {
        Some(cut) if text.starts_with("invalid") => format!("{}…", &text[..cut]),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL_S3: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
      "eventTime":"2026-11-22T00:00:00.000Z","eventName":"ObjectCreated:Put",
      "userIdentity":{"principalId":"AWS:X"},"requestParameters":{"sourceIPAddress":"1.2.3.4"},
      "responseElements":{"x-amz-request-id":"R"},
      "s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"rec","ownerIdentity":{"principalId":"X"},"arn":"arn:aws:s3:::rec"},
      "object":{"key":"recordings/s-1/visit+1%C3%A9.wav","size":1024,"eTag":"abc","versionId":"v1","sequencer":"0A"}}}]}"#;

    const MOTO_S3: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
      "eventTime":"2026-11-22T00:00:00.000Z","eventName":"ObjectCreated:Put",
      "s3":{"s3SchemaVersion":"1.0","configurationId":"c","bucket":{"name":"rec","arn":"arn:aws:s3:::rec"},
      "object":{"key":"recordings%2Fs-1%2Fvisit+1.wav","size":1024,"eTag":"abc","versionId":"","sequencer":"0A"}}}]}"#;

    #[test]
    fn parses_real_s3_records_and_decodes_keys() {
        let S3Notification::Records(records) = parse_notification(REAL_S3).unwrap() else {
            panic!()
        };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].key.as_deref(), Ok("recordings/s-1/visit 1é.wav"));
        assert_eq!(records[0].version_id.as_deref(), Some("v1"));
        assert!(records[0].is_object_created());
    }

    #[test]
    fn parses_moto_records_without_user_identity() {
        let S3Notification::Records(records) = parse_notification(MOTO_S3).unwrap() else {
            panic!()
        };
        assert_eq!(records[0].key.as_deref(), Ok("recordings/s-1/visit 1.wav"));
        assert_eq!(
            records[0].version_id, None,
            "empty version id means unversioned"
        );
    }

    #[test]
    fn test_event_is_recognised() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-22T00:00:00Z","Bucket":"rec","RequestId":"x","HostId":"y"}"#;
        assert_eq!(parse_notification(body), Ok(S3Notification::TestEvent));
    }

    #[test]
    fn malformed_bodies_are_classified() {
        assert_eq!(
            parse_notification("not json"),
            Err(NotificationError::NotJson)
        );
        assert_eq!(
            parse_notification(r#"{"Records":[{"s3""#),
            Err(NotificationError::NotJson)
        );
        assert!(matches!(
            parse_notification("[1,2]"),
            Err(NotificationError::WrongShape(_))
        ));
        assert!(matches!(
            parse_notification("{}"),
            Err(NotificationError::WrongShape(_))
        ));
        assert_eq!(
            parse_notification(r#"{"Records":[]}"#),
            Err(NotificationError::NoRecords)
        );
        assert!(matches!(
            parse_notification(r#"{"Records":[{"s3":{"bucket":{"name":"b"}}}]}"#),
            Err(NotificationError::WrongShape(_))
        ));
    }

    #[test]
    fn shape_errors_do_not_echo_values() {
        let body = r#"{"Records":[{"eventName":"x","s3":{"bucket":{"name":"b"},"object":{"key":"k","size":"SECRET-VALUE"}}}]}"#;
        let err = parse_notification(body).unwrap_err().to_string();
        assert!(!err.contains("SECRET-VALUE"), "{err}");
    }

    #[test]
    fn hostile_keys_are_rejected_or_kept_literal() {
        assert_eq!(decode_key("a%00b"), Err(KeyError::ControlCharacter));
        assert_eq!(decode_key("a%FFb"), Err(KeyError::NotUtf8));
        assert_eq!(decode_key(""), Err(KeyError::Empty));
        assert_eq!(decode_key(&"a".repeat(2000)), Err(KeyError::TooLong));
        assert_eq!(
            decode_key("recordings/..%2F..%2Fetc"),
            Ok("recordings/../../etc".to_owned())
        );
        assert_eq!(decode_key("a%2Bb+c"), Ok("a+b c".to_owned()));
    }

    #[test]
    fn encode_then_decode_round_trips() {
        for key in [
            "recordings/s 1/visit+1.wav",
            "recordings/ü/日本.mp3",
            "a%b&c=d",
        ] {
            assert_eq!(decode_key(&encode_key(key)).as_deref(), Ok(key));
        }
    }
}
