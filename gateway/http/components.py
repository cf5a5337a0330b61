"""The OpenAPI document's ``components.schemas``: one registry of the API's Structs.

Each module that declares API shapes (``schemas``, ``collection_schemas``) registers the Structs
the document names as a ``Components``; the document's registry is their union (``a | b``),
from which come the schemas (``msgspec.json.schema_components``, whose JSON Schema OpenAPI 3.1
takes as is, references as ``#/components/schemas/Name``) and the name each Struct has there.

A registry is a value: built once, never changed, so what the document holds does not depend
on which modules happened to be imported first. A Struct may be listed under a name other than
its class's (``names``); an enum may keep its values in declaration order (``declared_order``,
where msgspec would sort them); descriptions (docstrings) are written as one line each.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec

__all__ = ["Components"]

Schema = dict[str, Any]
_REF = "#/components/schemas/{name}"


class Components:
    """Structs (and enums) whose schemas are components, each under its name."""

    __slots__ = ("_classes", "_declared_order", "_names")

    def __init__(
        self,
        *classes: type,
        names: Mapping[type, str] | None = None,
        declared_order: Iterable[type[enum.Enum]] = (),
    ) -> None:
        self._classes = tuple(dict.fromkeys(classes))
        self._names = dict(names or {})
        self._declared_order = tuple(dict.fromkeys(declared_order))
        for cls in (*self._names, *self._declared_order):
            if cls not in self._classes:
                raise ValueError(f"{cls.__name__} has a name or an order but is not registered")
        taken: dict[str, type] = {}
        for cls in self._classes:
            name = self._names.get(cls, cls.__name__)
            if taken.setdefault(name, cls) is not cls:
                raise ValueError(f"two components are named {name!r}")

    def __or__(self, other: Components) -> Components:
        """Both registries as one: this one's Structs first, then the other's new ones."""
        return Components(
            *self._classes,
            *other._classes,
            names={**self._names, **other._names},
            declared_order=(*self._declared_order, *other._declared_order),
        )

    def __contains__(self, cls: object) -> bool:
        return cls in self._classes

    def __iter__(self) -> Iterator[type]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def name(self, cls: type) -> str:
        """The name ``cls`` has under ``components.schemas``; it must be registered."""
        if cls not in self._classes:
            raise ValueError(f"{cls.__name__} is not a component of the document")
        return self._names.get(cls, cls.__name__)

    def schemas(self) -> dict[str, Schema]:
        """``components.schemas`` for these Structs (and the Structs they refer to)."""
        _, schemas = msgspec.json.schema_components(self._classes, ref_template=_REF)
        for cls, name in self._names.items():
            schemas = _renamed(schemas, cls.__name__, name)
        for kind in self._declared_order:
            schemas[self.name(kind)]["enum"] = [member.value for member in kind]
        for schema in schemas.values():
            if "description" in schema:
                schema["description"] = " ".join(schema["description"].split())
        return schemas


def _renamed(schemas: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``schemas`` with the component ``old`` (and every reference to it) named ``new``."""
    text = msgspec.json.encode(schemas).replace(
        f'"{_REF.format(name=old)}"'.encode(), f'"{_REF.format(name=new)}"'.encode()
    )
    renamed: dict[str, Any] = msgspec.json.decode(text)
    renamed[new] = {**renamed.pop(old), "title": new}
    return renamed
