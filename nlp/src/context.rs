//! ConText: which entities a negation, uncertainty, hypothetical, history or family
//! cue applies to.
//!
//! Follows medspacy's algorithm (Harkema et al. 2009): a trigger's scope runs forward
//! or backward from it to the end of the sentence, cut short by a TERMINATE trigger or
//! another trigger of the same category, and here also by `MAX_SCOPE` tokens, since
//! speech runs on where notes would start a new sentence. Pseudo-triggers ("no
//! problem") take part in the longest-match scan only to shadow the cues inside them.

use crate::lexicon::{longest_match, Cat, Dir, Lexicon, Rule};
use crate::tokenize::Tokens;

/// Farthest a cue reaches, in tokens between the cue and the entity.
pub(crate) const MAX_SCOPE: usize = 8;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Trigger {
    pub start: usize,
    pub end: usize,
    pub rule: Rule,
}

/// Context cues in tokens `[s, e)` (one sentence), leftmost-longest.
pub(crate) fn triggers(lex: &Lexicon, toks: &Tokens, s: usize, e: usize) -> Vec<Trigger> {
    let mut out = Vec::new();
    let mut i = s;
    while i < e {
        let Some(f) = longest_match(&lex.context, toks, i, e, false, |_, _, alt| !alt) else {
            i += 1;
            continue;
        };
        // "No, it started last week": a bare "no" followed by punctuation answers a
        // question; it negates nothing after it.
        let bare_no =
            f.end == i + 1 && toks.norm(&toks.toks[i]) == "no" && toks.toks[i].punct_after;
        if !bare_no {
            for &rule in &lex.rules[f.slot.val as usize] {
                if rule.cat != Cat::Pseudo {
                    out.push(Trigger {
                        start: i,
                        end: f.end,
                        rule,
                    });
                }
            }
        }
        i = f.end;
    }
    out
}

/// Categories that apply to the entity on tokens `[ts, te)`.
pub(crate) fn categories(trigs: &[Trigger], ts: usize, te: usize) -> Vec<Cat> {
    let mut cats = Vec::new();
    for (k, tr) in trigs.iter().enumerate() {
        if matches!(tr.rule.dir, Dir::Terminate | Dir::None) || cats.contains(&tr.rule.cat) {
            continue;
        }
        if tr.start < te && ts < tr.end {
            continue; // the cue is part of the entity
        }
        let blocked = |a: usize, b: usize| {
            trigs
                .iter()
                .enumerate()
                .any(|(m, o)| m != k && o.rule.cat == tr.rule.cat && o.start >= a && o.end <= b)
        };
        let fwd = matches!(tr.rule.dir, Dir::Forward | Dir::Both)
            && tr.end <= ts
            && ts - tr.end <= MAX_SCOPE
            && !blocked(tr.end, ts);
        let bwd = matches!(tr.rule.dir, Dir::Backward | Dir::Both)
            && tr.start >= te
            && tr.start - te <= MAX_SCOPE
            && !blocked(te, tr.start);
        if fwd || bwd {
            cats.push(tr.rule.cat);
        }
    }
    cats
}
