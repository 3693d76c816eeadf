"""Scan backends written in PyTorch: the ground truth and the exact chunked reference."""
