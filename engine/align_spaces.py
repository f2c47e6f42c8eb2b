"""Rule: both sides of similarity(embed(x), embed(y)) embed into the same space.

`similarity(embed(photo, 'clip:ViT-B-32@w.pt'), embed('a cat'))` means "compare in CLIP's space":
the text side, which names no model, is embedded by the same CLIP model instead of the default
text model (whose vectors would not be comparable, nor of the same size). Without CLIP, images
already live in the text model's space and nothing changes.
"""

from __future__ import annotations

from sqlglot import exp

from quarrydb.engine.binder import ModelCall
from quarrydb.udfs import Registry, UnknownModelError


def align_similarity_spaces(tree: exp.Expression, calls: list[ModelCall],
                            registry: Registry) -> None:
    by_node = {id(call.node): call for call in calls}
    for similarity in tree.find_all(exp.Anonymous):
        if str(similarity.this).lower() != "similarity" or len(similarity.expressions) != 2:
            continue
        sides = [by_node.get(id(arg)) for arg in similarity.expressions]
        if any(s is None or s.binding.function.name != "embed" for s in sides):
            continue
        for this, other in (sides, sides[::-1]):
            chosen = this.binding.model.name
            if (chosen.startswith("clip:") and not other.model_named
                    and other.binding.model.name != chosen):
                try:
                    other.rebind(registry, chosen)
                except UnknownModelError:
                    continue
