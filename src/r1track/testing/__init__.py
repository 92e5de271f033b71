"""Test and benchmark helpers that ship with r1track (no optional dependencies): a local OpenAI-compatible
server imitating vLLM (:mod:`r1track.testing.openai_server`), and a fixed set of real tracker requests for
comparing engines (:mod:`r1track.testing.requests`)."""
