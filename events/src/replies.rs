//! Patients texting back: the inbound SMS the replies queue carries (from Twilio's webhook
//! or AWS End User Messaging two-way SMS through SNS), the keywords telepipe understands,
//! and the events a reply leads to (ids only: never the number or the text).
//!
//! Keywords are matched on the whole message, ignoring case, spaces and punctuation, so
//! "Stop." is STOP but "stop by tomorrow?" is not. Carriers and Twilio treat STOP, STOPALL,
//! UNSUBSCRIBE, CANCEL, END, QUIT (and REVOKE, OPTOUT) as opting out of all messages from
//! the number, and START, YES, UNSTOP as opting back in: CANCEL therefore never cancels an
//! appointment, and YES never confirms one. Appointment replies use their own words.

use crate::ids::digest_hex;
use crate::pipeline::PipelineEvent;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an inbound message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboundProvider {
    Twilio,
    Sns,
    /// `telepipe sms receive` on the local runtime.
    Local,
}

/// One inbound SMS as the replies queue carries it. Holds the patient's number and text:
/// it lives only on the (encrypted) replies queue and is never logged or published.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InboundSms {
    pub provider: InboundProvider,
    /// The provider's message id (Twilio `MessageSid`, SNS `inboundMessageId`).
    pub message_id: String,
    /// The patient's number, E.164.
    pub from: String,
    /// The clinic's number it was sent to.
    #[serde(default)]
    pub to: String,
    pub body: String,
    /// Twilio's Advanced Opt-Out verdict (`OptOutType`: STOP, START, HELP), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out_type: Option<String>,
}

/// Ids only: the number and the text never reach a log through `{:?}`.
impl std::fmt::Debug for InboundSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundSms")
            .field("provider", &self.provider)
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// The id a patient's text goes by in events, audit entries and logs: a digest of the
/// provider's message id.
pub fn reply_id(message_id: &str) -> String {
    digest_hex(&[b"inbound-sms", message_id.as_bytes()], 12)
}

impl InboundSms {
    /// Reads the JSON AWS End User Messaging SMS publishes for a two-way number (the SNS
    /// message itself, or an SNS envelope around it when raw delivery is off).
    pub fn from_sns(json: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(json).ok()?;
        let value = match value.get("Message").and_then(|m| m.as_str()) {
            Some(inner) if value.get("Type").is_some() => serde_json::from_str(inner).ok()?,
            _ => value,
        };
        let text = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        Some(Self {
            provider: InboundProvider::Sns,
            message_id: text("inboundMessageId")?,
            from: text("originationNumber")?,
            to: text("destinationNumber").unwrap_or_default(),
            body: text("messageBody").unwrap_or_default(),
            opt_out_type: None,
        })
    }
}

/// What a reply asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyIntent {
    OptOut,
    OptIn,
    Help,
    Confirm,
    Reschedule,
    /// Anything else: for staff to follow up.
    Other,
}

/// The language a keyword is in, for the answer's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyLanguage {
    En,
    Es,
}

impl ReplyLanguage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }
}

const KEYWORDS: &[(&str, ReplyIntent, ReplyLanguage)] = &[
    ("STOP", ReplyIntent::OptOut, ReplyLanguage::En),
    ("STOPALL", ReplyIntent::OptOut, ReplyLanguage::En),
    ("UNSUBSCRIBE", ReplyIntent::OptOut, ReplyLanguage::En),
    ("CANCEL", ReplyIntent::OptOut, ReplyLanguage::En),
    ("END", ReplyIntent::OptOut, ReplyLanguage::En),
    ("QUIT", ReplyIntent::OptOut, ReplyLanguage::En),
    ("REVOKE", ReplyIntent::OptOut, ReplyLanguage::En),
    ("OPTOUT", ReplyIntent::OptOut, ReplyLanguage::En),
    ("PARAR", ReplyIntent::OptOut, ReplyLanguage::Es),
    ("ALTO", ReplyIntent::OptOut, ReplyLanguage::Es),
    ("BAJA", ReplyIntent::OptOut, ReplyLanguage::Es),
    ("START", ReplyIntent::OptIn, ReplyLanguage::En),
    ("YES", ReplyIntent::OptIn, ReplyLanguage::En),
    ("UNSTOP", ReplyIntent::OptIn, ReplyLanguage::En),
    ("COMENZAR", ReplyIntent::OptIn, ReplyLanguage::Es),
    ("HELP", ReplyIntent::Help, ReplyLanguage::En),
    ("INFO", ReplyIntent::Help, ReplyLanguage::En),
    ("AYUDA", ReplyIntent::Help, ReplyLanguage::Es),
    ("CONFIRM", ReplyIntent::Confirm, ReplyLanguage::En),
    ("C", ReplyIntent::Confirm, ReplyLanguage::En),
    ("CONFIRMAR", ReplyIntent::Confirm, ReplyLanguage::Es),
    ("CONFIRMO", ReplyIntent::Confirm, ReplyLanguage::Es),
    ("RESCHEDULE", ReplyIntent::Reschedule, ReplyLanguage::En),
    ("R", ReplyIntent::Reschedule, ReplyLanguage::En),
    ("CAMBIAR", ReplyIntent::Reschedule, ReplyLanguage::Es),
    ("REPROGRAMAR", ReplyIntent::Reschedule, ReplyLanguage::Es),
];

/// The whole message, upper-cased, with spaces, punctuation and Spanish accents dropped.
fn normalize(body: &str) -> String {
    body.chars()
        .filter_map(|c| match c {
            'á' | 'Á' => Some('A'),
            'é' | 'É' => Some('E'),
            'í' | 'Í' => Some('I'),
            'ó' | 'Ó' => Some('O'),
            'ú' | 'Ú' | 'ü' | 'Ü' => Some('U'),
            c if c.is_alphanumeric() => Some(c.to_ascii_uppercase()),
            _ => None,
        })
        .collect()
}

/// What a message asks for, and in which language (English when it names no keyword).
pub fn classify_reply(body: &str) -> (ReplyIntent, ReplyLanguage) {
    let word = normalize(body);
    KEYWORDS
        .iter()
        .find(|(keyword, _, _)| *keyword == word)
        .map(|(_, intent, language)| (*intent, *language))
        .unwrap_or((ReplyIntent::Other, ReplyLanguage::En))
}

/// What every reply event carries: ids only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplyDetail {
    pub schema_version: u32,
    /// Stable per inbound message and intent: a redelivery publishes the same id.
    pub event_id: String,
    /// The patient's next upcoming session, when the number matched one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// A digest of the provider's message id (not the id itself: some providers' ids are
    /// guessable sequences).
    pub reply_id: String,
    pub channel: String,
    pub language: ReplyLanguage,
}

impl ReplyDetail {
    pub fn new(
        detail_type: &str,
        session_id: Option<&str>,
        message_id: &str,
        language: ReplyLanguage,
    ) -> Self {
        let reply_id = reply_id(message_id);
        Self {
            schema_version: crate::SCHEMA_VERSION,
            event_id: digest_hex(&[detail_type.as_bytes(), reply_id.as_bytes()], 16),
            session_id: session_id.map(str::to_owned),
            reply_id,
            channel: "sms".to_owned(),
            language,
        }
    }
}

macro_rules! reply_event {
    ($name:ident, $detail_type:literal, $schema:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        pub struct $name(pub ReplyDetail);

        impl $name {
            pub fn new(
                session_id: Option<&str>,
                message_id: &str,
                language: ReplyLanguage,
            ) -> Self {
                Self(ReplyDetail::new(
                    $detail_type,
                    session_id,
                    message_id,
                    language,
                ))
            }
        }

        impl PipelineEvent for $name {
            const DETAIL_TYPE: &'static str = $detail_type;
            const SCHEMA_NAME: &'static str = $schema;
            fn event_id(&self) -> &str {
                &self.0.event_id
            }
            fn session_id(&self) -> Option<&str> {
                self.0.session_id.as_deref()
            }
        }
    };
}

reply_event!(
    AppointmentConfirmed,
    "Appointment Confirmed",
    "appointment-confirmed",
    "The patient confirmed their next appointment by text."
);
reply_event!(
    RescheduleRequested,
    "Reschedule Requested",
    "reschedule-requested",
    "The patient asked by text to move their next appointment (staff follow up)."
);
reply_event!(
    PatientOptedOut,
    "Patient Opted Out",
    "patient-opted-out",
    "The number opted out of SMS: no text goes to it until it opts back in."
);
reply_event!(
    PatientOptedIn,
    "Patient Opted In",
    "patient-opted-in",
    "The number opted back in to SMS."
);
reply_event!(
    PatientMessageReceived,
    "Patient Message Received",
    "patient-message-received",
    "A text that is no keyword: for staff to read in the messaging platform."
);

/// The `detail-type`s of the reply events.
pub const REPLY_DETAIL_TYPES: [&str; 5] = [
    AppointmentConfirmed::DETAIL_TYPE,
    RescheduleRequested::DETAIL_TYPE,
    PatientOptedOut::DETAIL_TYPE,
    PatientOptedIn::DETAIL_TYPE,
    PatientMessageReceived::DETAIL_TYPE,
];

#[cfg(test)]
mod tests {
    use super::*;
    use ReplyIntent::*;
    use ReplyLanguage::*;

    #[test]
    fn keywords_in_both_languages_ignoring_case_spaces_and_punctuation() {
        for (body, expected) in [
            ("STOP", (OptOut, En)),
            (" stop. ", (OptOut, En)),
            ("Stop!", (OptOut, En)),
            ("S T O P", (OptOut, En)),
            ("cancel", (OptOut, En)),
            ("Unsubscribe", (OptOut, En)),
            ("stopall", (OptOut, En)),
            ("parar", (OptOut, Es)),
            ("Alto", (OptOut, Es)),
            ("start", (OptIn, En)),
            ("Yes", (OptIn, En)),
            ("unstop", (OptIn, En)),
            ("Comenzar", (OptIn, Es)),
            ("help", (Help, En)),
            ("info?", (Help, En)),
            ("Ayuda", (Help, Es)),
            ("CONFIRM", (Confirm, En)),
            ("c", (Confirm, En)),
            ("Confirmar", (Confirm, Es)),
            ("confirmó", (Confirm, Es)),
            ("reschedule", (Reschedule, En)),
            ("R", (Reschedule, En)),
            ("cambiar", (Reschedule, Es)),
            ("Reprogramar.", (Reschedule, Es)),
        ] {
            assert_eq!(classify_reply(body), expected, "{body:?}");
        }
    }

    #[test]
    fn look_alikes_are_messages_not_keywords() {
        for body in [
            "stop by tomorrow?",
            "Can I cancel my appointment?",
            "yes please confirm",
            "I'd like to reschedule",
            "stopping",
            "",
            "🙂",
            "C.R.",
        ] {
            assert_eq!(classify_reply(body).0, Other, "{body:?}");
        }
    }

    #[test]
    fn sns_two_way_messages_parse_raw_or_enveloped() {
        let raw = serde_json::json!({"originationNumber": "+15551230000", "destinationNumber": "+15559870000",
            "messageKeyword": "KEYWORD_1", "messageBody": "STOP", "inboundMessageId": "abc-1",
            "previousPublishedMessageId": "p-1"})
        .to_string();
        let parsed = InboundSms::from_sns(&raw).unwrap();
        assert_eq!(
            (parsed.from.as_str(), parsed.body.as_str()),
            ("+15551230000", "STOP")
        );
        let envelope =
            serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": raw})
                .to_string();
        assert_eq!(InboundSms::from_sns(&envelope).unwrap(), parsed);
        assert!(InboundSms::from_sns("{\"messageBody\": \"hi\"}").is_none());
    }

    #[test]
    fn reply_events_carry_ids_only_and_are_stable() {
        let a = AppointmentConfirmed::new(Some("s-1"), "SM123", En);
        assert_eq!(a, AppointmentConfirmed::new(Some("s-1"), "SM123", En));
        assert_ne!(a.0.reply_id, "SM123");
        let text = serde_json::to_string(&a).unwrap();
        assert!(!text.contains("SM123"), "{text}");
    }
}
