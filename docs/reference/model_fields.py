"""MkDocs hook: a table of a block's fields, read from the model itself.

A line `<!-- fields: prefect_parallelrun.ParallelRunConfig -->` in a page becomes a table of
that model's fields (name, type, default, description), the same descriptions the Prefect UI
shows in the block's form, so the reference never drifts from the code. A settings model also
gets a column with each field's environment variable.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

_MARKER = re.compile(r"^<!-- fields: (?P<path>[\w.]+) -->$", re.MULTILINE)
_DOTTED_PREFIX = re.compile(r"\b(?:[a-z_][\w]*\.)+(?P<name>[A-Za-z_]\w*)")


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _MARKER.sub(lambda match: _fields_table(_model(match["path"])), markdown)


def _model(path: str) -> type[BaseModel]:
    module_name, _, name = path.rpartition(".")
    model = getattr(importlib.import_module(module_name), name)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{path} named in a fields marker is not a pydantic model.")
    return model


def _fields_table(model: type[BaseModel]) -> str:
    # A settings model (env_prefix in its config) also gets its environment variables.
    prefix = model.model_config.get("env_prefix")
    header = "| field | type | default | description |"
    if prefix:
        header = "| setting | environment variable | type | default | description |"
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for name, field in model.model_fields.items():
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        cells = [f"**{name}**", f"`{_type_name(field.annotation)}`", _default(field), description]
        if prefix:
            cells.insert(1, f"`{prefix}{name.upper()}`")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return _DOTTED_PREFIX.sub(r"\g<name>", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"
    return f"`{field.default!r}`"
