"""Runnable examples: ``python -m xpnet.examples.ring``."""
