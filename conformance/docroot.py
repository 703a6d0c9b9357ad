"""The fixture document root: what every target serves, described and built.

``fixtures.toml`` plus the static files of ``docroot/`` describe a tree (cases/README.md,
"The document root", steps 1-6). ``Fixtures`` answers questions about that tree without
building it (sizes, modification times, contents: the matchers need them) and builds it
on disk with ``materialise``. ``cached_root`` builds it once per user and per fixture
description, so that repeated runs do not rewrite 9 MiB each time.

All paths given to ``Fixtures`` methods are relative to the served folder ``root/``,
with "/" separators (``dir/nested/deep.txt``); a leading "/" is ignored.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .corpusfile import CaseError, default_cases_dir, fixtures_data

__all__ = [
    "FixtureError",
    "Fixtures",
    "sha256_counter",
    "cache_base",
    "cached_root",
    "reachable_cache_base",
]

# Bump when materialise() changes what it builds, so cached trees are rebuilt.
BUILD_VERSION = 1

# Beside root/: marks a folder that materialise() built and may therefore rebuild.
MARKER = ".conformance-docroot"

# Symlink hops followed when resolving a path in the described tree (as the kernel's 40).
MAX_SYMLINK_HOPS = 40


class FixtureError(ValueError):
    """fixtures.toml describes something that cannot be built; names the key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def sha256_counter(seed: str, size: int) -> Iterator[bytes]:
    """The ``sha256-counter`` generator: SHA-256(seed + 8-byte big-endian n), n = 0, 1, ...

    Yields:
        Chunks of at most 1 MiB whose concatenation is exactly ``size`` bytes.
    """
    prefix = hashlib.sha256(seed.encode("utf-8"))
    chunk: list[bytes] = []
    produced = 0
    block = 0
    while produced < size:
        h = prefix.copy()
        h.update(block.to_bytes(8, "big"))
        digest = h.digest()[: size - produced]
        chunk.append(digest)
        produced += len(digest)
        block += 1
        if len(chunk) == 32768 or produced == size:  # 32768 x 32 B = 1 MiB
            yield b"".join(chunk)
            chunk = []


# Entries of the described tree, keyed by path relative to DEST ("root/file.txt" is
# served, "secret.txt" lies beside root/).
@dataclass(frozen=True)
class _Static:
    source: Path


@dataclass(frozen=True)
class _Generated:
    size: int
    seed: str


@dataclass(frozen=True)
class _Data:
    data: bytes


@dataclass(frozen=True)
class _Dir:
    pass


@dataclass(frozen=True)
class _Link:
    target: str


def _size(entry: object) -> int:
    if isinstance(entry, _Static):
        return entry.source.stat().st_size
    if isinstance(entry, _Generated):
        return entry.size
    if isinstance(entry, _Data):
        return len(entry.data)
    raise IsADirectoryError("a folder has no size")


def _utc(value: Any, key: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise FixtureError(key, "must be a date-time with a time zone, e.g. 2021-06-01T12:00:00Z")
    return value.astimezone(timezone.utc)


def _rel(path: str, key: str) -> str:
    norm = posixpath.normpath(path.lstrip("/"))
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        raise FixtureError(key, f"{path!r} is not a path inside the folder")
    return norm


class Fixtures:
    """The described document root. Cheap to make; nothing is read or built until asked.

    Attributes:
        canary_path: the canary file, relative to root/ (preflight and liveness).
        canary_data: its bytes.
        default_mtime: the modification time of every file without an [[mtime]] entry.
        digest: a hash of the whole description (fixtures.toml and docroot/ files).
    """

    def __init__(self, cases_dir: str | Path | None = None):
        """Describe the document root of a corpus; reads fixtures.toml, builds nothing.

        Args:
            cases_dir: the corpus folder (with fixtures.toml and docroot/); the
                shipped corpus if None.

        Raises:
            CaseError: fixtures.toml is invalid (names the file and key).
        """
        cases_dir = Path(cases_dir) if cases_dir is not None else default_cases_dir()
        data, description, display = fixtures_data(cases_dir)
        try:
            self._describe(data, cases_dir / "docroot", description)
        except FixtureError as exc:
            raise CaseError(display, exc.key, exc.message) from None

    @classmethod
    def from_data(cls, data: dict, docroot: str | Path, description: bytes = b"") -> "Fixtures":
        """Describe a tree from decoded ``fixtures.toml`` data and a ``docroot/`` folder.

        Args:
            data: the decoded fixtures.toml (schema-valid).
            docroot: the folder of static files (step 1); it may be missing.
            description: the raw fixtures.toml, hashed into ``digest``.

        Raises:
            FixtureError: a key that cannot be built (a path outside the folder, a
                date-time without a time zone, an unknown generator).
        """
        self = cls.__new__(cls)
        self._describe(data, Path(docroot), description)
        return self

    def _describe(self, data: dict, docroot: Path, description: bytes) -> None:
        from . import escape

        entries: dict[str, object] = {"root": _Dir()}
        self._description = description

        def add(full: str, entry: object) -> None:
            parent = posixpath.dirname(full)
            while parent and parent not in entries:
                entries[parent] = _Dir()
                parent = posixpath.dirname(parent)
            entries[full] = entry

        # 1. static files, byte for byte
        if docroot.is_dir():
            for dirpath, dirnames, filenames in os.walk(docroot):
                dirnames.sort()
                rel_dir = Path(dirpath).relative_to(docroot).as_posix()
                base = "root" if rel_dir == "." else f"root/{rel_dir}"
                add(base, _Dir())
                for name in sorted(filenames):
                    add(f"{base}/{name}", _Static(Path(dirpath) / name))
        # 2. generated files
        for i, raw in enumerate(data.get("generated", ())):
            if raw.get("generator") != "sha256-counter":
                raise FixtureError(f"generated[{i}].generator", "the only generator is \"sha256-counter\"")
            add("root/" + _rel(raw["path"], f"generated[{i}].path"), _Generated(int(raw["size"]), raw["seed"]))
        # 3. files with inline data
        for i, raw in enumerate(data.get("file", ())):
            try:
                payload = escape.to_bytes(raw["data"]) * raw.get("repeat", 1)
            except ValueError as exc:
                raise FixtureError(f"file[{i}].data", str(exc)) from None
            add("root/" + _rel(raw["path"], f"file[{i}].path"), _Data(payload))
        # 4. files beside root/
        for i, raw in enumerate(data.get("outside", ())):
            rel = _rel(raw["path"], f"outside[{i}].path")
            if rel == "root" or rel.startswith("root/") or rel == MARKER:
                raise FixtureError(f"outside[{i}].path", f"{raw['path']!r} would be inside root/")
            try:
                add(rel, _Data(escape.to_bytes(raw["data"])))
            except ValueError as exc:
                raise FixtureError(f"outside[{i}].data", str(exc)) from None
        # 5. symlinks
        for i, raw in enumerate(data.get("symlink", ())):
            add("root/" + _rel(raw["path"], f"symlink[{i}].path"), _Link(raw["target"]))
        # 6. modification times
        self.default_mtime = _utc(data["default_mtime"], "default_mtime")
        self._mtimes = {
            "root/" + _rel(raw["path"], f"mtime[{i}].path"): _utc(raw["time"], f"mtime[{i}].time")
            for i, raw in enumerate(data.get("mtime", ()))
        }
        canary = data["canary"]
        try:
            self.canary_data = escape.to_bytes(canary["data"])
        except ValueError as exc:
            raise FixtureError("canary.data", str(exc)) from None
        self.canary_path = _rel(canary["path"], "canary.path")
        self._entries = entries
        self._digest: str | None = None
        self._content: dict[str, bytes] = {}
        self._sha256: dict[str, str] = {}

    @property
    def digest(self) -> str:
        """A hash of the whole description: fixtures.toml and every docroot/ file."""
        if self._digest is None:
            h = hashlib.sha256(f"build {BUILD_VERSION}\0".encode() + self._description + b"\0")
            for full, entry in sorted(self._entries.items()):
                if isinstance(entry, _Static):
                    h.update(full.encode("utf-8", "surrogateescape") + b"\0")
                    h.update(hashlib.sha256(entry.source.read_bytes()).digest())
            self._digest = h.hexdigest()
        return self._digest

    def cached_root(self, cache_dir: str | Path | None = None) -> Path:
        """This tree, built once in the per-user cache; see the module's ``cached_root``."""
        return cached_root(self, cache_dir)

    # -- questions about the described tree ---------------------------------------

    def _resolve(self, path: str) -> str | None:
        """The DEST-relative path ``path`` (root-relative) leads to, symlinks followed."""
        full = posixpath.normpath("root/" + path.lstrip("/"))
        if full != "root" and not full.startswith("root/"):
            return None  # ".." out of root/: only a symlink may lead there
        for _ in range(MAX_SYMLINK_HOPS):
            parts = full.split("/")
            for i in range(1, len(parts) + 1):
                prefix = "/".join(parts[:i])
                entry = self._entries.get(prefix)
                if isinstance(entry, _Link):
                    if entry.target.startswith("/"):
                        return None  # an absolute target is outside the description
                    rest = parts[i:]
                    full = posixpath.normpath(posixpath.join(posixpath.dirname(prefix), entry.target, *rest))
                    if full.startswith("../") or full == "..":
                        return None
                    break
                if entry is None:
                    return None
            else:
                return full
        return None

    def _entry(self, path: str) -> tuple[str, object]:
        full = self._resolve(path)
        if full is None or full not in self._entries:
            raise FileNotFoundError(f"no fixture {path!r} in the document root")
        return full, self._entries[full]

    def exists(self, path: str) -> bool:
        """Whether ``path`` names a file or folder of the tree (symlinks followed)."""
        full = self._resolve(path)
        return full is not None and full in self._entries

    def is_file(self, path: str) -> bool:
        """Whether ``path`` names a file (symlinks followed)."""
        full = self._resolve(path)
        return full is not None and isinstance(self._entries.get(full), (_Static, _Generated, _Data))

    def size(self, path: str) -> int:
        """The size in bytes of the file ``path`` names.

        Raises:
            FileNotFoundError: no such fixture.
            IsADirectoryError: ``path`` is a folder.
        """
        _, entry = self._entry(path)
        if isinstance(entry, (_Dir, _Link)):
            raise IsADirectoryError(f"fixture {path!r} is a folder")
        return _size(entry)

    def mtime(self, path: str) -> datetime:
        """The modification time (UTC) a server sees for ``path`` (symlinks followed).

        Raises:
            FileNotFoundError: no such fixture.
        """
        full, _ = self._entry(path)
        return self._mtimes.get(full, self.default_mtime)

    def content(self, path: str) -> bytes:
        """The bytes of the file ``path`` names; generated files are computed once.

        Raises:
            FileNotFoundError: no such fixture.
            IsADirectoryError: ``path`` is a folder.
        """
        full, entry = self._entry(path)
        if full not in self._content:
            if isinstance(entry, _Static):
                self._content[full] = entry.source.read_bytes()
            elif isinstance(entry, _Generated):
                self._content[full] = b"".join(sha256_counter(entry.seed, entry.size))
            elif isinstance(entry, _Data):
                self._content[full] = entry.data
            else:
                raise IsADirectoryError(f"fixture {path!r} is a folder")
        return self._content[full]

    def sha256(self, path: str) -> str:
        """The SHA-256 (hex) of the file ``path`` names."""
        full, _ = self._entry(path)
        if full not in self._sha256:
            self._sha256[full] = hashlib.sha256(self.content(path)).hexdigest()
        return self._sha256[full]

    def files(self) -> list[str]:
        """Every regular file of root/ (no symlink, no folder), root-relative, sorted."""
        return sorted(
            full[len("root/"):]
            for full, entry in self._entries.items()
            if full.startswith("root/") and isinstance(entry, (_Static, _Generated, _Data))
        )

    # -- building --------------------------------------------------------------

    def materialise(self, dest: str | Path) -> Path:
        """Build the tree in ``dest``: ``dest/root/`` to serve and the files beside it.

        Follows the numbered steps of cases/README.md. Idempotent: a tree this
        function built before (marked by ``dest/.conformance-docroot``) is removed and
        built again; an unmarked ``dest/root`` is never touched.

        Args:
            dest: the folder to build in; created if missing.

        Returns:
            ``dest/root``, the folder a target serves.

        Raises:
            FileExistsError: ``dest/root`` exists and was not built by this function.
            OSError: the tree cannot be written (symlinks need OS support).
        """
        dest = Path(dest)
        root = dest / "root"
        marker = dest / MARKER
        if root.exists() or root.is_symlink():
            if not marker.is_file():
                raise FileExistsError(
                    f"{root} exists and was not built by 'conformance docroot'; "
                    "remove it or choose another folder"
                )
            shutil.rmtree(root)
        dest.mkdir(parents=True, exist_ok=True)
        marker.write_text(
            "Built by 'python -m conformance docroot'; root/ is rebuilt on the next run.\n", encoding="utf-8"
        )
        # Steps 1-5: folders first, then files, then symlinks (they may point anywhere).
        for full, entry in sorted(self._entries.items()):
            if isinstance(entry, _Dir):
                (dest / full).mkdir(parents=True, exist_ok=True)
        for full, entry in sorted(self._entries.items()):
            target = dest / full
            if isinstance(entry, _Static):
                shutil.copyfile(entry.source, target)
            elif isinstance(entry, _Generated):
                with open(target, "wb") as fh:
                    for chunk in sha256_counter(entry.seed, entry.size):
                        fh.write(chunk)
            elif isinstance(entry, _Data):
                target.write_bytes(entry.data)
        for full, entry in sorted(self._entries.items()):
            if isinstance(entry, _Link):
                target = dest / full
                if target.is_symlink() or target.exists():
                    target.unlink()
                os.symlink(entry.target, target)
        # Step 6: modification times, contents before their folder (writing into a
        # folder changes its mtime, setting a child's time does not).
        for full in sorted(self._entries, key=lambda p: (-p.count("/"), p)):
            self._set_mtime(dest / full, self._mtimes.get(full, self.default_mtime))
        return root

    @staticmethod
    def _set_mtime(path: Path, when: datetime) -> None:
        ns = int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000
        if path.is_symlink():
            if os.utime in os.supports_follow_symlinks:
                os.utime(path, ns=(ns, ns), follow_symlinks=False)
            return
        os.utime(path, ns=(ns, ns))

    def _expected(self) -> dict[str, tuple]:
        """DEST-relative path -> what a freshly built tree holds there."""
        out: dict[str, tuple] = {}
        for full, entry in self._entries.items():
            when = int(self._mtimes.get(full, self.default_mtime).timestamp())
            if isinstance(entry, _Link):
                out[full] = ("link", entry.target)
            elif isinstance(entry, _Dir):
                out[full] = ("dir", when)
            else:
                out[full] = ("file", _size(entry), when)
        return out

    def intact(self, dest: str | Path) -> bool:
        """Whether ``dest`` still holds the tree as built: same names, sizes, times.

        A cheap check (stat only, no hashing) that catches a target that created,
        deleted, truncated or rewrote a file (a server that accepts PUT or DELETE).
        """
        dest = Path(dest)
        expected = self._expected()
        actual: dict[str, tuple] = {}
        root = dest / "root"
        if not root.is_dir() or root.is_symlink():
            return False
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = Path(dirpath).relative_to(dest).as_posix()
            actual[rel_dir] = ("dir", int(os.stat(dirpath).st_mtime))
            for name in dirnames + filenames:
                full = f"{rel_dir}/{name}"
                path = Path(dirpath) / name
                if path.is_symlink():
                    actual[full] = ("link", os.readlink(path))
                elif name in filenames:
                    st = path.stat()
                    actual[full] = ("file", st.st_size, int(st.st_mtime))
            dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
        for full, want in expected.items():
            if full == "root" or full.startswith("root/"):
                continue
            path = dest / full
            if want[0] == "file" and path.is_file() and not path.is_symlink():
                st = path.stat()
                actual[full] = ("file", st.st_size, int(st.st_mtime))
            elif want[0] == "dir" and path.is_dir():
                actual[full] = want  # folders beside root/ are not ours to judge
        return actual == expected


def cache_base() -> Path:
    """The per-user cache folder: $CONFORMANCE_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache."""
    override = os.environ.get("CONFORMANCE_CACHE_DIR")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "http10-conformance"


def reachable_cache_base() -> Path:
    """A cache folder every user can enter, for roots served by servers that drop privileges.

    The usual cache (``cache_base``) lies in a home folder, often 0700 (root's is):
    nginx or Apache started as root and serving as www-data cannot enter it. Then the
    tree goes to a per-user folder in the system's temporary folder instead.
    """
    base = cache_base()
    for folder in [base, *base.parents]:
        try:
            if folder.exists() and not folder.stat().st_mode & 0o001:
                shared = Path(tempfile.gettempdir()) / f"http10-conformance-{os.getuid()}"
                shared.mkdir(mode=0o755, exist_ok=True)
                return shared
        except OSError:
            break
    return base


def cached_root(fixtures: Fixtures | None = None, cache_dir: str | Path | None = None) -> Path:
    """Materialise the document root once per fixture description and return root/.

    The tree lives in ``<cache>/docroot-<digest>/``. It is built in a temporary
    folder beside it and renamed into place, so parallel processes never see half a
    tree: the first rename wins and the others use its result. A cached tree that a
    target changed (see ``Fixtures.intact``) is replaced.

    Args:
        fixtures: the description; the shipped corpus's if None.
        cache_dir: the cache folder; ``cache_base()`` if None.

    Returns:
        The folder to serve.
    """
    if fixtures is None:
        fixtures = Fixtures()
    base = Path(cache_dir) if cache_dir is not None else cache_base()
    final = base / f"docroot-{fixtures.digest[:24]}"
    if fixtures.intact(final):
        return final / "root"
    base.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=base))
    try:
        fixtures.materialise(build)
        # Servers started as root drop to www-data or nobody: they must be able to
        # enter the tree (mkdtemp made it 0700).
        os.chmod(build, 0o755)
        if final.exists():
            # A damaged tree: move it aside first (rename is atomic), then remove it.
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=base))
            try:
                os.replace(final, trash / "old")
            except OSError:
                pass  # another process moved it already
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(build, final)
        except OSError:
            if not fixtures.intact(final):  # lost the race to a tree that is not good
                raise
            shutil.rmtree(build, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return final / "root"
