//! `telepipe forget` and `telepipe reprocess`: clap arguments and handlers over the
//! `SessionData` port (`crate::session_data`), so the `telepipe` binary only adds two
//! subcommands and passes the local adapter's constructor.
//!
//! Output names sessions, stores, counts and opaque ids or object-reference digests; never
//! object keys or contents.

use crate::session_data::{forget, reprocess, SessionData, Stage, Store};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use telepipe_events::ids::SessionId;
use telepipe_workers::error::{PortError, PortErrorKind};

/// Where the session's data is.
#[derive(Debug, Args)]
pub struct Target {
    /// The local runtime's data directory.
    #[arg(long, conflicts_with = "aws")]
    pub data_dir: Option<PathBuf>,
    /// The deployed stores, named by TELEPIPE_* variables (see docs/forget-and-reprocess.md),
    /// with the SDK's standard configuration (AWS_REGION, AWS_ENDPOINT_URL, credentials).
    #[arg(long)]
    pub aws: bool,
}

/// Deletes everything kept about one session and leaves an audit entry (no PHI).
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The session id.
    #[arg(long)]
    pub session: String,
    /// Print what would be deleted per store; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FromStage {
    /// Re-transcribe the recordings (a new attempt of each), then everything after.
    Transcription,
    /// Re-run clinical extraction on the existing transcripts.
    Clinical,
}

/// Re-feeds a session's recordings (or transcripts) to the pipeline.
#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// The session id.
    #[arg(long)]
    pub session: String,
    /// The stage to start from.
    #[arg(long, value_enum, default_value = "transcription")]
    pub from: FromStage,
    /// Print what would be re-fed; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: Target,
}

fn todo(error: &PortError) -> &'static str {
    match error.kind {
        PortErrorKind::AccessDenied => {
            "access denied: the caller needs the IAM actions listed in docs/forget-and-reprocess.md"
        }
        PortErrorKind::NotFound => {
            "not found: check the TELEPIPE_* bucket, table and queue names (docs/forget-and-reprocess.md)"
        }
        _ if error.class() == telepipe_workers::error::ErrorClass::Retryable => "retryable: try again in a moment",
        _ => "fix the request before retrying",
    }
}

fn check_session(session: &str) -> Result<(), String> {
    SessionId::parse(session)
        .map(|_| ())
        .map_err(|e| format!("--session: {e}"))
}

/// Runs `telepipe forget`. `open_local` opens the local adapter on a data directory.
pub async fn run_forget<L, F>(args: &ForgetArgs, open_local: F) -> Result<ExitCode, String>
where
    L: SessionData,
    F: FnOnce(&Path) -> Result<L, String>,
{
    check_session(&args.session)?;
    match (&args.target.data_dir, args.target.aws) {
        (Some(dir), false) => forget_with(&open_local(dir)?, args).await,
        (None, true) => {
            #[cfg(feature = "aws")]
            {
                let data = crate::aws_session::AwsSessionData::from_env().await?;
                data.config().require_for_forget()?;
                forget_with(&data, args).await
            }
            #[cfg(not(feature = "aws"))]
            Err(
                "this telepipe was built without AWS support: rebuild with the `aws` feature"
                    .into(),
            )
        }
        _ => Err("say where the session is: --data-dir DIR (local runtime) or --aws".into()),
    }
}

/// Runs `telepipe reprocess`.
pub async fn run_reprocess<L, F>(args: &ReprocessArgs, open_local: F) -> Result<ExitCode, String>
where
    L: SessionData,
    F: FnOnce(&Path) -> Result<L, String>,
{
    check_session(&args.session)?;
    match (&args.target.data_dir, args.target.aws) {
        (Some(dir), false) => reprocess_with(&open_local(dir)?, args).await,
        (None, true) => {
            #[cfg(feature = "aws")]
            {
                let data = crate::aws_session::AwsSessionData::from_env().await?;
                reprocess_with(&data, args).await
            }
            #[cfg(not(feature = "aws"))]
            Err(
                "this telepipe was built without AWS support: rebuild with the `aws` feature"
                    .into(),
            )
        }
        _ => Err("say where the session is: --data-dir DIR (local runtime) or --aws".into()),
    }
}

/// `forget` over any adapter, printing the plan or the audit entry.
pub async fn forget_with<D: SessionData>(data: &D, args: &ForgetArgs) -> Result<ExitCode, String> {
    let outcome = forget(data, &args.session, args.dry_run).await;
    let report = match &outcome {
        Ok(report) => report,
        Err(failure) => &failure.report,
    };
    if args.dry_run {
        println!(
            "dry run: forget session {} on {} would delete:",
            args.session,
            data.describe()
        );
    } else if report.resumed {
        eprintln!("resuming an unfinished forget of session {}", args.session);
    }
    for store in Store::ALL {
        let Some(labels) = report.found.get(&store) else {
            continue;
        };
        println!("  {:<16} {:>5}", store.as_str(), labels.len());
        if args.dry_run {
            for label in labels {
                println!("    {label}");
            }
        }
    }
    if let Some(audit) = &report.audit {
        println!("audit: {}", audit.to_json());
    }
    match outcome {
        Ok(_) if args.dry_run => {
            println!("(nothing was deleted)");
            Ok(ExitCode::SUCCESS)
        }
        Ok(_) => {
            println!("session {} forgotten on {}", args.session, data.describe());
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => Err(format!("{failure} ({})", todo(&failure.error))),
    }
}

/// `reprocess` over any adapter.
pub async fn reprocess_with<D: SessionData>(
    data: &D,
    args: &ReprocessArgs,
) -> Result<ExitCode, String> {
    let from = match args.from {
        FromStage::Transcription => Stage::Transcription,
        FromStage::Clinical => Stage::Clinical,
    };
    let refeeds = reprocess(data, &args.session, from, args.dry_run)
        .await
        .map_err(|e| {
            if e.code.as_deref() == Some("too_many_attempts") {
                "this session has been reprocessed too many times (attempts are numbered up to 999)"
                    .to_owned()
            } else {
                format!(
                    "reprocess stopped: {e}: {} (re-running it is safe: a recording re-fed twice is transcribed twice, a transcript re-fed twice rewrites the same results)",
                    todo(&e)
                )
            }
        })?;
    let what = match from {
        Stage::Transcription => "recording",
        Stage::Clinical => "transcript",
    };
    for refeed in &refeeds {
        println!(
            "{} {what} {}{} → {}",
            if args.dry_run {
                "would re-feed"
            } else {
                "re-fed"
            },
            refeed.object_ref,
            refeed
                .attempt
                .map(|a| format!(" as attempt {a}"))
                .unwrap_or_default(),
            if from == Stage::Transcription {
                "intake"
            } else {
                "clinical"
            }
        );
    }
    if refeeds.is_empty() {
        return Err(format!(
            "session {} has no {what}s on {}: nothing to re-feed (check the session id{})",
            args.session,
            data.describe(),
            if from == Stage::Clinical {
                ", or reprocess --from transcription"
            } else {
                ""
            }
        ));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Subcommand)]
    enum Top {
        Forget(ForgetArgs),
        Reprocess(ReprocessArgs),
    }

    fn parse(args: &[&str]) -> Result<Top, clap::Error> {
        let mut all = vec!["telepipe"];
        all.extend(args);
        Cli::try_parse_from(all).map(|cli| cli.command)
    }

    #[test]
    fn the_command_lines_parse() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let Ok(Top::Forget(forget)) =
            parse(&["forget", "--session", "s-1", "--data-dir", "d", "--dry-run"])
        else {
            panic!("forget expected")
        };
        assert!(forget.dry_run && forget.target.data_dir.is_some() && !forget.target.aws);
        let Ok(Top::Reprocess(reprocess)) = parse(&[
            "reprocess",
            "--session",
            "s-1",
            "--aws",
            "--from",
            "clinical",
        ]) else {
            panic!("reprocess expected")
        };
        assert!(matches!(reprocess.from, FromStage::Clinical) && reprocess.target.aws);
        let Ok(Top::Reprocess(default)) = parse(&["reprocess", "--session", "s", "--aws"]) else {
            panic!("reprocess expected")
        };
        assert!(matches!(default.from, FromStage::Transcription));
        assert!(parse(&["forget", "--session", "s", "--aws", "--data-dir", "d"]).is_err());
        assert!(
            parse(&["forget", "--aws"]).is_err(),
            "--session is required"
        );
        assert!(parse(&["reprocess", "--session", "s", "--aws", "--from", "intake"]).is_err());
    }
}
