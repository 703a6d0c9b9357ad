#!/usr/bin/env python3
"""Start a third-party server from servers.toml by hand: `recipes.py list`, `recipes.py run NAME --root DIR`.

The code lives in conformance/recipes.py, where the runner's `matrix` command uses it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from conformance.recipes import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
