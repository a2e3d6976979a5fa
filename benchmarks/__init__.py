"""Benchmarks: ``make bench`` (or ``python -m benchmarks [--quick]``).

Every figure is measured side by side in one run against a plain baseline, and written
to ``benchmarks/results.json`` with a Markdown table (``benchmarks/results.md``) that
docs/performance.md quotes. ``--quick`` runs the same measurements on small data: a smoke
test for CI, not figures to quote.
"""
