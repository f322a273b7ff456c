"""Bring your own runs: training logs of other programs turned into nanobench results.

`nanogpt` reads what nanoGPT's train.py prints, `llmc` llm.c's main.log, `csvlog` a CSV of
iter/loss columns (TensorBoard or W&B exports); each returns a `record.Parsed`, which
`record.publish` turns into a result file with status `imported` and its provenance.
This package sits beside `run` (it produces results the way `run` does) and reads the
shipped scenarios to place an imported recipe; nothing below it imports it.
"""
