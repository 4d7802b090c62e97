"""Numpy-only channel math shared by every kdran component (no torch, ever).

Tensor layout (the one place it is defined; see ``csi.layout``):
complex64 ``[batch, time, antenna, rb]``; one time step is one SRS period; one antenna is one BS
port (the UE has a single antenna); one rb is one resource block, sampled at its centre subcarrier.
"""
