"""The Gradio demo (a Hugging Face Space). Build it with `demo.app.build_demo()`; `app.py` launches it."""
