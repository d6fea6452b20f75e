//! Session state and notification idempotency records in one DynamoDB table.
//!
//! Key schema: partition key `pk` (S) = session id, sort key `sk` (S) = `state` for the
//! session's state or `intent#{intent_id}` for a notification's idempotency record, so
//! everything of a session is one `Query` away (what forgetting a session needs).
//! `expires_at` (N, epoch seconds) is the table's TTL attribute for idempotency records.
//!
//! State writes are conditional on the revision read (`rev`), claims on the record not
//! existing: both are DynamoDB conditional writes, atomic across concurrent consumers.

use super::{classify, AwsContext};
use crate::error::{PortError, PortErrorKind};
use crate::ports::{Claim, IntentLedger, IntentOutcome, SessionStore, StoredSession};
use crate::session_state::SessionState;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;

const STATE_SK: &str = "state";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn corrupt(operation: &'static str) -> PortError {
    PortError::new(PortErrorKind::InvalidRequest, "dynamodb", operation).with_code("CorruptItem")
}

/// Whether an SDK error is a failed condition (the expected outcome of a lost race).
fn is_condition_failure(err: &PortError) -> bool {
    err.kind == PortErrorKind::Conflict
}

/// `SessionStore` on DynamoDB.
#[derive(Clone)]
pub struct DynamoSessionStore {
    client: Client,
    table: String,
    /// How long a session's state is kept after the session ends (`expires_at`, the
    /// table's TTL attribute); `None` keeps it until `forget`.
    retention: Option<SignedDuration>,
}

impl DynamoSessionStore {
    pub fn new(context: &AwsContext, table: String) -> Self {
        Self::from_client(context.dynamodb(), table)
    }

    pub fn from_client(client: Client, table: String) -> Self {
        Self {
            client,
            table,
            retention: None,
        }
    }

    /// Keeps each session's state for `days` after the session ends (0 = until forget).
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention = (days > 0).then(|| SignedDuration::from_hours(24 * i64::from(days)));
        self
    }
}

impl SessionStore for DynamoSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<StoredSession>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(session_id))
            .key("sk", s(STATE_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "GetItem"))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let doc = get_s(&item, "doc").ok_or_else(|| corrupt("GetItem"))?;
        let state: SessionState = serde_json::from_str(doc).map_err(|_| corrupt("GetItem"))?;
        let revision = get_n(&item, "rev").ok_or_else(|| corrupt("GetItem"))? as u64;
        Ok(Some(StoredSession { state, revision }))
    }

    async fn save(&self, state: &SessionState, expected: Option<u64>) -> Result<u64, PortError> {
        let revision = expected.unwrap_or(0) + 1;
        // The number's index item (`phone#{key}`, one per session): how a text finds the
        // session. Written before the state (idempotently): a state write that lands while
        // this one fails would otherwise never be retried with it. A lookup re-reads the
        // state and checks the key, so an index item ahead of its state is harmless.
        if let Some(key) = &state.patient_phone_key {
            let mut index = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(format!("{PHONE_PREFIX}{key}")))
                .item("sk", s(&state.session_id));
            if let Some(at) = self
                .retention
                .and_then(|keep| crate::session_state::expires_at(state, keep))
            {
                index = index.item("expires_at", n(at.as_second()));
            }
            index
                .send()
                .await
                .map_err(|e| classify(&e, "dynamodb", "PutItem"))?;
        }
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&state.session_id))
            .item("sk", s(STATE_SK))
            .item(
                "doc",
                s(serde_json::to_string(state).expect("state serializes")),
            )
            .item("rev", n(revision))
            .item("updated_at", n(Timestamp::now().as_second()));
        if let Some(at) = self
            .retention
            .and_then(|keep| crate::session_state::expires_at(state, keep))
        {
            request = request.item("expires_at", n(at.as_second()));
        }
        request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(rev) => request
                .condition_expression("rev = :rev")
                .expression_attribute_values(":rev", n(rev)),
        };
        request
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "PutItem"))?;
        Ok(revision)
    }

    async fn sessions_for_phone(&self, phone_key: &str) -> Result<Vec<String>, PortError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("{PHONE_PREFIX}{phone_key}")))
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "Query"))?;
        Ok(output
            .items()
            .iter()
            .filter_map(|item| get_s(item, "sk").map(str::to_owned))
            .collect())
    }
}

/// Partition of a session's notification log (`notifylog#{session}`, sort key `{ms}#{intent}`).
pub const LOG_PREFIX: &str = "notifylog#";

/// Partition of the phone index items (`phone#{keyed hash}` → session ids).
pub const PHONE_PREFIX: &str = "phone#";
/// Partition of the suppression list items (`suppress#{keyed hash}`, sort key the channel).
pub const SUPPRESS_PREFIX: &str = "suppress#";

/// `Suppressions` on DynamoDB (the sessions table): one item per opted-out number and channel.
#[derive(Clone)]
pub struct DynamoSuppressions {
    client: Client,
    table: String,
}

impl DynamoSuppressions {
    pub fn new(context: &AwsContext, table: String) -> Self {
        Self::from_client(context.dynamodb(), table)
    }

    pub fn from_client(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

impl crate::ports::Suppressions for DynamoSuppressions {
    async fn is_suppressed(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
    ) -> Result<bool, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("{SUPPRESS_PREFIX}{phone_key}")))
            .key("sk", s(channel.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "GetItem"))?;
        Ok(output.item.is_some())
    }

    async fn suppress(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
        reason: &str,
    ) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("{SUPPRESS_PREFIX}{phone_key}")))
            .item("sk", s(channel.as_str()))
            .item("reason", s(reason))
            .item("at", n(Timestamp::now().as_second()))
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "PutItem"))?;
        Ok(())
    }

    async fn lift(
        &self,
        phone_key: &str,
        channel: telepipe_events::sessions::ContactChannel,
    ) -> Result<(), PortError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("{SUPPRESS_PREFIX}{phone_key}")))
            .key("sk", s(channel.as_str()))
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "DeleteItem"))?;
        Ok(())
    }
}

/// `IntentLedger` on DynamoDB (same table as the session state).
#[derive(Clone)]
pub struct DynamoIntentLedger {
    client: Client,
    table: String,
    window: SignedDuration,
    /// How long notification log lines are kept (`TELEPIPE_NOTIFICATION_LOG_DAYS`).
    log_retention: SignedDuration,
}

impl DynamoIntentLedger {
    pub fn new(context: &AwsContext, table: String, window: SignedDuration) -> Self {
        Self::from_client(context.dynamodb(), table, window)
    }

    pub fn from_client(client: Client, table: String, window: SignedDuration) -> Self {
        Self {
            client,
            table,
            window,
            log_retention: SignedDuration::from_hours(24 * 2557),
        }
    }

    /// Keeps notification log lines for `days`.
    pub fn with_log_days(mut self, days: u32) -> Self {
        self.log_retention = SignedDuration::from_hours(24 * i64::from(days.max(1)));
        self
    }

    fn sort_key(intent_id: &str) -> String {
        format!("intent#{intent_id}")
    }

    fn expires_at(&self, now: Timestamp) -> i64 {
        now.as_second() + self.window.as_secs()
    }
}

impl IntentLedger for DynamoIntentLedger {
    async fn log(&self, entry: &crate::ports::NotificationLogEntry) -> Result<(), PortError> {
        let expires = Timestamp::now()
            .checked_add(self.log_retention)
            .unwrap_or(Timestamp::MAX);
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("{LOG_PREFIX}{}", entry.session_id)))
            .item("sk", s(format!("{:013}#{}", entry.at_ms, entry.intent_id)))
            .item(
                "entry",
                s(serde_json::to_string(entry).expect("log entries serialize")),
            )
            .item("expires_at", n(expires.as_second()))
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "PutItem"))?;
        Ok(())
    }

    async fn claim(
        &self,
        session_id: &str,
        intent_id: &str,
        owner: &str,
        now: Timestamp,
    ) -> Result<Claim, PortError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(session_id))
            .item("sk", s(Self::sort_key(intent_id)))
            .item("status", s("claimed"))
            .item("owner", s(owner))
            .item("claimed_at", n(now.as_second()))
            .item("expires_at", n(self.expires_at(now)))
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "PutItem"));
        match put {
            Ok(_) => return Ok(Claim::Claimed),
            Err(err) if is_condition_failure(&err) => {}
            Err(err) => return Err(err),
        }
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(session_id))
            .key("sk", s(Self::sort_key(intent_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "GetItem"))?
            .item
            // Released between our write and read: the next delivery will claim it.
            .ok_or_else(|| PortError::new(PortErrorKind::Conflict, "dynamodb", "GetItem"))?;
        match get_s(&item, "status") {
            // Our own claim: the SDK retried a put whose first attempt had landed.
            Some("claimed") if get_s(&item, "owner") == Some(owner) => Ok(Claim::Claimed),
            Some("claimed") => {
                let at = get_n(&item, "claimed_at").ok_or_else(|| corrupt("GetItem"))?;
                Ok(Claim::InFlight {
                    claimed_at: Timestamp::from_second(at).map_err(|_| corrupt("GetItem"))?,
                })
            }
            Some("done") => {
                let outcome = get_s(&item, "outcome")
                    .and_then(|o| serde_json::from_str(o).ok())
                    .ok_or_else(|| corrupt("GetItem"))?;
                Ok(Claim::Completed(outcome))
            }
            _ => Err(corrupt("GetItem")),
        }
    }

    async fn complete(
        &self,
        session_id: &str,
        intent_id: &str,
        outcome: &IntentOutcome,
    ) -> Result<(), PortError> {
        let now = Timestamp::now();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(session_id))
            .item("sk", s(Self::sort_key(intent_id)))
            .item("status", s("done"))
            .item(
                "outcome",
                s(serde_json::to_string(outcome).expect("outcomes serialize")),
            )
            .item("completed_at", n(now.as_second()))
            .item("expires_at", n(self.expires_at(now)))
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "PutItem"))?;
        Ok(())
    }

    async fn release(
        &self,
        session_id: &str,
        intent_id: &str,
        owner: &str,
    ) -> Result<(), PortError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(session_id))
            .key("sk", s(Self::sort_key(intent_id)))
            .condition_expression("#owner = :owner AND #status = :claimed")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":claimed", s("claimed"))
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "DeleteItem"));
        match deleted {
            // Someone else's claim, or completed meanwhile: not ours to release.
            Err(err) if is_condition_failure(&err) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
