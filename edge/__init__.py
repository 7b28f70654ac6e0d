"""The node runtime on a Raspberry Pi: config, durable outbox, MQTT link, sensor agents."""
