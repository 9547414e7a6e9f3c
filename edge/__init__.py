"""The edge agent: streams a device's audio to the server and plays the answers."""
