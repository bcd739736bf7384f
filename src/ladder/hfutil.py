"""Quiet, offline transformers: no hub calls at run time, no competing progress bars."""

from __future__ import annotations

import os

from ladder.errors import require


def transformers_offline():
    """Import transformers set up for Ladder: offline, errors-only logging, no tqdm bars."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    transformers = require("transformers", "hf", "Running local models")
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers
