"""Read-aloud (kiosk.tts): the text reaches the speech program on stdin, never as an argument."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import KioskSection
from kiosk.tts import ReadAloud
from tests.integration.nodes import wait_for


def test_the_text_goes_to_stdin_and_only_the_voice_into_the_arguments() -> None:
    spoken: list[tuple[list[str], bytes]] = []
    tts = ReadAloud(
        ["espeak-ng", "-v", "{voice}", "--stdin", "{text}"], spawn=lambda *a: spoken.append(a)
    )
    tts.say("-x 119 {braces} にほんご", voice="cmn")
    ((argv, data),) = spoken
    assert argv == ["espeak-ng", "-v", "cmn", "--stdin", "{text}"], "no argument holds the text"
    assert data.decode() == "-x 119 {braces} にほんご"


def test_espeak_speaks_a_text_that_starts_with_a_dash_instead_of_taking_it_as_an_option(
    tmp_path: Path,
) -> None:
    wav = tmp_path / "spoken.wav"
    tts = ReadAloud(["espeak-ng", "-v", "{voice}", "--stdin", "-w", str(wav)])
    # As an argument, espeak-ng would print its help and say nothing.
    tts.say("--help me, my chest hurts", voice="en")
    # A few seconds of speech at 22 kHz, 16 bit: tens of kilobytes, not an empty file.
    wait_for("the speech written", lambda: wav.exists() and wav.stat().st_size > 20_000, 30)
    tts.stop()


def test_a_tts_command_with_the_text_as_an_argument_is_refused_naming_the_key() -> None:
    assert KioskSection().tts_command == ["espeak-ng", "-v", "{voice}", "--stdin"]
    with pytest.raises(ValueError, match=r"tts_command[\s\S]*stdin"):
        KioskSection(tts_command=["espeak-ng", "-v", "{voice}", "{text}"])
