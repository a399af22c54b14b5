"""Evaluate: a model's scores on a run's packed splits, every headline figure by radiograph.
predict (margins and probabilities through the eval preset), scores (Scores per split at an
operating point; a champion at its own preprocessing), radiographs (files to duplicate groups),
metrics (by radiograph, with intervals), calibration (the operating point: temperature and
threshold), crossfit (out-of-fold judging), gradcam, split_names (one name per split). Used by:
gate, report, serve, tasks."""
