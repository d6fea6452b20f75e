//! Progress of the commands that take a while (`demo`, `dlq replay`), on stderr: a bar with
//! total, rate and ETA when stderr is a terminal, plain lines otherwise (logs, CI, pipes).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    /// Without a bar: print the counts as a line at most this often (`None`: only notes).
    plain_every: Option<Duration>,
    last_plain: Option<Instant>,
    last_position: Option<u64>,
}

impl Progress {
    /// Progress towards `total` of `unit`s. `plain_every`: how often to print the counts as
    /// a line when there is no terminal (`None` when the notes already tell the story).
    pub fn new(total: u64, unit: &str, plain_every: Option<Duration>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template =
                format!("{{bar:30}} {{pos}}/{{len}} {unit} · {{per_sec}} · ETA {{eta}} · {{msg}}");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self {
            bar,
            plain_every,
            last_plain: None,
            last_position: None,
        }
    }

    /// The new position (done so far) and what it is made of.
    pub fn set(&mut self, position: u64, message: impl Into<String>) {
        let message = message.into();
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(message);
            return;
        }
        let Some(every) = self.plain_every else {
            return;
        };
        let due = self.last_plain.is_none_or(|at| at.elapsed() >= every);
        if due && self.last_position != Some(position) {
            eprintln!("{message}");
            self.last_plain = Some(Instant::now());
            self.last_position = Some(position);
        }
    }

    /// A line of its own (above the bar on a terminal).
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar and prints `summary` as the last line.
    pub fn finish(self, summary: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("{summary}");
    }
}
