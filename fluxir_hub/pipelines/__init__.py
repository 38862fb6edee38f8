from .loading import load_restoration_pipeline
from .pipeline_fluxir import FluxIRPipeline, output_size, resolve_task_prompt
from .pipeline_output import FluxIRPipelineOutput

__all__ = ["FluxIRPipeline", "FluxIRPipelineOutput", "load_restoration_pipeline", "output_size", "resolve_task_prompt"]
