"""Inference back ends behind one small Protocol (see base.Engine)."""
from siammask.backend import Engine, TrackHeads

__all__ = ["Engine", "TrackHeads"]
