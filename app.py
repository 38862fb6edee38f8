"""Hugging Face Space entry point: builds the FluxIR demo once at import and launches it.

python app.py            # http://127.0.0.1:7860 (tiny demo model without a GPU or FLUXIR_ADAPTER)
"""

from demo.app import build_demo, launch_settings
from fluxir_hub.cli import quiet_optional_backends

quiet_optional_backends()
demo = build_demo()

if __name__ == "__main__":
    demo.launch(**launch_settings())
