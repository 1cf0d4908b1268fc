"""Evaluation as a library: what each benchmark evaluates (``benchmarks``), the command line of
``eval/run.py`` (``arguments``), the runs themselves (``harness``) and the paper's tables
(``tables``). ``eval/run.py`` and ``eval/table.py`` are thin shells over these modules."""
