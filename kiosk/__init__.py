"""The resident kiosk: Kivy screens, and plain-Python domain logic (triage, content, i18n)."""
