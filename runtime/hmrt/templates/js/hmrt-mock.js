/**
 * hmrt-mock.js: lets plain node import app.js for unit tests (it is not part of the component).
 *
 * Importing this module registers a node loader hook that serves every `hmrt:plugin/...`
 * import with stand-ins calling `mock`. Import it first, then import app.js dynamically:
 *
 *     import { mock } from './hmrt-mock.js';
 *     const app = await import('./app.js');
 *     mock.http.send = (req) => mock.response({ status: 200, body: 'ok' });
 *
 * By default a capability call throws the host error `failed: no host here` (as `HostError`
 * through hmrt-plugin.js), `log.write` prints to stderr and `scratch` keeps values in memory.
 * `mock.reset()` restores those defaults.
 *
 * @module hmrt-mock
 */

import { register } from 'node:module';

/** The functions of each capability interface of the contract (wit/plugin.wit). */
const INTERFACES = {
  http: ['send'],
  exec: ['run'],
  supervisor: ['status', 'start', 'stop', 'restart'],
  tcp: ['connect', 'exchange'],
  smtp: ['send'],
  system: ['cpu', 'memory', 'load', 'disk', 'network'],
  process: ['stats'],
  files: ['stat', 'read', 'entries'],
  docker: ['inspect', 'stats', 'start', 'stop', 'restart'],
  systemd: ['unit', 'start', 'stop', 'restart'],
  scratch: ['get', 'set', 'remove'],
  log: ['write'],
  types: [],
};

/**
 * An error as jco throws it for a `result`'s `err`: its `payload` is the `host-error` variant.
 * @param {'denied'|'invalid'|'timeout'|'failed'} kind
 * @param {string} [text]
 */
function hostError(kind, text) {
  const e = new Error(`${kind}: ${text ?? ''}`);
  e.payload = text === undefined ? { tag: kind } : { tag: kind, val: text };
  return e;
}

const noHost = (iface, fn) => () => {
  throw hostError('failed', `no host here: hmrt:plugin/${iface}.${fn} is not mocked (set mock.${iface}.${fn})`);
};

function defaults() {
  const m = {};
  for (const [iface, fns] of Object.entries(INTERFACES)) {
    m[iface] = {};
    for (const fn of fns) m[iface][fn] = noHost(iface, fn);
  }
  const store = new Map();
  m.scratch.get = (key) => store.get(key);
  m.scratch.set = (key, value) => {
    store.set(key, value);
  };
  m.scratch.remove = (key) => {
    store.delete(key);
  };
  m.log.write = (level, message) => {
    process.stderr.write(`[${level}] ${message}\n`);
  };
  return m;
}

/**
 * The stand-ins: `mock.<interface>.<function>` (`mock.http.send`, `mock.exec.run`, ...), each
 * a function taking and returning what jco's bindings do.
 */
export const mock = {
  ...defaults(),
  /** Restores the defaults (no host; in-memory scratch; log to stderr). */
  reset() {
    Object.assign(mock, defaults());
  },
  /**
   * A raw `http.response` record, for `mock.http.send`.
   * @param { {status?: number, body?: string|Uint8Array, headers?: Array<[string, string]>,
   *   truncated?: boolean, elapsedMs?: number} } [r]
   */
  response(r = {}) {
    const body = typeof r.body === 'string' ? new Uint8Array(Buffer.from(r.body, 'utf8')) : (r.body ?? new Uint8Array(0));
    return {
      status: r.status ?? 200,
      headers: r.headers ?? [],
      body,
      truncated: r.truncated ?? false,
      elapsedUs: BigInt(Math.round((r.elapsedMs ?? 1) * 1000)),
    };
  },
  /** An error as the host's `host-error` arrives (throw it from a stand-in). */
  hostError,
};

globalThis.__hmrtMock = mock;

// The hook (it runs on node's loader thread): `hmrt:plugin/<interface>@<version>` becomes a
// module whose exports call `globalThis.__hmrtMock.<interface>.<function>` on the main thread.
const table = JSON.stringify(INTERFACES);
const hook = `
const INTERFACES = ${table};
export async function resolve(specifier, context, next) {
  const m = /^hmrt:plugin\\/([a-z-]+)@[0-9.]+$/.exec(specifier);
  if (!m) return next(specifier, context);
  const fns = INTERFACES[m[1]];
  if (!fns) throw new Error('hmrt-mock: ' + specifier + ' is not an interface of the contract');
  const src = fns.map((f) => 'export const ' + f + ' = (...a) => globalThis.__hmrtMock.' + m[1] + '.' + f + '(...a);').join('\\n');
  return { url: 'data:text/javascript,' + encodeURIComponent(src || 'export {};'), shortCircuit: true };
}
`;
register('data:text/javascript,' + encodeURIComponent(hook));
