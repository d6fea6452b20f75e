//! `telepipe forget` and `telepipe reprocess`: arguments and output over the `SessionData`
//! port and its algorithms (`telepipe_ops::session_data`), on the data directory
//! (`telepipe_local::forget`) or the deployment (`--aws`).
//!
//! Output names sessions, stores, counts and opaque ids or object-reference digests; never
//! object keys or contents.

use crate::args::DATA_DIR_ENV;
use crate::output::{CommandResult, Failure, Outcome, Printer};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use telepipe_events::ids::SessionId;
use telepipe_local::forget::LocalSessionData;
use telepipe_ops::session_data::{forget, reprocess, AuditEntry, SessionData, Stage, Store};
use telepipe_workers::error::{PortError, PortErrorKind};

/// Where the session's data is.
#[derive(Debug, Args)]
pub struct Target {
    /// The local runtime's data directory.
    #[arg(long, env = DATA_DIR_ENV)]
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

#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
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

fn check_session(session: &str) -> Result<(), Failure> {
    SessionId::parse(session)
        .map(|_| ())
        .map_err(|e| Failure::Usage(format!("--session: {e}")))
}

fn nowhere() -> Failure {
    Failure::Usage(format!(
        "say where the session is: --data-dir DIR (or {DATA_DIR_ENV}) for the local runtime, or --aws"
    ))
}

/// Runs `telepipe forget` on the data directory or, with `--aws`, the deployment.
pub async fn run_forget(args: &ForgetArgs, printer: Printer) -> CommandResult {
    check_session(&args.session)?;
    if args.target.aws {
        #[cfg(feature = "aws")]
        {
            let data = telepipe_ops::aws_session::AwsSessionData::from_env().await?;
            data.config().require_for_forget()?;
            return forget_with(&data, args, printer).await;
        }
        #[cfg(not(feature = "aws"))]
        return Err(
            "this telepipe was built without AWS support: rebuild with the `aws` feature".into(),
        );
    }
    let dir = args.target.data_dir.as_ref().ok_or_else(nowhere)?;
    forget_with(&LocalSessionData::open(dir)?, args, printer).await
}

/// Runs `telepipe reprocess`.
pub async fn run_reprocess(args: &ReprocessArgs, printer: Printer) -> CommandResult {
    check_session(&args.session)?;
    if args.target.aws {
        #[cfg(feature = "aws")]
        {
            let data = telepipe_ops::aws_session::AwsSessionData::from_env().await?;
            return reprocess_with(&data, args, printer).await;
        }
        #[cfg(not(feature = "aws"))]
        return Err(
            "this telepipe was built without AWS support: rebuild with the `aws` feature".into(),
        );
    }
    let dir = args.target.data_dir.as_ref().ok_or_else(nowhere)?;
    reprocess_with(&LocalSessionData::open(dir)?, args, printer).await
}

/// What `forget` found per store and did.
#[derive(Serialize)]
struct Forgotten {
    session: String,
    /// `local DIR` or `aws`.
    on: String,
    dry_run: bool,
    /// An unfinished earlier forget was resumed.
    resumed: bool,
    /// Items found per store (the plan on a dry run).
    found: BTreeMap<&'static str, usize>,
    /// On a dry run, the items per store: opaque ids and object-reference digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<BTreeMap<&'static str, Vec<String>>>,
    /// The audit entry written (none on a dry run).
    audit: Option<AuditEntry>,
    /// Everything found is gone.
    forgotten: bool,
}

/// `forget` over any adapter: the plan or the audit entry.
async fn forget_with<D: SessionData>(
    data: &D,
    args: &ForgetArgs,
    printer: Printer,
) -> CommandResult {
    let outcome = forget(data, &args.session, args.dry_run).await;
    let report = match &outcome {
        Ok(report) => report,
        Err(failure) => &failure.report,
    };
    if report.resumed && !args.dry_run {
        eprintln!("resuming an unfinished forget of session {}", args.session);
    }
    if let Err(failure) = &outcome {
        // What was done before the failure still goes to stderr: the rerun finishes it.
        for store in Store::ALL {
            if let Some(labels) = report.found.get(&store) {
                eprintln!("  {:<16} {:>5}", store.as_str(), labels.len());
            }
        }
        return Err(Failure::Runtime(format!(
            "{failure} ({})",
            todo(&failure.error)
        )));
    }
    let ordered = || {
        Store::ALL
            .into_iter()
            .filter_map(|store| report.found.get(&store).map(|labels| (store, labels)))
    };
    let result = Forgotten {
        session: args.session.clone(),
        on: data.describe(),
        dry_run: args.dry_run,
        resumed: report.resumed,
        found: ordered()
            .map(|(store, labels)| (store.as_str(), labels.len()))
            .collect(),
        items: args.dry_run.then(|| {
            ordered()
                .map(|(store, labels)| (store.as_str(), labels.clone()))
                .collect()
        }),
        audit: report.audit.clone(),
        forgotten: !args.dry_run,
    };
    printer.show(&result, |r| {
        let mut out = String::new();
        if r.dry_run {
            out.push_str(&format!(
                "dry run: forget session {} on {} would delete:\n",
                r.session, r.on
            ));
        }
        for (store, labels) in ordered() {
            out.push_str(&format!("  {:<16} {:>5}\n", store.as_str(), labels.len()));
            if r.dry_run {
                for label in labels {
                    out.push_str(&format!("    {label}\n"));
                }
            }
        }
        if let Some(audit) = &r.audit {
            out.push_str(&format!("audit: {}\n", audit.to_json()));
        }
        if r.dry_run {
            out.push_str("(nothing was deleted)");
        } else {
            out.push_str(&format!("session {} forgotten on {}", r.session, r.on));
        }
        out
    })?;
    Ok(Outcome::Done)
}

/// One notification `reprocess` sent (or would send).
#[derive(Serialize)]
struct Refed {
    object_ref: String,
    /// The attempt the intake stage runs it as (transcription only).
    attempt: Option<u32>,
    /// `intake` or `clinical`.
    to: &'static str,
}

#[derive(Serialize)]
struct Reprocessed {
    session: String,
    on: String,
    from: FromStage,
    dry_run: bool,
    refeeds: Vec<Refed>,
}

/// `reprocess` over any adapter.
async fn reprocess_with<D: SessionData>(
    data: &D,
    args: &ReprocessArgs,
    printer: Printer,
) -> CommandResult {
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
    if refeeds.is_empty() {
        return Err(Failure::Runtime(format!(
            "session {} has no {what}s on {}: nothing to re-feed (check the session id{})",
            args.session,
            data.describe(),
            if from == Stage::Clinical {
                ", or reprocess --from transcription"
            } else {
                ""
            }
        )));
    }
    let to = if from == Stage::Transcription {
        "intake"
    } else {
        "clinical"
    };
    let result = Reprocessed {
        session: args.session.clone(),
        on: data.describe(),
        from: args.from,
        dry_run: args.dry_run,
        refeeds: refeeds
            .into_iter()
            .map(|refeed| Refed {
                object_ref: refeed.object_ref,
                attempt: refeed.attempt,
                to,
            })
            .collect(),
    };
    printer.show(&result, |r| {
        r.refeeds
            .iter()
            .map(|refeed| {
                format!(
                    "{} {what} {}{} → {}",
                    if r.dry_run { "would re-feed" } else { "re-fed" },
                    refeed.object_ref,
                    refeed
                        .attempt
                        .map(|a| format!(" as attempt {a}"))
                        .unwrap_or_default(),
                    refeed.to
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(Outcome::Done)
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
        // `--aws` with a typed `--data-dir` is refused by `crate::args::both_places`.
        assert!(
            parse(&["forget", "--aws"]).is_err(),
            "--session is required"
        );
        assert!(parse(&["reprocess", "--session", "s", "--aws", "--from", "intake"]).is_err());
    }
}
