from .adapter_dra import DRAAdapter
from .adapter_fluxir import FluxIRAdapter, FluxIRAdapterOutput, SqueezeExcitation
from .conditioning import ConditioningMixin
from .conditioning_ummf import UMMFConditioner

__all__ = [
    "ConditioningMixin",
    "DRAAdapter",
    "FluxIRAdapter",
    "FluxIRAdapterOutput",
    "SqueezeExcitation",
    "UMMFConditioner",
]
