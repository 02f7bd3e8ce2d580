"""Nightly runs that remember: the run history and what it tells.

``store`` keeps runs in an embedded SQLite file (``schema`` opens, checks and
migrates it); ``git`` reads the checkout's commit and branch without running
git; ``flaky``, ``quarantine`` and ``slowdown`` are pure functions over the
rows the store returns and the current run. Nothing here is imported by the
rest of tagmatrix until the CLI asks for it, so importing is cheap.
"""
