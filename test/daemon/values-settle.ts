// Waiting until a daemon has acted on one particular DCS answer: its revision shows in /status,
// then no reconcile pass is running. The view is applied in the same tick that /status learns
// it, and that tick schedules a pass (busySince is set synchronously), so once /healthz says no
// pass is running, the pass that saw this answer, and any its action triggered, is done.
import { getJson, statusUntil, type StatusJson } from '../ops-daemon/scrape.js';

export async function settledAt(host: string, revision: string, timeoutMs = 10_000): Promise<{ status: StatusJson; body: string }> {
  await statusUntil(host, `revision ${revision} in /status`, (s) => s.leader?.revision === revision, timeoutMs);
  const start = performance.now();
  for (;;) {
    const h = await getJson<{ detail: { passRunningMs: number | null } }>(host, '/healthz');
    if (h.json.detail.passRunningMs === null) break;
    if (performance.now() - start > timeoutMs) throw new Error(`a reconcile pass kept running: ${h.body}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const { json, body } = await getJson<StatusJson>(host, '/status');
  if (json.leader?.revision !== revision) throw new Error(`/status moved past revision ${revision}: ${json.leader?.revision}`);
  return { status: json, body };
}
