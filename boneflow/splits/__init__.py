"""Splits: which radiographs train, validate and test (plan, folds), and the packed arrays they are
read from (pack, packed); docs/ARCHITECTURE.md, "Duplicates and splits"."""
