// Unit tests of {{name}}'s logic, natively with node (no wasm, no host): `./build.sh test`.
// hmrt-mock.js serves the `hmrt:plugin/...` imports, so app.js imports as it is; mock.http.send
// stands in for the host's HTTP.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mock } from './hmrt-mock.js';

const { settings, judge, checkPlugin } = await import('./app.js');
const { Config, Response } = await import('./hmrt-plugin.js');

const URL = 'http://127.0.0.1:8080/health';
const task = (config) => ({ name: 'web', config: JSON.stringify(config) });
const reply = (status, body = '', elapsedMs = 12.5) => new Response(mock.response({ status, body, elapsedMs }));

beforeEach(() => mock.reset());

test('settings: defaults and typed keys', () => {
  const s = settings(new Config({ url: URL }));
  assert.deepEqual(s, { url: URL, expectStatus: 200, expectText: null });
  assert.equal(settings(new Config({ url: URL, expect_status: 204 })).expectStatus, 204);
});

test('settings: errors name the key', () => {
  assert.throws(() => settings(new Config({})), /missing required config key `url`/);
  assert.throws(() => settings(new Config({ url: 'localhost' })), /`url` must be an absolute/);
  assert.throws(() => settings(new Config({ url: URL, expect_status: '200' })), /`expect_status` must be an integer/);
  assert.throws(() => settings(new Config({ url: URL, expect_status: 42 })), /`expect_status` must be an integer from 100 to 599/);
  assert.throws(() => settings(new Config({ url: URL, expect_txt: 'ok' })), /unknown config key `expect_txt`/);
});

test('judge: status and text', () => {
  const s = { url: URL, expectStatus: 200, expectText: 'ok' };
  const good = judge(s, reply(200, 'all ok'));
  assert.equal(good.status, 'healthy');
  assert.deepEqual(good.metrics, [{ name: 'latency_ms', value: 12.5, unit: 'ms' }]);
  assert.match(judge(s, reply(503, 'ok')).message, /returned 503, expected 200/);
  assert.equal(judge(s, reply(503, 'ok')).status, 'unhealthy');
  assert.match(judge(s, reply(200, 'nope')).message, /does not contain "ok"/);
  assert.equal(judge({ ...s, expectText: null }, reply(200, '')).status, 'healthy');
});

test('validate: needs the url, or names the bad key', () => {
  assert.deepEqual(checkPlugin.validate(task({ url: URL })), [{ tag: 'http', val: URL }]);
  assert.throws(() => checkPlugin.validate(task({ url: 5 })), (e) => typeof e === 'string' && e.includes('`url`'));
});

test('check: through a stand-in host', () => {
  mock.http.send = (req) => {
    assert.equal(req.method, 'GET');
    assert.equal(req.url, URL);
    return mock.response({ status: 200, body: 'ok' });
  };
  assert.equal(checkPlugin.check(task({ url: URL })).status, 'healthy');
  mock.http.send = () => {
    throw mock.hostError('denied', `${URL} is not granted`);
  };
  const denied = checkPlugin.check(task({ url: URL }));
  assert.equal(denied.status, 'unhealthy');
  assert.match(denied.message, /denied: .* is not granted/);
});

test('check: bad config and bugs are unknown, never a throw', () => {
  assert.match(checkPlugin.check(task({})).message, /^invalid config: missing required config key `url`/);
  mock.http.send = () => null; // a broken host answer: the check throws inside
  const r = checkPlugin.check(task({ url: URL }));
  assert.equal(r.status, 'unknown');
  assert.match(r.message, /TypeError/);
});

test('describe', () => {
  const d = checkPlugin.describe();
  assert.equal(d.name, '{{name}}');
  assert.deepEqual(d.capabilities, ['http']);
});
