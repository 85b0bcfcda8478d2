"""The Open311 XML writer: the same document ElementTree writes for the same values
(it replaced ElementTree for speed), with text escaped and empty elements closed."""

from __future__ import annotations

import random
from xml.etree import ElementTree as ET

import pytest

from webmap.open311.render import ITEM_NAMES, XML_DECLARATION, to_json, to_xml, xml_text

TEXTS = [
    "",
    "plain",
    "a & b",
    "<b>bold</b>",
    "x > y",
    "\"double\" and 'single'",
    "two\nlines\r\n",
    "tab\there",
    "\x01control\x0b chars\x1f",
    "é ü 中 🚧",
    "]]>",
    "\ud800lone surrogate",
    0,
    17,
    -3,
    1.5,
    34.0522,
    True,
    False,
    None,
]


def tree_xml(root: str, value) -> str:
    """What the renderer wrote before: an ElementTree built from the same values."""

    def append(parent, name, item):
        if item is None:
            return
        fill(ET.SubElement(parent, name), name, item)

    def fill(el, name, item):
        if isinstance(item, dict):
            for key, sub in item.items():
                append(el, key, sub)
        elif isinstance(item, list | tuple):
            for sub in item:
                append(el, ITEM_NAMES[name], sub)
        else:
            el.text = xml_text(item)

    el = ET.Element(root)
    fill(el, root, value)
    return XML_DECLARATION + ET.tostring(el, encoding="unicode")


def random_request(rng: random.Random, depth: int = 0):
    item = {}
    for i in range(rng.randint(0, 5)):
        if depth < 2 and rng.random() < 0.2:
            item["photos"] = [
                random_request(rng, depth + 1) if rng.random() < 0.8 else None
                for _ in range(rng.randint(0, 3))
            ]
        elif depth < 2 and rng.random() < 0.1:
            item[f"extended_attributes{i}"] = random_request(rng, depth + 1)
        else:
            item[rng.choice(["status", "description", "lat", "address"]) + str(i)] = rng.choice(
                TEXTS
            )
    return item


def test_writes_what_elementtree_writes():
    rng = random.Random(311)
    for _ in range(2000):
        value = [random_request(rng) for _ in range(rng.randint(0, 4))]
        assert to_xml("service_requests", value) == tree_xml("service_requests", value)


def test_escapes_text_drops_none_and_closes_empty_elements():
    doc = to_xml(
        "service_requests",
        [{"description": "Tom & Jerry <3 >", "address": None, "status_notes": "", "lat": 34.5}],
    )
    assert doc == (
        XML_DECLARATION + "<service_requests><request>"
        "<description>Tom &amp; Jerry &lt;3 &gt;</description><status_notes />"
        "<lat>34.5</lat></request></service_requests>"
    )
    assert ET.fromstring(doc.split("\n", 1)[1]).find("request/description").text == (
        "Tom & Jerry <3 >"
    )
    assert to_xml("service_requests", []) == XML_DECLARATION + "<service_requests />"
    assert to_xml("errors", [{"code": 400, "description": "\x00bad\x1b"}]) == (
        XML_DECLARATION + "<errors><error><code>400</code><description>bad</description>"
        "</error></errors>"
    )


def test_a_list_without_an_item_name_is_refused():
    with pytest.raises(ValueError, match="no XML item element"):
        to_xml("service_requests", [{"unknown_list": [1, 2]}])


def test_json_leaves_out_none_at_every_depth():
    value = [{"a": None, "b": [None, {"c": None, "d": 1}], "e": {"f": None}}, None]
    assert to_json(value) == '[{"b": [{"d": 1}], "e": {}}]'
