//! Evaluation of telepipe-nlp against an annotated utterance set (eval/*.jsonl).
//!
//! `cargo run -p telepipe-nlp --release --bin nlp-eval -- --data DIR --set eval/heldout.jsonl [--verbose]`
//!
//! A predicted entity matches a gold one when the category is the same and the spans
//! overlap (one-to-one, in text order). Prints precision/recall/F1 per category, then
//! on matched entities: accuracy of negation, of history, of family, the ICD-10-CM
//! top-1 / top-5 agreement (InferICD10CM) and the dosage/frequency agreement.
//!
//! `nlp-eval --data DIR --text "..."` instead prints the three analyses of one text
//! as JSON, for looking at what the engine does with a phrase.

use serde::Deserialize;
use std::path::PathBuf;
use telepipe_events::results::ClinicalEntity;
use telepipe_nlp::{Analysis, Engine};

#[derive(Deserialize)]
struct Utterance {
    id: String,
    text: String,
    entities: Vec<Gold>,
}

#[derive(Deserialize)]
struct Gold {
    text: String,
    category: String,
    #[serde(default)]
    negated: bool,
    #[serde(default)]
    historical: bool,
    #[serde(default)]
    family: bool,
    icd10: Option<String>,
    dosage: Option<String>,
    frequency: Option<String>,
}

#[derive(Default)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

#[derive(Default)]
struct Acc {
    right: usize,
    total: usize,
}

impl Acc {
    fn add(&mut self, ok: bool) {
        self.total += 1;
        self.right += usize::from(ok);
    }
    fn show(&self) -> String {
        if self.total == 0 {
            return "n/a".to_string();
        }
        format!(
            "{:.3} ({}/{})",
            self.right as f64 / self.total as f64,
            self.right,
            self.total
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Char span of the `nth` occurrence of `needle` in `hay` (case-insensitive).
fn find_span(hay: &str, needle: &str, nth: usize) -> Option<(u32, u32)> {
    let h: Vec<char> = hay.chars().flat_map(char::to_lowercase).collect();
    let n: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    if h.len() != hay.chars().count() || n.is_empty() {
        return None; // lowercasing changed lengths; not expected in the eval sets
    }
    (0..=h.len().saturating_sub(n.len()))
        .filter(|&i| h[i..i + n.len()] == n[..])
        .nth(nth)
        .map(|i| (i as u32, (i + n.len()) as u32))
}

fn has(e: &ClinicalEntity, name: &str) -> bool {
    e.traits.iter().any(|t| t.name == name)
}

fn attr_ok(e: &ClinicalEntity, kind: &str, want: &str) -> bool {
    e.attributes
        .iter()
        .any(|a| a.kind == kind && a.text.eq_ignore_ascii_case(want))
}

fn main() {
    let mut data: Option<PathBuf> = None;
    let mut set: Option<PathBuf> = None;
    let mut text: Option<String> = None;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().map(PathBuf::from),
            "--set" => set = args.next().map(PathBuf::from),
            "--text" => text = args.next(),
            "--verbose" | "-v" => verbose = true,
            _ => {
                eprintln!("usage: nlp-eval --data DIR --set FILE.jsonl [--verbose]");
                std::process::exit(2);
            }
        }
    }
    let usage = "usage: nlp-eval --data DIR (--set FILE.jsonl [--verbose] | --text TEXT)";
    let Some(data) = data else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let engine = Engine::load(&data).unwrap_or_else(|e| {
        eprintln!("nlp-eval: {e}");
        std::process::exit(1)
    });
    if let Some(text) = text {
        for a in [Analysis::Entities, Analysis::Icd10Cm, Analysis::Drugs] {
            let ents = engine.analyze(a, &text);
            println!(
                "{a:?}: {}",
                serde_json::to_string_pretty(&ents).unwrap_or_default()
            );
        }
        return;
    }
    let Some(set) = set else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let body = std::fs::read_to_string(&set).unwrap_or_else(|e| {
        eprintln!("nlp-eval: cannot read {}: {e}", set.display());
        std::process::exit(1)
    });

    let cats = ["MEDICAL_CONDITION", "MEDICATION"];
    let mut counts: Vec<Counts> = cats.iter().map(|_| Counts::default()).collect();
    let (mut neg, mut hist, mut fam) = (Acc::default(), Acc::default(), Acc::default());
    let (mut icd1, mut icd5, mut dose, mut freq) = (
        Acc::default(),
        Acc::default(),
        Acc::default(),
        Acc::default(),
    );
    let mut n_utt = 0;

    for (ln, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let u: Utterance = serde_json::from_str(line).unwrap_or_else(|e| {
            eprintln!("nlp-eval: {}:{}: {e}", set.display(), ln + 1);
            std::process::exit(1)
        });
        n_utt += 1;
        let ents = engine.analyze(Analysis::Entities, &u.text);
        let icd = engine.analyze(Analysis::Icd10Cm, &u.text);

        // Gold spans: the k-th gold entity with the same text takes the k-th occurrence.
        let mut gold_spans = Vec::new();
        for (k, g) in u.entities.iter().enumerate() {
            let nth = u.entities[..k]
                .iter()
                .filter(|o| o.text.eq_ignore_ascii_case(&g.text))
                .count();
            let span = find_span(&u.text, &g.text, nth).unwrap_or_else(|| {
                eprintln!("nlp-eval: {}: {:?} not found in the text", u.id, g.text);
                std::process::exit(1)
            });
            gold_spans.push(span);
        }

        for (ci, cat) in cats.iter().enumerate() {
            let preds: Vec<&ClinicalEntity> = ents.iter().filter(|e| e.category == *cat).collect();
            let mut used = vec![false; preds.len()];
            for (g, span) in u.entities.iter().zip(&gold_spans) {
                if g.category != *cat {
                    continue;
                }
                let hit = preds
                    .iter()
                    .enumerate()
                    .find(|(k, p)| !used[*k] && p.begin_offset < span.1 && span.0 < p.end_offset);
                let Some((k, p)) = hit else {
                    counts[ci].fn_ += 1;
                    if verbose {
                        println!("  FN {} {:<18} {:?}", u.id, cat, g.text);
                    }
                    continue;
                };
                used[k] = true;
                counts[ci].tp += 1;
                let checks = [
                    (&mut neg, g.negated, has(p, "NEGATION"), "negation"),
                    (&mut hist, g.historical, has(p, "PAST_HISTORY"), "history"),
                    (&mut fam, g.family, has(p, "PERTAINS_TO_FAMILY"), "family"),
                ];
                for (acc, want, got, what) in checks {
                    acc.add(want == got);
                    if verbose && want != got {
                        println!(
                            "  {what:<8} {} {:?}: gold {want}, engine {got}",
                            u.id, g.text
                        );
                    }
                }
                if let Some(code) = &g.icd10 {
                    let m = icd
                        .iter()
                        .find(|e| e.begin_offset == p.begin_offset && e.end_offset == p.end_offset);
                    let codes: Vec<&str> = m
                        .map(|e| e.concepts.iter().map(|c| c.code.as_str()).collect())
                        .unwrap_or_default();
                    icd1.add(codes.first() == Some(&code.as_str()));
                    icd5.add(codes.contains(&code.as_str()));
                    if verbose && codes.first() != Some(&code.as_str()) {
                        println!(
                            "  icd10    {} {:?}: gold {code}, engine {codes:?}",
                            u.id, g.text
                        );
                    }
                }
                for (acc, want, kind) in [
                    (&mut dose, &g.dosage, "DOSAGE"),
                    (&mut freq, &g.frequency, "FREQUENCY"),
                ] {
                    if let Some(w) = want {
                        let ok = attr_ok(p, kind, w);
                        acc.add(ok);
                        if verbose && !ok {
                            let got: Vec<_> =
                                p.attributes.iter().map(|a| (&a.kind, &a.text)).collect();
                            println!(
                                "  {kind:<9}{} {:?}: gold {w:?}, engine {got:?}",
                                u.id, g.text
                            );
                        }
                    }
                }
            }
            for (k, p) in preds.iter().enumerate() {
                if !used[k] {
                    counts[ci].fp += 1;
                    if verbose {
                        println!("  FP {} {:<18} {:?}", u.id, cat, p.text);
                    }
                }
            }
        }
    }

    println!("set: {} ({n_utt} utterances)", set.display());
    println!(
        "{:<18} {:>9} {:>9} {:>9}   tp  fp  fn",
        "category", "precision", "recall", "f1"
    );
    for (ci, cat) in cats.iter().enumerate() {
        let c = &counts[ci];
        let p = ratio(c.tp, c.tp + c.fp);
        let r = ratio(c.tp, c.tp + c.fn_);
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        println!(
            "{cat:<18} {p:>9.3} {r:>9.3} {f:>9.3}  {:>3} {:>3} {:>3}",
            c.tp, c.fp, c.fn_
        );
    }
    println!("on matched entities:");
    println!("  negation accuracy        {}", neg.show());
    println!("  history accuracy         {}", hist.show());
    println!("  family accuracy          {}", fam.show());
    println!("  ICD-10-CM top-1          {}", icd1.show());
    println!("  ICD-10-CM in top-5       {}", icd5.show());
    println!("  dosage exact             {}", dose.show());
    println!("  frequency exact          {}", freq.show());
}
