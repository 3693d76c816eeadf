"""The variant spec: a named, validated, hashable description of one way to run a model.

Kept free of torch and of the database so that a spec can be built, validated and
fingerprinted anywhere (a CPU laptop, a GPU box without the store, a test).
The fingerprint covers only the fields that change the computation, so renaming a
variant or editing its description never detaches its results.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from ssmboard.errors import SpecError, UnknownBackendError

DEFAULT_MODEL = "embedded:tiny-bamba"
DEFAULT_SCAN = "reference"

DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
# Common spellings users type; normalised so that they fingerprint the same.
DTYPE_ALIASES: dict[str, str] = {
    "fp32": "float32", "f32": "float32", "float": "float32",
    "bf16": "bfloat16",
    "fp16": "float16", "f16": "float16", "half": "float16",
}
COMPILE_MODES: tuple[str, ...] = (
    "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs",
)
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_OPTION_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

# Fields that do not change what is computed: excluded from the fingerprint.
METADATA_FIELDS: frozenset[str] = frozenset({"name", "description", "tags"})

OptionValue = bool | int | float | str


def _known_scans() -> list[str]:
    from ssmboard.variants.backends import list_scans  # torch-free catalogue

    return list_scans()


def _validate_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = name if not isinstance(name, str) or len(name) <= 80 else name[:77] + "..."
        why = ""
        if isinstance(name, str) and len(name) > 64:
            why = f" (it has {len(name)} characters)"
        raise SpecError(
            f"invalid variant name {shown!r}{why}: use 1 to 64 characters from "
            "letters, digits, '.', '_' and '-' (no spaces), e.g. 'reference-c64'"
        )
    return name


def _validate_model(model: Any) -> str:
    if not isinstance(model, str) or not model.strip():
        raise SpecError(
            f"invalid model {model!r}: give 'embedded:tiny-bamba', a local checkpoint folder, "
            "a Hugging Face hub id, or 'config:<name-or-path>' for random weights"
        )
    model = model.strip()
    for prefix in ("config:", "embedded:"):
        if model.startswith(prefix) and not model[len(prefix):].strip():
            raise SpecError(f"invalid model {model!r}: name what follows '{prefix}', e.g. '{prefix}tiny-bamba'")
    return model


def _validate_scan(scan: Any, *, must_be_known: bool = True) -> str:
    if isinstance(scan, str) and NAME_RE.fullmatch(scan) and (not must_be_known or scan in _known_scans()):
        return scan
    raise UnknownBackendError(f"unknown scan backend {scan!r}; known backends: {', '.join(_known_scans())}")


def check_backend_known(scan: str) -> None:
    """Raise when ``scan`` names no backend in this process: a variant stored by a process that
    registered its own backend (``register_backend``) is listed everywhere but built only where
    that backend is registered."""
    known = _known_scans()
    if scan not in known:
        raise UnknownBackendError(
            f"scan backend {scan!r} is not registered in this process (known: {', '.join(known)}); "
            "import the module that calls register_backend for it before building or evaluating this variant"
        )


def _validate_chunk_size(chunk_size: Any) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise SpecError(
            f"invalid chunk_size {chunk_size!r}: give a positive power of two such as 64 or 256, "
            "or None for the model's own chunk size"
        )
    if chunk_size <= 0 or chunk_size & (chunk_size - 1):
        raise SpecError(
            f"invalid chunk_size {chunk_size}: it must be a positive power of two "
            "(1, 2, 4, ..., 64, 128, 256, ...), or None for the model's own chunk size"
        )
    return chunk_size


def _validate_dtype(dtype: Any) -> str:
    if isinstance(dtype, str):
        key = dtype.strip().lower()
        key = DTYPE_ALIASES.get(key, key)
        if key in DTYPES:
            return key
    raise SpecError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")


# choice fields: the allowed values (the first is the default, also for None) and what each means
DECODERS = {"generate": "transformers' generate loop",
            "static": "ssmboard's static-buffer greedy decoder, one CUDA graph per token on a GPU"}
COMPILE_SCOPES = {"model": "torch.compile the whole model",
                  "parts": "compile the norms and MLPs around the scan, leaving the scan backend eager"}


def _validate_choice(field_name: str, value: Any, choices: dict[str, str]) -> str:
    if value is None:
        return next(iter(choices))
    if value not in choices:
        options = " or ".join(f"{k!r} ({v})" for k, v in choices.items())
        raise SpecError(f"unknown {field_name} {value!r}; use {options}")
    return value


def _validate_compile(mode: Any) -> str | None:
    if mode is None:
        return None
    if mode is True:  # compile=True reads naturally in Python
        return "default"
    if isinstance(mode, str) and mode in COMPILE_MODES:
        return mode
    raise SpecError(
        f"unknown compile mode {mode!r}; choose one of: {', '.join(COMPILE_MODES)}, or None to run eagerly"
    )


def _validate_compile_options(options: Any) -> tuple[tuple[str, OptionValue], ...]:
    if options is None:
        return ()
    if isinstance(options, Mapping):
        items = list(options.items())
    else:
        try:
            items = [tuple(pair) for pair in options]
        except TypeError:
            items = None
        if items is None or any(len(pair) != 2 for pair in items):
            raise SpecError(
                f"invalid compile_options {options!r}: give a mapping of Inductor option name to "
                "value, e.g. {'epilogue_fusion': True}"
            )
    out: dict[str, OptionValue] = {}
    for key, value in items:
        if not isinstance(key, str) or not _OPTION_KEY_RE.fullmatch(key):
            raise SpecError(
                f"invalid compile option name {key!r}: use an Inductor config name such as "
                "'epilogue_fusion' or 'triton.cudagraphs'"
            )
        if not isinstance(value, (bool, int, float, str)):
            raise SpecError(
                f"invalid value {value!r} for compile option {key!r}: use a bool, int, float or string"
            )
        if key in out:
            raise SpecError(f"compile option {key!r} is given twice; give it once")
        out[key] = value
    return tuple(sorted(out.items()))


def _validate_n_layers(n_layers: Any) -> int | None:
    if n_layers is None:
        return None
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise SpecError(
            f"invalid n_layers {n_layers!r}: give an integer >= 1 (keep the first N layers), "
            "or None to keep them all"
        )
    return n_layers


def _validate_bool(field_name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"invalid {field_name} {value!r}: give true or false")
    return value


def _validate_description(description: Any) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise SpecError(f"invalid description {description!r}: give a string")
    return description


def _validate_tags(tags: Any) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        tags = (tags,)
    try:
        tags = tuple(tags)
    except TypeError:
        raise SpecError(f"invalid tags {tags!r}: give a list of strings") from None
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise SpecError(f"invalid tag {tag!r}: tags are non-empty strings")
    # Order and duplicates carry no meaning; normalise so equal tag sets compare equal.
    return tuple(sorted(set(t.strip() for t in tags)))


class _StoredFlag(threading.local):
    active = False


# While set (only inside VariantSpec.from_stored), a backend name this process does not know is
# accepted: it was checked when the variant was registered, possibly in another process.
_STORED = _StoredFlag()


@dataclass(frozen=True)
class VariantSpec:
    """One registered way to run a model: model, scan backend, chunk size, dtype, compile.

    Construction validates and normalises every field (so two specs that mean the same
    thing compare equal and share a fingerprint); an invalid field raises SpecError.
    """

    name: str
    model: str = DEFAULT_MODEL
    scan: str = DEFAULT_SCAN
    chunk_size: int | None = None
    dtype: str = "float32"
    compile: str | None = None
    compile_options: tuple[tuple[str, OptionValue], ...] = ()
    # what compile applies to: "model" (the whole model) or "parts" (ssmboard.variants.compile.fusable_parts:
    # norms and MLPs, so Inductor fuses their elementwise chains while the scan backend runs as it is)
    compile_scope: str = "model"
    n_layers: int | None = None
    use_cache: bool = True
    # "generate": transformers' generate loop; "static": ssmboard.variants.graph_decode (greedy,
    # static buffers, the whole decode step replayed as one CUDA graph on a GPU)
    decoder: str = "generate"
    description: str = ""
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        norm = {
            "name": _validate_name(self.name),
            "model": _validate_model(self.model),
            "scan": _validate_scan(self.scan, must_be_known=not _STORED.active),
            "chunk_size": _validate_chunk_size(self.chunk_size),
            "dtype": _validate_dtype(self.dtype),
            "compile": _validate_compile(self.compile),
            "compile_options": _validate_compile_options(self.compile_options),
            "compile_scope": _validate_choice("compile_scope", self.compile_scope, COMPILE_SCOPES),
            "n_layers": _validate_n_layers(self.n_layers),
            "use_cache": _validate_bool("use_cache", self.use_cache),
            "decoder": _validate_choice("decoder", self.decoder, DECODERS),
            "description": _validate_description(self.description),
            "tags": _validate_tags(self.tags),
        }
        if norm["compile_options"] and norm["compile"] is None:
            raise SpecError(
                "compile_options are given but compile is None: set compile (e.g. 'default' or "
                "'max-autotune') or drop the options"
            )
        if norm["compile_scope"] != "model" and norm["compile"] is None:
            raise SpecError(f"compile_scope is {norm['compile_scope']!r} but compile is None: set compile "
                            "(e.g. 'default') or drop compile_scope")
        for key, value in norm.items():
            object.__setattr__(self, key, value)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VariantSpec":
        """Build a spec from a dict (e.g. :meth:`to_dict` output); unknown keys raise SpecError.

        A ``fingerprint`` key, if present, is checked against the recomputed one so that a
        report written by code with a different notion of the spec is not silently merged.
        """
        data = dict(data)
        claimed = data.pop("fingerprint", None)
        check_fields(data)
        if "name" not in data:
            raise SpecError("a variant spec needs a 'name'")
        spec = cls(**data)
        if claimed is not None and claimed != spec.fingerprint:
            raise SpecError(
                f"variant {spec.name!r}: the stored fingerprint {claimed!r} does not match the "
                f"spec's fields (computed {spec.fingerprint!r}); the spec was edited or written by "
                "an incompatible ssmboard version. Drop the 'fingerprint' key to accept the fields."
            )
        return spec

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> "VariantSpec":
        """A spec from the store or a report: validated as :meth:`from_dict`, except that its scan
        backend may be one this process has not registered (see :func:`check_backend_known`,
        which building calls). Listing variants never fails on another process's backend."""
        _STORED.active = True
        try:
            return cls.from_dict(data)
        finally:
            _STORED.active = False

    @property
    def backend_known(self) -> bool:
        return self.scan in _known_scans()

    def replace(self, **changes: Any) -> "VariantSpec":
        """A copy with some fields changed (validated again)."""
        check_fields(changes)
        data = self.to_dict()
        data.update(changes)
        return VariantSpec.from_dict(data)

    # -- canonical forms ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-friendly data (compile_options as a dict, tags as a list)."""
        return {
            "name": self.name,
            "model": self.model,
            "scan": self.scan,
            "chunk_size": self.chunk_size,
            "dtype": self.dtype,
            "compile": self.compile,
            "compile_options": dict(self.compile_options),
            "compile_scope": self.compile_scope,
            "n_layers": self.n_layers,
            "use_cache": self.use_cache,
            "decoder": self.decoder,
            "description": self.description,
            "tags": list(self.tags),
        }

    def computational_dict(self) -> dict[str, Any]:
        """The fields that change what is computed: the fingerprint's input."""
        d = {k: v for k, v in self.to_dict().items() if k not in METADATA_FIELDS}
        if d["decoder"] == "generate":  # the default, left out so fingerprints made before the field stay
            del d["decoder"]
        if d["compile_scope"] == "model":  # likewise
            del d["compile_scope"]
        return d

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of sha256 over canonical JSON of :meth:`computational_dict`."""
        return fingerprint_of(self.computational_dict())

    @property
    def options(self) -> dict[str, OptionValue]:
        """compile_options as a dict, the form ``torch.compile(options=...)`` takes."""
        return dict(self.compile_options)

    def same_as(self, other: "VariantSpec") -> bool:
        """True when every field, metadata included, is equal (True and 1 differ, as in JSON)."""
        return canonical_json(self.to_dict()) == canonical_json(other.to_dict())


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no whitespace: identical bytes for equal data."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def fingerprint_of(computational: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(dict(computational)).encode()).hexdigest()[:16]


def check_fields(data: Mapping[str, Any]) -> None:
    """Raise SpecError naming any key that is not a VariantSpec field."""
    valid = VariantSpec.field_names()
    unknown = [k for k in data if k not in valid]
    if unknown:
        raise SpecError(
            f"unknown variant field{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; valid fields: {', '.join(valid)}"
        )


def make_spec(name: str, **fields_: Any) -> VariantSpec:
    """``VariantSpec(name, **fields)`` with a clear error for unknown field names."""
    check_fields(fields_)
    return VariantSpec(name=name, **fields_)


def natural_key(name: str) -> list[Any]:
    """Sort key that puts 'reference-c16' before 'reference-c128'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
