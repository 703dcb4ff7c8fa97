// The failover bench's bed: a LAN of network namespaces (bridge br0 in a switch namespace with
// 203.0.113.1; n1, n2 and a client on 203.0.113.11–13; documentation addresses only), one etcd
// 3.4 in the switch namespace with the v2 API on, an observer process inside n1, n2 and the
// client (bench/failover-observer.ts) that stamps every VIP add/del and every neighbour-table
// change of the client for the VIPs, and this daemon started on n1 and n2.
// Everything is removed on success, failure and Ctrl-C (test/harness/netns.ts and etcd.ts handle
// SIGINT/SIGTERM and exit; see the prependListener calls below for why this process first
// leaves the switch namespace).
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Daemon } from '../test/harness/daemon.js';
import { enterNetns, leaveNetns } from '../test/harness/enter-netns.js';
import { startEtcd, type EtcdServer } from '../test/harness/etcd.js';
import { createLan, type Lan, type LanHost, type Netns } from '../test/harness/netns.js';
import type { Change, NeighChange, Node } from './failover-move.js';
import { ms, stats } from './stats.js';

export const SW_IP = '203.0.113.1';
/** The VIP of the single-VIP rows, and the first entry's of the multi-entry rows. */
export const VIP = '203.0.113.100';
export const PREFIX = 24;
export const KEY = '/service/bench/leader';
export const NODES: Node[] = ['n1', 'n2'];
/** The client sends a UDP probe to each VIP of the running row this often. */
export const PROBE_MS = 10;

/** The addresses of `count` entries: 203.0.113.100 upwards. */
export function vipAddresses(count: number): string[] {
  if (!Number.isInteger(count) || count < 1 || count > 100) throw new Error(`entries: ${count} is not within 1–100`);
  return Array.from({ length: count }, (_, i) => `203.0.113.${100 + i}`);
}

// The harness's SIGINT/SIGTERM/exit handlers SIGKILL every process inside each namespace before
// deleting it; this process's main thread sits in the switch namespace (enterNetns), so it would
// kill itself first and leave the namespaces behind. Step out before they run.
process.prependListener('SIGINT', () => leaveNetns());
process.prependListener('SIGTERM', () => leaveNetns());
process.prependListener('exit', () => leaveNetns());

export const now = (): number => performance.timeOrigin + performance.now();
export const sleep = (msec: number): Promise<void> => new Promise((r) => setTimeout(r, msec));

const OBSERVER = fileURLToPath(new URL('./failover-observer.js', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Observers

const bus = new EventEmitter();
bus.setMaxListeners(100);

interface ObserverLine { k: string; t: number; vip?: string; op?: string; present?: boolean; lladdr?: string; state?: string; why?: string }

interface VipState {
  present: boolean;
  /** The client's neighbour entry for the VIP ('' = none or unresolved). */
  lladdr: string;
  changes: Change[];
  neigh: NeighChange[];
}

/** The bench's side of one observer process: what it reported, per VIP. */
export class Observer {
  readonly child: ChildProcess;
  readonly warnings: string[] = [];
  private readonly vips = new Map<string, VipState>();
  private readonly unseen: Set<string>;
  private stderr = '';
  private readyResolve!: () => void;
  /** Resolves once the observer reported its starting state (every VIP's, in addr mode). */
  readonly ready = new Promise<void>((r) => { this.readyResolve = r; });
  private syncWaiters: Array<(t: number) => void> = [];

  constructor(readonly label: string, ns: Netns, mode: 'addr' | 'client', vips: readonly string[]) {
    for (const v of vips) this.vips.set(v, { present: false, lladdr: '', changes: [], neigh: [] });
    this.unseen = new Set(mode === 'addr' ? vips : []);
    const arg = mode === 'addr' ? String(PREFIX) : String(PROBE_MS);
    this.child = ns.spawn(process.execPath, [OBSERVER, mode, 'eth0', vips.join(','), arg], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => this.onLine(l));
    this.child.stderr!.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-2000); });
    this.child.once('exit', (code, sig) => {
      this.warnings.push(`observer ${label} exited (${code ?? sig}) ${this.stderr.trim()}`);
      bus.emit('change');
    });
  }

  private of(vip: string | undefined): VipState | undefined {
    return this.vips.get(vip ?? VIP);
  }

  /** Whether the VIP is on this node now. */
  has(vip = VIP): boolean {
    return this.of(vip)?.present ?? false;
  }

  /** The client's neighbour entry for the VIP now. */
  lladdr(vip = VIP): string {
    return this.of(vip)?.lladdr ?? '';
  }

  changes(vip = VIP): Change[] {
    return this.of(vip)?.changes ?? [];
  }

  neigh(vip = VIP): NeighChange[] {
    return this.of(vip)?.neigh ?? [];
  }

  /** Client mode: probe exactly these VIPs from now on. */
  probe(vips: readonly string[]): void {
    this.child.stdin!.write(`probe ${vips.join(',')}\n`);
  }

  private setPresent(s: VipState, t: number, p: boolean): void {
    if (p !== s.present) s.changes.push({ t, present: p });
    s.present = p;
  }

  private onLine(line: string): void {
    let o: ObserverLine;
    try { o = JSON.parse(line) as ObserverLine; } catch { return; }
    const s = this.of(o.vip);
    switch (o.k) {
      case 'state':
      case 'resync':
        if (o.k === 'resync') this.warnings.push(`${this.label}: address monitor resync at ${o.t}`);
        if (s && o.present !== undefined) this.setPresent(s, o.t, o.present);
        this.unseen.delete(o.vip ?? VIP);
        if (this.unseen.size === 0) this.readyResolve();
        break;
      case 'addr':
        if (s) this.setPresent(s, o.t, o.op === 'add');
        break;
      case 'neigh': {
        if (!s) break;
        const ll = o.op === 'del' ? '' : o.lladdr ?? '';
        s.lladdr = ll;
        s.neigh.push({ t: o.t, lladdr: ll, state: o.state ?? '' });
        break;
      }
      case 'lost':
        this.warnings.push(`${this.label}: neighbour events lost (${o.why})`);
        break;
      case 'sync':
        this.syncWaiters.shift()?.(o.t);
        break;
    }
    bus.emit('change');
  }

  /** One clock round trip: the observer's stamp must fall between send and receive. */
  async sync(): Promise<{ send: number; obs: number; recv: number }> {
    const p = new Promise<number>((r) => this.syncWaiters.push(r));
    const send = now();
    this.child.stdin!.write('sync\n');
    const obs = await p;
    return { send, obs, recv: now() };
  }

  failed(): string | null {
    return this.child.exitCode !== null || this.child.signalCode !== null ? this.warnings.join('; ') : null;
  }
}

/** Resolves true as soon as `pred` holds (checked on every observer line), false after `timeoutMs`. */
export function waitFor(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  if (pred()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onChange = (): void => {
      if (!pred()) return;
      finish(true);
    };
    const finish = (v: boolean): void => {
      clearTimeout(timer);
      bus.off('change', onChange);
      resolve(v);
    };
    const timer = setTimeout(() => finish(pred()), timeoutMs);
    bus.on('change', onChange);
  });
}

// ---------------------------------------------------------------------------------------------
// The bed

export interface Bed {
  lan: Lan;
  ns: Record<Node | 'client', Netns>;
  mac: Record<Node, string>;
  etcd: EtcdServer;
  obs: Record<Node, Observer>;
  client: Observer;
  /** Extra flags for this daemon (--our-args). */
  ourArgs: string[];
  /** The clock check's result, one line for the report's header. */
  clockCheck: string;
  observers(): Observer[];
  dispose(): Promise<void>;
}

/**
 * Builds the LAN, starts etcd and the observers (watching `vips`), and checks that every
 * observer's clock agrees with this process's.
 */
export async function openBed(opts: { vips: readonly string[]; ourArgs: string[] }): Promise<Bed> {
  const lan = createLan(3, ['n1', 'n2', 'client']);
  let etcd: EtcdServer | undefined;
  let observers: Observer[] = [];
  const dispose = async (): Promise<void> => {
    await etcd?.dispose();
    leaveNetns();
    lan.dispose();
  };
  try {
    lan.sw.ip('addr', 'add', `${SW_IP}/24`, 'dev', 'br0');
    enterNetns(lan.sw);
    etcd = await startEtcd({ host: SW_IP, enableV2: true });
    const [h1, h2, hc] = lan.hosts as [LanHost, LanHost, LanHost];
    const obs = {
      n1: new Observer('n1', h1.ns, 'addr', opts.vips),
      n2: new Observer('n2', h2.ns, 'addr', opts.vips),
    };
    const client = new Observer('client', hc.ns, 'client', opts.vips);
    observers = [obs.n1, obs.n2, client];
    let readyTimer: NodeJS.Timeout | undefined;
    const readyOrTimeout = await Promise.race([
      Promise.all(observers.map((o) => o.ready)).then(() => true),
      new Promise<boolean>((r) => { readyTimer = setTimeout(() => r(false), 15_000); }),
    ]);
    clearTimeout(readyTimer);
    if (!readyOrTimeout) {
      throw new Error(`observers did not start: ${observers.map((o) => o.warnings.join('; ')).join(' | ')}`);
    }
    // Clock check: each observer's stamp must lie between the bench's send and receive.
    const syncs: Array<{ send: number; obs: number; recv: number }> = [];
    for (let i = 0; i < 5; i++) for (const o of observers) syncs.push(await o.sync());
    const outside = Math.max(0, ...syncs.map((s) => Math.max(s.send - s.obs, s.obs - s.recv)));
    const rtt = stats(syncs.map((s) => s.recv - s.send))!;
    const clockCheck = `clock check: ${syncs.filter((s) => s.obs >= s.send && s.obs <= s.recv).length}/${syncs.length} observer stamps fell inside the bench's send→receive window (round trip median ${ms(rtt.median)} ms${outside > 0 ? `, worst ${outside.toFixed(3)} ms outside` : ''})`;
    const all = observers;
    return {
      lan,
      ns: { n1: h1.ns, n2: h2.ns, client: hc.ns },
      mac: { n1: h1.mac, n2: h2.mac },
      etcd,
      obs,
      client,
      ourArgs: opts.ourArgs,
      clockCheck,
      observers: () => all,
      dispose,
    };
  } catch (e) {
    await dispose();
    throw e;
  }
}

/** Removes the VIPs a killed daemon left behind, so the next row starts from an empty LAN. */
export async function removeVips(bed: Bed, vips: readonly string[]): Promise<void> {
  for (const n of NODES) {
    for (const v of vips) {
      if (bed.obs[n].has(v)) {
        try { bed.ns[n].ip('addr', 'del', `${v}/${PREFIX}`, 'dev', 'eth0'); } catch { /* gone meanwhile */ }
      }
    }
  }
  await waitFor(() => vips.every((v) => !bed.obs.n1.has(v) && !bed.obs.n2.has(v)), 5000);
}

// ---------------------------------------------------------------------------------------------
// Daemons

/** A daemon of a row, ours or the baseline. */
export interface Proc { node: Node; pid: number; kill(): Promise<void>; transcript(): string }

function ourDaemon(bed: Bed, node: Node, args: string[]): { proc: Proc; ready: Promise<unknown> } {
  const d = new Daemon({ ns: bed.ns[node], args });
  return {
    proc: { node, pid: d.pid, kill: () => d.kill(), transcript: () => d.transcript() },
    ready: d.waitReady(),
  };
}

/** This daemon's flags for the single VIP of the DCS rows. */
export const singleVipArgs = (): string[] => ['--ip', VIP, '--netmask', String(PREFIX), '--interface', 'eth0'];

/** Starts this daemon on n1, then on n2 `staggerMs` later, each with `args(node)` and --our-args; resolves once both are ready. */
export async function startOurs(bed: Bed, staggerMs: number, args: (n: Node) => string[]): Promise<Proc[]> {
  const started = [ourDaemon(bed, 'n1', [...args('n1'), ...bed.ourArgs])];
  await sleep(staggerMs);
  started.push(ourDaemon(bed, 'n2', [...args('n2'), ...bed.ourArgs]));
  try {
    await Promise.all(started.map((s) => s.ready));
  } catch (e) {
    await Promise.allSettled(started.map((s) => s.proc.kill()));
    throw e;
  }
  return started.map((s) => s.proc);
}
