"""Layers of FNOReg models (torch)."""
