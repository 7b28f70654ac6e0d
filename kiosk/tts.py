"""Read-aloud: runs the configured text-to-speech command (espeak-ng on the Pi) for a screen.

The command is a list of arguments with ``{text}`` and ``{voice}`` placeholders, run without a
shell, so nothing a screen says can become a shell command. A new request stops the one still
speaking. What is read is never logged: it may be a resident's answers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

import structlog

log = structlog.get_logger(__name__)


def command_line(template: Sequence[str], *, text: str, voice: str) -> list[str]:
    """The argument list for one read-aloud: placeholders replaced, nothing else touched.

    >>> command_line(["espeak-ng", "-v", "{voice}", "{text}"], text="119 {x}", voice="ja")
    ['espeak-ng', '-v', 'ja', '119 {x}']
    """
    # str.replace, not str.format: braces in the text or the template stay as they are.
    return [part.replace("{voice}", voice).replace("{text}", text) for part in template]


class ReadAloud:
    """Speaks texts with the configured command, one at a time.

    Example::

        tts = ReadAloud(["espeak-ng", "-v", "{voice}", "{text}"])
        tts.say("こんにちは", voice="ja")   # runs: espeak-ng -v ja こんにちは
        tts.stop()
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        spawn: Callable[[list[str]], object] | None = None,
    ) -> None:
        self._command = list(command)
        self._spawn = spawn
        self._current: subprocess.Popen[bytes] | None = None

    def say(self, text: str, *, voice: str) -> None:
        """Start reading ``text`` aloud in ``voice``, stopping anything still being read."""
        self.stop()
        argv = command_line(self._command, text=text, voice=voice)
        log.info("read_aloud", voice=voice, chars=len(text), program=argv[0])
        if self._spawn is not None:
            self._spawn(argv)
            return
        try:
            self._current = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            # A kiosk without a speech program still works; staff see why in the log.
            log.warning("read_aloud_failed", program=argv[0], error=exc.strerror or str(exc))

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
