"""Evaluation settings, declared once. Standard library only: `boneflow --help` and the config
import it without numpy."""

from __future__ import annotations

# The operating threshold is the highest whose validation recall by radiograph reaches this:
# a screening tool's sensitivity target. It is its own setting, apart from the gate's recall
# floor: with the floor at 0 (a first look), a target equal to the floor would pick a threshold
# that calls almost nothing fractured.
TARGET_RECALL = 0.90
