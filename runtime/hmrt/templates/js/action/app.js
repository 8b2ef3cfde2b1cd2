/**
 * {{name}}: an hmrt action plugin.
 *
 * When its task turns unhealthy it POSTs a JSON message to `url`: the task's name and program,
 * its status, the check's message and the attempt within the restart window. A 2xx answer is
 * success; anything else fails the action.
 *
 *     on_failure = { action = "{{name}}", config = { url = "http://127.0.0.1:9000/notify" },
 *                    grants = { http = ["http://127.0.0.1:9000"] } }
 */

import { ActionError, defineAction, http, HostError, need } from './hmrt-plugin.js';

export const VERSION = '0.1.0';

/**
 * Reads the config; a ConfigError names the key that is wrong.
 * @param {import('./hmrt-plugin.js').Config} cfg
 */
export function settings(cfg) {
  cfg.only('url');
  return { url: cfg.url('url') };
}

/**
 * The message posted: pure, so app.test.js tests it without wasm or a host.
 * @param { {name: string, program?: string} } task
 * @param { {status: string, message: string, attempt: number} } trigger
 */
export function message(task, trigger) {
  return {
    task: task.name,
    program: task.program ?? null,
    status: trigger.status,
    message: trigger.message,
    attempt: trigger.attempt,
  };
}

/** The exported action (jco looks for this name: the `action-plugin` interface). */
export const actionPlugin = defineAction({
  name: '{{name}}',
  version: VERSION,
  summary: 'POSTs a JSON message about the failing task to a URL.',
  capabilities: ['http'],
  validate: (cfg) => [need.http(settings(cfg).url)],
  run(cfg, task, trigger) {
    const { url } = settings(cfg);
    let response;
    try {
      response = http.postJson(url, message(task, trigger));
    } catch (e) {
      if (e instanceof HostError) throw new ActionError(`POST ${url}: ${e.message}`);
      throw e;
    }
    if (!response.ok) throw new ActionError(`POST ${url} returned ${response.status}`);
    return `posted to ${url} (${response.status})`;
  },
});
