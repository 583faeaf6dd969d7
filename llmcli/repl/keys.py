"""Key bindings: Enter sends, Alt-Enter / Esc Enter adds a line, ``\"\"\"`` opens a block.

The buffer is multi-line so that pasted text (bracketed paste, which prompt_toolkit
enables) arrives whole, newlines included, as one message; Enter is rebound to send
unless a ``\"\"\"`` block is still open.

During a Ctrl-R search Enter does what it does in readline: it ends the search,
keeps the line found and sends it. (An Enter binding without a filter would take
precedence over prompt_toolkit's own search bindings and leave the line stuck in
"I-search backward:".)
"""

from __future__ import annotations

from prompt_toolkit import search
from prompt_toolkit.filters import is_searching
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

FENCE = '"""'


def in_open_block(text: str) -> bool:
    """True while the text starts a ``\"\"\"`` block that is not closed yet."""
    stripped = text.lstrip()
    return stripped.startswith(FENCE) and stripped.count(FENCE) % 2 == 1


def unwrap_block(text: str) -> str:
    """The message inside a ``\"\"\"`` block (the text unchanged when it is not one)."""
    stripped = text.strip()
    if len(stripped) >= 2 * len(FENCE) and stripped.startswith(FENCE) and stripped.endswith(FENCE):
        return stripped[len(FENCE) : -len(FENCE)].strip("\n")
    return text


def chat_key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    def send_or_continue(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if in_open_block(buffer.text):
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    @bindings.add("enter", filter=~is_searching)
    def _send(event: KeyPressEvent) -> None:
        send_or_continue(event)

    @bindings.add("enter", filter=is_searching)
    def _accept_search(event: KeyPressEvent) -> None:
        search.accept_search()  # the found line becomes the input, focus goes back to it
        send_or_continue(event)

    @bindings.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return bindings
