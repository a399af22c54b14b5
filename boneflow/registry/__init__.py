"""Registry: runs in the store and the champion pointer (what each module holds:
docs/ARCHITECTURE.md, "The core, package by package"). Used by: serve, demo, cli, tasks."""
