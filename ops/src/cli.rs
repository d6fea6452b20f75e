//! `telepipe dlq list|peek|replay`: the clap argument types and their handlers, so the
//! `telepipe` binary only adds a subcommand and passes the local adapter's constructor.
//!
//! Output goes to stdout; progress and diagnostics to stderr. Bodies are printed only
//! with `--show-body`; otherwise a summary without PHI (see `crate::message`).

use crate::journal::{FileJournal, MemoryJournal};
use crate::message::{parse_attribute, parse_duration, summarize, DeadLetterInfo, Filter};
use crate::port::{DlqAdmin, DlqInfo};
use crate::replay::{replay, Mode, ReplayOptions, ReplayReport};
use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use telepipe_workers::clock::now_ms;
use telepipe_workers::error::{ErrorClass, PortError, PortErrorKind};

/// Dead-letter queues: list them, look inside, replay them to their source queue.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The local runtime's data directory (its SQLite queues).
    #[arg(long, global = true, conflicts_with = "aws")]
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
        /// One JSON object per line.
        #[arg(long)]
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
        /// One JSON object per line.
        #[arg(long)]
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

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs a `telepipe dlq` command. `open_local` opens the local runtime's adapter on a data
/// directory (it lives in `telepipe-local`, which depends on this crate).
pub async fn run<L, F>(args: &DlqArgs, open_local: F) -> Result<ExitCode, String>
where
    L: DlqAdmin,
    F: FnOnce(&Path) -> Result<L, String>,
{
    match (&args.data_dir, args.aws) {
        (Some(data_dir), false) => {
            let admin = open_local(data_dir)?;
            let journal_dir = data_dir.join("replay");
            execute(&admin, &args.command, &|queue| {
                journal_dir.join(format!("{}.jsonl", file_safe(queue)))
            })
            .await
        }
        (None, true) => run_aws(&args.command).await,
        _ => Err("say where the queues are: --data-dir DIR (local runtime) or --aws (SQS)".into()),
    }
}

#[cfg(feature = "aws")]
async fn run_aws(command: &DlqCommand) -> Result<ExitCode, String> {
    let admin = crate::sqs::SqsDlqAdmin::from_env().await;
    if let DlqCommand::Replay(replay) = command {
        if replay.native {
            return native(&admin, replay).await;
        }
    }
    execute(&admin, command, &|queue| {
        PathBuf::from(format!("telepipe-replay-{}.jsonl", file_safe(queue)))
    })
    .await
}

#[cfg(not(feature = "aws"))]
async fn run_aws(_command: &DlqCommand) -> Result<ExitCode, String> {
    Err("this telepipe was built without SQS support: rebuild with the `aws` feature".into())
}

#[cfg(feature = "aws")]
async fn native(admin: &crate::sqs::SqsDlqAdmin, args: &ReplayArgs) -> Result<ExitCode, String> {
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
        return Err("--native moves the whole queue: it takes only --to and --rate".into());
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
    let handle = admin
        .start_native_move(&args.queue, Some(&target), rate)
        .await
        .map_err(|e| advice(&e, &args.queue))?;
    println!("started SQS message move task {handle} for {}", args.queue);
    println!("(SQS moves messages back to their source queue itself; no journal is written)");
    Ok(ExitCode::SUCCESS)
}

async fn execute<A: DlqAdmin>(
    admin: &A,
    command: &DlqCommand,
    default_journal: &dyn Fn(&str) -> PathBuf,
) -> Result<ExitCode, String> {
    match command {
        DlqCommand::List { json } => list(admin, *json).await,
        DlqCommand::Peek {
            queue,
            max,
            show_body,
            json,
        } => peek(admin, queue, *max, *show_body, *json).await,
        DlqCommand::Replay(args) => {
            if args.native {
                return Err(
                    "--native needs --aws: SQS's own redrive has no local equivalent".into(),
                );
            }
            replay_command(admin, args, default_journal).await
        }
    }
}

fn source_name(info: &DlqInfo) -> String {
    info.source
        .as_deref()
        .map(|s| s.rsplit('/').next().unwrap_or(s).to_owned())
        .unwrap_or_else(|| "-".into())
}

async fn list<A: DlqAdmin>(admin: &A, json: bool) -> Result<ExitCode, String> {
    let dlqs = admin.list().await.map_err(|e| advice(&e, "*"))?;
    if json {
        for info in &dlqs {
            let line = serde_json::json!({
                "name": info.name, "queue": info.queue, "depth": info.depth,
                "in_flight": info.in_flight,
                "oldest_age_secs": info.oldest_age.map(|a| a.as_secs()),
                "source": info.source, "fifo": info.fifo,
            });
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32} {:>8} {:>10} {:>8}  source",
        "dead-letter queue", "depth", "in flight", "oldest"
    );
    for info in &dlqs {
        println!(
            "{:<32} {:>8} {:>10} {:>8}  {}",
            info.name,
            info.depth,
            info.in_flight,
            format_age(info.oldest_age),
            source_name(info)
        );
    }
    if dlqs.is_empty() {
        println!("(no dead-letter queues)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn peek<A: DlqAdmin>(
    admin: &A,
    queue: &str,
    max: usize,
    show_body: bool,
    json: bool,
) -> Result<ExitCode, String> {
    let info = admin.find(queue).await.map_err(|e| advice(&e, queue))?;
    let messages = admin
        .peek(&info.queue, max)
        .await
        .map_err(|e| advice(&e, queue))?;
    let now = now_ms();
    for message in &messages {
        let dead = DeadLetterInfo::of(message);
        let summary = summarize(&message.body);
        let age = message
            .sent_at_ms
            .map(|sent| Duration::from_millis((now - sent).max(0) as u64));
        if json {
            let mut line = serde_json::json!({
                "message_id": message.id, "age_secs": age.map(|a| a.as_secs()),
                "dead_letter": dead, "body": summary, "group_id": message.group_id,
                "attributes": message.attributes.keys().collect::<Vec<_>>(),
            });
            if show_body {
                line["body_text"] = message.body.clone().into();
            }
            println!("{line}");
            continue;
        }
        println!(
            "{}  age {}  stage {}  class {}  reason {}  receives {}",
            message.id,
            format_age(age),
            dead.stage.as_deref().unwrap_or("-"),
            dead.error_class.as_deref().unwrap_or("-"),
            dead.reason,
            dead.receive_count
        );
        if let Some(context) = &dead.context {
            println!("    context: {context}");
        }
        println!(
            "    body: {} bytes, sha256 {}, {}{}{}",
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
        );
        if show_body {
            println!("    {}", message.body);
        }
    }
    if !json {
        println!(
            "{} of {} message(s) shown from {}{}",
            messages.len(),
            info.depth,
            info.name,
            if show_body {
                ""
            } else {
                " (bodies hidden; --show-body prints them)"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_progress(report: &ReplayReport, done: bool) {
    eprint!(
        "\rreplay: {} scanned, {} matched, {} sent, {} deleted, {} already sent, {} uncertain{}",
        report.scanned,
        report.matched,
        report.sent,
        report.deleted,
        report.already_sent,
        report.uncertain.len(),
        if done { "\n" } else { "" }
    );
}

async fn replay_command<A: DlqAdmin>(
    admin: &A,
    args: &ReplayArgs,
    default_journal: &dyn Fn(&str) -> PathBuf,
) -> Result<ExitCode, String> {
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
        return Err("the target is the dead-letter queue itself: name another with --to".into());
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
    let interactive = std::io::stderr().is_terminal();
    let mut progress = |report: &ReplayReport| {
        if interactive {
            print_progress(report, false);
        }
    };
    // A dry run writes nothing, not even a new journal file; an existing one still tells
    // it what earlier runs did.
    let outcome = if args.dry_run && !journal_path.exists() {
        let mut journal = MemoryJournal::default();
        replay(admin, &mut journal, &options, &mut progress).await
    } else {
        let mut journal = FileJournal::open(&journal_path)
            .map_err(|e| format!("journal {}: {e}", journal_path.display()))?;
        replay(admin, &mut journal, &options, &mut progress).await
    };
    let report = match &outcome {
        Ok(report) => report,
        Err(failure) => &failure.report,
    };
    print_progress(report, true);
    for planned in &report.planned {
        println!(
            "would send {}  stage {}  reason {}  {} bytes{}",
            planned.message_id,
            planned.stage.as_deref().unwrap_or("-"),
            planned.reason,
            planned.bytes,
            if planned.session_ids.is_empty() {
                String::new()
            } else {
                format!("  session {}", planned.session_ids.join(" "))
            }
        );
    }
    for id in &report.uncertain {
        println!("uncertain {id}: an earlier run may have sent it; left in place (re-run with --force to resend)");
    }
    for id in &report.unsupported {
        println!("not replayed {id}: it carries binary message attributes this tool cannot copy");
    }
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
        return Err(format!(
            "replay stopped: {} — nothing is lost: originals are deleted only after their copy is journaled as sent",
            failure.error
        ));
    }
    Ok(
        if report.uncertain.is_empty() && report.unsupported.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
        assert!(parse(&["list", "--aws", "--data-dir", "d"]).is_err());
        assert!(parse(&["replay", "q", "--aws", "--error-class", "maybe"]).is_err());
        assert!(parse(&["replay", "q", "--aws", "--rate", "0"]).is_err());
        assert!(parse(&["--aws", "peek", "q", "--show-body"]).is_ok());
    }
}
