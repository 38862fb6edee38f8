# isort: off
# The conditioning classes register themselves when defined; this order is the order users see them in.
from .conditioning import ConditioningMixin, conditioning_classes, conditioning_names
from .adapter_fluxir import FluxIRAdapter, FluxIRAdapterOutput, SqueezeExcitation
from .conditioning_ummf import UMMFConditioner
from .adapter_dra import DRAAdapter

# isort: on

__all__ = [
    "ConditioningMixin",
    "DRAAdapter",
    "FluxIRAdapter",
    "FluxIRAdapterOutput",
    "SqueezeExcitation",
    "UMMFConditioner",
    "conditioning_classes",
    "conditioning_names",
]
