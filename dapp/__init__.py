"""kdran dapp component."""
