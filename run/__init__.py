"""Local generation: constrained engine, self-check, safety, CLI, HTTP API and Gradio (python -m run)."""
