"""Splits: which radiographs train, validate and test. plan (the official / regroup / auto split
policy over duplicate groups), folds (cross-fitting folds of whole radiographs), pack (the
packed .npy splits and their reuse key), packed (reading a pack). Used by: train, evaluate,
report, serve (examples), demo, bench."""
