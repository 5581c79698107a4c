"""The streaming API's machinery: the bus that carries committed events between processes
(``bus``) and the channels that decide, per viewer, what a stream sends (``channels``).
The HTTP and WebSocket endpoints are in ``server.api.streaming``."""
