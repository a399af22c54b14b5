"""Synthetic stand-ins for trying boneflow without the real data: dataset (`boneflow
demo-data`: pictures, broken files, planted copies), bones (the radiograph-like drawer), copies
(the planted copies), store (a demo store with a tiny published model). Used by: serve
(synthetic examples), bench, cli."""
