//! Offline clinical NLP that answers in Amazon Comprehend Medical's shape.
//!
//! telepipe's local runtime uses [`Engine`] in place of Comprehend Medical's
//! DetectEntitiesV2, InferICD10CM and InferRxNorm. It is a dictionary matcher with
//! ConText: conditions from the CDC's ICD-10-CM tabular list plus a hand-kept lay-term
//! table, drugs from the `drug-named-entity-recognition` dictionary (DrugBank / MeSH
//! ids: RxNorm is not available offline, so [`Engine::info`] reports `DrugBank` as the
//! drug code system), and medspacy's ConText triggers for negation, history, family,
//! hypothetical and uncertainty. `scripts/build-nlp-data.py` builds the data files.
//!
//! Module map: `tokenize` owns normalisation and hashing, `lexicon` the data
//! files and the phrase index, `speaker` line prefixes, `context` ConText,
//! `attributes` medication attributes; this file owns the pipeline and the output.

mod attributes;
mod context;
mod lexicon;
mod speaker;
mod tokenize;

pub use lexicon::Tables;

use attributes::{Attr, AttrIndex};
use lexicon::{longest_match, Cat, Lexicon, ANATOMY, PROCEDURE, TERM, TEST};
use std::fmt;
use std::path::{Path, PathBuf};
use telepipe_events::results::{ClinicalEntity, Concept, EngineInfo, EntityAttribute, EntityTrait};
use tokenize::{Scratch, Tokens};

/// Which Comprehend Medical operation to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Analysis {
    /// DetectEntitiesV2: conditions, medications (with attributes), anatomy, tests.
    Entities,
    /// InferICD10CM: conditions with ICD-10-CM concepts.
    Icd10Cm,
    /// InferRxNorm: medications with drug concepts (DrugBank/MeSH ids offline).
    Drugs,
}

/// A data file is missing or corrupt.
#[derive(Debug, Clone)]
pub struct LoadError {
    path: PathBuf,
    message: String,
}

impl LoadError {
    fn new(path: &Path, message: impl Into<String>) -> LoadError {
        LoadError {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// The file that could not be loaded.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        write!(
            f,
            "NLP data file {}: {}; run `scripts/build-nlp-data.sh {}` to produce it",
            self.path.display(),
            self.message,
            dir.display()
        )
    }
}

impl std::error::Error for LoadError {}

/// The offline engine. Cheap to share: `analyze` takes `&self`.
pub struct Engine {
    lex: Lexicon,
    attrs: AttrIndex,
}

/// What a matched phrase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Terms-file line offset.
    Condition(u32),
    Drug(u32),
    Anatomy,
    Test,
    Procedure,
}

#[derive(Debug, Clone)]
struct Mention {
    start: usize,
    end: usize,
    kind: Kind,
    cats: Vec<Cat>,
    attrs: Vec<Attr>,
}

/// Trait names of the ConText categories (Comprehend Medical's names).
fn trait_name(c: Cat) -> Option<&'static str> {
    Some(match c {
        Cat::Negated => "NEGATION",
        Cat::Historical => "PAST_HISTORY",
        Cat::Family => "PERTAINS_TO_FAMILY",
        Cat::Hypothetical => "HYPOTHETICAL",
        Cat::Possible => "LOW_CONFIDENCE",
        Cat::Pseudo => return None,
    })
}

/// ICD-10-CM chapter R is symptoms and signs; these categories in it are signs (what
/// a clinician observes or measures) rather than symptoms (what the patient feels).
const SIGN_PREFIXES: &[&str] = &[
    "R00", "R01", "R03", "R04", "R06.1", "R06.2", "R09.0", "R17", "R21", "R22", "R23", "R50",
    "R56", "R59", "R60", "R61", "R62",
];

impl Engine {
    /// Loads the data files from `data_dir`; errors name the missing or corrupt file
    /// and what to run to produce it.
    pub fn load(data_dir: &Path) -> Result<Engine, LoadError> {
        Ok(Engine {
            lex: Lexicon::load(data_dir)?,
            attrs: AttrIndex::new(),
        })
    }

    /// An engine from in-memory tables (the data files' decompressed contents), for tests
    /// and tools. Errors name the file the bad table stands for.
    pub fn from_tables(tables: Tables) -> Result<Engine, LoadError> {
        Ok(Engine {
            lex: Lexicon::build(tables, Path::new("<memory>"))?,
            attrs: AttrIndex::new(),
        })
    }

    /// Name and drug code system of this engine.
    pub fn info(&self) -> EngineInfo {
        EngineInfo {
            name: "telepipe-offline-nlp".to_string(),
            // RxNorm RXCUIs need an NLM licence download no registry package ships.
            drug_code_system: "DrugBank".to_string(),
        }
    }

    /// Entities in `text` with 0-based code-point offsets relative to `text`, sorted by
    /// (begin_offset, end_offset).
    pub fn analyze(&self, analysis: Analysis, text: &str) -> Vec<ClinicalEntity> {
        // Lines are analysed one at a time with reused buffers: sentences never cross a
        // line, and a long transcript then costs no large per-call allocations.
        let mut out = Vec::new();
        let mut toks = Tokens::default();
        let mut sc = Scratch::default();
        let mut mentions = Vec::new();
        let (mut char_off, mut byte_off) = (0u32, 0u32);
        for raw in text.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let skip = speaker::prefix_len(line, &self.lex);
            let skip_chars = line[..skip].chars().count() as u32;
            toks.toks.clear();
            toks.buf.clear();
            let rest_chars = toks.push_line(
                &line[skip..],
                char_off + skip_chars,
                byte_off + skip as u32,
                &mut sc,
            );
            mentions.clear();
            self.annotate(&toks, &mut mentions);
            out.extend(
                mentions
                    .iter()
                    .filter_map(|m| self.entity(analysis, text, &toks, m)),
            );
            let cr = u32::from(raw.len() != line.len());
            char_off += skip_chars + rest_chars + cr + 1;
            byte_off += raw.len() as u32 + 1;
        }
        out.sort_by(|a, b| {
            (a.begin_offset, a.end_offset, &a.category, &a.kind).cmp(&(
                b.begin_offset,
                b.end_offset,
                &b.category,
                &b.kind,
            ))
        });
        out
    }

    /// Every mention in `toks` (one line) with its context categories and attributes.
    fn annotate(&self, toks: &Tokens, mentions: &mut Vec<Mention>) {
        let n = toks.toks.len();
        let mut taken = vec![false; n];
        let mut s = 0;
        while s < n {
            let mut e = s + 1;
            while e < n && !toks.toks[e].sentence_start {
                e += 1;
            }
            let first = mentions.len();
            self.match_sentence(toks, s, e, mentions);
            // Attributes may not overlap conditions or drugs; anatomy inside one ("by
            // mouth") yields to the attribute below.
            for m in &mentions[first..] {
                if matches!(m.kind, Kind::Condition(_) | Kind::Drug(_)) {
                    taken[m.start..m.end].iter_mut().for_each(|t| *t = true);
                }
            }
            let trig = context::triggers(&self.lex, toks, s, e);
            for m in &mut mentions[first..] {
                if matches!(m.kind, Kind::Condition(_) | Kind::Drug(_)) {
                    m.cats = context::categories(&trig, m.start, m.end);
                }
            }
            let drug_spans: Vec<(usize, usize, usize)> = mentions[first..]
                .iter()
                .enumerate()
                .filter(|(_, m)| matches!(m.kind, Kind::Drug(_)))
                .map(|(k, m)| (first + k, m.start, m.end))
                .collect();
            if !drug_spans.is_empty() {
                let spans: Vec<(usize, usize)> = drug_spans.iter().map(|d| (d.1, d.2)).collect();
                let found = attributes::find(&self.attrs, toks, s, e, &taken);
                for a in &found {
                    if let Some(k) = attributes::owner(a, &spans, toks) {
                        mentions[drug_spans[k].0].attrs.push(*a);
                    }
                }
                let mut k = first;
                while k < mentions.len() {
                    let m = &mentions[k];
                    let minor = matches!(m.kind, Kind::Anatomy | Kind::Test | Kind::Procedure);
                    if minor && found.iter().any(|a| a.start < m.end && m.start < a.end) {
                        mentions.remove(k);
                    } else {
                        k += 1;
                    }
                }
            }
            s = e;
        }
    }

    /// Leftmost-longest phrase matches in tokens `[s, e)`.
    fn match_sentence(&self, toks: &Tokens, s: usize, e: usize, out: &mut Vec<Mention>) {
        let lex = &self.lex;
        let accept = |slot: lexicon::Slot, span: &[tokenize::Token], alt: bool| {
            slot.flags & TERM == 0 || lex.term_is(slot.val, toks, span, alt)
        };
        let mut i = s;
        while i < e {
            let Some(f) = longest_match(&lex.terms, toks, i, e, false, accept) else {
                i += 1;
                continue;
            };
            let (mut start, mut end) = (i, f.end);
            let kind = if f.slot.flags & TERM != 0 {
                let line = lex.term_line(f.slot.val);
                if let Some((b, a)) = line.trim.split_once(',') {
                    let b: usize = b.parse().unwrap_or(0);
                    let a: usize = a.parse().unwrap_or(0);
                    if start + b < end.saturating_sub(a) {
                        start += b;
                        end -= a;
                    }
                }
                if !line.conds.is_empty() {
                    Some(Kind::Condition(f.slot.val))
                } else if !line.drug.is_empty() {
                    Some(Kind::Drug(f.slot.val))
                } else {
                    None
                }
            } else if f.slot.flags & TEST != 0 {
                Some(Kind::Test)
            } else if f.slot.flags & PROCEDURE != 0 {
                Some(Kind::Procedure)
            } else if f.slot.flags & ANATOMY != 0 {
                Some(Kind::Anatomy)
            } else {
                None
            };
            if let Some(kind) = kind {
                out.push(Mention {
                    start,
                    end,
                    kind,
                    cats: Vec::new(),
                    attrs: Vec::new(),
                });
            }
            i = f.end;
        }
    }

    fn entity(
        &self,
        analysis: Analysis,
        text: &str,
        toks: &Tokens,
        m: &Mention,
    ) -> Option<ClinicalEntity> {
        let (category, kind, score, traits, attributes, concepts) = match (analysis, m.kind) {
            (Analysis::Entities | Analysis::Icd10Cm, Kind::Condition(off)) => {
                // DetectEntitiesV2 shows no concepts: only the best one is needed (for
                // the score and the sign/symptom/diagnosis trait).
                let limit = if analysis == Analysis::Icd10Cm { 5 } else { 1 };
                let concepts = self.conditions(off, limit);
                let top = concepts.first()?;
                let mut traits = context_traits(&m.cats);
                traits.push(EntityTrait {
                    name: condition_trait(&top.code).to_string(),
                    score: 0.8,
                });
                let score = top.score;
                let concepts = if analysis == Analysis::Icd10Cm {
                    concepts
                } else {
                    Vec::new()
                };
                (
                    "MEDICAL_CONDITION",
                    "DX_NAME",
                    score,
                    traits,
                    Vec::new(),
                    concepts,
                )
            }
            (Analysis::Entities | Analysis::Drugs, Kind::Drug(off)) => {
                let line = self.lex.term_line(off);
                let (idx, flag) = line.drug.split_once(':')?;
                let idx: usize = idx.parse().ok()?;
                let (name, ids) = self.lex.drug(idx)?;
                let kind = if flag == "B" {
                    "BRAND_NAME"
                } else {
                    "GENERIC_NAME"
                };
                let concepts = if analysis == Analysis::Drugs {
                    ids.split(' ')
                        .filter(|s| !s.is_empty())
                        .take(5)
                        .enumerate()
                        .map(|(k, id)| Concept {
                            code: id.to_string(),
                            description: name.to_string(),
                            score: 0.95 - 0.05 * k as f32,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let attributes = m
                    .attrs
                    .iter()
                    .map(|a| {
                        let (b, e, t) = span(text, toks, a.start, a.end);
                        EntityAttribute {
                            kind: a.kind.name().to_string(),
                            category: Some("MEDICATION".to_string()),
                            text: t,
                            score: 0.9,
                            relationship_score: Some(0.9),
                            relationship_type: Some(a.kind.name().to_string()),
                            begin_offset: b,
                            end_offset: e,
                            traits: Vec::new(),
                        }
                    })
                    .collect();
                (
                    "MEDICATION",
                    kind,
                    0.95,
                    context_traits(&m.cats),
                    attributes,
                    concepts,
                )
            }
            (Analysis::Entities, Kind::Anatomy) => (
                "ANATOMY",
                "SYSTEM_ORGAN_SITE",
                0.8,
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ),
            (Analysis::Entities, Kind::Test) => (
                "TEST_TREATMENT_PROCEDURE",
                "TEST_NAME",
                0.8,
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ),
            (Analysis::Entities, Kind::Procedure) => (
                "TEST_TREATMENT_PROCEDURE",
                "PROCEDURE_NAME",
                0.8,
                Vec::new(),
                Vec::new(),
                Vec::new(),
            ),
            _ => return None,
        };
        let (begin_offset, end_offset, text) = span(text, toks, m.start, m.end);
        Some(ClinicalEntity {
            id: String::new(),
            category: category.to_string(),
            kind: kind.to_string(),
            text,
            score,
            begin_offset,
            end_offset,
            speaker: None,
            role: None,
            start_ms: None,
            end_ms: None,
            turn: None,
            traits,
            attributes,
            concepts,
        })
    }

    /// ICD-10-CM concepts of a condition term, best first, at most 5.
    fn conditions(&self, off: u32, limit: usize) -> Vec<Concept> {
        let line = self.lex.term_line(off);
        line.conds
            .split(',')
            .filter_map(|p| {
                let (idx, score) = p.split_once(':')?;
                let (code, desc) = self.lex.code(idx.parse().ok()?)?;
                Some(Concept {
                    code: code.to_string(),
                    description: desc.to_string(),
                    score: score.parse().ok()?,
                })
            })
            .take(limit)
            .collect()
    }
}

fn context_traits(cats: &[Cat]) -> Vec<EntityTrait> {
    let order = [
        Cat::Negated,
        Cat::Historical,
        Cat::Family,
        Cat::Hypothetical,
        Cat::Possible,
    ];
    order
        .iter()
        .filter(|c| cats.contains(c))
        .filter_map(|c| trait_name(*c))
        .map(|name| EntityTrait {
            name: name.to_string(),
            score: 0.85,
        })
        .collect()
}

fn condition_trait(code: &str) -> &'static str {
    if !code.starts_with('R') {
        "DIAGNOSIS"
    } else if SIGN_PREFIXES.iter().any(|p| code.starts_with(p)) {
        "SIGN"
    } else {
        "SYMPTOM"
    }
}

/// Code-point offsets and text of tokens `[s, e)`.
fn span(text: &str, toks: &Tokens, s: usize, e: usize) -> (u32, u32, String) {
    let (a, b) = (&toks.toks[s], &toks.toks[e - 1]);
    (
        a.start,
        b.end,
        text[a.bstart as usize..b.bend as usize].to_string(),
    )
}

#[cfg(test)]
mod tests;
