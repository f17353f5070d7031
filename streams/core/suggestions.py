"""Which unit kinds may be suggested for which call classes (issue 10 item 3). Pure.

A table in settings (DISPATCH_SUGGEST_UNITS): ``class=kinds`` entries separated by ``;``,
kinds in tiers separated by ``>`` (nearer tiers first), kinds of one tier by ``,``:

    gunshot=patrol,task_force,supervisor,k9; qol=cso,sro,conditions>patrol; *=patrol

A kind a class does not list is never suggested for it (no CSO, a non-sworn community
service officer, sent towards gunfire); ``*`` is every class not listed. The wall ranks
the available units of the first tier by distance and fills from the next tiers only when
the first has too few.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from streams.core.events import UNIT_KINDS

ANY_CLASS: Final = "*"
SWORN_FOR_VIOLENCE: Final = "patrol,task_force,supervisor,k9"
DEFAULT_SUGGESTIONS: Final = (
    f"gunshot={SWORN_FOR_VIOLENCE}; violent={SWORN_FOR_VIOLENCE}; "
    "qol=cso,sro,conditions>patrol,mounted,traffic; "
    "*=patrol,supervisor,task_force,k9,traffic,mounted")
"""The issue's defaults: gunfire and violence get sworn patrol, task force, supervisors and
K9, never CSOs or SROs; quality-of-life calls CSOs, SROs and conditions teams first."""

UNIT_KIND_LABELS: Final = {
    "patrol": "Patrol", "cso": "CSO", "sro": "SRO", "conditions": "Conditions",
    "traffic": "Traffic", "mounted": "Mounted", "k9": "K9", "supervisor": "Supervisor",
    "task_force": "Task force",
}
"""How the banner names a unit's kind, next to its callsign."""


@dataclass(frozen=True)
class SuggestionTable:
    """call class -> tiers of unit kinds (see the module docstring)."""

    tiers: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]

    @classmethod
    def parse(cls, text: str) -> SuggestionTable:
        entries = []
        for part in (piece.strip() for piece in text.split(";")):
            if not part:
                continue
            name, equals, kinds = part.partition("=")
            tiers = tuple(tuple(k.strip() for k in tier.split(",") if k.strip())
                          for tier in kinds.split(">"))
            unknown = sorted({k for tier in tiers for k in tier} - set(UNIT_KINDS))
            if not equals or not name.strip() or not all(tiers):
                raise ValueError(f"expected class=kind,kind>kind entries separated by ';', "
                                 f"got {part!r}")
            if unknown:
                raise ValueError(f"unknown unit kind(s) {', '.join(unknown)} in {part!r}; "
                                 f"known: {', '.join(UNIT_KINDS)}")
            entries.append((name.strip(), tiers))
        if ANY_CLASS not in dict(entries):
            raise ValueError(f"give the kinds for every other class ('*=...') in {text!r}")
        return cls(tuple(entries))

    def for_class(self, call_class: str) -> tuple[tuple[str, ...], ...]:
        table = dict(self.tiers)
        return table.get(call_class, table[ANY_CLASS])

    def as_config(self) -> dict[str, list[list[str]]]:
        """For the browser: {class: [[kind, ...], ...]}."""
        return {name: [list(tier) for tier in tiers] for name, tiers in self.tiers}

    def __str__(self) -> str:
        return "; ".join(f"{name}=" + ">".join(",".join(tier) for tier in tiers)
                         for name, tiers in self.tiers)

