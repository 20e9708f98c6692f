"""Inference back ends behind one small Protocol (see base.Engine)."""
from .base import Engine, TrackHeads

__all__ = ["Engine", "TrackHeads"]
