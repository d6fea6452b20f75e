//! What the real-engine tests share: where the engines are, and the rule that CI must
//! never skip them.

/// (Whisper model, NLP data folder) from `TELEPIPE_WHISPER_MODEL` and `TELEPIPE_NLP_DATA`
/// (`scripts/test.sh` sets both). Outside CI, `None` with a note; in CI, a failure.
pub fn real_engines() -> Option<(String, String)> {
    match (
        std::env::var("TELEPIPE_WHISPER_MODEL"),
        std::env::var("TELEPIPE_NLP_DATA"),
    ) {
        (Ok(model), Ok(nlp)) => Some((model, nlp)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must provide TELEPIPE_WHISPER_MODEL and TELEPIPE_NLP_DATA")
        }
        _ => {
            eprintln!(
                "skipped: set TELEPIPE_WHISPER_MODEL and TELEPIPE_NLP_DATA (scripts/test.sh does)"
            );
            None
        }
    }
}
