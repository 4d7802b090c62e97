"""kdran sim component."""
