"""Hypothesis strategies: requests from the RFC 1945 grammar, then mutated bytes.

Two layers, as in grammar-based fuzzers such as http-garden's generator and
mutators (learned from, not copied):

1. ``requests(paths)`` draws a ``Request`` from the grammar of RFC 1945 §5::

       Full-Request   = Request-Line *( General-Header | Request-Header
                        | Entity-Header ) CRLF [ Entity-Body ]
       Request-Line   = Method SP Request-URI SP HTTP-Version CRLF
       Simple-Request = "GET" SP Request-URI CRLF

   with every alternative a server meets: extension and lower-case methods,
   request targets with every escape (each byte as %XX, bad escapes, dot
   segments, the symlink out of the root, absoluteURI, ``*``), versions from
   HTTP/0.9 to garbage, header names and values (folded, empty, control bytes)
   and bodies with and without a Content-Length. ``Request.valid`` says whether
   the request is a well-formed HTTP/1.0 Full-Request that every server must
   answer with a well-framed response.

2. ``examples(paths)`` renders a request and mutates the bytes (bit flips,
   truncation, duplication, CR/LF/NUL/space insertion, deletion), then picks how
   they travel: fragments with pauses, a half-close, or a client that closes
   early. An ``Example`` is a plain value; the engine plays it.

Everything here is pure: no socket, no clock. Sizes are bounded so that one
example costs microseconds to draw and at most a few tens of KiB to send.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from hypothesis import strategies as st

__all__ = [
    "Request",
    "Example",
    "MUTATORS",
    "requests",
    "examples",
    "mutate",
    "is_simple_request",
]

CRLF = b"\r\n"

# §5.1.1: the three methods a static server knows; GET dominates real traffic.
VALID_METHODS = ("GET", "GET", "GET", "HEAD", "POST")
# Extension methods, a lower-case method (methods are case-sensitive) and
# near-misses of token syntax.
OTHER_METHODS = ("PUT", "DELETE", "OPTIONS", "TRACE", "LINK", "UNLINK", "FOO", "get", "Get",
                 "CONNECT", "PATCH", "G", "GETT", "HEAD\x00", "GE\xc9T", "")
TOKEN_ALPHABET = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# §3.1: only HTTP/1.0 is "valid" here (a 1.1 request may be kept alive); the rest
# are other versions a 1.0 server must answer, and malformed ones.
OTHER_VERSIONS = ("HTTP/1.1", "HTTP/0.9", "HTTP/2.0", "HTTP/3.0", "http/1.0", "HTTP/01.0",
                  "HTTP/1.00", "HTTP/1.10", "HTTP/1", "HTTP/", "HTTP/1.0.0", "HTTP/1.a",
                  "HTTPS/1.0", "HTTP /1.0", "HTTP/-1.0", "HTTP/99999999999999999999.0",
                  "FOO/1.0", "HTTP/1.0 ", "\x00HTTP/1.0")

# Paths that try to leave the document root; "secret.txt" lies beside root/ and
# "link.txt" is a symlink to it.
TRAVERSALS = (
    "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/..%2fsecret.txt",
    "/dir/../../secret.txt", "/dir/%2e%2e/%2e%2e/secret.txt", "//../secret.txt",
    "/%252e%252e/secret.txt", "/..\\secret.txt", "/%5c..%5csecret.txt", "/.%2e/secret.txt",
    "/%c0%ae%c0%ae/secret.txt", "/link.txt", "/./../secret.txt", "/dir/..%00/../secret.txt",
    "http://127.0.0.1/../secret.txt", "../secret.txt",
)
OTHER_TARGETS = ("*", "/", "/dir/", "/dir", "/nope.txt", "/%", "/%4", "/%zz", "/%00",
                 "/file.txt%00.html", "/file.txt?", "/file.txt#frag", "/?a=b", "//file.txt",
                 "/./file.txt", "/.hidden", "http://127.0.0.1/file.txt", "ftp://x/file.txt",
                 "file.txt", "/file.txt/", "/%2f", "/\xff", "/a b")

# Header fields a client sends, with values that are all valid (§4.2, §10).
HEADER_FIELDS = (
    ("Host", "127.0.0.1"), ("User-Agent", "conformance-fuzz/1"), ("Accept", "*/*"),
    ("From", "fuzz@example.org"), ("Referer", "http://127.0.0.1/"), ("Pragma", "no-cache"),
    ("If-Modified-Since", "Thu, 02 Jan 2020 03:04:05 GMT"),
    ("If-Modified-Since", "Thursday, 02-Jan-20 03:04:05 GMT"),
    ("If-Modified-Since", "Thu Jan  2 03:04:05 2020"),
    ("If-Modified-Since", "Sat, 01 Jan 2101 00:00:00 GMT"),
    ("Connection", "close"), ("Accept-Language", "en"), ("Authorization", "Basic Zm9vOmJhcg=="),
    ("X-Fuzz", ""),
)
# Header lines that break the grammar: no colon, space before the colon, a name
# that is not a token, folding, control bytes, conflicting or absurd lengths.
BAD_HEADER_LINES = (
    b"NoColon", b"Host : 127.0.0.1", b"Bad Name: x", b": empty-name", b" folded-first: x",
    b"X-A: a\r\n continued", b"X-Nul: a\x00b", b"X-Cr: a\rb", b"X-High: \xff\xfe",
    b"Content-Length: -1", b"Content-Length: abc", b"Content-Length: 99999999999999999999",
    b"Content-Length: 1\r\nContent-Length: 2", b"Transfer-Encoding: chunked",
    b"\x00", b"X-Long: " + b"v" * 3000,
)

# Bytes the insertion mutator prefers: the ones that change how a line is cut.
SPECIAL_BYTES = (b"\r", b"\n", b"\x00", b" ", b"\t", b"\r\n", b"%", b"/", b":", b"\xff")

MAX_TARGET = 300        # bytes of a drawn request target (long ones are "long_run" below)
MAX_LONG = 12000        # a repeated byte run: past every server's request-line limit
MAX_BODY = 300


@dataclass(frozen=True)
class Request:
    """A request at the grammar level, before any mutation.

    ``version`` None is the HTTP/0.9 form (no version). ``valid`` is True for a
    well-formed HTTP/1.0 Full-Request (GET, HEAD or POST of an abs_path, valid
    header fields, a body only with its exact Content-Length) and for a
    Simple-Request ``GET abs_path`` CRLF.
    """

    method: bytes
    target: bytes
    version: bytes | None
    headers: tuple[bytes, ...]  # whole header lines, without their CRLF
    body: bytes = b""
    valid: bool = False

    def render(self) -> bytes:
        """The bytes of the request as a client would send them."""
        if self.version is None:
            return self.method + b" " + self.target + CRLF
        head = self.method + b" " + self.target + b" " + self.version + CRLF
        head += b"".join(line + CRLF for line in self.headers)
        return head + CRLF + self.body


@dataclass(frozen=True)
class Example:
    """One fuzz example: the bytes, how they travel, and how the client reads.

    ``cuts`` are offsets into ``data`` where a new write starts, ``pause_ms``
    before each. ``read`` None reads to the end (the engine caps it); 0 closes
    right after sending; N closes after N bytes of the response (a client that
    leaves mid-response).
    """

    request: Request
    data: bytes
    mutations: tuple[str, ...] = ()
    cuts: tuple[int, ...] = ()
    pause_ms: int = 0
    half_close: bool = False
    read: int | None = None

    @property
    def valid(self) -> bool:
        """A valid request, sent whole (fragments allowed) and read to the end."""
        return self.request.valid and not self.mutations and self.read is None

    @property
    def segments(self) -> list[bytes]:
        """``data`` cut at ``cuts``: the writes, in order."""
        bounds = [0, *self.cuts, len(self.data)]
        return [self.data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a] or [b""]

    def describe(self) -> str:
        """A one-line description for reports: the transport and the mutations."""
        bits = [f"{len(self.data)} bytes"]
        if self.mutations:
            bits.append("mutated: " + ", ".join(self.mutations))
        if self.cuts:
            bits.append(f"in {len(self.cuts) + 1} writes, {self.pause_ms} ms apart")
        if self.half_close:
            bits.append("half-closed")
        if self.read == 0:
            bits.append("closed without reading")
        elif self.read is not None:
            bits.append(f"closed after {self.read} response bytes")
        return "; ".join(bits)


def is_simple_request(data: bytes) -> bool:
    """Whether a server may read ``data`` as an HTTP/0.9 Simple-Request.

    Then a Simple-Response (the body without a status line) is a fair answer. A
    first line (after leading empty lines) without an ``HTTP/`` version word may be
    one; lenient servers also take any case of the word, so this errs that way.
    """
    line = data.lstrip(b"\r\n").split(b"\n", 1)[0]
    words = line.split()
    return len(words) < 3 or not words[-1].upper().startswith(b"HTTP/")


# -- request targets ------------------------------------------------------------------


def _encode_path(path: str) -> str:
    """``path`` (root-relative, Unicode) as an abs_path: UTF-8, percent-encoded."""
    return "/" + quote(path.encode("utf-8"), safe="/")


def _reencode(path: str, positions: list[int]) -> str:
    """The same path with the characters at ``positions`` percent-encoded (%66 is "f")."""
    chars = list(path)
    for pos in positions:
        index = pos % len(chars)
        if chars[index] not in "/%" and len(chars[index]) == 1:
            chars[index] = "%%%02X" % ord(chars[index])
    return "".join(chars)


# Strategies are built once per set of paths: Hypothesis validates a strategy the
# first time it is drawn from, and building them inside every draw costs more than
# playing the example over loopback.
@lru_cache(maxsize=16)
def valid_targets(paths: tuple[str, ...]) -> st.SearchStrategy[str]:
    """abs_paths a server must answer: fixture files (re-encoded), folders, missing files."""
    encoded = tuple(_encode_path(p) for p in paths) or ("/",)
    # Traversal attempts are well-formed abs_paths too: a server must answer them (403,
    # 404 or 400) with a well-framed response and no byte from outside the root.
    climbs = tuple(t for t in TRAVERSALS if t.startswith("/") and "\\" not in t)
    # So is an encoded NUL or control byte: it names no file (404, or 400), and a
    # server must still answer (R-5.1.2-h).
    odd = ("/file.txt%00.html", "/%00", "/file.txt%0d%0a", "/noindex/", "/dir", "/%7Efile.txt")
    base = st.sampled_from(encoded + ("/", "/nope.txt", "/dir/", "/no/such/dir/x.bin") + climbs + odd)
    query = st.sampled_from(("", "", "", "?a=1", "?", "?x=%20&y"))
    positions = st.lists(st.integers(0, 63), max_size=4)
    return st.builds(lambda path, q, pos: _reencode(path, pos) + q, base, query, positions)


_ESCAPE_PIECE = st.one_of(
    st.integers(0, 255).map(lambda b: "%%%02X" % b),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8),
    st.sampled_from(("/", "..", ".", "%", "%%", "%2", "%u002e", "\\", "?", "#", ";")),
)
# A target of random characters and %XX escapes of any byte value.
_ESCAPED = st.lists(_ESCAPE_PIECE, max_size=24).map(lambda pieces: "/" + "".join(pieces))
_LONG = st.builds(lambda n, c: "/" + c * n, st.integers(100, MAX_LONG), st.sampled_from("a/%."))


@lru_cache(maxsize=16)
def any_targets(paths: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.one_of(
        valid_targets(paths),
        st.sampled_from(TRAVERSALS),
        st.sampled_from(OTHER_TARGETS),
        _ESCAPED,
        _LONG,
    )


# -- requests ---------------------------------------------------------------------------


_GOOD_FIELD = st.sampled_from(HEADER_FIELDS).map(lambda nv: f"{nv[0]}: {nv[1]}".encode("latin-1"))
_DRAWN_FIELD = st.builds(
    lambda n, v: f"{n}: {v}".encode("latin-1"),
    st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=20).filter(
        lambda n: n.lower() not in ("content-length", "transfer-encoding")),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
# Content-Length and Transfer-Encoding are chosen with the body, not here.
_VALID_HEADERS = st.lists(st.one_of(_GOOD_FIELD, _DRAWN_FIELD), max_size=6).map(tuple)
_ANY_HEADERS = st.lists(st.one_of(_GOOD_FIELD, _DRAWN_FIELD, st.sampled_from(BAD_HEADER_LINES)),
                        max_size=6).map(tuple)


@st.composite
def requests(draw, paths: tuple[str, ...] = ()) -> Request:
    """A request from the RFC 1945 grammar; about half of them valid.

    Args:
        paths: root-relative fixture files that a valid GET may name (small ones:
            the engine reads a bounded number of bytes).
    """
    if draw(st.booleans()):
        return draw(_valid_request(paths))
    return draw(_any_request(paths))


@st.composite
def _valid_request(draw, paths: tuple[str, ...]) -> Request:
    method = draw(st.sampled_from(VALID_METHODS))
    target = draw(valid_targets(paths)).encode("latin-1")
    if method == "GET" and draw(_chance(10)):
        # RFC 1945 §3.1: a 1.0 server must understand an HTTP/0.9 Simple-Request,
        # complete at the end of its line; the answer is the body alone.
        return Request(b"GET", target, None, (), valid=True)
    headers = draw(_VALID_HEADERS)
    body = b""
    if method == "POST" or draw(_chance(10)):
        body = draw(st.binary(max_size=MAX_BODY))
        headers = headers + (b"Content-Length: %d" % len(body),)
        if draw(st.booleans()):
            headers = headers + (b"Content-Type: application/octet-stream",)
    return Request(method.encode(), target, b"HTTP/1.0", headers, body, valid=True)


@st.composite
def _any_request(draw, paths: tuple[str, ...]) -> Request:
    method = draw(st.one_of(
        st.sampled_from(VALID_METHODS + OTHER_METHODS),
        st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=12),
        st.integers(100, 3000).map(lambda n: "M" * n),
    )).encode("latin-1")
    target = draw(any_targets(paths)).encode("latin-1")
    version = draw(st.one_of(
        st.just("HTTP/1.0"),
        st.sampled_from(OTHER_VERSIONS),
        st.none(),  # the HTTP/0.9 Simple-Request form
    ))
    headers = draw(_ANY_HEADERS)
    if version == "HTTP/1.1":
        headers = (b"Host: 127.0.0.1", b"Connection: close") + headers
    body = b""
    framing = draw(st.sampled_from(("none", "none", "exact", "short", "long", "no-length", "chunked")))
    if framing != "none":
        body = draw(st.binary(min_size=1, max_size=MAX_BODY))
        length = {"exact": len(body), "short": max(0, len(body) - 1), "long": len(body) + 10}.get(framing)
        if length is not None:
            headers = headers + (b"Content-Length: %d" % length,)
        elif framing == "chunked":
            headers = headers + (b"Transfer-Encoding: chunked",)
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    return Request(method, target, None if version is None else version.encode("latin-1"),
                   headers, body, valid=False)


# -- mutations --------------------------------------------------------------------------


def _flip(data: bytes, pos: int, arg: int) -> bytes:
    if not data:
        return data
    pos %= len(data)
    return data[:pos] + bytes([data[pos] ^ (1 << (arg % 8))]) + data[pos + 1:]


def _truncate(data: bytes, pos: int, arg: int) -> bytes:
    return data[: pos % (len(data) + 1)]


def _duplicate(data: bytes, pos: int, arg: int) -> bytes:
    if not data:
        return data
    pos %= len(data)
    piece = data[pos: pos + 1 + arg % 64]
    return data[:pos] + piece * 2 + data[pos + len(piece):]


def _insert(data: bytes, pos: int, arg: int) -> bytes:
    pos %= len(data) + 1
    return data[:pos] + SPECIAL_BYTES[arg % len(SPECIAL_BYTES)] + data[pos:]


def _delete(data: bytes, pos: int, arg: int) -> bytes:
    if not data:
        return data
    pos %= len(data)
    return data[:pos] + data[pos + 1 + arg % 4:]


def _replace(data: bytes, pos: int, arg: int) -> bytes:
    if not data:
        return data
    pos %= len(data)
    return data[:pos] + bytes([arg % 256]) + data[pos + 1:]


# name -> (data, position, argument) -> data. The table names the mutations in
# reports and case titles; positions wrap around the data, so any integer works.
MUTATORS = {
    "flip": _flip,
    "truncate": _truncate,
    "duplicate": _duplicate,
    "insert": _insert,
    "delete": _delete,
    "replace": _replace,
}


def mutate(data: bytes, steps: tuple[tuple[str, int, int], ...]) -> tuple[bytes, tuple[str, ...]]:
    """Apply mutation steps in order; return the bytes and a description of each.

    Args:
        data: the rendered request.
        steps: (mutator name, position, argument) triples.

    Returns:
        The mutated bytes and one label per step, such as "insert b'\\r' at 14".
    """
    labels = []
    for name, pos, arg in steps:
        before = len(data)
        where = pos % (before + 1) if name in ("truncate", "insert") else (pos % before if before else 0)
        data = MUTATORS[name](data, pos, arg)
        if name == "insert":
            labels.append(f"insert {SPECIAL_BYTES[arg % len(SPECIAL_BYTES)]!r} at {where}")
        elif name == "truncate":
            labels.append(f"truncate at {where}")
        else:
            labels.append(f"{name} at {where}")
    return data, tuple(labels)


_STEP = st.tuples(st.sampled_from(tuple(MUTATORS)), st.integers(0, 1 << 16), st.integers(0, 255))


@lru_cache(maxsize=None)
def _chance(percent: int) -> st.SearchStrategy[bool]:
    """True about ``percent`` times in 100; shrinks towards False (the simpler example)."""
    return st.sampled_from([False] * (100 - percent) + [True] * percent)


@st.composite
def examples(draw, paths: tuple[str, ...] = (), large: tuple[str, ...] = ()) -> Example:
    """A fuzz example: a drawn request, mutated or not, and how it travels.

    The shares are chosen for throughput as much as for reach: an example the
    server may rightly leave waiting (incomplete, not half-closed) costs the
    engine's short timeout, one whose client leaves early costs a settling pause.

    Args:
        paths: small fixture files, for valid GETs read to the end.
        large: large fixture files, fetched only by clients that leave early.
    """
    if draw(_chance(2)):
        # Raw bytes, no grammar: random binary, or nothing at all.
        data = draw(st.binary(max_size=200))
        request = Request(b"", b"", None, (), data, valid=False)
        return Example(request, data, mutations=("random bytes",), half_close=draw(_chance(80)))
    if large and draw(_chance(1)):
        # A client that reads a little of a large file and leaves (SIGPIPE, EPIPE).
        target = _encode_path(draw(st.sampled_from(large))).encode("latin-1")
        request = Request(b"GET", target, b"HTTP/1.0", (), valid=True)
        read = draw(st.sampled_from((0, 1, 100, 1024, 16384)))
        return Example(request, request.render(), read=read)
    request = draw(requests(paths))
    data = request.render()
    steps = ()
    if draw(_chance(35)):
        steps = tuple(draw(st.lists(_STEP, min_size=1, max_size=3)))
    data, labels = mutate(data, steps)
    cuts: tuple[int, ...] = ()
    pause = 0
    if len(data) > 1 and draw(_chance(20)):
        cuts = tuple(sorted(set(draw(st.lists(st.integers(1, len(data) - 1), min_size=1, max_size=3)))))
        pause = draw(st.sampled_from((0, 1, 5, 20)))
    # Mostly half-closed: the server then knows the request is over and must answer
    # or close at once, so a silent server is a finding, not a wait.
    half_close = draw(_chance(95)) if (labels or not request.valid) else draw(_chance(50))
    read = None
    if draw(_chance(1)):
        read = draw(st.sampled_from((0, 1, 10)))
    return Example(request, data, labels, cuts, pause, half_close, read)
