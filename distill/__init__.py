"""kdran distill component."""
