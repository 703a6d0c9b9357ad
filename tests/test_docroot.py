"""The fixture document root: described without building, materialised exactly, cached safely."""

import hashlib
import multiprocessing
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conformance.docroot import Fixtures, cached_root, sha256_counter
from conformance.loader import CaseError

CASES = Path(__file__).resolve().parent.parent / "cases"

# The first 16 bytes of big.bin: SHA-256("http10-conformance big.bin" + 8 zero bytes).
BIG_BIN_HEAD = "fded6d37b98b50eabf2ef026ae91f483"
DEFAULT_MTIME = datetime(2021, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
FILE_MTIME = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def fixtures():
    return Fixtures(CASES)


@pytest.fixture(scope="module")
def built(tmp_path_factory, fixtures):
    dest = tmp_path_factory.mktemp("docroot")
    return fixtures.materialise(dest)


def test_big_bin_head_is_the_documented_generator():
    independent = hashlib.sha256(b"http10-conformance big.bin" + (0).to_bytes(8, "big")).digest()[:16]
    assert independent.hex() == BIG_BIN_HEAD


def test_generated_content_is_reproducible(fixtures):
    big = fixtures.content("big.bin")
    assert len(big) == fixtures.size("big.bin") == 8 * 1024 * 1024
    assert big[:16].hex() == BIG_BIN_HEAD
    block_1000 = hashlib.sha256(b"http10-conformance big.bin" + (1000).to_bytes(8, "big")).digest()
    assert big[32000:32032] == block_1000
    assert b"".join(sha256_counter("s", 100)) == b"".join(
        hashlib.sha256(b"s" + n.to_bytes(8, "big")).digest() for n in range(4)
    )[:100]
    assert fixtures.sha256("big.bin") == hashlib.sha256(big).hexdigest()


def test_described_tree(fixtures):
    assert fixtures.canary_path == "conformance-canary.txt"
    assert fixtures.content(fixtures.canary_path) == fixtures.canary_data
    assert fixtures.content("bytes.bin") == bytes(range(256)) * 4
    assert fixtures.size("empty.txt") == 0
    assert fixtures.content("/file.txt") == (CASES / "docroot" / "file.txt").read_bytes()
    assert fixtures.mtime("file.txt") == FILE_MTIME
    assert fixtures.mtime("dir/nested/deep.txt") == DEFAULT_MTIME
    assert fixtures.exists("dir") and not fixtures.is_file("dir")
    assert fixtures.exists("café.txt")
    # The symlink leads outside root/, to the secret beside it.
    assert fixtures.content("link.txt").startswith(b"CONFORMANCE-SECRET-OUTSIDE-ROOT")
    assert not fixtures.exists("nope.txt")
    assert not fixtures.exists("../secret.txt")
    with pytest.raises(FileNotFoundError):
        fixtures.size("nope.txt")
    with pytest.raises(IsADirectoryError):
        fixtures.size("dir")


def test_materialised_tree(built, fixtures):
    dest = built.parent
    assert built.name == "root"
    for rel in fixtures.files():
        path = built / rel
        assert path.is_file() and not path.is_symlink(), rel
        assert path.stat().st_size == fixtures.size(rel), rel
        assert int(path.stat().st_mtime) == int(fixtures.mtime(rel).timestamp()), rel
    assert (built / "big.bin").read_bytes()[:16].hex() == BIG_BIN_HEAD
    assert (built / "file.txt").read_bytes() == (CASES / "docroot" / "file.txt").read_bytes()
    assert int((built / "file.txt").stat().st_mtime) == int(FILE_MTIME.timestamp())
    assert int((built / "dir").stat().st_mtime) == int(DEFAULT_MTIME.timestamp())
    assert int(built.stat().st_mtime) == int(DEFAULT_MTIME.timestamp())
    assert (built / "café.txt").is_file()
    assert (built / "space name.txt").is_file()


def test_symlink_and_outside_file(built):
    link = built / "link.txt"
    assert link.is_symlink()
    assert os.readlink(link) == "../secret.txt"
    secret = built.parent / "secret.txt"
    assert secret.read_bytes() == b"CONFORMANCE-SECRET-OUTSIDE-ROOT 5b7c\n"
    assert link.read_bytes() == secret.read_bytes()
    assert not (built / "secret.txt").exists()


def small_corpus(tmp_path: Path, seed: str = "s") -> Path:
    cases = tmp_path / "cases"
    (cases / "docroot" / "sub").mkdir(parents=True)
    (cases / "docroot" / "canary.txt").write_bytes(b"c\n")
    (cases / "docroot" / "sub" / "a.txt").write_bytes(b"a\r\n")
    (cases / "fixtures.toml").write_text(
        'format = 1\ndefault_mtime = 2021-06-01T12:00:00Z\n[canary]\npath = "canary.txt"\ndata = "c\\n"\n'
        '[[mtime]]\npath = "sub"\ntime = 2019-05-05T05:05:05+02:00\n'
        f'[[generated]]\npath = "gen/g.bin"\nsize = 1000\ngenerator = "sha256-counter"\nseed = "{seed}"\n'
        '[[file]]\npath = "r\\u00e9p.txt"\ndata = "ab"\nrepeat = 3\n'
        '[[outside]]\npath = "out.txt"\ndata = "OUT"\n'
        '[[symlink]]\npath = "sub/up.txt"\ntarget = "../../out.txt"\n',
        encoding="utf-8",
    )
    return cases


def test_small_description(tmp_path):
    fixtures = Fixtures(small_corpus(tmp_path))
    assert fixtures.content("rép.txt") == b"ababab"
    assert fixtures.mtime("sub") == datetime(2019, 5, 5, 3, 5, 5, tzinfo=timezone.utc)
    assert fixtures.content("sub/up.txt") == b"OUT"
    assert fixtures.size("gen/g.bin") == 1000
    root = fixtures.materialise(tmp_path / "dest")
    assert (root / "gen" / "g.bin").read_bytes() == fixtures.content("gen/g.bin")
    assert int((root / "sub").stat().st_mtime) == int(datetime(2019, 5, 5, 3, 5, 5, tzinfo=timezone.utc).timestamp())
    assert (root / "sub" / "up.txt").read_bytes() == b"OUT"


def test_materialise_is_idempotent(tmp_path):
    fixtures = Fixtures(small_corpus(tmp_path))
    dest = tmp_path / "dest"
    root = fixtures.materialise(dest)
    (root / "stray.txt").write_text("left by a server")
    assert not fixtures.intact(dest)
    assert fixtures.materialise(dest) == root
    assert not (root / "stray.txt").exists()
    assert fixtures.intact(dest)


def test_materialise_refuses_a_root_it_did_not_build(tmp_path):
    fixtures = Fixtures(small_corpus(tmp_path))
    (tmp_path / "mine" / "root").mkdir(parents=True)
    (tmp_path / "mine" / "root" / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        fixtures.materialise(tmp_path / "mine")
    assert (tmp_path / "mine" / "root" / "precious.txt").read_text() == "keep"


def test_cached_root_builds_once_and_repairs(tmp_path):
    fixtures = Fixtures(small_corpus(tmp_path))
    cache = tmp_path / "cache"
    root = cached_root(fixtures, cache)
    assert root == fixtures.cached_root(cache)
    stamp = (root / "canary.txt").stat().st_ino
    assert cached_root(fixtures, cache) == root and (root / "canary.txt").stat().st_ino == stamp  # not rebuilt
    (root / "canary.txt").unlink()  # a target that deletes files
    repaired = cached_root(fixtures, cache)
    assert (repaired / "canary.txt").read_bytes() == b"c\n"
    assert sorted(p.name for p in cache.iterdir()) == [root.parent.name]  # no temporary folders left


def test_cache_key_follows_the_description(tmp_path):
    one = Fixtures(small_corpus(tmp_path / "one", seed="a"))
    two = Fixtures(small_corpus(tmp_path / "two", seed="b"))
    assert one.digest != two.digest
    assert one.digest == Fixtures(tmp_path / "one" / "cases").digest
    assert cached_root(one, tmp_path / "cache") != cached_root(two, tmp_path / "cache")


def _build_in_child(args):
    cases, cache = args
    return str(cached_root(Fixtures(cases), cache))


def test_cached_root_is_safe_under_parallel_processes(tmp_path):
    cases = small_corpus(tmp_path)
    cache = tmp_path / "cache"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        roots = pool.map(_build_in_child, [(cases, cache)] * 8)
    assert len(set(roots)) == 1
    assert Fixtures(cases).intact(Path(roots[0]).parent)
    assert [p.name for p in cache.iterdir()] == [Path(roots[0]).parent.name]


def test_bad_fixtures_file_names_the_key(tmp_path):
    cases = small_corpus(tmp_path)
    text = (cases / "fixtures.toml").read_text(encoding="utf-8")
    (cases / "fixtures.toml").write_text(text.replace('target = "../../out.txt"', "target = 3"), encoding="utf-8")
    with pytest.raises(CaseError) as info:
        Fixtures(cases)
    assert info.value.key == "symlink[0].target"
    (cases / "fixtures.toml").write_text(text.replace('path = "out.txt"', 'path = "root/x.txt"'), encoding="utf-8")
    with pytest.raises(CaseError) as info:
        Fixtures(cases)
    assert info.value.key == "outside[0].path"
