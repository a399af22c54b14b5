"""Report: what a run publishes for people. run_files (metrics.json, predictions.csv, the plots,
the error gallery, report.md and the model card, written together), render (report.md and the
model card), summary (the honest one-paragraph summary), plots, error_gallery,
predictions_csv. Used by: tasks (publish)."""
