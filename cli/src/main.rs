//! `telepipe`: the operator and developer command of telepipe — the local pipeline on
//! this machine, offline, and the operator tooling for the local runtime or the deployment.
//!
//! This crate is the command line only: arguments (clap), output (`output`: tables or one
//! JSON document, exit codes; `progress`) and dispatch. The work is the libraries':
//! `telepipe_local` (runtime, adapters, console) and `telepipe_ops` (dead letters, forget,
//! reprocess over ports).
//!
//! - `telepipe demo`: runs the bundled sample recordings (and a Chime-style capture in
//!   5-second chunks) through every stage in a fresh data directory and prints what came out;
//! - `telepipe run --data-dir DIR`: the long-running runtime; drop a recording into
//!   `DIR/buckets/recordings/recordings/{session_id}/` to start the chain, or a Chime
//!   capture into `DIR/buckets/recordings/captures/{session_id}/` followed by its
//!   `Chime Media Pipeline State Change` through `telepipe events put`;
//! - `telepipe events put|list`: session events onto the local bus, and what it published;
//! - `telepipe timers`: pending reminder and recording-check timers, `--fire` to deliver
//!   them now instead of at their time; `telepipe notifications`, `telepipe sms receive`;
//! - `telepipe dlq list|peek|replay`: dead letters, locally or on SQS (`dlq`);
//! - `telepipe forget` / `telepipe reprocess`: delete everything kept about a session
//!   (audited, resumable) or re-feed it from a stage (`session`);
//! - `telepipe status`: where each recording is, queue depths and dead letters; with
//!   `--since`/`--state` (or `--aws`), per-recording timelines from the status store;
//! - `telepipe audit [verify]`, `telepipe serve`, `telepipe report`, `telepipe completions`.

mod args;
mod audit;
mod console;
mod dlq;
mod events;
mod notify;
mod output;
mod pipeline;
mod progress;
mod session;
mod status;

use args::DATA_DIR_ENV;
use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use output::{exit_code, CommandResult, Failure, Format, Outcome, Printer};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

fn top_help() -> String {
    format!(
        "\
Examples:
  telepipe demo                                   # the bundled samples through every stage
  telepipe run --data-dir .data/try               # the runtime, until Ctrl-C
  telepipe status --data-dir .data/try --output json
  export {DATA_DIR_ENV}=.data/try; telepipe status   # --data-dir from the environment

Every command prints its result as a table (or lines) or, with --output json, as one JSON
document on stdout; `run` prints one JSON object per line. Progress, notes and errors go to
stderr. Wherever a command takes --data-dir, {DATA_DIR_ENV} stands for it.

{}",
        output::EXIT_CODES
    )
}

#[derive(Parser)]
#[command(
    name = "telepipe",
    version,
    about = "telepipe's pipeline on this machine (recordings → transcripts → clinical entities, offline) and its operator tooling",
    after_help = top_help()
)]
struct Cli {
    /// How results are printed: `table` for people, `json` for one JSON document on stdout
    /// (`run`: one JSON object per line).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bundled sample recordings through every stage in a fresh data directory and print the results.
    #[command(after_help = "\
Examples:
  telepipe demo
  telepipe demo --data-dir .data/try --model models/ggml-base.en.bin
  telepipe demo --output json > demo.json      # progress stays on stderr

Exit code 3 when some recordings produced no results document, 1 when none did.")]
    Demo {
        /// Where to put the run (must not exist yet or be empty). Default: .data/demo-<time>.
        #[arg(long, env = DATA_DIR_ENV)]
        data_dir: Option<PathBuf>,
        /// Folder of .wav recordings to use.
        #[arg(long, default_value = "samples")]
        samples: PathBuf,
        #[command(flatten)]
        engines: pipeline::EngineArgs,
    },
    /// Run the local pipeline until Ctrl-C; recordings dropped into DIR/buckets/recordings/recordings/{session_id}/ are processed.
    /// Chime captures go to DIR/buckets/recordings/captures/{session_id}/audio/ (5-second chunks) and are
    /// joined into one recording when `telepipe events put` brings their chime:MediaPipelineDeleted.
    /// Stdout gets each message the outbox "sends" (one JSON object per line with --output json);
    /// progress goes to stderr.
    #[command(after_help = "\
Examples:
  telepipe run --data-dir .data/try
  telepipe run --data-dir .data/try --output json | jq .outbox.body")]
    Run {
        /// The data directory (created if missing).
        #[arg(long, env = DATA_DIR_ENV)]
        data_dir: PathBuf,
        #[command(flatten)]
        engines: pipeline::EngineArgs,
    },
    /// Publish events on the local bus (what the platform or Chime would send), or list what it published.
    #[command(after_help = "\
Examples:
  telepipe events put schemas/examples/session-scheduled.json --data-dir .data/try
  telepipe events list --data-dir .data/try --detail-type \"Notification Skipped\" --output json")]
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// List pending timers (reminders, recording checks); --fire delivers them now.
    Timers {
        /// The data directory of a `run`.
        #[arg(long, env = DATA_DIR_ENV)]
        data_dir: PathBuf,
        /// Only this session's timers.
        #[arg(long)]
        session: Option<String>,
        /// Deliver the listed timers now instead of at their time.
        #[arg(long)]
        fire: bool,
    },
    /// Every notification sent, skipped or failed for a session (ids, kinds, outcomes,
    /// provider message ids; no address, no text), locally or from the deployed log (--aws).
    Notifications {
        /// The session.
        #[arg(long)]
        session: String,
        /// The data directory of a `run` or `demo`.
        #[arg(long, env = DATA_DIR_ENV, required_unless_present = "aws")]
        data_dir: Option<PathBuf>,
        /// Same as `--output json` (kept for existing scripts).
        #[arg(long, hide = true)]
        json: bool,
        /// Read the deployed sessions table (TELEPIPE_SESSIONS_TABLE).
        #[arg(long)]
        aws: bool,
    },
    /// Two-way SMS on the local runtime: `telepipe sms receive --from N --body TEXT`.
    #[command(after_help = "\
Examples:
  telepipe sms receive --from +12025550143 --body STOP --data-dir .data/try
  echo 'C' | telepipe sms receive --from +12025550143 --body - --data-dir .data/try")]
    Sms {
        #[command(subcommand)]
        action: SmsAction,
    },
    /// Show where each recording is, since when, any error, and the queues.
    #[command(after_help = "\
Examples:
  telepipe status --data-dir .data/try
  telepipe status --data-dir .data/try --session visit-0001      # plus its timelines
  telepipe status --data-dir .data/try --since 1h --state failed
  telepipe status --aws --since 1d --state stalled --output json")]
    Status {
        /// The data directory of a `run` or `demo`.
        #[arg(long, env = DATA_DIR_ENV, required_unless_present = "aws")]
        data_dir: Option<PathBuf>,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        /// Timelines of recordings with a transition in this window (e.g. 30m, 1h, 2d).
        #[arg(long, value_parser = args::parse_duration)]
        since: Option<i64>,
        /// Only recordings that entered this state (received, rejected, transcribing,
        /// transcribed, extracting, extracted, failed, stalled).
        #[arg(long, value_parser = args::parse_state)]
        state: Option<telepipe_workers::status::State>,
        /// Read the deployed status table (TELEPIPE_STATUS_TABLE) instead of a data directory.
        #[arg(long)]
        aws: bool,
    },
    /// Dead letters: list the queues, peek at messages, replay them (--data-dir DIR or --aws).
    #[command(after_help = "\
Examples:
  telepipe dlq list --data-dir .data/try
  telepipe dlq peek intake-dlq --data-dir .data/try --output json
  telepipe dlq replay telepipe-intake-dlq --aws --error-class retryable --older-than 1h --dry-run
  telepipe dlq replay telepipe-intake-dlq --aws --error-class retryable --rate 20/s

`dlq replay` exits 3 when messages were left parked (uncertain earlier sends, binary attributes).")]
    Dlq(dlq::DlqArgs),
    /// Delete everything kept about a session (recordings, transcripts, results, status,
    /// state, schedules, queued messages), leaving an audit entry; resumable (--data-dir DIR or --aws).
    #[command(after_help = "\
Examples:
  telepipe forget --session visit-0001 --data-dir .data/try --dry-run
  telepipe forget --session visit-0001 --aws")]
    Forget(session::ForgetArgs),
    /// Re-feed a session's recordings (--from transcription) or transcripts (--from clinical) to the pipeline.
    #[command(after_help = "\
Examples:
  telepipe reprocess --session visit-0001 --data-dir .data/try --from clinical --dry-run
  telepipe reprocess --session visit-0001 --aws")]
    Reprocess(session::ReprocessArgs),
    /// The audit trail: what was done with a session's recordings and by whom (append-only,
    /// kept through `forget`). `telepipe audit verify` checks the local hash chain.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "\
Examples:
  telepipe audit --session visit-0001 --data-dir .data/try --since 7d
  telepipe audit --aws --session visit-0001 --output json
  telepipe audit verify --data-dir .data/try      # exit 1 if an entry was edited, removed or moved"
    )]
    Audit {
        #[command(subcommand)]
        check: Option<AuditCheck>,
        /// The data directory of a `run` or `demo`.
        #[arg(long, env = DATA_DIR_ENV, required_unless_present = "aws")]
        data_dir: Option<PathBuf>,
        /// Only this session (required with --aws).
        #[arg(long, required_if_eq("aws", "true"))]
        session: Option<String>,
        /// Only entries in this window (e.g. 30m, 1h, 7d).
        #[arg(long, value_parser = args::parse_duration)]
        since: Option<i64>,
        /// Same as `--output json` (kept for existing scripts).
        #[arg(long, hide = true)]
        json: bool,
        /// Read the deployed audit bucket (TELEPIPE_AUDIT_BUCKET) instead of a data directory.
        #[arg(long)]
        aws: bool,
    },
    /// The web console on 127.0.0.1 until Ctrl-C: prints its URL (with the access token)
    /// as its first line, as plain text whatever --output says.
    #[command(after_help = "\
Examples:
  telepipe serve --data-dir .data/try
  telepipe serve --data-dir .data/try --port 8080")]
    Serve {
        /// The data directory of a `run` or `demo`.
        #[arg(long, env = DATA_DIR_ENV)]
        data_dir: PathBuf,
        /// The port (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// One visit as a self-contained HTML file.
    #[command(after_help = "\
Examples:
  telepipe report --session visit-0001 --data-dir .data/try --out visit-0001.html
  telepipe report --session visit-0001 --out visit.html --embed-audio --output json")]
    Report {
        /// The session.
        #[arg(long)]
        session: String,
        /// The data directory of a `run` or `demo`.
        #[arg(long, env = DATA_DIR_ENV)]
        data_dir: PathBuf,
        /// The HTML file to write (readable by its owner only).
        #[arg(long)]
        out: PathBuf,
        /// Embed the recording in the file.
        #[arg(long)]
        embed_audio: bool,
    },
    /// A completion script for a shell, on stdout.
    #[command(after_help = "\
Examples:
  telepipe completions bash > ~/.local/share/bash-completion/completions/telepipe
  telepipe completions zsh > \"${fpath[1]}/_telepipe\"
  telepipe completions fish > ~/.config/fish/completions/telepipe.fish")]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum AuditCheck {
    /// Check the local audit trail's hash chain; exits 1 when an entry was edited, removed
    /// or moved, and prints the head digest to keep elsewhere.
    Verify {
        /// The data directory of a `run` or `demo`.
        #[arg(long, env = DATA_DIR_ENV)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum EventsAction {
    /// Publish the events in FILE (one EventBridge envelope or an array of them); missing
    /// envelope fields (id, time, account, region) are filled in. `telepipe run` then processes them.
    Put {
        file: PathBuf,
        /// The data directory (created if missing).
        #[arg(long, env = DATA_DIR_ENV)]
        data_dir: PathBuf,
    },
    /// The events published on the local bus, oldest first: detail-type, time, detail.
    List {
        /// The data directory of a `run` or `demo`.
        #[arg(long, env = DATA_DIR_ENV)]
        data_dir: PathBuf,
        /// Only events of this detail-type (e.g. "Notification Skipped").
        #[arg(long)]
        detail_type: Option<String>,
        /// Only events about this session.
        #[arg(long)]
        session: Option<String>,
        /// Same as `--output json` (kept for existing scripts).
        #[arg(long, hide = true)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SmsAction {
    /// A patient's text, fed to the replies stage as the webhook or SNS would on AWS
    /// (keywords: STOP/START/HELP, CONFIRM or C, RESCHEDULE or R; Spanish too).
    Receive {
        /// The sender, E.164 (e.g. +15551230000).
        #[arg(long)]
        from: String,
        /// The message text; `-` reads it from standard input (keeps a real patient's text
        /// out of the process list and shell history).
        #[arg(long)]
        body: String,
        /// The data directory of a `run` (created if missing).
        #[arg(long, env = DATA_DIR_ENV)]
        data_dir: PathBuf,
    },
}

#[derive(Serialize)]
struct Completions {
    shell: String,
    script: String,
}

fn completions(shell: clap_complete::Shell, printer: Printer) -> CommandResult {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "telepipe", &mut script);
    let completions = Completions {
        shell: shell.to_string(),
        script: String::from_utf8(script).map_err(|e| e.to_string())?,
    };
    printer.show(&completions, |c| c.script.clone())?;
    Ok(Outcome::Done)
}

/// The commands that run on the async runtime.
async fn dispatch(command: Command, printer: Printer) -> CommandResult {
    let now = telepipe_local::db::now_ms;
    match command {
        Command::Demo {
            data_dir,
            samples,
            engines,
        } => pipeline::demo(data_dir, &samples, &engines, printer).await,
        Command::Run { data_dir, engines } => pipeline::run(&data_dir, &engines, printer).await,
        Command::Events {
            action: EventsAction::Put { file, data_dir },
        } => events::put(&file, &data_dir, printer),
        Command::Events {
            action:
                EventsAction::List {
                    data_dir,
                    detail_type,
                    session,
                    json,
                },
        } => events::list(
            &data_dir,
            detail_type.as_deref(),
            session.as_deref(),
            printer.or_json(json),
        ),
        Command::Notifications {
            session,
            data_dir,
            json,
            aws,
        } => notify::notifications(&session, data_dir.as_deref(), aws, printer.or_json(json)).await,
        Command::Sms {
            action:
                SmsAction::Receive {
                    from,
                    body,
                    data_dir,
                },
        } => notify::receive_sms(&from, &body, &data_dir, printer),
        Command::Timers {
            data_dir,
            session,
            fire,
        } => notify::timers(&data_dir, session.as_deref(), fire, printer),
        Command::Status {
            data_dir,
            session,
            since,
            state,
            aws,
        } => {
            let args = status::StatusArgs {
                data_dir: data_dir.as_deref(),
                session: session.as_deref(),
                since,
                state,
                aws,
            };
            status::run(args, printer).await
        }
        Command::Dlq(args) => dlq::run(&args, printer).await,
        Command::Audit {
            check: Some(AuditCheck::Verify { data_dir }),
            ..
        } => audit::verify(&data_dir, printer),
        Command::Audit {
            check: None,
            data_dir,
            session,
            since,
            json,
            aws,
        } => {
            let since_ms = since.map_or(0, |d| now() - d);
            audit::show(
                data_dir.as_deref(),
                session.as_deref(),
                since_ms,
                aws,
                printer.or_json(json),
            )
            .await
        }
        Command::Forget(args) => session::run_forget(&args, printer).await,
        Command::Reprocess(args) => session::run_reprocess(&args, printer).await,
        Command::Serve { .. } | Command::Report { .. } | Command::Completions { .. } => {
            unreachable!("run outside the async runtime by main")
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit 2 and --help/--version 0 (clap's own exits).
    let matches = Cli::command().get_matches();
    if args::both_places(&matches) {
        Cli::command()
            .error(
                ErrorKind::ArgumentConflict,
                "--data-dir and --aws name two different places: give one",
            )
            .exit();
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if matches!(cli.command, Command::Demo { .. } | Command::Run { .. }) {
        // Before any work: OpenBLAS (under whisper.cpp) reads its kernel choice at load time,
        // so only the commands that transcribe pay for the re-execution this may take.
        telepipe_whisper::blas::select_cpu_kernels();
    }
    let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(telepipe_workers::telemetry::filter(&level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .compact()
        .init();
    // Metrics are off locally unless asked for (`TELEPIPE_METRICS=file:metrics.jsonl`).
    if std::env::var_os(telepipe_workers::metrics::SINK_VAR).is_some() {
        let env = telepipe_workers::config::Env::process();
        if let Err(err) = telepipe_workers::metrics::install_from_env(&env) {
            return exit_code(Err(Failure::Usage(err.to_string())));
        }
    }
    let printer = Printer::new(cli.output);
    let result = match cli.command {
        // The console runs its own async runtime; the others need none.
        Command::Serve { data_dir, port } => console::serve(&data_dir, port),
        Command::Report {
            session,
            data_dir,
            out,
            embed_audio,
        } => console::report(&data_dir, &session, &out, embed_audio, printer),
        Command::Completions { shell } => completions(shell, printer),
        command => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(dispatch(command, printer)),
            Err(e) => Err(Failure::Runtime(format!("starting the async runtime: {e}"))),
        },
    };
    exit_code(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(args: &[&str]) -> Result<clap::ArgMatches, clap::Error> {
        let mut all = vec!["telepipe"];
        all.extend(args);
        Cli::command().try_get_matches_from(all)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_typed_data_dir_and_aws_are_two_places() {
        for both in [
            &["dlq", "list", "--aws", "--data-dir", "d"][..],
            &["dlq", "--data-dir", "d", "peek", "q", "--aws"],
            &["forget", "--session", "s", "--aws", "--data-dir", "d"],
            &["status", "--aws", "--data-dir", "d"],
        ] {
            assert!(args::both_places(&matches(both).unwrap()), "{both:?}");
        }
        for one in [
            &["dlq", "list", "--aws"][..],
            &["dlq", "list", "--data-dir", "d"],
            &["forget", "--session", "s", "--aws"],
        ] {
            assert!(!args::both_places(&matches(one).unwrap()), "{one:?}");
        }
    }

    #[test]
    fn output_is_global() {
        let cli = Cli::from_arg_matches(
            &matches(&["dlq", "list", "--data-dir", "d", "--output", "json"]).unwrap(),
        )
        .unwrap();
        assert_eq!(cli.output, Format::Json);
        assert!(matches(&["--output", "yaml", "dlq", "list"]).is_err());
    }
}
