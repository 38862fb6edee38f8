# isort: off
# The conditioning classes register themselves when defined; this order is the order users see them in.
from .conditioning import ConditioningMixin, ConditioningOptions, conditioning_classes, conditioning_names
from .adapter_fluxir import FluxIRAdapter, FluxIRAdapterOptions, FluxIRAdapterOutput, SqueezeExcitation
from .conditioning_ummf import UMMFConditioner, UMMFOptions
from .adapter_dra import DRAAdapter, DRAAdapterOptions

# isort: on

__all__ = [
    "ConditioningMixin",
    "ConditioningOptions",
    "DRAAdapter",
    "DRAAdapterOptions",
    "FluxIRAdapter",
    "FluxIRAdapterOptions",
    "FluxIRAdapterOutput",
    "SqueezeExcitation",
    "UMMFConditioner",
    "UMMFOptions",
    "conditioning_classes",
    "conditioning_names",
]
