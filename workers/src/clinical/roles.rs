//! Which speaker label is the clinician (and, when that settles it, the patient), read
//! from what each speaker says. Pure: turns in, roles out; no I/O, no engine.
//!
//! Every sentence is scored for clinician cues (questions, second person, instructions,
//! ordering and prescribing language) and patient cues (first-person experience: "I
//! have", "I've been", "my …", "it hurts"). A speaker's evidence is its net score
//! (clinician minus patient cues) per turn, so a talkative speaker does not win by volume
//! alone. A role is given only when one speaker clearly leads (see [`MARGIN_PER_TURN`],
//! [`MIN_TURNS`], [`MIN_CLINICIAN_CUES`]); otherwise none is: a wrong role is worse than
//! none, since readers take `clinician` to mean "said by the clinician".

use std::collections::BTreeMap;
use telepipe_events::results::SpeakerRole;

/// A speaker needs this many turns before a role is given to it: one turn is a single
/// utterance ("Any questions?"), too little to say who someone is.
pub const MIN_TURNS: usize = 2;

/// The clinician must show at least this many clinician cues in all: fewer is what anyone
/// says in passing ("how are you?", "thank you, see you").
pub const MIN_CLINICIAN_CUES: u32 = 3;

/// The patient (when there are more than two speakers) must show this many patient cues.
pub const MIN_PATIENT_CUES: u32 = 2;

/// How far, in net cues per turn, the leader must be ahead of every other speaker (and of
/// zero). Half a cue per turn means it asks, instructs or prescribes in at least every
/// other turn more than anyone else does; closer than that is a tie and gives no roles.
pub const MARGIN_PER_TURN: f64 = 0.5;

/// Interrogative openings of a sentence: a question even when the transcript lost its
/// "?" (Transcribe and Whisper often punctuate questions with "."). Clinicians ask;
/// patients mostly answer.
const QUESTION_OPENERS: &[&str] = &[
    "how",
    "what",
    "when",
    "where",
    "which",
    "why",
    "any",
    "anything",
    "do you",
    "does it",
    "does your",
    "did you",
    "did it",
    "are you",
    "have you",
    "has it",
    "has your",
    "is there",
    "is it",
    "can you",
    "could you",
    "would you",
    "tell me",
];

/// Imperative openings of a sentence: instructions ("Take it with food", "Stop the
/// ibuprofen"). Only at the start, since "I take", "it started" are the patient's words.
const IMPERATIVE_OPENERS: &[&str] = &[
    "take",
    "please",
    "let's",
    "let us",
    "continue",
    "stop",
    "start",
    "keep",
    "try",
    "avoid",
    "make sure",
    "come back",
    "call",
    "hold",
];

/// Clinician language anywhere in a sentence: plans, orders, prescribing. Where phrases
/// overlap ("going to prescribe", "prescribe") the longest counts, once ([`count_phrases`]).
const CLINICIAN_PHRASES: &[&str] = &[
    "going to prescribe",
    "going to order",
    "going to start",
    "i'll",
    "i will",
    "we will",
    "we'll",
    "we're going to",
    "let me",
    "stop taking",
    "increase the dose",
    "decrease the dose",
    "increase your",
    "decrease your",
    "follow up",
    "follow-up",
    "recommend",
    "prescribe",
    "prescribing",
    "prescription",
    "refill",
    "schedule",
    "i want you to",
    "i'd like you to",
    "you should",
    "blood work",
    "milligrams",
];

/// First-person experience: symptoms, history, own medication (counted as above).
const PATIENT_PHRASES: &[&str] = &[
    "i have",
    "i've been",
    "i've had",
    "i've got",
    "i had",
    "i feel",
    "i'm feeling",
    "i felt",
    "i take",
    "i'm taking",
    "i took",
    "hurts",
    "it started",
    "since yesterday",
    "since last",
    "i ran out",
    "i get",
    "i noticed",
    "i can't",
    "my",
];

/// Courtesies with "you" in them that say nothing about who speaks.
const NEUTRAL_YOU: &[&str] = &["thank you", "you know", "see you", "you too"];

/// The role of each speaker label the conversation makes clear; labels left out are
/// unknown. `turns` are (raw label, turn text) in conversation order.
///
/// - Fewer than two speakers: no roles (nothing to tell apart).
/// - The clinician is the speaker with the highest net clinician score per turn, when it
///   has [`MIN_TURNS`] turns, [`MIN_CLINICIAN_CUES`] cues, and leads every other speaker
///   (and zero) by [`MARGIN_PER_TURN`]. Otherwise: no roles.
/// - Two speakers and a clinician: the other is the patient.
/// - More speakers: the patient is the remaining speaker who clearly leads the others on
///   patient cues by the same rule; if none does, only the clinician has a role.
pub fn speaker_roles<'a, I>(turns: I) -> BTreeMap<String, SpeakerRole>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut scores: BTreeMap<&str, Score> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (label, text) in turns {
        let score = scores.entry(label).or_insert_with(|| {
            order.push(label);
            Score::default()
        });
        score.add_turn(text);
    }
    let mut roles = BTreeMap::new();
    if order.len() < 2 {
        return roles;
    }
    let ranked = |key: fn(&Score) -> f64, among: &[&'a str]| -> Option<&'a str> {
        let mut by_rate: Vec<(&str, f64)> = among.iter().map(|l| (*l, key(&scores[l]))).collect();
        by_rate.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (leader, best) = by_rate[0];
        let runner_up = by_rate.get(1).map_or(0.0, |(_, rate)| *rate).max(0.0);
        (best - runner_up >= MARGIN_PER_TURN && scores[leader].turns >= MIN_TURNS).then_some(leader)
    };
    let Some(clinician) = ranked(Score::clinician_rate, &order)
        .filter(|label| scores[label].clinician >= MIN_CLINICIAN_CUES)
    else {
        return roles;
    };
    roles.insert(clinician.to_owned(), SpeakerRole::Clinician);
    let others: Vec<&str> = order.into_iter().filter(|l| *l != clinician).collect();
    let patient = match others[..] {
        [only] => Some(only),
        _ => ranked(Score::patient_rate, &others)
            .filter(|label| scores[label].patient >= MIN_PATIENT_CUES),
    };
    if let Some(patient) = patient {
        roles.insert(patient.to_owned(), SpeakerRole::Patient);
    }
    roles
}

/// One speaker's evidence so far.
#[derive(Debug, Default, Clone, Copy)]
struct Score {
    turns: usize,
    clinician: u32,
    patient: u32,
}

impl Score {
    fn add_turn(&mut self, text: &str) {
        self.turns += 1;
        for sentence in sentences(text) {
            let (clinician, patient) = sentence_cues(&sentence);
            self.clinician += clinician;
            self.patient += patient;
        }
    }

    fn clinician_rate(&self) -> f64 {
        (f64::from(self.clinician) - f64::from(self.patient)) / self.turns.max(1) as f64
    }

    fn patient_rate(&self) -> f64 {
        -self.clinician_rate()
    }
}

/// A sentence as lower-case words without punctuation, and whether it ended in "?".
struct Sentence {
    words: Vec<String>,
    question_mark: bool,
}

/// Sentences of a turn: split after words ending in ".", "?" or "!" (Transcribe attaches
/// punctuation to the word before it).
fn sentences(text: &str) -> Vec<Sentence> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    for raw in text.split_whitespace() {
        let raw = raw.replace('\u{2019}', "'").to_lowercase();
        let end = raw.trim_end_matches(|c: char| !c.is_alphanumeric());
        let punct = &raw[end.len()..];
        let word = end.trim_start_matches(|c: char| !c.is_alphanumeric());
        if !word.is_empty() {
            words.push(word.to_owned());
        }
        if punct.contains(['.', '?', '!']) && !words.is_empty() {
            out.push(Sentence {
                words: std::mem::take(&mut words),
                question_mark: punct.contains('?'),
            });
        }
    }
    if !words.is_empty() {
        out.push(Sentence {
            words,
            question_mark: false,
        });
    }
    out
}

/// Words that may precede the real opening of a sentence ("Okay, so take one daily").
const FILLERS: &[&str] = &[
    "okay", "ok", "so", "and", "alright", "right", "now", "well", "um", "uh", "then", "also",
];

/// (clinician cues, patient cues) of one sentence.
fn sentence_cues(sentence: &Sentence) -> (u32, u32) {
    let words: Vec<&str> = sentence.words.iter().map(String::as_str).collect();
    let start = words
        .iter()
        .position(|w| !FILLERS.contains(w))
        .unwrap_or(words.len());
    let opening = &words[start..];
    let opens_with = |table: &[&str]| table.iter().any(|p| starts_with_phrase(opening, p));
    let mut clinician = 0;
    if sentence.question_mark || opens_with(QUESTION_OPENERS) {
        clinician += 1;
    }
    if opens_with(IMPERATIVE_OPENERS) {
        clinician += 1;
    }
    clinician += count_phrases(&words, CLINICIAN_PHRASES);
    // Second person once per sentence, courtesies aside.
    let neutral = count_phrases(&words, NEUTRAL_YOU);
    let you = words
        .iter()
        .filter(|w| matches!(**w, "you" | "your" | "you're" | "you've" | "yourself"))
        .count() as u32;
    if you > neutral {
        clinician += 1;
    }
    let patient = count_phrases(&words, PATIENT_PHRASES);
    (clinician, patient)
}

fn starts_with_phrase(words: &[&str], phrase: &str) -> bool {
    phrase
        .split(' ')
        .enumerate()
        .all(|(i, p)| words.get(i) == Some(&p))
}

/// Whole-word occurrences of `table`'s phrases in `words`, left to right: where several
/// start at a word the longest is counted and its words are not read again, so "going to
/// prescribe" is one cue, not two.
fn count_phrases(words: &[&str], table: &[&str]) -> u32 {
    let mut count = 0;
    let mut at = 0;
    while at < words.len() {
        let longest = table
            .iter()
            .filter(|p| starts_with_phrase(&words[at..], p))
            .map(|p| p.split(' ').count())
            .max();
        match longest {
            Some(length) => {
                count += 1;
                at += length;
            }
            None => at += 1,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use SpeakerRole::{Clinician, Patient};

    const DOCTOR: &[&str] = &[
        "Good morning. What brings you in today?",
        "How long have you had the chest pain? Any shortness of breath?",
        "Okay. I'm going to order an ECG and some blood work. Please keep taking the aspirin.",
        "We will start lisinopril ten milligrams daily. Follow up in two weeks.",
    ];
    const PATIENT: &[&str] = &[
        "I've been having chest pain since yesterday.",
        "It started after dinner. My left arm hurts too.",
        "Okay. I take aspirin every morning.",
        "Thank you.",
    ];

    fn dialogue<'a>(
        first: (&'a str, &'a [&'a str]),
        second: (&'a str, &'a [&'a str]),
    ) -> Vec<(&'a str, &'a str)> {
        first
            .1
            .iter()
            .zip(second.1)
            .flat_map(|(a, b)| [(first.0, *a), (second.0, *b)])
            .collect()
    }

    fn roles(turns: &[(&str, &str)]) -> Vec<(String, SpeakerRole)> {
        speaker_roles(turns.iter().copied()).into_iter().collect()
    }

    #[test]
    fn a_doctor_patient_visit_gives_both_roles_in_either_label_order() {
        let doctor_first = dialogue(("spk_0", DOCTOR), ("spk_1", PATIENT));
        assert_eq!(
            roles(&doctor_first),
            [
                ("spk_0".to_owned(), Clinician),
                ("spk_1".to_owned(), Patient)
            ]
        );
        let patient_first = dialogue(("spk_0", PATIENT), ("spk_1", DOCTOR));
        assert_eq!(
            roles(&patient_first),
            [
                ("spk_0".to_owned(), Patient),
                ("spk_1".to_owned(), Clinician)
            ]
        );
    }

    #[test]
    fn channel_labels_work_like_speaker_labels() {
        let turns = dialogue(("ch_1", DOCTOR), ("ch_0", PATIENT));
        assert_eq!(
            roles(&turns),
            [("ch_0".to_owned(), Patient), ("ch_1".to_owned(), Clinician)]
        );
    }

    #[test]
    fn a_monologue_has_no_roles() {
        let turns: Vec<(&str, &str)> = DOCTOR.iter().map(|t| ("spk_0", *t)).collect();
        assert!(roles(&turns).is_empty());
    }

    #[test]
    fn two_patients_without_clinician_cues_have_no_roles() {
        let other: &[&str] = &[
            "I have a sore knee since last week.",
            "My doctor said it was arthritis.",
            "I feel better in the mornings.",
            "I ran out of my cream on Monday.",
        ];
        let turns = dialogue(("spk_0", PATIENT), ("spk_1", other));
        assert!(roles(&turns).is_empty());
    }

    #[test]
    fn a_tie_has_no_roles() {
        let turns = dialogue(("spk_0", DOCTOR), ("spk_1", DOCTOR));
        assert!(roles(&turns).is_empty());
    }

    #[test]
    fn too_little_text_has_no_roles() {
        let turns = [("spk_0", "Any fever?"), ("spk_1", "No.")];
        assert!(roles(&turns).is_empty());
    }

    #[test]
    fn a_third_speaker_gets_a_role_only_when_clear() {
        let quiet: &[&str] = &["Hello.", "Yes.", "Okay.", "Bye."];
        let mut turns = dialogue(("spk_0", DOCTOR), ("spk_1", PATIENT));
        turns.extend(quiet.iter().map(|t| ("spk_2", *t)));
        assert_eq!(
            roles(&turns),
            [
                ("spk_0".to_owned(), Clinician),
                ("spk_1".to_owned(), Patient)
            ]
        );
        // Two speakers equally patient-like: only the clinician is clear.
        let mut turns = dialogue(("spk_0", DOCTOR), ("spk_1", PATIENT));
        turns.extend(PATIENT.iter().map(|t| ("spk_2", *t)));
        assert_eq!(roles(&turns), [("spk_0".to_owned(), Clinician)]);
    }

    #[test]
    fn cues_are_read_from_words_not_substrings() {
        // "Myself", "your" inside other words, and courtesies carry no cue.
        let sentence = &sentences("Thank you, mystery solved.")[0];
        assert_eq!(sentence_cues(sentence), (0, 0));
        let sentence = &sentences("so take it with food")[0];
        assert_eq!(sentence_cues(sentence), (1, 0));
        let sentence = &sentences("I take it with food.")[0];
        assert_eq!(sentence_cues(sentence), (0, 1));
        let split = sentences("How are you? Fine. really");
        assert_eq!(split.len(), 3);
        assert!(split[0].question_mark && !split[1].question_mark);
    }

    #[test]
    fn overlapping_phrases_count_once() {
        // "going to prescribe" holds "prescribe": one cue. "Prescribe" later is another.
        let sentence = &sentences("So the plan is going to prescribe it, then prescribe more.")[0];
        assert_eq!(sentence_cues(sentence), (2, 0));
        assert_eq!(
            count_phrases(&["i", "will", "i", "will"], CLINICIAN_PHRASES),
            2
        );
        assert_eq!(count_phrases(&["nothing", "here"], CLINICIAN_PHRASES), 0);
    }
}
