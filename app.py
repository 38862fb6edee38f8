"""Hugging Face Space entry point: builds the FluxIR demo once at import and launches it.

python app.py            # http://127.0.0.1:7860 (tiny demo model without a GPU or FLUXIR_ADAPTER)
"""

from demo.app import build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.launch()
