"""The interactive chat: prompt_toolkit input, slash commands, and the turn loop."""
