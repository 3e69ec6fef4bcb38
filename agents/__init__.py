"""Agents that learn in imagination and in real environments (see issue: agents)."""
