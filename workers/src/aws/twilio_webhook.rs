//! Twilio's inbound-SMS webhook behind a Lambda function URL (`sms-inbound`): validate
//! `X-Twilio-Signature`, turn the form into an `InboundSms` for the replies queue, answer
//! at once with empty TwiML. The webhook does no other work: the replies stage does.
//!
//! Signature (Twilio's "Webhooks security"): base64 of HMAC-SHA1 keyed with the auth
//! token over the URL exactly as configured in Twilio (query string included) followed by
//! every POST parameter sorted by name, each name then value with no separator; compared
//! in constant time. The URL is the configured one, never rebuilt from request headers:
//! a function URL behind a custom domain would not match.

use crate::config::Secret;
use base64::Engine;
use hmac::{Hmac, Mac};
use telepipe_events::replies::{InboundProvider, InboundSms};

/// The longest SMS body accepted (Twilio concatenates up to 1,600 characters).
pub const MAX_BODY_CHARS: usize = 1_600;

/// Empty TwiML: no reply from the webhook (Twilio answers its own keywords itself).
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

/// The signature Twilio sends for `url` and form `params` under `auth_token`.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mac = signed(auth_token, url, params);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn signed(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<sha1::Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// Whether `signature` (the header's base64) is Twilio's for this request; constant time.
pub fn verify_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    signed(auth_token, url, params)
        .verify_slice(&expected)
        .is_ok()
}

/// What the webhook does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookDecision {
    /// Signed and well-formed: queue it, answer 200 with empty TwiML.
    Accept(InboundSms),
    /// 403: no or a wrong signature (the reason is a metric dimension, never logged with values).
    Forbidden(&'static str),
    /// 400: not a form Twilio sends, or a body over the cap.
    BadRequest(&'static str),
}

/// The URL Twilio called: the configured one, else the function URL rebuilt from what
/// Lambda reports (`requestContext.domainName`, `rawPath`, `rawQueryString`), which a
/// caller cannot set.
pub fn called_url(event: &serde_json::Value, configured: Option<&str>) -> Option<String> {
    if let Some(url) = configured {
        return Some(url.to_owned());
    }
    let domain = event["requestContext"]["domainName"].as_str()?;
    let path = event["rawPath"].as_str().unwrap_or("/");
    let query = event["rawQueryString"].as_str().unwrap_or("");
    Some(if query.is_empty() {
        format!("https://{domain}{path}")
    } else {
        format!("https://{domain}{path}?{query}")
    })
}

/// Pure: the decision for a function-URL event (payload 2.0: lower-case headers, a body
/// that may be base64).
pub fn decide(
    event: &serde_json::Value,
    webhook_url: &str,
    auth_token: &Secret,
) -> WebhookDecision {
    let header = |name: &str| {
        event["headers"]
            .as_object()
            .and_then(|headers| {
                headers
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .and_then(|(_, value)| value.as_str())
            })
            .map(str::to_owned)
    };
    let Some(signature) = header("x-twilio-signature") else {
        return WebhookDecision::Forbidden("missing_signature");
    };
    let raw = event["body"].as_str().unwrap_or_default();
    let body = if event["isBase64Encoded"].as_bool() == Some(true) {
        match base64::engine::general_purpose::STANDARD.decode(raw) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => return WebhookDecision::BadRequest("body_not_utf8"),
            },
            Err(_) => return WebhookDecision::BadRequest("body_not_base64"),
        }
    } else {
        raw.to_owned()
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    // The signature first: an unsigned request learns nothing, not even what is malformed.
    if !verify_twilio_signature(auth_token.expose(), webhook_url, &params, &signature) {
        return WebhookDecision::Forbidden("bad_signature");
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let (Some(from), Some(message_id)) = (field("From"), field("MessageSid")) else {
        return WebhookDecision::BadRequest("not_an_sms_webhook");
    };
    let text = field("Body").unwrap_or_default();
    if text.chars().count() > MAX_BODY_CHARS {
        return WebhookDecision::BadRequest("body_too_long");
    }
    WebhookDecision::Accept(InboundSms {
        provider: InboundProvider::Twilio,
        message_id,
        from,
        to: field("To").unwrap_or_default(),
        body: text,
        // Unknown parameters Twilio adds over time are accepted and ignored.
        opt_out_type: field("OptOutType"),
    })
}

/// The function-URL response for a decision.
pub fn response(decision: &WebhookDecision) -> serde_json::Value {
    let (status, body, content_type) = match decision {
        WebhookDecision::Accept(_) => (200, EMPTY_TWIML, "text/xml"),
        WebhookDecision::Forbidden(_) => (403, "forbidden", "text/plain"),
        WebhookDecision::BadRequest(_) => (400, "bad request", "text/plain"),
    };
    serde_json::json!({
        "statusCode": status,
        "headers": {"content-type": content_type},
        "body": body,
    })
}

/// Serves one webhook request: decides, queues an accepted message, counts refusals
/// (metric `WebhookRejected` by reason), and answers. Nothing about the sender or the text
/// is logged. A queue that cannot be reached answers 500, so Twilio reports the failure.
pub async fn serve<Q: crate::ports::RefeedQueue>(
    event: &serde_json::Value,
    webhook_url: Option<&str>,
    auth_token: &Secret,
    replies: &Q,
) -> serde_json::Value {
    crate::metrics::collect(crate::metrics::current(), async {
        let decision = match called_url(event, webhook_url) {
            Some(url) => decide(event, &url, auth_token),
            None => WebhookDecision::BadRequest("no_url"),
        };
        match &decision {
            WebhookDecision::Accept(sms) => {
                let body = serde_json::to_string(sms).expect("inbound SMS serializes");
                if let Err(err) = replies.send(&body).await {
                    tracing::error!(error = %err, "could not queue the inbound message");
                    return serde_json::json!({"statusCode": 500, "body": "try again"});
                }
                crate::metrics::count(&[("Stage", "sms-inbound")], "WebhookAccepted", 1);
            }
            WebhookDecision::Forbidden(reason) | WebhookDecision::BadRequest(reason) => {
                tracing::warn!(reason = *reason, "webhook request refused");
                crate::metrics::count(&[("Reason", *reason)], "WebhookRejected", 1);
            }
        }
        response(&decision)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_signature_matches_twilios_published_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            twilio_signature("12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify_twilio_signature(
            "12345",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify_twilio_signature(
            "12346",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify_twilio_signature(
            "12345",
            url,
            &params,
            "not base64!"
        ));
    }

    fn event(body: &str, signature: Option<&str>, base64: bool) -> serde_json::Value {
        let mut headers = serde_json::json!({"content-type": "application/x-www-form-urlencoded"});
        if let Some(sig) = signature {
            headers["x-twilio-signature"] = sig.into();
        }
        let body = if base64 {
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            body.to_owned()
        };
        serde_json::json!({"version": "2.0", "headers": headers, "body": body, "isBase64Encoded": base64,
            "requestContext": {"http": {"method": "POST"}}})
    }

    const URL: &str = "https://sms.example.org/twilio";

    fn signed_event(params: &[(&str, &str)], base64: bool) -> serde_json::Value {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let signature = twilio_signature("tok", URL, &pairs(params));
        event(&body, Some(&signature), base64)
    }

    #[test]
    fn signed_requests_are_accepted_and_others_refused_before_anything_is_read() {
        let token = Secret::new("tok".into());
        let params = [
            ("MessageSid", "SM1"),
            ("From", "+15551230000"),
            ("To", "+15559870000"),
            ("Body", "Stop"),
            ("NumMedia", "0"),
            ("SomeNewTwilioParam", "x"),
        ];
        for base64 in [false, true] {
            let WebhookDecision::Accept(sms) = decide(&signed_event(&params, base64), URL, &token)
            else {
                panic!("not accepted")
            };
            assert_eq!(
                (sms.from.as_str(), sms.body.as_str()),
                ("+15551230000", "Stop")
            );
        }
        assert_eq!(
            decide(&event("From=%2B1", None, false), URL, &token),
            WebhookDecision::Forbidden("missing_signature")
        );
        let mut replayed = signed_event(&params, false);
        replayed["body"] = replayed["body"]
            .as_str()
            .unwrap()
            .replace("Body=Stop", "Body=Start")
            .into();
        assert_eq!(
            decide(&replayed, URL, &token),
            WebhookDecision::Forbidden("bad_signature"),
            "a replayed signature with altered parameters"
        );
        assert_eq!(
            decide(
                &signed_event(&params, false),
                "https://other.example.org/twilio",
                &token
            ),
            WebhookDecision::Forbidden("bad_signature")
        );
        let long = "x".repeat(MAX_BODY_CHARS + 1);
        let too_long = [
            ("MessageSid", "SM2"),
            ("From", "+15551230000"),
            ("Body", long.as_str()),
        ];
        assert_eq!(
            decide(&signed_event(&too_long, false), URL, &token),
            WebhookDecision::BadRequest("body_too_long")
        );
        assert_eq!(
            decide(&signed_event(&[("Foo", "bar")], false), URL, &token),
            WebhookDecision::BadRequest("not_an_sms_webhook")
        );
        assert_eq!(
            response(&WebhookDecision::Forbidden("x"))["statusCode"],
            403
        );
        assert_eq!(
            response(&WebhookDecision::Accept(InboundSms {
                provider: InboundProvider::Twilio,
                message_id: "m".into(),
                from: "f".into(),
                to: String::new(),
                body: String::new(),
                opt_out_type: None,
            }))["body"],
            EMPTY_TWIML
        );
    }
}
