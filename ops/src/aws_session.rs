//! The `SessionData` port (`crate::session_data`) over the deployed stores: S3 (every
//! object version and delete marker under `{prefix}{session}/`), the status table
//! (`pk` = session), the sessions table (`pk` = session: `state`, `intent#{id}`; and the
//! audit items `pk = "audit#forget"`, `sk = {started_at}#{session}` this module owns),
//! EventBridge Scheduler (the schedule names the session state lists) and SQS (reprocess).
//!
//! Queued SQS messages cannot be deleted selectively: the `QueuedMessages` store is empty
//! here, and the notifier skips a queued reminder for a forgotten session as
//! `unknown_session` (see docs/forget-and-reprocess.md).
//!
//! Configuration: `AwsSessionConfig::from_env` (variables listed there); endpoints, region
//! and credentials follow the SDK's standard chain.

use crate::session_data::{AuditEntry, Item, SessionData, SessionObject, Stage, Store};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use telepipe_events::ids::{digest_hex, object_ref};
use telepipe_workers::aws::{classify, AwsContext, DynamoStatus};
use telepipe_workers::config::{
    prefix_or_default, DEFAULT_CAPTURE_PREFIX, DEFAULT_RECORDINGS_PREFIX, DEFAULT_RESULTS_PREFIX,
    DEFAULT_TRANSCRIPTS_PREFIX,
};
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::sessions::state::SessionState;
use telepipe_workers::status::StatusStore;

/// The partition of the sessions table holding forget audit entries.
pub const AUDIT_PK: &str = "audit#forget";

/// Names of the deployed resources; each is optional until a command needs it.
#[derive(Debug, Clone, Default)]
pub struct AwsSessionConfig {
    /// `TELEPIPE_RECORDINGS_BUCKET`
    pub recordings_bucket: Option<String>,
    /// `TELEPIPE_RECORDINGS_PREFIX` (default `recordings/`)
    pub recordings_prefix: String,
    /// `TELEPIPE_CAPTURE_PREFIX` (default `captures/`): Chime capture chunks, same bucket.
    pub capture_prefix: String,
    /// `TELEPIPE_TRANSCRIPTS_BUCKET`
    pub transcripts_bucket: Option<String>,
    /// `TELEPIPE_TRANSCRIPTS_PREFIX` (default `transcripts/`)
    pub transcripts_prefix: String,
    /// `TELEPIPE_RESULTS_BUCKET`
    pub results_bucket: Option<String>,
    /// `TELEPIPE_RESULTS_PREFIX` (default `clinical/`)
    pub results_prefix: String,
    /// `TELEPIPE_STATUS_TABLE`
    pub status_table: Option<String>,
    /// `TELEPIPE_SESSIONS_TABLE`
    pub sessions_table: Option<String>,
    /// `TELEPIPE_SCHEDULE_GROUP`
    pub schedule_group: Option<String>,
    /// `TELEPIPE_INTAKE_QUEUE_URL`
    pub intake_queue_url: Option<String>,
    /// `TELEPIPE_CLINICAL_QUEUE_URL`
    pub clinical_queue_url: Option<String>,
    /// `TELEPIPE_OPERATOR`: who runs the command, for the audit entry (default `$USER`).
    pub operator: Option<String>,
    /// `TELEPIPE_FORGET_SCAN_SCHEDULES` (default true): also look at every `tp-*`
    /// schedule of the group (one `GetSchedule` each) for targets naming the session, not
    /// only the ones its state lists.
    pub scan_schedules: bool,
    /// `TELEPIPE_AUDIT_BUCKET`: the Object Lock audit bucket `forget` appends to (and
    /// `telepipe audit --aws` reads).
    pub audit_bucket: Option<String>,
}

impl AwsSessionConfig {
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        // The workers' own parser, so forget and reprocess look where they wrote (an
        // invalid value stops the workers at start-up: nothing is under it).
        let env = telepipe_workers::config::Env::process();
        let prefix = |name, default| prefix_or_default(&env, name, default);
        Self {
            recordings_bucket: var("TELEPIPE_RECORDINGS_BUCKET"),
            recordings_prefix: prefix("TELEPIPE_RECORDINGS_PREFIX", DEFAULT_RECORDINGS_PREFIX),
            capture_prefix: prefix("TELEPIPE_CAPTURE_PREFIX", DEFAULT_CAPTURE_PREFIX),
            transcripts_bucket: var("TELEPIPE_TRANSCRIPTS_BUCKET"),
            transcripts_prefix: prefix("TELEPIPE_TRANSCRIPTS_PREFIX", DEFAULT_TRANSCRIPTS_PREFIX),
            results_bucket: var("TELEPIPE_RESULTS_BUCKET"),
            results_prefix: prefix("TELEPIPE_RESULTS_PREFIX", DEFAULT_RESULTS_PREFIX),
            status_table: var("TELEPIPE_STATUS_TABLE"),
            sessions_table: var("TELEPIPE_SESSIONS_TABLE"),
            schedule_group: var("TELEPIPE_SCHEDULE_GROUP"),
            intake_queue_url: var("TELEPIPE_INTAKE_QUEUE_URL"),
            clinical_queue_url: var("TELEPIPE_CLINICAL_QUEUE_URL"),
            operator: var("TELEPIPE_OPERATOR")
                .or_else(|| var("USER"))
                .or_else(|| var("LOGNAME")),
            // On by default: a schedule the session's state lost track of still names it.
            scan_schedules: env
                .flag("TELEPIPE_FORGET_SCAN_SCHEDULES", true)
                .unwrap_or(true),
            audit_bucket: var("TELEPIPE_AUDIT_BUCKET"),
        }
    }

    /// `forget` touches every store: all their variables must be set before it starts.
    pub fn require_for_forget(&self) -> Result<(), String> {
        let missing: Vec<&str> = [
            (&self.recordings_bucket, "TELEPIPE_RECORDINGS_BUCKET"),
            (&self.transcripts_bucket, "TELEPIPE_TRANSCRIPTS_BUCKET"),
            (&self.results_bucket, "TELEPIPE_RESULTS_BUCKET"),
            (&self.status_table, "TELEPIPE_STATUS_TABLE"),
            (&self.sessions_table, "TELEPIPE_SESSIONS_TABLE"),
            (&self.schedule_group, "TELEPIPE_SCHEDULE_GROUP"),
        ]
        .iter()
        .filter(|(value, _)| value.is_none())
        .map(|(_, name)| *name)
        .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "forget --aws needs {} (the deployed names; see docs/forget-and-reprocess.md); nothing was deleted",
                missing.join(", ")
            ))
        }
    }
}

/// `SessionData` on AWS.
pub struct AwsSessionData {
    config: AwsSessionConfig,
    context: AwsContext,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    scheduler: aws_sdk_scheduler::Client,
    sqs: aws_sdk_sqs::Client,
    transcribe: aws_sdk_transcribe::Client,
}

fn missing(variable: &'static str) -> PortError {
    PortError::new(PortErrorKind::InvalidRequest, "config", "Read").with_code(format!(
        "{variable} is not set: set it to the deployed resource (docs/forget-and-reprocess.md)"
    ))
}

fn need<'a>(value: &'a Option<String>, variable: &'static str) -> Result<&'a str, PortError> {
    value.as_deref().ok_or_else(|| missing(variable))
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

impl AwsSessionData {
    /// The session's Transcribe Medical jobs: names the status store recorded (while it
    /// still holds them) and every job whose name is `{session}-{digest}[-a{n}]`, listed.
    async fn transcription_jobs(
        &self,
        store: Store,
        session_id: &str,
    ) -> Result<Vec<Item>, PortError> {
        let mut names = std::collections::BTreeSet::new();
        if let Some(table) = &self.config.status_table {
            let status = DynamoStatus::from_client(self.dynamodb.clone(), table.clone(), 1);
            for transition in status.timeline(session_id).await? {
                names.extend(transition.job_name);
            }
        }
        let prefix = format!("{session_id}-");
        let mut token: Option<String> = None;
        loop {
            let page = self
                .transcribe
                .list_medical_transcription_jobs()
                .job_name_contains(&prefix)
                .max_results(100)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| classify(&e, "transcribe", "ListMedicalTranscriptionJobs"))?;
            for job in page.medical_transcription_job_summaries() {
                if let Some(name) = job.medical_transcription_job_name() {
                    let job = telepipe_events::ids::JobName::parse(name);
                    if job.is_some_and(|job| job.is_of_session(session_id)) {
                        names.insert(name.to_owned());
                    }
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(names
            .into_iter()
            .map(|name| Item {
                store,
                label: format!("transcription job {name}"),
                handle: format!("transcribe-job\n{name}"),
            })
            .collect())
    }

    pub fn new(context: AwsContext, config: AwsSessionConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(&context.sdk)
            .force_path_style(context.s3_force_path_style)
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            dynamodb: aws_sdk_dynamodb::Client::new(&context.sdk),
            scheduler: aws_sdk_scheduler::Client::new(&context.sdk),
            sqs: aws_sdk_sqs::Client::new(&context.sdk),
            transcribe: aws_sdk_transcribe::Client::new(&context.sdk),
            context,
            config,
        }
    }

    /// A session's audit trail from the audit bucket (`telepipe audit --aws`), oldest first.
    pub async fn audit_trail(
        &self,
        session_id: &str,
        since_ms: i64,
    ) -> Result<Vec<telepipe_events::audit::AuditEntry>, PortError> {
        let bucket = need(&self.config.audit_bucket, "TELEPIPE_AUDIT_BUCKET")?;
        // Every version, not the latest: Object Lock keeps the first write of each entry
        // even if a writer later puts over it, and the first write is the record.
        let mut oldest: std::collections::BTreeMap<String, (i64, String)> = Default::default();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .s3
                .list_object_versions()
                .bucket(bucket)
                .prefix(format!("audit/{session_id}/"))
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| classify(&e, "s3", "ListObjectVersions"))?;
            for version in page.versions() {
                let (Some(key), Some(id)) = (version.key(), version.version_id()) else {
                    continue;
                };
                let at = version
                    .last_modified()
                    .map_or(0, |t| t.to_millis().unwrap_or(0));
                let slot = oldest.entry(key.to_owned()).or_insert((at, id.to_owned()));
                if at < slot.0 {
                    *slot = (at, id.to_owned());
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        let mut entries = Vec::new();
        for (key, (_, version)) in oldest {
            let body = self
                .s3
                .get_object()
                .bucket(bucket)
                .key(&key)
                .version_id(version)
                .send()
                .await
                .map_err(|e| classify(&e, "s3", "GetObject"))?
                .body
                .collect()
                .await
                .map_err(|_| PortError::new(PortErrorKind::Unavailable, "s3", "GetObject"))?
                .into_bytes();
            if let Ok(entry) = serde_json::from_slice::<telepipe_events::audit::AuditEntry>(&body) {
                if entry.at_ms >= since_ms {
                    entries.push(entry);
                }
            }
        }
        entries.sort_by(|a, b| (a.at_ms, &a.entry_id).cmp(&(b.at_ms, &b.entry_id)));
        Ok(entries)
    }

    /// A session's notification log (`notifylog#{session}` items of the sessions table),
    /// oldest first: `telepipe notifications --aws`.
    pub async fn notification_log(
        &self,
        session_id: &str,
    ) -> Result<Vec<telepipe_workers::ports::NotificationLogEntry>, PortError> {
        let table = need(&self.config.sessions_table, "TELEPIPE_SESSIONS_TABLE")?;
        let rows = self
            .query(table, &format!("notifylog#{session_id}"), None)
            .await?;
        let mut entries: Vec<telepipe_workers::ports::NotificationLogEntry> = rows
            .iter()
            .filter_map(|row| row.get("entry").and_then(|v| v.as_s().ok()))
            .filter_map(|text| serde_json::from_str(text).ok())
            .collect();
        entries.sort_by_key(|e| e.at_ms);
        Ok(entries)
    }

    pub fn config(&self) -> &AwsSessionConfig {
        &self.config
    }

    /// From `TELEPIPE_*` variables and the SDK's standard configuration.
    pub async fn from_env() -> Result<Self, String> {
        Ok(Self::new(
            AwsContext::load().await,
            AwsSessionConfig::from_env(),
        ))
    }

    /// Every version and delete marker under `{prefix}{session}/` of a bucket.
    async fn versions(
        &self,
        store: Store,
        bucket: &str,
        prefix: &str,
        session_id: &str,
    ) -> Result<Vec<Item>, PortError> {
        let folder = format!("{prefix}{session_id}/");
        let mut items = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let output = self
                .s3
                .list_object_versions()
                .bucket(bucket)
                .prefix(&folder)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| classify(&e, "s3", "ListObjectVersions"))?;
            let versions = output
                .versions()
                .iter()
                .map(|v| (v.key(), v.version_id(), "version"));
            let markers = output
                .delete_markers()
                .iter()
                .map(|m| (m.key(), m.version_id(), "delete marker"));
            for (key, version, kind) in versions.chain(markers) {
                let Some(key) = key else { continue };
                let version = version.unwrap_or("null");
                items.push(Item {
                    store,
                    label: format!(
                        "object {} {kind} {}",
                        object_ref(bucket, key),
                        digest_hex(&[version.as_bytes()], 4)
                    ),
                    handle: format!("s3\n{bucket}\n{version}\n{key}"),
                });
            }
            if output.is_truncated() != Some(true) {
                break;
            }
            key_marker = output.next_key_marker().map(str::to_owned);
            version_marker = output.next_version_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(items)
    }

    /// Items of a partition (optionally only sort keys starting with `prefix`).
    async fn query(
        &self,
        table: &str,
        pk: &str,
        sk_prefix: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, PortError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut request = self
                .dynamodb
                .query()
                .table_name(table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            request = match sk_prefix {
                Some(prefix) => request
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => request.key_condition_expression("pk = :pk"),
            };
            let output = request
                .send()
                .await
                .map_err(|e| classify(&e, "dynamodb", "Query"))?;
            items.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    fn row_items(store: Store, table: &str, rows: &[HashMap<String, AttributeValue>]) -> Vec<Item> {
        rows.iter()
            .filter_map(|row| {
                let pk = row.get("pk")?.as_s().ok()?;
                let sk = row.get("sk")?.as_s().ok()?;
                Some(Item {
                    store,
                    label: format!("item {sk}"),
                    handle: format!("ddb\n{table}\n{pk}\n{sk}"),
                })
            })
            .collect()
    }

    /// Names of the group's `tp-*` schedules whose target input is about the session.
    async fn scan_schedules(
        &self,
        group: &str,
        session_id: &str,
    ) -> Result<Vec<String>, PortError> {
        let mut candidates = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .scheduler
                .list_schedules()
                .group_name(group)
                .name_prefix("tp-")
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify(&e, "scheduler", "ListSchedules"))?;
            candidates.extend(
                output
                    .schedules()
                    .iter()
                    .filter_map(|s| s.name().map(str::to_owned)),
            );
            match output.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        let mut found = Vec::new();
        for name in candidates {
            let schedule = match self
                .scheduler
                .get_schedule()
                .group_name(group)
                .name(&name)
                .send()
                .await
            {
                Ok(schedule) => schedule,
                Err(err) => {
                    let err = classify(&err, "scheduler", "GetSchedule");
                    // Spent meanwhile (ActionAfterCompletion=DELETE): nothing to do.
                    if err.kind == PortErrorKind::NotFound {
                        continue;
                    }
                    return Err(err);
                }
            };
            let input = schedule.target().and_then(|t| t.input()).unwrap_or("");
            if crate::message::session_ids(input)
                .iter()
                .any(|s| s == session_id)
            {
                found.push(name);
            }
        }
        Ok(found)
    }

    async fn state(&self, session_id: &str) -> Result<Option<SessionState>, PortError> {
        let table = need(&self.config.sessions_table, "TELEPIPE_SESSIONS_TABLE")?;
        let output = self
            .dynamodb
            .get_item()
            .table_name(table)
            .key("pk", s(session_id))
            .key("sk", s("state"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "GetItem"))?;
        Ok(output
            .item
            .as_ref()
            .and_then(|item| item.get("doc"))
            .and_then(|doc| doc.as_s().ok())
            .and_then(|doc| serde_json::from_str(doc).ok()))
    }
}

impl SessionData for AwsSessionData {
    async fn append_trail(
        &self,
        entry: &telepipe_events::audit::AuditEntry,
    ) -> Result<(), PortError> {
        use telepipe_workers::ports::AuditLog;
        match &self.config.audit_bucket {
            Some(bucket) => {
                telepipe_workers::aws::S3AuditLog::from_client(self.s3.clone(), bucket.clone())
                    .append(entry)
                    .await
            }
            // Without TELEPIPE_AUDIT_BUCKET the operator gets no trail, and is told so
            // by `telepipe audit --aws`; the action itself is not refused.
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        "aws".into()
    }

    async fn operator(&self) -> String {
        // No STS client is linked: the operator names themselves (TELEPIPE_OPERATOR) or
        // the login name is used; CloudTrail holds the caller ARN of every delete.
        format!(
            "aws:{}",
            self.config.operator.as_deref().unwrap_or("unknown")
        )
    }

    async fn inventory(&self, session_id: &str, store: Store) -> Result<Vec<Item>, PortError> {
        let c = &self.config;
        match store {
            Store::Schedules => {
                let group = need(&c.schedule_group, "TELEPIPE_SCHEDULE_GROUP")?;
                let mut names: Vec<String> = Vec::new();
                if let Some(state) = self.state(session_id).await? {
                    names.extend(state.schedules.keys().cloned());
                    names.extend(state.recording_check.clone());
                }
                if c.scan_schedules {
                    for name in self.scan_schedules(group, session_id).await? {
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
                let mut items = Vec::new();
                for name in names {
                    let found = self
                        .scheduler
                        .get_schedule()
                        .group_name(group)
                        .name(&name)
                        .send()
                        .await;
                    match found {
                        Ok(_) => items.push(Item {
                            store,
                            label: format!("schedule {name}"),
                            handle: format!("schedule\n{group}\n{name}"),
                        }),
                        Err(err) => {
                            let err = classify(&err, "scheduler", "GetSchedule");
                            if err.kind != PortErrorKind::NotFound {
                                return Err(err);
                            }
                        }
                    }
                }
                Ok(items)
            }
            // SQS cannot delete selectively; the outbox and local history do not exist here.
            Store::QueuedMessages | Store::Outbox => Ok(Vec::new()),
            // On AWS the session's history outside telepipe's stores is its Transcribe
            // Medical job records: they keep the media URI (whose file name may name the
            // patient) until deleted.
            Store::History => self.transcription_jobs(store, session_id).await,
            Store::Intents => {
                let table = need(&c.sessions_table, "TELEPIPE_SESSIONS_TABLE")?;
                let rows = self.query(table, session_id, Some("intent#")).await?;
                Ok(Self::row_items(store, table, &rows))
            }
            Store::SessionState => {
                let table = need(&c.sessions_table, "TELEPIPE_SESSIONS_TABLE")?;
                let rows = self.query(table, session_id, Some("state")).await?;
                let mut items: Vec<Item> = Self::row_items(store, table, &rows)
                    .into_iter()
                    .filter(|i| i.handle.ends_with("\nstate"))
                    .collect();
                // The phone index item that lets a text find this session (`phone#{keyed
                // hash}`, sort key the session id): it goes with the state.
                let phone_key = rows
                    .iter()
                    .filter_map(|row| row.get("doc").and_then(|v| v.as_s().ok()))
                    .filter_map(|doc| serde_json::from_str::<SessionState>(doc).ok())
                    .find_map(|state| state.patient_phone_key);
                if let Some(key) = phone_key {
                    let index = self
                        .query(table, &format!("phone#{key}"), Some(session_id))
                        .await?;
                    // The index item first: once the state is gone a rerun can no longer
                    // learn the key that names it.
                    let mut first: Vec<Item> = Self::row_items(store, table, &index)
                        .into_iter()
                        .filter(|i| i.handle.ends_with(&format!("\n{session_id}")))
                        .collect();
                    first.append(&mut items);
                    items = first;
                }
                Ok(items)
            }
            Store::Status => {
                let table = need(&c.status_table, "TELEPIPE_STATUS_TABLE")?;
                let rows = self.query(table, session_id, None).await?;
                Ok(Self::row_items(store, table, &rows))
            }
            Store::Results => {
                let bucket = need(&c.results_bucket, "TELEPIPE_RESULTS_BUCKET")?;
                self.versions(store, bucket, &c.results_prefix, session_id)
                    .await
            }
            Store::Transcripts => {
                let bucket = need(&c.transcripts_bucket, "TELEPIPE_TRANSCRIPTS_BUCKET")?;
                self.versions(store, bucket, &c.transcripts_prefix, session_id)
                    .await
            }
            Store::Recordings => {
                let bucket = need(&c.recordings_bucket, "TELEPIPE_RECORDINGS_BUCKET")?;
                let mut items = self
                    .versions(store, bucket, &c.recordings_prefix, session_id)
                    .await?;
                items.extend(
                    self.versions(store, bucket, &c.capture_prefix, session_id)
                        .await?,
                );
                Ok(items)
            }
        }
    }

    async fn delete(&self, item: &Item) -> Result<(), PortError> {
        let parts: Vec<&str> = item.handle.splitn(4, '\n').collect();
        match parts.as_slice() {
            ["s3", bucket, version, key] => {
                self.s3
                    .delete_object()
                    .bucket(*bucket)
                    .key(*key)
                    .version_id(*version)
                    .send()
                    .await
                    .map_err(|e| classify(&e, "s3", "DeleteObject"))?;
                Ok(())
            }
            ["ddb", table, pk, sk] => {
                self.dynamodb
                    .delete_item()
                    .table_name(*table)
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .send()
                    .await
                    .map_err(|e| classify(&e, "dynamodb", "DeleteItem"))?;
                Ok(())
            }
            ["transcribe-job", name] => {
                match self
                    .transcribe
                    .delete_medical_transcription_job()
                    .medical_transcription_job_name(*name)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(err) => {
                        let err = classify(&err, "transcribe", "DeleteMedicalTranscriptionJob");
                        // Gone already (a resumed forget, or expired): nothing left to delete.
                        if err.kind == PortErrorKind::NotFound
                            || err.code.as_deref() == Some("BadRequestException")
                        {
                            Ok(())
                        } else {
                            Err(err)
                        }
                    }
                }
            }
            ["schedule", group, name] => {
                match self
                    .scheduler
                    .delete_schedule()
                    .group_name(*group)
                    .name(*name)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(err) => {
                        let err = classify(&err, "scheduler", "DeleteSchedule");
                        if err.kind == PortErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(err)
                        }
                    }
                }
            }
            _ => Err(PortError::new(
                PortErrorKind::InvalidRequest,
                "forget",
                "Delete",
            )),
        }
    }

    async fn write_audit(&self, entry: &AuditEntry) -> Result<(), PortError> {
        if let Some(bucket) = &self.config.audit_bucket {
            use telepipe_workers::ports::AuditLog;
            let trail = crate::session_data::trail_entry(entry);
            telepipe_workers::aws::S3AuditLog::from_client(self.s3.clone(), bucket.clone())
                .append(&trail)
                .await?;
        }
        let table = need(&self.config.sessions_table, "TELEPIPE_SESSIONS_TABLE")?;
        let mut request = self
            .dynamodb
            .put_item()
            .table_name(table)
            .item("pk", s(AUDIT_PK))
            .item("sk", s(&entry.id))
            .item("session_id", s(&entry.session_id))
            .item("state", s(&entry.state))
            .item("started_at", s(&entry.started_at))
            .item("by", s(&entry.by))
            .item("entry", s(&entry.to_json()));
        if let Some(at) = &entry.completed_at {
            request = request.item("completed_at", s(at));
        }
        request
            .send()
            .await
            .map_err(|e| classify(&e, "dynamodb", "PutItem"))?;
        Ok(())
    }

    async fn unfinished_audit(&self, session_id: &str) -> Result<Option<AuditEntry>, PortError> {
        let table = need(&self.config.sessions_table, "TELEPIPE_SESSIONS_TABLE")?;
        let rows = self.query(table, AUDIT_PK, None).await?;
        Ok(rows
            .iter()
            .filter(|row| {
                row.get("session_id")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some(session_id)
                    && row
                        .get("state")
                        .and_then(|v| v.as_s().ok())
                        .map(String::as_str)
                        == Some(AuditEntry::STARTED)
            })
            .filter_map(|row| row.get("entry")?.as_s().ok())
            .filter_map(|text| serde_json::from_str::<AuditEntry>(text).ok())
            .max_by(|a, b| a.id.cmp(&b.id)))
    }

    async fn objects(
        &self,
        session_id: &str,
        from: Stage,
    ) -> Result<Vec<SessionObject>, PortError> {
        let c = &self.config;
        let (bucket, prefix) = match from {
            Stage::Transcription => (
                need(&c.recordings_bucket, "TELEPIPE_RECORDINGS_BUCKET")?,
                &c.recordings_prefix,
            ),
            Stage::Clinical => (
                need(&c.transcripts_bucket, "TELEPIPE_TRANSCRIPTS_BUCKET")?,
                &c.transcripts_prefix,
            ),
        };
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(format!("{prefix}{session_id}/"))
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify(&e, "s3", "ListObjectsV2"))?;
            for object in output.contents() {
                let Some(key) = object.key() else { continue };
                if from == Stage::Clinical && !key.ends_with(".json") {
                    continue;
                }
                objects.push(SessionObject {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    version_id: None,
                });
            }
            match output.next_continuation_token() {
                Some(next) if output.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(objects)
    }

    async fn last_attempt(&self, session_id: &str) -> Result<u32, PortError> {
        let table = need(&self.config.status_table, "TELEPIPE_STATUS_TABLE")?;
        let status = DynamoStatus::new(&self.context, table.to_owned(), 0);
        Ok(status
            .timeline(session_id)
            .await?
            .iter()
            .map(|t| t.attempt)
            .max()
            .unwrap_or(0))
    }

    async fn send(&self, to: Stage, body: &str) -> Result<(), PortError> {
        let url = match to {
            Stage::Transcription => {
                need(&self.config.intake_queue_url, "TELEPIPE_INTAKE_QUEUE_URL")?
            }
            Stage::Clinical => need(
                &self.config.clinical_queue_url,
                "TELEPIPE_CLINICAL_QUEUE_URL",
            )?,
        };
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs", "SendMessage"))?;
        Ok(())
    }
}
