//! The `replies` stage: a patient's text back becomes an opt-out or opt-in (the
//! suppression list every SMS is checked against), a HELP answer, or an event for the
//! clinic (`Appointment Confirmed`, `Reschedule Requested`, `Patient Message Received`).
//!
//! Numbers are never keys: the number is turned into a keyed hash ([`PhoneKey`],
//! HMAC-SHA256 with a per-deployment secret) that finds the patient's sessions
//! (`SessionStore::sessions_for_phone`) and keys the suppression list. Events carry ids
//! only; the number and the text stay on the replies queue and in no log.
//!
//! Decisions are pure ([`next_session`], [`classify_reply`]); the stage looks up, writes and
//! publishes around them. Idempotent: the suppression list is a set, events and the HELP
//! answer's intent are derived from the provider's message id.

use crate::config::{ConfigError, Env, Secret, TwilioCredentials};
use crate::error::Reason;
use crate::error::{PortResultExt, StageError};
pub use crate::phone_key::PhoneKey;
use crate::ports::{EventPublisher, NotificationQueue, OutgoingEvent, SessionStore, Suppressions};
use crate::session_state::SessionState;
use jiff::Timestamp;
use telepipe_events::notify::{NotificationKind, NotificationRequest, Recipient};
use telepipe_events::replies::{
    classify_reply, AppointmentConfirmed, InboundSms, PatientMessageReceived, PatientOptedIn,
    PatientOptedOut, ReplyIntent, ReplyLanguage, RescheduleRequested,
};
use telepipe_events::sessions::ContactChannel;
use tracing::info;

/// The stage name used in dead letters, metrics and logs.
pub const STAGE: &str = "replies";

/// The `replies` stage's settings.
#[derive(Debug, Clone)]
pub struct RepliesConfig {
    pub phone_key: PhoneKey,
}

/// The ports `replies` touches.
pub struct RepliesPorts<'a, St, Su, Q, P, A> {
    pub sessions: &'a St,
    pub suppressions: &'a Su,
    pub notifications: &'a Q,
    pub events: &'a P,
    /// Opt-outs and opt-ins are audited (who: the patient's keyed number; never the number).
    pub audit: Option<&'a A>,
}

/// What a reply led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyOutcome {
    pub intent: ReplyIntent,
    /// The session the number matched, if any.
    pub session_id: Option<String>,
    /// A HELP answer was enqueued.
    pub answered: bool,
}

/// Pure: the patient's next session among those the number matched: not cancelled, not
/// ended, not over (start + duration after `now`), earliest first.
pub fn next_session(candidates: &[SessionState], now: Timestamp) -> Option<&SessionState> {
    candidates
        .iter()
        .filter(|s| !s.is_cancelled() && !s.has_ended() && s.booking.is_some())
        .filter_map(|s| {
            let timing = s.timing.as_ref()?;
            let end = timing
                .start
                .checked_add(jiff::SignedDuration::from_mins(i64::from(
                    timing.duration_minutes,
                )))
                .ok()?;
            (end > now).then_some((timing.start, s))
        })
        .min_by_key(|(start, s)| (*start, s.session_id.clone()))
        .map(|(_, s)| s)
}

/// Reads a replies-queue message: telepipe's own `InboundSms` JSON (from the webhook or
/// `telepipe sms receive`), or what AWS End User Messaging SMS publishes through SNS.
pub fn parse_inbound(body: &str) -> Result<InboundSms, StageError> {
    serde_json::from_str::<InboundSms>(body)
        .ok()
        .or_else(|| InboundSms::from_sns(body))
        .ok_or_else(|| {
            StageError::permanent(
                Reason::MalformedInboundSms,
                "neither an inbound SMS nor an SNS two-way message",
            )
        })
}

/// Handles one replies-queue message at `now`.
pub async fn handle_message<St, Su, Q, P, A>(
    ports: &RepliesPorts<'_, St, Su, Q, P, A>,
    config: &RepliesConfig,
    body: &str,
    now: Timestamp,
) -> Result<ReplyOutcome, StageError>
where
    St: SessionStore,
    Su: Suppressions,
    Q: NotificationQueue,
    P: EventPublisher,
    A: crate::ports::AuditLog,
{
    let sms = parse_inbound(body)?;
    if !crate::notifier::address::is_e164(&sms.from) {
        return Err(StageError::permanent(
            Reason::InvalidSender,
            "the sender is not an E.164 number",
        ));
    }
    let (mut intent, language) = classify_reply(&sms.body);
    // Twilio's Advanced Opt-Out has already decided for its own keyword lists.
    match sms.opt_out_type.as_deref() {
        Some("STOP") => intent = ReplyIntent::OptOut,
        Some("START") => intent = ReplyIntent::OptIn,
        Some("HELP") => intent = ReplyIntent::Help,
        _ => {}
    }
    let key = config.phone_key.digest(&sms.from);
    let context = || {
        format!(
            "reply={}",
            telepipe_events::replies::reply_id(&sms.message_id)
        )
    };

    let mut candidates = Vec::new();
    for session_id in ports
        .sessions
        .sessions_for_phone(&key)
        .await
        .context(context)?
    {
        if let Some(stored) = ports.sessions.load(&session_id).await.context(context)? {
            // An index item left from an earlier number of the booking is not this sender.
            if stored.state.patient_phone_key.as_deref() == Some(key.as_str()) {
                candidates.push(stored.state);
            }
        }
    }
    let session = next_session(&candidates, now).map(|s| s.session_id.clone());
    let session_ref = session.as_deref();
    if let Some(id) = session_ref {
        tracing::Span::current().record("session_id", id);
    }

    if let (Some(audit), ReplyIntent::OptOut | ReplyIntent::OptIn) = (ports.audit, intent) {
        let action = if intent == ReplyIntent::OptOut {
            telepipe_events::audit::AuditAction::OptedOut
        } else {
            telepipe_events::audit::AuditAction::OptedIn
        };
        let entry = telepipe_events::audit::AuditEntry::new(
            &format!("patient:{key}"),
            action,
            session_ref,
            vec![
                telepipe_events::replies::reply_id(&sms.message_id),
                "channel:sms".to_owned(),
            ],
            now.as_millisecond(),
        );
        audit.append(&entry).await.context(context)?;
    }
    let mut answered = false;
    let event = match intent {
        ReplyIntent::OptOut => {
            ports
                .suppressions
                .suppress(&key, ContactChannel::Sms, "stop")
                .await
                .context(context)?;
            OutgoingEvent::from_event(&PatientOptedOut::new(
                session_ref,
                &sms.message_id,
                language,
            ))
        }
        ReplyIntent::OptIn => {
            ports
                .suppressions
                .lift(&key, ContactChannel::Sms)
                .await
                .context(context)?;
            OutgoingEvent::from_event(&PatientOptedIn::new(session_ref, &sms.message_id, language))
        }
        ReplyIntent::Help => {
            if let Some(id) = session_ref {
                ports
                    .notifications
                    .enqueue(&help_request(id, &sms.message_id))
                    .await
                    .context(context)?;
                answered = true;
            }
            OutgoingEvent::from_event(&PatientMessageReceived::new(
                session_ref,
                &sms.message_id,
                language,
            ))
        }
        ReplyIntent::Confirm if session.is_some() => OutgoingEvent::from_event(
            &AppointmentConfirmed::new(session_ref, &sms.message_id, language),
        ),
        ReplyIntent::Reschedule if session.is_some() => OutgoingEvent::from_event(
            &RescheduleRequested::new(session_ref, &sms.message_id, language),
        ),
        // A confirmation with no upcoming session, or any other text: for staff.
        _ => OutgoingEvent::from_event(&PatientMessageReceived::new(
            session_ref,
            &sms.message_id,
            language,
        )),
    };
    ports.events.publish(&event).await.context(context)?;
    crate::metrics::count(&[("Intent", intent_name(intent))], "Replies", 1);
    info!(
        intent = intent_name(intent),
        language = language_name(language),
        matched = session.is_some(),
        answered,
        "reply handled"
    );
    Ok(ReplyOutcome {
        intent,
        session_id: session,
        answered,
    })
}

/// The HELP answer: one intent per inbound message, so a redelivery answers once.
fn help_request(session_id: &str, message_id: &str) -> NotificationRequest {
    let digest = telepipe_events::ids::digest_hex(&[b"help", message_id.as_bytes()], 4);
    let sequence = u32::from_str_radix(&digest, 16).unwrap_or(0);
    NotificationRequest::new(
        session_id,
        NotificationKind::Help,
        Recipient::Patient,
        ContactChannel::Sms,
        None,
        None,
        sequence,
    )
}

fn intent_name(intent: ReplyIntent) -> &'static str {
    match intent {
        ReplyIntent::OptOut => "opt_out",
        ReplyIntent::OptIn => "opt_in",
        ReplyIntent::Help => "help",
        ReplyIntent::Confirm => "confirm",
        ReplyIntent::Reschedule => "reschedule",
        ReplyIntent::Other => "other",
    }
}

fn language_name(language: ReplyLanguage) -> &'static str {
    language.as_str()
}

/// The `sms-inbound` webhook's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundConfig {
    /// `TELEPIPE_TWILIO_WEBHOOK_URL` (optional): the URL exactly as configured in Twilio
    /// (signatures are computed over it), for a custom domain; unset, the function URL
    /// the request came to (its domain as Lambda reports it, never a request header).
    pub webhook_url: Option<String>,
    /// `TELEPIPE_TWILIO_SECRET_ARN`, else `TELEPIPE_TWILIO_ACCOUNT_SID` +
    /// `TELEPIPE_TWILIO_AUTH_TOKEN`: whose auth token signs the webhooks.
    pub credentials: TwilioCredentials,
    /// `TELEPIPE_REPLIES_QUEUE_URL` (required): where valid messages go.
    pub replies_queue_url: String,
}

impl InboundConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let webhook_url = env.optional("TELEPIPE_TWILIO_WEBHOOK_URL");
        if webhook_url
            .as_ref()
            .is_some_and(|url| !url.starts_with("https://"))
        {
            return Err(ConfigError {
                variable: "TELEPIPE_TWILIO_WEBHOOK_URL",
                problem: "must be the https URL configured in Twilio".into(),
            });
        }
        Ok(Self {
            webhook_url,
            credentials: match env.optional("TELEPIPE_TWILIO_SECRET_ARN") {
                Some(secret_id) => TwilioCredentials::SecretsManager { secret_id },
                None => TwilioCredentials::Env {
                    account_sid: env.or("TELEPIPE_TWILIO_ACCOUNT_SID", ""),
                    auth_token: Secret(env.required("TELEPIPE_TWILIO_AUTH_TOKEN")?),
                },
            },
            replies_queue_url: env.required("TELEPIPE_REPLIES_QUEUE_URL")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_stable_keys_that_depend_on_the_secret() {
        let key = PhoneKey::new(b"secret-1");
        let a = key.digest("+15551230000");
        assert_eq!(a.len(), 32);
        assert_eq!(a, key.digest(" +15551230000 "));
        assert_ne!(a, PhoneKey::new(b"secret-2").digest("+15551230000"));
        assert!(!a.contains("5551230000"));
        assert_eq!(format!("{key:?}"), "PhoneKey(<secret>)");
    }
}
