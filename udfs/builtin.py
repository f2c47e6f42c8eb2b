"""The functions and models that ship with quarrydb, registered in one place."""

from __future__ import annotations

from quarrydb.udfs import captioner, text
from quarrydb.udfs import media_functions as media
from quarrydb.udfs.registry import FunctionSpec, Implementation, Param, Registry

INPUT = Param("input", "input")
MODEL = Param("model", "model", required=False)
LABELS = Param("labels", "option", sql_type="VARCHAR[]")
VECTOR = f"FLOAT[{text.MINILM_DIM}]"


def _check_classify_options(options: dict) -> None:
    if "labels" in options:
        text.check_labels(options["labels"])


def build_registry() -> Registry:
    registry = Registry()
    functions = [
        FunctionSpec(
            "embed", (INPUT, MODEL),
            {"text": text.MINILM, "image": media.BRIDGE, "audio": media.WHISPER_MINILM},
            "a vector for the value; compare two with similarity()",
        ),
        FunctionSpec(
            "classify", (INPUT, LABELS, MODEL),
            {"text": text.MINILM, "image": media.BRIDGE, "audio": media.WHISPER_MINILM},
            "the label that best describes the value (zero-shot)",
            check_options=_check_classify_options,
        ),
        FunctionSpec("caption", (INPUT, MODEL), {"image": media.BRIDGE},
                     "a short description of an image"),
        FunctionSpec("transcribe", (INPUT, MODEL), {"audio": media.WHISPER},
                     "the words spoken in a recording (English)"),
    ]
    for spec in functions:
        registry.add_function(spec)
    for model in (text.minilm_spec(), media.bridge_spec(), media.whisper_spec(),
                  media.spoken_text_spec()):
        registry.add_model(model)

    registry.implement("embed", text.MINILM, Implementation(text.embed_text, VECTOR))
    registry.implement("classify", text.MINILM, Implementation(text.classify_text, "VARCHAR"))
    image = media.prepare_image
    registry.implement("embed", media.BRIDGE, Implementation(media.embed_images, VECTOR, image))
    registry.implement("classify", media.BRIDGE,
                       Implementation(media.classify_images, "VARCHAR", image))
    registry.implement("caption", media.BRIDGE,
                       Implementation(media.caption_images, "VARCHAR", image))
    audio = media.prepare_audio
    registry.implement("transcribe", media.WHISPER,
                       Implementation(media.transcribe_audio, "VARCHAR", audio))
    registry.implement("embed", media.WHISPER_MINILM,
                       Implementation(media.embed_audio, VECTOR, audio))
    registry.implement("classify", media.WHISPER_MINILM,
                       Implementation(media.classify_audio, "VARCHAR", audio))

    registry.add_resolver(text.resolve_text_model)
    registry.add_resolver(media.resolve_clip)
    registry.add_resolver(captioner.resolve_captioner)
    found_captioner = captioner.local_captioner(media.model_dir())
    if found_captioner is not None:  # a real captioner is here: it describes, not just names
        caption = registry.function("caption")
        assert caption is not None
        caption.default_models["image"] = found_captioner
    clip = media.local_clip()
    if clip is not None:  # real CLIP weights are here: they beat the offline stand-in
        for name in ("embed", "classify"):
            spec = registry.function(name)
            assert spec is not None
            spec.default_models["image"] = clip
    return registry
