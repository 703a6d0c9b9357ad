"""Bytes on the wire as text: the case format's escape rule, safe display, shell quoting.

TOML strings are Unicode and HTTP is bytes. The case format (cases/README.md, "Bytes:
the escape rule") maps each character of a bytes string to one byte, its code point,
which is exactly ISO-8859-1 decoding; a character above U+00FF is an error.

The other two functions go the opposite way, for people: ``show`` renders bytes a
terminal can print safely, and ``shell_quote_bytes`` renders them as one shell word
that ``printf`` turns back into exactly those bytes (for a reproducer).
"""

from __future__ import annotations

__all__ = ["to_bytes", "show", "shell_quote_bytes"]


def to_bytes(text: str) -> bytes:
    """Turn a bytes string of the case format into bytes.

    Args:
        text: a string whose every character is U+0000..U+00FF.

    Returns:
        One byte per character, the character's code point.

    Raises:
        ValueError: a character is above U+00FF; the message names it and its
            0-based index in ``text``.
    """
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        char = text[exc.start]
        raise ValueError(
            f"character U+{ord(char):04X} ({char!r}) at index {exc.start} is above U+00FF: "
            "a bytes string holds one byte per character; write a byte as \\u00XX "
            "(for example the UTF-8 of e-acute is \\u00c3\\u00a9)"
        ) from None


# Display of one byte: printable ASCII as is, a few control bytes by their C name,
# the backslash doubled (so the display is unambiguous), the rest as \xHH.
_SHOW = [f"\\x{b:02x}" for b in range(256)]
for _b in range(0x20, 0x7F):
    _SHOW[_b] = chr(_b)
_SHOW[ord("\\")] = "\\\\"
_SHOW[ord("\r")] = "\\r"
_SHOW[ord("\n")] = "\\n\n"  # the escape, then a real line break to keep lines readable
_SHOW[ord("\t")] = "\\t"
del _b


def show(data: bytes, limit: int = 2000) -> str:
    """Render bytes safely for a terminal or a report.

    Printable ASCII is shown as is, ``\\r`` ``\\n`` ``\\t`` and the backslash as C
    escapes, every other byte as ``\\xHH``. After each ``\\n`` a real line break
    follows, so a response reads line by line. Only the first ``limit`` bytes are
    shown, followed by ``... (N more bytes)``.

    Args:
        data: the bytes to render.
        limit: the number of bytes to show at most; a negative value shows all.

    Returns:
        The rendering, which holds only printable ASCII and line feeds; "" for no
        bytes.
    """
    data = bytes(data)
    rest = 0
    if 0 <= limit < len(data):
        rest = len(data) - limit
        data = data[:limit]
    text = "".join(_SHOW[b] for b in data)
    if rest:
        if text and not text.endswith("\n"):
            text += "\n"
        text += f"... ({rest} more bytes)"
    elif text.endswith("\n"):
        text = text[:-1]  # the final \n keeps its escape; no empty last line
    return text


# printf(1) format escapes understood by POSIX printf, dash and bash alike.
_PRINTF_NAMED = {ord("\\"): "\\\\", ord("\r"): "\\r", ord("\n"): "\\n", ord("\t"): "\\t"}


def shell_quote_bytes(data: bytes) -> str:
    """Quote bytes as one shell word that ``printf`` turns back into those bytes.

    The result is single-quoted, so the shell expands nothing inside; it is a printf
    *format*: ``%`` is doubled, backslash, CR, LF and TAB are C escapes, and every
    other byte outside printable ASCII (and the single quote) is a three-digit octal
    escape, which POSIX printf, dash and bash all understand (``\\x`` is not POSIX).
    A leading ``-`` is escaped too, so printf never takes it for an option.

    Args:
        data: the bytes to reproduce.

    Returns:
        A word such that ``printf WORD`` writes exactly ``data``, e.g. for
        ``printf WORD | nc HOST PORT``.
    """
    out = []
    for i, b in enumerate(bytes(data)):
        if b in _PRINTF_NAMED:
            out.append(_PRINTF_NAMED[b])
        elif b == ord("%"):
            out.append("%%")
        elif b == ord("'") or not 0x20 <= b < 0x7F or (i == 0 and b == ord("-")):
            out.append(f"\\{b:03o}")
        else:
            out.append(chr(b))
    return "'" + "".join(out) + "'"
