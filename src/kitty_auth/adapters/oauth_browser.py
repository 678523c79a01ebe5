"""The Browser port over Python's ``webbrowser`` (so ``$BROWSER`` is honoured)."""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("kitty_auth.oauth")


def _console_only() -> bool:
    """True on a Linux/BSD machine without a display and without ``$BROWSER``.

    ``webbrowser`` would then pick a text browser (lynx, w3m...) and run it in *this* terminal,
    blocking the login it is meant to serve; such a machine (an SSH session, a container) is
    what the device flow is for.
    """
    if os.environ.get("BROWSER"):
        return False
    if sys.platform in ("darwin", "win32", "cygwin"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WebBrowser:
    def open(self, url: str) -> bool:
        """True when ``webbrowser`` found a browser and its ``open()`` succeeded."""
        if _console_only():
            logger.debug("no display and no $BROWSER: not opening a browser")
            return False
        import webbrowser  # only on a browser login

        try:
            browser = webbrowser.get()
            opened = bool(browser.open(url))
        except (webbrowser.Error, OSError) as exc:
            logger.debug("no browser could be opened (%s)", type(exc).__name__)
            return False
        logger.debug("browser %s", "opened" if opened else "did not open")
        return opened
