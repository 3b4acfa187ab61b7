"""The chat server: aiohttp + python-socketio, hosting the widget and the /resident and /staff namespaces."""
