"""Conversations: what the user said, assembled into prompts that fit the context."""
