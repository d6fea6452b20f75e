//! Speaker turns from a Transcribe Medical transcript.
//!
//! Builds the text `clinical` analyses (one line per turn, words joined by spaces,
//! punctuation attached, no speaker prefixes) and, for every word, its code-point span in
//! that text with its audio times and turn, so entity offsets map back to who said what
//! and when. Handles speaker labels, channel labels, or neither.

use std::collections::HashMap;
use telepipe_events::results::Labelling;
use telepipe_events::transcribe::{Item, ItemType, TranscribeOutput};

/// A spoken word's place in the conversation text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    pub begin: u32,
    pub end: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub turn: u32,
}

/// Consecutive words of one speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerTurn {
    pub speaker: u16,
    pub begin: u32,
    pub end: u32,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub text: String,
    pub turns: Vec<SpeakerTurn>,
    pub words: Vec<Word>,
    pub speakers: Vec<String>,
    pub labelling: Labelling,
    pub duration_ms: u64,
}

impl Conversation {
    /// (speaker label, text) of every turn, in order.
    pub fn turn_texts(&self) -> Vec<(&str, &str)> {
        // Turn offsets are code points; walk the text once to find their bytes.
        let mut bytes = self
            .text
            .char_indices()
            .map(|(b, _)| b)
            .chain([self.text.len()]);
        let (mut at, mut byte) = (0u32, bytes.next().unwrap_or(0));
        let mut to_byte = |offset: u32| {
            while at < offset {
                byte = bytes.next().unwrap_or(self.text.len());
                at += 1;
            }
            byte
        };
        self.turns
            .iter()
            .map(|t| {
                let (begin, end) = (to_byte(t.begin), to_byte(t.end));
                (
                    self.speakers[t.speaker as usize].as_str(),
                    &self.text[begin..end],
                )
            })
            .collect()
    }
}

/// Speaker label given to every word of an unlabelled transcript.
pub const UNLABELLED_SPEAKER: &str = "spk_0";

impl Conversation {
    pub fn from_output(output: &TranscribeOutput) -> Self {
        let results = &output.results;
        let has_item_labels = results
            .items
            .iter()
            .any(|i| i.speaker_label.is_some() || i.channel_label.is_some());
        let channel_items_only = results.items.is_empty()
            && results
                .channel_labels
                .as_ref()
                .is_some_and(|c| c.channels.iter().any(|ch| !ch.items.is_empty()));
        let labelling = if results.channel_labels.is_some() {
            Labelling::ChannelLabels
        } else if results.speaker_labels.is_some() || has_item_labels {
            Labelling::SpeakerLabels
        } else {
            Labelling::None
        };

        let mut builder = Builder::default();
        if channel_items_only {
            // Older channel output keeps items only per channel: interleave them by time,
            // punctuation staying after the word it followed in its channel.
            let channels = &results
                .channel_labels
                .as_ref()
                .expect("checked above")
                .channels;
            let mut merged: Vec<(u64, usize, usize, &Item, &str)> = Vec::new();
            for (c, channel) in channels.iter().enumerate() {
                let mut last_start = 0;
                for (i, item) in channel.items.iter().enumerate() {
                    last_start = item.start_time.unwrap_or(last_start);
                    merged.push((last_start, c, i, item, &channel.channel_label));
                }
            }
            merged.sort_by_key(|(start, c, i, _, _)| (*start, *c, *i));
            for (_, _, _, item, label) in merged {
                builder.push(item, Some(label));
            }
        } else {
            let resolver = SpeakerResolver::new(output);
            let mut last_label: Option<&str> = None;
            for item in &results.items {
                let label = match item.kind {
                    ItemType::Pronunciation => {
                        let label = resolver.resolve(item).or(last_label);
                        last_label = label;
                        label
                    }
                    _ => last_label,
                };
                builder.push(item, label);
            }
        }
        builder.finish(labelling)
    }
}

/// Finds the speaker or channel of an item that does not carry its own label.
struct SpeakerResolver<'o> {
    by_start: HashMap<u64, &'o str>,
    segments: Vec<(u64, u64, &'o str)>,
}

impl<'o> SpeakerResolver<'o> {
    fn new(output: &'o TranscribeOutput) -> Self {
        let mut by_start = HashMap::new();
        let mut segments = Vec::new();
        if let Some(labels) = &output.results.speaker_labels {
            for segment in &labels.segments {
                if let (Some(start), Some(end)) = (segment.start_time, segment.end_time) {
                    segments.push((start, end, segment.speaker_label.as_ref()));
                }
                for item in &segment.items {
                    if let Some(start) = item.start_time {
                        by_start.insert(start, item.speaker_label.as_ref());
                    }
                }
            }
        }
        if let Some(channels) = &output.results.channel_labels {
            for channel in &channels.channels {
                for item in &channel.items {
                    if let (Some(start), ItemType::Pronunciation) = (item.start_time, item.kind) {
                        by_start.insert(start, channel.channel_label.as_ref());
                    }
                }
            }
        }
        segments.sort_by_key(|(start, _, _)| *start);
        Self { by_start, segments }
    }

    fn resolve<'i>(&self, item: &'i Item) -> Option<&'i str>
    where
        'o: 'i,
    {
        if let Some(label) = item
            .speaker_label
            .as_deref()
            .or(item.channel_label.as_deref())
        {
            return Some(label);
        }
        let start = item.start_time?;
        if let Some(label) = self.by_start.get(&start) {
            return Some(label);
        }
        let after = self.segments.partition_point(|(s, _, _)| *s <= start);
        after
            .checked_sub(1)
            .map(|i| self.segments[i])
            .filter(|(_, end, _)| start <= *end)
            .map(|(_, _, label)| label)
    }
}

#[derive(Default)]
struct Builder {
    text: String,
    chars: u32,
    turns: Vec<SpeakerTurn>,
    words: Vec<Word>,
    speakers: Vec<String>,
    last_end_ms: u64,
}

impl Builder {
    fn speaker_index(&mut self, label: &str) -> u16 {
        match self.speakers.iter().position(|s| s == label) {
            Some(i) => i as u16,
            None => {
                self.speakers.push(label.to_owned());
                (self.speakers.len() - 1) as u16
            }
        }
    }

    fn append(&mut self, content: &str) {
        self.text.push_str(content);
        self.chars += if content.is_ascii() {
            content.len()
        } else {
            content.chars().count()
        } as u32;
    }

    fn push(&mut self, item: &Item, label: Option<&str>) {
        let content = item.content();
        if content.is_empty() {
            return;
        }
        match item.kind {
            ItemType::Pronunciation => {
                let speaker = self.speaker_index(label.unwrap_or(UNLABELLED_SPEAKER));
                let start_ms = item.start_time.unwrap_or(self.last_end_ms);
                let end_ms = item.end_time.unwrap_or(start_ms).max(start_ms);
                let new_turn = self.turns.last().is_none_or(|t| t.speaker != speaker);
                if new_turn {
                    if !self.text.is_empty() {
                        self.append("\n");
                    }
                    self.turns.push(SpeakerTurn {
                        speaker,
                        begin: self.chars,
                        end: self.chars,
                        start_ms,
                        end_ms,
                    });
                } else {
                    self.append(" ");
                }
                let begin = self.chars;
                self.append(content);
                let turn = (self.turns.len() - 1) as u32;
                self.words.push(Word {
                    begin,
                    end: self.chars,
                    start_ms,
                    end_ms,
                    turn,
                });
                let current = self.turns.last_mut().expect("a turn was just ensured");
                current.end = self.chars;
                current.end_ms = current.end_ms.max(end_ms);
                self.last_end_ms = end_ms;
            }
            ItemType::Punctuation | ItemType::Other => {
                // Punctuation before any word has nothing to attach to.
                if self.turns.is_empty() {
                    return;
                }
                self.append(content);
                self.turns.last_mut().expect("non-empty").end = self.chars;
            }
        }
    }

    fn finish(self, labelling: Labelling) -> Conversation {
        let duration_ms = self.turns.iter().map(|t| t.end_ms).max().unwrap_or(0);
        Conversation {
            text: self.text,
            turns: self.turns,
            words: self.words,
            speakers: self.speakers,
            labelling,
            duration_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Conversation {
        let output: TranscribeOutput = serde_json::from_str(json).unwrap();
        Conversation::from_output(&output)
    }

    fn word(content: &str, start: &str, end: &str) -> String {
        format!(
            r#"{{"start_time":"{start}","end_time":"{end}","alternatives":[{{"confidence":"0.9","content":"{content}"}}],"type":"pronunciation"}}"#
        )
    }

    fn punct(content: &str) -> String {
        format!(
            r#"{{"alternatives":[{{"confidence":"0.0","content":"{content}"}}],"type":"punctuation"}}"#
        )
    }

    #[test]
    fn speaker_labels_make_turns_with_times() {
        let items = [
            word("How", "0.1", "0.3"),
            word("are", "0.3", "0.5"),
            word("you", "0.5", "0.7"),
            punct("?"),
            word("Chest", "1.0", "1.4"),
            word("pain", "1.4", "1.9"),
            punct("."),
        ]
        .join(",");
        let json = format!(
            r#"{{"results":{{"items":[{items}],"speaker_labels":{{"speakers":2,"segments":[
            {{"start_time":"0.1","end_time":"0.7","speaker_label":"spk_0","items":[
              {{"start_time":"0.1","end_time":"0.3","speaker_label":"spk_0"}},{{"start_time":"0.3","end_time":"0.5","speaker_label":"spk_0"}},{{"start_time":"0.5","end_time":"0.7","speaker_label":"spk_0"}}]}},
            {{"start_time":"1.0","end_time":"1.9","speaker_label":"spk_1","items":[
              {{"start_time":"1.0","end_time":"1.4","speaker_label":"spk_1"}},{{"start_time":"1.4","end_time":"1.9","speaker_label":"spk_1"}}]}}]}}}}}}"#
        );
        let conv = parse(&json);
        assert_eq!(conv.text, "How are you?\nChest pain.");
        assert_eq!(conv.labelling, Labelling::SpeakerLabels);
        assert_eq!(conv.speakers, ["spk_0", "spk_1"]);
        assert_eq!(conv.turns.len(), 2);
        assert_eq!((conv.turns[1].start_ms, conv.turns[1].end_ms), (1000, 1900));
        let pain = conv.words[4];
        assert_eq!(&conv.text[pain.begin as usize..pain.end as usize], "pain");
        assert_eq!((pain.turn, pain.start_ms), (1, 1400));
        assert_eq!(conv.duration_ms, 1900);
    }

    #[test]
    fn channel_labels_with_items_only_per_channel_are_interleaved() {
        let json = format!(
            r#"{{"results":{{"items":[],"channel_labels":{{"number_of_channels":2,"channels":[
              {{"channel_label":"ch_0","items":[{},{},{}]}},
              {{"channel_label":"ch_1","items":[{},{}]}}]}}}}}}"#,
            word("Any", "0.0", "0.2"),
            word("fever", "0.2", "0.5"),
            punct("?"),
            word("No", "1.0", "1.2"),
            punct(".")
        );
        let conv = parse(&json);
        assert_eq!(conv.text, "Any fever?\nNo.");
        assert_eq!(conv.labelling, Labelling::ChannelLabels);
        assert_eq!(conv.speakers, ["ch_0", "ch_1"]);
    }

    #[test]
    fn unlabelled_transcripts_are_one_speaker() {
        let json = format!(
            r#"{{"results":{{"items":[{},{},{}]}}}}"#,
            word("Take", "0", "1"),
            word("aspirin", "1", "2"),
            punct(".")
        );
        let conv = parse(&json);
        assert_eq!(conv.text, "Take aspirin.");
        assert_eq!(conv.labelling, Labelling::None);
        assert_eq!(conv.speakers, [UNLABELLED_SPEAKER]);
    }

    #[test]
    fn empty_transcripts_give_empty_conversations() {
        let conv = parse(r#"{"results":{"transcripts":[{"transcript":""}],"items":[]}}"#);
        assert!(conv.text.is_empty() && conv.turns.is_empty() && conv.words.is_empty());
    }

    #[test]
    fn turn_texts_pair_labels_with_their_words() {
        let json = format!(
            r#"{{"results":{{"items":[{},{},{},{}],"channel_labels":{{"number_of_channels":2,"channels":[]}}}}}}"#,
            word("Café", "0", "1").replace(r#""type""#, r#""channel_label":"ch_0","type""#),
            punct("?"),
            word("naïve", "1", "2").replace(r#""type""#, r#""channel_label":"ch_1","type""#),
            word("oui", "2", "3").replace(r#""type""#, r#""channel_label":"ch_1","type""#),
        );
        let conv = parse(&json);
        assert_eq!(
            conv.turn_texts(),
            [("ch_0", "Café?"), ("ch_1", "naïve oui")]
        );
    }

    #[test]
    fn non_ascii_offsets_are_code_points() {
        let json = format!(
            r#"{{"results":{{"items":[{},{}]}}}}"#,
            word("café", "0", "1"),
            word("naïve", "1", "2")
        );
        let conv = parse(&json);
        let second = conv.words[1];
        assert_eq!((second.begin, second.end), (5, 10));
        let selected: String = conv.text.chars().skip(5).take(5).collect();
        assert_eq!(selected, "naïve");
    }
}
