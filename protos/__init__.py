"""The wire contracts (edge.proto, workers.proto) and their generated code.

Regenerate with ``python -m protos.generate``; ``--check`` fails on drift.
"""
