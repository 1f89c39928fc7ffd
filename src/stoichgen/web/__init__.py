"""The web page and its HTTP API (``stoichgen serve``); see ``web.app``."""
