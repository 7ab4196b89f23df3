"""The Gradio demo's parts, one concept a module (`app.py` is the entry point and the page):
`errors` (visitor messages), `cache` (atomic cache files), `models` (which models, loaded
and cached), `uploads` (reading what a visitor sends), `present` (showing a result) and
`handlers` (what the page's events call). Importing it builds nothing and starts no server.
"""

from __future__ import annotations

import os

# No telemetry: set before gradio (and huggingface_hub) are imported, which every module of
# this package does after this file has run.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
