"""The catalogue of model functions and the models that implement them.

The planner asks this registry which names are model functions, what arguments they take and what
they return; the executor asks it for a batch kernel. Adding a function or a model touches only
`udfs/`: register a `FunctionSpec` and `ModelSpec`s, and SQL can call it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# A kernel turns one batch of input values into one output per value.
# It receives the loaded model, the batch, and the call's options (e.g. {"labels": [...]}).
Kernel = Callable[[Any, Sequence[Any], dict[str, Any]], Sequence[Any]]


@dataclass(frozen=True)
class Param:
    """One argument of a model function.

    kind: "input"  - the value the model reads (one per row);
          "option" - a setting such as the label list (usually a constant);
          "model"  - a constant string naming the model.
    """

    name: str
    kind: str
    required: bool = True
    sql_type: str = "VARCHAR"


@dataclass(frozen=True)
class ModelSpec:
    """A model that can be loaded: where it comes from and what it can do."""

    name: str
    modality: str  # text / image / audio
    source: str  # package / file / hub
    revision: str
    load: Callable[[str], Any]  # device -> loaded model
    is_available: Callable[[], bool]
    batch_size: int = 64
    description: str = ""
    how_to_get: str = ""


@dataclass(frozen=True)
class Implementation:
    """A function as carried out by one model: the kernel and the SQL type it returns.

    prepare (media only) turns one value's bytes into what the kernel batches, e.g. a decoded,
    resized image tensor; it runs in CPU worker threads ahead of the kernel.
    """

    kernel: Kernel
    output_type: str  # a DuckDB type, e.g. "FLOAT[384]" or "VARCHAR"
    prepare: Callable[[Any, bytes], Any] | None = None


@dataclass
class FunctionSpec:
    """A model function callable from SQL."""

    name: str
    params: tuple[Param, ...]
    default_models: dict[str, str]  # modality -> the model used when the call names none
    description: str
    implementations: dict[str, Implementation] = field(default_factory=dict)
    # Checks constant options when the statement is bound; raises ValueError with a clear message.
    check_options: Callable[[dict[str, Any]], None] | None = None

    @property
    def signature(self) -> str:
        shown = [p.name if p.required else f"[{p.name}]" for p in self.params]
        return f"{self.name}({', '.join(shown)})"

    def arity(self) -> tuple[int, int]:
        required = sum(p.required for p in self.params)
        return required, len(self.params)


@dataclass(frozen=True)
class Binding:
    """A function resolved to one model: everything the executor needs to run it."""

    function: FunctionSpec
    model: ModelSpec
    implementation: Implementation

    @property
    def output_type(self) -> str:
        return self.implementation.output_type


def output_type_for(function: str, dim: int | None) -> str:
    """What a model found by path or name returns: FLOAT[dim] for embed (FLOAT[] when the size
    is not known before loading), VARCHAR for the other functions."""
    if function != "embed":
        return "VARCHAR"
    return f"FLOAT[{dim}]" if dim else "FLOAT[]"


class UnknownModelError(LookupError):
    """Raised when a function is asked for a model it does not have."""


class Registry:
    """Functions and models by name. One default instance lives in `quarrydb.udfs`."""

    def __init__(self) -> None:
        self._functions: dict[str, FunctionSpec] = {}
        self._models: dict[str, ModelSpec] = {}
        self._resolvers: list[Callable[[FunctionSpec, str, str], Binding | None]] = []

    def add_function(self, spec: FunctionSpec) -> None:
        self._functions[spec.name.lower()] = spec

    def add_model(self, spec: ModelSpec) -> None:
        self._models[spec.name] = spec

    def add_resolver(self, resolver: Callable[[FunctionSpec, str, str], Binding | None]) -> None:
        """Resolve model names that are not registered, such as a local checkpoint path."""
        self._resolvers.append(resolver)

    def implement(self, function: str, model: str, impl: Implementation) -> None:
        self._functions[function].implementations[model] = impl

    def function(self, name: str) -> FunctionSpec | None:
        return self._functions.get(name.lower())

    @property
    def function_names(self) -> frozenset[str]:
        return frozenset(self._functions)

    def models(self) -> list[ModelSpec]:
        return list(self._models.values())

    def implementations_of(self, model_name: str) -> list[str]:
        return [f.name for f in self._functions.values() if model_name in f.implementations]

    def default_model(self, function: str, modality: str) -> str | None:
        return self._functions[function.lower()].default_models.get(modality)

    def modalities(self, function: str) -> list[str]:
        return list(self._functions[function.lower()].default_models)

    def bind(self, function: str, model_name: str | None = None, modality: str = "text") -> Binding:
        """Pick the model for a call on values of one modality; UnknownModelError names the
        choices."""
        spec = self._functions[function.lower()]
        name = model_name or spec.default_models.get(modality)
        if name is None:
            readable = ", ".join(spec.default_models)
            raise UnknownModelError(f"{spec.name}() does not read {modality}; it reads {readable}")
        model = self._models.get(name)
        if name in spec.implementations and model is not None:
            if model.modality != modality:
                raise UnknownModelError(
                    f"model {name!r} reads {model.modality}, not {modality}, in {spec.name}()"
                )
            return Binding(spec, model, spec.implementations[name])
        for resolver in self._resolvers:
            found = resolver(spec, name, modality)
            if found is not None:
                return found
        choices = ", ".join(
            sorted(m for m in spec.implementations if self._models[m].modality == modality)
        )
        available = f"available: {choices}" if choices else f"no model reads {modality} for it"
        raise UnknownModelError(
            f"unknown model {name!r} for {spec.name}() on {modality}; {available}"
            " (or a local model path). SHOW MODELS lists them."
        )
