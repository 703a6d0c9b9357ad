"""Selecting cases: profile semantics, explicit kinds (AND across, OR within), errors."""

from pathlib import Path

import pytest

from conformance.loader import load_corpus
from conformance.model import Case, Profile
from conformance.select import in_profile, select

CASES = Path(__file__).resolve().parent.parent / "cases"


def case(cid, level="MUST", tags=()):
    return Case(id=cid, path=f"{cid}.toml", title="t", requirements=("R-8.1-a",), level=level,
                connections=(), tags=tuple(tags))


ALL = [
    case("lab/get-file"),
    case("lab/get-missing", level="SHOULD"),
    case("lab/slow-client", tags=["slow"]),
    case("rfc1945/head-no-body"),
    case("rfc1945/folded-header", level="SHOULD", tags=["parsing"]),
    case("rfc1945/absolute-uri", level="MAY"),
    case("security/dotdot"),
    case("robustness/long-line", level="SHOULD", tags=["slow", "parsing"]),
]
PROFILES = {
    "default": Profile("default", "d", areas=("rfc1945", "robustness", "security", "concurrency"),
                       exclude_tags=("slow",), levels=("MUST", "SHOULD")),
    "lab": Profile("lab", "l", areas=("lab",), exclude_tags=("slow",)),
    "mixed": Profile("mixed", "m", areas=("security",), ids=("lab/get-*",)),
    "slow": Profile("slow", "s", tags=("slow",)),
}


def ids(cases):
    return [c.id for c in cases]


def test_nothing_selected_is_the_default_profile():
    assert ids(select(ALL, PROFILES)) == ["rfc1945/head-no-body", "rfc1945/folded-header", "security/dotdot"]


def test_exclude_tags_alone_narrows_the_default():
    assert ids(select(ALL, PROFILES, exclude_tags=("parsing",))) == ["rfc1945/head-no-body", "security/dotdot"]


def test_profile_areas_or_ids():
    assert ids(select(ALL, PROFILES, profile="mixed")) == ["lab/get-file", "lab/get-missing", "security/dotdot"]
    assert in_profile(ALL[0], PROFILES["lab"]) and not in_profile(ALL[2], PROFILES["lab"])


def test_profile_tags():
    assert ids(select(ALL, PROFILES, profile="slow")) == ["lab/slow-client", "robustness/long-line"]


def test_explicit_kinds_and_across_or_within():
    assert ids(select(ALL, PROFILES, areas=("lab", "security"))) == [
        "lab/get-file", "lab/get-missing", "lab/slow-client", "security/dotdot"]
    assert ids(select(ALL, PROFILES, areas=("lab",), levels=("MUST",))) == ["lab/get-file", "lab/slow-client"]
    assert ids(select(ALL, PROFILES, areas=("lab",), ids=("*/get-*",))) == ["lab/get-file", "lab/get-missing"]
    assert ids(select(ALL, PROFILES, areas=("security",), ids=("lab/*",))) == []
    assert ids(select(ALL, PROFILES, tags=("parsing",), exclude_tags=("slow",))) == ["rfc1945/folded-header"]
    assert ids(select(ALL, PROFILES, levels=("SHOULD", "MAY"))) == [
        "lab/get-missing", "rfc1945/folded-header", "rfc1945/absolute-uri", "robustness/long-line"]


def test_profile_and_explicit_kinds_combine_with_and():
    assert ids(select(ALL, PROFILES, profile="lab", levels=("SHOULD",))) == ["lab/get-missing"]
    assert ids(select(ALL, PROFILES, profile="default", ids=("security/*",))) == ["security/dotdot"]


def test_id_globs_are_fnmatch():
    assert ids(select(ALL, PROFILES, ids=("rfc1945/[fh]*",))) == ["rfc1945/head-no-body", "rfc1945/folded-header"]
    assert ids(select(ALL, PROFILES, ids=("lab/get-file",))) == ["lab/get-file"]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"profile": "nightly"}, "unknown profile 'nightly'; the profiles are: default, lab, mixed, slow"),
        ({"areas": ("labs",)}, "unknown area 'labs'; the areas are: concurrency, lab, rfc1945, robustness, security"),
        ({"levels": ("must",)}, "unknown level 'must'; the levels are: MUST, SHOULD, MAY"),
    ],
)
def test_unknown_names_raise_with_the_known_ones(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        select(ALL, PROFILES, **kwargs)
    assert str(info.value) == fragment


def test_an_area_named_by_a_profile_is_known_even_without_cases():
    assert select(ALL, PROFILES, areas=("concurrency",)) == []


def test_real_profiles():
    corpus = load_corpus(CASES)
    assert set(corpus.profiles) >= {"default", "lab", "rfc1945", "robustness", "security", "concurrency", "all", "slow"}
    default = select(corpus.cases, corpus.profiles)
    assert default
    assert all(c.area != "lab" and c.level != "MAY" and "slow" not in c.tags for c in default)
    lab = select(corpus.cases, corpus.profiles, profile="lab")
    assert lab and all(c.area == "lab" or c.id in corpus.profiles["lab"].ids for c in lab)
    # The lab asks for a thread per client and a server confined to its folder.
    assert {"concurrency", "security"} <= {c.area for c in lab}
    everything = select(corpus.cases, corpus.profiles, profile="all")
    assert len(everything) == sum(1 for c in corpus.cases if "slow" not in c.tags)
