"""Unit tests of {{name}}'s logic, run natively: `./build.sh test` or `python3 -m unittest`."""

import json
import unittest

import hmrt_plugin as hp
from app import ActionPlugin, Settings, message, outcome
from componentize_py_types import Err
from wit_world.exports.action_plugin import Trigger

URL = "http://127.0.0.1:9000/notify"


def task(config: str, program=None) -> hp.Task:
    return hp.Task(name="web", program=program, config=config)


class Logic(unittest.TestCase):
    def test_message_says_which_task_failed_and_why(self):
        trigger = Trigger(status=hp.Status.UNHEALTHY, message="GET / returned 503", attempt=2)
        self.assertEqual(message(task("{}", program="web"), trigger), {
            "task": "web", "program": "web", "status": "unhealthy",
            "message": "GET / returned 503", "attempt": 2,
        })

    def test_outcome(self):
        self.assertIn("notified", outcome(Settings(URL), hp.Response(204)))
        with self.assertRaises(hp.ActionError) as e:
            outcome(Settings(URL), hp.Response(500, b"boom"))
        self.assertIn("500", str(e.exception))

    def test_config_errors_name_the_key(self):
        for config, key in {"{}": "`url`", '{"url": "nope"}': "`url`",
                            '{"url": "http://x", "to": 1}': "`to`"}.items():
            with self.subTest(config=config):
                with self.assertRaises(hp.ConfigError) as e:
                    Settings.read(hp.Config.parse(config))
                self.assertIn(key, str(e.exception))


class Plugin(unittest.TestCase):
    def test_describe_declares_http(self):
        info = ActionPlugin().describe()
        self.assertEqual((info.name, info.capabilities), ("{{name}}", [hp.Capability.HTTP]))

    def test_validate(self):
        self.assertEqual(ActionPlugin().validate(task(json.dumps({"url": URL}))),
                         [hp.need_http(URL)])
        with self.assertRaises(Err) as e:
            ActionPlugin().validate(task("{}"))
        self.assertIn("`url`", e.exception.value)

    def test_run_without_a_host_fails_with_a_reason_never_an_exception(self):
        trigger = Trigger(status=hp.Status.UNHEALTHY, message="down", attempt=1)
        with self.assertRaises(Err) as e:
            ActionPlugin().run(task(json.dumps({"url": URL})), trigger)
        self.assertIn(f"POST {URL}: failed", e.exception.value)


if __name__ == "__main__":
    unittest.main()
