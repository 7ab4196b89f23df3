"""Errors shown to a visitor of the demo: one line for the page, one line for the server log."""

from __future__ import annotations

import logging

import gradio as gr

logger = logging.getLogger("zoo.demo")


def visitor_error(message: str) -> gr.Error:
    """A one-line error for the visitor; the server log gets one line too, no traceback."""
    line = " ".join(message.split())
    logger.warning("visitor error: %s", line)
    return gr.Error(line, print_exception=False)
