//! Benchmark of telepipe-nlp: engine-ready time and matching throughput.
//!
//! `cargo run -p telepipe-nlp --release --bin nlp-bench -- --data DIR [--loads N] [--runs N]`
//!
//! Prints the median of N loads (data read, decompressed, indexed, and one tiny
//! analysis done), and the median MB/s of each analysis over a generated ~1 MB
//! conversation, next to two trivial baselines over the same text measured in the
//! same run, so the figure has a ratio that does not depend on the machine's load.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use telepipe_nlp::{Analysis, Engine};

const SPEAKERS: &[&str] = &["Doctor: ", "Patient: ", "", ""];
const TURNS: &[&str] = &[
    "How have you been feeling since the last visit?",
    "I've had some chest pain and shortness of breath when I climb stairs.",
    "Any fever, chills or night sweats?",
    "No fever, but I've been coughing for about two weeks.",
    "Are you still taking metformin 500 mg twice a day with meals?",
    "Yes, and lisinopril 10 mg every morning for my blood pressure.",
    "My mother had a heart attack at sixty and my father has type 2 diabetes.",
    "I had pneumonia a few years ago, and I used to smoke.",
    "Do you get headaches or dizziness when you stand up?",
    "Sometimes, mostly in the afternoon. I take Tylenol as needed.",
    "Your blood pressure is high today, 150 over 95.",
    "We should rule out a pulmonary embolism, so I'm ordering a CT scan.",
    "If the pain gets worse or you feel lightheaded, go to the emergency room.",
    "I don't have any allergies that I know of. Penicillin gave me hives once.",
    "Let's check an A1C and a lipid panel, and I'll see you in three months.",
    "The weather has been nice, we went to the park with the grandchildren.",
];

fn conversation(target_bytes: usize) -> String {
    let mut out = String::with_capacity(target_bytes + 200);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while out.len() < target_bytes {
        // xorshift: a fixed, dependency-free sequence so every run measures the same text.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(SPEAKERS[(x >> 8) as usize % SPEAKERS.len()]);
        out.push_str(TURNS[(x >> 20) as usize % TURNS.len()]);
        out.push('\n');
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn main() {
    let mut data: Option<PathBuf> = None;
    let mut loads = 15usize;
    let mut runs = 7usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().map(PathBuf::from),
            "--loads" => loads = args.next().and_then(|s| s.parse().ok()).unwrap_or(loads),
            "--runs" => runs = args.next().and_then(|s| s.parse().ok()).unwrap_or(runs),
            _ => {
                eprintln!("usage: nlp-bench --data DIR [--loads N] [--runs N]");
                std::process::exit(2);
            }
        }
    }
    let Some(data) = data else {
        eprintln!("usage: nlp-bench --data DIR [--loads N] [--runs N]");
        std::process::exit(2);
    };
    let loads = loads.max(10);
    let runs = runs.max(5);

    let mut ready = Vec::new();
    let mut engine = None;
    for _ in 0..loads {
        let t = Instant::now();
        let e = match Engine::load(&data) {
            Ok(e) => e,
            Err(err) => {
                eprintln!("nlp-bench: {err}");
                std::process::exit(1);
            }
        };
        black_box(e.analyze(Analysis::Entities, "no chest pain"));
        ready.push(t.elapsed());
        engine = Some(e);
    }
    let engine = engine.expect("loaded at least once");
    let ready_sorted = {
        let mut v = ready.clone();
        v.sort();
        v
    };
    println!(
        "engine ready: median {:.1} ms over {} loads (min {:.1} ms, max {:.1} ms)",
        median(ready).as_secs_f64() * 1e3,
        loads,
        ready_sorted[0].as_secs_f64() * 1e3,
        ready_sorted[ready_sorted.len() - 1].as_secs_f64() * 1e3
    );

    let text = conversation(1 << 20);
    let bytes = text.len();
    println!(
        "text: {:.2} MB, {} lines (generated conversation)",
        bytes as f64 / 1e6,
        text.lines().count()
    );

    let time = |f: &dyn Fn() -> usize| -> (Duration, usize) {
        let mut ds = Vec::new();
        let mut n = 0;
        for _ in 0..runs {
            let t = Instant::now();
            n = black_box(f());
            ds.push(t.elapsed());
        }
        (median(ds), n)
    };
    let (lower, _) = time(&|| black_box(text.to_lowercase()).len());
    let (ws, words) = time(&|| text.split_whitespace().count());
    println!(
        "baseline text.to_lowercase():      {:>8.1} MB/s",
        mbps(bytes, lower)
    );
    println!(
        "baseline split_whitespace count:   {:>8.1} MB/s  ({words} words)",
        mbps(bytes, ws)
    );
    for (name, a) in [
        ("Entities", Analysis::Entities),
        ("Icd10Cm", Analysis::Icd10Cm),
        ("Drugs", Analysis::Drugs),
    ] {
        let (d, n) = time(&|| engine.analyze(a, &text).len());
        println!(
            "analyze {name:<9}                 {:>8.1} MB/s  ({n} entities; {:.1}x the to_lowercase time)",
            mbps(bytes, d),
            d.as_secs_f64() / lower.as_secs_f64()
        );
    }
    println!("(medians of {runs} runs each)");
}
