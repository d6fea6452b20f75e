//! Builds Amazon Transcribe Medical output JSON from recognised segments, with the
//! `telepipe_events::transcribe` types, so `clinical` reads a local transcript exactly as it
//! reads one from AWS.
//!
//! - Mono audio without diarization is **one speaker**: `speaker_labels` has `speakers: 1` and
//!   one segment per Whisper segment, all `spk_0`, and every item carries `speaker_label: "spk_0"`.
//! - Mono audio with diarization ([`crate::diarize`]): each word takes the speaker of the turn
//!   it falls in (`spk_0`, `spk_1`, ... in the order first heard) and `speaker_labels.segments`
//!   are the runs of one speaker's words, as Transcribe's speaker partitioning writes them.
//! - Two-channel audio (one speaker per channel) gives `channel_labels` (`ch_0`, `ch_1`) with
//!   each channel's items; the top-level `items` are both channels merged by start time, each
//!   carrying its `channel_label`, as Transcribe's channel identification writes them.
//! - `transcripts[0].transcript` is the text of the top-level items in order.
//!
//! Times go out as decimal seconds with three decimals (the serde helpers of
//! `telepipe_events::transcribe` call `format_ms_as_seconds`).

use std::borrow::Cow;

use telepipe_events::transcribe::{
    Alternative, Channel, ChannelLabels, Item, ItemType, Results, Segment, SegmentItem,
    SpeakerLabels, TranscribeOutput, TranscriptText,
};

pub use crate::diarize::SpeakerTurn;
pub use crate::words::RecognizedSegment;
use crate::words::{assemble_words, make_monotonic, render_text, Word, WordKind};
use crate::WhisperError;

/// What was recognised, by channel layout.
#[derive(Debug, Clone, PartialEq)]
pub enum Recognized {
    /// One channel, one speaker.
    Mono(Vec<RecognizedSegment>),
    /// One channel, its speakers found by diarization ([`crate::diarize`]).
    Diarized {
        segments: Vec<RecognizedSegment>,
        turns: Vec<SpeakerTurn>,
    },
    /// One entry per channel, in channel order (`ch_0` first).
    Channels(Vec<Vec<RecognizedSegment>>),
}

const SPEAKER: &str = "spk_0";
/// A pause this long between two words of one channel ends a run of the channel merge.
const RUN_PAUSE_MS: u64 = 1_000;
/// Punctuation that ends a sentence, for merging channels sentence by sentence.
const SENTENCE_END: [&str; 3] = [".", "?", "!"];

fn item(word: &Word, speaker: Option<&str>, channel: Option<&str>) -> Item<'static> {
    let spoken = word.kind == WordKind::Pronunciation;
    Item {
        start_time: word.start_ms,
        end_time: word.end_ms,
        alternatives: vec![Alternative {
            confidence: Some(word.confidence),
            content: Cow::Owned(word.content.clone()),
        }],
        kind: if spoken {
            ItemType::Pronunciation
        } else {
            ItemType::Punctuation
        },
        speaker_label: speaker.map(|s| Cow::Owned(s.to_string())),
        channel_label: channel.map(|c| Cow::Owned(c.to_string())),
    }
}

/// Items of one channel, per segment (times made monotonic across the whole channel).
fn channel_words(segments: &[RecognizedSegment]) -> Vec<Vec<Word>> {
    let mut per_segment: Vec<Vec<Word>> =
        segments.iter().map(|s| assemble_words(&s.tokens)).collect();
    // Monotonic over the channel, then split back into segments.
    let lengths: Vec<usize> = per_segment.iter().map(Vec::len).collect();
    let mut flat: Vec<Word> = per_segment.drain(..).flatten().collect();
    make_monotonic(&mut flat);
    let mut rest = flat.into_iter();
    lengths
        .into_iter()
        .map(|n| rest.by_ref().take(n).collect())
        .collect()
}

/// Builds the Transcribe output document.
pub fn build_output(job_name: &str, recognized: &Recognized) -> TranscribeOutput<'static> {
    let results = match recognized {
        Recognized::Mono(segments) => mono_results(segments),
        Recognized::Diarized { segments, turns } => diarized_results(segments, turns),
        Recognized::Channels(channels) => channel_results(channels),
    };
    TranscribeOutput {
        job_name: Some(Cow::Owned(job_name.to_string())),
        account_id: None,
        status: Some(Cow::Borrowed("COMPLETED")),
        results,
    }
}

/// Builds and serialises the Transcribe output document.
pub fn to_json(job_name: &str, recognized: &Recognized) -> Result<Vec<u8>, WhisperError> {
    Ok(serde_json::to_vec(&build_output(job_name, recognized))?)
}

fn mono_results(segments: &[RecognizedSegment]) -> Results<'static> {
    let per_segment = channel_words(segments);
    let all: Vec<&Word> = per_segment.iter().flatten().collect();
    let items = all.iter().map(|w| item(w, Some(SPEAKER), None)).collect();
    let speaker_segments = segments
        .iter()
        .zip(&per_segment)
        .filter(|(_, words)| words.iter().any(|w| w.kind == WordKind::Pronunciation))
        .map(|(segment, words)| {
            let seg_items: Vec<SegmentItem> = words
                .iter()
                .filter(|w| w.kind == WordKind::Pronunciation)
                .map(|w| SegmentItem {
                    start_time: w.start_ms,
                    end_time: w.end_ms,
                    speaker_label: Cow::Borrowed(SPEAKER),
                })
                .collect();
            // A segment spans its words: their (DTW-aligned) times are more exact than
            // Whisper's segment timestamps, which can swallow the silence around speech.
            let first = seg_items.first().and_then(|i| i.start_time);
            let last = seg_items.iter().filter_map(|i| i.end_time).max();
            Segment {
                start_time: Some(first.unwrap_or(segment.start_ms)),
                end_time: Some(last.unwrap_or(segment.end_ms)),
                speaker_label: Cow::Borrowed(SPEAKER),
                items: seg_items,
            }
        })
        .collect();
    Results {
        transcripts: vec![TranscriptText {
            transcript: Cow::Owned(render_text(all.iter().copied())),
        }],
        items,
        speaker_labels: Some(SpeakerLabels {
            speakers: Some(1),
            segments: speaker_segments,
        }),
        channel_labels: None,
    }
}

/// The turn a word belongs to: the one holding its midpoint, else the nearest.
fn speaker_at(turns: &[SpeakerTurn], start_ms: u64, end_ms: u64) -> Option<usize> {
    let middle = (start_ms + end_ms) / 2;
    turns
        .iter()
        .min_by_key(|t| {
            if t.start_ms <= middle && middle < t.end_ms.max(t.start_ms + 1) {
                0
            } else {
                t.start_ms.abs_diff(middle).min(t.end_ms.abs_diff(middle))
            }
        })
        .map(|t| t.speaker)
}

/// Mono audio with its diarization: every word takes the speaker of its turn (`spk_N`,
/// numbered in the order the speakers are first heard), punctuation the word's before it, and
/// `speaker_labels.segments` are the runs of words of one speaker, as Transcribe writes them.
fn diarized_results(segments: &[RecognizedSegment], turns: &[SpeakerTurn]) -> Results<'static> {
    let words: Vec<Word> = channel_words(segments).into_iter().flatten().collect();
    let mut numbering: Vec<usize> = Vec::new();
    let mut current: Option<String> = None;
    let labels: Vec<String> = words
        .iter()
        .map(|w| {
            if let (Some(start), Some(end)) = (w.start_ms, w.end_ms) {
                if let Some(speaker) = speaker_at(turns, start, end) {
                    let n = numbering
                        .iter()
                        .position(|&s| s == speaker)
                        .unwrap_or_else(|| {
                            numbering.push(speaker);
                            numbering.len() - 1
                        });
                    current = Some(format!("spk_{n}"));
                }
            }
            current.clone().unwrap_or_else(|| SPEAKER.to_string())
        })
        .collect();
    let items = words
        .iter()
        .zip(&labels)
        .map(|(w, label)| item(w, Some(label.as_str()), None))
        .collect();
    let mut speaker_segments: Vec<Segment> = Vec::new();
    for (word, label) in words.iter().zip(&labels) {
        if word.kind != WordKind::Pronunciation {
            continue;
        }
        let label = label.clone();
        let entry = SegmentItem {
            start_time: word.start_ms,
            end_time: word.end_ms,
            speaker_label: Cow::Owned(label.clone()),
        };
        match speaker_segments.last_mut() {
            Some(segment) if segment.speaker_label == label => {
                segment.end_time = word.end_ms.or(segment.end_time);
                segment.items.push(entry);
            }
            _ => speaker_segments.push(Segment {
                start_time: word.start_ms,
                end_time: word.end_ms,
                speaker_label: Cow::Owned(label),
                items: vec![entry],
            }),
        }
    }
    Results {
        transcripts: vec![TranscriptText {
            transcript: Cow::Owned(render_text(words.iter())),
        }],
        items,
        speaker_labels: Some(SpeakerLabels {
            speakers: Some(numbering.len().max(1) as u32),
            segments: speaker_segments,
        }),
        channel_labels: None,
    }
}

/// Spoken words from the start of `words` up to the end of its sentence (or of `words`).
fn words_left_in_sentence(words: &[Word]) -> usize {
    words
        .iter()
        .take_while(|w| {
            !(w.kind == WordKind::Punctuation && SENTENCE_END.contains(&w.content.as_str()))
        })
        .filter(|w| w.kind == WordKind::Pronunciation)
        .count()
}

fn channel_results(channels: &[Vec<RecognizedSegment>]) -> Results<'static> {
    let labels: Vec<String> = (0..channels.len()).map(|c| format!("ch_{c}")).collect();
    // Per channel, per Whisper segment.
    let words: Vec<Vec<Vec<Word>>> = channels.iter().map(|s| channel_words(s)).collect();

    // Merge by start time in runs of whole sentences: a run ends after . ? ! or at the end of
    // a Whisper segment. Word-by-word merging would interleave the two speakers
    // mid-sentence, because the last word before a pause is where alignment is weakest (it can
    // land up to a second late, into the other speaker's turn); a sentence's first word, right
    // after silence, is placed well. Ties keep channel order (the sort is stable).
    //
    // A pause of over [`RUN_PAUSE_MS`] inside a sentence ends the run too, when at least two
    // words of the sentence follow it: the recogniser hears a channel's speech with the other
    // side's turns cut out (silence is skipped), so it can join two of the doctor's lines into
    // one sentence across the patient's answer. (One late word before the full stop is the
    // alignment drift above, not a new line.)
    let mut runs: Vec<(u64, usize, Vec<&Word>)> = Vec::new();
    for (channel, segments) in words.iter().enumerate() {
        let mut key = 0;
        for segment in segments {
            let mut run: Vec<&Word> = Vec::new();
            for (i, word) in segment.iter().enumerate() {
                let last_end = run.iter().rev().find_map(|w| w.end_ms);
                if let (Some(end), Some(start)) = (last_end, word.start_ms) {
                    if start > end + RUN_PAUSE_MS && words_left_in_sentence(&segment[i..]) >= 2 {
                        runs.push((key, channel, std::mem::take(&mut run)));
                    }
                }
                if run.is_empty() {
                    key = word.start_ms.unwrap_or(key);
                }
                run.push(word);
                if word.kind == WordKind::Punctuation
                    && SENTENCE_END.contains(&word.content.as_str())
                {
                    runs.push((key, channel, std::mem::take(&mut run)));
                }
            }
            if !run.is_empty() {
                runs.push((key, channel, run));
            }
        }
    }
    runs.sort_by_key(|(start, channel, _)| (*start, *channel));
    let merged: Vec<(usize, &Word)> = runs
        .iter()
        .flat_map(|(_, channel, run)| run.iter().map(move |w| (*channel, *w)))
        .collect();

    Results {
        transcripts: vec![TranscriptText {
            transcript: Cow::Owned(render_text(merged.iter().map(|(_, w)| *w))),
        }],
        items: merged
            .iter()
            .map(|(c, w)| item(w, None, Some(&labels[*c])))
            .collect(),
        speaker_labels: None,
        channel_labels: Some(ChannelLabels {
            number_of_channels: Some(channels.len() as u32),
            channels: words
                .iter()
                .zip(&labels)
                .map(|(segments, label)| Channel {
                    channel_label: Cow::Owned(label.clone()),
                    items: segments
                        .iter()
                        .flatten()
                        .map(|w| item(w, None, Some(label)))
                        .collect(),
                })
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::TokenPiece;
    use telepipe_events::transcribe::TranscribeOutput;

    fn seg(start: u64, end: u64, tokens: &[(&str, u64, u64)]) -> RecognizedSegment {
        RecognizedSegment {
            start_ms: start,
            end_ms: end,
            tokens: tokens
                .iter()
                .map(|(text, s, e)| TokenPiece::new(text, *s, *e, 0.75))
                .collect(),
        }
    }

    #[test]
    fn diarized_mono_output_labels_each_word_with_its_turns_speaker() {
        // One Whisper segment spanning a change of speaker: the words decide, not the segment.
        let recognized = Recognized::Diarized {
            segments: vec![seg(
                0,
                4000,
                &[
                    (" Any", 100, 400),
                    (" fever", 400, 800),
                    ("?", 800, 850),
                    (" No", 2600, 2900),
                    (" fever", 2900, 3500),
                    (".", 3500, 3550),
                ],
            )],
            turns: vec![
                SpeakerTurn {
                    start_ms: 50,
                    end_ms: 900,
                    speaker: 3,
                },
                SpeakerTurn {
                    start_ms: 2550,
                    end_ms: 3600,
                    speaker: 1,
                },
            ],
        };
        let json = to_json("visit-3", &recognized).unwrap();
        let out: TranscribeOutput = serde_json::from_slice(&json).unwrap();
        let labels = out.results.speaker_labels.as_ref().unwrap();
        // Numbered in the order first heard, whatever the diarizer called them.
        assert_eq!(labels.speakers, Some(2));
        let segments: Vec<(&str, usize)> = labels
            .segments
            .iter()
            .map(|s| (s.speaker_label.as_ref(), s.items.len()))
            .collect();
        assert_eq!(segments, vec![("spk_0", 2), ("spk_1", 2)]);
        let items: Vec<(String, Option<&str>)> = out
            .results
            .items
            .iter()
            .map(|i| (i.content().to_string(), i.speaker_label.as_deref()))
            .collect();
        assert_eq!(
            items,
            vec![
                ("Any".to_string(), Some("spk_0")),
                ("fever".to_string(), Some("spk_0")),
                ("?".to_string(), Some("spk_0")),
                ("No".to_string(), Some("spk_1")),
                ("fever".to_string(), Some("spk_1")),
                (".".to_string(), Some("spk_1")),
            ]
        );
        // A word between turns goes to the nearest one.
        assert_eq!(
            speaker_at(&recognized_turns(&recognized), 1000, 1100),
            Some(3)
        );
        assert_eq!(
            speaker_at(&recognized_turns(&recognized), 2300, 2400),
            Some(1)
        );
        assert_eq!(speaker_at(&[], 0, 10), None);
    }

    fn recognized_turns(recognized: &Recognized) -> Vec<SpeakerTurn> {
        match recognized {
            Recognized::Diarized { turns, .. } => turns.clone(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn mono_output_parses_back_with_one_speaker() {
        let recognized = Recognized::Mono(vec![
            seg(
                0,
                2000,
                &[
                    (" Any", 100, 400),
                    (" chest", 400, 800),
                    (" pain", 800, 1200),
                    ("?", 1200, 1250),
                ],
            ),
            seg(
                2500,
                4000,
                &[
                    (" No", 2600, 2900),
                    (" fever", 2900, 3500),
                    (".", 3500, 3550),
                ],
            ),
        ]);
        let json = to_json("visit-1", &recognized).unwrap();
        let out: TranscribeOutput = serde_json::from_slice(&json).unwrap();
        assert_eq!(out.job_name.as_deref(), Some("visit-1"));
        assert_eq!(out.status.as_deref(), Some("COMPLETED"));
        assert_eq!(
            out.results.transcripts[0].transcript,
            "Any chest pain? No fever."
        );
        let items = &out.results.items;
        assert_eq!(items.len(), 7);
        assert_eq!(items[1].content(), "chest");
        assert_eq!(
            (items[1].start_time, items[1].end_time),
            (Some(400), Some(800))
        );
        assert_eq!(items[1].alternatives[0].confidence, Some(0.75));
        assert_eq!(items[3].kind, ItemType::Punctuation);
        assert_eq!(items[3].start_time, None);
        assert!(items
            .iter()
            .all(|i| i.speaker_label.as_deref() == Some("spk_0")));
        assert!(out.results.channel_labels.is_none());

        let speakers = out.results.speaker_labels.unwrap();
        assert_eq!(speakers.speakers, Some(1));
        assert_eq!(speakers.segments.len(), 2);
        let second = &speakers.segments[1];
        assert_eq!(
            (second.start_time, second.end_time),
            (Some(2600), Some(3500))
        );
        assert_eq!(second.items.len(), 2);
        assert_eq!(second.items[0].start_time, Some(2600));

        // Times are three-decimal second strings in the file.
        let text = String::from_utf8(json).unwrap();
        assert!(
            text.contains(r#""start_time":"0.400","end_time":"0.800""#),
            "{text}"
        );
        assert!(text.contains(r#""confidence":"0.7500""#), "{text}");
    }

    #[test]
    fn stereo_output_merges_channels_by_time() {
        let doctor = vec![
            seg(
                0,
                1500,
                &[(" Any", 0, 300), (" fever", 300, 900), ("?", 900, 950)],
            ),
            seg(3000, 4500, &[(" Good", 3000, 3400), (".", 3400, 3450)]),
        ];
        let patient = vec![seg(
            1600,
            2800,
            &[
                (" No", 1700, 2000),
                (" fever", 2000, 2600),
                (".", 2600, 2650),
            ],
        )];
        let json = to_json("visit-2", &Recognized::Channels(vec![doctor, patient])).unwrap();
        let out: TranscribeOutput = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            out.results.transcripts[0].transcript,
            "Any fever? No fever. Good."
        );
        let labels: Vec<(&str, &str)> = out
            .results
            .items
            .iter()
            .map(|i| (i.content(), i.channel_label.as_deref().unwrap()))
            .collect();
        assert_eq!(
            labels,
            [
                ("Any", "ch_0"),
                ("fever", "ch_0"),
                ("?", "ch_0"),
                ("No", "ch_1"),
                ("fever", "ch_1"),
                (".", "ch_1"),
                ("Good", "ch_0"),
                (".", "ch_0"),
            ]
        );
        assert!(out.results.speaker_labels.is_none());
        let channels = out.results.channel_labels.unwrap();
        assert_eq!(channels.number_of_channels, Some(2));
        assert_eq!(channels.channels[0].channel_label, "ch_0");
        assert_eq!(channels.channels[0].items.len(), 5);
        assert_eq!(channels.channels[1].channel_label, "ch_1");
        assert_eq!(channels.channels[1].items[1].content(), "fever");
        assert_eq!(channels.channels[1].items[1].start_time, Some(2000));
    }

    #[test]
    fn stereo_merge_keeps_sentences_whole() {
        // The doctor's last word is aligned late, after the patient has started.
        let doctor = vec![seg(
            0,
            3000,
            &[
                (" Blood", 300, 600),
                (" pressure", 600, 1400),
                (" today", 2900, 3300),
                (".", 3300, 3350),
            ],
        )];
        let patient = vec![seg(
            0,
            5000,
            &[
                (" I", 2700, 2900),
                (" ran", 2900, 3100),
                (" out", 3100, 3400),
                (".", 3400, 3450),
            ],
        )];
        let out = build_output("x", &Recognized::Channels(vec![doctor, patient]));
        assert_eq!(
            out.results.transcripts[0].transcript,
            "Blood pressure today. I ran out."
        );
    }

    #[test]
    fn segments_without_punctuation_are_runs_of_their_own() {
        let doctor = vec![
            seg(0, 1000, &[(" okay", 0, 400)]),
            seg(6000, 7000, &[(" so", 6000, 6400)]),
        ];
        let patient = vec![seg(3000, 4000, &[(" yes", 3000, 3400)])];
        let out = build_output("x", &Recognized::Channels(vec![doctor, patient]));
        assert_eq!(out.results.transcripts[0].transcript, "okay yes so");
    }

    #[test]
    fn a_long_pause_inside_one_channels_sentence_lets_the_other_channel_in() {
        // The doctor's two lines heard as one sentence (no full stop between them), with the
        // patient's answer in the pause.
        let doctor = vec![seg(
            0,
            9000,
            &[
                (" Any", 0, 300),
                (" pain", 300, 700),
                (",", 700, 720),
                (" please", 6000, 6400),
                (" rest", 6400, 6900),
                (".", 6900, 6950),
            ],
        )];
        let patient = vec![seg(
            2000,
            4000,
            &[
                (" No", 2000, 2300),
                (" pain", 2300, 2800),
                (".", 2800, 2850),
            ],
        )];
        let out = build_output("x", &Recognized::Channels(vec![doctor, patient]));
        assert_eq!(
            out.results.transcripts[0].transcript,
            "Any pain, No pain. please rest."
        );
    }

    #[test]
    fn silence_gives_an_empty_but_valid_document() {
        let json = to_json("quiet", &Recognized::Mono(vec![])).unwrap();
        let out: TranscribeOutput = serde_json::from_slice(&json).unwrap();
        assert_eq!(out.results.transcripts[0].transcript, "");
        assert!(out.results.items.is_empty());
        assert_eq!(out.results.speaker_labels.unwrap().segments.len(), 0);
    }
}
