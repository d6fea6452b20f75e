//! Argument values shared by several commands: the data directory's environment variable,
//! durations and states for `status` and `audit`, and the checkout-relative defaults.

use clap::parser::ValueSource;
use clap::ArgMatches;
use std::path::{Path, PathBuf};
use telepipe_workers::status::State;

/// The environment variable standing for `--data-dir` wherever a command takes one.
pub const DATA_DIR_ENV: &str = "TELEPIPE_DATA_DIR";

/// `90s`, `30m`, `1h`, `2d`, `1w` (or a bare number of minutes) in milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30m, 1h or 2d"))?;
    let unit_ms = match unit.trim() {
        "s" | "sec" | "secs" => 1_000,
        "" | "m" | "min" | "mins" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 7 * 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use s, m, h, d or w)"
            ))
        }
    };
    Ok(number.saturating_mul(unit_ms))
}

/// `received`, `failed`, ... (any state the status store records).
pub fn parse_state(text: &str) -> Result<State, String> {
    State::parse(text).ok_or_else(|| {
        let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {text:?} (one of {})", names.join(", "))
    })
}

/// A relative default that does not exist here is looked up in the checkout the binary was
/// built from (so `telepipe demo` finds `samples/`, `models/`, `data/` from anywhere).
pub fn resolve(path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_path_buf();
    }
    let in_checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    if in_checkout.exists() {
        in_checkout
    } else {
        path.to_path_buf()
    }
}

/// `--data-dir` and `--aws` both typed on the command line name two places: a usage error.
/// (Not a clap conflict: `TELEPIPE_DATA_DIR` in the environment must not make `--aws` one.)
pub fn both_places(matches: &ArgMatches) -> bool {
    // The innermost subcommand: it has both flags when its command takes them (global
    // ones are propagated down to it, and up to levels that do not define them).
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    let has = |id: &str| leaf.ids().any(|known| known.as_str() == id);
    has("data_dir")
        && has("aws")
        && leaf.value_source("data_dir") == Some(ValueSource::CommandLine)
        && leaf.try_get_one::<bool>("aws").ok().flatten() == Some(&true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_states_parse() {
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("30m"), Ok(1_800_000));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration("45"), Ok(2_700_000));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3y").is_err());
        assert_eq!(parse_state("Failed"), Ok(State::Failed));
        assert!(parse_state("lost").is_err());
    }
}
