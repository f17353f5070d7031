"""The table of unit kinds the wall may suggest per call class (DISPATCH_SUGGEST_UNITS)."""

from __future__ import annotations

import pytest

from streams.core.settings import Settings
from streams.core.suggestions import DEFAULT_SUGGESTIONS, SuggestionTable


def test_defaults_never_send_cso_or_sro_to_gunfire_or_violence() -> None:
    table = SuggestionTable.parse(DEFAULT_SUGGESTIONS)
    for call_class in ("gunshot", "violent"):
        kinds = {kind for tier in table.for_class(call_class) for kind in tier}
        assert kinds == {"patrol", "task_force", "supervisor", "k9"}
    assert table.for_class("qol")[0] == ("cso", "sro", "conditions")
    assert table.for_class("medical") == table.for_class("*")
    assert "cso" not in {kind for tier in table.for_class("*") for kind in tier}


def test_text_round_trips_through_the_environment() -> None:
    table = SuggestionTable.parse("gunshot=patrol,k9; qol = cso , sro > patrol ;*=patrol")
    assert table.for_class("qol") == (("cso", "sro"), ("patrol",))
    assert SuggestionTable.parse(str(table)) == table
    env = Settings.from_env({"DISPATCH_SUGGEST_UNITS": str(table)})
    assert env.suggest_units == table


@pytest.mark.parametrize(("text", "message"), [
    ("gunshot=patrol", "'*=...'"),
    ("gunshot=patrol,ninja; *=patrol", "unknown unit kind(s) ninja"),
    ("gunshot; *=patrol", "class=kind"),
    ("gunshot=patrol>; *=patrol", "class=kind"),
])
def test_bad_tables_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*").replace(".", r"\.")):
        SuggestionTable.parse(text)
