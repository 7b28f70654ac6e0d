"""The home screen: a medical consultation, or information for your situation."""

from __future__ import annotations

from kiosk.screens.base import KioskScreen


class HomeScreen(KioskScreen):
    """Two big choices; everything is in home.kv."""
