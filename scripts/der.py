#!/usr/bin/env python3
"""Scores speaker diarization: diarization error rate (DER) of a transcript against ground truth.

Issue 14 (speaker diarization on mono recordings) needs a number for how well a diarizer splits a
mono visit into doctor and patient: on the long synthetic visit (scripts/make-long-visit.py writes
data/bench/visit-long.json) and on the bundled mono samples (scripts/sample-turns.py writes
samples/*.turns.json). This script compares such a ground-truth file with a hypothesis, the Amazon
Transcribe (Medical) output JSON that telepipe's transcribers write (events/src/transcribe.rs).

    scripts/der.py TRUTH.json HYP.json [TRUTH2.json HYP2.json ...] [--collar 0.25] [--items] [--json]

TRUTH.json: {"turns": [{"speaker", "start_ms", "end_ms", ...}, ...], ...}.
HYP.json: results.speaker_labels.segments[] (start_time, end_time in decimal seconds, as strings or
numbers; speaker_label such as "spk_0"). With --items, or when there are no segments, the labelled
words are used instead (results.items[].speaker_label, else the segments' items), so the pauses
between words count as non-speech. A HYP file in the TRUTH shape (with "turns") is accepted too.

Convention (that of NIST md-eval, the usual one):
  * Time is cut into 10 ms frames; a segment [start, end) covers the frames between its start and
    end rounded to the nearest 10 ms. A frame may hold several speakers (overlapping speech).
  * The whole timeline is scored except the no-score collar: COLLAR seconds (default 0.25) either
    side of every reference segment boundary (start and end; touching or overlapping segments of
    one speaker are merged first). The result without a collar is always reported as well.
  * In each scored frame with R reference and H hypothesis speakers, of which C are correctly
    matched under the speaker mapping: missed = max(0, R - H), false alarm = max(0, H - R),
    confusion = min(R, H) - C. DER = (missed + false alarm + confusion) / total R, all summed over
    frames, i.e. over time; the denominator is the scored reference speech time.
  * The mapping is the one-to-one mapping of hypothesis to reference speakers that maximises the
    matched time (found exactly, over all assignments), computed separately for each file and
    collar. Extra speakers on either side stay unmapped: their time is confusion, missed speech or
    false alarm.
  * Several TRUTH HYP pairs are pooled as md-eval pools files: times are summed, then divided.

Output: one line per file (and a total line for several files) with DER, missed, false alarm and
confusion in % of reference speech, at the collar and at collar 0, and the mapping. --json prints a
JSON object instead (times in seconds, rates in %).
"""

import argparse
import json
import sys
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

FRAME_MS = 10
FRAMES_PER_S = 1000 // FRAME_MS


class InputError(Exception):
    pass


def seconds_to_frame(value):
    """Decimal seconds (string or number) to the nearest frame boundary, rounding halves up."""
    try:
        secs = Decimal(str(value).strip())
    except InvalidOperation:
        raise InputError(f"time {value!r} is not decimal seconds") from None
    if not secs.is_finite() or secs < 0:
        raise InputError(f"time {value!r} is not a non-negative number of seconds")
    return int((secs * FRAMES_PER_S).to_integral_value(rounding=ROUND_HALF_UP))


def ms_to_frame(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or value < 0:
        raise InputError(f"time {value!r} is not a non-negative number of milliseconds")
    return seconds_to_frame(Decimal(str(value)) / 1000)


def frames_to_s(frames):
    return frames / FRAMES_PER_S


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, parse_float=Decimal)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: {e}") from None


def segments_from_turns(doc, path):
    """[(speaker, start_frame, end_frame)] from a ground-truth {"turns": [...]} document."""
    turns = doc.get("turns")
    if not isinstance(turns, list):
        raise InputError(f"{path}: no \"turns\" list")
    out = []
    for i, turn in enumerate(turns):
        try:
            out.append((str(turn["speaker"]), ms_to_frame(turn["start_ms"]),
                        ms_to_frame(turn["end_ms"])))
        except (KeyError, TypeError) as e:
            raise InputError(f"{path}: turn {i}: missing or bad field {e}") from None
        except InputError as e:
            raise InputError(f"{path}: turn {i}: {e}") from None
    return out


def _timed_labelled(entries, path, where):
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("speaker_label") is None:
            continue
        if entry.get("start_time") is None or entry.get("end_time") is None:
            continue  # punctuation carries no time
        try:
            out.append((str(entry["speaker_label"]), seconds_to_frame(entry["start_time"]),
                        seconds_to_frame(entry["end_time"])))
        except InputError as e:
            raise InputError(f"{path}: {where}[{i}]: {e}") from None
    return out


def segments_from_transcribe(doc, path, items=False):
    """[(speaker_label, start_frame, end_frame)] from an Amazon Transcribe output document."""
    results = doc.get("results")
    if not isinstance(results, dict):
        raise InputError(f"{path}: neither \"turns\" nor a Transcribe \"results\" object")
    labels = results.get("speaker_labels") or {}
    segments = labels.get("segments") or []
    if not items:
        out = _timed_labelled(segments, path, "results.speaker_labels.segments")
        if out:
            return out
    out = _timed_labelled(results.get("items") or [], path, "results.items")
    if out:
        return out
    seg_items = [it for seg in segments if isinstance(seg, dict) for it in seg.get("items") or []]
    out = _timed_labelled(seg_items, path, "results.speaker_labels.segments[].items")
    if out:
        return out
    raise InputError(f"{path}: no speaker-labelled segments or items (was the job run with "
                     "speaker identification?)")


def load_truth(path):
    return segments_from_turns(load_json(path), path)


def load_hyp(path, items=False):
    doc = load_json(path)
    if isinstance(doc, dict) and "turns" in doc and "results" not in doc:
        return segments_from_turns(doc, path)
    if not isinstance(doc, dict):
        raise InputError(f"{path}: not a JSON object")
    return segments_from_transcribe(doc, path, items)


def merge_spans(spans):
    """[(start, end)] sorted, with overlapping or touching spans joined into one."""
    out = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [tuple(s) for s in out]


def merge_by_speaker(segments):
    """{speaker: [(start, end)]}, each speaker's non-empty segments sorted, touching ones merged."""
    by = {}
    for who, start, end in segments:
        if end > start:
            by.setdefault(who, []).append((start, end))
    return {who: merge_spans(spans) for who, spans in by.items()}


def no_score_zones(ref, collar_frames):
    """Merged [(start, end)] frame ranges within collar_frames of a reference boundary."""
    if collar_frames <= 0:
        return []
    return merge_spans((max(0, b - collar_frames), b + collar_frames)
                       for spans in ref.values() for span in spans for b in span)


def scored_intervals(ref, hyp, collar_frames):
    """[(frames, ref_speakers, hyp_speakers)] over the scored timeline, state constant in each.

    The same as walking the 10 ms grid frame by frame, but only visits the points where something
    changes, so a four-hour file costs no more than its number of segments."""
    events = {}
    for side, spans_by in ((0, ref), (1, hyp)):
        for who, spans in spans_by.items():
            for start, end in spans:
                events.setdefault(start, []).append((side, who, 1))
                events.setdefault(end, []).append((side, who, -1))
    for start, end in no_score_zones(ref, collar_frames):
        events.setdefault(start, []).append((2, None, 1))
        events.setdefault(end, []).append((2, None, -1))
    active = ({}, {})
    no_score = 0
    points = sorted(events)
    out = []
    for point, nxt in zip(points, points[1:] + [None]):
        for side, who, delta in events[point]:
            if side == 2:
                no_score += delta
            else:
                count = active[side].get(who, 0) + delta
                if count:
                    active[side][who] = count
                else:
                    active[side].pop(who, None)
        if nxt is None or no_score or not (active[0] or active[1]):
            continue
        out.append((nxt - point, frozenset(active[0]), frozenset(active[1])))
    return out


def best_mapping(refs, hyps, overlap):
    """{hyp: ref} maximising the summed overlap[(ref, hyp)]; exact (DP over subsets of refs).

    Ties go to the first assignment in sorted speaker order, so the result is deterministic."""
    refs, hyps = sorted(refs), sorted(hyps)
    if len(refs) > 16:
        raise InputError(f"{len(refs)} reference speakers: too many for the exact mapping")
    memo = {}

    def best(i, used):
        if i == len(hyps):
            return 0, ()
        key = (i, used)
        if key not in memo:
            score, rest = best(i + 1, used)
            choice = (score, (None,) + rest)
            for j, r in enumerate(refs):
                gain = overlap.get((r, hyps[i]), 0)
                if gain and not used & (1 << j):
                    score, rest = best(i + 1, used | (1 << j))
                    if score + gain > choice[0]:
                        choice = (score + gain, (r,) + rest)
            memo[key] = choice
        return memo[key]

    _, assigned = best(0, 0)
    return {h: r for h, r in zip(hyps, assigned) if r is not None}


def score(ref_segments, hyp_segments, collar_s):
    """DER of one file at one collar: a dict of frame counts, the mapping and unmapped speakers."""
    collar_frames = seconds_to_frame(collar_s)
    ref, hyp = merge_by_speaker(ref_segments), merge_by_speaker(hyp_segments)
    intervals = scored_intervals(ref, hyp, collar_frames)
    overlap = {}
    for frames, rs, hs in intervals:
        for r in rs:
            for h in hs:
                overlap[(r, h)] = overlap.get((r, h), 0) + frames
    mapping = best_mapping(ref, hyp, overlap)
    speech = missed = false_alarm = confusion = 0
    for frames, rs, hs in intervals:
        n_ref, n_hyp = len(rs), len(hs)
        correct = sum(1 for h in hs if mapping.get(h) in rs)
        speech += frames * n_ref
        missed += frames * max(0, n_ref - n_hyp)
        false_alarm += frames * max(0, n_hyp - n_ref)
        confusion += frames * (min(n_ref, n_hyp) - correct)
    return {
        "collar_s": float(collar_s),
        "speech": speech,
        "missed": missed,
        "false_alarm": false_alarm,
        "confusion": confusion,
        "mapping": dict(sorted(mapping.items())),
        "unmapped_hyp": sorted(set(hyp) - set(mapping)),
        "unmapped_ref": sorted(set(ref) - set(mapping.values())),
    }


def pool(results):
    """Sums the frame counts of several files' results at one collar."""
    total = {"collar_s": results[0]["collar_s"]}
    for key in ("speech", "missed", "false_alarm", "confusion"):
        total[key] = sum(r[key] for r in results)
    return total


def pct(part, whole):
    return None if whole == 0 else 100.0 * part / whole


def der_pct(r):
    errors = r["missed"] + r["false_alarm"] + r["confusion"]
    if r["speech"] == 0:
        return 0.0 if errors == 0 else None
    return pct(errors, r["speech"])


def as_json(r):
    out = {
        "collar_s": r["collar_s"],
        "der_pct": der_pct(r),
        "missed_pct": pct(r["missed"], r["speech"]),
        "false_alarm_pct": pct(r["false_alarm"], r["speech"]),
        "confusion_pct": pct(r["confusion"], r["speech"]),
        "speech_s": frames_to_s(r["speech"]),
        "missed_s": frames_to_s(r["missed"]),
        "false_alarm_s": frames_to_s(r["false_alarm"]),
        "confusion_s": frames_to_s(r["confusion"]),
    }
    for key in ("mapping", "unmapped_hyp", "unmapped_ref"):
        if key in r:
            out[key] = r[key]
    return out


def fmt_pct(value):
    return "n/a" if value is None else f"{value:.2f}%"


def fmt_rates(r):
    return (f"DER {fmt_pct(der_pct(r))} (missed {fmt_pct(pct(r['missed'], r['speech']))}, "
            f"false alarm {fmt_pct(pct(r['false_alarm'], r['speech']))}, "
            f"confusion {fmt_pct(pct(r['confusion'], r['speech']))}; "
            f"{frames_to_s(r['speech']):.2f} s speech)")


def fmt_mapping(r):
    parts = [f"{h}->{ref}" for h, ref in r["mapping"].items()]
    parts += [f"{h}->(none)" for h in r["unmapped_hyp"]]
    parts += [f"(none)->{ref}" for ref in r["unmapped_ref"]]
    return " ".join(parts) or "(no speakers)"


def summary_line(name, at_collar, at_zero):
    line = f"{name}: collar {at_collar['collar_s']:g} s: {fmt_rates(at_collar)}"
    if at_zero is not None:
        line += f"; collar 0: {fmt_rates(at_zero)}"
    if "mapping" in at_collar:
        line += f"; mapping {fmt_mapping(at_collar)}"
        if at_zero is not None and (at_zero["mapping"] != at_collar["mapping"]):
            line += f" (collar 0: {fmt_mapping(at_zero)})"
    return line


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Diarization error rate of Amazon Transcribe speaker labels against ground "
                    "truth turns (issue 14).",
        usage="%(prog)s TRUTH.json HYP.json [TRUTH2.json HYP2.json ...] [--collar S] [--items] "
              "[--json]")
    p.add_argument("files", nargs="+", metavar="TRUTH HYP", help="pairs of ground truth and "
                   "hypothesis files")
    p.add_argument("--collar", default="0.25", metavar="S",
                   help="no-score collar in seconds either side of each reference boundary "
                        "(default 0.25; collar 0 is reported as well)")
    p.add_argument("--items", action="store_true",
                   help="score the hypothesis's speaker-labelled words, not its segments")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    args = p.parse_args(argv)
    if len(args.files) % 2:
        p.error("files come in pairs: TRUTH.json HYP.json")
    try:
        args.collar = Decimal(args.collar)
        if not args.collar.is_finite() or args.collar < 0:
            raise InvalidOperation
    except InvalidOperation:
        p.error(f"--collar: {args.collar!r} is not a non-negative number of seconds")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    collars = [args.collar] + ([Decimal(0)] if args.collar != 0 else [])
    files = []
    try:
        for truth_path, hyp_path in zip(args.files[::2], args.files[1::2]):
            ref, hyp = load_truth(truth_path), load_hyp(hyp_path, args.items)
            files.append((truth_path, hyp_path, [score(ref, hyp, c) for c in collars]))
    except InputError as e:
        print(f"der: {e}", file=sys.stderr)
        return 2
    totals = [pool([f[2][i] for f in files]) for i in range(len(collars))]
    if args.json:
        doc = {
            "frame_ms": FRAME_MS,
            "collar_s": float(args.collar),
            "files": [{"truth": t, "hyp": h, "results": [as_json(r) for r in rs]}
                      for t, h, rs in files],
        }
        if len(files) > 1:
            doc["total"] = [as_json(r) for r in totals]
        print(json.dumps(doc, indent=2))
        return 0
    for truth_path, hyp_path, rs in files:
        name = f"{Path(truth_path).name} vs {Path(hyp_path).name}"
        print(summary_line(name, rs[0], rs[1] if len(rs) > 1 else None))
    if len(files) > 1:
        print(summary_line(f"total ({len(files)} files)", totals[0],
                           totals[1] if len(totals) > 1 else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
