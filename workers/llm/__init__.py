"""LLM engines, one module per engine."""
