//! Local Chime capture concatenation: an hour of 5-second AAC-in-MP4 chunks (720 copies
//! of the committed first chunk of `samples/chime-capture/`) joined into one 16 kHz WAV by
//! `telepipe_local::capture::join_chunks`, against, in the same run, decoding alone (the
//! floor: what joining adds on top) and ffmpeg's concat demuxer writing the same WAV (what
//! a user would otherwise script), when ffmpeg is installed.
//!
//! Run: `cargo bench -p telepipe-local --no-default-features --bench concat`
//! (`CONCAT_CHUNKS=N` for another length; median of 5 runs each).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use telepipe_local::capture::join_chunks;

const RUNS: usize = 5;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let chunks: usize = std::env::var("CONCAT_CHUNKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(720);
    let chunk_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/chime-capture/audio/2026-12-01-15-00-00-000.mp4");
    let chunk = std::fs::read(&chunk_path).expect("the committed Chime sample chunk");
    let names: Vec<String> = (0..chunks).map(|i| format!("chunk-{i:05}.mp4")).collect();
    let audio_secs = chunks as f64 * 5.0;

    let mut join = Vec::new();
    let mut joined_ms = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let result = join_chunks(names.iter().map(|n| (n.as_str(), chunk.clone())));
        join.push(started.elapsed());
        assert_eq!(result.chunks_joined, chunks);
        joined_ms = result.audio_ms;
    }
    let mut decode = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        for _ in 0..chunks {
            std::hint::black_box(telepipe_whisper::decode_media(&chunk, "mp4").unwrap());
        }
        decode.push(started.elapsed());
    }
    let join = median(join);
    let decode = median(decode);
    println!(
        "local capture concatenation, {chunks} chunks = {:.0} min of audio ({joined_ms} ms joined)",
        audio_secs / 60.0
    );
    println!("| what | median of {RUNS} | per hour of audio | × real time |");
    println!("|---|---|---|---|");
    let row = |what: &str, t: Duration| {
        println!(
            "| {what} | {:.2} s | {:.2} s | {:.0}× |",
            t.as_secs_f64(),
            t.as_secs_f64() * 3600.0 / audio_secs,
            audio_secs / t.as_secs_f64()
        );
    };
    row("join_chunks (decode + resample + WAV)", join);
    row("decoding alone (same run)", decode);

    let dir = std::env::temp_dir().join(format!("telepipe-concat-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("list.txt");
    let chunk_file = dir.join("chunk.mp4");
    std::fs::write(&chunk_file, &chunk).unwrap();
    let lines: String = (0..chunks)
        .map(|_| format!("file '{}'\n", chunk_file.display()))
        .collect();
    std::fs::write(&list, lines).unwrap();
    let ffmpeg = |out: &PathBuf| {
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "concat", "-safe", "0", "-i"])
            .arg(&list)
            .args(["-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le"])
            .arg(out)
            .status()
    };
    match ffmpeg(&dir.join("probe.wav")) {
        Ok(status) if status.success() => {
            let mut times = Vec::new();
            for run in 0..RUNS {
                let started = Instant::now();
                assert!(ffmpeg(&dir.join(format!("out-{run}.wav")))
                    .unwrap()
                    .success());
                times.push(started.elapsed());
            }
            let ffmpeg_time = median(times);
            row("ffmpeg -f concat → 16 kHz WAV (same run)", ffmpeg_time);
            println!(
                "join_chunks / ffmpeg = {:.2}",
                join.as_secs_f64() / ffmpeg_time.as_secs_f64()
            );
        }
        _ => println!(
            "(ffmpeg not installed: no ffmpeg baseline in this run; apt-get install ffmpeg)"
        ),
    }
    println!(
        "join_chunks / decoding alone = {:.2}",
        join.as_secs_f64() / decode.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(dir);
}
