//! `telepipe dlq list|peek|replay`: arguments, output and exit codes over the operator
//! tooling (`telepipe_ops`: the `DlqAdmin` port, the replay algorithm and its journal) and
//! its adapters (the data directory's queues, or SQS with `--aws`).
//!
//! Results go to stdout (a table or one JSON document); progress and diagnostics to stderr.
//! Bodies are printed only with `--show-body`; otherwise a summary without PHI (see
//! `telepipe_ops::message`).

use crate::args::DATA_DIR_ENV;
use crate::output::{or_dash, table, CommandResult, Failure, Outcome, Printer};
use crate::progress::Progress;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use telepipe_ops::journal::{local_journal_path, FileJournal, MemoryJournal};
use telepipe_ops::message::{
    parse_attribute, parse_duration, summarize, BodySummary, DeadLetterInfo, Filter,
};
use telepipe_ops::port::{DlqAdmin, DlqInfo};
use telepipe_ops::replay::{replay, Mode, ReplayOptions, ReplayReport};
use telepipe_workers::clock::now_ms;
use telepipe_workers::error::{ErrorClass, PortError, PortErrorKind};

/// Dead-letter queues: list them, look inside, replay them to their source queue.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The local runtime's data directory (its SQLite queues).
    #[arg(long, global = true, env = DATA_DIR_ENV)]
    pub data_dir: Option<PathBuf>,
    /// Amazon SQS, with the SDK's standard configuration (AWS_REGION, AWS_ENDPOINT_URL,
    /// credentials chain).
    #[arg(long, global = true)]
    pub aws: bool,
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Each dead-letter queue with its depth, oldest message age and source queue.
    List {
        /// Same as `--output json` (kept for existing scripts).
        #[arg(long, hide = true)]
        json: bool,
    },
    /// Messages of a dead-letter queue with reason, stage, error class and receive count.
    Peek {
        /// Queue name (or URL on SQS).
        queue: String,
        /// Messages to show at most.
        #[arg(long, default_value_t = 10)]
        max: usize,
        /// Print message bodies (they may contain PHI such as object keys).
        #[arg(long)]
        show_body: bool,
        /// Same as `--output json` (kept for existing scripts).
        #[arg(long, hide = true)]
        json: bool,
    },
    /// Send dead letters back to their source queue (move by default), journaled so an
    /// interrupted replay can be re-run without losing or doubling a message.
    Replay(Box<ReplayArgs>),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Dead-letter queue name (or URL on SQS).
    pub queue: String,
    /// Only messages parked by this stage (`intake`, `clinical`, ...).
    #[arg(long)]
    pub stage: Option<String>,
    /// Only this error class.
    #[arg(long, value_parser = ["retryable", "permanent"])]
    pub error_class: Option<String>,
    /// Only reasons starting with this.
    #[arg(long)]
    pub reason: Option<String>,
    /// Only messages about this session id.
    #[arg(long)]
    pub session: Option<String>,
    /// Only messages at least this old (90s, 30m, 1h, 2d).
    #[arg(long, value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Only messages at most this old.
    #[arg(long, value_parser = parse_duration)]
    pub newer_than: Option<Duration>,
    /// Only messages with this attribute value (NAME=VALUE; repeatable, all must match).
    #[arg(long = "attribute", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// Print what would be sent; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// At most this many messages per second (`10` or `10/s`).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Keep the originals on the dead-letter queue (default: move).
    #[arg(long)]
    pub copy: bool,
    /// Send at most this many messages.
    #[arg(long)]
    pub max: Option<usize>,
    /// Target queue (name, or URL on SQS) instead of the dead-letter queue's source.
    #[arg(long)]
    pub to: Option<String>,
    /// Journal file (default: DATA_DIR/replay/QUEUE.jsonl locally, ./telepipe-replay-QUEUE.jsonl on SQS).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// Also resend messages an interrupted run may or may not have sent (may duplicate them).
    #[arg(long)]
    pub force: bool,
    /// SQS only: start SQS's own redrive (StartMessageMoveTask) of the whole queue; no
    /// filters, copy, max, dry run or journal.
    #[arg(long)]
    pub native: bool,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    number
        .parse::<f64>()
        .ok()
        .filter(|r| *r > 0.0 && r.is_finite())
        .ok_or_else(|| format!("`{text}`: a rate is messages per second, e.g. 10 or 10/s"))
}

/// A port error with what to do about it.
fn advice(error: &PortError, queue: &str) -> String {
    let todo = match (error.kind, error.class()) {
        (PortErrorKind::NotFound, _) => {
            format!("queue `{queue}` not found: check the name (`telepipe dlq list` shows them)")
        }
        (PortErrorKind::AccessDenied, _) => {
            "access denied: the caller needs the SQS permissions listed in ops/README.md".into()
        }
        (_, ErrorClass::Retryable) => "retryable: try again in a moment".into(),
        (_, ErrorClass::Permanent) => "permanent: fix the request before retrying".into(),
    };
    format!("{error}: {todo}")
}

fn format_age(age: Option<Duration>) -> String {
    let Some(age) = age else {
        return "-".into();
    };
    let secs = age.as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7_199 => format!("{}m", secs / 60),
        7_200..=172_799 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Runs a `telepipe dlq` command on the data directory's queues or, with `--aws`, on SQS.
pub async fn run(args: &DlqArgs, printer: Printer) -> CommandResult {
    if args.aws {
        return run_aws(&args.command, printer).await;
    }
    let Some(data_dir) = &args.data_dir else {
        return Err(Failure::Usage(format!(
            "say where the queues are: --data-dir DIR (or {DATA_DIR_ENV}) for the local runtime, or --aws for SQS"
        )));
    };
    let admin = telepipe_local::dlq::LocalDlqAdmin::open(data_dir)?;
    // Where the console journals too, so either resumes the other's replay.
    execute(&admin, &args.command, printer, &|queue| {
        local_journal_path(data_dir, queue)
    })
    .await
}

#[cfg(feature = "aws")]
async fn run_aws(command: &DlqCommand, printer: Printer) -> CommandResult {
    let admin = telepipe_ops::sqs::SqsDlqAdmin::from_env().await;
    if let DlqCommand::Replay(replay) = command {
        if replay.native {
            return native(&admin, replay, printer).await;
        }
    }
    execute(&admin, command, printer, &|queue| {
        PathBuf::from(format!(
            "telepipe-replay-{}.jsonl",
            telepipe_ops::journal::file_safe(queue)
        ))
    })
    .await
}

#[cfg(not(feature = "aws"))]
async fn run_aws(_command: &DlqCommand, _printer: Printer) -> CommandResult {
    Err("this telepipe was built without SQS support: rebuild with the `aws` feature".into())
}

/// What `--native` started.
#[cfg(feature = "aws")]
#[derive(Serialize)]
struct NativeMove {
    queue: String,
    target: String,
    task: String,
}

#[cfg(feature = "aws")]
async fn native(
    admin: &telepipe_ops::sqs::SqsDlqAdmin,
    args: &ReplayArgs,
    printer: Printer,
) -> CommandResult {
    let selective = args.stage.is_some()
        || args.error_class.is_some()
        || args.reason.is_some()
        || args.session.is_some()
        || args.older_than.is_some()
        || args.newer_than.is_some()
        || !args.attributes.is_empty()
        || args.copy
        || args.max.is_some()
        || args.dry_run
        || args.force
        || args.journal.is_some();
    if selective {
        return Err(Failure::Usage(
            "--native moves the whole queue: it takes only --to and --rate".into(),
        ));
    }
    let rate = args.rate.map(|r| r.round().clamp(1.0, 500.0) as i32);
    // An explicit destination: messages the workers parked themselves (not moved by a
    // redrive policy) have no "original source" for SQS to return them to.
    let target = match &args.to {
        Some(to) => to.clone(),
        None => admin
            .find(&args.queue)
            .await
            .map_err(|e| advice(&e, &args.queue))?
            .source
            .ok_or_else(|| {
                format!(
                    "no source queue is known for {}: name it with --to",
                    args.queue
                )
            })?,
    };
    let task = admin
        .start_native_move(&args.queue, Some(&target), rate)
        .await
        .map_err(|e| advice(&e, &args.queue))?;
    let started = NativeMove {
        queue: args.queue.clone(),
        target,
        task,
    };
    printer.show(&started, |m| {
        format!(
            "started SQS message move task {} for {}\n(SQS moves messages back to their source queue itself; no journal is written)",
            m.task, m.queue
        )
    })?;
    Ok(Outcome::Done)
}

async fn execute<A: DlqAdmin>(
    admin: &A,
    command: &DlqCommand,
    printer: Printer,
    default_journal: &dyn Fn(&str) -> PathBuf,
) -> CommandResult {
    match command {
        DlqCommand::List { json } => list(admin, printer.or_json(*json)).await,
        DlqCommand::Peek {
            queue,
            max,
            show_body,
            json,
        } => peek(admin, queue, *max, *show_body, printer.or_json(*json)).await,
        DlqCommand::Replay(args) => {
            if args.native {
                return Err(Failure::Usage(
                    "--native needs --aws: SQS's own redrive has no local equivalent".into(),
                ));
            }
            replay_command(admin, args, printer, default_journal).await
        }
    }
}

fn source_name(info: &DlqInfo) -> Option<String> {
    info.source
        .as_deref()
        .map(|s| s.rsplit('/').next().unwrap_or(s).to_owned())
}

/// One dead-letter queue, as `dlq list` shows it.
#[derive(Serialize)]
struct ListedQueue {
    name: String,
    queue: String,
    depth: u64,
    in_flight: u64,
    oldest_age_secs: Option<u64>,
    source: Option<String>,
    fifo: bool,
}

async fn list<A: DlqAdmin>(admin: &A, printer: Printer) -> CommandResult {
    let dlqs = admin.list().await.map_err(|e| advice(&e, "*"))?;
    let listed: Vec<ListedQueue> = dlqs
        .iter()
        .map(|info| ListedQueue {
            name: info.name.clone(),
            queue: info.queue.clone(),
            depth: info.depth,
            in_flight: info.in_flight,
            oldest_age_secs: info.oldest_age.map(|a| a.as_secs()),
            source: info.source.clone(),
            fifo: info.fifo,
        })
        .collect();
    printer.show(&listed, |_| {
        if dlqs.is_empty() {
            return "(no dead-letter queues)".into();
        }
        let mut t = table([
            "dead-letter queue",
            "depth",
            "in flight",
            "oldest",
            "source",
        ]);
        for info in &dlqs {
            t.add_row([
                info.name.clone(),
                info.depth.to_string(),
                info.in_flight.to_string(),
                format_age(info.oldest_age),
                or_dash(source_name(info)),
            ]);
        }
        t.to_string()
    })?;
    Ok(Outcome::Done)
}

/// One dead letter, as `dlq peek` shows it.
#[derive(Serialize)]
struct Peeked {
    message_id: String,
    age_secs: Option<u64>,
    dead_letter: DeadLetterInfo,
    body: BodySummary,
    group_id: Option<String>,
    /// Attribute names only.
    attributes: Vec<String>,
    /// The body itself, with `--show-body` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    body_text: Option<String>,
}

async fn peek<A: DlqAdmin>(
    admin: &A,
    queue: &str,
    max: usize,
    show_body: bool,
    printer: Printer,
) -> CommandResult {
    let info = admin.find(queue).await.map_err(|e| advice(&e, queue))?;
    let messages = admin
        .peek(&info.queue, max)
        .await
        .map_err(|e| advice(&e, queue))?;
    let now = now_ms();
    let peeked: Vec<Peeked> = messages
        .iter()
        .map(|message| Peeked {
            message_id: message.id.clone(),
            age_secs: message
                .sent_at_ms
                .map(|sent| Duration::from_millis((now - sent).max(0) as u64).as_secs()),
            dead_letter: DeadLetterInfo::of(message),
            body: summarize(&message.body),
            group_id: message.group_id.clone(),
            attributes: message.attributes.keys().cloned().collect(),
            body_text: show_body.then(|| message.body.clone()),
        })
        .collect();
    printer.show(&peeked, |peeked| {
        let mut out = String::new();
        for p in peeked {
            let dead = &p.dead_letter;
            let summary = &p.body;
            out.push_str(&format!(
                "{}  age {}  stage {}  class {}  reason {}  receives {}\n",
                p.message_id,
                format_age(p.age_secs.map(Duration::from_secs)),
                dead.stage.as_deref().unwrap_or("-"),
                dead.error_class.as_deref().unwrap_or("-"),
                dead.reason,
                dead.receive_count
            ));
            if let Some(context) = &dead.context {
                out.push_str(&format!("    context: {context}\n"));
            }
            out.push_str(&format!(
                "    body: {} bytes, sha256 {}, {}{}{}\n",
                summary.bytes,
                summary.sha256,
                summary.kind,
                if summary.session_ids.is_empty() {
                    String::new()
                } else {
                    format!(", session {}", summary.session_ids.join(" "))
                },
                if summary.events.is_empty() {
                    String::new()
                } else {
                    format!(", {}", summary.events.join("; "))
                }
            ));
            if let Some(body) = &p.body_text {
                out.push_str(&format!("    {body}\n"));
            }
        }
        out.push_str(&format!(
            "{} of {} message(s) shown from {}{}",
            peeked.len(),
            info.depth,
            info.name,
            if show_body {
                ""
            } else {
                " (bodies hidden; --show-body prints them)"
            }
        ));
        out
    })?;
    Ok(Outcome::Done)
}

fn counts(report: &ReplayReport) -> String {
    format!(
        "replay: {} scanned, {} matched, {} sent, {} deleted, {} already sent, {} uncertain",
        report.scanned,
        report.matched,
        report.sent,
        report.deleted,
        report.already_sent,
        report.uncertain.len(),
    )
}

/// What `dlq replay` did (or, on a dry run, would do).
#[derive(Serialize)]
struct Replayed {
    dlq: String,
    target: String,
    journal: PathBuf,
    /// `move` or `copy`.
    mode: &'static str,
    dry_run: bool,
    #[serde(flatten)]
    report: ReplayReport,
}

async fn replay_command<A: DlqAdmin>(
    admin: &A,
    args: &ReplayArgs,
    printer: Printer,
    default_journal: &dyn Fn(&str) -> PathBuf,
) -> CommandResult {
    let dlq = admin
        .find(&args.queue)
        .await
        .map_err(|e| advice(&e, &args.queue))?;
    let target = match &args.to {
        Some(to) => admin.find(to).await.map_err(|e| advice(&e, to))?.queue,
        None => dlq.source.clone().ok_or_else(|| {
            format!(
                "no source queue is known for {}: name the target with --to QUEUE",
                dlq.name
            )
        })?,
    };
    if target == dlq.queue {
        return Err(Failure::Usage(
            "the target is the dead-letter queue itself: name another with --to".into(),
        ));
    }
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(&dlq.name));
    let mut options = ReplayOptions::new(&dlq.queue, &dlq.name, &target, now_ms());
    options.filter = Filter {
        stage: args.stage.clone(),
        error_class: args.error_class.clone(),
        reason_prefix: args.reason.clone(),
        session: args.session.clone(),
        older_than: args.older_than,
        newer_than: args.newer_than,
        attributes: args.attributes.clone(),
    };
    options.mode = if args.copy { Mode::Copy } else { Mode::Move };
    options.dry_run = args.dry_run;
    options.rate = args.rate;
    options.max = args.max;
    options.force = args.force;
    eprintln!(
        "{} {} → {} (journal {}){}",
        if args.dry_run {
            "dry run:"
        } else {
            options.mode.as_str()
        },
        dlq.name,
        target.rsplit('/').next().unwrap_or(&target),
        journal_path.display(),
        if options.filter.is_empty() {
            ""
        } else {
            ", filtered"
        }
    );
    let mut progress = Progress::new(dlq.depth, "messages", Some(Duration::from_secs(1)));
    let mut on_progress = |report: &ReplayReport| {
        progress.set(report.scanned as u64, counts(report));
    };
    // A dry run writes nothing, not even a new journal file; an existing one still tells
    // it what earlier runs did.
    let outcome = if args.dry_run && !journal_path.exists() {
        let mut journal = MemoryJournal::default();
        replay(admin, &mut journal, &options, &mut on_progress).await
    } else {
        let mut journal = FileJournal::open(&journal_path)
            .map_err(|e| format!("journal {}: {e}", journal_path.display()))?;
        replay(admin, &mut journal, &options, &mut on_progress).await
    };
    let report = match &outcome {
        Ok(report) => report.clone(),
        Err(failure) => failure.report.clone(),
    };
    progress.finish(&counts(&report));
    // Messages hidden by an interrupted run (or read by someone else) were not scanned.
    if let Ok(after) = admin.find(&dlq.queue).await {
        if after.in_flight > 0 {
            eprintln!(
                "note: {} message(s) on {} are in flight (an interrupted replay or another reader) and were not looked at; they become visible within {} s: re-run then",
                after.in_flight, dlq.name, options.visibility_secs
            );
        }
    }
    if let Err(failure) = outcome {
        return Err(Failure::Runtime(format!(
            "replay stopped: {} — nothing is lost: originals are deleted only after their copy is journaled as sent",
            failure.error
        )));
    }
    let complete = report.uncertain.is_empty() && report.unsupported.is_empty();
    let replayed = Replayed {
        dlq: dlq.name.clone(),
        target: target.rsplit('/').next().unwrap_or(&target).to_owned(),
        journal: journal_path,
        mode: options.mode.as_str(),
        dry_run: args.dry_run,
        report,
    };
    printer.show(&replayed, |r| {
        let mut out = String::new();
        for planned in &r.report.planned {
            out.push_str(&format!(
                "would send {}  stage {}  reason {}  {} bytes{}\n",
                planned.message_id,
                planned.stage.as_deref().unwrap_or("-"),
                planned.reason,
                planned.bytes,
                if planned.session_ids.is_empty() {
                    String::new()
                } else {
                    format!("  session {}", planned.session_ids.join(" "))
                }
            ));
        }
        for id in &r.report.uncertain {
            out.push_str(&format!("uncertain {id}: an earlier run may have sent it; left in place (re-run with --force to resend)\n"));
        }
        for id in &r.report.unsupported {
            out.push_str(&format!(
                "not replayed {id}: it carries binary message attributes this tool cannot copy\n"
            ));
        }
        out.push_str(&format!(
            "{}{} of {} matched message(s) {} {}",
            if r.dry_run { "dry run: " } else { "" },
            if r.dry_run {
                r.report.planned.len()
            } else {
                r.report.sent + r.report.already_sent
            },
            r.report.matched,
            if r.dry_run { "would go to" } else { "went to" },
            r.target
        ));
        out
    })?;
    Ok(if complete {
        Outcome::Done
    } else {
        Outcome::Partial
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::Path;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Subcommand)]
    enum Top {
        Dlq(DlqArgs),
    }

    fn parse(args: &[&str]) -> Result<DlqArgs, clap::Error> {
        let mut all = vec!["telepipe", "dlq"];
        all.extend(args);
        Cli::try_parse_from(all).map(|cli| match cli.command {
            Top::Dlq(args) => args,
        })
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let args = parse(&[
            "replay",
            "intake-dlq",
            "--data-dir",
            "d",
            "--stage",
            "intake",
            "--error-class",
            "retryable",
            "--older-than",
            "1h",
            "--attribute",
            "a=b",
            "--attribute",
            "c=d",
            "--rate",
            "5/s",
            "--max",
            "3",
            "--copy",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(args.data_dir.as_deref(), Some(Path::new("d")));
        let DlqCommand::Replay(replay) = args.command else {
            panic!("replay expected");
        };
        assert_eq!(replay.attributes.len(), 2);
        assert_eq!(replay.rate, Some(5.0));
        assert_eq!(replay.older_than, Some(Duration::from_secs(3_600)));
        assert!(replay.copy && replay.dry_run);
        // `--aws` with a typed `--data-dir` is refused by `crate::args::both_places`.
        assert!(parse(&["replay", "q", "--aws", "--error-class", "maybe"]).is_err());
        assert!(parse(&["replay", "q", "--aws", "--rate", "0"]).is_err());
        assert!(parse(&["--aws", "peek", "q", "--show-body"]).is_ok());
    }
}
