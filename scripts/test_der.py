#!/usr/bin/env python3
"""Self-test for scripts/der.py (diarization error rate, issue 14). Run: python3 scripts/test_der.py"""

import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import der  # noqa: E402

# Ground truth as scripts/make-long-visit.py writes it: 10 s of doctor, 10 s of patient (20 s of
# speech), with silence before, between and after.
TRUTH = {
    "audio": "test.wav",
    "duration_ms": 25000,
    "turns": [
        {"speaker": "doctor", "start_ms": 1000, "end_ms": 11000, "text": "a"},
        {"speaker": "patient", "start_ms": 12000, "end_ms": 22000, "text": "b"},
    ],
}


def transcribe(*segments):
    """An Amazon Transcribe output document with the given (label, start_s, end_s) segments."""
    return {"results": {"transcripts": [{"transcript": ""}], "items": [], "speaker_labels": {
        "speakers": len({s[0] for s in segments}),
        "segments": [{"start_time": f"{a:.3f}", "end_time": f"{b:.3f}", "speaker_label": who,
                      "items": []} for who, a, b in segments]}}}


def rates(hyp, collar="0", truth=TRUTH, items=False):
    ref = der.segments_from_turns(truth, "truth")
    hyp = der.segments_from_transcribe(json.loads(json.dumps(hyp)), "hyp", items)
    r = der.score(ref, hyp, der.Decimal(collar))
    return r, round(der.der_pct(r), 6)


class DerTest(unittest.TestCase):
    def test_perfect_hypothesis_scores_zero(self):
        r, d = rates(transcribe(("spk_0", 1, 11), ("spk_1", 12, 22)))
        self.assertEqual(d, 0)
        self.assertEqual(r["mapping"], {"spk_0": "doctor", "spk_1": "patient"})
        self.assertEqual(r["speech"], 2000)  # 20 s in 10 ms frames

    def test_swapped_labels_score_zero_through_the_mapping(self):
        r, d = rates(transcribe(("spk_1", 1, 11), ("spk_0", 12, 22)))
        self.assertEqual(d, 0)
        self.assertEqual(r["mapping"], {"spk_0": "patient", "spk_1": "doctor"})

    def test_one_mislabelled_turn_costs_its_share(self):
        # Three turns, 10 + 5 + 5 s; the last one given to the doctor's label: 5 of 20 s confused.
        truth = {"turns": TRUTH["turns"][:1] + [
            {"speaker": "patient", "start_ms": 12000, "end_ms": 17000},
            {"speaker": "patient", "start_ms": 18000, "end_ms": 23000}]}
        r, d = rates(transcribe(("spk_0", 1, 11), ("spk_1", 12, 17), ("spk_0", 18, 23)),
                     truth=truth)
        self.assertEqual(d, 25)
        self.assertEqual((r["confusion"], r["missed"], r["false_alarm"]), (500, 0, 0))
        self.assertEqual(r["mapping"], {"spk_0": "doctor", "spk_1": "patient"})

    def test_everything_as_one_speaker_confuses_the_other(self):
        r, d = rates(transcribe(("spk_0", 1, 22)))
        # 1 s false alarm in the gap, the patient's 10 s confused: 11 / 20.
        self.assertEqual(d, 55)
        self.assertEqual(r["unmapped_ref"], ["patient"])

    def test_missed_speech(self):
        # The patient's last 4 s not detected.
        r, d = rates(transcribe(("spk_0", 1, 11), ("spk_1", 12, 18)))
        self.assertEqual(d, 20)
        self.assertEqual((r["missed"], r["false_alarm"], r["confusion"]), (400, 0, 0))

    def test_false_alarm(self):
        # 1 s of noise before the visit given a third label, and the 1 s gap filled: 2 s.
        r, d = rates(transcribe(("spk_2", 0, 1), ("spk_0", 1, 11.5), ("spk_1", 11.5, 22)))
        self.assertEqual((r["false_alarm"], r["missed"], r["confusion"]), (200, 0, 0))
        self.assertEqual(d, 10)
        self.assertEqual(r["unmapped_hyp"], ["spk_2"])

    def test_collar_forgives_boundary_jitter(self):
        # Every boundary 0.2 s off: 0.8 s of errors with no collar, none with 0.25 s.
        hyp = transcribe(("spk_0", 1.2, 11.2), ("spk_1", 11.8, 21.8))
        r0, d0 = rates(hyp, "0")
        self.assertEqual((r0["missed"], r0["false_alarm"], r0["confusion"]), (40, 40, 0))
        self.assertEqual(d0, 4)
        r, d = rates(hyp, "0.25")
        self.assertEqual(d, 0)
        # Scored speech shrinks by 0.25 s at each end of each turn: 20 - 4 * 0.25 = 19 s.
        self.assertEqual(r["speech"], 1900)
        # Jitter beyond the collar is still counted: 0.3 s late start -> 0.05 s missed.
        r, _ = rates(transcribe(("spk_0", 1.3, 11), ("spk_1", 12, 22)), "0.25")
        self.assertEqual(r["missed"], 5)

    def test_overlapping_speech(self):
        # Both speak 5-7 s; the hypothesis hears only the doctor there: 2 s missed of 22 s.
        truth = {"turns": TRUTH["turns"] + [{"speaker": "patient", "start_ms": 5000,
                                             "end_ms": 7000}]}
        r, _ = rates(transcribe(("spk_0", 1, 11), ("spk_1", 12, 22)), truth=truth)
        self.assertEqual((r["speech"], r["missed"], r["confusion"], r["false_alarm"]),
                         (2200, 200, 0, 0))
        # Two hypothesis speakers where there is one: a false alarm, not a confusion.
        r, _ = rates(transcribe(("spk_0", 1, 11), ("spk_1", 10, 11), ("spk_1", 12, 22)))
        self.assertEqual((r["false_alarm"], r["confusion"], r["missed"]), (100, 0, 0))

    def test_word_items_and_numeric_times(self):
        hyp = {"results": {"items": [
            {"start_time": 1, "end_time": 11, "type": "pronunciation", "speaker_label": "spk_0",
             "alternatives": [{"content": "a"}]},
            {"type": "punctuation", "alternatives": [{"content": "."}]},
            {"start_time": "12.0", "end_time": "22.004", "type": "pronunciation",
             "speaker_label": "spk_1", "alternatives": [{"content": "b"}]}]}}
        _, d = rates(hyp)
        self.assertEqual(d, 0)

    def test_command_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            truth, hyp = os.path.join(tmp, "t.json"), os.path.join(tmp, "h.json")
            with open(truth, "w") as f:
                json.dump(TRUTH, f)
            with open(hyp, "w") as f:
                json.dump(transcribe(("spk_1", 1, 11), ("spk_0", 12, 18)), f)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                self.assertEqual(der.main([truth, hyp, truth, truth, "--json"]), 0)
            doc = json.loads(out.getvalue())
            # results[0] is at the 0.25 s collar, results[1] at collar 0.
            self.assertEqual(doc["files"][0]["results"][1]["der_pct"], 20)
            self.assertAlmostEqual(doc["files"][0]["results"][0]["der_pct"], 375 / 19)  # 3.75 s of 19 s
            self.assertEqual(doc["files"][1]["results"][0]["der_pct"], 0)
            self.assertEqual(doc["total"][1]["der_pct"], 10)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                der.main([truth, hyp])
            self.assertIn("collar 0: DER 20.00%", out.getvalue())
            self.assertIn("spk_1->doctor", out.getvalue())
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(der.main([truth, truth + ".missing"]), 2)


if __name__ == "__main__":
    unittest.main()
