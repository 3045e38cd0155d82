"""Scenario driver: ``openai.AzureOpenAI`` (deployment URLs, ``api-key`` header), metered as ``azure.ai.openai``."""

from __future__ import annotations

from typing import Any

import openai

from . import API_KEY
from .openai import OpenAIDriver

API_VERSION = "2024-10-21"


class AzureOpenAIDriver(OpenAIDriver):
    """The OpenAI chat driver with Azure clients; the model names the deployment."""

    provider = "azure.ai.openai"

    def client(self, url: str, *, max_retries: int = 0) -> Any:
        """A sync Azure client pointed at the fake."""
        return openai.AzureOpenAI(azure_endpoint=url, api_key=API_KEY, api_version=API_VERSION, max_retries=max_retries)

    def aclient(self, url: str, *, max_retries: int = 0) -> Any:
        """An async Azure client pointed at the fake."""
        return openai.AsyncAzureOpenAI(
            azure_endpoint=url, api_key=API_KEY, api_version=API_VERSION, max_retries=max_retries
        )


DRIVER = AzureOpenAIDriver()
