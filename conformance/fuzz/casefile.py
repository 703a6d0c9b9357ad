"""A shrunk finding as a ready-to-commit TOML case file, in the corpus format.

``case_text`` is pure: an example and the invariant it broke in, TOML text out.
The title and requirements are guessed from the invariant (``invariants.KINDS``),
the expectation is what every correct server does with those bytes, so the case
passes on the reference and fails on the server the fuzzer caught.

``prepare_corpus`` makes the output folder a small corpus of its own (the
catalogue files of the source corpus, with a ``default`` profile for area
``fuzz``) so that ``python -m conformance check --cases OUT`` validates the
written files and ``python -m conformance --cases OUT`` runs them.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .. import escape
from .invariants import KINDS
from .strategies import Example, is_simple_request

__all__ = ["AREA", "case_name", "case_text", "prepare_corpus", "reproducer"]

AREA = "fuzz"

# Per connection; the fuzzer's own deadline is shorter, a case gets room to spare.
CASE_TIMEOUT = 5


def case_name(kind: str, example: Example) -> str:
    """A stable kebab-case file name: the invariant and a hash of the bytes."""
    digest = hashlib.sha256(repr((example.data, example.cuts, example.half_close, example.read)).encode()).hexdigest()
    return f"{kind}-{digest[:10]}"


def _toml_bytes(data: bytes) -> str:
    """A TOML basic string holding ``data`` by the corpus escape rule (one char per byte)."""
    out = ['"']
    for byte in data:
        char = chr(byte)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\r":
            out.append("\\r")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append("\\u%04x" % byte)
    out.append('"')
    return "".join(out)


def _toml_text(text: str) -> str:
    return _toml_bytes(text.encode("latin-1", "replace"))


def _what(example: Example) -> str:
    """The request's first line, shown safely and short, for a title."""
    first = example.data.lstrip(b"\r\n").split(b"\n", 1)[0][:48]
    shown = escape.show(first, 48).replace("\n", "")
    if not example.data:
        return "an empty connection"
    return f"'{shown}'" + (" (fuzzed)" if example.mutations else "")


def _outcomes(kind: str, example: Example, secret: bytes) -> list[dict]:
    """The outcomes a correct server may give, for the invariant that was broken."""
    lenient_any = {"note": "any answer or none, then a close", "response": "any", "framing": "lenient",
                   "connection": "closed"}
    if kind in ("hang", "no-close"):
        return [lenient_any]
    if kind == "dropped":
        return [{"note": "a Full-Response", "response": "full", "framing": "lenient", "connection": "any"}]
    if kind == "garbage":
        out = [{"note": "a Full-Response", "response": "full", "framing": "lenient", "connection": "any"},
               {"note": "a close without a response", "response": "none", "connection": "any"}]
        if is_simple_request(example.data):
            out.append({"note": "a Simple-Response (HTTP/0.9)", "response": "simple", "connection": "any"})
        return out
    if kind == "framing":
        outcome = {"note": "a Full-Response framed strictly", "response": "full", "framing": "strict",
                   "connection": "any"}
        if example.request.method == b"HEAD":
            outcome["body"] = {"empty": True}
        return [outcome]
    if kind == "secret":
        return [{"note": "anything but the outside file's bytes", "response": "any", "framing": "lenient",
                 "connection": "any", "body": {"excludes": [secret]}}]
    if kind == "traceback" and example.valid:
        return [{"note": "a Full-Response", "response": "full", "framing": "lenient", "connection": "any"}]
    return [{"note": "any answer or none", "response": "any", "framing": "lenient", "connection": "any"}]


def case_text(kind: str, example: Example, detail: str, secret: bytes = b"", seed: int | None = None,
              found_after: int | None = None) -> str:
    """The TOML text of a case that reproduces a finding.

    Args:
        kind: the invariant broken (a key of ``invariants.KINDS``).
        example: the shrunk example.
        detail: what the fuzzer saw, for a comment.
        secret: the outside file's content (for ``secret`` findings).
        seed, found_after: recorded in a comment, for the record.

    Returns:
        A case file that ``check`` accepts, ending with a newline.
    """
    spec = KINDS[kind]
    level = spec.level
    if kind == "secret" and b"link.txt" in example.data:
        level = "SHOULD"  # following a symlink out of the root is a hardening SHOULD (ROB-4)
    lines = [
        f"# Written by 'python -m conformance fuzz' ({kind}: {spec.summary}).",
        f"# Seen: {detail}",
        f"# Example: {example.describe()}",
    ]
    if seed is not None:
        lines.append(f"# Seed {seed}" + (f", after {found_after} examples." if found_after else "."))
    lines += [
        f"title = {_toml_text(spec.title.format(what=_what(example)))}",
        "requirements = [" + ", ".join(f'"{r}"' for r in spec.requirements) + "]",
        f'level = "{level}"',
        'tags = ["fuzz"]',
        f"hint = {_toml_text(spec.hint)}",
    ]
    if kind in ("canary", "traceback"):
        lines.append("liveness = true")
    lines += ["", "[request]", f"timeout = {CASE_TIMEOUT}"]
    if example.half_close:
        lines.append("half_close = true")
    if example.read is not None:
        lines.append(f"read = {example.read}")
    segments = example.segments
    if len(segments) == 1:
        lines.append(f"data = {_toml_bytes(segments[0])}")
    else:
        parts = []
        for index, segment in enumerate(segments):
            pause = f", pause_ms = {example.pause_ms}" if index and example.pause_ms else ""
            parts.append(f"  {{ data = {_toml_bytes(segment)}{pause} }},")
        lines += ["parts = [", *parts, "]"]
    for outcome in _outcomes(kind, example, secret):
        lines += ["", "[[expect]]"]
        body = outcome.pop("body", None)
        for key, value in outcome.items():
            lines.append(f"{key} = {_toml_text(value) if isinstance(value, str) else value}")
        if body:
            for key, value in body.items():
                if isinstance(value, list):
                    rendered = "[" + ", ".join(_toml_bytes(v) for v in value) + "]"
                else:
                    rendered = "true" if value is True else "false"
                lines.append(f"body.{key} = {rendered}")
    return "\n".join(lines) + "\n"


def reproducer(example: Example, target: str, out_dir: Path, name: str) -> str:
    """The one-line reproducer: printf | nc for plain bytes, else the runner on the case."""
    simple = len(example.segments) == 1 and not example.read and len(example.data) <= 300
    if simple and example.data:
        host, _, port = target.rpartition(":")
        nc = "nc -N" if example.half_close else "nc"
        return f"printf {escape.shell_quote_bytes(example.data)} | {nc} {host.strip('[]')} {port}"
    return f"python -m conformance --cases {out_dir} --id {AREA}/{name} --target {target} --verbose"


# Catalogue files copied from the source corpus; docroot/ is copied too (64 KiB).
_CATALOGUE = ("schema.json", "bundle-schema.json", "requirements.toml", "fixtures.toml")

_PROFILES = """# Written by 'python -m conformance fuzz': the findings are area "fuzz".
[profile.default]
description = "Cases the fuzzer wrote from its findings"
areas = ["fuzz"]
"""


def prepare_corpus(out_dir: Path, source: Path) -> Path:
    """Make ``out_dir`` a corpus that holds only ``fuzz/`` cases; returns ``out_dir/fuzz``.

    The catalogue files are those of ``source`` so that the requirement ids, the
    schema and the fixture root are the same; existing case files are kept.
    """
    out_dir = Path(out_dir)
    (out_dir / AREA).mkdir(parents=True, exist_ok=True)
    for name in _CATALOGUE:
        if (source / name).is_file():
            shutil.copyfile(source / name, out_dir / name)
    (out_dir / "profiles.toml").write_text(_PROFILES, encoding="utf-8")
    if (source / "docroot").is_dir():
        shutil.copytree(source / "docroot", out_dir / "docroot", dirs_exist_ok=True, symlinks=True)
    return out_dir / AREA
