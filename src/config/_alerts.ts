import { Section, describe, isMapping, joinPath } from "./_fields";
import { ALERT_EVENTS, ALERT_FORMATS, type AlertEvent, type AlertsConfig, type WebhookConfig } from "./types";

export const DEFAULT_ALERT_REPEAT_SEC = 900;

/**
 * `alerts: { repeat_sec, webhooks: [{ url, headers, format, events }] }`.
 * URLs and header values are never echoed: webhook URLs routinely embed their secret.
 */
export function readAlerts(s: Section): AlertsConfig {
  const alerts: AlertsConfig = {
    repeatSec: s.seconds("repeat_sec", { default: DEFAULT_ALERT_REPEAT_SEC }),
    webhooks: readWebhooks(s),
  };
  s.done();
  return alerts;
}

function readWebhooks(s: Section): WebhookConfig[] {
  const e = s.entry("webhooks");
  if (!e) {
    s.issues.add(
      s.keyPath("webhooks"),
      "required — a list of webhooks, e.g. - { url: https://hooks.example.com/keypool, format: json }",
    );
    return [];
  }
  if (!Array.isArray(e.value)) {
    s.issues.add(e.path, `expected a list of webhooks, got ${describe(e.value)} — start each one with "- url: …"`);
    return [];
  }
  const hooks: WebhookConfig[] = [];
  e.value.forEach((item, index) => {
    const path = joinPath(e.path, String(index));
    if (!isMapping(item)) {
      s.issues.add(path, `expected a mapping with url (and optional format, headers, events), got ${describe(item)}`);
      return;
    }
    const hook = readWebhook(new Section(item, path, s.issues));
    if (hook) hooks.push(hook);
  });
  return hooks;
}

function readWebhook(s: Section): WebhookConfig | undefined {
  if (!s.has("url"))
    s.issues.add(s.keyPath("url"), "required — where to POST alerts, e.g. https://hooks.slack.com/services/…");
  const url = s.url("url", ["http", "https"], "https://hooks.example.com/keypool");
  const hook = {
    url: url ?? "",
    headers: s.stringMap("headers"),
    format: s.oneOf("format", ALERT_FORMATS, "json"),
    events: readEvents(s),
  };
  s.done();
  return url === undefined ? undefined : hook;
}

function readEvents(s: Section): AlertEvent[] | undefined {
  const events = s.stringList("events");
  if (events === undefined) return undefined;
  const known = new Set<string>(ALERT_EVENTS);
  const bad = events.filter((name) => !known.has(name));
  for (const name of bad)
    s.issues.add(s.keyPath("events"), `${describe(name)} is not one of ${ALERT_EVENTS.join(", ")}`);
  return bad.length === 0 ? (events as AlertEvent[]) : undefined;
}
