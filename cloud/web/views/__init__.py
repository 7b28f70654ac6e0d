"""The web app's query layer: what each page and API answer shows, as plain data.

Each function takes the store's read side, the fleet manifest and a clock, and returns frozen
dataclasses; routers only shape them into HTML, CSV or JSON. Tested on their own against the
SQLite store and the real influxd.
"""
