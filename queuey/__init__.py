"""Queuey: an HTTP message queue for many queues, long-lived messages and rewinding readers."""

__version__ = "1.0.0"
