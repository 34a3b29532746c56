"""Test helpers that are real servers, not mocks (see openai_server.py)."""
