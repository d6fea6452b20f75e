//! Transcript processing throughput of the `clinical` stage, without the NLP calls:
//! parse → speaker turns → chunks per API → offset rebasing and speaker/time mapping,
//! against a plain `serde_json::from_slice::<Value>` of the same bytes in the same run.
//! Also: Comprehend Medical requests per API and chunk fullness.
//!
//! Run: `cargo bench -p telepipe-workers --bench transcript`

use std::time::{Duration, Instant};
use telepipe_events::results::ClinicalEntity;
use telepipe_events::transcribe::TranscribeOutput;
use telepipe_workers::clinical::chunk::chunk_text;
use telepipe_workers::clinical::conversation::Conversation;
use telepipe_workers::clinical::{locate, rebase};
use telepipe_workers::ports::NlpApi;
use telepipe_workers::synth::{transcript, SynthLabels};

/// Words per minute of a brisk two-person consultation.
const WORDS_PER_MINUTE: usize = 150;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let _ = f();
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed()
            })
            .collect(),
    )
}

/// Entities an engine would report for each chunk: every drug and condition term of the
/// synthetic vocabulary, found once up front so only telepipe's own work is timed.
fn chunk_entities(text: &str) -> Vec<Vec<Vec<ClinicalEntity>>> {
    NlpApi::ALL
        .iter()
        .map(|api| {
            chunk_text(text, api.byte_budget())
                .iter()
                .map(|chunk| {
                    let mut found = Vec::new();
                    for term in [
                        "chest pain",
                        "metformin",
                        "hypertension",
                        "aspirin",
                        "fever",
                        "lisinopril",
                    ] {
                        for (byte, _) in chunk.text.match_indices(term) {
                            let begin = chunk.text[..byte].chars().count() as u32;
                            let end = begin + term.chars().count() as u32;
                            found.push(ClinicalEntity::found(
                                "MEDICATION",
                                "GENERIC_NAME",
                                term,
                                0.9,
                                begin,
                                end,
                            ));
                        }
                    }
                    found
                })
                .collect()
        })
        .collect()
}

/// The timed pipeline; returns the entity count so nothing is optimised away.
fn pipeline(bytes: &[u8], entities: &[Vec<Vec<ClinicalEntity>>]) -> usize {
    let output: TranscribeOutput = serde_json::from_slice(bytes).expect("valid transcript");
    let conversation = Conversation::from_output(&output);
    let mut located = 0;
    for (api, per_chunk) in NlpApi::ALL.iter().zip(entities) {
        let chunks = chunk_text(&conversation.text, api.byte_budget());
        for (chunk, found) in chunks.iter().zip(per_chunk) {
            for entity in found {
                let mut entity = entity.clone();
                rebase(&mut entity, chunk.char_start);
                locate(&mut entity, &conversation);
                located += 1;
            }
        }
    }
    located
}

fn main() {
    println!("| transcript | size | words | pipeline median | MB/s | Value parse median | MB/s | pipeline / parse |");
    println!("|---|---|---|---|---|---|---|---|");
    for (label, minutes, runs) in [("60 min", 60usize, 21usize), ("4 h", 240, 9)] {
        let json = transcript(minutes * WORDS_PER_MINUTE, SynthLabels::Speakers);
        let bytes = json.as_bytes();
        let output: TranscribeOutput = serde_json::from_slice(bytes).unwrap();
        let conversation = Conversation::from_output(&output);
        let entities = chunk_entities(&conversation.text);
        let mb = bytes.len() as f64 / 1e6;
        let parse = time(runs, || {
            serde_json::from_slice::<serde_json::Value>(bytes).unwrap()
        });
        let ours = time(runs, || pipeline(bytes, &entities));
        println!(
            "| {label} | {:.1} MB | {} | {:.1} ms | {:.0} | {:.1} ms | {:.0} | {:.2}× |",
            mb,
            conversation.words.len(),
            ours.as_secs_f64() * 1e3,
            mb / ours.as_secs_f64(),
            parse.as_secs_f64() * 1e3,
            mb / parse.as_secs_f64(),
            ours.as_secs_f64() / parse.as_secs_f64()
        );
        if minutes == 60 {
            println!();
            println!(
                "Requests for the 60-minute transcript ({} bytes of analysed text):",
                conversation.text.len()
            );
            println!("| API | budget (bytes) | requests | mean fill | lowest fill (excluding the last chunk) |");
            println!("|---|---|---|---|---|");
            for api in NlpApi::ALL {
                let chunks = chunk_text(&conversation.text, api.byte_budget());
                let fills: Vec<f64> = chunks
                    .iter()
                    .map(|c| c.text.len() as f64 / api.byte_budget() as f64)
                    .collect();
                let full = &fills[..fills.len().saturating_sub(1)];
                let mean_full = if full.is_empty() {
                    fills[0]
                } else {
                    full.iter().sum::<f64>() / full.len() as f64
                };
                let lowest = full.iter().cloned().fold(f64::INFINITY, f64::min);
                println!(
                    "| {} | {} | {} | {:.1} % (all chunks: {:.1} %) | {:.1} % |",
                    api.as_str(),
                    api.byte_budget(),
                    chunks.len(),
                    mean_full * 100.0,
                    fills.iter().sum::<f64>() / fills.len() as f64 * 100.0,
                    lowest * 100.0
                );
            }
            println!();
        }
    }
}
