"""Loads FluxIRAdapter from the installed fluxir-hub package (pip install fluxir-hub); nothing else runs."""
from fluxir_hub.models.adapter_fluxir import FluxIRAdapter  # noqa: F401
