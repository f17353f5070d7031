"""The strict mapping schema: every mistake its own error with file, line, did-you-mean."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from streams.core.feeds import POLL_KEYS
from streams.core.mapping.schema import SECTIONS, MappingError
from streams.mapping_files import load_mapping

MAPPINGS = Path(__file__).resolve().parents[2] / "streams" / "mappings"
README = (MAPPINGS / "README.md").read_text()

GOOD = """\
[dataset]
name = "t"
id = "id"

[time]
formats = ["iso"]

[fields]
received_time = "received"
call_type = "type"
district = { column = "area", extract = "^(N|S)" }

[priority]
column = "prio"
numeric = true
"""


def load_text(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return load_mapping(path, tmp_path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(MappingError) as caught:
        load_text(tmp_path, text)
    return [re.sub(r"^.*m\.toml", "m.toml", problem) for problem in caught.value.problems]


def test_good_mapping_loads(tmp_path: Path) -> None:
    """The base file of these tests is valid."""
    assert load_text(tmp_path, GOOD).name == "t"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('[fields]\nreceived_time', '[fields]\nrecieved_time',
     "m.toml:9: [fields] unknown key 'recieved_time'; did you mean 'received_time'?"),
    ("[fields]", "[feilds]", "m.toml:8: unknown section [feilds]; did you mean [fields]?"),
    ('extract = "^(N|S)"', 'extrakt = "^(N|S)"',
     "m.toml:11: [fields] district unknown key 'extrakt'; did you mean 'extract'?"),
    ("numeric = true", "numerik = true",
     "m.toml:15: [priority] unknown key 'numerik'; did you mean 'numeric'?"),
    ('formats = ["iso"]', 'format = ["iso"]',
     "m.toml:6: [time] unknown key 'format'; did you mean 'formats'?"),
    ('id = "id"', 'ids = "id"', "m.toml:3: [dataset] unknown key 'ids'; did you mean 'id'?"),
    ('extract = "^(N|S)"', 'extract = "^(N|S"',
     "m.toml:11: [fields] district.extract: '^(N|S' is not a regular expression"),
    ('formats = ["iso"]', 'formats = ["%Q"]', "m.toml:6: [time] formats: time format"),
])
def test_each_mistake_names_file_line_and_a_suggestion(tmp_path: Path, old: str, new: str,
                                                       expected: str) -> None:
    """A misspelled key (top level or in a table), section or a bad value gives its own
    error with the line it is on (a misspelled section no longer says "needs
    'received_time'", a misspelled key inside a section is no longer ignored)."""
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new))
    assert any(problem.startswith(expected) for problem in found), found


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    """Three mistakes give three errors, each on its own line."""
    text = GOOD.replace("[priority]", "[priorty]").replace("call_type =", "call_typ =") \
        + '\n[location]\nformat = "latlon"\nlat = "y"\n'
    found = problems(tmp_path, text)
    assert len(found) == 3, found
    assert any("[priorty]; did you mean [priority]" in item for item in found)
    assert any("'call_typ'; did you mean 'call_type'" in item for item in found)
    assert any("format 'latlon' needs lat and lon" in item or "needs lon" in item
               for item in found)


def test_cross_section_mistakes(tmp_path: Path) -> None:
    """A lookup that is not a [lookups] table, a status listed under two steps and a
    [poll] key misspelled are each named."""
    text = GOOD.replace('call_type = "type"', 'call_type = { column = "type", lookup = "types" }'
                        '\nstatus = "st"') + (
        '\n[status]\ndispatched = ["D"]\non_scene = ["D"]\n'
        '\n[poll]\nkind = "arcgis"\nurl = "https://x/query"\nactive_onyl = true\n')
    found = problems(tmp_path, text)
    assert any("lookup 'types' is not a [lookups] table" in item for item in found)
    assert any("'D' is listed under both dispatched and on_scene" in item for item in found)
    assert any(":25: [poll] unknown key 'active_onyl'; did you mean 'active_only'?" in item
               for item in found), found


def test_section_of_the_other_kind_is_named(tmp_path: Path) -> None:
    """A [units] table in a shots mapping says it is not a shots section."""
    text = ('[dataset]\nname = "s"\nkind = "shots"\nid = "id"\n[fields]\ndetected_time = "t"\n'
            '[shot]\ntype = "k"\n[units]\nid = "u"\n')
    assert problems(tmp_path, text) == ["m.toml:9: [units] is not a section of a shots mapping"]


def _keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def test_every_key_is_documented() -> None:
    """streams/mappings/README.md names every section and every key of every section."""
    reference = README.split("### Reference", 1)[1].split("### Live feeds", 1)[0]
    missing = []
    for section, model in SECTIONS.items():
        name = section.split(" ")[0].split(".")[0]
        if f"[{name}" not in reference:
            missing.append(f"[{name}]")
        missing += [f"[{section}] {key}" for key in _keys(model) if f"`{key}`" not in reference]
    missing += [f"[poll] {key}" for key in POLL_KEYS if f"`{key}`" not in reference]
    assert missing == []


def test_shipped_mappings_are_valid() -> None:
    """Every shipped mapping passes the strict schema."""
    from tests.conftest import SHARED_DATA
    for path in MAPPINGS.glob("*.toml"):
        assert load_mapping(path, SHARED_DATA).name == path.stem
