//! Speaker prefixes at the start of a line ("Doctor:", "Dr. Smith:", "spk_0:").
//!
//! The analysed text normally has no prefixes, but a transcript that kept them must
//! not yield "Patient" or a doctor's name as (part of) an entity, and its offsets
//! must still point into the original text; so the prefix is skipped, not removed.

use crate::lexicon::Lexicon;
use crate::tokenize::normalize;

/// Words that name a speaker's role.
const ROLES: &[&str] = &[
    "doctor",
    "dr",
    "patient",
    "pt",
    "nurse",
    "rn",
    "np",
    "pa",
    "md",
    "do",
    "physician",
    "clinician",
    "provider",
    "caregiver",
    "carer",
    "interpreter",
    "translator",
    "mother",
    "father",
    "mom",
    "dad",
    "parent",
    "guardian",
    "wife",
    "husband",
    "son",
    "daughter",
    "speaker",
    "spk",
    "agent",
    "caller",
    "therapist",
    "pharmacist",
    "assistant",
    "mr",
    "mrs",
    "ms",
    "miss",
    "user",
    "client",
    "resident",
    "attending",
    "student",
    "scribe",
    "unknown",
];

/// Byte length of a speaker prefix at the start of `line` (including the colon and
/// the spaces after it), or 0.
pub(crate) fn prefix_len(line: &str, lex: &Lexicon) -> usize {
    // A speaker label is short: only the start of the line is searched.
    let Some(colon) = line.as_bytes().iter().take(41).position(|b| *b == b':') else {
        return 0;
    };
    // "10:30" is not a speaker: the colon is followed by a space or the end of the line.
    if colon == 0 {
        return 0;
    }
    let after = &line[colon + 1..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return 0;
    }
    let label = line[..colon].trim();
    let words: Vec<&str> = label.split_whitespace().collect();
    if words.is_empty() || words.len() > 4 {
        return 0;
    }
    let word_ok = |w: &str| {
        w.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '\'' | '-' | '(' | ')' | '#'))
    };
    if !words.iter().all(|w| word_ok(w)) {
        return 0;
    }
    // Role words are ASCII; compare without allocating ("Dr." -> "dr").
    let first_word = words[0].trim_end_matches(['.', ':']);
    let is_role = ROLES.iter().any(|r| first_word.eq_ignore_ascii_case(r))
        || first_word
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("spk"))
        || first_word
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("speaker"));
    // A capitalised name ("Maria:", "John Smith:") is a speaker unless the label is a
    // term of the vocabulary ("Hypertension: controlled" is content).
    let is_speaker = is_role
        || (words
            .iter()
            .all(|w| w.chars().next().is_some_and(|c| c.is_uppercase()))
            && !lex.key_is_term(&normalize(label)));
    if !is_speaker {
        return 0;
    }
    let skip_spaces = after.len() - after.trim_start_matches([' ', '\t']).len();
    colon + 1 + skip_spaces
}
