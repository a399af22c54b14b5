"""`boneflow bench`: speed and memory measured against the notebook-style baseline in the same
run (notebook_baseline), JSON out. prep (validate + audit + pack), train (epoch speed, data
supply), infer (batch, single image, the fold ensemble), app_latency (the app end to end).
Used by: cli."""
