"""The work behind the commands, without a terminal: each module streams or runs one thing."""
