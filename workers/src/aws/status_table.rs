//! `StatusStore` on one DynamoDB table (`TELEPIPE_STATUS_TABLE`).
//!
//! Key schema (string keys `pk`, `sk`):
//!
//! | item | `pk` | `sk` | other attributes |
//! |---|---|---|---|
//! | transition | session id | `T#{recording}#{attempt:03}#{step}` | `transition_state`, `at_ms`, ... |
//! | current state | session id | `R#{recording}` | `state`, `since_ms`, `open_state` (open states only), ... |
//!
//! Global secondary indexes (projection ALL):
//! - `open-by-state`: `open_state` (S) / `since_ms` (N). Sparse: only current items in an
//!   open state carry `open_state`, so `stuck` is one query per open state.
//! - `by-state`: `transition_state` (S) / `at_ms` (N): transitions into a state since a
//!   time (`telepipe status --since 1h --state failed`).
//!
//! `expires_at` (N, epoch seconds) is set on every item for the table's TTL
//! (`TELEPIPE_STATUS_TTL_DAYS`, default 90; 0 = never).
//!
//! A transition is written with `attribute_not_exists(pk)`, so a redelivery keeps the
//! first record; the current item is then updated only if the stored transition is
//! newer (`Transition::supersedes`: a later attempt; or the same attempt and further
//! down the pipeline (`state_rank`) or not earlier), which also repairs a current item
//! a crash left behind.

use super::{classify, AwsContext};
use crate::error::{PortError, PortErrorKind};
use crate::status::{Deadlines, RecordingStatus, State, StatusStore, Transition};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

pub const OPEN_BY_STATE_INDEX: &str = "open-by-state";
pub const BY_STATE_INDEX: &str = "by-state";

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStatus {
    client: Client,
    table: String,
    ttl_days: u32,
}

impl DynamoStatus {
    pub fn new(context: &AwsContext, table: String, ttl_days: u32) -> Self {
        Self::from_client(context.dynamodb(), table, ttl_days)
    }

    pub fn from_client(client: Client, table: String, ttl_days: u32) -> Self {
        Self {
            client,
            table,
            ttl_days,
        }
    }

    fn expires_at(&self, at_ms: i64) -> Option<AttributeValue> {
        (self.ttl_days > 0).then(|| n(at_ms / 1000 + i64::from(self.ttl_days) * 86_400))
    }

    async fn get_transition(
        &self,
        session_id: &str,
        key: &str,
    ) -> Result<Option<Transition>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(session_id))
            .key("sk", s(&format!("T#{key}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| classify(&err, "dynamodb", "GetItem"))?;
        Ok(output.item().and_then(transition_from))
    }

    async fn update_current(&self, t: &Transition) -> Result<(), PortError> {
        let mut names = HashMap::from([
            ("#state".to_owned(), "state".to_owned()),
            ("#since".to_owned(), "since_ms".to_owned()),
            ("#attempt".to_owned(), "attempt".to_owned()),
            ("#recording".to_owned(), "recording".to_owned()),
            ("#open".to_owned(), "open_state".to_owned()),
            ("#rank".to_owned(), "state_rank".to_owned()),
        ]);
        let mut values: Item = HashMap::from([
            (":rank".to_owned(), n(i64::from(t.state.rank()))),
            (":state".to_owned(), s(t.state.as_str())),
            (":since".to_owned(), n(t.at_ms)),
            (":attempt".to_owned(), n(i64::from(t.attempt))),
            (":recording".to_owned(), s(&t.recording)),
        ]);
        let mut set = vec![
            "#state = :state",
            "#rank = :rank",
            "#since = :since",
            "#attempt = :attempt",
            "#recording = :recording",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        let mut remove = Vec::new();
        if t.state.is_open() {
            set.push("#open = :state".to_owned());
        } else {
            remove.push("#open".to_owned());
        }
        for (attribute, value) in [
            ("job_name", &t.job_name),
            ("object_ref", &t.object_ref),
            ("error_class", &t.error_class),
            ("reason", &t.reason),
        ] {
            let name = format!("#{attribute}");
            names.insert(name.clone(), attribute.to_owned());
            match value {
                Some(v) => {
                    values.insert(format!(":{attribute}"), s(v));
                    set.push(format!("{name} = :{attribute}"));
                }
                None => remove.push(name),
            }
        }
        if let Some(expires) = self.expires_at(t.at_ms) {
            names.insert("#expires".to_owned(), "expires_at".to_owned());
            values.insert(":expires".to_owned(), expires);
            set.push("#expires = :expires".to_owned());
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&t.session_id))
            .key("sk", s(&format!("R#{}", t.recording)))
            .update_expression(expression)
            .condition_expression(
                "attribute_not_exists(#since) OR #attempt < :attempt OR (#attempt = :attempt AND (#rank < :rank OR #since <= :since))",
            )
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A newer transition is current already.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(classify(&err, "dynamodb", "UpdateItem")),
        }
    }

    /// Every item of a query, following pagination.
    async fn query_all(
        &self,
        index: Option<&str>,
        condition: &str,
        names: HashMap<String, String>,
        values: Item,
    ) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(condition)
                .set_expression_attribute_names((!names.is_empty()).then(|| names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| classify(&err, "dynamodb", "Query"))?;
            items.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn get_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn transition_item(t: &Transition, expires_at: Option<AttributeValue>) -> Item {
    let mut item: Item = HashMap::from([
        ("pk".to_owned(), s(&t.session_id)),
        ("sk".to_owned(), s(&format!("T#{}", t.key()))),
        ("recording".to_owned(), s(&t.recording)),
        ("attempt".to_owned(), n(i64::from(t.attempt))),
        ("state".to_owned(), s(t.state.as_str())),
        ("transition_state".to_owned(), s(t.state.as_str())),
        ("at_ms".to_owned(), n(t.at_ms)),
    ]);
    for (name, value) in [
        ("job_name", &t.job_name),
        ("object_ref", &t.object_ref),
        ("error_class", &t.error_class),
        ("reason", &t.reason),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value));
        }
    }
    if let Some(expires) = expires_at {
        item.insert("expires_at".to_owned(), expires);
    }
    item
}

fn transition_from(item: &Item) -> Option<Transition> {
    Some(Transition {
        session_id: get_s(item, "pk")?,
        recording: get_s(item, "recording")?,
        attempt: u32::try_from(get_n(item, "attempt")?).ok()?,
        state: State::parse(&get_s(item, "state")?)?,
        at_ms: get_n(item, "at_ms")?,
        job_name: get_s(item, "job_name"),
        object_ref: get_s(item, "object_ref"),
        error_class: get_s(item, "error_class"),
        reason: get_s(item, "reason"),
    })
}

fn current_from(item: &Item) -> Option<RecordingStatus> {
    Some(RecordingStatus {
        session_id: get_s(item, "pk")?,
        recording: get_s(item, "recording")?,
        state: State::parse(&get_s(item, "state")?)?,
        since_ms: get_n(item, "since_ms")?,
        attempt: u32::try_from(get_n(item, "attempt")?).ok()?,
        job_name: get_s(item, "job_name"),
        object_ref: get_s(item, "object_ref"),
        error_class: get_s(item, "error_class"),
        reason: get_s(item, "reason"),
    })
}

impl StatusStore for DynamoStatus {
    async fn record(&self, transition: &Transition) -> Result<bool, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(transition_item(
                transition,
                self.expires_at(transition.at_ms),
            )))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        let (new, stored) = match result {
            Ok(_) => (true, transition.clone()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                // Recorded before: re-apply the stored one (its time, not ours) to the
                // current item, in case a crash came between the two writes.
                let stored = self
                    .get_transition(&transition.session_id, &transition.key())
                    .await?
                    .ok_or_else(|| {
                        PortError::new(PortErrorKind::Unavailable, "dynamodb", "GetItem")
                    })?;
                (false, stored)
            }
            Err(err) => return Err(classify(&err, "dynamodb", "PutItem")),
        };
        if stored.state != State::Stalled {
            self.update_current(&stored).await?;
        }
        Ok(new)
    }

    async fn timeline(&self, session_id: &str) -> Result<Vec<Transition>, PortError> {
        let items = self
            .query_all(
                None,
                "pk = :pk AND begins_with(sk, :prefix)",
                HashMap::new(),
                HashMap::from([
                    (":pk".to_owned(), s(session_id)),
                    (":prefix".to_owned(), s("T#")),
                ]),
            )
            .await?;
        let mut found: Vec<Transition> = items.iter().filter_map(transition_from).collect();
        found.sort_by(|a, b| (&a.recording, a.at_ms).cmp(&(&b.recording, b.at_ms)));
        Ok(found)
    }

    async fn stuck(
        &self,
        now_ms: i64,
        deadlines: &Deadlines,
    ) -> Result<Vec<RecordingStatus>, PortError> {
        let mut found = Vec::new();
        for state in State::OPEN {
            let Some(due) = deadlines.due_before_ms(state, now_ms) else {
                continue;
            };
            let items = self
                .query_all(
                    Some(OPEN_BY_STATE_INDEX),
                    "#open = :state AND #since <= :due",
                    HashMap::from([
                        ("#open".to_owned(), "open_state".to_owned()),
                        ("#since".to_owned(), "since_ms".to_owned()),
                    ]),
                    HashMap::from([
                        (":state".to_owned(), s(state.as_str())),
                        (":due".to_owned(), n(due)),
                    ]),
                )
                .await?;
            found.extend(items.iter().filter_map(current_from));
        }
        found.sort_by_key(|c| c.since_ms);
        Ok(found)
    }

    async fn query(
        &self,
        since_ms: i64,
        state: Option<State>,
    ) -> Result<Vec<Transition>, PortError> {
        let states = match state {
            Some(state) => vec![state],
            None => State::ALL.to_vec(),
        };
        let mut found = Vec::new();
        for state in states {
            let items = self
                .query_all(
                    Some(BY_STATE_INDEX),
                    "transition_state = :state AND at_ms >= :since",
                    HashMap::new(),
                    HashMap::from([
                        (":state".to_owned(), s(state.as_str())),
                        (":since".to_owned(), n(since_ms)),
                    ]),
                )
                .await?;
            found.extend(items.iter().filter_map(transition_from));
        }
        found.sort_by_key(|t| t.at_ms);
        Ok(found)
    }
}
