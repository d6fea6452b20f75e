#!/usr/bin/env python3
"""Convert Resemblyzer's GE2E speaker encoder to safetensors and write a numpy reference for it.

Why: speaker diarization embeds short windows of speech with the GE2E d-vector encoder whose
weights ship in the PyPI wheel ``Resemblyzer==0.1.4`` (Apache-2.0) as ``resemblyzer/pretrained.pt``,
a legacy (pre-1.6, non-zip) PyTorch pickle. The Rust side reads safetensors, so this script
re-writes the weights without torch, and computes features and an embedding for a fixed test
signal in numpy so the Rust implementation can be checked against them.

Usage::

    voice_model.py convert PRETRAINED_PT OUT.safetensors   # checkpoint -> safetensors
    voice_model.py reference OUT.safetensors OUT.json      # numpy reference for the Rust tests
    voice_model.py verify OUT.safetensors [REF.json]       # structural check, exit 0 if valid

Requires numpy only (``scripts/fetch-voice-model.sh`` keeps it in ``.venv-whisper``).

Input: legacy PyTorch checkpoint
--------------------------------
Five pickles and raw storages, in that order: the magic number 0x1950a86a20f9469cfc6c, the
protocol version 1001, a sys-info dict (little-endian, type sizes), the object (here
``{"step", "model_state", "optimizer_state"}``) whose tensors are ``torch._utils._rebuild_tensor_v2``
calls on persistent ids ``("storage", torch.FloatStorage, key, location, numel, None)``, the list
of storage keys, then per key ``int64 numel`` and the raw little-endian data. The unpickler below
only resolves those few globals (anything else is refused, so a hostile pickle cannot run code).

Only the 14 tensors of Resemblyzer's ``VoiceEncoder`` are kept: the optimizer state and the GE2E
loss scalars ``similarity_weight``/``similarity_bias`` (which ``VoiceEncoder`` itself ignores via
``load_state_dict(strict=False)``) are dropped.

Model (``resemblyzer/voice_encoder.py``)
----------------------------------------
``nn.LSTM(40, 256, num_layers=3, batch_first=True)`` -> last layer's final hidden state ->
``nn.Linear(256, 256)`` -> ReLU -> divide by the L2 norm. Per layer, with PyTorch's gate order
(rows of ``weight_ih``/``weight_hh``/biases are the blocks i, f, g, o of 256 each)::

    z = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh ;  i, f, g, o = split(z, 4)
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g) ;  h_t = sigmoid(o) * tanh(c_t)

with h_0 = c_0 = 0. Layer l+1 takes layer l's h_t sequence as input.

Output: safetensors
-------------------
``u64 header_len`` (little-endian), a JSON header padded with spaces to a multiple of 8, then the
tensor data. Header: ``__metadata__`` plus, per tensor, ``{"dtype": "F32", "shape": [...],
"data_offsets": [begin, end]}`` (byte offsets into the data section, contiguous, in the order of
:data:`TENSORS`). Names are the PyTorch state-dict keys.

Features (Resemblyzer ``audio.py`` with librosa >= 0.9.1, which Resemblyzer 0.1.4 requires)
----------------------------------------------------------------------------------------------
16 kHz mono float samples in [-1, 1]:

1. volume normalisation to -30 dBFS, increase only: ``rms = sqrt(mean(x^2))`` over the whole
   input; if ``20 log10(rms) < -30`` multiply by ``10^((-30 - 20 log10(rms)) / 20)``
   (Resemblyzer scales by 32767 before and after, which cancels). Silence is left as is.
2. ``librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40)``:
   pad 200 zeros on both sides (center=True, pad_mode "constant", librosa's default since 0.9);
   frame k = padded[160k : 160k + 400], i.e. original samples [160k - 200, 160k + 200);
   ``n_frames = 1 + len(x) // 160``; multiply by the periodic Hann window
   ``w[n] = 0.5 - 0.5 cos(2 pi n / 400)``; 400-point real FFT (201 bins, no zero-padding, no
   scaling); power ``|X|^2``; mel = filters (40 x 201) @ power. No log, no floor.
3. cast to float32, frames x 40; windows of 160 frames (1.6 s) go through the model.

Mel filters are ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)``: Slaney mel scale
(linear below 1 kHz, 200/3 Hz per mel; logarithmic above, log(6.4)/27 per mel), 42 points evenly
spaced in mel from 0 Hz to 8 kHz, triangles over the FFT bin frequencies k * 40 Hz, Slaney area
normalisation 2 / (f[i+2] - f[i]), stored as float32 (as librosa does).

Resemblyzer's ``preprocess_wav`` also trims long silences with webrtcvad before the mel step;
that is a VAD concern and not part of this reference.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ct2_to_ggml  # noqa: E402  (same folder: the shared Slaney mel filter bank)

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 40
WINDOW_FRAMES = 160
HIDDEN = 256
N_LAYERS = 3
TARGET_DBFS = -30.0

PRETRAINED_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
METADATA = {
    "source": "Resemblyzer==0.1.4 resemblyzer/pretrained.pt",
    "license": "Apache-2.0",
    "format": "ge2e-lstm-3x256",
}


def _tensor_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(N_LAYERS):
        shapes[f"lstm.weight_ih_l{layer}"] = (4 * HIDDEN, N_MELS if layer == 0 else HIDDEN)
        shapes[f"lstm.weight_hh_l{layer}"] = (4 * HIDDEN, HIDDEN)
        shapes[f"lstm.bias_ih_l{layer}"] = (4 * HIDDEN,)
        shapes[f"lstm.bias_hh_l{layer}"] = (4 * HIDDEN,)
    shapes["linear.weight"] = (HIDDEN, HIDDEN)
    shapes["linear.bias"] = (HIDDEN,)
    return shapes


TENSORS = _tensor_shapes()  # name -> shape, in file order

# The deterministic test signal of the reference (documented in the JSON as "signal").
SIGNAL_SECONDS = 2.0
SIGNAL_FORMULA = (
    "x[n] = float32(0.1 * (0.55 + 0.45*sin(2*pi*3*t)) * (0.35*sin(2*pi*220*t) + 0.25*sin(2*pi*660*t + 0.5)"
    " + 0.15*sin(2*pi*1500*t + 1.0) + 0.25*sin(2*pi*(300*t + 450*t^2)))), t = n/16000, n = 0..31999,"
    " evaluated in float64 then rounded to float32; the reference then applies the -30 dBFS"
    " increase-only volume normalisation (in float64, gain in the JSON) before the mel spectrogram"
)


class ConversionError(Exception):
    """A problem with an input or output file, reported without a traceback."""


# --------------------------------------------------------------------------------------------
# Legacy PyTorch checkpoint reader (no torch)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ByteStorage": np.dtype("u1"),
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _TensorRef:
    def __init__(self, key: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.key, self.offset, self.size, self.stride = key, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride, *_rest):
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a legacy state-dict checkpoint uses; refuses everything else."""

    def __init__(self, f) -> None:
        super().__init__(f)
        self.storages: dict[str, tuple[str, int]] = {}

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise ConversionError(f"checkpoint references unsupported global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ConversionError(f"unsupported persistent id {pid!r}")
        stype, key, numel = pid[1], str(pid[2]), int(pid[4])
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(stype, _StorageType):
            raise ConversionError(f"unsupported storage type {stype!r}")
        if view is not None:
            raise ConversionError("storage views are not supported")
        self.storages[key] = (stype.name, numel)
        return key


def load_legacy_checkpoint(path: Path) -> dict:
    """The object of a legacy PyTorch ``.pt`` file with tensors as float/int numpy arrays."""
    with open(path, "rb") as f:
        if f.read(2)[:1] == b"PK":
            raise ConversionError(f"{path}: zip-format checkpoint (PyTorch >= 1.6), expected the legacy format")
        f.seek(0)
        try:
            magic = _RestrictedUnpickler(f).load()
            protocol = _RestrictedUnpickler(f).load()
            sys_info = _RestrictedUnpickler(f).load()
            unpickler = _RestrictedUnpickler(f)
            obj = unpickler.load()
            keys = _RestrictedUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise ConversionError(f"{path}: not a legacy PyTorch checkpoint ({err})") from None
        if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
            raise ConversionError(f"{path}: bad magic/protocol ({magic!r}, {protocol!r})")
        if not (isinstance(sys_info, dict) and sys_info.get("little_endian")):
            raise ConversionError(f"{path}: only little-endian checkpoints are supported")
        data: dict[str, np.ndarray] = {}
        for key in keys:
            key = str(key)
            if key not in unpickler.storages:
                raise ConversionError(f"{path}: storage {key} is not referenced")
            type_name, numel = unpickler.storages[key]
            dtype = _STORAGE_DTYPES[type_name]
            header = f.read(8)
            if len(header) != 8:
                raise ConversionError(f"{path}: truncated before storage {key}")
            (count,) = struct.unpack("<q", header)
            if count != numel:
                raise ConversionError(f"{path}: storage {key} holds {count} elements, expected {numel}")
            raw = f.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise ConversionError(f"{path}: storage {key} is truncated")
            data[key] = np.frombuffer(raw, dtype=dtype)

    def materialise(o):
        if isinstance(o, _TensorRef):
            buf = data.get(o.key)
            if buf is None:
                raise ConversionError(f"{path}: tensor refers to missing storage {o.key}")
            if any(s < 0 for s in o.size) or any(s < 0 for s in o.stride):
                raise ConversionError(f"{path}: negative size/stride in a tensor")
            if math.prod(o.size) == 0:
                return np.zeros(o.size, dtype=buf.dtype)
            last = o.offset + sum((n - 1) * s for n, s in zip(o.size, o.stride))
            if o.offset < 0 or last >= len(buf):
                raise ConversionError(f"{path}: tensor exceeds its storage")
            view = np.lib.stride_tricks.as_strided(
                buf[o.offset :], shape=o.size, strides=tuple(s * buf.itemsize for s in o.stride)
            )
            return np.array(view)
        if isinstance(o, dict):
            return collections.OrderedDict((k, materialise(v)) for k, v in o.items())
        if isinstance(o, (list, tuple)):
            return type(o)(materialise(v) for v in o)
        return o

    return materialise(obj)


def encoder_state(checkpoint: dict) -> dict[str, np.ndarray]:
    """The VoiceEncoder tensors of a Resemblyzer checkpoint, as float32, checked against TENSORS."""
    state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ConversionError("checkpoint has no model_state")
    out: dict[str, np.ndarray] = {}
    for name, shape in TENSORS.items():
        if name not in state:
            raise ConversionError(f"model_state lacks {name}")
        array = np.asarray(state[name])
        if array.shape != shape:
            raise ConversionError(f"{name}: shape {array.shape}, expected {shape}")
        if array.dtype != np.float32:
            raise ConversionError(f"{name}: dtype {array.dtype}, expected float32")
        if not np.all(np.isfinite(array)):
            raise ConversionError(f"{name}: non-finite values")
        out[name] = np.ascontiguousarray(array, dtype="<f4")
    return out


# --------------------------------------------------------------------------------------------
# safetensors (F32 only)


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = Path(str(path) + ".part")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) of an F32 safetensors file; checks offsets cover the data exactly."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ConversionError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100_000_000):
            raise ConversionError(f"{path}: header length {n} exceeds the file")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConversionError(f"{path}: bad safetensors header ({err})") from None
        data = f.read()
    if not isinstance(header, dict):
        raise ConversionError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    tensors: dict[str, np.ndarray] = {}
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") != "F32":
            raise ConversionError(f"{path}: {name}: only F32 tensors are supported")
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(v) for v in info["data_offsets"])
        if end - begin != 4 * math.prod(shape) or not 0 <= begin <= end <= len(data):
            raise ConversionError(f"{path}: {name}: data_offsets {begin}..{end} do not fit shape {shape}")
        spans.append((begin, end))
        tensors[name] = np.frombuffer(data, dtype="<f4", count=math.prod(shape), offset=begin).reshape(shape)
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ConversionError(f"{path}: tensor data is not contiguous at byte {position}")
        position = end
    if position != len(data):
        raise ConversionError(f"{path}: {len(data) - position} trailing bytes after the tensor data")
    return metadata, tensors


def verify_model(path: Path) -> dict[str, np.ndarray]:
    """Check OUT.safetensors is a complete voice encoder: names, shapes, metadata, finite values."""
    if not Path(path).is_file():
        raise ConversionError(f"{path}: not found")
    metadata, tensors = read_safetensors(path)
    if metadata != METADATA:
        raise ConversionError(f"{path}: metadata {metadata} != {METADATA}")
    if set(tensors) != set(TENSORS):
        raise ConversionError(f"{path}: tensors {sorted(tensors)} != {sorted(TENSORS)}")
    for name, shape in TENSORS.items():
        if tensors[name].shape != shape:
            raise ConversionError(f"{path}: {name} has shape {tensors[name].shape}, expected {shape}")
        if not np.all(np.isfinite(tensors[name])):
            raise ConversionError(f"{path}: {name} has non-finite values")
    return tensors


def verify_reference(path: Path) -> dict:
    try:
        ref = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConversionError(f"{path}: unreadable reference ({err})") from None
    expected = {"signal": str, "mel_first_frame": list, "mel_frame_80": list, "n_frames": int, "embedding": list}
    for key, typ in expected.items():
        if not isinstance(ref.get(key), typ):
            raise ConversionError(f"{path}: missing or bad {key}")
    if len(ref["mel_first_frame"]) != N_MELS or len(ref["mel_frame_80"]) != N_MELS or len(ref["embedding"]) != HIDDEN:
        raise ConversionError(f"{path}: wrong vector lengths")
    if abs(math.sqrt(sum(v * v for v in ref["embedding"])) - 1.0) > 1e-4:
        raise ConversionError(f"{path}: embedding is not unit norm")
    return ref


# --------------------------------------------------------------------------------------------
# Features


def mel_filters(n_mels: int = N_MELS, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)`` (Slaney), float32: the same
    filter bank code as the Whisper converter's, which lives in ct2_to_ggml.py."""
    return ct2_to_ggml.mel_filters(n_mels, sr=sr, n_fft=n_fft)


def hann_window(n: int = N_FFT) -> np.ndarray:
    """Periodic Hann (scipy ``get_window("hann", n, fftbins=True)``, what librosa uses)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def normalize_volume(wav: np.ndarray, target_dbfs: float = TARGET_DBFS) -> tuple[np.ndarray, float]:
    """Resemblyzer ``normalize_volume(wav, -30, increase_only=True)`` in float64; returns (wav, gain)."""
    x = np.asarray(wav, dtype=np.float64)
    rms = math.sqrt(float(np.mean(x * x))) if x.size else 0.0
    if rms == 0.0:
        return x, 1.0
    change = target_dbfs - 20.0 * math.log10(rms)
    if change <= 0.0:
        return x, 1.0
    gain = 10.0 ** (change / 20.0)
    return x * gain, gain


def mel_spectrogram(wav: np.ndarray, filters: np.ndarray | None = None) -> np.ndarray:
    """Resemblyzer ``wav_to_mel_spectrogram`` (librosa >= 0.9 defaults): float32 [frames, 40]."""
    fb = (mel_filters() if filters is None else filters).astype(np.float64)
    x = np.pad(np.asarray(wav, dtype=np.float64), N_FFT // 2)  # center=True, zero padding
    n_frames = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n_frames, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    spectrum = np.fft.rfft(frames * hann_window(), axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    return (power @ fb.T).astype(np.float32)


def reference_signal(seconds: float = SIGNAL_SECONDS) -> np.ndarray:
    """The reference signal, see SIGNAL_FORMULA."""
    t = np.arange(int(round(seconds * SAMPLE_RATE)), dtype=np.float64) / SAMPLE_RATE
    tones = (
        0.35 * np.sin(2 * np.pi * 220 * t)
        + 0.25 * np.sin(2 * np.pi * 660 * t + 0.5)
        + 0.15 * np.sin(2 * np.pi * 1500 * t + 1.0)
        + 0.25 * np.sin(2 * np.pi * (300 * t + 450 * t * t))
    )
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)
    return (0.1 * envelope * tones).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Encoder (float64 numpy, PyTorch semantics)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def lstm_layer(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray):
    """One ``nn.LSTM`` layer, batch_first: x [B, T, in] -> (h sequence [B, T, H], h_T, c_T); gates i, f, g, o."""
    w_ih, w_hh = np.asarray(w_ih, np.float64), np.asarray(w_hh, np.float64)
    hidden = w_hh.shape[1]
    batch, steps, _ = x.shape
    gates_in = np.asarray(x, np.float64) @ w_ih.T + (np.asarray(b_ih, np.float64) + np.asarray(b_hh, np.float64))
    h = np.zeros((batch, hidden))
    c = np.zeros((batch, hidden))
    out = np.empty((batch, steps, hidden))
    for t in range(steps):
        z = gates_in[:, t] + h @ w_hh.T
        i = _sigmoid(z[:, :hidden])
        f = _sigmoid(z[:, hidden : 2 * hidden])
        g = np.tanh(z[:, 2 * hidden : 3 * hidden])
        o = _sigmoid(z[:, 3 * hidden :])
        c = f * c + i * g
        h = o * np.tanh(c)
        out[:, t] = h
    return out, h, c


def embed(weights: dict[str, np.ndarray], mels: np.ndarray) -> np.ndarray:
    """``VoiceEncoder.forward``: mels [B, T, 40] (or [T, 40]) -> unit-norm embeddings [B, 256] (float64)."""
    x = np.asarray(mels, dtype=np.float64)
    single = x.ndim == 2
    if single:
        x = x[None]
    layers = sum(1 for k in weights if k.startswith("lstm.weight_ih_l"))
    h = None
    for layer in range(layers):
        x, h, _ = lstm_layer(
            x,
            weights[f"lstm.weight_ih_l{layer}"],
            weights[f"lstm.weight_hh_l{layer}"],
            weights[f"lstm.bias_ih_l{layer}"],
            weights[f"lstm.bias_hh_l{layer}"],
        )
    raw = np.maximum(h @ np.asarray(weights["linear.weight"], np.float64).T + np.asarray(weights["linear.bias"], np.float64), 0.0)
    norm = np.linalg.norm(raw, axis=1, keepdims=True)
    # PyTorch would divide by zero for an all-zero ReLU output; keep zeros instead of NaN.
    out = raw / np.where(norm > 0, norm, 1.0)
    return out[0] if single else out


# --------------------------------------------------------------------------------------------
# Commands


def convert(pt_path: Path, out_path: Path, check_hash: bool = True) -> dict[str, np.ndarray]:
    if check_hash:
        digest = hashlib.sha256(Path(pt_path).read_bytes()).hexdigest()
        if digest != PRETRAINED_SHA256:
            raise ConversionError(f"{pt_path}: sha256 {digest} is not Resemblyzer 0.1.4's pretrained.pt ({PRETRAINED_SHA256})")
    tensors = encoder_state(load_legacy_checkpoint(pt_path))
    write_safetensors(out_path, tensors, METADATA)
    verify_model(out_path)
    return tensors


def _f32(values) -> list[float]:
    """float32 values as the shortest decimals that round-trip in float32."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32).ravel()]


def reference(weights: dict[str, np.ndarray]) -> dict:
    signal = reference_signal()
    rms_dbfs = 20.0 * math.log10(math.sqrt(float(np.mean(signal.astype(np.float64) ** 2))))
    normalised, gain = normalize_volume(signal)
    filters = mel_filters()
    mels = mel_spectrogram(normalised, filters)
    embedding = embed(weights, mels[:WINDOW_FRAMES])
    return {
        "signal": SIGNAL_FORMULA,
        "sample_rate": SAMPLE_RATE,
        "n_samples": int(len(signal)),
        "rms_dbfs_before": rms_dbfs,
        "gain": gain,
        "n_fft": N_FFT,
        "hop_length": HOP,
        "window": "periodic hann 0.5-0.5*cos(2*pi*n/400), n=0..399",
        "padding": "center=True: 200 zeros each side; frame k = padded[160k:160k+400]",
        "mel_first_frame": _f32(mels[0]),
        "mel_frame_80": _f32(mels[80]),
        "n_frames": int(mels.shape[0]),
        "embedding_frames": [0, WINDOW_FRAMES],
        "embedding": _f32(embedding),
        "mel_filters": [_f32(row) for row in filters],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert", help="legacy pretrained.pt -> safetensors")
    p.add_argument("pt", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--no-hash-check", action="store_true", help="accept a checkpoint other than Resemblyzer 0.1.4's")
    p = sub.add_parser("reference", help="numpy reference JSON for the Rust implementation")
    p.add_argument("model", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("verify", help="check a converted model (and optionally its reference JSON)")
    p.add_argument("model", type=Path)
    p.add_argument("reference", type=Path, nargs="?")
    args = parser.parse_args(argv)
    try:
        if args.command == "convert":
            convert(args.pt, args.out, check_hash=not args.no_hash_check)
            print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {len(TENSORS)} tensors)")
        elif args.command == "reference":
            ref = reference(verify_model(args.model))
            tmp = Path(str(args.out) + ".part")
            tmp.write_text(json.dumps(ref) + "\n")
            os.replace(tmp, args.out)
            print(f"wrote {args.out}: {ref['n_frames']} frames, gain {ref['gain']:.4f}")
        else:
            verify_model(args.model)
            if args.reference:
                verify_reference(args.reference)
            print(f"{args.model}: valid voice encoder")
        return 0
    except ConversionError as err:
        print(f"voice_model: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
