//! Regenerates `schemas/*.schema.json` from the event types, or with `--check` fails on drift.

use std::process::ExitCode;
use telepipe_events::schema::{drifted, render_all, schemas_dir};

fn main() -> ExitCode {
    let dir = schemas_dir();
    if std::env::args().any(|arg| arg == "--check") {
        let stale = drifted(&dir);
        if stale.is_empty() {
            println!("schemas up to date in {}", dir.display());
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "schemas drifted from the types in events/: {}\nrun: cargo run -p telepipe-events --bin gen-schemas",
            stale.join(", ")
        );
        return ExitCode::FAILURE;
    }
    for (name, text) in render_all() {
        let path = dir.join(&name);
        if let Err(err) = std::fs::write(&path, text) {
            eprintln!("cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
