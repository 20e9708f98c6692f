"""The network: trunk, adjust, correlation heads, refine."""
from .siammask import VARIANTS, SearchOutput, SiamMask, TemplateFeatures

__all__ = ["VARIANTS", "SearchOutput", "SiamMask", "TemplateFeatures"]
