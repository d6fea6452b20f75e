#!/usr/bin/env python3
"""Tests for ct2_to_ggml.py on a tiny synthetic CTranslate2 Whisper model the test writes itself.

Run with plain python3 + numpy (e.g. ``.venv-whisper/bin/python scripts/test_ct2_to_ggml.py``)
or under pytest. Checks the ggml header, mel filters, vocabulary bytes, tensor names, shapes,
types and data layout (including the split of CTranslate2's fused attention projections).
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ct2_to_ggml as conv  # noqa: E402

D = 8  # model width
HEADS = 2
N_MELS = 4
AUDIO_CTX = 6
TEXT_CTX = 5
# Vocabulary: 5 ordinary byte-level tokens, then the special tokens.
VOCAB = ["a", "Ġthe", "ĠĠ", "Ċ", "Ã©", "<|endoftext|>", "<|startoftranscript|>", "<|en|>"]


def write_string(out: bytearray, text: str) -> None:
    raw = text.encode()
    out += struct.pack("<H", len(raw) + 1) + raw + b"\0"


def synthetic_variables(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A one-encoder-layer, one-decoder-layer Whisper in CTranslate2's naming (float16)."""
    f16 = lambda *shape: rng.standard_normal(shape).astype(np.float16)  # noqa: E731
    v: dict[str, np.ndarray] = {
        "encoder/num_heads": np.array(HEADS, dtype=np.int16),
        "encoder/conv1/weight": f16(D, N_MELS, 3),
        "encoder/conv1/bias": f16(D),
        "encoder/conv2/weight": f16(D, D, 3),
        "encoder/conv2/bias": f16(D),
        "encoder/position_encodings/encodings": f16(AUDIO_CTX, D),
        "encoder/layer_norm/gamma": f16(D),
        "encoder/layer_norm/beta": f16(D),
        "decoder/num_heads": np.array(HEADS, dtype=np.int16),
        "decoder/activation": np.array(3, dtype=np.int8),
        "decoder/scale_embeddings": np.array(0, dtype=np.int8),
        "decoder/embeddings/weight": f16(len(VOCAB), D),
        "decoder/position_encodings/encodings": f16(TEXT_CTX, D),
        "decoder/layer_norm/gamma": f16(D),
        "decoder/layer_norm/beta": f16(D),
    }
    for prefix in ("encoder/layer_0", "decoder/layer_0"):
        v[f"{prefix}/self_attention/layer_norm/gamma"] = f16(D)
        v[f"{prefix}/self_attention/layer_norm/beta"] = f16(D)
        v[f"{prefix}/self_attention/linear_0/weight"] = f16(3 * D, D)
        bias = f16(3 * D)
        bias[D : 2 * D] = 0  # Whisper's key projection has no bias
        v[f"{prefix}/self_attention/linear_0/bias"] = bias
        v[f"{prefix}/self_attention/linear_1/weight"] = f16(D, D)
        v[f"{prefix}/self_attention/linear_1/bias"] = f16(D)
        v[f"{prefix}/ffn/layer_norm/gamma"] = f16(D)
        v[f"{prefix}/ffn/layer_norm/beta"] = f16(D)
        v[f"{prefix}/ffn/linear_0/weight"] = f16(4 * D, D)
        v[f"{prefix}/ffn/linear_0/bias"] = f16(4 * D)
        v[f"{prefix}/ffn/linear_1/weight"] = f16(D, 4 * D)
        v[f"{prefix}/ffn/linear_1/bias"] = f16(D)
    p = "decoder/layer_0/attention"
    v[f"{p}/layer_norm/gamma"] = f16(D)
    v[f"{p}/layer_norm/beta"] = f16(D)
    v[f"{p}/linear_0/weight"] = f16(D, D)
    v[f"{p}/linear_0/bias"] = f16(D)
    v[f"{p}/linear_1/weight"] = f16(2 * D, D)
    kv_bias = f16(2 * D)
    kv_bias[:D] = 0
    v[f"{p}/linear_1/bias"] = kv_bias
    v[f"{p}/linear_2/weight"] = f16(D, D)
    v[f"{p}/linear_2/bias"] = f16(D)
    return v


def write_ct2_model(path: Path, variables: dict[str, np.ndarray], version: int = 6) -> None:
    """Writes CTranslate2's model.bin layout (the format ct2_to_ggml.py documents)."""
    dtype_ids = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3, np.dtype("float16"): 4}
    out = bytearray(struct.pack("<I", version))
    write_string(out, "WhisperSpec")
    out += struct.pack("<I", 3)  # spec revision
    out += struct.pack("<I", len(variables))
    for name, value in sorted(variables.items()):
        write_string(out, name)
        out += struct.pack("<B", value.ndim)
        for dim in value.shape:
            out += struct.pack("<I", dim)
        out += struct.pack("<B", dtype_ids[value.dtype])
        raw = value.astype(value.dtype.newbyteorder("<")).tobytes()
        out += struct.pack("<I", len(raw)) + raw
    out += struct.pack("<I", 1)
    write_string(out, "decoder/projection/weight")
    write_string(out, "decoder/embeddings/weight")
    path.write_bytes(bytes(out))


class ConverterTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)
        self.variables = synthetic_variables(np.random.default_rng(7))
        write_ct2_model(self.dir / "model.bin", self.variables)
        (self.dir / "vocabulary.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
        (self.dir / "config.json").write_text(json.dumps({"suppress_ids": []}))
        self.out = self.dir / "ggml-synthetic.bin"
        conv.convert(self.dir, self.out)
        self.model = conv.read_ggml(self.out, load_data=True)

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_reads_ct2_model_back(self) -> None:
        spec, variables, aliases = conv.read_ct2_model(self.dir / "model.bin")
        self.assertEqual(spec, "WhisperSpec")
        self.assertEqual(aliases, {"decoder/projection/weight": "decoder/embeddings/weight"})
        np.testing.assert_array_equal(variables["encoder/conv1/weight"], self.variables["encoder/conv1/weight"])
        self.assertEqual(int(variables["decoder/num_heads"]), HEADS)

    def test_header(self) -> None:
        raw = self.out.read_bytes()
        self.assertEqual(struct.unpack("<I", raw[:4])[0], 0x67676D6C)
        self.assertEqual(raw[:4], b"lmgg")  # the magic as little-endian bytes
        header = struct.unpack("<11i", raw[4:48])
        self.assertEqual(
            header,
            # n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
            # n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
            (len(VOCAB), AUDIO_CTX, D, HEADS, 1, TEXT_CTX, D, HEADS, 1, N_MELS, 1),
        )

    def test_mel_filters_block(self) -> None:
        filters = self.model["filters"]
        self.assertEqual(filters.shape, (N_MELS, 201))
        np.testing.assert_allclose(filters, conv.mel_filters(N_MELS), rtol=0, atol=0)

    def test_vocabulary_is_decoded_to_bytes(self) -> None:
        # Only ordinary tokens (below <|endoftext|>), byte-level strings mapped back to bytes.
        self.assertEqual(self.model["tokens"], [b"a", b" the", b"  ", b"\n", "é".encode()])

    def test_tensor_names_shapes_and_types(self) -> None:
        tensors = self.model["tensors"]
        expected = {
            "encoder.positional_embedding": (0, (AUDIO_CTX, D)),
            "encoder.conv1.weight": (1, (D, N_MELS, 3)),
            "encoder.conv1.bias": (0, (D, 1)),
            "encoder.conv2.weight": (1, (D, D, 3)),
            "encoder.conv2.bias": (0, (D, 1)),
            "encoder.blocks.0.attn_ln.weight": (0, (D,)),
            "encoder.blocks.0.attn_ln.bias": (0, (D,)),
            "encoder.blocks.0.attn.query.weight": (1, (D, D)),
            "encoder.blocks.0.attn.query.bias": (0, (D,)),
            "encoder.blocks.0.attn.key.weight": (1, (D, D)),
            "encoder.blocks.0.attn.value.weight": (1, (D, D)),
            "encoder.blocks.0.attn.value.bias": (0, (D,)),
            "encoder.blocks.0.attn.out.weight": (1, (D, D)),
            "encoder.blocks.0.attn.out.bias": (0, (D,)),
            "encoder.blocks.0.mlp_ln.weight": (0, (D,)),
            "encoder.blocks.0.mlp_ln.bias": (0, (D,)),
            "encoder.blocks.0.mlp.0.weight": (1, (4 * D, D)),
            "encoder.blocks.0.mlp.0.bias": (0, (4 * D,)),
            "encoder.blocks.0.mlp.2.weight": (1, (D, 4 * D)),
            "encoder.blocks.0.mlp.2.bias": (0, (D,)),
            "encoder.ln_post.weight": (0, (D,)),
            "encoder.ln_post.bias": (0, (D,)),
            "decoder.positional_embedding": (0, (TEXT_CTX, D)),
            "decoder.token_embedding.weight": (1, (len(VOCAB), D)),
            "decoder.blocks.0.attn_ln.weight": (0, (D,)),
            "decoder.blocks.0.attn_ln.bias": (0, (D,)),
            "decoder.blocks.0.attn.query.weight": (1, (D, D)),
            "decoder.blocks.0.attn.query.bias": (0, (D,)),
            "decoder.blocks.0.attn.key.weight": (1, (D, D)),
            "decoder.blocks.0.attn.value.weight": (1, (D, D)),
            "decoder.blocks.0.attn.value.bias": (0, (D,)),
            "decoder.blocks.0.attn.out.weight": (1, (D, D)),
            "decoder.blocks.0.attn.out.bias": (0, (D,)),
            "decoder.blocks.0.cross_attn_ln.weight": (0, (D,)),
            "decoder.blocks.0.cross_attn_ln.bias": (0, (D,)),
            "decoder.blocks.0.cross_attn.query.weight": (1, (D, D)),
            "decoder.blocks.0.cross_attn.query.bias": (0, (D,)),
            "decoder.blocks.0.cross_attn.key.weight": (1, (D, D)),
            "decoder.blocks.0.cross_attn.value.weight": (1, (D, D)),
            "decoder.blocks.0.cross_attn.value.bias": (0, (D,)),
            "decoder.blocks.0.cross_attn.out.weight": (1, (D, D)),
            "decoder.blocks.0.cross_attn.out.bias": (0, (D,)),
            "decoder.blocks.0.mlp_ln.weight": (0, (D,)),
            "decoder.blocks.0.mlp_ln.bias": (0, (D,)),
            "decoder.blocks.0.mlp.0.weight": (1, (4 * D, D)),
            "decoder.blocks.0.mlp.0.bias": (0, (4 * D,)),
            "decoder.blocks.0.mlp.2.weight": (1, (D, 4 * D)),
            "decoder.blocks.0.mlp.2.bias": (0, (D,)),
            "decoder.ln.weight": (0, (D,)),
            "decoder.ln.bias": (0, (D,)),
        }
        got = {name: (ttype, shape) for name, (ttype, shape, _) in tensors.items()}
        self.assertEqual(got, expected)

    def test_ne_is_the_reversed_numpy_shape(self) -> None:
        # Find the conv1 weight header in the raw bytes: n_dims=3, then ne = (3, n_mels, D).
        raw = self.out.read_bytes()
        name = b"encoder.conv1.weight"
        at = raw.index(name)
        n_dims, name_len, ttype, ne0, ne1, ne2 = struct.unpack("<6i", raw[at - 24 : at])
        self.assertEqual((n_dims, name_len, ttype), (3, len(name), 1))
        self.assertEqual((ne0, ne1, ne2), (3, N_MELS, D))

    def test_data_layout_and_qkv_split(self) -> None:
        t = {name: array for name, (_, _, array) in self.model["tensors"].items()}
        v = self.variables
        for side in ("encoder", "decoder"):
            fused_w = v[f"{side}/layer_0/self_attention/linear_0/weight"]
            fused_b = v[f"{side}/layer_0/self_attention/linear_0/bias"]
            np.testing.assert_array_equal(t[f"{side}.blocks.0.attn.query.weight"], fused_w[:D])
            np.testing.assert_array_equal(t[f"{side}.blocks.0.attn.key.weight"], fused_w[D : 2 * D])
            np.testing.assert_array_equal(t[f"{side}.blocks.0.attn.value.weight"], fused_w[2 * D :])
            np.testing.assert_array_equal(t[f"{side}.blocks.0.attn.query.bias"], fused_b[:D].astype(np.float32))
            np.testing.assert_array_equal(t[f"{side}.blocks.0.attn.value.bias"], fused_b[2 * D :].astype(np.float32))
        kv = v["decoder/layer_0/attention/linear_1/weight"]
        np.testing.assert_array_equal(t["decoder.blocks.0.cross_attn.key.weight"], kv[:D])
        np.testing.assert_array_equal(t["decoder.blocks.0.cross_attn.value.weight"], kv[D:])
        # Row-major data: element [i, j, k] of the conv kernel is at flat index (i*N_MELS + j)*3 + k.
        conv1 = v["encoder/conv1/weight"]
        np.testing.assert_array_equal(t["encoder.conv1.weight"].reshape(-1), conv1.reshape(-1))
        self.assertEqual(t["encoder.conv1.weight"].reshape(-1)[(2 * N_MELS + 1) * 3 + 2], conv1[2, 1, 2])
        # float16 kept exactly; float32 tensors are exact widenings.
        np.testing.assert_array_equal(t["decoder.token_embedding.weight"], v["decoder/embeddings/weight"])
        np.testing.assert_array_equal(t["encoder.conv2.bias"].reshape(-1), v["encoder/conv2/bias"].astype(np.float32))
        np.testing.assert_array_equal(t["decoder.ln.weight"], v["decoder/layer_norm/gamma"].astype(np.float32))
        np.testing.assert_array_equal(
            t["decoder.positional_embedding"], v["decoder/position_encodings/encodings"].astype(np.float32)
        )

    def test_f32_output(self) -> None:
        out = self.dir / "ggml-f32.bin"
        conv.convert(self.dir, out, ftype=0)
        model = conv.read_ggml(out, load_data=True)
        self.assertEqual(model["hparams"]["ftype"], 0)
        self.assertTrue(all(ttype == 0 for ttype, _, _ in model["tensors"].values()))

    def test_vocabulary_from_tokenizer_json(self) -> None:
        (self.dir / "vocabulary.txt").unlink()
        tokenizer = {
            "model": {"type": "BPE", "vocab": {tok: i for i, tok in enumerate(VOCAB[:5])}},
            "added_tokens": [{"id": i, "content": tok} for i, tok in enumerate(VOCAB) if i >= 5],
        }
        (self.dir / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
        out = self.dir / "ggml-tok.bin"
        conv.convert(self.dir, out)
        self.assertEqual(conv.read_ggml(out)["tokens"], self.model["tokens"])

    def test_verify_accepts_complete_and_rejects_truncated(self) -> None:
        self.assertEqual(conv.verify_ggml(self.out)["hparams"]["n_vocab"], len(VOCAB))
        broken = self.dir / "broken.bin"
        broken.write_bytes(self.out.read_bytes()[:-3])
        with self.assertRaisesRegex(conv.ConversionError, "truncated"):
            conv.verify_ggml(broken)
        self.assertEqual(conv.main(["--verify", str(broken)]), 1)

    def test_errors_are_clear(self) -> None:
        bad = self.dir / "bad"
        bad.mkdir()
        (bad / "model.bin").write_bytes(b"PK\x03\x04 a zip, not a model")
        with self.assertRaisesRegex(conv.ConversionError, "binary version"):
            conv.convert(bad, self.dir / "x.bin")
        with self.assertRaisesRegex(conv.ConversionError, "not found"):
            conv.convert(self.dir / "missing", self.dir / "x.bin")
        quantized = dict(self.variables)
        quantized["decoder/embeddings/weight_scale"] = np.ones(len(VOCAB), dtype=np.float32)
        with self.assertRaisesRegex(conv.ConversionError, "quantized"):
            conv.whisper_tensors(quantized)
        truncated = self.dir / "trunc"
        truncated.mkdir()
        (truncated / "model.bin").write_bytes((self.dir / "model.bin").read_bytes()[:500])
        with self.assertRaisesRegex(conv.ConversionError, "truncated"):
            conv.convert(truncated, self.dir / "x.bin")
        self.assertFalse((self.dir / "x.bin").exists())


class MelFilterTest(unittest.TestCase):
    def test_matches_known_whisper_values(self) -> None:
        f = conv.mel_filters(80)
        self.assertEqual(f.shape, (80, 201))
        self.assertEqual(f.dtype, np.float32)
        # whisper's assets/mel_filters.npz (librosa) has 0.02486259 here. By hand: 82 points
        # evenly spaced on the Slaney scale up to 8 kHz are 37.24 Hz apart below 1 kHz, so
        # filter 0 rises 0..37.24 Hz and falls to 74.48 Hz with height 2/74.48; at bin 1 (40 Hz)
        # that is (74.48-40)/37.24 * 2/74.48.
        step = float(conv._mel_to_hz(conv._hz_to_mel(8000.0) / 81))
        by_hand = (2 * step - 40) / step * 2 / (2 * step)
        self.assertAlmostEqual(float(f[0, 1]), by_hand, places=6)
        self.assertAlmostEqual(float(f[0, 1]), 0.02486259, places=7)

    def test_triangles(self) -> None:
        f = conv.mel_filters(80)
        self.assertTrue((f >= 0).all())
        peaks = f.argmax(axis=1)
        self.assertTrue((np.diff(peaks) >= 0).all(), "filter centres rise with frequency")
        for row in f:
            nz = np.nonzero(row)[0]
            self.assertTrue((np.diff(nz) == 1).all(), "each filter is one contiguous band")
        # Slaney normalisation: every triangle has unit area in Hz. Summing 40 Hz bins samples
        # a triangle exactly only when its corners fall on bins, so allow 10% (filters 30-40
        # are as wide as 2-3 bins and sample worst).
        areas = f.sum(axis=1) * 40.0
        np.testing.assert_allclose(areas, 1.0, rtol=0.1)
        np.testing.assert_allclose(areas[45:], 1.0, rtol=0.02)

    def test_128_mels(self) -> None:
        self.assertEqual(conv.mel_filters(128).shape, (128, 201))


class QuantizationTest(unittest.TestCase):
    """q8_0 and q5_0 blocks as ggml's reference quantizers write them."""

    def setUp(self) -> None:
        self.weights = np.random.default_rng(7).normal(0, 0.05, size=(6, 64)).astype(np.float32)

    def test_q8_0_layout_and_round_trip(self) -> None:
        raw = conv.encode_tensor(conv.GGML_Q8_0, self.weights)
        self.assertEqual(len(raw), 12 * 34)  # 12 blocks of 32, 34 bytes each
        first_scale = np.frombuffer(raw[:2], dtype="<f2")[0]
        self.assertAlmostEqual(float(first_scale), np.abs(self.weights[0, :32]).max() / 127, places=5)
        back = conv.dequantize(conv.GGML_Q8_0, raw, self.weights.shape)
        step = np.abs(self.weights).max() / 127
        self.assertLessEqual(np.abs(back - self.weights).max(), step * 0.51)

    def test_q5_0_layout_and_round_trip(self) -> None:
        raw = conv.encode_tensor(conv.GGML_Q5_0, self.weights)
        self.assertEqual(len(raw), 12 * 22)
        back = conv.dequantize(conv.GGML_Q5_0, raw, self.weights.shape)
        step = np.abs(self.weights).max() / 16
        self.assertLessEqual(np.abs(back - self.weights).max(), step * 0.51 + 1e-6)
        # The value of largest magnitude in each block is reproduced (to float16 precision).
        blocks = self.weights.reshape(-1, 32)
        extreme = blocks[np.arange(len(blocks)), np.abs(blocks).argmax(axis=1)]
        back_blocks = back.reshape(-1, 32)
        chosen = back_blocks[np.arange(len(blocks)), np.abs(blocks).argmax(axis=1)]
        np.testing.assert_allclose(chosen, extreme, rtol=2e-3)

    def test_rounding_is_half_away_from_zero_like_c(self) -> None:
        self.assertEqual(conv._round_half_away(np.array([0.5, -0.5, 1.5, 2.5])).tolist(), [1.0, -1.0, 2.0, 3.0])

    def test_all_zero_block_is_zero(self) -> None:
        zeros = np.zeros((1, 32), dtype=np.float32)
        for ttype in (conv.GGML_Q8_0, conv.GGML_Q5_0):
            back = conv.dequantize(ttype, conv.encode_tensor(ttype, zeros), zeros.shape)
            self.assertTrue(np.all(back == 0))

    def test_rows_must_fill_whole_blocks(self) -> None:
        with self.assertRaises(conv.ConversionError):
            conv.encode_tensor(conv.GGML_Q8_0, np.zeros((2, 40), dtype=np.float32))

    def test_types_follow_whisper_cpp_loader(self) -> None:
        matrix, conv3d, vector = np.zeros((4, 32)), np.zeros((4, 3, 32)), np.zeros(32)
        q8 = conv.FTYPES["q8_0"]
        self.assertEqual(conv.ggml_type_for("decoder.blocks.0.mlp.0.weight", matrix, q8), conv.GGML_Q8_0)
        self.assertEqual(conv.ggml_type_for("encoder.conv1.weight", conv3d, q8), conv.GGML_F16)
        self.assertEqual(conv.ggml_type_for("encoder.positional_embedding", matrix, q8), conv.GGML_F32)
        self.assertEqual(conv.ggml_type_for("decoder.ln.bias", vector, q8), conv.GGML_F32)
        self.assertEqual(conv.header_ftype(q8), 2007)
        self.assertEqual(conv.header_ftype(conv.FTYPES["f16"]), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
