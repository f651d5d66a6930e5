"""Key bindings for the REPL, on top of prompt_toolkit's Emacs defaults (Tab completes, → accepts a suggestion)."""

from prompt_toolkit.key_binding import KeyBindings


def key_bindings():
    kb = KeyBindings()

    @kb.add("c-c")
    def _cancel(event):
        # Like a shell: Ctrl-C throws away the line being typed but never ends the session. On an empty line
        # the prompt ends with KeyboardInterrupt so the REPL can remind the user how to leave.
        buffer = event.app.current_buffer
        if buffer.text:
            buffer.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    return kb
