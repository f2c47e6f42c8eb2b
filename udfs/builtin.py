"""The functions and models that ship with quarrydb, registered in one place."""

from __future__ import annotations

from quarrydb.udfs import text
from quarrydb.udfs.registry import FunctionSpec, Implementation, Param, Registry


def build_registry() -> Registry:
    registry = Registry()
    registry.add_function(
        FunctionSpec(
            name="embed",
            params=(Param("input", "input"), Param("model", "model", required=False)),
            default_model=text.MINILM,
            description="a vector for the value; comparable with similarity()",
        )
    )
    registry.add_function(
        FunctionSpec(
            name="classify",
            params=(
                Param("input", "input"),
                Param("labels", "option", sql_type="VARCHAR[]"),
                Param("model", "model", required=False),
            ),
            default_model=text.MINILM,
            description="the label that best describes the value (zero-shot)",
            check_options=lambda options: text.check_labels(options["labels"])
            if "labels" in options
            else None,
        )
    )
    registry.add_model(text.minilm_spec())
    dim = f"FLOAT[{text.MINILM_DIM}]"
    registry.implement("embed", text.MINILM, Implementation(text.embed_text, dim))
    registry.implement("classify", text.MINILM, Implementation(text.classify_text, "VARCHAR"))
    registry.add_resolver(text.resolve_text_model)
    return registry
