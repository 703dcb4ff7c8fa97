// The baseline the benches measure against: Debian's vip-manager 1.0.2, the Go original (etcd v2
// API, polls every `interval`, shells out to `ip`). One place finds its binary and runs it, for
// bench:failover, bench:partition and bench:idle.
//
// The binary: VIP_BASELINE_BIN when set; /usr/bin/vip-manager when it is 1.0.2 (`bash
// scripts/setup.sh --bench` installs it); else Debian's package unpacked under build/baseline/
// (fetched there with `apt-get download` when the caller allows it: nothing is installed).
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Netns } from '../test/harness/netns.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SYSTEM_BIN = '/usr/bin/vip-manager';
const UNPACKED = join(REPO, 'build', 'baseline');

/**
 * The Go original's path, or null when it is not on this machine and `fetch` is false.
 * With `fetch`, Debian's package is downloaded and unpacked under build/baseline/.
 */
export function goBaseline(opts: { fetch: boolean; log: (s: string) => void }): string | null {
  const given = process.env.VIP_BASELINE_BIN;
  if (given) {
    if (!existsSync(given)) throw new Error(`VIP_BASELINE_BIN=${given}: no such file`);
    return given;
  }
  if (existsSync(SYSTEM_BIN)) {
    const v = spawnSync(SYSTEM_BIN, ['--version'], { encoding: 'utf8' });
    if (/1\.0\.2/.test(v.stdout + v.stderr)) return SYSTEM_BIN;
  }
  const bin = join(UNPACKED, 'root', 'usr', 'bin', 'vip-manager');
  if (existsSync(bin)) return bin;
  if (!opts.fetch) return null;
  opts.log(`fetching Debian's vip-manager (apt-get download) into ${UNPACKED}`);
  mkdirSync(UNPACKED, { recursive: true });
  try {
    execFileSync('apt-get', ['download', 'vip-manager'], { cwd: UNPACKED, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`could not fetch vip-manager (the baseline): ${(e as Error).message.split('\n')[0]}; run \`bash scripts/setup.sh --bench\` or set VIP_BASELINE_BIN`);
  }
  const deb = readdirSync(UNPACKED).find((f) => /^vip-manager_1\.0\.2.*\.deb$/.test(f));
  if (!deb) throw new Error(`apt-get download vip-manager did not fetch version 1.0.2 into ${UNPACKED} (found: ${readdirSync(UNPACKED).join(', ')}); run bash scripts/setup.sh --bench`);
  execFileSync('dpkg-deb', ['-x', join(UNPACKED, deb), join(UNPACKED, 'root')]);
  return bin;
}

export interface GoDaemonOptions {
  bin: string;
  ns: Netns;
  ip: string;
  prefix: number;
  key: string;
  /** This node's name (its trigger-value). */
  node: string;
  etcdUrl: string;
}

/** One Go vip-manager in a namespace, with every line it prints stamped (Date.now()) on arrival. */
export class GoDaemon {
  readonly child: ChildProcess;
  readonly lines: Array<{ t: number; line: string }> = [];
  private readonly exited: Promise<void>;

  constructor(o: GoDaemonOptions) {
    this.child = o.ns.spawn(o.bin, [
      `--ip=${o.ip}`, `--netmask=${o.prefix}`, '--interface=eth0', `--trigger-key=${o.key}`, `--trigger-value=${o.node}`,
      '--dcs-type=etcd', `--dcs-endpoints=${o.etcdUrl}`, '--interval=1000',
    ]);
    for (const s of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: s }).on('line', (line) => this.lines.push({ t: Date.now(), line }));
    }
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Stops it for good (SIGKILL: it keeps the VIP on SIGTERM anyway) and waits for the exit. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  transcript(): string {
    return this.lines.slice(-40).map((l) => l.line).join('\n');
  }
}
