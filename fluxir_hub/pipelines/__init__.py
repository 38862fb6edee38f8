from .pipeline_fluxir import FluxIRPipeline, output_size
from .pipeline_output import FluxIRPipelineOutput

__all__ = ["FluxIRPipeline", "FluxIRPipelineOutput", "output_size"]
