"""{{name}}: an hmrt action plugin (a notifier).

When its task fails, it POSTs a JSON message to `url`:

    {"task": "web", "program": "web", "status": "unhealthy", "message": "...", "attempt": 1}

and succeeds when the answer is 2xx.

    on_failure = { action = "{{name}}", config = { url = "http://127.0.0.1:9000/notify" },
                   grants = { http = ["http://127.0.0.1:9000"] } }
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import hmrt_plugin as hp
from hmrt_plugin import ActionError, Capability, HostError, need_http

VERSION = "0.1.0"


@dataclass
class Settings:
    """The plugin's config, read and checked."""

    url: str

    @staticmethod
    def read(cfg: hp.Config) -> "Settings":
        """Reads the config; a `hp.ConfigError` names the key that is wrong."""
        cfg.only("url")
        return Settings(url=cfg.url("url"))


def message(task: hp.Task, trigger: Any) -> Dict[str, Any]:
    """The JSON message for `task` and why the action runs (pure: tested by test_app.py)."""
    return {
        "task": task.name,
        "program": task.program,
        "status": trigger.status.name.lower(),
        "message": trigger.message,
        "attempt": trigger.attempt,
    }


def outcome(settings: Settings, response: hp.Response) -> str:
    """The one-line summary of a delivery, or an `ActionError` when it was refused."""
    if not response.ok:
        raise ActionError(f"POST {settings.url} returned {response.status}: {response.text[:200]}")
    return f"notified {settings.url} ({response.status})"


class ActionPlugin(hp.Action):
    """The exported action (componentize-py looks for this class name)."""

    name = "{{name}}"
    version = VERSION
    summary = "POSTs a JSON message saying which task failed, and why, to a URL."
    capabilities = [Capability.HTTP]

    def validate(self, task: hp.Task) -> list:
        return [need_http(Settings.read(hp.config(task)).url)]

    def run(self, task: hp.Task, trigger: Any) -> str:
        settings = Settings.read(hp.config(task))
        try:
            response = hp.http_post_json(settings.url, message(task, trigger))
        except HostError as e:
            raise ActionError(f"POST {settings.url}: {e}") from None
        return outcome(settings, response)
