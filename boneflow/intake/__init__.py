"""Intake: get the dataset and check every file. acquire (kagglehub download or a local folder,
the dataset fingerprint), layout (the Kaggle folder layout, classes and splits), decode (bounded,
hostile-file-safe decoding of one X-ray), validate (every file decoded once: the kept records,
their perceptual hashes and thumbnails, the cleaning report). Used by: duplicates, splits, the
app's upload path (decode), cli."""
