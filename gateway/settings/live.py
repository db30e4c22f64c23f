"""The settings in force: one holder that every reader of a reloadable setting keeps and consults.

Nobody keeps a copy of a reloadable section (limits, tenants, authentication, kubeconfig, placement):
they read `live.current` when they need it, so after `reload()` validation, log clipping, placement and
authentication all see the same new values. Readers that derive something costly from the settings
(the authenticator) subscribe to be told of a reload.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.settings.model import Settings

Listener = Callable[[Settings], None]


class LiveSettings:
    def __init__(self, settings: Settings) -> None:
        self._current = settings
        self._listeners: list[Listener] = []

    @property
    def current(self) -> Settings:
        return self._current

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def reload(self, new: Settings) -> list[str]:
        """Takes the reloadable sections of `new` in one assignment; returns the changed keys that need a
        restart (the running gateway keeps their old values), for the caller to warn about."""
        needs_restart = self._current.restart_changes(new)
        self._current = self._current.reloaded(new)
        for listener in self._listeners:
            listener(self._current)
        return needs_restart
