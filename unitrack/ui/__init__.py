"""``unitrack ui``: a local web dashboard over the read API — runs, curves at full fidelity,
comparisons, explanations, weight deltas and notes (docs/ui.md).

Nothing here is imported by ``import unitrack`` or ``unitrack --help``; Starlette and uvicorn
(the ``ui`` extra) are loaded when the command runs.
"""
