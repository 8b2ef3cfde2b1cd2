"""{{name}}: an hmrt check plugin.

It GETs `url` and is healthy when the response's status is `expect_status` (default 200) and,
when `expect_text` is set, the body contains that text; otherwise it is unhealthy and says why.
It measures `latency_ms`.

    config = { url = "http://127.0.0.1:8080/health", expect_status = 200, expect_text = "ok" }
    grants = { http = ["http://127.0.0.1:8080"] }
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import hmrt_plugin as hp
from hmrt_plugin import Capability, HostError, healthy, metric, need_http, unhealthy

VERSION = "0.1.0"


@dataclass
class Settings:
    """The plugin's config, read and checked."""

    url: str
    expect_status: int = 200
    expect_text: Optional[str] = None

    @staticmethod
    def read(cfg: hp.Config) -> "Settings":
        """Reads the config; a `hp.ConfigError` names the key that is wrong."""
        cfg.only("url", "expect_status", "expect_text")
        return Settings(
            url=cfg.url("url"),
            expect_status=cfg.integer("expect_status", default=200, min=100, max=599),
            expect_text=cfg.string("expect_text", default=None),
        )


def judge(settings: Settings, response: hp.Response) -> Any:
    """The verdict on `response`: pure, so test_app.py tests it without wasm or a host."""
    metrics = [metric("latency_ms", response.elapsed_ms, "ms")]
    where = f"GET {settings.url}"
    if response.status != settings.expect_status:
        return unhealthy(
            f"{where} returned {response.status}, expected {settings.expect_status}", metrics
        )
    if settings.expect_text is not None and settings.expect_text not in response.text:
        cut = f" (of its first {len(response.body)} bytes)" if response.truncated else ""
        return unhealthy(
            f"{where} returned {response.status} but the body{cut} does not contain "
            f"{settings.expect_text!r}",
            metrics,
        )
    found = f" with {settings.expect_text!r}" if settings.expect_text is not None else ""
    return healthy(f"{where} returned {response.status}{found}", metrics)


class CheckPlugin(hp.Check):
    """The exported check (componentize-py looks for this class name)."""

    name = "{{name}}"
    version = VERSION
    summary = "GETs a URL and checks its status and, optionally, that its body contains a text."
    capabilities = [Capability.HTTP]

    def validate(self, task: hp.Task) -> list:
        return [need_http(Settings.read(hp.config(task)).url)]

    def check(self, task: hp.Task) -> Any:
        settings = Settings.read(hp.config(task))
        try:
            response = hp.http_get(settings.url)
        except HostError as e:
            return unhealthy(f"GET {settings.url}: {e}")
        return judge(settings, response)
