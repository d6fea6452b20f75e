//! Medication attributes: dosage, frequency, route, form and duration phrases, and
//! which drug in the sentence each one belongs to.
//!
//! The phrase table is small and is logic more than data, so it lives here. `#` in a
//! phrase matches any number token (digits, "1,000", "2.5", or a number word), and
//! `#mg` a number with the unit glued on ("500mg"); see `tokenize::attr_key`.

use crate::lexicon::{longest_match, PhraseMap, TERM};
use crate::tokenize::Tokens;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrKind {
    Dosage,
    Frequency,
    Route,
    Form,
    Duration,
}

impl AttrKind {
    pub fn name(self) -> &'static str {
        match self {
            AttrKind::Dosage => "DOSAGE",
            AttrKind::Frequency => "FREQUENCY",
            AttrKind::Route => "ROUTE_OR_MODE",
            AttrKind::Form => "FORM",
            AttrKind::Duration => "DURATION",
        }
    }
}

const UNITS: &[&str] = &[
    "mg",
    "milligram",
    "milligrams",
    "mcg",
    "microgram",
    "micrograms",
    "g",
    "gram",
    "grams",
    "ml",
    "milliliter",
    "milliliters",
    "millilitre",
    "millilitres",
    "cc",
    "unit",
    "units",
    "iu",
    "tablet",
    "tablets",
    "tab",
    "tabs",
    "pill",
    "pills",
    "capsule",
    "capsules",
    "puff",
    "puffs",
    "drop",
    "drops",
    "teaspoon",
    "teaspoons",
    "tablespoon",
    "tablespoons",
    "spray",
    "sprays",
    "patch",
    "patches",
    "injection",
    "injections",
    "shot",
    "shots",
    "dose",
    "doses",
    "sachet",
    "sachets",
    "percent",
];

const DOSAGE: &[&str] = &[
    "#mg",
    "#mcg",
    "#g",
    "#ml",
    "#cc",
    "#iu",
    "#units",
    "#unit",
    "a tablet",
    "a pill",
    "a capsule",
    "a puff",
    "a patch",
    "a shot",
    "half a tablet",
    "half a pill",
    "a half tablet",
    "# and a half tablets",
    "# and a half pills",
];

const FREQUENCY: &[&str] = &[
    "once a day",
    "once daily",
    "once per day",
    "twice a day",
    "twice daily",
    "twice per day",
    "# times a day",
    "# times daily",
    "# times per day",
    "# times a week",
    "# times per week",
    "once a week",
    "twice a week",
    "once weekly",
    "once a month",
    "once monthly",
    "every day",
    "daily",
    "every morning",
    "every night",
    "every evening",
    "each morning",
    "each night",
    "every # hours",
    "every # to # hours",
    "every # or # hours",
    "every # days",
    "every other day",
    "every week",
    "at night",
    "at bedtime",
    "before bed",
    "before bedtime",
    "in the morning",
    "in the evening",
    "in the mornings",
    "in the evenings",
    "nightly",
    "weekly",
    "monthly",
    "morning and night",
    "morning and evening",
    "with meals",
    "before meals",
    "after meals",
    "with breakfast",
    "with dinner",
    "with food",
    "bid",
    "tid",
    "qid",
    "qd",
    "qhs",
    "prn",
    "as needed",
    "when needed",
    "as required",
    "a day",
    "per day",
    "a week",
    "per week",
    "a night",
];

const ROUTE: &[&str] = &[
    "by mouth",
    "orally",
    "oral",
    "po",
    "iv",
    "intravenous",
    "intravenously",
    "subcutaneous",
    "subcutaneously",
    "under the skin",
    "under the tongue",
    "sublingual",
    "sublingually",
    "topical",
    "topically",
    "on the skin",
    "inhaled",
    "inhale",
    "inhaler",
    "nebulizer",
    "injected",
    "inject",
    "intramuscular",
    "intramuscularly",
    "rectally",
    "rectal",
    "nasal",
    "nasally",
    "in each eye",
    "in each nostril",
    "in the eye",
    "chewable",
    "transdermal",
];

const FORM: &[&str] = &[
    "tablet",
    "tablets",
    "pill",
    "pills",
    "capsule",
    "capsules",
    "patch",
    "cream",
    "ointment",
    "syrup",
    "liquid",
    "gel",
    "suppository",
    "lozenge",
    "pen",
    "drops",
    "spray",
    "solution",
    "injection",
    "extended release",
    "xr",
];

const DURATION: &[&str] = &[
    "for # days",
    "for # day",
    "for # weeks",
    "for # week",
    "for # months",
    "for # month",
    "for a week",
    "for a month",
    "for a day",
    "for the next # days",
    "for the next # weeks",
    "for # more days",
    "for # more weeks",
    "for another # days",
    "for ten days",
];

/// The attribute phrase index, built once per engine (a few hundred entries).
pub(crate) struct AttrIndex {
    map: PhraseMap,
    kinds: Vec<AttrKind>,
}

impl AttrIndex {
    pub fn new() -> AttrIndex {
        let mut map = PhraseMap::default();
        let mut kinds = Vec::new();
        let mut add = |key: &str, kind: AttrKind| {
            map.insert(key, kinds.len() as u32, TERM);
            kinds.push(kind);
        };
        for u in UNITS {
            add(&format!("# {u}"), AttrKind::Dosage);
            add(&format!("# to # {u}"), AttrKind::Dosage);
            add(&format!("# or # {u}"), AttrKind::Dosage);
        }
        for (list, kind) in [
            (DOSAGE, AttrKind::Dosage),
            (FREQUENCY, AttrKind::Frequency),
            (ROUTE, AttrKind::Route),
            (FORM, AttrKind::Form),
            (DURATION, AttrKind::Duration),
        ] {
            for p in list {
                add(p, kind);
            }
        }
        AttrIndex { map, kinds }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr {
    pub kind: AttrKind,
    pub start: usize,
    pub end: usize,
}

/// Attribute phrases in tokens `[s, e)`, leftmost-longest, skipping `taken` tokens
/// (those inside entities).
pub(crate) fn find(
    idx: &AttrIndex,
    toks: &Tokens,
    s: usize,
    e: usize,
    taken: &[bool],
) -> Vec<Attr> {
    let mut out = Vec::new();
    let mut i = s;
    while i < e {
        if taken[i] {
            i += 1;
            continue;
        }
        match longest_match(&idx.map, toks, i, e, true, |_, _, _| true) {
            Some(f) if !taken[i..f.end].iter().any(|t| *t) => {
                out.push(Attr {
                    kind: idx.kinds[f.slot.val as usize],
                    start: i,
                    end: f.end,
                });
                i = f.end;
            }
            _ => i += 1,
        }
    }
    out
}

/// Farthest an attribute may be from its drug, in tokens.
const MAX_DISTANCE: usize = 10;

/// Index into `drugs` (token spans, in order) of the drug `a` belongs to: a drug
/// right after it ("500 mg of metformin", nothing or "of" between), else the nearest
/// drug before it ("metformin 500 mg twice a day"), else the nearest after.
pub(crate) fn owner(a: &Attr, drugs: &[(usize, usize)], toks: &Tokens) -> Option<usize> {
    let before = drugs
        .iter()
        .enumerate()
        .filter(|(_, d)| d.1 <= a.start && a.start - d.1 <= MAX_DISTANCE)
        .max_by_key(|(_, d)| d.1)
        .map(|(k, _)| k);
    let after = drugs
        .iter()
        .enumerate()
        .filter(|(_, d)| d.0 >= a.end && d.0 - a.end <= MAX_DISTANCE)
        .min_by_key(|(_, d)| d.0)
        .map(|(k, d)| (k, d.0 - a.end));
    match (before, after) {
        (_, Some((k, 0))) => Some(k),
        (_, Some((k, 1))) if toks.norm(&toks.toks[a.end]) == "of" => Some(k),
        (Some(k), _) => Some(k),
        (None, Some((k, _))) => Some(k),
        (None, None) => None,
    }
}
