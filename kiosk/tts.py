"""Read-aloud: runs the configured text-to-speech command (espeak-ng on the Pi) for a screen.

The command is a list of arguments with a ``{voice}`` placeholder, run without a shell; the text
is written to the command's standard input (``espeak-ng --stdin``), never put into an argument:
arguments are visible to every user of the machine in ``/proc/*/cmdline``, and a text starting
with ``-`` would be read as an option. A new request stops the one still speaking. Neither the
text nor its language is logged: it may be a resident's answers.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Sequence

import structlog

log = structlog.get_logger(__name__)

#: The default: espeak-ng, reading the whole text from stdin at once.
DEFAULT_COMMAND = ("espeak-ng", "-v", "{voice}", "--stdin")


def command_line(template: Sequence[str], *, voice: str) -> list[str]:
    """The argument list for one read-aloud: ``{voice}`` replaced, nothing else touched.

    >>> command_line(["espeak-ng", "-v", "{voice}", "--stdin"], voice="ja")
    ['espeak-ng', '-v', 'ja', '--stdin']
    """
    # str.replace, not str.format: other braces in the template stay as they are.
    return [part.replace("{voice}", voice) for part in template]


class ReadAloud:
    """Speaks texts with the configured command, one at a time, the text on its stdin.

    Example::

        tts = ReadAloud(["espeak-ng", "-v", "{voice}", "--stdin"])
        tts.say("こんにちは", voice="ja")   # runs: espeak-ng -v ja --stdin  <<< こんにちは
        tts.stop()
    """

    def __init__(
        self,
        command: Sequence[str] = DEFAULT_COMMAND,
        *,
        spawn: Callable[[list[str], bytes], object] | None = None,
    ) -> None:
        self._command = list(command)
        self._spawn = spawn
        self._current: subprocess.Popen[bytes] | None = None

    def say(self, text: str, *, voice: str) -> None:
        """Start reading ``text`` aloud in ``voice``, stopping anything still being read."""
        self.stop()
        argv = command_line(self._command, voice=voice)
        data = text.encode("utf-8")
        if self._spawn is not None:
            self._spawn(argv, data)
            return
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            # A kiosk without a speech program still works; staff see why in the log.
            log.warning("read_aloud_failed", program=argv[0], error=exc.strerror or str(exc))
            return
        self._current = proc
        # Written from a thread: a long text must not hold the UI until the pipe drains.
        threading.Thread(target=_feed, args=(proc, data), name="read-aloud", daemon=True).start()

    def stop(self) -> None:
        """Stop the current read-aloud, if any (idempotent)."""
        proc, self._current = self._current, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write the text to the speech program and close its stdin (the end of the text)."""
    stdin = proc.stdin
    assert stdin is not None
    # A program stopped meanwhile (a new text, a wipe) closes the pipe: nothing more to say.
    with contextlib.suppress(OSError, ValueError):
        stdin.write(data)
        stdin.close()
