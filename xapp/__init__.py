"""kdran xapp component."""
