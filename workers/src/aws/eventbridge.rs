//! `EventPublisher` on Amazon EventBridge (`PutEvents` to the configured bus).

use super::{kind_from_code, AwsContext};
use crate::config::EventsConfig;
use crate::error::{PortError, PortErrorKind};
use crate::ports::{EventPublisher, OutgoingEvent};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

#[derive(Clone)]
pub struct EventBridgePublisher {
    client: Client,
    config: EventsConfig,
}

impl EventBridgePublisher {
    pub fn new(context: &AwsContext, config: EventsConfig) -> Self {
        Self {
            client: context.eventbridge(),
            config,
        }
    }

    pub fn from_client(client: Client, config: EventsConfig) -> Self {
        Self { client, config }
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), PortError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.config.bus_name)
            .source(&self.config.source)
            .detail_type(event.detail_type)
            .detail(&event.detail)
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| super::classify(&e, "events", "PutEvents"))?;
        if output.failed_entry_count() > 0 {
            // A rejected entry arrives in a 200 response: classify it by its own code.
            let code = output
                .entries()
                .first()
                .and_then(|e| e.error_code())
                .unwrap_or("UnknownEntryError");
            let kind = match kind_from_code(Some(code), None) {
                PortErrorKind::Other => PortErrorKind::Unavailable,
                kind => kind,
            };
            return Err(PortError::new(kind, "events", "PutEvents").with_code(code));
        }
        Ok(())
    }
}
