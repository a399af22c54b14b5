"""Duplicates: which files are copies of the same radiograph. grouping (exact, near and rotated
links joined into duplicate groups; near_pairs), rotated_candidates / rotated_polar /
rotated_copies (the turned-copy search it calls), leakage (the audit across the official splits,
its contamination counts and the leak-free test list). Used by: splits, cli, bench."""
