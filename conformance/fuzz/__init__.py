"""The fuzzer (issue 12): grammar-based requests, mutations, invariants, findings as cases.

Modules, each one concept: ``strategies`` (Hypothesis generators and mutators),
``invariants`` (pure checks of one example), ``differential`` (classifying how two
servers disagree), ``casefile`` (a finding as a TOML case), ``engine`` (the bounded
loop, the only one with sockets and clocks) and ``cli`` (``conformance fuzz``).
"""

__all__ = ["add_parser", "main"]

from .cli import add_parser, main
