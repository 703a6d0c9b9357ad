"""Grading many submissions with the runner: rubric -> isolated runs -> result.json -> class outputs.

Modules, one concern each: ``rubric`` (load and validate), ``score`` (pure points),
``result`` (the per-submission record), ``feedback`` and ``exporters`` (pure
formatting), ``sandbox`` (the exec wrapper that confines one server process),
``isolate`` (what this machine allows, process sweeps, memory watch),
``submission`` (build, start and run one submission), ``summary_html``, ``merge``,
``bundle`` and ``cli``.
"""
