"""The networks: SiamMask (ResNet-style trunks, anchor heads) and nano (NanoTrack trunk, BAN head)."""
from ..variants import VARIANT_SPECS, VARIANTS, variant_spec
from .interface import SearchOutput, TemplateFeatures, TrackingNet
from .nano import NanoSiamMask
from .siammask import SiamMask

ARCHITECTURES: dict[str, type[TrackingNet]] = {"siammask": SiamMask, "nano": NanoSiamMask}


def build_model(variant: str) -> TrackingNet:
    """The (randomly initialised) network of a variant; ValueError for an unknown name."""
    return ARCHITECTURES[variant_spec(variant).arch](variant)


__all__ = ["ARCHITECTURES", "VARIANT_SPECS", "VARIANTS", "NanoSiamMask", "SearchOutput", "SiamMask",
           "TemplateFeatures", "TrackingNet", "build_model", "variant_spec"]
