"""Hardware access: GPIO through gpiozero, BLE through bleak, GATT decoders, simulated backends.

The simulated backends emit the same real library types (gpiozero ``MockFactory`` pins, bleak
``BLEDevice`` and ``AdvertisementData``), so the code above cannot tell them from a radio.
"""
