"""Engines: backends that run a model (transformers, OpenAI-compatible endpoints, fake)."""

from ladder.engines.base import Completion, Engine, GenRequest, ScoreRequest, Scores

__all__ = ["Completion", "Engine", "GenRequest", "ScoreRequest", "Scores"]
