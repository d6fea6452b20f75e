//! Metrics as CloudWatch Embedded Metric Format (EMF): JSON documents written as log
//! lines, from which CloudWatch Logs extracts the metrics. No agent, no `PutMetricData`
//! call, no extra IAM: on Lambda, stdout is the function's log group.
//!
//! Why not `metrics_cloudwatch_embedded`: it is a back end of the `metrics` facade, whose
//! recorder is one process-wide global. Tests run in parallel in one process and each
//! must see only its own documents; the local runtime must be able to turn metrics off.
//! Its Lambda flushing wraps `lambda_runtime::run` in its own service (this crate owns
//! that loop in `lambda.rs`), and histograms above 100 values per flush are dropped with
//! an error. What telepipe needs is small: counters and millisecond values under a few
//! fixed dimension sets, aggregated per batch, so it is written here (about 300 lines
//! with one function per pipeline metric; only `serde_json` and tokio's task-locals).
//!
//! # How metrics travel
//!
//! - A [`Metrics`] handle is a namespace and a [`MetricsSink`] (stdout, a file, memory,
//!   or nothing). The Lambda mains install one process-wide with [`install_from_env`];
//!   when none is installed, metrics go nowhere (the local runtime and most tests).
//! - [`collect`] runs a future with a task-local aggregate: everything recorded inside
//!   is summed (counts) or gathered (milliseconds) and flushed as EMF lines when the
//!   future ends. `batch::process_batch` collects over each batch, so a batch writes a
//!   handful of lines, not one per increment. A test wraps a call in `collect` with a
//!   [`MemorySink`] to capture exactly its own documents, even when tests run in parallel.
//! - Recorded outside any `collect` (e.g. by a notifier not driven by `process_batch`),
//!   a metric is written at once as its own document. Work moved to another task with
//!   `tokio::spawn` is outside its caller's `collect` too (futures polled in the same
//!   task, such as `buffer_unordered`, are inside).
//!
//! # Low cardinality, no PHI
//!
//! Dimension values and metric names are `&'static str`: they can only come from the
//! code's closed sets (stage names, error classes, `RejectReason`, API names, channel and
//! outcome names), never from runtime data such as session ids, job names, keys or text.
//! Documents carry no other properties.

use crate::config::{ConfigError, Env};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Environment variable naming the CloudWatch namespace (default [`DEFAULT_NAMESPACE`]).
pub const NAMESPACE_VAR: &str = "TELEPIPE_METRICS_NAMESPACE";
pub const DEFAULT_NAMESPACE: &str = "telepipe";
/// Environment variable choosing the sink: `stdout` (default in the Lambda workers),
/// `off`, or `file:PATH` (appends one document per line; the local runtime's choice).
pub const SINK_VAR: &str = "TELEPIPE_METRICS";
/// EMF keeps at most 100 values of one metric in one document.
pub const MAX_VALUES: usize = 100;

/// Metric names (see `docs/observability.md` for units, dimensions and alarms).
pub mod names {
    pub const PROCESSED: &str = "Processed";
    pub const FAILED: &str = "Failed";
    pub const RETRIED: &str = "Retried";
    pub const DEAD_LETTERED: &str = "DeadLettered";
    pub const DEAD_LETTER_FAILED: &str = "DeadLetterFailed";
    pub const LATENCY: &str = "Latency";
    pub const REJECTED: &str = "Rejected";
    pub const THROTTLES: &str = "Throttles";
    pub const COMPREHEND_REQUESTS: &str = "ComprehendRequests";
    pub const COMPREHEND_BILLED_CHARACTERS: &str = "ComprehendBilledCharacters";
    pub const COMPREHEND_BILLED_UNITS: &str = "ComprehendBilledUnits";
    pub const TRANSCRIBE_JOB_DURATION: &str = "TranscribeJobDuration";
    pub const NOTIFICATIONS: &str = "Notifications";
    pub const IGNORED: &str = "Ignored";
    pub const CAPTURES: &str = "Captures";
    pub const CAPTURE_CHUNKS_SKIPPED: &str = "CaptureChunksSkipped";
}

/// The units telepipe uses. Counts are summed per flush; milliseconds are kept as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// Where EMF lines go. `emit` gets one complete JSON document without a newline.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, line: &str);
}

/// Discards everything.
pub struct NoopSink;
impl MetricsSink for NoopSink {
    fn emit(&self, _: &str) {}
}

/// One line per document on stdout (CloudWatch Logs on Lambda).
pub struct StdoutSink;
impl MetricsSink for StdoutSink {
    fn emit(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

/// Any writer (e.g. a file the local runtime keeps), one line per document.
pub struct WriterSink<W: Write + Send>(pub Mutex<W>);
impl<W: Write + Send> MetricsSink for WriterSink<W> {
    fn emit(&self, line: &str) {
        if let Ok(mut writer) = self.0.lock() {
            let _ = writeln!(writer, "{line}");
        }
    }
}

/// Keeps the lines, for tests.
#[derive(Default)]
pub struct MemorySink(Mutex<Vec<String>>);
impl MemorySink {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
impl MetricsSink for MemorySink {
    fn emit(&self, line: &str) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line.to_owned());
        }
    }
}

/// A namespace and a sink.
#[derive(Clone)]
pub struct Metrics {
    namespace: Arc<str>,
    sink: Arc<dyn MetricsSink>,
}

impl Metrics {
    pub fn new(namespace: &str, sink: Arc<dyn MetricsSink>) -> Self {
        Self {
            namespace: namespace.into(),
            sink,
        }
    }

    pub fn noop() -> Self {
        Self::new(DEFAULT_NAMESPACE, Arc::new(NoopSink))
    }

    /// From `TELEPIPE_METRICS` (`stdout` | `off` | `file:PATH`, default `stdout`) and
    /// `TELEPIPE_METRICS_NAMESPACE` (default `telepipe`).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let namespace = env.or(NAMESPACE_VAR, DEFAULT_NAMESPACE);
        if namespace.len() > 255 || namespace.starts_with("AWS/") || namespace.contains(':') {
            return Err(ConfigError {
                variable: NAMESPACE_VAR,
                problem: "must be a custom CloudWatch namespace (not AWS/..., no ':')".into(),
            });
        }
        let sink: Arc<dyn MetricsSink> = match env.or(SINK_VAR, "stdout").trim() {
            "stdout" => Arc::new(StdoutSink),
            "off" => Arc::new(NoopSink),
            other => match other.strip_prefix("file:").filter(|p| !p.is_empty()) {
                Some(path) => {
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|err| ConfigError {
                            variable: SINK_VAR,
                            problem: format!("cannot open {path:?} for appending: {err}"),
                        })?;
                    Arc::new(WriterSink(Mutex::new(std::io::LineWriter::new(file))))
                }
                None => {
                    return Err(ConfigError {
                        variable: SINK_VAR,
                        problem: format!("must be stdout, off or file:PATH (got {other:?})"),
                    })
                }
            },
        };
        Ok(Self::new(&namespace, sink))
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Writes the aggregate as EMF lines, stamped `timestamp_ms`.
    pub fn flush(&self, aggregate: &Aggregate, timestamp_ms: u64) {
        for document in aggregate.documents(&self.namespace, timestamp_ms) {
            self.sink.emit(&document.to_string());
        }
    }
}

static GLOBAL: OnceLock<Metrics> = OnceLock::new();

/// Installs the process-wide handle; `false` if one already was.
pub fn install(metrics: Metrics) -> bool {
    GLOBAL.set(metrics).is_ok()
}

/// Installs the handle `env` describes; an invalid setting is an error naming the
/// variable (the Lambda mains stop on it like any configuration error).
pub fn install_from_env(env: &Env) -> Result<(), ConfigError> {
    install(Metrics::from_env(env)?);
    Ok(())
}

/// The handle in effect: the enclosing [`collect`]'s, else the installed one, else no-op.
pub fn current() -> Metrics {
    SCOPE
        .try_with(|scope| scope.metrics.clone())
        .ok()
        .or_else(|| GLOBAL.get().cloned())
        .unwrap_or_else(Metrics::noop)
}

/// Dimension names and values, in the order they are declared to CloudWatch.
pub type Dimensions = Vec<(&'static str, &'static str)>;

/// A metric's name, unit and at most [`MAX_VALUES`] of its values.
type Part<'a> = (&'static str, Unit, &'a [f64]);

/// Metrics summed or gathered under their dimension sets until flushed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Aggregate {
    groups: BTreeMap<Dimensions, BTreeMap<&'static str, (Unit, Vec<f64>)>>,
}

impl Aggregate {
    pub fn record(
        &mut self,
        dims: &[(&'static str, &'static str)],
        name: &'static str,
        unit: Unit,
        value: f64,
    ) {
        // Look up by slice first: the common case (a group seen before) allocates nothing.
        if !self.groups.contains_key(dims) {
            self.groups.insert(dims.to_vec(), BTreeMap::new());
        }
        let Some(metrics) = self.groups.get_mut(dims) else {
            return;
        };
        let (_, values) = metrics.entry(name).or_insert((unit, Vec::new()));
        match (unit, values.first_mut()) {
            (Unit::Count, Some(sum)) => *sum += value,
            _ => values.push(value),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The EMF documents: groups packed into as few documents as their dimension values
    /// and metric names allow (one document holds one value per key), each metric at
    /// most [`MAX_VALUES`] values.
    pub fn documents(&self, namespace: &str, timestamp_ms: u64) -> Vec<Value> {
        // Split long value lists into parts first; each part is packed like a group.
        let mut parts: Vec<(&Dimensions, Vec<Part<'_>>)> = Vec::new();
        for (dims, metrics) in &self.groups {
            let mut round = 0;
            loop {
                let part: Vec<_> = metrics
                    .iter()
                    .filter_map(|(name, (unit, values))| {
                        let chunk = values.chunks(MAX_VALUES).nth(round)?;
                        Some((*name, *unit, chunk))
                    })
                    .collect();
                if part.is_empty() {
                    break;
                }
                parts.push((dims, part));
                round += 1;
            }
        }
        let mut documents: Vec<Map<String, Value>> = Vec::new();
        for (dims, part) in parts {
            let fits = |doc: &Map<String, Value>| {
                dims.iter()
                    .all(|(k, v)| doc.get(*k).is_none_or(|have| have == v))
                    && part.iter().all(|(name, ..)| !doc.contains_key(*name))
            };
            let index = match documents.iter().position(fits) {
                Some(index) => index,
                None => {
                    let mut doc = Map::new();
                    doc.insert(
                        "_aws".into(),
                        json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": []}),
                    );
                    documents.push(doc);
                    documents.len() - 1
                }
            };
            let doc = &mut documents[index];
            for (key, value) in dims {
                doc.insert((*key).into(), Value::from(*value));
            }
            let mut declared = Vec::with_capacity(part.len());
            for (name, unit, values) in &part {
                declared.push(json!({"Name": name, "Unit": unit.as_str()}));
                let value = match values {
                    [single] => json!(single),
                    many => json!(many),
                };
                doc.insert((*name).into(), value);
            }
            let directive = json!({
                "Namespace": namespace,
                "Dimensions": [dims.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": declared,
            });
            if let Some(Value::Array(directives)) = doc
                .get_mut("_aws")
                .and_then(|aws| aws.get_mut("CloudWatchMetrics"))
            {
                directives.push(directive);
            }
        }
        documents.into_iter().map(Value::Object).collect()
    }
}

struct Scope {
    metrics: Metrics,
    aggregate: Mutex<Aggregate>,
}

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

/// Runs `future`, aggregating what it records, and flushes to `metrics` when it ends.
pub async fn collect<F: Future>(metrics: Metrics, future: F) -> F::Output {
    let scope = Arc::new(Scope {
        metrics,
        aggregate: Mutex::default(),
    });
    let output = SCOPE.scope(scope.clone(), future).await;
    if let Ok(aggregate) = scope.aggregate.lock() {
        scope
            .metrics
            .flush(&aggregate, crate::clock::now_ms() as u64);
    }
    output
}

/// Records one value: into the enclosing [`collect`], or written at once.
pub fn record(dims: &[(&'static str, &'static str)], name: &'static str, unit: Unit, value: f64) {
    let recorded = SCOPE.try_with(|scope| {
        if let Ok(mut aggregate) = scope.aggregate.lock() {
            aggregate.record(dims, name, unit, value);
        }
    });
    if recorded.is_err() {
        let Some(metrics) = GLOBAL.get() else { return };
        let mut aggregate = Aggregate::default();
        aggregate.record(dims, name, unit, value);
        metrics.flush(&aggregate, crate::clock::now_ms() as u64);
    }
}

pub fn count(dims: &[(&'static str, &'static str)], name: &'static str, n: u64) {
    record(dims, name, Unit::Count, n as f64);
}

// The pipeline's metrics, one function each, so names and dimensions stay in one place.

/// A message a stage finished with success.
pub fn processed(stage: &'static str) {
    count(&[("Stage", stage)], names::PROCESSED, 1);
}

/// A message that failed, by class: `retryable`, `permanent` or `panic`.
pub fn failed(stage: &'static str, class: &'static str) {
    count(&[("Stage", stage), ("ErrorClass", class)], names::FAILED, 1);
}

pub fn retried(stage: &'static str) {
    count(&[("Stage", stage)], names::RETRIED, 1);
}

pub fn dead_lettered(stage: &'static str) {
    count(&[("Stage", stage)], names::DEAD_LETTERED, 1);
}

/// A message that could neither be parked nor postponed (left to the queue's redrive).
pub fn dead_letter_failed(stage: &'static str) {
    count(&[("Stage", stage)], names::DEAD_LETTER_FAILED, 1);
}

/// Wall time of one message through its stage (kept to the microsecond).
pub fn latency_ms(stage: &'static str, ms: f64) {
    let ms = (ms * 1000.0).round() / 1000.0;
    record(&[("Stage", stage)], names::LATENCY, Unit::Milliseconds, ms);
}

/// An upload refused for good; `reason` is a `RejectReason` code.
pub fn rejected(stage: &'static str, reason: &'static str) {
    count(&[("Stage", stage), ("Reason", reason)], names::REJECTED, 1);
}

/// A throttling or quota answer from `api` (an AWS operation name).
pub fn throttled(api: &'static str) {
    count(&[("Api", api)], names::THROTTLES, 1);
}

/// Counts a throttling or quota answer (`Throttled`, `QuotaExceeded`) under its operation.
pub fn observe_port_error(err: &crate::error::PortError) {
    use crate::error::PortErrorKind::{QuotaExceeded, Throttled};
    if matches!(err.kind, Throttled | QuotaExceeded) {
        throttled(err.operation);
    }
}

/// One successful Comprehend Medical request of `characters` characters. Comprehend
/// Medical bills units of 100 characters, at least one unit per request.
pub fn comprehend_request(api: &'static str, characters: u64) {
    let dims = [("Api", api)];
    count(&dims, names::COMPREHEND_REQUESTS, 1);
    count(&dims, names::COMPREHEND_BILLED_CHARACTERS, characters);
    count(
        &dims,
        names::COMPREHEND_BILLED_UNITS,
        characters.div_ceil(100).max(1),
    );
}

/// How long a Transcribe Medical job ran (creation to completion), for the job sweeper.
pub fn transcribe_job_duration_ms(ms: u64) {
    record(
        &[("Stage", "transcribe")],
        names::TRANSCRIBE_JOB_DURATION,
        Unit::Milliseconds,
        ms as f64,
    );
}

/// A notification attempt, e.g. `("email", "sent")`, `("sms", "failed")`. Both must be
/// names from the notifier's own closed sets, never recipients.
pub fn notification(channel: &'static str, outcome: &'static str) {
    count(
        &[("Channel", channel), ("Outcome", outcome)],
        names::NOTIFICATIONS,
        1,
    );
}

/// An input acknowledged without work, e.g. a capture chunk that reached intake; `reason`
/// is a code from the stage's closed set.
pub fn ignored(stage: &'static str, reason: &'static str) {
    count(&[("Stage", stage), ("Reason", reason)], names::IGNORED, 1);
}

/// What the capture stage did with a media pipeline event (`concatenating`,
/// `capture_failed`, `capture_empty`, `temporary_failure`, ...).
pub fn capture(outcome: &'static str) {
    count(&[("Outcome", outcome)], names::CAPTURES, 1);
}

/// Audio chunks of a capture left out of its recording because they could not be read.
pub fn capture_chunks_skipped(reason: &'static str, n: u64) {
    count(&[("Reason", reason)], names::CAPTURE_CHUNKS_SKIPPED, n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("EMF lines are JSON"))
            .collect()
    }

    /// Every metric declared is present as a number or numbers, every dimension as a
    /// string, and the `_aws` block is well formed.
    fn check_valid(doc: &Value, namespace: &str) {
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        for directive in aws["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], namespace);
            for set in directive["Dimensions"].as_array().unwrap() {
                for key in set.as_array().unwrap() {
                    assert!(doc[key.as_str().unwrap()].is_string(), "{doc}");
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let value = &doc[metric["Name"].as_str().unwrap()];
                assert!(
                    value.is_number()
                        || value.as_array().is_some_and(
                            |v| v.len() <= MAX_VALUES && v.iter().all(Value::is_number)
                        ),
                    "{doc}"
                );
            }
        }
    }

    #[tokio::test]
    async fn collected_metrics_come_back_as_packed_emf() {
        let sink = Arc::new(MemorySink::default());
        collect(Metrics::new("tp-test", sink.clone()), async {
            processed("intake");
            processed("intake");
            latency_ms("intake", 12.5);
            latency_ms("intake", 3.0);
            failed("intake", "permanent");
            rejected("intake", "too_large");
            comprehend_request("InferRxNorm", 250);
            comprehend_request("DetectEntitiesV2", 40);
        })
        .await;
        let docs = parse(&sink.lines());
        // Stage groups share one document; the two Api groups need one each.
        assert_eq!(docs.len(), 2, "{docs:?}");
        for doc in &docs {
            check_valid(doc, "tp-test");
        }
        let stage = &docs[0];
        assert_eq!(stage["Stage"], "intake");
        assert_eq!(stage["Api"], "DetectEntitiesV2");
        assert_eq!(stage["Processed"], 2.0);
        assert_eq!(stage["Latency"], json!([12.5, 3.0]));
        assert_eq!(stage["ErrorClass"], "permanent");
        assert_eq!(stage["Failed"], 1.0);
        assert_eq!(stage["Reason"], "too_large");
        assert_eq!(stage["ComprehendBilledCharacters"], 40.0);
        assert_eq!(stage["ComprehendBilledUnits"], 1.0);
        let directives = stage["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        let by_dims: BTreeMap<String, Vec<String>> = directives
            .iter()
            .map(|d| {
                let names = d["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        format!(
                            "{}:{}",
                            m["Name"].as_str().unwrap(),
                            m["Unit"].as_str().unwrap()
                        )
                    })
                    .collect();
                (d["Dimensions"].to_string(), names)
            })
            .collect();
        assert_eq!(
            by_dims[r#"[["Stage"]]"#],
            ["Latency:Milliseconds", "Processed:Count"]
        );
        assert_eq!(by_dims[r#"[["Stage","ErrorClass"]]"#], ["Failed:Count"]);
        assert_eq!(by_dims[r#"[["Stage","Reason"]]"#], ["Rejected:Count"]);
        assert_eq!(by_dims[r#"[["Api"]]"#].len(), 3);
        assert_eq!(docs[1]["Api"], "InferRxNorm");
        assert_eq!(docs[1]["ComprehendBilledUnits"], 3.0);
        assert_eq!(docs[1]["ComprehendRequests"], 1.0);
    }

    #[test]
    fn more_than_100_values_spill_into_further_documents() {
        let mut aggregate = Aggregate::default();
        for n in 0..250 {
            aggregate.record(
                &[("Stage", "clinical")],
                names::LATENCY,
                Unit::Milliseconds,
                f64::from(n),
            );
        }
        aggregate.record(
            &[("Stage", "clinical")],
            names::PROCESSED,
            Unit::Count,
            250.0,
        );
        let docs = aggregate.documents("ns", 1_700_000_000_000);
        assert_eq!(docs.len(), 3);
        let lens: Vec<usize> = docs
            .iter()
            .map(|d| d["Latency"].as_array().unwrap().len())
            .collect();
        assert_eq!(lens, [100, 100, 50]);
        assert_eq!(docs[0]["Processed"], 250.0);
        assert!(docs[1].get("Processed").is_none());
        for doc in &docs {
            check_valid(doc, "ns");
            assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
        }
    }

    #[tokio::test]
    async fn nested_collects_flush_once_each_and_nothing_is_lost() {
        let sink = Arc::new(MemorySink::default());
        let metrics = Metrics::new("ns", sink.clone());
        collect(metrics, async {
            notification("email", "sent");
            collect(current(), async { notification("email", "sent") }).await;
            transcribe_job_duration_ms(61_000);
        })
        .await;
        let docs = parse(&sink.lines());
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["Notifications"], 1.0);
        assert_eq!(docs[1]["Notifications"], 1.0);
        assert_eq!(docs[1]["Channel"], "email");
        assert_eq!(docs[1]["Outcome"], "sent");
        assert_eq!(docs[1]["TranscribeJobDuration"], 61_000.0);
        assert_eq!(docs[1]["Stage"], "transcribe");
    }

    #[test]
    fn configuration_from_variables() {
        let from = |pairs: &[(&str, &str)]| Metrics::from_env(&Env::from_pairs(pairs));
        assert_eq!(from(&[]).unwrap().namespace(), "telepipe");
        assert_eq!(
            from(&[(NAMESPACE_VAR, "tp-prod")]).unwrap().namespace(),
            "tp-prod"
        );
        assert!(from(&[(SINK_VAR, "off")]).is_ok());
        let path = std::env::temp_dir().join(format!("telepipe-emf-{}.log", std::process::id()));
        let setting = format!("file:{}", path.display());
        let metrics = Metrics::from_env(&Env::from_pairs(&[(SINK_VAR, setting.as_str())])).unwrap();
        let mut aggregate = Aggregate::default();
        aggregate.record(&[("Stage", "intake")], names::PROCESSED, Unit::Count, 1.0);
        metrics.flush(&aggregate, 1_700_000_000_000);
        drop(metrics);
        let written = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let doc: Value = serde_json::from_str(written.trim_end()).unwrap();
        assert_eq!(doc["Processed"], 1.0);
        assert_eq!(
            from(&[(SINK_VAR, "file:")]).err().unwrap().variable,
            SINK_VAR
        );
        assert_eq!(
            from(&[(SINK_VAR, "loud")]).err().unwrap().variable,
            SINK_VAR
        );
        assert_eq!(
            from(&[(NAMESPACE_VAR, "AWS/Lambda")])
                .err()
                .unwrap()
                .variable,
            NAMESPACE_VAR
        );
    }
}
