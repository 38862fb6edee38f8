"""Loads FluxIRPipeline from the installed fluxir-hub package (pip install fluxir-hub); nothing else runs."""
from fluxir_hub.pipelines.pipeline_fluxir import FluxIRPipeline  # noqa: F401
