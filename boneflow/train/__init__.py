"""Train: the model and its training (what each module holds: docs/ARCHITECTURE.md, "The core,
package by package"). Used by: evaluate, serve, bench, tasks."""
