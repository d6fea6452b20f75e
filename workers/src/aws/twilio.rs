//! SMS through Twilio's REST API (`POST /2010-04-01/Accounts/{sid}/Messages.json`), over
//! the hyper/rustls stack the AWS SDK already compiles.
//!
//! Credentials come from Secrets Manager (`TELEPIPE_TWILIO_SECRET_ARN`, a JSON secret
//! `{"account_sid": ..., "auth_token": ...}`) or the environment
//! (`TELEPIPE_TWILIO_ACCOUNT_SID`, `TELEPIPE_TWILIO_AUTH_TOKEN`). The token is held in a
//! type whose `Debug` prints nothing, and no log line carries it.
//!
//! Errors: 429 and 5xx are retryable; 401/403 are access errors; any other 4xx (invalid
//! or unreachable number `21211`, `21614`, opted out `21610`, ...) is permanent, with
//! Twilio's code kept as `twilio:{code}`.

use super::AwsContext;
use crate::config::{Secret, TwilioCredentials};
use crate::error::{PortError, PortErrorKind};
use crate::notifier::TwilioConfig;
use crate::ports::{MessageSender, OutboundMessage, SendReceipt};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use std::time::Duration;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// `MessageSender` for SMS on Twilio.
#[derive(Clone)]
pub struct TwilioSms {
    client: HttpsClient,
    account_sid: String,
    authorization: Secret,
    from: String,
    api_base: String,
    timeout: Duration,
}

#[derive(serde::Deserialize)]
struct SecretJson {
    account_sid: String,
    auth_token: String,
}

#[derive(serde::Deserialize)]
struct TwilioAnswer {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    code: Option<i64>,
}

/// Twilio's account SID and auth token, from the environment or read once from Secrets
/// Manager (a JSON secret with `account_sid` and `auth_token`). The one place both the
/// sender and the inbound webhook get them.
pub async fn credentials(
    context: &AwsContext,
    source: TwilioCredentials,
) -> Result<(String, Secret), PortError> {
    match source {
        TwilioCredentials::Env {
            account_sid,
            auth_token,
        } => Ok((account_sid, auth_token)),
        TwilioCredentials::SecretsManager { secret_id } => {
            let text = context.secret_string(&secret_id).await?;
            let parsed: SecretJson =
                serde_json::from_str::<SecretJson>(&text)
                    .ok()
                    .ok_or_else(|| {
                        PortError::new(
                            PortErrorKind::InvalidRequest,
                            "secretsmanager",
                            "GetSecretValue",
                        )
                        .with_code("SecretNotTwilioJson")
                    })?;
            Ok((parsed.account_sid, Secret::new(parsed.auth_token)))
        }
    }
}

impl TwilioSms {
    /// Resolves the credentials (reading the secret once, at start-up) and builds the client.
    pub async fn new(context: &AwsContext, config: TwilioConfig) -> Result<Self, PortError> {
        let (account_sid, auth_token) = credentials(context, config.credentials).await?;
        let auth_token = auth_token.expose().to_owned();
        Self::with_credentials(&account_sid, &auth_token, &config.from, &config.api_base)
    }

    pub fn with_credentials(
        account_sid: &str,
        auth_token: &str,
        from: &str,
        api_base: &str,
    ) -> Result<Self, PortError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            // The SDK's TLS provider: one crypto library in the binary.
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|_| PortError::new(PortErrorKind::Unavailable, "twilio", "LoadTrustRoots"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{account_sid}:{auth_token}"));
        Ok(Self {
            client,
            account_sid: account_sid.to_owned(),
            authorization: Secret::new(format!("Basic {basic}")),
            from: from.to_owned(),
            api_base: api_base.trim_end_matches('/').to_owned(),
            timeout: Duration::from_secs(15),
        })
    }
}

/// Sorts a Twilio HTTP answer into a port error kind.
pub fn classify_twilio(status: u16) -> PortErrorKind {
    match status {
        429 => PortErrorKind::Throttled,
        401 | 403 => PortErrorKind::AccessDenied,
        404 => PortErrorKind::NotFound,
        408 => PortErrorKind::Timeout,
        500..=599 => PortErrorKind::Unavailable,
        400..=499 => PortErrorKind::InvalidRequest,
        _ => PortErrorKind::Other,
    }
}

/// The most of a Twilio response that is read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

impl MessageSender for TwilioSms {
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, PortError> {
        let error = |kind| PortError::new(kind, "twilio", "CreateMessage");
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("To", &message.to)
                .append_pair("Body", &message.body);
            if self.from.starts_with("MG") {
                form.append_pair("MessagingServiceSid", &self.from);
            } else {
                form.append_pair("From", &self.from);
            }
            form.finish()
        };
        let request = hyper::Request::post(format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, self.account_sid
        ))
        .header("authorization", self.authorization.expose())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(form)))
        .map_err(|_| error(PortErrorKind::InvalidRequest))?;

        let exchange = async {
            let response = self.client.request(request).await.map_err(|err| {
                // Refused before a request was written: provably not sent.
                if err.is_connect() {
                    error(PortErrorKind::Unavailable).never_sent()
                } else {
                    error(PortErrorKind::Other)
                }
            })?;
            let status = response.status().as_u16();
            // Twilio answers in a few hundred bytes; a larger body is read no further.
            let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|_| error(PortErrorKind::Unavailable).with_status(status))?
                .to_bytes();
            Ok::<_, PortError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| error(PortErrorKind::Timeout))??;
        // Twilio's error messages quote the number: only the code is kept.
        let answer: Option<TwilioAnswer> = serde_json::from_slice(&body).ok();
        if (200..300).contains(&status) {
            return Ok(SendReceipt {
                provider: "twilio",
                provider_message_id: answer.and_then(|a| a.sid),
            });
        }
        let mut err = error(classify_twilio(status)).with_status(status);
        if let Some(code) = answer.and_then(|a| a.code) {
            err = err.with_code(format!("twilio:{code}"));
        }
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    #[test]
    fn statuses_sort_into_retryable_and_permanent() {
        use crate::error::ErrorClass::*;
        for (status, class) in [
            (429, Retryable),
            (500, Retryable),
            (503, Retryable),
            (400, Permanent),
            (401, Permanent),
            (404, Permanent),
        ] {
            assert_eq!(classify_twilio(status).class(), class, "{status}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let config = TwilioConfig::from_env(&Env::from_pairs(&[
            ("TELEPIPE_TWILIO_ACCOUNT_SID", "AC123"),
            ("TELEPIPE_TWILIO_AUTH_TOKEN", "very-secret-token"),
            ("TELEPIPE_TWILIO_FROM", "+15005550006"),
        ]))
        .unwrap();
        assert!(!format!("{config:?}").contains("very-secret-token"));
        let missing = TwilioConfig::from_env(&Env::from_pairs(&[(
            "TELEPIPE_TWILIO_FROM",
            "+15005550006",
        )]))
        .unwrap_err();
        assert_eq!(missing.variable, "TELEPIPE_TWILIO_ACCOUNT_SID");
    }
}
