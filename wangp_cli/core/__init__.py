"""The wangp core: definitions, registry, variants, settings and diagnostics.

Pure Python (no torch, diffusers or transformers): everything here is cheap to import.
"""
