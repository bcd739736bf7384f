"""Ladder: prompt it, retrieve for it, or fine-tune for it - measured on one hold-out."""

__version__ = "0.1.0.dev0"
