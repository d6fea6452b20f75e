//! `telepipe serve` (the web console) and `telepipe report` (one visit as an HTML file):
//! both are `telepipe_local::console`; this is their command line. Neither runs inside the
//! command's async runtime: `serve` starts its own.

use crate::output::{CommandResult, Outcome, Printer};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `telepipe serve`: blocks until Ctrl-C. The console prints its tokened URL as the first
/// line of stdout itself (a plain line, whatever `--output` says).
pub fn serve(data_dir: &Path, port: u16) -> CommandResult {
    telepipe_local::console::serve(data_dir, port)?;
    Ok(Outcome::Done)
}

#[derive(Serialize)]
struct Written {
    written: PathBuf,
}

/// `telepipe report`.
pub fn report(
    data_dir: &Path,
    session: &str,
    out: &Path,
    embed_audio: bool,
    printer: Printer,
) -> CommandResult {
    telepipe_local::console::report(data_dir, session, out, embed_audio)?;
    let written = Written {
        written: out.to_path_buf(),
    };
    printer.show(&written, |w| format!("wrote {}", w.written.display()))?;
    Ok(Outcome::Done)
}
