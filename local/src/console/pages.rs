//! The console's pages as markup: the sessions overview, the visit, operations, and the
//! self-contained report. Everything a page needs is inline (CSS, the one script): pages
//! work offline and the report opens from a file with networking off.

use super::data::SessionOverview;
use super::visit::{Finding, Piece, Visit};
use crate::queue::QueueDepth;
use crate::status::format_time;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use telepipe_ops::port::{DlqInfo, DlqMessage};
use telepipe_ops::replay::ReplayReport;
use telepipe_workers::ports::{ATTR_REASON, ATTR_STAGE};

const CSS: &str = r#"
:root { --ink:#1d2330; --muted:#5b6476; --line:#d9dde5; --bg:#f7f8fa; --accent:#2456b3; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink); background:var(--bg); }
nav { background:#1d2330; padding:.6rem 1.2rem; }
nav a { color:#fff; text-decoration:none; margin-right:1.2rem; font-weight:600; }
main { max-width:1100px; margin:0 auto; padding:1.2rem; }
h1 { font-size:1.5rem; margin:.2rem 0 1rem; } h2 { font-size:1.15rem; margin:1.6rem 0 .6rem; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { text-align:left; padding:.35rem .55rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef1f6; font-weight:600; font-size:.85rem; }
.muted { color:var(--muted); font-size:.85rem; }
.chips span { display:inline-block; padding:.05rem .45rem; margin:.1rem .15rem .1rem 0; border-radius:.8rem; background:#e8edf7; font-size:.8rem; }
.chips span.failed, .chips span.rejected { background:#f8d7da; color:#7a1522; font-weight:600; }
.chips span.stalled { background:#fff1c2; color:#6b4b00; font-weight:600; }
.chips span.extracted { background:#d6f0dc; color:#14532d; }
.error { color:#7a1522; }
.panel { background:#fff; border:1px solid var(--line); border-radius:.4rem; padding:.8rem 1rem; margin-bottom:1rem; }
.summary { display:grid; grid-template-columns:repeat(auto-fit,minmax(240px,1fr)); gap:1rem; }
.summary ul { margin:.2rem 0; padding-left:1.1rem; }
audio { width:100%; margin:.4rem 0 1rem; }
.turn { display:grid; grid-template-columns:5.2rem 6rem 1fr; gap:.5rem; padding:.35rem 0; border-bottom:1px dashed var(--line); }
.turn .when { font-variant-numeric:tabular-nums; color:var(--accent); background:none; border:0; cursor:pointer; text-align:left; padding:0; font:inherit; }
.turn .who { font-weight:600; color:var(--muted); }
.turn p { margin:0; }
mark.finding { padding:0 .15rem; border-radius:.2rem; cursor:pointer; border-bottom:2px solid transparent; }
.cat-MEDICAL_CONDITION { background:#fde2e1; border-color:#d9534f !important; }
.cat-MEDICATION { background:#dcecff; border-color:#2f6fd0 !important; }
.cat-TEST_TREATMENT_PROCEDURE { background:#e6f5e3; border-color:#3c8d3a !important; }
.cat-ANATOMY { background:#fff2cc; border-color:#c79a00 !important; }
.cat-PROTECTED_HEALTH_INFORMATION { background:#eee; border-color:#777 !important; }
.cat-TIME_EXPRESSION, .cat-BEHAVIORAL_ENVIRONMENTAL_SOCIAL { background:#efe6fb; border-color:#7a4cc2 !important; }
.negated { text-decoration:line-through; opacity:.75; }
.historical { font-style:italic; }
.family { outline:1px dotted #555; }
.badge { display:inline-block; font-size:.72rem; padding:.05rem .4rem; border-radius:.3rem; border-bottom:2px solid; }
.playing { box-shadow:0 0 0 2px var(--accent); }
.entity { color:inherit; text-decoration:underline dotted; cursor:pointer; }
button.action { background:var(--accent); color:#fff; border:0; border-radius:.3rem; padding:.3rem .7rem; cursor:pointer; }
button.danger { background:#b3261e; }
"#;

/// Click a finding, a turn's time or a table entry: the recording plays from there.
const SCRIPT: &str = r#"
document.addEventListener('click', function (event) {
  var target = event.target.closest('[data-start]');
  var audio = document.getElementById('recording');
  if (!target || !audio) { return; }
  event.preventDefault();
  audio.currentTime = Number(target.getAttribute('data-start')) / 1000;
  var playing = audio.play();
  if (playing && playing.catch) { playing.catch(function () {}); }
  document.querySelectorAll('.playing').forEach(function (el) { el.classList.remove('playing'); });
  target.classList.add('playing');
});
"#;

fn layout(title: &str, with_nav: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                @if with_nav {
                    nav { a href="/" { "Sessions" } a href="/operations" { "Operations" } }
                }
                main { (body) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// `m:ss` (or `h:mm:ss`) of a time in the recording.
pub fn clock(ms: u64) -> String {
    let seconds = ms / 1000;
    let (h, m, s) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, (seconds / 60) % 60),
    }
}

/// `/`: every session, its recordings' timelines, reminders and notifications.
pub fn overview(sessions: &[SessionOverview]) -> Markup {
    layout(
        "telepipe — sessions",
        true,
        html! {
            h1 { "Sessions" }
            @if sessions.is_empty() {
                p.muted { "No sessions yet: drop a recording into the data directory or publish session events." }
            }
            table #sessions {
                thead { tr { th { "Session" } th { "Recordings (received → transcribing → extracted)" } th { "Reminders" } th { "Notifications" } } }
                tbody {
                    @for s in sessions {
                        tr data-session=(s.session_id) {
                            td {
                                a href={ "/sessions/" (s.session_id) } { (s.session_id) }
                                @if s.results > 0 { br; span.muted { (s.results) " results document(s)" } }
                            }
                            td {
                                @for r in &s.recordings {
                                    div.chips title=(r.reference) {
                                        @for (i, (stage, at)) in r.timeline.iter().enumerate() {
                                            @let next = r.timeline.get(i + 1).map(|n| n.1);
                                            span class=(stage) {
                                                (stage)
                                                @if let Some(next) = next { " " (duration(next - at)) }
                                            }
                                        }
                                        @if r.timeline.is_empty() { span class=(r.stage) { (r.stage) } }
                                        span.muted { "since " (format_time(r.since_ms)) }
                                    }
                                    @if let Some(error) = &r.error { div.error { (error) } }
                                }
                                @if s.recordings.is_empty() { span.muted { "none" } }
                            }
                            td {
                                @for t in &s.timers { div { (t.name) br; span.muted { (t.fire_at.to_string()) } } }
                                @if s.timers.is_empty() { span.muted { "none pending" } }
                            }
                            td {
                                @for n in &s.notifications {
                                    div {
                                        (format!("{:?}", n.kind).to_lowercase()) " · " (n.channel.as_str()) " · "
                                        strong { (n.outcome) }
                                        @if let Some(reason) = &n.reason { " (" (reason) ")" }
                                        br; span.muted { (format_time(n.at_ms)) }
                                    }
                                }
                                @if s.notifications.is_empty() { span.muted { "none" } }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn finding_classes(f: &Finding) -> String {
    let mut classes = format!("finding cat-{}", f.category);
    for (on, class) in [
        (f.negated, " negated"),
        (f.historical, " historical"),
        (f.family, " family"),
    ] {
        if on {
            classes.push_str(class);
        }
    }
    classes
}

fn codes(list: &[(String, String)]) -> Markup {
    html! {
        @for (i, (code, description)) in list.iter().take(3).enumerate() {
            @if i > 0 { ", " }
            abbr title=(description) { (code) }
        }
    }
}

/// How a visit's page gets its recording.
pub enum Audio {
    /// Served by the console at this path.
    Url(String),
    /// Embedded in the page (the report, on request): a `data:` URI.
    Embedded(String),
    None,
}

/// One results document of a visit: summary, transcript, findings.
fn visit_body(visit: &Visit) -> Markup {
    html! {
        p.muted {
            (clock(visit.duration_ms)) " · speakers " (visit.speakers.join(", ")) " · " (visit.engine)
            " · job " code { (visit.job_name) }
        }
        div.summary {
            div.panel #problems {
                h2 { "Problems" }
                ul { @for p in &visit.summary.problems {
                    li { a.entity href={ "#" (visit.findings[p.finding].id) } data-start=[visit.findings[p.finding].start_ms] { (p.text) }
                         @if let Some((code, description)) = &p.code { " " abbr title=(description) { (code) } } }
                } }
                @if visit.summary.problems.is_empty() { p.muted { "none stated" } }
            }
            div.panel #medications {
                h2 { "Medications" }
                ul { @for m in &visit.summary.medications {
                    li { a.entity href={ "#" (visit.findings[m.finding].id) } data-start=[visit.findings[m.finding].start_ms] { (m.name) }
                         @if let Some(dose) = &m.dose { " " (dose) }
                         @if let Some(frequency) = &m.frequency { " " (frequency) }
                         @if let Some((code, description)) = &m.code { " " abbr title=(description) { (code) } } }
                } }
                @if visit.summary.medications.is_empty() { p.muted { "none stated" } }
            }
            div.panel #negatives {
                h2 { "Pertinent negatives" }
                ul { @for (text, i) in &visit.summary.negatives {
                    li { a.entity href={ "#" (visit.findings[*i].id) } data-start=[visit.findings[*i].start_ms] { "no " (text) } }
                } }
                @if visit.summary.negatives.is_empty() { p.muted { "none stated" } }
            }
        }
        h2 { "Transcript" }
        div.panel #transcript {
            @for turn in &visit.turns {
                div.turn data-speaker=(turn.speaker) {
                    button.when type="button" data-start=(turn.start_ms) { (clock(turn.start_ms)) }
                    span.who { (turn.speaker) @if let Some(role) = &turn.role { " · " (role) } }
                    p { @for piece in &turn.pieces {
                        @match piece {
                            Piece::Text(text) => { (text) }
                            Piece::Finding { index, text } => {
                                @let f = &visit.findings[*index];
                                mark class=(finding_classes(f)) data-category=(f.category) data-finding=(f.id)
                                    data-start=[f.start_ms] title=(f.category) { (text) }
                            }
                        }
                    } }
                }
            }
        }
        h2 { "Findings" }
        table #findings {
            thead { tr { th { "Finding" } th { "Category" } th { "Type" } th { "Said by" } th { "At" }
                         th { "ICD-10-CM" } th { "Drug code" } th { "Dose" } th { "Frequency" } th { "Notes" } } }
            tbody { @for f in &visit.findings {
                tr.finding-row id=(f.id) data-category=(f.category) {
                    td { span class=(finding_classes(f)) data-start=[f.start_ms] { (f.text) } }
                    td { span class={ "badge cat-" (f.category) } { (f.category) } }
                    td { (f.kind) }
                    td { (f.speaker.as_deref().unwrap_or("")) @if let Some(role) = &f.role { " · " (role) } }
                    td { @if let Some(ms) = f.start_ms { (clock(ms)) } }
                    td { (codes(&f.icd10cm)) }
                    td { (codes(&f.drug_codes)) }
                    td { (f.dose.as_deref().unwrap_or("")) }
                    td { (f.frequency.as_deref().unwrap_or("")) }
                    td {
                        @if f.negated { "negated " } @if f.historical { "history " } @if f.family { "family " }
                        @for (kind, text) in &f.attributes { (kind.to_lowercase()) ": " (text) " " }
                    }
                }
            } }
        }
    }
}

/// `/sessions/{id}` and the report: the recording and every results document of a visit.
pub fn visit(session_id: &str, visits: &[Visit], audio: &Audio, standalone: bool) -> Markup {
    layout(
        &format!("telepipe — visit {session_id}"),
        !standalone,
        html! {
            h1 { "Visit " (session_id) }
            @match audio {
                Audio::Url(url) => { audio #recording controls preload="auto" src=(url) {} }
                Audio::Embedded(data) => { audio #recording controls preload="auto" src=(data) {} }
                Audio::None => { p.muted { "Recording not included." } }
            }
            @if visits.is_empty() { p.muted { "No results document yet for this session." } }
            @for visit in visits { section.visit { (visit_body(visit)) } }
        },
    )
}

/// `/operations`: queues, dead letters with their reasons, replay, the outbox.
pub fn operations(
    queues: &[(String, QueueDepth)],
    dead_letters: &[(DlqInfo, Vec<DlqMessage>)],
    outbox: &[String],
    now_ms: i64,
) -> Markup {
    layout(
        "telepipe — operations",
        true,
        html! {
            h1 { "Operations" }
            h2 { "Queues" }
            table #queues {
                thead { tr { th { "Queue" } th { "Visible" } th { "In flight" } th { "Delayed" } th { "Oldest" } } }
                tbody { @for (name, depth) in queues {
                    tr { td { (name) } td { (depth.visible) } td { (depth.in_flight) } td { (depth.delayed) }
                         td { @if let Some(sent) = depth.oldest_sent_ms { (duration(now_ms - sent)) } } }
                } }
            }
            h2 { "Dead letters" }
            @for (info, messages) in dead_letters {
                div.panel data-dlq=(info.name) {
                    strong { (info.name) } " · " (info.depth) " message(s)"
                    @if let Some(source) = &info.source { span.muted { " · from " (source) } }
                    @if info.depth > 0 {
                        form method="post" action="/operations/replay" style="display:inline; margin-left:1rem" {
                            input type="hidden" name="queue" value=(info.name);
                            input type="hidden" name="mode" value="dry-run";
                            button.action type="submit" { "Replay… (dry run first)" }
                        }
                    }
                    @if !messages.is_empty() {
                        table {
                            thead { tr { th { "Message" } th { "Stage" } th { "Reason" } th { "Receives" } th { "Age" } } }
                            tbody { @for m in messages {
                                tr { td { code { (m.id) } } td { (m.attributes.get(ATTR_STAGE).map_or("", |s| s.as_str())) }
                                     td { strong { (m.attributes.get(ATTR_REASON).map_or("", |s| s.as_str())) } }
                                     td { (m.receive_count) }
                                     td { @if let Some(sent) = m.sent_at_ms { (duration(now_ms - sent)) } } }
                            } }
                        }
                    }
                }
            }
            @if dead_letters.is_empty() { p.muted { "No dead-letter queues." } }
            h2 { "Outbox" }
            p.muted { "SMS and email the local runtime \"sent\" (files in the data directory's outbox/)." }
            ul #outbox { @for name in outbox.iter().take(100) { li { code { (name) } } } }
            @if outbox.is_empty() { p.muted { "empty" } }
        },
    )
}

/// The answer to a replay: what a dry run would send (with the button that does it), or
/// what was sent.
pub fn replayed(queue: &str, dry_run: bool, report: &ReplayReport) -> Markup {
    layout(
        "telepipe — replay",
        true,
        html! {
            h1 { @if dry_run { "Dry run: replay " } @else { "Replayed " } (queue) }
            p { "scanned " (report.scanned) ", matched " (report.matched) ", sent " (report.sent)
                ", deleted " (report.deleted) ", already sent " (report.already_sent)
                @if !report.uncertain.is_empty() { ", uncertain " (report.uncertain.len()) } }
            @if dry_run {
                table #planned {
                    thead { tr { th { "Message" } th { "Stage" } th { "Reason" } th { "Sessions" } th { "Bytes" } } }
                    tbody { @for p in &report.planned {
                        tr { td { code { (p.message_id) } } td { (p.stage.as_deref().unwrap_or("")) } td { (p.reason) }
                             td { (p.session_ids.join(", ")) } td { (p.bytes) } }
                    } }
                }
                @if !report.planned.is_empty() {
                    form method="post" action="/operations/replay" {
                        input type="hidden" name="queue" value=(queue);
                        input type="hidden" name="mode" value="replay";
                        button.action.danger type="submit" { "Replay these " (report.planned.len()) " message(s)" }
                    }
                }
            }
            p { a href="/operations" { "Back to operations" } }
        },
    )
}

/// A page that says what went wrong (never with PHI: errors carry ids only).
pub fn problem(title: &str, detail: &str) -> Markup {
    layout(
        "telepipe — problem",
        true,
        html! { h1 { (title) } p.error { (detail) } },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_times_are_minutes_and_seconds() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(61_500), "1:01");
        assert_eq!(clock(3_725_000), "1:02:05");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = problem("<script>", "a & b").into_string();
        assert!(page.contains("&lt;script&gt;") && page.contains("a &amp; b"));
    }
}
