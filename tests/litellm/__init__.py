"""LiteLLM integration tests (run in ``.venv-litellm``; see ``conftest.py``)."""

NEEDS_LITELLM = (
    "LiteLLM is not installed in this environment (it pins openai<3): "
    "run `bash scripts/litellm-venv.sh && .venv-litellm/bin/python -m pytest tests/litellm`"
)
"""The skip reason of every LiteLLM test module where ``import litellm`` fails."""
