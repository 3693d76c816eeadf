"""Scan backends, decode steps and applying a variant to a Hugging Face model.

Importing this package stays light: backends load on first use.
"""
from ssmboard.variants.backends import Backend, get_backend, get_scan, get_step, list_scans, register_backend

__all__ = ["Backend", "get_backend", "get_scan", "get_step", "list_scans", "register_backend"]
