//! The vocabularies: reading the data files, and the phrase index the matcher probes.
//!
//! Loading must take well under 300 ms, so nothing is built that can be avoided: the
//! terms file stays one decompressed `String`, and the index maps the hash of each
//! key (and of each key's proper prefixes, so the matcher knows when to stop
//! extending) to the byte offset of the key's line. A line's payload (codes, drug,
//! span trim) is parsed only when the term is matched.

use crate::tokenize::{combine, key_hash, normalize, seed, token_hash_bytes, Token, Tokens};
use crate::LoadError;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::path::Path;

pub(crate) const FORMAT: &str = "v1";
pub(crate) const CODES_FILE: &str = "icd10cm-codes.tsv.gz";
pub(crate) const DRUGS_FILE: &str = "drugs.tsv.gz";
pub(crate) const TERMS_FILE: &str = "terms.tsv.gz";
pub(crate) const CONTEXT_FILE: &str = "context-rules.tsv";

/// Slot flags.
pub(crate) const PREFIX: u8 = 1;
pub(crate) const TERM: u8 = 2;
pub(crate) const ANATOMY: u8 = 4;
pub(crate) const TEST: u8 = 8;
pub(crate) const PROCEDURE: u8 = 16;

/// Hasher for keys that already are well-mixed 64-bit hashes.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub flags: u8,
    /// Byte offset of the key's line (terms) or index of the entry (small maps).
    pub val: u32,
}

const NO_VAL: u32 = u32::MAX;

/// Phrase hash -> slot, with every proper prefix of every phrase marked [`PREFIX`].
#[derive(Default)]
pub(crate) struct PhraseMap {
    map: HashMap<u64, Slot, BuildHasherDefault<IdHasher>>,
    pub max_tokens: usize,
}

impl PhraseMap {
    fn with_capacity(n: usize) -> Self {
        PhraseMap {
            map: HashMap::with_capacity_and_hasher(n, Default::default()),
            max_tokens: 0,
        }
    }

    /// Adds `key` (already normalised). A TERM keeps its first value: the files are
    /// sorted and unique, so a second one is a hash collision, and dropping it is safe.
    pub fn insert(&mut self, key: &str, val: u32, flags: u8) {
        let mut h = seed();
        let mut n = 0;
        // Byte splits: str's char patterns cost a memcmp per hit, which showed in the
        // load profile.
        let mut toks = key.as_bytes().split(|b| *b == b' ').peekable();
        while let Some(t) = toks.next() {
            h = combine(h, token_hash_bytes(t));
            n += 1;
            if toks.peek().is_some() {
                self.map
                    .entry(h)
                    .or_insert(Slot {
                        flags: 0,
                        val: NO_VAL,
                    })
                    .flags |= PREFIX;
            }
        }
        self.max_tokens = self.max_tokens.max(n);
        let slot = self.map.entry(h).or_insert(Slot {
            flags: 0,
            val: NO_VAL,
        });
        if flags & TERM != 0 && slot.flags & TERM == 0 {
            slot.val = val;
        }
        slot.flags |= flags;
    }

    #[inline]
    pub fn get(&self, h: u64) -> Option<Slot> {
        self.map.get(&h).copied()
    }
}

/// A longest match found by [`longest_match`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub end: usize,
    pub slot: Slot,
}

/// Longest phrase of `map` starting at token `i` (not crossing `limit`). `accept`
/// decides whether a slot counts as a match (and checks the key against the tokens).
pub(crate) fn longest_match(
    map: &PhraseMap,
    toks: &Tokens,
    i: usize,
    limit: usize,
    attr: bool,
    accept: impl Fn(Slot, &[Token], bool) -> bool,
) -> Option<Found> {
    let mut best = None;
    let mut h = seed();
    let end = limit.min(i + map.max_tokens);
    for j in i..end {
        let t = &toks.toks[j];
        let prev = h;
        h = combine(h, if attr { t.attr_hash } else { t.hash });
        let slot = map.get(h);
        if let Some(s) = slot {
            if s.flags & !PREFIX != 0 && accept(s, &toks.toks[i..=j], false) {
                best = Some(Found {
                    end: j + 1,
                    slot: s,
                });
            }
        }
        if !attr && t.alt_hash != 0 {
            if let Some(s) = map.get(combine(prev, t.alt_hash)) {
                if s.flags & !PREFIX != 0
                    && best.is_none_or(|b: Found| b.end < j + 1)
                    && accept(s, &toks.toks[i..=j], true)
                {
                    best = Some(Found {
                        end: j + 1,
                        slot: s,
                    });
                }
            }
        }
        match slot {
            Some(s) if s.flags & PREFIX != 0 => {}
            _ => break,
        }
    }
    best
}

/// One line of the terms file.
pub(crate) struct TermLine<'a> {
    pub key: &'a str,
    pub conds: &'a str,
    pub drug: &'a str,
    pub trim: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cat {
    Negated,
    Possible,
    Hypothetical,
    Historical,
    Family,
    Pseudo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Forward,
    Backward,
    Both,
    Terminate,
    None,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub cat: Cat,
    pub dir: Dir,
}

/// Small hand lists for the cheap categories; the condition and drug vocabularies win
/// over them when a phrase is in both.
const ANATOMY_TERMS: &[&str] = &[
    // "back", "side", "face" and "hand" are left out: "back in 2015", "on the other hand".
    "head",
    "neck",
    "chest",
    "lower back",
    "upper back",
    "stomach",
    "belly",
    "abdomen",
    "arm",
    "arms",
    "left arm",
    "right arm",
    "leg",
    "legs",
    "left leg",
    "right leg",
    "knee",
    "knees",
    "ankle",
    "ankles",
    "foot",
    "feet",
    "hands",
    "wrist",
    "shoulder",
    "shoulders",
    "hip",
    "hips",
    "elbow",
    "throat",
    "ear",
    "ears",
    "eye",
    "eyes",
    "nose",
    "mouth",
    "tongue",
    "teeth",
    "tooth",
    "jaw",
    "skin",
    "heart",
    "lungs",
    "lung",
    "kidney",
    "kidneys",
    "liver",
    "bladder",
    "bowel",
    "bowels",
    "colon",
    "brain",
    "spine",
    "joints",
    "joint",
    "muscles",
    "muscle",
    "toe",
    "toes",
    "finger",
    "fingers",
    "thumb",
    "groin",
    "pelvis",
    "face",
    "scalp",
    "sinuses",
    "breast",
    "breasts",
    "ribs",
    "flank",
    "calf",
    "thigh",
    "prostate",
    "thyroid",
    "pancreas",
    "gallbladder",
    "uterus",
    "ovaries",
    "veins",
    "arteries",
];
const TEST_TERMS: &[&str] = &[
    "blood pressure",
    "blood test",
    "blood tests",
    "blood work",
    "bloodwork",
    "a1c",
    "hemoglobin a1c",
    "cholesterol",
    "blood sugar",
    "blood sugars",
    "glucose",
    "ekg",
    "ecg",
    "x ray",
    "xray",
    "chest x ray",
    "mri",
    "ct scan",
    "cat scan",
    "ultrasound",
    "echocardiogram",
    "stress test",
    "urine test",
    "urinalysis",
    "strep test",
    "covid test",
    "mammogram",
    "pap smear",
    "biopsy",
    "colonoscopy",
    "endoscopy",
    "heart rate",
    "pulse",
    "temperature",
    "oxygen level",
    "oxygen saturation",
    "weight",
    "blood count",
    "cbc",
    "thyroid test",
    "tsh",
    "lipid panel",
    "kidney function",
    "liver function",
];
const PROCEDURE_TERMS: &[&str] = &[
    "surgery",
    "operation",
    "bypass",
    "stent",
    "physical therapy",
    "dialysis",
    "chemotherapy",
    "chemo",
    "radiation",
    "vaccine",
    "vaccination",
    "flu shot",
    "appendectomy",
    "knee replacement",
    "hip replacement",
    "c section",
    "cesarean",
    "angioplasty",
];

/// Everything loaded from the data directory.
pub(crate) struct Lexicon {
    pub terms_text: String,
    pub terms: PhraseMap,
    codes_text: String,
    code_lines: Vec<u32>,
    drugs_text: String,
    drug_lines: Vec<u32>,
    pub context: PhraseMap,
    /// The ConText rules of each context key (a key may carry several categories).
    pub rules: Vec<Vec<Rule>>,
}

/// The data files' contents, for [`crate::Engine::from_tables`].
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// `icd10cm-codes.tsv.gz` decompressed: `code<TAB>description` per line.
    pub codes: String,
    /// `drugs.tsv.gz` decompressed: `name<TAB>id id ...` per line.
    pub drugs: String,
    /// `terms.tsv.gz` decompressed: `key<TAB>codeidx:score,..<TAB>drugidx:B|G<TAB>trim`.
    pub terms: String,
    /// `context-rules.tsv`: `key<TAB>CATEGORY<TAB>DIRECTION`.
    pub context: String,
}

impl Tables {
    /// Tables with the `#telepipe-nlp:<kind>:v1` headers added, from header-less bodies.
    pub fn from_bodies(codes: &str, drugs: &str, terms: &str, context: &str) -> Tables {
        let h = |kind: &str, body: &str| format!("#telepipe-nlp:{kind}:{FORMAT}\n{body}");
        let mut sorted: Vec<&str> = terms.lines().filter(|l| !l.is_empty()).collect();
        sorted.sort_unstable();
        Tables {
            codes: h("icd10cm-codes", codes),
            drugs: h("drugs", drugs),
            terms: h("terms", &(sorted.join("\n") + "\n")),
            context: h("context-rules", context),
        }
    }
}

fn read_file(dir: &Path, name: &str) -> Result<String, LoadError> {
    let path = dir.join(name);
    let raw =
        std::fs::read(&path).map_err(|e| LoadError::new(&path, format!("cannot read: {e}")))?;
    if !name.ends_with(".gz") {
        return String::from_utf8(raw)
            .map_err(|_| LoadError::new(&path, "not UTF-8 text (corrupt)"));
    }
    // The gzip trailer holds the size mod 2^32: reserve once instead of regrowing.
    let hint = raw
        .len()
        .checked_sub(4)
        .map(|k| u32::from_le_bytes([raw[k], raw[k + 1], raw[k + 2], raw[k + 3]]) as usize)
        .unwrap_or(0)
        .min(256 << 20);
    let mut out = String::with_capacity(hint);
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut out)
        .map_err(|e| LoadError::new(&path, format!("corrupt gzip or not UTF-8: {e}")))?;
    Ok(out)
}

/// Byte offsets of the body lines after the header; checks the header.
fn body_lines(text: &str, kind: &str, path: &Path, min_tabs: usize) -> Result<Vec<u32>, LoadError> {
    let header = format!("#telepipe-nlp:{kind}:{FORMAT}");
    let first = text.lines().next().unwrap_or("");
    if first != header {
        return Err(LoadError::new(
            path,
            format!(
                "header is {first:?}, expected {header:?} (corrupt or built by another version)"
            ),
        ));
    }
    let mut out = Vec::new();
    let mut pos = first.len() + 1;
    let body = text.as_bytes().get(pos..).unwrap_or(&[]);
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        if !line.is_empty() {
            if line.iter().filter(|b| **b == b'\t').count() < min_tabs {
                return Err(LoadError::new(
                    path,
                    format!("line {} is malformed (corrupt)", n + 2),
                ));
            }
            out.push(pos as u32);
        }
        pos += line.len() + 1;
    }
    if out.is_empty() {
        return Err(LoadError::new(
            path,
            "has no entries (corrupt or truncated)",
        ));
    }
    Ok(out)
}

/// `text[from..]` up to (not including) the first `stop` byte or a newline.
fn field(text: &str, from: usize, stop: u8) -> &str {
    let rest = &text.as_bytes()[from..];
    let n = rest
        .iter()
        .position(|b| *b == stop || *b == b'\n')
        .unwrap_or(rest.len());
    // `stop` and '\n' are ASCII, so `from + n` is a char boundary.
    &text[from..from + n]
}

fn parse_cat(s: &str) -> Option<Cat> {
    Some(match s {
        "NEGATED_EXISTENCE" => Cat::Negated,
        "POSSIBLE_EXISTENCE" => Cat::Possible,
        "HYPOTHETICAL" => Cat::Hypothetical,
        "HISTORICAL" => Cat::Historical,
        "FAMILY" => Cat::Family,
        "PSEUDO" => Cat::Pseudo,
        _ => return None,
    })
}

fn parse_dir(s: &str) -> Dir {
    match s {
        "FORWARD" => Dir::Forward,
        "BACKWARD" => Dir::Backward,
        "BIDIRECTIONAL" => Dir::Both,
        "TERMINATE" => Dir::Terminate,
        _ => Dir::None,
    }
}

impl Lexicon {
    pub fn load(dir: &Path) -> Result<Lexicon, LoadError> {
        let tables = Tables {
            codes: read_file(dir, CODES_FILE)?,
            drugs: read_file(dir, DRUGS_FILE)?,
            terms: read_file(dir, TERMS_FILE)?,
            context: read_file(dir, CONTEXT_FILE)?,
        };
        Lexicon::build(tables, dir)
    }

    pub fn build(t: Tables, dir: &Path) -> Result<Lexicon, LoadError> {
        let code_lines = body_lines(&t.codes, "icd10cm-codes", &dir.join(CODES_FILE), 1)?;
        let drug_lines = body_lines(&t.drugs, "drugs", &dir.join(DRUGS_FILE), 1)?;
        let terms_path = dir.join(TERMS_FILE);
        let term_lines = body_lines(&t.terms, "terms", &terms_path, 3)?;
        let ctx_path = dir.join(CONTEXT_FILE);
        let ctx_lines = body_lines(&t.context, "context-rules", &ctx_path, 2)?;

        let mut terms = PhraseMap::with_capacity(term_lines.len() * 3 / 2);
        for &off in &term_lines {
            let key = field(&t.terms, off as usize, b'\t');
            if key.is_empty() {
                return Err(LoadError::new(
                    &terms_path,
                    format!("empty key at byte {off} (corrupt)"),
                ));
            }
            terms.insert(key, off, TERM);
        }
        for (list, flag) in [
            (ANATOMY_TERMS, ANATOMY),
            (TEST_TERMS, TEST),
            (PROCEDURE_TERMS, PROCEDURE),
        ] {
            for term in list {
                terms.insert(&normalize(term), NO_VAL, flag);
            }
        }

        let mut context = PhraseMap::with_capacity(ctx_lines.len() * 2);
        // One group of rules per key; the file is sorted, so a key's lines are adjacent.
        let mut rules: Vec<Vec<Rule>> = Vec::with_capacity(ctx_lines.len());
        let mut last_key = "";
        for &off in &ctx_lines {
            let line = field(&t.context, off as usize, b'\n');
            let mut cols = line.split('\t');
            let key = cols.next().unwrap_or("");
            let cat = cols.next().and_then(parse_cat).ok_or_else(|| {
                LoadError::new(
                    &ctx_path,
                    format!("unknown category in line {line:?} (corrupt)"),
                )
            })?;
            let dir = parse_dir(cols.next().unwrap_or(""));
            if key != last_key || rules.is_empty() {
                context.insert(key, rules.len() as u32, TERM);
                rules.push(Vec::new());
                last_key = key;
            }
            if let Some(group) = rules.last_mut() {
                group.push(Rule { cat, dir });
            }
        }

        Ok(Lexicon {
            terms_text: t.terms,
            terms,
            codes_text: t.codes,
            code_lines,
            drugs_text: t.drugs,
            drug_lines,
            context,
            rules,
        })
    }

    pub fn term_line(&self, off: u32) -> TermLine<'_> {
        let text = &self.terms_text;
        let mut at = off as usize;
        let mut col = || {
            let f = field(text, at, b'\t');
            at += f.len();
            // Step over the tab, but never past a newline (the next line).
            if text.as_bytes().get(at) == Some(&b'\t') {
                at += 1;
            }
            f
        };
        TermLine {
            key: col(),
            conds: col(),
            drug: col(),
            trim: col(),
        }
    }

    /// Whether the term at `off` is exactly these tokens (guards against hash collisions).
    pub fn term_is(&self, off: u32, toks: &Tokens, span: &[Token], last_alt: bool) -> bool {
        let key = self.term_line(off).key;
        let mut parts = key.split(' ');
        for (k, t) in span.iter().enumerate() {
            let want = if last_alt && k + 1 == span.len() {
                toks.alt(t)
            } else {
                toks.norm(t)
            };
            if parts.next() != Some(want) {
                return false;
            }
        }
        parts.next().is_none()
    }

    fn line_at<'a>(text: &'a str, lines: &[u32], idx: usize) -> Option<(&'a str, &'a str)> {
        let line = field(text, *lines.get(idx)? as usize, b'\n');
        line.split_once('\t')
    }

    /// ICD-10-CM code and description of code index `idx`.
    pub fn code(&self, idx: usize) -> Option<(&str, &str)> {
        Self::line_at(&self.codes_text, &self.code_lines, idx)
    }

    /// Drug name and its ids (space-separated) of drug index `idx`.
    pub fn drug(&self, idx: usize) -> Option<(&str, &str)> {
        Self::line_at(&self.drugs_text, &self.drug_lines, idx)
    }

    pub fn key_is_term(&self, key: &str) -> bool {
        self.terms
            .get(key_hash(key))
            .is_some_and(|s| s.flags & TERM != 0 && self.term_line(s.val).key == key)
    }
}
