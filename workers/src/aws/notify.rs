//! Notification delivery on AWS: the notifications queue (SQS), SMS through Amazon SNS
//! (or Twilio, `super::twilio`), email through Amazon SES v2, and the router that picks
//! a sender by channel.

use super::twilio::TwilioSms;
use super::{classify, AwsContext};
use crate::error::{PortError, PortErrorKind};
use crate::ports::{MessageSender, NotificationQueue, OutboundMessage, SendReceipt};
use telepipe_events::notify::NotificationRequest;
use telepipe_events::sessions::ContactChannel;

/// `NotificationQueue` on SQS.
#[derive(Clone)]
pub struct SqsNotifications {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsNotifications {
    pub fn new(context: &AwsContext, queue_url: String) -> Self {
        Self::from_client(context.sqs(), queue_url)
    }

    pub fn from_client(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

impl NotificationQueue for SqsNotifications {
    async fn enqueue(&self, request: &NotificationRequest) -> Result<(), PortError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::to_string(request).expect("requests serialize"))
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "SendMessage"))?;
        Ok(())
    }
}

/// SMS through `sns:Publish` to a phone number, as transactional messages.
#[derive(Clone)]
pub struct SnsSms {
    client: aws_sdk_sns::Client,
    /// `TELEPIPE_SNS_ORIGINATION_NUMBER` (optional): the registered number or sender id to send from.
    origination_number: Option<String>,
}

impl SnsSms {
    pub fn new(context: &AwsContext, origination_number: Option<String>) -> Self {
        // At most once: the SDK must not resend a publish whose first attempt may have
        // been accepted (a timeout or 5xx proves nothing); the notifier decides.
        let config = aws_sdk_sns::config::Builder::from(&context.sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Self::from_client(aws_sdk_sns::Client::from_conf(config), origination_number)
    }

    pub fn from_client(client: aws_sdk_sns::Client, origination_number: Option<String>) -> Self {
        Self {
            client,
            origination_number,
        }
    }
}

fn sns_attribute(value: &str) -> aws_sdk_sns::types::MessageAttributeValue {
    aws_sdk_sns::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

impl MessageSender for SnsSms {
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, PortError> {
        let mut request = self
            .client
            .publish()
            .phone_number(&message.to)
            .message(&message.body)
            // Transactional: delivered with priority, and not subject to marketing opt-out rules.
            .message_attributes("AWS.SNS.SMS.SMSType", sns_attribute("Transactional"));
        if let Some(number) = &self.origination_number {
            request =
                request.message_attributes("AWS.MM.SMS.OriginationNumber", sns_attribute(number));
        }
        let output = request
            .send()
            .await
            .map_err(|e| classify(&e, "sns", "Publish"))?;
        Ok(SendReceipt {
            provider: "sns",
            provider_message_id: output.message_id,
        })
    }
}

/// Email through `ses:SendEmail` (v2), plain text.
#[derive(Clone)]
pub struct SesEmail {
    client: aws_sdk_sesv2::Client,
    /// `TELEPIPE_EMAIL_FROM` (required for email): a verified identity.
    from: String,
    /// `TELEPIPE_SES_CONFIGURATION_SET` (optional): for bounce/complaint tracking.
    configuration_set: Option<String>,
}

impl SesEmail {
    pub fn new(context: &AwsContext, from: String, configuration_set: Option<String>) -> Self {
        // At most once: no SDK retries (see `SnsSms::new`).
        let config = aws_sdk_sesv2::config::Builder::from(&context.sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Self::from_client(
            aws_sdk_sesv2::Client::from_conf(config),
            from,
            configuration_set,
        )
    }

    pub fn from_client(
        client: aws_sdk_sesv2::Client,
        from: String,
        configuration_set: Option<String>,
    ) -> Self {
        Self {
            client,
            from,
            configuration_set,
        }
    }
}

impl MessageSender for SesEmail {
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, PortError> {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let invalid = || PortError::new(PortErrorKind::InvalidRequest, "ses", "SendEmail");
        let text = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .map_err(|_| invalid())
        };
        let email = Message::builder()
            .subject(text(message.subject.as_deref().unwrap_or(""))?)
            .body(Body::builder().text(text(&message.body)?).build())
            .build();
        let output = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&message.to).build())
            .content(EmailContent::builder().simple(email).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| classify(&e, "ses", "SendEmail"))?;
        Ok(SendReceipt {
            provider: "ses",
            provider_message_id: output.message_id,
        })
    }
}

/// The SMS provider a deployment chose (`TELEPIPE_SMS_PROVIDER`).
#[derive(Clone)]
pub enum SmsSender {
    Sns(SnsSms),
    Twilio(Box<TwilioSms>),
}

impl MessageSender for SmsSender {
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, PortError> {
        match self {
            Self::Sns(sns) => sns.send(message).await,
            Self::Twilio(twilio) => twilio.send(message).await,
        }
    }
}

/// Routes each message to the sender of its channel.
pub struct Channels<Sms, Email> {
    pub sms: Sms,
    /// `None` when no sender address is configured: email requests then fail permanently.
    pub email: Option<Email>,
}

impl<Sms: MessageSender, Email: MessageSender> MessageSender for Channels<Sms, Email> {
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, PortError> {
        match message.channel {
            ContactChannel::Sms => self.sms.send(message).await,
            ContactChannel::Email => match &self.email {
                Some(email) => email.send(message).await,
                None => Err(
                    PortError::new(PortErrorKind::InvalidRequest, "ses", "SendEmail")
                        .with_code("EmailNotConfigured"),
                ),
            },
        }
    }
}
