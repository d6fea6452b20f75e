//! Word tokens, their normalised forms and hashes, and sentence boundaries.
//!
//! This module owns the one normalisation every lookup relies on. The data files'
//! keys were normalised by `scripts/build-nlp-data.py` with the same rules, and the
//! engine hashes them at load without re-normalising, so the two must agree:
//! lowercase, a fixed accent-folding table, words are runs of alphanumerics (an
//! apostrophe between letters and a `.`/`,` between digits stay inside a word),
//! "n't" becomes "not", a possessive "'s" is dropped, and 've 're 'll 'm 'd expand.
//!
//! A phrase is looked up by the hash of its tokens' hashes (see [`combine`]), so the
//! matcher extends an n-gram one token at a time without building strings.

/// One word token of the analysed text.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    /// Code-point offsets into the whole analysed text.
    pub start: u32,
    pub end: u32,
    /// Byte offsets into the whole analysed text.
    pub bstart: u32,
    pub bend: u32,
    /// Range of the normalised form in [`Tokens::buf`].
    pub norm: (u32, u32),
    /// Range of the singular form (for plural nouns) in [`Tokens::buf`]; empty if none.
    pub alt: (u32, u32),
    pub hash: u64,
    /// Hash of `alt`, 0 when there is none.
    pub alt_hash: u64,
    /// Hash of the attribute key: `#` for a number, `#mg` for "500mg", else `hash`.
    pub attr_hash: u64,
    /// First token of a sentence (or of a line).
    pub sentence_start: bool,
    /// Punctuation (, . ; : ? !) directly follows the token, spaces aside.
    pub punct_after: bool,
}

/// The tokens of a text plus the buffer their normalised forms live in.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    pub toks: Vec<Token>,
    pub buf: String,
}

impl Tokens {
    pub fn norm(&self, t: &Token) -> &str {
        &self.buf[t.norm.0 as usize..t.norm.1 as usize]
    }
    pub fn alt(&self, t: &Token) -> &str {
        &self.buf[t.alt.0 as usize..t.alt.1 as usize]
    }
}

const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// FNV-1a over the token's bytes.
pub(crate) fn token_hash(s: &str) -> u64 {
    token_hash_bytes(s.as_bytes())
}

pub(crate) fn token_hash_bytes(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Hash of an n-gram extended by one token (murmur3's finaliser mixes the bits, so
/// the phrase maps can use the value as is).
#[inline]
pub(crate) fn combine(prev: u64, tok: u64) -> u64 {
    let mut x = prev.rotate_left(17) ^ tok;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    // 0 marks "no alternative form" in Token::alt_hash.
    x | 1
}

pub(crate) fn seed() -> u64 {
    SEED
}

/// Hash of a normalised key (tokens joined by single spaces).
pub(crate) fn key_hash(key: &str) -> u64 {
    key.as_bytes()
        .split(|b| *b == b' ')
        .fold(SEED, |h, t| combine(h, token_hash_bytes(t)))
}

fn is_apos(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// Lowercase and fold accents; the table is the one in build-nlp-data.py.
pub(crate) fn fold_into(chars: &[char], out: &mut String) {
    for &c in chars {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        for l in c.to_lowercase() {
            match l {
                'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => out.push('a'),
                'ç' | 'ć' => out.push('c'),
                'è' | 'é' | 'ê' | 'ë' | 'ē' => out.push('e'),
                'ì' | 'í' | 'î' | 'ï' | 'ī' => out.push('i'),
                'ñ' => out.push('n'),
                'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => out.push('o'),
                'ù' | 'ú' | 'û' | 'ü' | 'ū' => out.push('u'),
                'ý' | 'ÿ' => out.push('y'),
                'æ' => out.push_str("ae"),
                'œ' => out.push_str("oe"),
                'ß' => out.push_str("ss"),
                '\u{2019}' => out.push('\''),
                other => out.push(other),
            }
        }
    }
}

/// Units that may be glued to a number ("500mg").
const GLUED_UNITS: &[&str] = &["mg", "mcg", "g", "ml", "cc", "iu", "units", "unit"];

/// Abbreviations whose period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "st", "vs", "etc", "approx", "prof", "jr", "sr",
];

fn clitic(after: &str) -> Option<&'static str> {
    match after {
        "ve" => Some("have"),
        "re" => Some("are"),
        "ll" => Some("will"),
        "m" => Some("am"),
        "d" => Some("would"),
        _ => None,
    }
}

/// Appends the singular of the plural noun `buf[nb..ne]` to `buf`; false if none.
fn push_singular(buf: &mut String, nb: usize, ne: usize) -> bool {
    let w = &buf[nb..ne];
    if w.len() <= 3 || !w.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    let keep = if w.ends_with("ies") {
        buf.extend_from_within(nb..ne - 3);
        buf.push('y');
        return true;
    } else if ["sses", "shes", "xes", "zes"]
        .iter()
        .any(|s| w.ends_with(s))
    {
        // "-ches" keeps its e: "headaches", "aches" are far commoner in speech than "itches".
        ne - 2
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        ne - 1
    } else {
        return false;
    };
    buf.extend_from_within(nb..keep);
    true
}

#[cfg(test)]
fn singular(w: &str) -> Option<String> {
    let mut b = w.to_string();
    push_singular(&mut b, 0, w.len()).then(|| b[w.len()..].to_string())
}

fn is_number_word(w: &str) -> bool {
    matches!(
        w,
        "one"
            | "two"
            | "three"
            | "four"
            | "five"
            | "six"
            | "seven"
            | "eight"
            | "nine"
            | "ten"
            | "eleven"
            | "twelve"
            | "fifteen"
            | "twenty"
            | "thirty"
            | "forty"
            | "fifty"
            | "hundred"
    )
}

fn attr_key(norm: &str) -> Option<String> {
    let is_num = |s: &str| {
        !s.is_empty()
            && s.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
    };
    if is_num(norm) || is_number_word(norm) {
        return Some("#".to_string());
    }
    let split = norm
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.'))?;
    if split > 0 && is_num(&norm[..split]) && GLUED_UNITS.contains(&&norm[split..]) {
        return Some(format!("#{}", &norm[split..]));
    }
    None
}

/// Hash of the attribute key of a token; None when it is the token itself. Only
/// tokens starting with a digit or a letter of a number word can differ, so most
/// tokens return at once without allocating.
fn attr_hash(norm: &str) -> Option<u64> {
    let b = *norm.as_bytes().first()?;
    if !(b.is_ascii_digit() || b"otfsenh".contains(&b)) {
        return None;
    }
    attr_key(norm).map(|k| token_hash(&k))
}

/// Per-line scratch: the line's chars with their byte offsets.
#[derive(Default)]
pub(crate) struct Scratch {
    chars: Vec<char>,
    bytes: Vec<u32>,
    piece: String,
}

impl Tokens {
    /// Tokenises `line`, which starts at `base_char`/`base_byte` in the whole text.
    /// The first token is marked as a sentence start. Returns the line's length in chars.
    pub fn push_line(
        &mut self,
        line: &str,
        base_char: u32,
        base_byte: u32,
        sc: &mut Scratch,
    ) -> u32 {
        sc.chars.clear();
        sc.bytes.clear();
        for (b, c) in line.char_indices() {
            sc.chars.push(c);
            sc.bytes.push(b as u32);
        }
        sc.bytes.push(line.len() as u32);
        let c = &sc.chars;
        let n = c.len();
        let mut i = 0;
        let mut pending_break = true;
        while i < n {
            if !c[i].is_alphanumeric() {
                if matches!(c[i], '.' | '!' | '?' | ';') && self.breaks_after_last(c[i]) {
                    pending_break = true;
                }
                if matches!(c[i], ',' | '.' | ';' | ':' | '?' | '!') {
                    if let Some(last) = self.toks.last_mut() {
                        if gap_is_space(c, last, i, base_char) {
                            last.punct_after = true;
                        }
                    }
                }
                i += 1;
                continue;
            }
            let mut j = i;
            loop {
                while j < n && c[j].is_alphanumeric() {
                    j += 1;
                }
                if j + 1 < n && is_apos(c[j]) && c[j + 1].is_alphanumeric() {
                    j += 1;
                    continue;
                }
                if j + 1 < n
                    && (c[j] == '.' || c[j] == ',')
                    && c[j - 1].is_ascii_digit()
                    && c[j + 1].is_ascii_digit()
                {
                    j += 1;
                    continue;
                }
                break;
            }
            let first = self.toks.len();
            self.word_pieces(&c[i..j], i, base_char, base_byte, &sc.bytes, &mut sc.piece);
            if pending_break && self.toks.len() > first {
                self.toks[first].sentence_start = true;
                pending_break = false;
            }
            i = j;
        }
        n as u32
    }

    fn breaks_after_last(&self, p: char) -> bool {
        if p != '.' {
            return true;
        }
        match self.toks.last() {
            Some(t) => !ABBREVIATIONS.contains(&self.norm(t)),
            None => true,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn word_pieces(
        &mut self,
        w: &[char],
        off: usize,
        base_char: u32,
        base_byte: u32,
        bytes: &[u32],
        piece: &mut String,
    ) {
        let len = w.len();
        let n_apos = w.iter().filter(|c| is_apos(**c)).count();
        // Writes the piece w[s..e] (or `text`) straight into the buffer.
        let emit = |this: &mut Tokens, s: usize, e: usize, text: Option<&str>, drop_apos: bool| {
            let nb = this.buf.len();
            match text {
                Some(t) => this.buf.push_str(t),
                None if drop_apos => {
                    for c in &w[s..e] {
                        if !is_apos(*c) {
                            fold_into(std::slice::from_ref(c), &mut this.buf);
                        }
                    }
                }
                None => fold_into(&w[s..e], &mut this.buf),
            }
            if this.buf.len() == nb {
                return;
            }
            this.finish_token(
                nb,
                base_char + (off + s) as u32,
                base_char + (off + e) as u32,
                base_byte + bytes[off + s],
                base_byte + bytes[off + e],
            );
        };
        if n_apos == 0 {
            return emit(self, 0, len, None, false);
        }
        if n_apos > 1 {
            return emit(self, 0, len, None, true);
        }
        let k = w.iter().position(|c| is_apos(*c)).unwrap_or(0);
        let lower = |x: usize| w[x].to_lowercase().next().unwrap_or(w[x]);
        if k == len - 2 && k >= 1 && lower(k - 1) == 'n' && lower(len - 1) == 't' {
            if k > 1 {
                emit(self, 0, k - 1, None, false);
            }
            return emit(self, k - 1, len, Some("not"), false);
        }
        piece.clear();
        fold_into(&w[k + 1..], piece);
        if piece == "s" {
            emit(self, 0, k, None, false);
        } else if let Some(exp) = clitic(piece) {
            emit(self, 0, k, None, false);
            emit(self, k, len, Some(exp), false);
        } else {
            emit(self, 0, len, None, true);
        }
    }

    /// Completes the token whose normalised form is `buf[nb..]`.
    fn finish_token(&mut self, nb: usize, start: u32, end: u32, bstart: u32, bend: u32) {
        let ne = self.buf.len();
        let hash = token_hash(&self.buf[nb..ne]);
        let alt_hash = if push_singular(&mut self.buf, nb, ne) {
            token_hash(&self.buf[ne..])
        } else {
            0
        };
        let attr_hash = attr_hash(&self.buf[nb..ne]).unwrap_or(hash);
        let ae = self.buf.len();
        self.toks.push(Token {
            start,
            end,
            bstart,
            bend,
            norm: (nb as u32, ne as u32),
            alt: (ne as u32, ae as u32),
            hash,
            alt_hash,
            attr_hash,
            sentence_start: false,
            punct_after: false,
        });
    }
}

/// True when only spaces lie between the token's end and char `i` of the line.
fn gap_is_space(c: &[char], last: &Token, i: usize, base_char: u32) -> bool {
    if last.end < base_char {
        return false;
    }
    let from = (last.end - base_char) as usize;
    from <= i && c[from..i].iter().all(|c| *c == ' ')
}

/// The normalised key of a phrase, as build-nlp-data.py would write it.
pub(crate) fn normalize(text: &str) -> String {
    let mut t = Tokens::default();
    let mut sc = Scratch::default();
    t.push_line(text, 0, 0, &mut sc);
    let mut out = String::new();
    for (k, tok) in t.toks.iter().enumerate() {
        if k > 0 {
            out.push(' ');
        }
        out.push_str(t.norm(tok));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norms(s: &str) -> Vec<String> {
        let mut t = Tokens::default();
        t.push_line(s, 0, 0, &mut Scratch::default());
        t.toks.iter().map(|k| t.norm(k).to_string()).collect()
    }

    #[test]
    fn contractions_and_possessives() {
        assert_eq!(
            norms("I don't have Crohn's"),
            ["i", "do", "not", "have", "crohn"]
        );
        assert_eq!(norms("I've had it"), ["i", "have", "had", "it"]);
        assert_eq!(norms("can’t"), ["ca", "not"]);
        assert_eq!(
            norms("x-ray 2.5 mg, 1,000"),
            ["x", "ray", "2.5", "mg", "1,000"]
        );
        assert_eq!(norms("Sjögren Æther"), ["sjogren", "aether"]);
    }

    #[test]
    fn offsets_are_chars() {
        let mut t = Tokens::default();
        t.push_line("é don't", 10, 20, &mut Scratch::default());
        let v: Vec<_> = t
            .toks
            .iter()
            .map(|k| (k.start, k.end, k.bstart, k.bend))
            .collect();
        assert_eq!(v, [(10, 11, 20, 22), (12, 14, 23, 25), (14, 17, 25, 28)]);
    }

    #[test]
    fn sentences_and_punctuation() {
        let mut t = Tokens::default();
        t.push_line("No, Dr. Smith said so. Fine", 0, 0, &mut Scratch::default());
        let starts: Vec<bool> = t.toks.iter().map(|k| k.sentence_start).collect();
        assert_eq!(starts, [true, false, false, false, false, true]);
        assert!(t.toks[0].punct_after);
        assert!(!t.toks[2].punct_after);
    }

    #[test]
    fn singular_forms() {
        assert_eq!(singular("allergies").as_deref(), Some("allergy"));
        assert_eq!(singular("rashes").as_deref(), Some("rash"));
        assert_eq!(singular("headaches").as_deref(), Some("headache"));
        assert_eq!(singular("diabetes").as_deref(), Some("diabete"));
        assert_eq!(singular("illness"), None);
    }

    #[test]
    fn attr_keys() {
        assert_eq!(attr_key("500mg").as_deref(), Some("#mg"));
        assert_eq!(attr_key("two").as_deref(), Some("#"));
        assert_eq!(attr_key("1,000").as_deref(), Some("#"));
        assert_eq!(attr_key("mg"), None);
    }
}
