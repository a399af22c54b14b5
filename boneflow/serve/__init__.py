"""Serve the champion: predictor (a published model, or its fold ensemble, with its own
preprocessing and operating point), model_cache (verified local copies), model_meta
(model.json read with limits), champion (follow the store's champion pointer), app (Gradio),
examples (the app's example images), uploads (checks on what a user sends). Used by: cli, bench, tasks."""
