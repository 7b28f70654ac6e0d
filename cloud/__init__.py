"""The cloud side: the collector (MQTT -> store), the stores, and (later) the web app.

``cloud`` imports ``protocol`` and never ``edge``, ``kiosk`` or ``hardware``.
"""
