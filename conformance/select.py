"""Choosing cases: profiles from profiles.toml and explicit selections.

A profile (cases/README.md, "Profiles") keeps a case that is in one of its ``areas``
or matches one of its ``ids`` globs (both empty: every case), has one of its ``tags``
(empty: no condition), has none of its ``exclude_tags`` and whose level is one of its
``levels`` (empty: any). Explicit selections (command-line flags) combine with AND
across kinds (every kind given must hold) and OR within a kind (any value will do);
unlike in a profile, ``ids`` and ``areas`` are two kinds: ``--area lab --id '*-file'``
is the lab cases whose id ends in ``-file``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Iterable, Mapping, Sequence

from .model import LEVELS, Case, Profile

__all__ = ["DEFAULT_PROFILE", "select", "in_profile"]

DEFAULT_PROFILE = "default"


def in_profile(case: Case, profile: Profile) -> bool:
    """Whether ``case`` belongs to ``profile`` (README semantics)."""
    return _keep(case, profile.ids, profile.areas, profile.tags, profile.exclude_tags, profile.levels)


def _keep(
    case: Case,
    ids: Sequence[str],
    areas: Sequence[str],
    tags: Sequence[str],
    exclude_tags: Sequence[str],
    levels: Sequence[str],
) -> bool:
    if (ids or areas) and not (case.area in areas or any(fnmatchcase(case.id, g) for g in ids)):
        return False
    if tags and not any(t in case.tags for t in tags):
        return False
    if any(t in case.tags for t in exclude_tags):
        return False
    return not levels or case.level in levels


def select(
    cases: Iterable[Case],
    profiles: Mapping[str, Profile],
    *,
    ids: Sequence[str] = (),
    areas: Sequence[str] = (),
    profile: str | None = None,
    tags: Sequence[str] = (),
    exclude_tags: Sequence[str] = (),
    levels: Sequence[str] = (),
) -> list[Case]:
    """The cases a selection names, in the order given (the corpus is sorted by id).

    With nothing selected (no ids, areas, profile, tags or levels) the ``default``
    profile applies; ``exclude_tags`` alone narrows that default. A profile and
    explicit kinds combine with AND: ``profile="lab", levels=("MUST",)`` is the MUST
    cases of the lab profile. Explicit kinds without a profile select from every
    case, slow ones included: add ``exclude_tags=("slow",)`` to leave them out.

    Args:
        cases: the cases to choose from.
        profiles: the profiles of the corpus, by name.
        ids: id globs (``fnmatch``, case-sensitive: ``security/*``, ``lab/get-*``).
        areas: area names (the first component of an id).
        profile: a profile name.
        tags: keep cases carrying one of these tags.
        exclude_tags: drop cases carrying one of these tags.
        levels: keep cases at one of these levels.

    Returns:
        The selected cases; possibly empty (the caller decides whether that is an
        error).

    Raises:
        ValueError: an unknown profile, area or level; the message lists the known
            names.
    """
    cases = list(cases)
    # An area is known if a case or a profile names it (an area may have no case yet).
    known_areas = sorted({c.area for c in cases}.union(*(p.areas for p in profiles.values())))
    unknown = [a for a in areas if a not in known_areas]
    if unknown:
        raise ValueError(f"unknown area {unknown[0]!r}; the areas are: {', '.join(known_areas)}")
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown:
        raise ValueError(f"unknown level {unknown[0]!r}; the levels are: {', '.join(LEVELS)}")
    if profile is None and not (ids or areas or tags or levels):
        profile = DEFAULT_PROFILE
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(profiles) or "(none: profiles.toml defines no profile)"
            raise ValueError(f"unknown profile {profile!r}; the profiles are: {known}")
        chosen = profiles[profile]
        cases = [c for c in cases if in_profile(c, chosen)]
    return [
        c
        for c in cases
        if (not ids or any(fnmatchcase(c.id, g) for g in ids))
        and (not areas or c.area in areas)
        and _keep(c, (), (), tags, exclude_tags, levels)
    ]
