"""A family's frozen config dataclass to JSON and back, so a weights file can carry the model it belongs to.

``config_to_json(config)`` writes the fields (nested configs, such as CvT's stages, as objects; tuples as lists);
``config_from_json(cls, text)`` rebuilds the dataclass, turning objects back into the nested config classes and
lists back into tuples as the field annotations say. A field the class does not have is an error naming it (a file
written by another vitkit version); a field missing from the text takes the class default.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from vitkit.errors import ConfigError


def config_to_json(config: Any) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def config_from_json(cls: type, text: str) -> Any:
    """The ``cls`` instance described by ``text`` (as ``config_to_json`` wrote it)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"not a {cls.__name__} description (invalid JSON: {e})",
                          "export the model again with `vitkit export`") from e
    return _build(cls, data)


def _build(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"expected an object of {cls.__name__} fields, found {type(data).__name__}",
                          "export the model again with `vitkit export`")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field(s) {unknown} (written by another vitkit version?)",
                          f"export it again with this version; its fields are {sorted(fields)}")
    return cls(**{name: _coerce(hints[name], value) for name, value in data.items()})


def _coerce(annotation: Any, value: Any) -> Any:
    """``value`` from JSON shaped as ``annotation``: nested dataclasses and tuples rebuilt, the rest as is."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        for option in args:
            if option is not type(None) and (dataclasses.is_dataclass(option) or typing.get_origin(option) is tuple):
                return _coerce(option, value)
        return value
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v) for v in value)
        return tuple(_coerce(a, v) for a, v in zip(args, value, strict=True)) if args else tuple(value)
    return value
