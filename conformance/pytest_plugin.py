"""pytest plugin: every selected case becomes a pytest item.

``pytest --conformance-target HOST:PORT`` (or ``--conformance-spawn CMD``) adds one
item per case of the selected profile, so pytest's own ``-k``, ``-n`` (pytest-xdist)
and ``--junitxml`` apply. Registered through the ``pytest11`` entry point; without
either option it adds nothing.
"""

from __future__ import annotations

import pytest

__all__ = ["CaseFailure", "CaseItem"]


class CaseFailure(Exception):
    """A case that failed or could not be run; its text is the runner's report."""


def pytest_addoption(parser) -> None:
    group = parser.getgroup("conformance", "HTTP/1.0 conformance corpus")
    group.addoption("--conformance-target", metavar="HOST:PORT", help="run the corpus against this server")
    group.addoption("--conformance-spawn", metavar="CMD",
                    help="start this server ({port}, {root}, {host} substituted) and run the corpus")
    group.addoption("--conformance-profile", default="default", help="profile to run (default: default)")
    group.addoption("--conformance-cases", metavar="DIR", help="another corpus folder")
    group.addoption("--conformance-strict", action="store_true", help="SHOULD failures fail")
    group.addoption("--conformance-timeout-scale", type=float, default=1.0, metavar="F")


def _enabled(config) -> bool:
    return bool(config.getoption("conformance_target") or config.getoption("conformance_spawn"))


class _Session:
    """The corpus, the fixtures and the target, set up once per pytest process."""

    def __init__(self, config):
        from pathlib import Path

        from .docroot import Fixtures
        from .loader import load_corpus
        from .resources import cases_dir
        from .runner import Options

        cases = config.getoption("conformance_cases")
        self.corpus = load_corpus(Path(cases) if cases else cases_dir())
        self.fixtures = Fixtures(self.corpus.cases_dir)
        self.options = Options(
            strict=config.getoption("conformance_strict"),
            timeout_scale=config.getoption("conformance_timeout_scale"),
        )
        self.server = None
        self.target = None
        self.problem: str | None = None
        self._connected = False

    def ensure_connected(self, config) -> None:
        # Lazily, in the process that runs items: under xdist each worker gets its own
        # spawned server, and collection alone never starts one.
        if not self._connected:
            self._connected = True
            self.connect(config)

    def connect(self, config) -> None:
        from .runner import preflight
        from .spawn import SpawnError, SpawnedServer
        from .wire import Target

        spawn = config.getoption("conformance_spawn")
        if spawn:
            try:
                self.server = SpawnedServer.from_template(spawn, self.fixtures.cached_root())
                self.server.start()
            except SpawnError as exc:
                self.problem = str(exc)
                return
            self.target = Target(self.server.host, self.server.port)
        else:
            host, _, port = config.getoption("conformance_target").rpartition(":")
            self.target = Target(host.strip("[]"), int(port))
        self.problem = preflight(self.target, self.fixtures, self.options.timeout_scale)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


class CorpusCollector(pytest.Collector):
    def collect(self):
        from .select import select

        state = self.config._conformance
        profile = self.config.getoption("conformance_profile")
        for case in select(state.corpus.cases, state.corpus.profiles, profile=profile):
            yield CaseItem.from_parent(self, name=case.id, case=case)


class CaseItem(pytest.Item):
    def __init__(self, *, case, **kwargs):
        super().__init__(**kwargs)
        self.case = case
        for tag in (case.area, case.level, *case.tags):
            self.add_marker(tag.replace("-", "_"))

    def runtest(self) -> None:
        from .runner import run_case

        state = self.config._conformance
        state.ensure_connected(self.config)
        if state.problem:
            raise CaseFailure(state.problem)
        result = run_case(self.case, state.target, state.fixtures, state.options, state.server)
        self.user_properties.append(("verdict", result.verdict))
        if result.verdict in ("fail", "error"):
            raise CaseFailure(self._describe(result))
        if result.verdict == "warn":
            self.add_report_section("call", "conformance", self._describe(result))

    def _describe(self, result) -> str:
        lines = [
            f"{result.id}: {result.title}",
            f"{result.verdict.upper()} ({result.level}; {', '.join(result.requirements)})",
            "expected: " + " or ".join(result.expected) if result.expected else "",
            f"got: {result.actual}" if result.actual else "",
            *(f"- {f}" for f in result.findings),
            f"hint: {result.hint}" if result.hint else "",
            f"reproduce: {result.reproducer}",
        ]
        return "\n".join(line for line in lines if line)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, CaseFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"conformance: {self.case.id}"


def pytest_configure(config) -> None:
    if _enabled(config):
        config._conformance = _Session(config)
        for marker in ("lab", "rfc1945", "robustness", "security", "concurrency", "MUST", "SHOULD", "MAY", "slow"):
            config.addinivalue_line("markers", f"{marker}: conformance cases so marked")


def pytest_unconfigure(config) -> None:
    state = getattr(config, "_conformance", None)
    if state is not None:
        state.close()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    # tryfirst: the items must exist before -k and -m deselect among them.
    if not _enabled(config):
        return
    collector = CorpusCollector.from_parent(session, name="conformance", nodeid="conformance")
    items.extend(collector.collect())
