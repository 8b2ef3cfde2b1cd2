"""Unit tests of {{name}}'s logic, run natively: `./build.sh test` or `python3 -m unittest`."""

import json
import unittest

import hmrt_plugin as hp
from app import CheckPlugin, Settings, judge
from componentize_py_types import Err


def task(config: str) -> hp.Task:
    return hp.Task(name="web", program=None, config=config)


class Judge(unittest.TestCase):
    def test_expected_status_is_healthy_with_latency(self):
        result = judge(Settings("http://x/health"), hp.Response(200, b"ok", elapsed_ms=1.5))
        self.assertEqual(result.status, hp.Status.HEALTHY)
        self.assertEqual([(m.name, m.value, m.unit) for m in result.metrics],
                         [("latency_ms", 1.5, "ms")])

    def test_other_status_is_unhealthy(self):
        result = judge(Settings("http://x/health"), hp.Response(503))
        self.assertEqual(result.status, hp.Status.UNHEALTHY)
        self.assertIn("returned 503, expected 200", result.message)

    def test_expect_text(self):
        settings = Settings("http://x/", expect_text="ready")
        ok = judge(settings, hp.Response(200, b"all ready"))
        missing = judge(settings, hp.Response(200, b"starting"))
        self.assertEqual(ok.status, hp.Status.HEALTHY)
        self.assertEqual(missing.status, hp.Status.UNHEALTHY)
        self.assertIn("'ready'", missing.message)


class Config(unittest.TestCase):
    def test_reads_defaults(self):
        s = Settings.read(hp.Config.parse('{"url": "http://127.0.0.1:8080/health"}'))
        self.assertEqual((s.expect_status, s.expect_text), (200, None))

    def test_errors_name_the_key(self):
        cases = {
            "{}": "`url`",
            '{"url": "ftp://x"}': "`url`",
            '{"url": "http://x", "expect_status": "200"}': "`expect_status`",
            '{"url": "http://x", "expect_status": 42}': "`expect_status`",
            '{"url": "http://x", "expect_text": 1}': "`expect_text`",
            '{"url": "http://x", "extra": 1}': "`extra`",
        }
        for config, key in cases.items():
            with self.subTest(config=config):
                with self.assertRaises(hp.ConfigError) as e:
                    Settings.read(hp.Config.parse(config))
                self.assertIn(key, str(e.exception))


class Plugin(unittest.TestCase):
    def test_describe_declares_http(self):
        info = CheckPlugin().describe()
        self.assertEqual((info.name, info.capabilities), ("{{name}}", [hp.Capability.HTTP]))

    def test_validate_needs_the_url_or_names_the_bad_key(self):
        url = "http://127.0.0.1:8080/health"
        needs = CheckPlugin().validate(task(json.dumps({"url": url})))
        self.assertEqual(needs, [hp.need_http(url)])
        with self.assertRaises(Err) as e:
            CheckPlugin().validate(task('{"url": 5}'))
        self.assertIn("`url`", e.exception.value)

    def test_bad_config_is_unknown_never_an_exception(self):
        result = CheckPlugin().check(task('{"expect_status": 200}'))
        self.assertEqual(result.status, hp.Status.UNKNOWN)
        self.assertIn("`url`", result.message)


if __name__ == "__main__":
    unittest.main()
