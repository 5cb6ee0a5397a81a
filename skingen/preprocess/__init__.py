"""Preprocessing pipelines as named presets; a pipeline maps a decoded RGB image to a square uint8 one."""
from .basic import square_resize
from .registry import Pipeline, get_pipeline

__all__ = ["Pipeline", "get_pipeline", "square_resize"]
