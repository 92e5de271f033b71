"""Test and benchmark helpers that ship with r1track (stdlib only): a local OpenAI-compatible
server imitating vLLM (:mod:`r1track.testing.openai_server`)."""
