"""Registry: runs in the store and the champion pointer. publish (a run's files, manifest last;
the champion swap by ETag), transfer (checkpoints and work files between workers), verified
(reads checked against their sha256), gc and retention (one garbage collector: what a run keeps,
what is removed). Used by: serve, demo, cli, tasks."""
