"""The lab's RAG stack: one module per container image, each runnable with `python -m`."""
