"""Bind: find the model calls in a statement and check them against the function registry.

A model call is a function call whose name the registry knows (embed, classify, ...). Binding
checks the number of arguments, resolves the model, and evaluates constant options (such as the
label list) once, so every later step works with plain values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from quarrydb.engine.errors import ProgrammingError
from quarrydb.engine.modality import CommentLookup, modality_of, unwrap_marker
from quarrydb.engine.sqltree import is_constant, to_sql
from quarrydb.udfs import Binding, Registry, UnknownModelError

MARKER_META = "quarry_marker"  # a call's meta: the marker, e.g. image, its input was wrapped in


@dataclass
class ModelCall:
    """One model call in the tree, bound to its model."""

    node: exp.Anonymous
    binding: Binding  # for media, the binding of the first kind the function reads
    key_positions: list[int]  # per-row arguments: the input, and options that vary by row
    key_params: list[str]
    options: dict[str, Any] = field(default_factory=dict)  # constant options, evaluated
    modality: str = "text"  # text / image / audio, or media: the kind is told value by value
    bindings: dict[str, Binding] = field(default_factory=dict)  # kind -> binding, for media
    model_named: bool = False  # the SQL chose the model (else the function's default)

    def rebind(self, registry: Registry, model_name: str) -> None:
        """Use another model for every kind this call reads (see align_spaces)."""
        self.bindings = {k: registry.bind(self.binding.function.name, model_name, k)
                         for k in self.bindings}
        self.binding = next(iter(self.bindings.values()))

    @property
    def model_names(self) -> str:
        """The model, or each kind's where values of several kinds go to several models
        (EXPLAIN and the stage figures named the first kind's alone: a text model for images)."""
        if len({b.model.name for b in self.bindings.values()}) <= 1:
            return self.binding.model.name
        return ", ".join(f"{kind}: {b.model.name}" for kind, b in self.bindings.items())

    @property
    def keys(self) -> list[exp.Expression]:
        """Read from the node each time: planning replaces inner calls inside these arguments."""
        return [self.node.expressions[i] for i in self.key_positions]

    @property
    def text(self) -> str:
        return to_sql(self.node)

    @property
    def identity(self) -> str:
        """Calls with the same identity compute the same thing: one stage serves them all."""
        options = repr(sorted(self.options.items()))
        head = [self.binding.function.name, self.binding.model.name, options, self.modality]
        return "|".join(head + [to_sql(k) for k in self.keys])


def model_call_nodes(tree: exp.Expression, registry: Registry) -> list[exp.Anonymous]:
    names = registry.function_names
    return [n for n in tree.find_all(exp.Anonymous) if str(n.this).lower() in names]


def bind_call(
    node: exp.Anonymous,
    registry: Registry,
    evaluate: Callable[[exp.Expression], Any],
    comments: CommentLookup,
) -> ModelCall:
    """Check one call, tell what its input is, and resolve its model.

    `evaluate` computes a constant expression; `comments` reads a table column's comment."""
    spec = registry.function(str(node.this))
    assert spec is not None
    args = list(node.expressions)
    named = next((a for a in args if isinstance(a, (exp.PropertyEQ, exp.Kwarg))), None)
    if named is not None:  # else `labels := [...]` is evaluated alone: SQL the user never wrote
        raise ProgrammingError(
            f"{spec.name}() takes its arguments by position, not by name ({to_sql(named)}):"
            f" write {spec.signature}")
    low, high = spec.arity()
    if not low <= len(args) <= high:
        expected = f"{low}" if low == high else f"{low} to {high}"
        raise ProgrammingError(
            f"{spec.name}() takes {expected} arguments, {spec.signature}; got {len(args)}"
            f" in {to_sql(node)}"
        )
    model_name = None
    options: dict[str, Any] = {}
    key_positions: list[int] = []
    key_params: list[str] = []
    for position, (param, arg) in enumerate(zip(spec.params, args)):
        if param.kind == "model":
            if not (isinstance(arg, exp.Literal) and arg.is_string and arg.name.strip()):
                raise ProgrammingError(
                    f"{spec.name}(): the model must be a string literal such as 'minilm',"
                    f" got {to_sql(arg)}"
                )
            model_name = arg.name
        elif param.kind == "option" and is_constant(arg):
            options[param.name] = evaluate(arg)
        else:
            key_positions.append(position)
            key_params.append(param.name)
    modality = "text"
    if key_positions and key_params[0] == "input":
        value, marker = unwrap_marker(args[0])
        if marker:
            node.meta[MARKER_META] = str(args[0].this)  # to name the result column as written
            args[0].replace(value)  # the stage reads x itself; the marker only told its kind
        modality = marker or modality_of(value, comments)
        readable = registry.modalities(spec.name)
        if _is_null(value) and modality not in readable and readable:
            modality = readable[0]  # NULL in, NULL out, whatever the function reads
    if spec.check_options is not None:
        try:
            spec.check_options(options)
        except ValueError as exc:
            raise ProgrammingError(f"{exc} (in {to_sql(node)})") from None
    try:
        if modality == "media":
            bindings = _media_bindings(registry, spec.name, model_name)
            binding = next(iter(bindings.values()))
        else:
            binding = registry.bind(spec.name, model_name, modality)
            bindings = {modality: binding}
    except UnknownModelError as exc:
        raise ProgrammingError(str(exc)) from None
    return ModelCall(node, binding, key_positions, key_params, options, modality, bindings,
                     model_named=model_name is not None)


def _is_null(value: exp.Expression) -> bool:
    """NULL, or NULL cast to a type."""
    while isinstance(value, exp.Cast):
        value = value.this
    return isinstance(value, exp.Null)


def _media_bindings(registry: Registry, function: str, model: str | None) -> dict[str, Binding]:
    """The model for each kind of file the function reads, all returning one SQL type.

    With no model named and CLIP the image default, CLIP reads the text files too (one space)."""
    image_default = registry.default_model(function, "image")
    if model is None and image_default and image_default.startswith("clip:"):
        model = image_default
    bindings: dict[str, Binding] = {}
    refusals: list[UnknownModelError] = []
    for kind in registry.modalities(function):
        try:
            bindings[kind] = registry.bind(function, model, kind)
        except UnknownModelError as exc:
            refusals.append(exc)
    if not bindings:  # the kinds it reads, not text: `caption(path, 'minilm')` on a file
        raise refusals[0] if refusals else UnknownModelError(f"{function}() reads no media")
    types = {b.output_type for b in bindings.values()}
    if len(types) > 1:
        shown = ", ".join(f"{k}: {b.model.name} -> {b.output_type}" for k, b in bindings.items())
        raise ProgrammingError(
            f"{function}() over a column of mixed media would return different types ({shown});"
            " name one model, or mark the column with image(...) or audio(...)"
        )
    return bindings
