"""Intake: get the dataset (acquire, layout) and check every file once (decode, validate); what
each module holds: docs/ARCHITECTURE.md, "The core, package by package"."""
