#!/usr/bin/env python3
"""Tests for voice_model.py (safetensors writer/reader, LSTM gate order, mel features, embeddings).

Run with plain python3 + numpy (``.venv-whisper/bin/python scripts/test_voice_model.py``) or under
pytest. Everything runs on synthetic weights; the checks against the real converted model run
when ``models/voice-encoder.safetensors`` (or ``$TELEPIPE_VOICE_MODEL``) exists and are skipped
otherwise. Expected mel filter values come from ``librosa.filters.mel(sr=16000, n_fft=400,
n_mels=40)`` (librosa 0.11.0).
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import voice_model as vm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REAL_MODEL = Path(os.environ.get("TELEPIPE_VOICE_MODEL", ROOT / "models" / "voice-encoder.safetensors"))
REAL_REFERENCE = REAL_MODEL.with_name("voice-encoder.reference.json")


def random_weights(seed: int = 0, scale: float = 0.1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: (scale * rng.standard_normal(shape)).astype(np.float32) for name, shape in vm.TENSORS.items()}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class SafetensorsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "m.safetensors"

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_round_trip_and_raw_layout(self) -> None:
        tensors = random_weights(1)
        vm.write_safetensors(self.path, tensors, vm.METADATA)
        raw = self.path.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        self.assertEqual(n % 8, 0, "header length must be a multiple of 8")
        header_bytes = raw[8 : 8 + n]
        self.assertTrue(header_bytes.startswith(b"{"))
        self.assertTrue(header_bytes.rstrip(b" ").endswith(b"}"), "header is JSON padded with spaces only")
        header = json.loads(header_bytes)
        self.assertEqual(header.pop("__metadata__"), vm.METADATA)
        self.assertEqual(list(header), list(vm.TENSORS))
        data = raw[8 + n :]
        position = 0
        for name, info in header.items():
            self.assertEqual(info["dtype"], "F32")
            self.assertEqual(tuple(info["shape"]), vm.TENSORS[name])
            begin, end = info["data_offsets"]
            self.assertEqual(begin, position, f"{name} not contiguous")
            self.assertEqual(end - begin, 4 * math.prod(info["shape"]))
            # float32 little-endian, row-major
            stored = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
            np.testing.assert_array_equal(stored, tensors[name])
            self.assertEqual(struct.unpack("<f", data[begin : begin + 4])[0], float(tensors[name].flat[0]))
            position = end
        self.assertEqual(position, len(data), "data section must end with the last tensor")

        metadata, parsed = vm.read_safetensors(self.path)
        self.assertEqual(metadata, vm.METADATA)
        for name in vm.TENSORS:
            np.testing.assert_array_equal(parsed[name], tensors[name])
        vm.verify_model(self.path)

    def test_verify_rejects_bad_files(self) -> None:
        tensors = random_weights(2)
        vm.write_safetensors(self.path, tensors, vm.METADATA)
        raw = self.path.read_bytes()
        self.path.write_bytes(raw[:-4])  # truncated
        with self.assertRaises(vm.ConversionError):
            vm.verify_model(self.path)
        self.path.write_bytes(raw + b"\0\0\0\0")  # trailing garbage
        with self.assertRaises(vm.ConversionError):
            vm.verify_model(self.path)
        vm.write_safetensors(self.path, tensors, {"source": "other"})  # wrong metadata
        with self.assertRaises(vm.ConversionError):
            vm.verify_model(self.path)
        del tensors["linear.bias"]  # missing tensor
        vm.write_safetensors(self.path, tensors, vm.METADATA)
        with self.assertRaises(vm.ConversionError):
            vm.verify_model(self.path)
        with self.assertRaises(vm.ConversionError):
            vm.verify_model(Path(self.tmp.name) / "absent.safetensors")


class GateOrderTest(unittest.TestCase):
    """PyTorch stacks the gate rows as i, f, g, o (input, forget, cell candidate, output)."""

    H = 3

    def layer(self, b: np.ndarray, w_ih: np.ndarray | None = None, x: np.ndarray | None = None):
        h = self.H
        x = np.zeros((1, 2, 1)) if x is None else x
        w_ih = np.zeros((4 * h, 1)) if w_ih is None else w_ih
        return vm.lstm_layer(x, w_ih, np.zeros((4 * h, h)), b, np.zeros(4 * h))

    def test_bias_blocks_map_to_i_f_g_o(self) -> None:
        h = self.H
        bi, bf, bg, bo = 0.3, -0.7, 0.9, 1.1
        b = np.concatenate([np.full(h, bi), np.full(h, bf), np.full(h, bg), np.full(h, bo)])
        seq, h_last, c_last = self.layer(b)
        i, f, g, o = sigmoid(bi), sigmoid(bf), math.tanh(bg), sigmoid(bo)
        c1 = i * g
        c2 = f * c1 + i * g
        np.testing.assert_allclose(seq[0, 0], o * math.tanh(c1), rtol=1e-12)
        np.testing.assert_allclose(seq[0, 1], o * math.tanh(c2), rtol=1e-12)
        np.testing.assert_allclose(c_last[0], c2, rtol=1e-12)
        # The check is sensitive to the order: swapping f and g blocks changes the result.
        swapped = np.concatenate([np.full(h, bi), np.full(h, bg), np.full(h, bf), np.full(h, bo)])
        self.assertGreater(np.abs(self.layer(swapped)[1] - h_last).max(), 1e-3)

    def test_input_weights_blocks(self) -> None:
        h = self.H
        # Only the forget block sees the input; with i, g, o biased open the cell saturates to
        # c_t = f_t * c_{t-1} + 1 * tanh(2) with f_t = sigmoid(5 * x_t).
        b = np.concatenate([np.full(h, 30.0), np.zeros(h), np.full(h, 2.0), np.full(h, 30.0)])
        w_ih = np.zeros((4 * h, 1))
        w_ih[h : 2 * h] = 5.0
        x = np.array([[[-1.0], [1.0]]])
        _, h_last, c_last = self.layer(b, w_ih, x)
        g = math.tanh(2.0)
        c2 = sigmoid(5.0) * (sigmoid(-5.0) * 0 + g) + g
        np.testing.assert_allclose(c_last[0], c2, rtol=1e-9)
        np.testing.assert_allclose(h_last[0], math.tanh(c2), rtol=1e-9)

    def test_layers_chain_on_hidden_sequence(self) -> None:
        w = random_weights(3)
        x = np.random.default_rng(4).random((1, 7, vm.N_MELS))
        seq = x
        for layer in range(vm.N_LAYERS):
            seq, h, _ = vm.lstm_layer(seq, *(w[f"lstm.{k}_l{layer}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        raw = np.maximum(h @ w["linear.weight"].T.astype(np.float64) + w["linear.bias"], 0)
        np.testing.assert_allclose(vm.embed(w, x[0]), raw[0] / np.linalg.norm(raw[0]), rtol=1e-12)


class MelTest(unittest.TestCase):
    def test_filter_shape_and_rows(self) -> None:
        fb = vm.mel_filters()
        self.assertEqual(fb.shape, (40, 201))
        self.assertEqual(fb.dtype, np.float32)
        self.assertTrue(np.all(fb >= 0))
        sums = fb.sum(axis=1)
        # Slaney area normalisation: each row integrates to ~1 per Hz, i.e. ~1/40 per 40 Hz bin.
        self.assertTrue(np.all((sums > 0.0240) & (sums < 0.0260)), sums)
        np.testing.assert_allclose(sums[[0, 5, 15, 39]], [0.02480904, 0.025734475, 0.025868205, 0.024978757], rtol=1e-6)
        peaks = fb.argmax(axis=1)
        self.assertTrue(np.all(np.diff(peaks) >= 0))
        for row in fb:  # one contiguous triangle per row
            nz = np.nonzero(row)[0]
            self.assertEqual(nz[-1] - nz[0] + 1, len(nz))
        np.testing.assert_array_equal(np.nonzero(fb[0])[0], [1, 2, 3])
        self.assertEqual((peaks[0], peaks[13], peaks[39]), (2, 26, 185))
        np.testing.assert_allclose(fb[[0, 13, 39]].max(axis=1), [0.012404521, 0.011443511, 0.0017249404], rtol=1e-6)
        self.assertEqual(fb[:, 0].max(), 0.0)  # DC and Nyquist carry no weight
        self.assertEqual(fb[:, 200].max(), 0.0)

    def test_framing_padding_and_window(self) -> None:
        rng = np.random.default_rng(5)
        x = (0.1 * rng.standard_normal(1000)).astype(np.float32)
        mels = vm.mel_spectrogram(x)
        self.assertEqual(mels.shape, (1 + 1000 // 160, 40))
        self.assertEqual(mels.dtype, np.float32)
        fb = vm.mel_filters().astype(np.float64)
        win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
        padded = np.concatenate([np.zeros(200), x.astype(np.float64), np.zeros(200)])
        for k in (0, 1, 3, len(mels) - 1):
            frame = padded[160 * k : 160 * k + 400]
            expected = fb @ (np.abs(np.fft.rfft(frame * win)) ** 2)
            np.testing.assert_allclose(mels[k], expected, rtol=1e-6)
        self.assertEqual([len(vm.mel_spectrogram(np.zeros(n))) for n in (159, 160, 32000)], [1, 2, 201])

    def test_tone_lands_in_its_band(self) -> None:
        t = np.arange(16000) / 16000
        mels = vm.mel_spectrogram(0.1 * np.sin(2 * np.pi * 1000 * t))
        band = int(mels[50].argmax())
        centre = np.fft.rfftfreq(400, 1 / 16000)[vm.mel_filters()[band].argmax()]
        self.assertLess(abs(centre - 1000), 80)

    def test_volume_normalisation(self) -> None:
        quiet = 0.001 * np.sin(np.arange(16000) * 0.05)
        out, gain = vm.normalize_volume(quiet)
        self.assertGreater(gain, 1)
        self.assertAlmostEqual(20 * math.log10(math.sqrt(np.mean(out**2))), -30.0, places=9)
        loud = 0.5 * np.sin(np.arange(16000) * 0.05)
        out, gain = vm.normalize_volume(loud)
        self.assertEqual(gain, 1.0)
        np.testing.assert_array_equal(out, loud)
        out, gain = vm.normalize_volume(np.zeros(100))
        self.assertEqual(gain, 1.0)
        self.assertFalse(np.any(out))

    def test_reference_signal(self) -> None:
        x = vm.reference_signal()
        self.assertEqual((x.shape, x.dtype), ((32000,), np.float32))
        self.assertLessEqual(np.abs(x).max(), 0.1)
        self.assertLess(20 * math.log10(math.sqrt(np.mean(x.astype(np.float64) ** 2))), -30.0)  # gain is exercised
        t = 12345 / 16000
        value = 0.1 * (0.55 + 0.45 * math.sin(2 * math.pi * 3 * t)) * (
            0.35 * math.sin(2 * math.pi * 220 * t)
            + 0.25 * math.sin(2 * math.pi * 660 * t + 0.5)
            + 0.15 * math.sin(2 * math.pi * 1500 * t + 1.0)
            + 0.25 * math.sin(2 * math.pi * (300 * t + 450 * t * t))
        )
        self.assertLessEqual(abs(float(x[12345]) - value), 1.5e-8)  # float32 rounding of the formula


class EmbeddingTest(unittest.TestCase):
    def test_unit_norm_nonnegative_deterministic(self) -> None:
        w = random_weights(6)
        mels = vm.mel_spectrogram(vm.normalize_volume(vm.reference_signal())[0])[:160]
        a = vm.embed(w, mels)
        b = vm.embed(w, mels.copy())
        self.assertEqual(a.shape, (256,))
        np.testing.assert_array_equal(a, b)
        self.assertAlmostEqual(float(np.linalg.norm(a)), 1.0, places=12)
        self.assertTrue(np.all(a >= 0))
        batch = vm.embed(w, np.stack([mels, mels[::-1]]))
        np.testing.assert_allclose(batch[0], a, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-12)

    def test_reference_json_shape(self) -> None:
        ref = vm.reference(random_weights(7))
        self.assertEqual(ref["n_frames"], 201)
        self.assertEqual(len(ref["mel_first_frame"]), 40)
        self.assertEqual(len(ref["mel_frame_80"]), 40)
        self.assertEqual(np.array(ref["mel_filters"]).shape, (40, 201))
        self.assertAlmostEqual(float(np.linalg.norm(ref["embedding"])), 1.0, places=6)
        self.assertEqual(ref["signal"], vm.SIGNAL_FORMULA)
        json.dumps(ref)  # serialisable
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ref.json"
            path.write_text(json.dumps(ref))
            vm.verify_reference(path)


@unittest.skipUnless(REAL_MODEL.is_file(), f"{REAL_MODEL} not fetched (scripts/fetch-voice-model.sh)")
class RealModelTest(unittest.TestCase):
    def test_model_and_reference(self) -> None:
        weights = vm.verify_model(REAL_MODEL)
        ref = vm.reference(weights)
        self.assertAlmostEqual(float(np.linalg.norm(ref["embedding"])), 1.0, places=6)
        if REAL_REFERENCE.is_file():
            stored = vm.verify_reference(REAL_REFERENCE)
            self.assertEqual((stored["n_frames"], stored["signal"]), (ref["n_frames"], ref["signal"]))
            for key in ("mel_first_frame", "mel_frame_80", "embedding"):
                np.testing.assert_allclose(stored[key], ref[key], rtol=1e-5, atol=1e-7, err_msg=key)
        # Speaker-embedding sanity: the same (synthetic) voice at another loudness and a slightly
        # different excerpt stays closer than an unrelated noise signal.
        x = vm.normalize_volume(vm.reference_signal())[0]
        m = vm.mel_spectrogram(x)
        a, b = vm.embed(weights, m[:160]), vm.embed(weights, m[20:180])
        noise = vm.normalize_volume(np.random.default_rng(8).standard_normal(32000) * 0.01)[0]
        c = vm.embed(weights, vm.mel_spectrogram(noise)[:160])
        self.assertGreater(a @ b, a @ c)


if __name__ == "__main__":
    unittest.main()
