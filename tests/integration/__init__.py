"""Tests against real services: the Mosquitto broker and the InfluxDB store."""
