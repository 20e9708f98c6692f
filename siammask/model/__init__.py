"""The network: trunk, adjust, correlation heads, refine."""
from .siammask import VARIANT_SPECS, VARIANTS, SearchOutput, SiamMask, TemplateFeatures

__all__ = ["VARIANT_SPECS", "VARIANTS", "SearchOutput", "SiamMask", "TemplateFeatures"]
