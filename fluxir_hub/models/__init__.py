from .adapter_fluxir import FluxIRAdapter, FluxIRAdapterOutput, SqueezeExcitation

__all__ = ["FluxIRAdapter", "FluxIRAdapterOutput", "SqueezeExcitation"]
