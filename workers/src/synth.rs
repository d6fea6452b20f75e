//! Synthetic Transcribe Medical transcripts for tests and benchmarks: two speakers
//! alternating, clinical vocabulary sprinkled in, realistic item timing.

use telepipe_events::transcribe::format_ms_as_seconds;

const DOCTOR: &[&str] = &[
    "how long have you had the chest pain",
    "do you have any shortness of breath when you climb stairs",
    "i see you take metformin twice a day for your diabetes",
    "your blood pressure suggests hypertension so we will start lisinopril ten milligrams daily",
    "any fever or chills over the last week",
    "let us check your heart rhythm and order some blood work",
];
const PATIENT: &[&str] = &[
    "it started about three days ago after dinner",
    "no fever but i do get tired walking to the car",
    "yes i take aspirin in the morning and metformin at night",
    "sometimes i feel dizzy when i stand up quickly",
    "my father had hypertension and heart problems",
    "the pain gets worse when i breathe in deeply",
];

/// (start ms, end ms, speaker, word spans) of one speaker's segment.
type SynthSegment = (u64, u64, usize, Vec<(u64, u64)>);

/// How the synthetic transcript labels its speakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthLabels {
    Speakers,
    Channels,
    None,
}

/// A Transcribe Medical JSON document of about `words` words.
pub fn transcript(words: usize, labels: SynthLabels) -> String {
    let mut items = Vec::with_capacity(words + words / 8);
    let mut segments: Vec<SynthSegment> = Vec::new();
    let mut channel_items: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut full = String::new();
    let (mut clock, mut written, mut turn) = (0u64, 0usize, 0usize);
    while written < words {
        let speaker = turn % 2;
        let bank = if speaker == 0 { DOCTOR } else { PATIENT };
        let sentences = 1 + turn % 3;
        let mut segment = (clock, clock, speaker, Vec::new());
        for s in 0..sentences {
            let sentence = bank[(turn * 7 + s * 3) % bank.len()];
            for word in sentence.split(' ') {
                let (start, end) = (clock, clock + 180 + (word.len() as u64) * 20);
                clock = end + 40;
                let label = match labels {
                    SynthLabels::Speakers => format!(r#","speaker_label":"spk_{speaker}""#),
                    SynthLabels::Channels => format!(r#","channel_label":"ch_{speaker}""#),
                    SynthLabels::None => String::new(),
                };
                let item = format!(
                    r#"{{"start_time":"{}","end_time":"{}","alternatives":[{{"confidence":"0.9{}","content":"{word}"}}],"type":"pronunciation"{label}}}"#,
                    format_ms_as_seconds(start),
                    format_ms_as_seconds(end),
                    word.len() % 10
                );
                channel_items[speaker].push(item.clone());
                items.push(item);
                segment.3.push((start, end));
                segment.1 = end;
                if !full.is_empty() {
                    full.push(' ');
                }
                full.push_str(word);
                written += 1;
            }
            let punct = if turn % 4 == 1 && s == sentences - 1 {
                "?"
            } else {
                "."
            };
            let item = format!(
                r#"{{"alternatives":[{{"confidence":"0.0","content":"{punct}"}}],"type":"punctuation"}}"#
            );
            channel_items[speaker].push(item.clone());
            items.push(item);
            full.push_str(punct);
        }
        clock += 600;
        segments.push(segment);
        turn += 1;
    }
    let labels_json = match labels {
        SynthLabels::Speakers => {
            let segs: Vec<String> = segments
                .iter()
                .map(|(start, end, speaker, words)| {
                    let inner: Vec<String> = words
                        .iter()
                        .map(|(s, e)| {
                            format!(
                                r#"{{"start_time":"{}","end_time":"{}","speaker_label":"spk_{speaker}"}}"#,
                                format_ms_as_seconds(*s),
                                format_ms_as_seconds(*e)
                            )
                        })
                        .collect();
                    format!(
                        r#"{{"start_time":"{}","end_time":"{}","speaker_label":"spk_{speaker}","items":[{}]}}"#,
                        format_ms_as_seconds(*start),
                        format_ms_as_seconds(*end),
                        inner.join(",")
                    )
                })
                .collect();
            format!(
                r#","speaker_labels":{{"speakers":2,"segments":[{}]}}"#,
                segs.join(",")
            )
        }
        SynthLabels::Channels => format!(
            r#","channel_labels":{{"number_of_channels":2,"channels":[{{"channel_label":"ch_0","items":[{}]}},{{"channel_label":"ch_1","items":[{}]}}]}}"#,
            channel_items[0].join(","),
            channel_items[1].join(",")
        ),
        SynthLabels::None => String::new(),
    };
    format!(
        r#"{{"jobName":"synthetic","accountId":"000000000000","status":"COMPLETED","results":{{"transcripts":[{{"transcript":"{full}"}}],"items":[{}]{labels_json}}}}}"#,
        items.join(",")
    )
}
