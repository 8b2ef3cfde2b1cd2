/**
 * hmrt-plugin.js: helpers for writing hmrt plugins in JavaScript.
 *
 * An hmrt plugin is a WebAssembly component built from `app.js` by jco (`./build.sh`) against
 * the contract in `wit/plugin.wit`. jco maps the contract onto plain JavaScript: records are
 * objects with camelCase fields, enums are strings (`"healthy"`), variants are `{ tag, val }`,
 * `option<T>` is the value or `undefined`, `list<u8>` is a `Uint8Array`, and a function returning
 * `result<T, E>` returns T or throws an error whose `payload` is E. This module sits between that
 * and your code:
 *
 * - `config(task)`: the task's `config` table with typed getters whose errors name the key, such
 *   as `cfg.string("url")` or `cfg.integer("expect_status", 200)`.
 * - `healthy`, `degraded`, `unhealthy`, `unknown`, `metric`: a check's result.
 * - `need.http(url)`, `need.exec(program)`, ...: what `validate()` says a config would touch.
 * - `http.get`, `http.post`, `http.postJson`, `http.request`, `exec.run`, `scratch`, `log`: the
 *   capabilities; a call the host refuses or cannot finish throws `HostError` (`kind`, `text`).
 *   `hostCall(fn, ...args)` does the same for any other capability function you import from
 *   `hmrt:plugin/...`.
 * - `defineCheck({...})` and `defineAction({...})`: the object app.js exports. An exception
 *   thrown in `check()` becomes an `unknown` result, in `validate()` or `run()` an error, each
 *   with a one-line reason: a plugin never traps over a bug.
 *
 * The component runs on QuickJS: there is no `console`, `TextEncoder`, `TextDecoder`, `URL` or
 * `fetch` in it. Use `log`, `utf8Encode`/`utf8Decode` and `http` from here instead (when
 * `console` is missing, this module defines one that writes to hmrt's log).
 *
 * Under plain node (the unit tests) the `hmrt:` imports are served by `hmrt-mock.js`.
 *
 * @module hmrt-plugin
 */

import { send as httpSend } from 'hmrt:plugin/http@0.3.0';
import { run as execRun } from 'hmrt:plugin/exec@0.3.0';
import * as scratchApi from 'hmrt:plugin/scratch@0.3.0';
import { write as logWrite } from 'hmrt:plugin/log@0.3.0';

/**
 * How long an HTTP request or a program may take unless told, in milliseconds. The host caps
 * every call at the time left for the task's call, so this is only an upper bound.
 */
export const DEFAULT_TIMEOUT_MS = 30000;

// --- text -------------------------------------------------------------------------------------

/**
 * `text` as UTF-8 bytes (QuickJS has no TextEncoder).
 * @param {string} text
 * @returns {Uint8Array}
 */
export function utf8Encode(text) {
  const s = String(text);
  const out = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // a lone surrogate
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

/**
 * UTF-8 `bytes` as text; malformed sequences become U+FFFD (QuickJS has no TextDecoder).
 * @param {Uint8Array|number[]} bytes
 * @returns {string}
 */
export function utf8Decode(bytes) {
  const b = bytes || [];
  let out = '';
  let chunk = [];
  const flush = () => {
    out += String.fromCharCode.apply(null, chunk);
    chunk = [];
  };
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    let cp = 0xfffd;
    let n = 1;
    if (c < 0x80) cp = c;
    else if (c >= 0xc2 && c < 0xe0 && (b[i + 1] & 0xc0) === 0x80) {
      cp = ((c & 31) << 6) | (b[i + 1] & 63);
      n = 2;
    } else if (c >= 0xe0 && c < 0xf0 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80) {
      const v = ((c & 15) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63);
      if (v >= 0x800 && (v < 0xd800 || v > 0xdfff)) cp = v;
      n = 3;
    } else if (c >= 0xf0 && c < 0xf5 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80
      && (b[i + 3] & 0xc0) === 0x80) {
      const v = ((c & 7) << 18) | ((b[i + 1] & 63) << 12) | ((b[i + 2] & 63) << 6) | (b[i + 3] & 63);
      if (v >= 0x10000 && v <= 0x10ffff) cp = v;
      n = 4;
    }
    if (cp > 0xffff) {
      cp -= 0x10000;
      chunk.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 1023));
    } else chunk.push(cp);
    if (chunk.length > 4096) flush();
    i += n;
  }
  flush();
  return out;
}

// `value` as text, never throwing (a value whose conversion throws is named instead).
function safeString(value) {
  try {
    return String(value);
  } catch (e) {
    return `<${typeof value} that cannot be shown>`;
  }
}

/**
 * `text` as one line (whitespace runs become one space), cut at `cap` characters.
 * @param {unknown} text
 * @param {number} [cap=500]
 * @returns {string}
 */
export function oneLine(text, cap = 500) {
  const s = safeString(text).replace(/\s+/g, ' ').trim();
  return s.length <= cap ? s : s.slice(0, cap - 3) + '...';
}

// --- config -----------------------------------------------------------------------------------

/**
 * A config value that is missing or wrong; the message names the key. `validate()` turns it
 * into its error and `check()` into an `unknown` result ("invalid config: ..."), so a plugin can
 * simply let it propagate.
 */
export class ConfigError extends Error {
  /**
   * @param {string} message what is wrong, naming the key
   * @param {string} [key] the key, as messages name it
   */
  constructor(message, key) {
    super(message);
    this.name = 'ConfigError';
    /** The key (with the path of its table), if one is to blame. */
    this.key = key;
  }
}

const REQUIRED = Symbol('required');

function show(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    text = undefined;
  }
  if (typeof text !== 'string') text = safeString(value);
  return text.length <= 60 ? text : text.slice(0, 57) + '...';
}

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/;
const DURATION_MS = { ms: 1, s: 1000, m: 60000, h: 3600000 };

function range(what, min, max) {
  if (min !== undefined && max !== undefined) return `${what} from ${min} to ${max}`;
  return min !== undefined ? `${what} of at least ${min}` : `${what} of at most ${max}`;
}

/**
 * The task's `config` table (a JSON object) with typed getters.
 *
 * Each getter returns the value of `key` or, when the key is absent (or null) and a default is
 * given, the default (which may be `null`); without a default an absent key is an error. A value
 * of the wrong type is always an error. Every error is a `ConfigError` naming the key.
 */
export class Config {
  /**
   * @param {Record<string, unknown>} [data] the table
   * @param {string} [prefix] the path of this table in messages, such as `"auth."`
   */
  constructor(data = {}, prefix = '') {
    /** The table as it was given. */
    this.data = data;
    /** The path of this table in messages. */
    this.prefix = prefix;
  }

  /**
   * The config from its JSON text, as the host passes it in `task.config`.
   * @param {string} text
   * @returns {Config}
   */
  static parse(text) {
    let data = {};
    if (text && String(text).trim()) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        throw new ConfigError(`config is not JSON: ${e.message}`);
      }
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      throw new ConfigError(`config must be a table, not ${show(data)}`);
    }
    return new Config(data);
  }

  /**
   * `key` as messages name it (with the path of the table it is in).
   * @param {string} key
   * @returns {string}
   */
  name(key) {
    return this.prefix + key;
  }

  /**
   * Whether `key` is set (and not null).
   * @param {string} key
   * @returns {boolean}
   */
  has(key) {
    return Object.prototype.hasOwnProperty.call(this.data, key) && this.data[key] !== null;
  }

  /** @private */
  get_(key, def) {
    if (this.has(key)) return [true, this.data[key]];
    if (def === REQUIRED) {
      throw new ConfigError(`missing required config key \`${this.name(key)}\``, this.name(key));
    }
    return [false, def];
  }

  /** @private */
  wrong(key, what) {
    return new ConfigError(`\`${this.name(key)}\` must be ${what}, not ${show(this.data[key])}`,
      this.name(key));
  }

  /**
   * Refuses keys other than `known` (a typo is an error, not silence).
   * @param {...string} known
   * @returns {Config} this
   */
  only(...known) {
    for (const key of Object.keys(this.data)) {
      if (!known.includes(key)) {
        throw new ConfigError(`unknown config key \`${this.name(key)}\` (known keys: ${known.join(', ') || 'none'})`,
          this.name(key));
      }
    }
    return this;
  }

  /**
   * A string: non-empty unless `allowEmpty`; one of `choices` when given.
   * @param {string} key
   * @param {string|null} [def] the value when `key` is absent; without it, `key` is required
   * @param { {allowEmpty?: boolean, choices?: string[]} } [opts]
   * @returns {string|null}
   */
  string(key, def = REQUIRED, opts = {}) {
    const [found, value] = this.get_(key, def);
    if (!found) return value;
    if (typeof value !== 'string' || (!value && !opts.allowEmpty)) {
      throw this.wrong(key, opts.allowEmpty ? 'a string' : 'a non-empty string');
    }
    if (opts.choices && !opts.choices.includes(value)) {
      throw this.wrong(key, 'one of ' + opts.choices.map(show).join(', '));
    }
    return value;
  }

  /**
   * An integer, within `min` and `max` (both included) when given.
   * @param {string} key
   * @param {number|null} [def] the value when `key` is absent; without it, `key` is required
   * @param { {min?: number, max?: number} } [opts]
   * @returns {number|null}
   */
  integer(key, def = REQUIRED, opts = {}) {
    const [found, value] = this.get_(key, def);
    if (!found) return value;
    if (typeof value !== 'number' || !Number.isInteger(value)) throw this.wrong(key, 'an integer');
    if ((opts.min !== undefined && value < opts.min) || (opts.max !== undefined && value > opts.max)) {
      throw this.wrong(key, range('an integer', opts.min, opts.max));
    }
    return value;
  }

  /**
   * A finite number, within `min` and `max` (both included) when given.
   * @param {string} key
   * @param {number|null} [def] the value when `key` is absent; without it, `key` is required
   * @param { {min?: number, max?: number} } [opts]
   * @returns {number|null}
   */
  number(key, def = REQUIRED, opts = {}) {
    const [found, value] = this.get_(key, def);
    if (!found) return value;
    if (typeof value !== 'number' || !Number.isFinite(value)) throw this.wrong(key, 'a number');
    if ((opts.min !== undefined && value < opts.min) || (opts.max !== undefined && value > opts.max)) {
      throw this.wrong(key, range('a number', opts.min, opts.max));
    }
    return value;
  }

  /**
   * `true` or `false`.
   * @param {string} key
   * @param {boolean|null} [def] the value when `key` is absent; without it, `key` is required
   * @returns {boolean|null}
   */
  boolean(key, def = REQUIRED) {
    const [found, value] = this.get_(key, def);
    if (found && typeof value !== 'boolean') throw this.wrong(key, 'true or false');
    return value;
  }

  /**
   * A list of non-empty strings.
   * @param {string} key
   * @param {string[]|null} [def] the value when `key` is absent; without it, `key` is required
   * @returns {string[]|null}
   */
  strings(key, def = REQUIRED) {
    const [found, value] = this.get_(key, def);
    if (!found) return value;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v)) {
      throw this.wrong(key, 'a list of non-empty strings');
    }
    return value.slice();
  }

  /**
   * An absolute URL with one of `schemes` (default http and https) and a host.
   * @param {string} key
   * @param {string|null} [def] the value when `key` is absent; without it, `key` is required
   * @param { {schemes?: string[]} } [opts]
   * @returns {string|null}
   */
  url(key, def = REQUIRED, opts = {}) {
    const [found, value] = this.get_(key, def);
    if (!found) return value;
    const schemes = opts.schemes || ['http', 'https'];
    const what = `an absolute ${schemes.join(' or ')} URL such as "http://127.0.0.1:8080/health"`;
    const m = typeof value === 'string'
      && /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(?:[^@/?#\s]*@)?(\[[0-9a-fA-F:.]+\]|[^:/?#\s\[\]]+)(?::(\d{1,5}))?(?:[/?#]\S*)?$/.exec(value);
    if (!m || !schemes.includes(m[1].toLowerCase()) || (m[3] !== undefined && Number(m[3]) > 65535)) {
      throw this.wrong(key, what);
    }
    return value;
  }

  /**
   * A humane duration ("250ms", "5s", "2m", "1h") in milliseconds (an integer).
   * @param {string} key
   * @param {number|null} [def] the value (in ms) when `key` is absent; without it, required
   * @returns {number|null}
   */
  durationMs(key, def = REQUIRED) {
    const [found, value] = this.get_(key, def);
    if (!found) return value;
    const m = typeof value === 'string' ? DURATION.exec(value) : null;
    if (!m) throw this.wrong(key, 'a duration such as "250ms", "5s" or "1m"');
    return Math.round(Number(m[1]) * DURATION_MS[m[2]]);
  }

  /**
   * A nested table, as a `Config` whose messages name `key.inner`.
   * @param {string} key
   * @param {Config|null} [def] the value when `key` is absent; without it, `key` is required
   * @returns {Config|null}
   */
  table(key, def = REQUIRED) {
    const [found, value] = this.get_(key, def);
    if (!found) return value;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw this.wrong(key, 'a table');
    return new Config(value, `${this.name(key)}.`);
  }
}

/**
 * The task's config table as a `Config`; a `ConfigError` when it is not a JSON object.
 * @param { {config: string} } task the task the host passed
 * @returns {Config}
 */
export function config(task) {
  return Config.parse(task.config);
}

// --- results ----------------------------------------------------------------------------------

/** The statuses a check may report. */
export const STATUSES = ['healthy', 'degraded', 'unhealthy', 'unknown'];

/**
 * A number the check measured.
 * @param {string} name a short snake_case name, such as `latency_ms`
 * @param {number|bigint} value
 * @param {string} [unit] such as `ms` or `bytes`; empty when the value has none
 * @returns { {name: string, value: number, unit: string} }
 */
export function metric(name, value, unit = '') {
  return { name: String(name), value: Number(value), unit: String(unit) };
}

// `metrics` as metric records; a bad one throws (a string) saying what is wrong.
function checkMetrics(metrics) {
  if (metrics === undefined || metrics === null) return [];
  if (!Array.isArray(metrics)) throw `metrics must be a list of metric(...), not ${show(metrics)}`;
  return metrics.map((m) => {
    if (!m || typeof m !== 'object') throw `a metric must be built with metric(...), not ${show(m)}`;
    if (typeof m.value !== 'number' && typeof m.value !== 'bigint') {
      throw `metric ${show(m.name)} must have a number value, not ${show(m.value)}`;
    }
    return metric(m.name, m.value, m.unit ?? '');
  });
}

// A check result whose every part lowers: a bad metric makes it `unknown`, saying what is wrong.
function result(status, message, metrics) {
  try {
    return { status, message: oneLine(message), metrics: checkMetrics(metrics) };
  } catch (e) {
    return { status: 'unknown', message: oneLine(`bad check result: ${typeof e === 'string' ? e : reason(e)}`), metrics: [] };
  }
}

/**
 * The service does what it should.
 * @param {string} message one line saying why
 * @param {Array<{name: string, value: number, unit: string}>} [metrics]
 */
export function healthy(message, metrics = []) {
  return result('healthy', message, metrics);
}

/**
 * The service works but something is off (slow, nearly full). Reported, never acted on.
 * @param {string} message one line saying why
 * @param {Array<{name: string, value: number, unit: string}>} [metrics]
 */
export function degraded(message, metrics = []) {
  return result('degraded', message, metrics);
}

/**
 * The service does not work. Counts towards the task's `failure_threshold`.
 * @param {string} message one line saying why
 * @param {Array<{name: string, value: number, unit: string}>} [metrics]
 */
export function unhealthy(message, metrics = []) {
  return result('unhealthy', message, metrics);
}

/**
 * The check could not tell (bad config, a failure of the check itself). Never acted on.
 * @param {string} message one line saying why
 * @param {Array<{name: string, value: number, unit: string}>} [metrics]
 */
export function unknown(message, metrics = []) {
  return result('unknown', message, metrics);
}

// --- needs (what validate() returns) ---------------------------------------------------------

/** The tags of the needs `validate()` may return (the `need` variant of the contract). */
export const NEED_TAGS = ['http', 'exec', 'supervisor', 'tcp', 'smtp', 'system', 'process', 'files', 'docker', 'systemd'];

const needOf = (tag) => (val) => ({ tag, val: String(val) });

// What validate() returned, checked: a list of needs (null or undefined is none). Anything else
// throws its error (a one-line string), saying what is wrong.
function checkNeeds(needs) {
  if (needs === undefined || needs === null) return [];
  if (!Array.isArray(needs)) {
    throw oneLine(`validate() returned ${show(needs)}, not a list of needs (return [need.http(url)] and the like)`);
  }
  return needs.map((n, i) => {
    if (!n || typeof n !== 'object' || !NEED_TAGS.includes(n.tag) || typeof n.val !== 'string') {
      throw oneLine(`validate() returned a list whose item ${i} is ${show(n)}, not a need `
        + '(build it with need.http(...) and the like)');
    }
    return { tag: n.tag, val: n.val };
  });
}

/**
 * What a config would touch, for `validate()`: `need.http(url)`, `need.exec(program)`,
 * `need.supervisor(program)`, `need.tcp("host:port")`, `need.smtp("host:port")`,
 * `need.system("cpu" | "memory" | "load" | "disk:/var" | "network:eth0")`,
 * `need.process("supervisor:web")`, `need.files("/abs/path")`, `need.docker(container)`,
 * `need.systemd("nginx.service")`. `hmrt validate` compares them with the task's grants.
 */
export const need = Object.freeze({
  http: needOf('http'),
  exec: needOf('exec'),
  supervisor: needOf('supervisor'),
  tcp: needOf('tcp'),
  smtp: needOf('smtp'),
  system: needOf('system'),
  process: needOf('process'),
  files: needOf('files'),
  docker: needOf('docker'),
  systemd: needOf('systemd'),
});

// --- capabilities -----------------------------------------------------------------------------

/**
 * A capability call that returned no result. `kind` is `"denied"` (the task's grants do not
 * cover it), `"invalid"` (a malformed call), `"timeout"` or `"failed"` (allowed, but it failed:
 * connection refused, ...); `text` is the host's explanation. `message` is "kind: text".
 */
export class HostError extends Error {
  /**
   * @param {'denied'|'invalid'|'timeout'|'failed'} kind
   * @param {string} [text]
   */
  constructor(kind, text = '') {
    super(text ? `${kind}: ${text}` : kind);
    this.name = 'HostError';
    /** `denied`, `invalid`, `timeout` or `failed`. */
    this.kind = kind;
    /** The host's explanation (empty for a timeout). */
    this.text = text;
  }

  /**
   * From the `host-error` variant jco hands over (`{ tag: "denied", val: "..." }`).
   * @param { {tag: string, val?: string} } payload
   * @returns {HostError}
   */
  static fromPayload(payload) {
    if (payload && typeof payload === 'object' && typeof payload.tag === 'string') {
      return new HostError(payload.tag, payload.val === undefined ? '' : String(payload.val));
    }
    return new HostError('failed', String(payload));
  }
}

/**
 * Calls a capability function imported from `hmrt:plugin/...` (such as `connect` from
 * `hmrt:plugin/tcp@0.3.0`), turning the `host-error` it throws into a `HostError`. The wrappers
 * below use it; use it for the rest.
 * @template T
 * @param {(...args: any[]) => T} fn
 * @param {...any} args
 * @returns {T}
 */
export function hostCall(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    if (e && typeof e === 'object' && 'payload' in e) throw HostError.fromPayload(e.payload);
    throw e;
  }
}

/**
 * An HTTP response, as `http.request` returns it.
 */
export class Response {
  /**
   * @param { {status: number, headers?: Array<[string, string]>, body?: Uint8Array,
   *   truncated?: boolean, elapsedUs?: number|bigint} } raw the host's response record
   */
  constructor(raw) {
    /** The status code. */
    this.status = raw.status;
    /** The headers, as (name, value) pairs. */
    this.headers = raw.headers || [];
    /** The body (cut at the host's cap: see `truncated`). */
    this.body = raw.body || new Uint8Array(0);
    /** Whether the host cut the body at its cap. */
    this.truncated = Boolean(raw.truncated);
    /** From sending the request to the end of the body, in milliseconds. */
    this.elapsedMs = Number(raw.elapsedUs || 0) / 1000;
  }

  /** Whether the status is 2xx. */
  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  /** The body as text (UTF-8; malformed bytes become U+FFFD). */
  text() {
    return utf8Decode(this.body);
  }

  /** The body parsed as JSON (throws a SyntaxError when it is not). */
  json() {
    return JSON.parse(this.text());
  }

  /**
   * The first header called `name` (any case), else `def`.
   * @param {string} name
   * @param {string} [def]
   * @returns {string|undefined}
   */
  header(name, def = undefined) {
    const lower = name.toLowerCase();
    const found = this.headers.find(([k]) => k.toLowerCase() === lower);
    return found ? found[1] : def;
  }
}

function pairs(headers) {
  if (!headers) return [];
  if (Array.isArray(headers)) return headers.map(([k, v]) => [String(k), String(v)]);
  return Object.keys(headers).map((k) => [k, String(headers[k])]);
}

function bytes(body) {
  if (body === undefined || body === null) return undefined;
  return typeof body === 'string' ? utf8Encode(body) : body;
}

/**
 * Outbound HTTP through the host, to the origins the task grants. Any status is a `Response`;
 * a request the grants do not cover, a refused connection or a timeout throws `HostError`.
 * `headers` is an object or (name, value) pairs; `timeoutMs` defaults to `DEFAULT_TIMEOUT_MS`.
 */
export const http = Object.freeze({
  /**
   * Sends a request.
   * @param {string} method such as "GET"
   * @param {string} url an absolute http or https URL
   * @param { {headers?: Record<string, string>|Array<[string, string]>, body?: string|Uint8Array,
   *   timeoutMs?: number} } [opts]
   * @returns {Response}
   */
  request(method, url, opts = {}) {
    const raw = hostCall(httpSend, {
      method,
      url,
      headers: pairs(opts.headers),
      body: bytes(opts.body),
      timeoutMs: Math.max(0, Math.round(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS)),
    });
    return new Response(raw);
  },
  /**
   * GETs `url`.
   * @param {string} url
   * @param { {headers?: Record<string, string>|Array<[string, string]>, timeoutMs?: number} } [opts]
   * @returns {Response}
   */
  get(url, opts = {}) {
    return http.request('GET', url, opts);
  },
  /**
   * POSTs `body` to `url` with `contentType` (default `text/plain; charset=utf-8`).
   * @param {string} url
   * @param {string|Uint8Array} body
   * @param { {contentType?: string, headers?: Record<string, string>|Array<[string, string]>,
   *   timeoutMs?: number} } [opts]
   * @returns {Response}
   */
  post(url, body, opts = {}) {
    const headers = [['content-type', opts.contentType || 'text/plain; charset=utf-8'], ...pairs(opts.headers)];
    return http.request('POST', url, { ...opts, headers, body });
  },
  /**
   * POSTs `value` as JSON to `url`.
   * @param {string} url
   * @param {unknown} value
   * @param { {headers?: Record<string, string>|Array<[string, string]>, timeoutMs?: number} } [opts]
   * @returns {Response}
   */
  postJson(url, value, opts = {}) {
    return http.post(url, JSON.stringify(value), { ...opts, contentType: 'application/json' });
  },
});

/**
 * Running a program the task grants (never through a shell).
 */
export const exec = Object.freeze({
  /**
   * Runs `program` with `args` and returns what it did: `exitCode` (undefined when a signal
   * ended it), `stdout`, `stderr` (Uint8Array; `utf8Decode` them). A non-zero exit is an output,
   * not an error.
   * @param {string} program as the task's grants name it
   * @param {string[]} [args]
   * @param { {input?: string|Uint8Array, timeoutMs?: number} } [opts]
   * @returns { {exitCode?: number, stdout: Uint8Array, stderr: Uint8Array} }
   */
  run(program, args = [], opts = {}) {
    return hostCall(execRun, {
      program,
      args: args.map(String),
      timeoutMs: Math.max(0, Math.round(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS)),
      input: bytes(opts.input),
    });
  },
});

/**
 * A small key-value store kept for the task between calls (64 KiB in all), to compute rates and
 * deltas. Values are bytes; `getText`/`setText` and `getJson`/`setJson` convert.
 */
export const scratch = Object.freeze({
  /** @param {string} key @returns {Uint8Array|undefined} */
  get(key) {
    return hostCall(scratchApi.get, key);
  },
  /** @param {string} key @param {Uint8Array|string} value */
  set(key, value) {
    hostCall(scratchApi.set, key, bytes(value));
  },
  /** @param {string} key */
  remove(key) {
    hostCall(scratchApi.remove, key);
  },
  /** @param {string} key @returns {string|undefined} */
  getText(key) {
    const v = scratch.get(key);
    return v === undefined ? undefined : utf8Decode(v);
  },
  /** @param {string} key @param {string} value */
  setText(key, value) {
    scratch.set(key, String(value));
  },
  /** The value under `key` parsed as JSON, or undefined (also when it is not JSON). */
  getJson(key) {
    const t = scratch.getText(key);
    if (t === undefined) return undefined;
    try {
      return JSON.parse(t);
    } catch (e) {
      return undefined;
    }
  },
  /** @param {string} key @param {unknown} value */
  setJson(key, value) {
    scratch.set(key, JSON.stringify(value));
  },
});

/**
 * hmrt's log, tagged with the task's name: `log.debug(msg)`, `log.info`, `log.warn`,
 * `log.error`, `log.trace`. Long messages are cut by the host.
 */
export const log = Object.freeze({
  trace: (message) => logWrite('trace', String(message)),
  debug: (message) => logWrite('debug', String(message)),
  info: (message) => logWrite('info', String(message)),
  warn: (message) => logWrite('warn', String(message)),
  error: (message) => logWrite('error', String(message)),
});

if (typeof globalThis.console === 'undefined') {
  const line = (args) => args.map((a) => (typeof a === 'string' ? a : show(a))).join(' ');
  globalThis.console = {
    log: (...a) => log.info(line(a)),
    info: (...a) => log.info(line(a)),
    debug: (...a) => log.debug(line(a)),
    warn: (...a) => log.warn(line(a)),
    error: (...a) => log.error(line(a)),
  };
}

// --- exported plugins -------------------------------------------------------------------------

/**
 * One line saying what `error` is and, when its stack says so, where in the plugin's own code
 * it was thrown.
 * @param {unknown} error
 * @returns {string}
 */
export function reason(error) {
  try {
    if (!(error instanceof Error)) return oneLine(`thrown: ${typeof error === 'string' ? error : show(error)}`);
    const message = field(error, 'message');
    let head = message ? `${field(error, 'name')}: ${message}` : field(error, 'name');
    const stack = field(error, 'stack').split('\n');
    const own = stack.map((l) => l.trim()).filter((l) => l.startsWith('at ') && !l.includes('hmrt-plugin.js'));
    if (own.length) head += ` (${own[0]})`;
    return oneLine(head);
  } catch (e) {
    return 'an exception that cannot be shown';
  }
}

// `error[key]` as text ('' when absent), never throwing (a getter or a conversion may).
function field(error, key) {
  try {
    const value = error[key];
    return value === undefined || value === null ? '' : String(value);
  } catch (e) {
    return `<${key} that cannot be shown>`;
  }
}

function logBug(what, error) {
  try {
    if (error instanceof HostError || error instanceof ConfigError) return;
    const head = error instanceof Error ? `${field(error, 'name')}: ${field(error, 'message')}` : show(error);
    const stack = error && typeof error.stack === 'string' ? error.stack : '';
    // V8's stack starts with the message, QuickJS's has only the frames
    log.error(`uncaught exception in ${what}: ${stack.startsWith(head) ? stack : `${head}\n${stack}`}`);
  } catch (e) {
    // logging must never turn a handled error into a trap
  }
}

/**
 * An action's way to fail with exactly this message (any other exception fails too, with a
 * one-line reason).
 */
export class ActionError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ActionError';
  }
}

/** The capabilities a plugin may declare (the `capability` enum of the contract). */
export const CAPABILITIES = ['http', 'exec', 'supervisor', 'tcp', 'smtp', 'system', 'process', 'files', 'docker', 'systemd'];

// describe() has no error: what is wrong in `spec` is left out and the summary says so instead.
function info(spec) {
  const problems = [];
  const text = (key, def, required) => {
    const value = spec[key];
    if (typeof value === 'string' && value) return oneLine(value);
    if ((value === undefined || value === null || value === '') && !required) return def;
    problems.push(`\`${key}\` must be a non-empty string, not ${show(value)}`);
    return def;
  };
  const name = text('name', 'unnamed', true);
  const version = text('version', '0.1.0', false);
  let summary = text('summary', '', false);
  const declared = spec.capabilities ?? [];
  const capabilities = [];
  if (!Array.isArray(declared)) {
    problems.push(`\`capabilities\` must be a list, not ${show(declared)}`);
  } else {
    for (const c of declared) {
      if (CAPABILITIES.includes(c)) capabilities.push(c);
      else problems.push(`${show(c)} is not a capability (known: ${CAPABILITIES.join(', ')})`);
    }
  }
  if (problems.length) {
    summary = oneLine(`invalid plugin info: ${problems.join('; ')}${summary ? ` (summary: ${summary})` : ''}`);
  }
  return { name, version, summary, capabilities };
}

function describeOf(spec) {
  return () => {
    try {
      return info(spec || {});
    } catch (e) {
      return { name: 'unnamed', version: '0.0.0', summary: oneLine(`invalid plugin info: ${reason(e)}`), capabilities: [] };
    }
  };
}

// jco makes a thrown string the `err` of a `result`; an Error object may trap instead.
function guardedValidate(fn) {
  return (task) => {
    let needs;
    try {
      needs = fn ? fn(config(task), task) : [];
    } catch (e) {
      throw e instanceof ConfigError ? oneLine(e.message) : reason(e);
    }
    return checkNeeds(needs);
  };
}

function checkResult(value) {
  if (!value || typeof value !== 'object' || !STATUSES.includes(value.status)) {
    return unknown(`check() returned ${show(value)}, not a result (return healthy(...), unhealthy(...) and the like)`);
  }
  return result(value.status, value.message ?? '', value.metrics);
}

/**
 * The object app.js exports as `checkPlugin` (the `check-plugin` interface).
 *
 * `validate(cfg, task)` returns what the config would touch (`[need.http(url)]`); a thrown
 * `ConfigError` becomes its error, naming the key. `check(cfg, task)` returns `healthy(...)` and
 * the like; a thrown `ConfigError` becomes `unknown("invalid config: ...")`, any other exception
 * `unknown(<one-line reason>)`. `cfg` is the task's config as a `Config`.
 *
 * @param { {name: string, version?: string, summary: string, capabilities?: string[],
 *   validate?: (cfg: Config, task: object) => Array<{tag: string, val: string}>,
 *   check: (cfg: Config, task: object) => object} } spec
 */
export function defineCheck(spec) {
  return {
    describe: describeOf(spec),
    validate: guardedValidate(spec.validate),
    check(task) {
      try {
        return checkResult(spec.check(config(task), task));
      } catch (e) {
        if (e instanceof ConfigError) return unknown(`invalid config: ${e.message}`);
        logBug('check()', e);
        return unknown(reason(e));
      }
    },
  };
}

/**
 * The object app.js exports as `actionPlugin` (the `action-plugin` interface).
 *
 * `validate(cfg, task)` as in `defineCheck`. `run(cfg, task, trigger)` returns a one-line
 * summary of what it did; throwing fails the action: `ActionError` with its message,
 * `ConfigError` with "invalid config: ...", anything else with a one-line reason. `trigger` is
 * `{ status, message, attempt }`.
 *
 * @param { {name: string, version?: string, summary: string, capabilities?: string[],
 *   validate?: (cfg: Config, task: object) => Array<{tag: string, val: string}>,
 *   run: (cfg: Config, task: object, trigger: {status: string, message: string, attempt: number}) => string} } spec
 */
export function defineAction(spec) {
  return {
    describe: describeOf(spec),
    validate: guardedValidate(spec.validate),
    run(task, trigger) {
      let summary;
      try {
        const value = spec.run(config(task), task, trigger);
        summary = value === undefined || value === null ? '' : String(value);
      } catch (e) {
        if (e instanceof ActionError) throw oneLine(e.message);
        if (e instanceof ConfigError) throw oneLine(`invalid config: ${e.message}`);
        logBug('run()', e);
        throw reason(e);
      }
      return oneLine(summary);
    },
  };
}
