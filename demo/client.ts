// The demo's client, run inside the client namespace: it moves leadership by writing the
// leader key to etcd (as Patroni would) and, with the same clock, probes the VIP over TCP
// every few milliseconds to see which node answers. One JSON line per event on stdout.
//   node client.js <etcd endpoint> <key> <vip> <port> <value> [<value> ...]
import { connect } from 'node:net';
import { Etcd3 } from 'etcd3';

const [endpoint, key, vip, port, ...values] = process.argv.slice(2);
if (!endpoint || !key || !vip || !port || values.length === 0) {
  console.error('usage: client.js <etcd endpoint> <key> <vip> <port> <value>...');
  process.exit(2);
}

/** How often the client tries the VIP: fine enough to time a move in milliseconds. */
const PROBE_EVERY_MS = 5;
/** A probe that gets no answer in this long counts as "nobody answered". */
const PROBE_TIMEOUT_MS = 200;
/** Give each move this long to be reached before declaring it failed. */
const MOVE_DEADLINE_MS = 10_000;
/** Pause between moves so the timeline is readable. */
const PAUSE_MS = 1500;

const emit = (event: Record<string, unknown>) => process.stdout.write(JSON.stringify({ t: performance.timeOrigin + performance.now(), ...event }) + '\n');

/** Connects to the VIP and reads the name the node's "database" answers with. */
function probe(): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: vip, port: Number(port) });
    let data = '';
    const done = (v: string | null) => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(null));
    socket.on('data', (d) => { data += d.toString(); });
    socket.on('end', () => done(data.trim() || null));
    socket.on('error', () => done(null));
  });
}

/**
 * Probes start every PROBE_EVERY_MS whether or not earlier ones answered: a probe sent while
 * the client still had the old MAC for the VIP is simply lost, and must not delay the next.
 */
function waitUntilReached(name: string): Promise<number | null> {
  return new Promise((resolve) => {
    const deadline = setTimeout(() => finish(null), MOVE_DEADLINE_MS);
    const timer = setInterval(() => {
      void probe().then((who) => {
        if (who === name) finish(performance.timeOrigin + performance.now());
      });
    }, PROBE_EVERY_MS);
    let finished = false;
    function finish(at: number | null) {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      clearTimeout(deadline);
      resolve(at);
    }
  });
}

const etcd = new Etcd3({ hosts: endpoint });
try {
  for (const value of values) {
    const t = performance.timeOrigin + performance.now();
    await etcd.put(key).value(value);
    emit({ event: 'key', value, at: t });
    const reached = await waitUntilReached(value);
    emit({ event: 'reached', value, at: reached, ms: reached === null ? null : reached - t });
    await new Promise((r) => setTimeout(r, PAUSE_MS));
  }
  emit({ event: 'done' });
} catch (e) {
  emit({ event: 'error', message: (e as Error).message });
  process.exitCode = 1;
} finally {
  etcd.close();
}
