/**
 * {{name}}: an hmrt check plugin.
 *
 * It GETs `url` and is healthy when the response's status is `expect_status` (default 200)
 * and, when `expect_text` is set, the body contains that text; otherwise it is unhealthy and
 * says why. It measures `latency_ms`.
 *
 *     config = { url = "http://127.0.0.1:8080/health", expect_status = 200, expect_text = "ok" }
 *     grants = { http = ["http://127.0.0.1:8080"] }
 */

import { defineCheck, healthy, http, HostError, metric, need, unhealthy } from './hmrt-plugin.js';

export const VERSION = '0.1.0';

/**
 * Reads the config; a ConfigError names the key that is wrong.
 * @param {import('./hmrt-plugin.js').Config} cfg
 */
export function settings(cfg) {
  cfg.only('url', 'expect_status', 'expect_text');
  return {
    url: cfg.url('url'),
    expectStatus: cfg.integer('expect_status', 200, { min: 100, max: 599 }),
    expectText: cfg.string('expect_text', null),
  };
}

/**
 * The verdict on `response`: pure, so app.test.js tests it without wasm or a host.
 * @param {ReturnType<typeof settings>} s
 * @param { {status: number, elapsedMs: number, truncated: boolean, body: Uint8Array, text(): string} } response
 */
export function judge(s, response) {
  const metrics = [metric('latency_ms', response.elapsedMs, 'ms')];
  const where = `GET ${s.url}`;
  if (response.status !== s.expectStatus) {
    return unhealthy(`${where} returned ${response.status}, expected ${s.expectStatus}`, metrics);
  }
  if (s.expectText !== null && !response.text().includes(s.expectText)) {
    const cut = response.truncated ? ` (of its first ${response.body.length} bytes)` : '';
    return unhealthy(
      `${where} returned ${response.status} but the body${cut} does not contain ${JSON.stringify(s.expectText)}`,
      metrics,
    );
  }
  const found = s.expectText !== null ? ` with ${JSON.stringify(s.expectText)}` : '';
  return healthy(`${where} returned ${response.status}${found}`, metrics);
}

/** The exported check (jco looks for this name: the `check-plugin` interface). */
export const checkPlugin = defineCheck({
  name: '{{name}}',
  version: VERSION,
  summary: 'GETs a URL and checks its status and, optionally, that its body contains a text.',
  capabilities: ['http'],
  validate: (cfg) => [need.http(settings(cfg).url)],
  check(cfg) {
    const s = settings(cfg);
    let response;
    try {
      response = http.get(s.url);
    } catch (e) {
      if (e instanceof HostError) return unhealthy(`GET ${s.url}: ${e.message}`);
      throw e;
    }
    return judge(s, response);
  },
});
