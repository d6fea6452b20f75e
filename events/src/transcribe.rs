//! Amazon Transcribe Medical output JSON, as read by `clinical` and written by local transcribers.
//!
//! Strings borrow from the input buffer where they carry no escapes: a four-hour
//! transcript is parsed without one allocation per item. Times are decimal-second
//! strings in the file and milliseconds here.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TranscribeOutput<'a> {
    #[serde(
        rename = "jobName",
        default,
        borrow,
        skip_serializing_if = "Option::is_none"
    )]
    pub job_name: Option<Cow<'a, str>>,
    #[serde(
        rename = "accountId",
        default,
        borrow,
        skip_serializing_if = "Option::is_none"
    )]
    pub account_id: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub results: Results<'a>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Results<'a> {
    #[serde(default, borrow)]
    pub transcripts: Vec<TranscriptText<'a>>,
    #[serde(default, borrow)]
    pub items: Vec<Item<'a>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub speaker_labels: Option<SpeakerLabels<'a>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub channel_labels: Option<ChannelLabels<'a>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TranscriptText<'a> {
    #[serde(borrow)]
    pub transcript: Cow<'a, str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemType {
    Pronunciation,
    Punctuation,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Item<'a> {
    #[serde(default, with = "time_ms", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub start_time: Option<u64>,
    #[serde(default, with = "time_ms", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub end_time: Option<u64>,
    #[serde(default, borrow)]
    pub alternatives: Vec<Alternative<'a>>,
    #[serde(rename = "type")]
    pub kind: ItemType,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub speaker_label: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub channel_label: Option<Cow<'a, str>>,
}

impl Item<'_> {
    /// The best alternative's text ("" when Transcribe gave none).
    pub fn content(&self) -> &str {
        self.alternatives.first().map_or("", |alt| &alt.content)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Alternative<'a> {
    #[serde(default, with = "confidence", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub confidence: Option<f32>,
    #[serde(borrow)]
    pub content: Cow<'a, str>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SpeakerLabels<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speakers: Option<u32>,
    #[serde(default, borrow)]
    pub segments: Vec<Segment<'a>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Segment<'a> {
    #[serde(default, with = "time_ms", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub start_time: Option<u64>,
    #[serde(default, with = "time_ms", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub end_time: Option<u64>,
    #[serde(borrow)]
    pub speaker_label: Cow<'a, str>,
    #[serde(default, borrow)]
    pub items: Vec<SegmentItem<'a>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SegmentItem<'a> {
    #[serde(default, with = "time_ms", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub start_time: Option<u64>,
    #[serde(default, with = "time_ms", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub end_time: Option<u64>,
    #[serde(borrow)]
    pub speaker_label: Cow<'a, str>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ChannelLabels<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_channels: Option<u32>,
    #[serde(default, borrow)]
    pub channels: Vec<Channel<'a>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Channel<'a> {
    #[serde(borrow)]
    pub channel_label: Cow<'a, str>,
    #[serde(default, borrow)]
    pub items: Vec<Item<'a>>,
}

/// Parses decimal seconds ("12.345", or a JSON number) into whole milliseconds without floats.
pub fn parse_seconds_to_ms(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut millis = 0u64;
    let mut digits = 0;
    for byte in frac.bytes() {
        if !byte.is_ascii_digit() {
            return None;
        }
        if digits < 3 {
            millis = millis * 10 + u64::from(byte - b'0');
            digits += 1;
        }
    }
    while digits < 3 {
        millis *= 10;
        digits += 1;
    }
    whole.checked_mul(1000)?.checked_add(millis)
}

/// Formats milliseconds as Transcribe does ("12.345").
pub fn format_ms_as_seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// A number-or-string field, visited without allocating.
enum Scalar<'a> {
    Text(Cow<'a, str>),
    Float(f64),
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a decimal string or number")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v as f64))
            }
        }
        deserializer.deserialize_any(V)
    }
}

mod time_ms {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(match Option::<Scalar<'de>>::deserialize(d)? {
            None => None,
            Some(Scalar::Text(text)) => Some(
                parse_seconds_to_ms(&text)
                    .ok_or_else(|| serde::de::Error::custom("time is not decimal seconds"))?,
            ),
            Some(Scalar::Float(secs)) if secs >= 0.0 && secs.is_finite() => {
                Some((secs * 1000.0).round() as u64)
            }
            Some(Scalar::Float(_)) => return Err(serde::de::Error::custom("time is negative")),
        })
    }

    pub fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(ms) => s.serialize_str(&format_ms_as_seconds(*ms)),
            None => s.serialize_none(),
        }
    }
}

mod confidence {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
        Ok(match Option::<Scalar<'de>>::deserialize(d)? {
            None => None,
            Some(Scalar::Text(text)) => text.parse().ok(),
            Some(Scalar::Float(value)) => Some(value as f32),
        })
    }

    pub fn serialize<S: Serializer>(value: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(c) => s.serialize_str(&format!("{c:.4}")),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_to_millis_exactly() {
        assert_eq!(parse_seconds_to_ms("0.0"), Some(0));
        assert_eq!(parse_seconds_to_ms("12.345"), Some(12_345));
        assert_eq!(parse_seconds_to_ms("1.5"), Some(1_500));
        assert_eq!(parse_seconds_to_ms("7"), Some(7_000));
        assert_eq!(parse_seconds_to_ms("3.14159"), Some(3_141));
        assert_eq!(parse_seconds_to_ms("x"), None);
        assert_eq!(parse_seconds_to_ms("1.2e3"), None);
    }

    #[test]
    fn parses_speaker_labelled_output_borrowing_content() {
        let json = br#"{"jobName":"j","accountId":"1","status":"COMPLETED","results":{
            "transcripts":[{"transcript":"Hello."}],
            "items":[{"start_time":"0.5","end_time":"0.9","alternatives":[{"confidence":"0.99","content":"Hello"}],"type":"pronunciation"},
                     {"alternatives":[{"confidence":"0.0","content":"."}],"type":"punctuation"}],
            "speaker_labels":{"speakers":1,"segments":[{"start_time":"0.5","end_time":"0.9","speaker_label":"spk_0",
               "items":[{"start_time":"0.5","end_time":"0.9","speaker_label":"spk_0"}]}]}}}"#;
        let out: TranscribeOutput = serde_json::from_slice(json).unwrap();
        let item = &out.results.items[0];
        assert_eq!((item.start_time, item.end_time), (Some(500), Some(900)));
        assert!(matches!(
            item.alternatives[0].content,
            Cow::Borrowed("Hello")
        ));
        assert_eq!(out.results.items[1].kind, ItemType::Punctuation);
        assert_eq!(
            out.results.speaker_labels.unwrap().segments[0].items[0].speaker_label,
            "spk_0"
        );
    }

    #[test]
    fn writes_what_it_reads() {
        let json = r#"{"results":{"transcripts":[{"transcript":"a"}],"items":[{"start_time":"1.250","end_time":"2.000","alternatives":[{"confidence":"0.5000","content":"a"}],"type":"pronunciation"}]}}"#;
        let out: TranscribeOutput = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&out).unwrap(), json);
    }
}
