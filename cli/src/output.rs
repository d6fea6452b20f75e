//! What every command prints and how it ends: `--output table|json`, tables sized to the
//! terminal, and the exit codes.
//!
//! A command computes one serialisable value and hands it to `Printer::show` with its human
//! rendering: with `--output json` stdout gets that value as one JSON document and nothing
//! else; otherwise the rendering (comfy-table tables, plain lines). Progress, notes and
//! errors go to stderr either way, so stdout stays parseable.

use clap::ValueEnum;
use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;
use std::io::IsTerminal;
use std::process::ExitCode;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables and lines for people.
    Table,
    /// One JSON document on stdout (`run`: one JSON object per line).
    Json,
}

/// The exit codes, as `--help` and the README list them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  runtime failure: the command stopped on an error (the reason is on stderr),
     or a check found a problem (`audit verify`)
  2  usage: unknown command or flag, missing or invalid value (also from the environment)
  3  partial success: the command ran but left some items undone
     (`dlq replay` with uncertain or unsupported messages, `demo` with a recording
     without results)";

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked was done.
    Done,
    /// Some of it was done; the output says what was not.
    Partial,
    /// The command ran and its answer is a failure (a broken audit chain, a demo where no
    /// recording produced results); the output says why.
    Failed,
}

/// Why a command did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The command line (or an environment variable standing for a flag) is wrong.
    Usage(String),
    /// Something failed while doing the work.
    Runtime(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Runtime(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::Runtime(message.to_owned())
    }
}

pub type CommandResult<T = Outcome> = Result<T, Failure>;

/// The process exit code of a command's result; failures are reported on stderr here.
pub fn exit_code(result: CommandResult) -> ExitCode {
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::Partial) => ExitCode::from(3),
        Err(Failure::Runtime(message)) => {
            eprintln!("telepipe: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("telepipe: {message}");
            ExitCode::from(2)
        }
    }
}

/// Prints command results in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    format: Format,
}

impl Printer {
    pub fn new(format: Format) -> Self {
        Self { format }
    }

    /// The same printer, switched to JSON by a command's legacy `--json` flag.
    pub fn or_json(self, json: bool) -> Self {
        if json {
            Self::new(Format::Json)
        } else {
            self
        }
    }

    /// A command's result: `value` as one JSON document, or `human(value)`.
    pub fn show<T: Serialize + ?Sized>(
        &self,
        value: &T,
        human: impl FnOnce(&T) -> String,
    ) -> Result<(), Failure> {
        let text = match self.format {
            Format::Json => serde_json::to_string_pretty(value)
                .map_err(|e| format!("rendering the result as JSON: {e}"))?,
            Format::Table => human(value),
        };
        println!("{}", text.trim_end_matches('\n'));
        Ok(())
    }

    /// One record of a long-running command: a JSON line, or `human(value)`.
    pub fn line<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        match self.format {
            Format::Json => match serde_json::to_string(value) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("telepipe: rendering a record as JSON: {e}"),
            },
            Format::Table => println!("{}", human(value).trim_end_matches('\n')),
        }
    }
}

/// A table with these column headers, wrapped to the terminal's width when stdout is one
/// (a long id wraps inside its cell) and left at its natural width when piped.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(header);
    if std::io::stdout().is_terminal() {
        table.set_content_arrangement(ContentArrangement::Dynamic);
    }
    table
}

/// Milliseconds as an RFC 3339 timestamp (seconds).
pub use telepipe_local::status::format_time;

/// `-` for nothing.
pub fn or_dash(text: Option<impl ToString>) -> String {
    text.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_cell_keeps_the_columns_of_a_table() {
        let name = "x".repeat(153);
        let mut t = table(["session", "job", "stage"]);
        t.add_row(["s1", name.as_str(), "extracted"]);
        t.add_row(["s2", "short", "failed"]);
        let text = t.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(
            widths.iter().all(|w| *w == widths[0]),
            "every line as wide as the others: {text}"
        );
        assert!(text.contains(&name));
    }

    #[test]
    fn failures_and_outcomes_map_to_the_documented_codes() {
        let code = |r: CommandResult| format!("{:?}", exit_code(r));
        assert_eq!(code(Ok(Outcome::Done)), format!("{:?}", ExitCode::from(0)));
        assert_eq!(
            code(Ok(Outcome::Failed)),
            format!("{:?}", ExitCode::from(1))
        );
        assert_eq!(
            code(Err(Failure::Runtime("x".into()))),
            format!("{:?}", ExitCode::from(1))
        );
        assert_eq!(
            code(Err(Failure::Usage("x".into()))),
            format!("{:?}", ExitCode::from(2))
        );
        assert_eq!(
            code(Ok(Outcome::Partial)),
            format!("{:?}", ExitCode::from(3))
        );
    }
}
