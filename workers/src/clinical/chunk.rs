//! Splits analysed text into requests within a byte budget.
//!
//! Each chunk ends at the furthest sentence boundary that fits; failing that, the
//! furthest word boundary; failing that (one "word" longer than the budget, as in
//! unspaced CJK text), the furthest UTF-8 character boundary. Chunks are contiguous
//! and cover the whole text, so each knows its code-point offset in the full text.

/// One request's worth of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub text: &'a str,
    pub byte_start: usize,
    /// Code-point offset of `text` in the full text: what entity offsets are rebased by.
    pub char_start: u32,
    pub char_len: u32,
}

impl Chunk<'_> {
    /// Whether the chunk holds anything worth a request (APIs refuse blank text).
    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }
}

fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '?' | '!' | '\n' | '。' | '？' | '！' | '…')
}

fn count_chars(text: &str) -> u32 {
    (if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }) as u32
}

/// Where the chunk starting at `start` ends, given at most `budget` bytes.
fn chunk_end(text: &str, start: usize, budget: usize) -> usize {
    if text.len() - start <= budget {
        return text.len();
    }
    let mut limit = start + budget;
    while !text.is_char_boundary(limit) {
        limit -= 1;
    }
    let window = &text[start..limit];
    let mut word_end = None;
    let mut next: Option<char> = text[limit..].chars().next();
    for (offset, c) in window.char_indices().rev() {
        let end = start + offset + c.len_utf8();
        let next_is_space = next.is_none_or(char::is_whitespace);
        if ends_sentence(c) && (c == '\n' || next_is_space || !c.is_ascii()) {
            return end;
        }
        if word_end.is_none() && c.is_whitespace() {
            word_end = Some(end);
        }
        next = Some(c);
    }
    match word_end {
        Some(end) => end,
        // Budgets are far larger than one character, so `limit > start` here.
        None => limit,
    }
}

/// Splits `text` into contiguous chunks of at most `budget` bytes each.
pub fn chunk_text(text: &str, budget: usize) -> Vec<Chunk<'_>> {
    assert!(budget >= 4, "a budget must hold any UTF-8 character");
    let mut chunks = Vec::with_capacity(text.len() / budget + 1);
    let mut start = 0;
    let mut char_start = 0u32;
    while start < text.len() {
        let end = chunk_end(text, start, budget);
        let piece = &text[start..end];
        let char_len = count_chars(piece);
        chunks.push(Chunk {
            text: piece,
            byte_start: start,
            char_start,
            char_len,
        });
        char_start += char_len;
        start = end;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_one_chunk() {
        let chunks = chunk_text("Hello there.", 100);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "Hello there.");
    }

    #[test]
    fn prefers_sentence_then_word_then_character_boundaries() {
        let chunks = chunk_text("One two. Three four five", 16);
        assert_eq!(chunks[0].text, "One two.");
        let chunks = chunk_text("alpha beta gamma delta", 13);
        assert_eq!(chunks[0].text, "alpha beta ");
        let chunks = chunk_text("日本語日本語日本語", 7);
        assert_eq!(chunks[0].text, "日本");
        assert_eq!(chunks[1].char_start, 2);
    }

    #[test]
    fn decimal_points_are_not_sentence_ends() {
        let chunks = chunk_text("Take 2.5 mg daily now ok", 12);
        assert_eq!(chunks[0].text, "Take 2.5 mg ");
    }

    #[test]
    fn empty_text_has_no_chunks() {
        assert!(chunk_text("", 100).is_empty());
    }

    fn unicode_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-z]{1,12}",
            Just(" ".to_owned()),
            Just(". ".to_owned()),
            Just("\n".to_owned()),
            "[\u{4e00}-\u{4fff}]{1,40}",
            "[\u{1F600}-\u{1F64F}]{1,5}",
            "e\u{0301}\u{0302}",
            "[a-z]{200,600}",
        ];
        prop::collection::vec(piece, 0..300).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn chunks_stay_within_budget_and_cover_the_text(text in unicode_text(), budget in 4usize..700) {
            let chunks = chunk_text(&text, budget);
            let mut rebuilt = String::new();
            let mut chars = 0u32;
            for chunk in &chunks {
                prop_assert!(chunk.text.len() <= budget, "chunk of {} bytes over {}", chunk.text.len(), budget);
                prop_assert!(!chunk.text.is_empty());
                prop_assert_eq!(chunk.char_start, chars);
                prop_assert_eq!(chunk.char_len as usize, chunk.text.chars().count());
                chars += chunk.char_len;
                rebuilt.push_str(chunk.text);
            }
            prop_assert_eq!(rebuilt, text);
        }
    }
}
