"""Inference back ends behind one small Protocol (siammask.backend.Engine, re-exported here)."""


def __getattr__(name: str):
    """`siammask.engines.Engine` without importing numpy for every `siammask.engines.x` (the command
    line reads engines.precision while building its parser)."""
    if name in __all__:
        from siammask import backend
        return getattr(backend, name)
    raise AttributeError(f"module 'siammask.engines' has no attribute '{name}'")


__all__ = ["Engine", "TrackHeads"]
