"""The HTTP service: OpenAI-compatible API, jobs, legacy endpoints, health and metrics."""
