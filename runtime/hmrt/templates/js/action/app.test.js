// Unit tests of {{name}}'s logic, natively with node (no wasm, no host): `./build.sh test`.
// hmrt-mock.js serves the `hmrt:plugin/...` imports, so app.js imports as it is; mock.http.send
// stands in for the host's HTTP.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { mock } from './hmrt-mock.js';

const { settings, message, actionPlugin } = await import('./app.js');
const { Config, utf8Decode } = await import('./hmrt-plugin.js');

const URL = 'http://127.0.0.1:9000/notify';
const task = (config, program = 'web') => ({ name: 'web', program, config: JSON.stringify(config) });
const trigger = { status: 'unhealthy', message: 'GET http://127.0.0.1:8080/health returned 503', attempt: 2 };

beforeEach(() => mock.reset());

test('settings: errors name the key', () => {
  assert.deepEqual(settings(new Config({ url: URL })), { url: URL });
  assert.throws(() => settings(new Config({})), /missing required config key `url`/);
  assert.throws(() => settings(new Config({ url: 'ftp://x' })), /`url` must be an absolute/);
  assert.throws(() => settings(new Config({ url: URL, channel: '#ops' })), /unknown config key `channel`/);
});

test('message: what is posted', () => {
  assert.deepEqual(message({ name: 'web', program: 'web' }, trigger), {
    task: 'web', program: 'web', status: 'unhealthy', message: trigger.message, attempt: 2,
  });
  assert.equal(message({ name: 'web' }, trigger).program, null);
});

test('validate: needs the url, or names the bad key', () => {
  assert.deepEqual(actionPlugin.validate(task({ url: URL })), [{ tag: 'http', val: URL }]);
  assert.throws(() => actionPlugin.validate(task({})), (e) => typeof e === 'string' && e.includes('`url`'));
});

test('run: posts JSON through a stand-in host', () => {
  let sent;
  mock.http.send = (req) => {
    sent = req;
    return mock.response({ status: 204 });
  };
  assert.equal(actionPlugin.run(task({ url: URL }), trigger), `posted to ${URL} (204)`);
  assert.equal(sent.method, 'POST');
  assert.deepEqual(sent.headers, [['content-type', 'application/json']]);
  assert.equal(JSON.parse(utf8Decode(sent.body)).attempt, 2);
});

test('run: failures are one-line errors (thrown strings), never a trap', () => {
  mock.http.send = () => mock.response({ status: 500 });
  assert.throws(() => actionPlugin.run(task({ url: URL }), trigger), (e) => e === `POST ${URL} returned 500`);
  mock.http.send = () => {
    throw mock.hostError('timeout');
  };
  assert.throws(() => actionPlugin.run(task({ url: URL }), trigger), (e) => e === `POST ${URL}: timeout`);
  assert.throws(() => actionPlugin.run(task({ url: 7 }), trigger), (e) => /^invalid config: `url`/.test(e));
});
