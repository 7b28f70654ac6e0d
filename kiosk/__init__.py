"""The resident kiosk: screens in Kivy, domain logic (triage, content, session, i18n) in plain Python."""
