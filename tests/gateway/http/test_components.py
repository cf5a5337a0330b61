"""The components registry: both modules of shapes in one, generated as the document holds it."""

from __future__ import annotations

import enum
import json

import msgspec
import pytest

from gateway.config import config_from_dict
from gateway.domain.collections import CollectionStatus
from gateway.domain.models import Status
from gateway.http.collection_schemas import COLLECTION_COMPONENTS, CollectionResults
from gateway.http.components import Components
from gateway.http.openapi import DOCUMENT_COMPONENTS
from gateway.http.schemas import COMPONENTS, EventPayload, Results, ScanView
from tests.helpers import openapi_for

# What the document adds to a generated component because it depends on the config.
CONFIGURED = {
    ("ScanCreate", "scanner_name"): {"enum"},
    ("Results", "vulnerabilities"): {"items", "maxItems"},
    ("CollectionCreate", "scanners"): {"items", "maxItems", "uniqueItems"},
    ("CollectionResults", "vulnerabilities"): {"maxItems"},
}


class Leaf(msgspec.Struct):
    """A leaf,
    over two lines."""

    size: int


class Tree(msgspec.Struct):
    leaves: list[Leaf]


class Order(enum.Enum):
    LAST = "z"
    FIRST = "a"


def test_both_modules_of_shapes_are_in_the_documents_one_registry():
    for registered in (COMPONENTS, COLLECTION_COMPONENTS):
        assert all(cls in DOCUMENT_COMPONENTS for cls in registered)
    assert len(DOCUMENT_COMPONENTS) == len(COMPONENTS) + len(COLLECTION_COMPONENTS)
    assert DOCUMENT_COMPONENTS.name(ScanView) == "Scan"
    assert DOCUMENT_COMPONENTS.name(EventPayload) == "Event"
    assert DOCUMENT_COMPONENTS.name(CollectionResults) == "CollectionResults"


def test_the_documents_components_are_the_generated_ones():
    document = openapi_for(config_from_dict({"scanners": {"s": "http://127.0.0.1:9/"}}))
    served = document["components"]["schemas"]
    generated = DOCUMENT_COMPONENTS.schemas()
    assert {DOCUMENT_COMPONENTS.name(cls) for cls in DOCUMENT_COMPONENTS} <= set(generated)
    for name, schema in generated.items():
        held = json.loads(json.dumps(served[name]))
        for (component, field), keys in CONFIGURED.items():
            if component == name:
                for key in keys:
                    held["properties"][field].pop(key)
                    schema["properties"][field].pop(key, None)
        assert held == schema, name
    # Each status enum as declared: the scan's in its lifecycle's order, the collection's as
    # msgspec writes it.
    assert served["Status"]["enum"] == [status.value for status in Status]
    assert served["CollectionStatus"]["enum"] == sorted(status.value for status in CollectionStatus)


def test_a_union_holds_each_struct_once_the_first_registrys_first():
    first, second = Components(Tree, Leaf), Components(Order, Tree)
    assert list(first | second) == [Tree, Leaf, Order]
    assert list(second | first) == [Order, Tree, Leaf]
    assert list(first | Components()) == list(first)


def test_a_renamed_component_is_referred_to_by_its_name():
    schemas = Components(Tree, Leaf, names={Leaf: "Leaflet"}).schemas()
    assert set(schemas) == {"Tree", "Leaflet"}
    assert schemas["Leaflet"]["title"] == "Leaflet"
    assert schemas["Tree"]["properties"]["leaves"]["items"] == {
        "$ref": "#/components/schemas/Leaflet"
    }
    # A Struct referred to but not registered is generated under its own name.
    assert set(Components(Tree).schemas()) == {"Tree", "Leaf"}


def test_an_enum_keeps_its_declared_order_only_when_asked():
    assert Components(Order, declared_order=(Order,)).schemas()["Order"]["enum"] == ["z", "a"]
    assert Components(Order).schemas()["Order"]["enum"] == ["a", "z"]


def test_descriptions_are_one_line():
    assert Components(Leaf).schemas()["Leaf"]["description"] == "A leaf, over two lines."


@pytest.mark.parametrize(
    "build",
    [
        lambda: Components(Tree, names={Leaf: "Leaf"}),
        lambda: Components(Tree, declared_order=(Order,)),
        lambda: Components(Tree, Leaf, names={Leaf: "Tree"}),
        lambda: Components(Tree) | Components(Leaf, names={Leaf: "Tree"}),
        # The document's own: a collection Struct may not take a scan Struct's name.
        lambda: DOCUMENT_COMPONENTS | Components(Leaf, names={Leaf: "Scan"}),
    ],
)
def test_a_name_that_is_not_one_structs_is_refused(build):
    with pytest.raises(ValueError, match=r"named|not registered"):
        build()


def test_a_struct_not_registered_has_no_name():
    with pytest.raises(ValueError, match="Leaf is not a component"):
        Components(Tree).name(Leaf)
    with pytest.raises(ValueError, match="Results is not a component"):
        COLLECTION_COMPONENTS.name(Results)
