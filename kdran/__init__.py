"""kdran: knowledge-distilled channel prediction for the Open RAN (console entry point)."""

__version__ = "0.1.0"
