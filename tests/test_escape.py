"""The escape rule of the case format, safe display, and printf quoting."""

import shutil
import subprocess

import pytest
from hypothesis import given, strategies as st

from conformance.escape import shell_quote_bytes, show, to_bytes

ALL_BYTES = bytes(range(256))


def test_to_bytes_maps_each_character_to_its_code_point():
    assert to_bytes("".join(map(chr, range(256)))) == ALL_BYTES
    assert to_bytes("GET / HTTP/1.0\r\n\r\n") == b"GET / HTTP/1.0\r\n\r\n"
    assert to_bytes("\u00c3\u00a9") == "é".encode("utf-8")
    assert to_bytes("") == b""


def test_to_bytes_names_the_character_and_its_index():
    with pytest.raises(ValueError) as info:
        to_bytes("GET /\u20ac HTTP/1.0")
    message = str(info.value)
    assert "U+20AC" in message
    assert "index 5" in message
    assert "\\u00XX" in message


def test_show_printable_ascii_as_is_and_escapes_the_rest():
    assert show(b"hello") == "hello"
    assert show(b"a\tb\x00\x7f\xff") == "a\\tb\\x00\\x7f\\xff"
    assert show(b"back\\slash") == "back\\\\slash"
    assert show(b"") == ""


def test_show_keeps_lines_readable():
    assert show(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n") == "GET / HTTP/1.0\\r\\n\nHost: x\\r\\n\n\\r\\n"
    assert show(b"a\nb") == "a\\n\nb"


def test_show_cuts_at_the_limit():
    assert show(b"x" * 10, limit=4) == "xxxx\n... (6 more bytes)"
    assert show(b"ab\n" * 3, limit=3) == "ab\\n\n... (6 more bytes)"
    assert show(b"x" * 5, limit=5) == "xxxxx"
    assert show(b"x" * 3000).endswith("... (1000 more bytes)")
    assert show(b"x" * 3000, limit=-1) == "x" * 3000


@given(st.binary(max_size=300), st.integers(min_value=-1, max_value=400))
def test_show_output_is_printable_ascii(data, limit):
    text = show(data, limit)
    assert all(ch == "\n" or 0x20 <= ord(ch) < 0x7F for ch in text)


SHELLS = [sh for sh in ("sh", "bash", "dash") if shutil.which(sh)]


@pytest.mark.skipif(not SHELLS, reason="no POSIX shell")
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "data",
    [
        ALL_BYTES,
        b"GET /file.txt HTTP/1.0\r\n\r\n",
        b"-n starts like an option",
        b"%s %d %% 100%",
        b"it's \"quoted\" and \\backslashed\\ $HOME `x`",
        b"\x00\x00nul\x00",
        b"",
    ],
)
def test_shell_quote_bytes_round_trips_through_printf(shell, data):
    word = shell_quote_bytes(data)
    out = subprocess.run([shell, "-c", f"printf {word}"], capture_output=True, timeout=10, check=True).stdout
    assert out == data


def test_shell_quote_bytes_is_one_single_quoted_word():
    word = shell_quote_bytes(ALL_BYTES)
    assert word.startswith("'") and word.endswith("'")
    assert "'" not in word[1:-1]
    assert all(0x20 <= ord(ch) < 0x7F for ch in word)
