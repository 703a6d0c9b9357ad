"""``python -m conformance.fuzz``: the fuzz command on its own."""

import sys

from .cli import build_parser, main

sys.exit(main(build_parser().parse_args()))
