//! From Whisper tokens to Transcribe's items: sub-word tokens joined into words, trailing
//! punctuation split off, times and confidences per word.
//!
//! Kept free of whisper-rs so the rules are tested without a model.
//!
//! The rules (Whisper's BPE tokens carry their leading space):
//! - a token whose text starts with a space starts a new word; so does the first token of a
//!   segment; any other token continues the current word ("Met" + "form" + "in");
//! - a word's trailing `.`, `,`, `?`, `!` become "punctuation" items, one per mark, with no times
//!   and confidence 0.0 (as Transcribe writes them); quotes, brackets, `:`, `;` and `-` around a
//!   word are dropped, since Transcribe items never carry them;
//! - a word's times are its first token's start and its last spoken token's end (a token that is
//!   only punctuation does not stretch the word); its confidence is the mean probability of its
//!   tokens.
//!
//! Token times come from Whisper's DTW alignment, which gives each token a start only;
//! [`place_tokens`] derives ends and moves tokens the alignment left in silence back into the
//! speech they belong to (using the channel's energy-based speech regions).
//!
//! Token text is bytes, not `str`: a multi-byte character can be split across two BPE tokens,
//! so bytes are joined per word before UTF-8 decoding.

/// One recognised Whisper segment of one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct RecognizedSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    /// Text tokens (no special or timestamp tokens).
    pub tokens: Vec<TokenPiece>,
}

/// One decoded text token of a Whisper segment (special and timestamp tokens already removed).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPiece {
    /// The token's bytes, leading space included.
    pub text: Vec<u8>,
    /// Start in milliseconds from the start of the audio.
    pub start_ms: u64,
    /// End in milliseconds from the start of the audio.
    pub end_ms: u64,
    /// Whisper's probability for this token, 0..=1.
    pub probability: f32,
}

impl TokenPiece {
    /// A token from text; for tests and callers that have `str`.
    pub fn new(text: &str, start_ms: u64, end_ms: u64, probability: f32) -> Self {
        TokenPiece {
            text: text.as_bytes().to_vec(),
            start_ms,
            end_ms,
            probability,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordKind {
    Pronunciation,
    Punctuation,
}

/// One Transcribe item before serialisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub kind: WordKind,
    pub content: String,
    /// `None` for punctuation, as in Transcribe's output.
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub confidence: f32,
}

/// The marks Transcribe emits as punctuation items.
const PUNCTUATION: &[char] = &['.', ',', '?', '!'];
/// Characters trimmed from around a word and not emitted at all.
const DROPPED: &[char] = &['"', '(', ')', '[', ']', ':', ';', '-', '“', '”'];

fn is_punctuation_only(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    let trimmed = text.trim();
    !trimmed.is_empty() && trimmed.chars().all(|c| PUNCTUATION.contains(&c))
}

/// Splits a word's text into its spoken core and its trailing punctuation marks, dropping
/// whitespace and [`DROPPED`] characters at either end.
fn split_word(text: &str) -> (&str, Vec<char>) {
    let mut core = text.trim_start_matches(|c: char| c.is_whitespace() || DROPPED.contains(&c));
    let mut marks = Vec::new();
    while let Some(c) = core.chars().next_back() {
        if PUNCTUATION.contains(&c) {
            marks.push(c);
        } else if !(c.is_whitespace() || DROPPED.contains(&c)) {
            break;
        }
        core = &core[..core.len() - c.len_utf8()];
    }
    marks.reverse();
    (core, marks)
}

/// Turns one segment's tokens into items. Call once per segment: a segment boundary always
/// ends a word.
pub fn assemble_words(tokens: &[TokenPiece]) -> Vec<Word> {
    // Group tokens into words.
    let mut groups: Vec<Vec<&TokenPiece>> = Vec::new();
    for token in tokens {
        // A bare " ." continues the word before it rather than starting one.
        let starts_word = token.text.first() == Some(&b' ')
            && (groups.is_empty() || !is_punctuation_only(&token.text));
        match groups.last_mut() {
            Some(group) if !starts_word => group.push(token),
            _ => groups.push(vec![token]),
        }
    }

    let mut words = Vec::new();
    for group in groups {
        let bytes: Vec<u8> = group.iter().flat_map(|t| t.text.iter().copied()).collect();
        let text = String::from_utf8_lossy(&bytes);
        let (core, marks) = split_word(&text);

        if !core.is_empty() {
            let mut spoken = group.iter().filter(|t| !is_punctuation_only(&t.text));
            let first = spoken.next().unwrap_or(&group[0]);
            let last = spoken.next_back().unwrap_or(first);
            let start = first.start_ms;
            let end = last.end_ms.max(start);
            let confidence = group.iter().map(|t| t.probability).sum::<f32>() / group.len() as f32;
            words.push(Word {
                kind: WordKind::Pronunciation,
                content: core.to_string(),
                start_ms: Some(start),
                end_ms: Some(end),
                confidence: confidence.clamp(0.0, 1.0),
            });
        }
        for mark in marks {
            words.push(Word {
                kind: WordKind::Punctuation,
                content: mark.to_string(),
                start_ms: None,
                end_ms: None,
                confidence: 0.0,
            });
        }
    }
    words
}

/// Renders items as Transcribe's transcript text: words separated by spaces, punctuation
/// attached to the word before it.
pub fn render_text<'w>(words: impl IntoIterator<Item = &'w Word>) -> String {
    let mut text = String::new();
    for word in words {
        if word.kind == WordKind::Pronunciation && !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&word.content);
    }
    text
}

/// Longest time one token is taken to last when only its start is known: a token is at most a
/// syllable or two, so a longer gap to the next token is a pause, not part of the word.
pub const MAX_TOKEN_MS: u64 = 800;

fn ends_sentence(token: &TokenPiece) -> bool {
    let text = String::from_utf8_lossy(&token.text);
    text.trim_end().ends_with(['.', '?', '!'])
}

/// Places a channel's tokens in time from their start times alone (what DTW alignment gives)
/// and the channel's speech regions (see [`crate::audio::speech_regions`]).
///
/// 1. Starts are made non-decreasing.
/// 2. Alignment is weakest around pauses: the path lingers on the last word before a silence, so
///    the words after it land in the silence, up to a second late. A token that starts outside
///    every speech region is moved: back into the region before the gap if it continues a
///    sentence (the token before it does not end with . ? !), else forward to the start of the
///    region after the gap. Tokens moved back share the time between the last well-placed token
///    and the region's end evenly; tokens moved forward share the time from the region's start
///    to the next well-placed token.
/// 3. A token ends where the next token starts, but lasts at most [`MAX_TOKEN_MS`] and does not
///    run past the end of its speech region or of the audio.
///
/// With no speech regions (silence, or nothing detected) step 2 is skipped.
pub fn place_tokens(segments: &mut [RecognizedSegment], speech: &[(u64, u64)], audio_end_ms: u64) {
    let mut tokens: Vec<&mut TokenPiece> = segments
        .iter_mut()
        .flat_map(|s| s.tokens.iter_mut())
        .collect();
    let mut floor = 0;
    for token in tokens.iter_mut() {
        token.start_ms = token.start_ms.max(floor).min(audio_end_ms);
        floor = token.start_ms;
    }

    let region_of = |t: u64| speech.iter().position(|&(a, b)| a <= t && t < b);
    if !speech.is_empty() {
        // Decide where each stranded token goes: Some(true) back, Some(false) forward.
        let mut moves: Vec<Option<(bool, usize)>> = Vec::with_capacity(tokens.len());
        for i in 0..tokens.len() {
            let start = tokens[i].start_ms;
            if region_of(start).is_some() {
                moves.push(None);
                continue;
            }
            let before = speech.iter().rposition(|&(_, b)| b <= start);
            let after = speech.iter().position(|&(a, _)| a > start);
            let continues = i > 0 && !ends_sentence(tokens[i - 1]);
            moves.push(match (before, after) {
                (Some(r), _) if continues => Some((true, r)),
                (_, Some(r)) => Some((false, r)),
                (Some(r), None) => Some((true, r)),
                (None, None) => None,
            });
        }
        let mut i = 0;
        while i < tokens.len() {
            let Some(this) = moves[i] else {
                i += 1;
                continue;
            };
            let mut j = i;
            while j < tokens.len() && moves[j] == Some(this) {
                j += 1;
            }
            let k = (j - i) as u64;
            let (back, r) = this;
            if back {
                // Share [anchor, region end) between the anchor and the k moved tokens.
                let limit = speech[r].1;
                let anchor = if i > 0 {
                    tokens[i - 1].start_ms
                } else {
                    speech[r].0
                };
                let anchor = anchor.min(limit);
                for (m, token) in tokens[i..j].iter_mut().enumerate() {
                    token.start_ms = anchor + (limit - anchor) * (m as u64 + 1) / (k + 1);
                }
            } else {
                // Share [region start, next well-placed start) between the k moved tokens.
                let from = speech[r].0;
                let to = tokens
                    .get(j)
                    .map(|t| t.start_ms)
                    .filter(|&t| t > from)
                    .unwrap_or_else(|| speech[r].1.min(from + k * 200));
                for (m, token) in tokens[i..j].iter_mut().enumerate() {
                    token.start_ms = from + (to - from) * m as u64 / k;
                }
            }
            i = j;
        }
    }

    for i in 0..tokens.len() {
        let start = tokens[i].start_ms;
        let next = tokens
            .get(i + 1)
            .map_or(audio_end_ms, |t| t.start_ms)
            .max(start);
        let region_end = region_of(start).map_or(u64::MAX, |r| speech[r].1);
        tokens[i].end_ms = next.min(start + MAX_TOKEN_MS).min(region_end).max(start);
    }
}

/// Makes word times non-decreasing within a channel: Whisper's token timestamps occasionally
/// step back a few centiseconds at segment joins, and Transcribe's items never do.
pub fn make_monotonic(words: &mut [Word]) {
    let mut floor = 0u64;
    for word in words.iter_mut() {
        if let (Some(start), Some(end)) = (word.start_ms, word.end_ms) {
            let start = start.max(floor);
            let end = end.max(start);
            word.start_ms = Some(start);
            word.end_ms = Some(end);
            floor = start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str, start: u64, end: u64, p: f32) -> TokenPiece {
        TokenPiece::new(text, start, end, p)
    }

    fn contents(words: &[Word]) -> Vec<(&str, WordKind)> {
        words.iter().map(|w| (w.content.as_str(), w.kind)).collect()
    }

    #[test]
    fn joins_sub_word_tokens_and_splits_punctuation() {
        let tokens = [
            t(" I", 0, 200, 0.9),
            t(" take", 200, 500, 0.8),
            t(" met", 500, 700, 0.6),
            t("form", 700, 900, 0.4),
            t("in", 900, 1000, 0.5),
            t(" twice", 1000, 1400, 0.9),
            t(" daily", 1400, 1800, 0.7),
            t(".", 1800, 1850, 0.99),
        ];
        let words = assemble_words(&tokens);
        use WordKind::*;
        assert_eq!(
            contents(&words),
            vec![
                ("I", Pronunciation),
                ("take", Pronunciation),
                ("metformin", Pronunciation),
                ("twice", Pronunciation),
                ("daily", Pronunciation),
                (".", Punctuation),
            ]
        );
        let metformin = &words[2];
        assert_eq!(
            (metformin.start_ms, metformin.end_ms),
            (Some(500), Some(1000))
        );
        assert!((metformin.confidence - 0.5).abs() < 1e-6);
        // The full stop does not stretch "daily", and has no times.
        assert_eq!(
            (words[4].start_ms, words[4].end_ms),
            (Some(1400), Some(1800))
        );
        assert!((words[4].confidence - (0.7 + 0.99) / 2.0).abs() < 1e-6);
        assert_eq!((words[5].start_ms, words[5].end_ms), (None, None));
        assert_eq!(words[5].confidence, 0.0);
        assert_eq!(render_text(&words), "I take metformin twice daily.");
    }

    #[test]
    fn punctuation_inside_a_token_and_several_marks() {
        let tokens = [
            t(" No", 0, 300, 0.9),
            t(" fever,", 300, 800, 0.8),
            t(" really", 800, 1200, 0.7),
            t("?!", 1200, 1300, 0.6),
        ];
        let words = assemble_words(&tokens);
        use WordKind::*;
        assert_eq!(
            contents(&words),
            vec![
                ("No", Pronunciation),
                ("fever", Pronunciation),
                (",", Punctuation),
                ("really", Pronunciation),
                ("?", Punctuation),
                ("!", Punctuation),
            ]
        );
        assert_eq!(render_text(&words), "No fever, really?!");
    }

    #[test]
    fn first_token_without_space_starts_a_word_and_numbers_stay_words() {
        let tokens = [
            t("Lis", 0, 100, 1.0),
            t("inopril", 100, 600, 1.0),
            t(" 10", 600, 900, 1.0),
            t(" mg", 900, 1100, 1.0),
            t(" daily", 1100, 1500, 1.0),
        ];
        let words = assemble_words(&tokens);
        assert_eq!(
            words.iter().map(|w| w.content.as_str()).collect::<Vec<_>>(),
            ["Lisinopril", "10", "mg", "daily"]
        );
    }

    #[test]
    fn multibyte_characters_split_across_tokens_are_rejoined() {
        // "é" is 0xC3 0xA9; BPE can put the two bytes in different tokens.
        let tokens = [
            TokenPiece {
                text: b" caf\xC3".to_vec(),
                start_ms: 0,
                end_ms: 100,
                probability: 1.0,
            },
            TokenPiece {
                text: b"\xA9".to_vec(),
                start_ms: 100,
                end_ms: 200,
                probability: 1.0,
            },
        ];
        let words = assemble_words(&tokens);
        assert_eq!(words.len(), 1);
        assert_eq!(words[0].content, "café");
    }

    #[test]
    fn quotes_and_dashes_are_dropped_and_bare_punctuation_attaches() {
        let tokens = [
            t(" -", 0, 100, 0.5),
            t(" \"Chest", 100, 400, 0.8),
            t(" pain\"", 400, 700, 0.8),
            t(" .", 700, 750, 0.9),
        ];
        let words = assemble_words(&tokens);
        use WordKind::*;
        assert_eq!(
            contents(&words),
            vec![
                ("Chest", Pronunciation),
                ("pain", Pronunciation),
                (".", Punctuation),
            ]
        );
    }

    #[test]
    fn end_never_precedes_start_and_times_are_monotonic() {
        let mut words = assemble_words(&[t(" odd", 500, 400, 0.5)]);
        assert_eq!((words[0].start_ms, words[0].end_ms), (Some(500), Some(500)));
        words.extend(assemble_words(&[t(" back", 450, 900, 0.5)]));
        make_monotonic(&mut words);
        assert_eq!(words[1].start_ms, Some(500));
        assert_eq!(words[1].end_ms, Some(900));
    }

    fn segment(tokens: &[(&str, u64)]) -> RecognizedSegment {
        RecognizedSegment {
            start_ms: 0,
            end_ms: 0,
            tokens: tokens
                .iter()
                .map(|&(text, start)| TokenPiece::new(text, start, start, 1.0))
                .collect(),
        }
    }

    fn times(segments: &[RecognizedSegment]) -> Vec<(u64, u64)> {
        segments
            .iter()
            .flat_map(|s| s.tokens.iter().map(|t| (t.start_ms, t.end_ms)))
            .collect()
    }

    #[test]
    fn token_ends_come_from_the_next_start_capped() {
        let mut segments = vec![
            segment(&[(" Any", 100), (" fever", 300), ("?", 250)]),
            segment(&[(" No", 5000), (".", 5300)]),
        ];
        place_tokens(&mut segments, &[], 5600);
        // "?" starting before "fever" is lifted to it; the pause before "No" is not part of
        // "?"; the last token ends with the audio.
        assert_eq!(
            times(&segments),
            [
                (100, 300),
                (300, 300),
                (300, 1100),
                (5000, 5300),
                (5300, 5600)
            ]
        );
    }

    #[test]
    fn tokens_stranded_in_silence_move_to_their_speech() {
        // Speech 0.2-2.3 s and 5.4-7.0 s. Alignment lingered on "high": "today" and "." landed
        // in the silence, and so did the next sentence's "Any".
        let speech = [(200, 2300), (5400, 7000)];
        let mut segments = vec![segment(&[
            (" is", 1200),
            (" high", 1400),
            (" today", 2960),
            (".", 3700),
            (" Any", 5000),
            (" chest", 5800),
        ])];
        place_tokens(&mut segments, &speech, 7000);
        assert_eq!(
            times(&segments),
            [
                (1200, 1400),
                (1400, 1700),
                // Moved back: [1400, 2300) shared by "high", "today", ".".
                (1700, 2000),
                (2000, 2300),
                // Moved forward to the next region's start.
                (5400, 5800),
                (5800, 6600),
            ]
        );
    }

    #[test]
    fn a_new_sentence_in_silence_moves_forward_and_a_trailing_one_back() {
        let speech = [(1000, 2000)];
        // "Yes" before any speech goes forward; "okay" after all speech continues "Yes" and
        // goes back.
        let mut segments = vec![segment(&[(" Yes", 500), (" okay", 2500)])];
        place_tokens(&mut segments, &speech, 3000);
        assert_eq!(times(&segments), [(1000, 1500), (1500, 2000)]);
    }

    #[test]
    fn empty_input_gives_no_items() {
        assert!(assemble_words(&[]).is_empty());
        assert!(assemble_words(&[t(" ", 0, 10, 0.1)]).is_empty());
        assert_eq!(render_text(&[]), "");
    }
}
