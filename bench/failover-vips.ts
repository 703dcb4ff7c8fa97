// The multi-entry rows of the failover bench: this daemon (etcd v3 watch) on n1 and n2 from a
// YAML file, once with 1 entry and once with several (`vips:`, issue 14), each entry its own
// key (/service/bench-<i>/leader, on its own lease as a Patroni cluster's leader key is) and
// address (203.0.113.100 upwards). A move changes one entry's key, chosen at random, and the
// moved VIP is measured exactly as the DCS rows' single VIP is; the other entries' VIPs must
// not see a single add or delete meanwhile. One entry is written without `vips:` (the file a
// one-VIP user has today); several as a `vips:` list, every top-level key their default.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PREFIX, startOurs, vipAddresses, type Bed } from './failover-bed.js';
import type { Node } from './failover-move.js';
import { LEASE_TTL_S, type RowSpec, type RunOptions } from './failover-rows.js';

export const entryKey = (i: number): string => `/service/bench-${i}/leader`;

/** The configuration file of `node` for `count` entries. */
export function entriesConfig(node: Node, etcdUrl: string, count: number): string {
  const vips = vipAddresses(count);
  const top = [
    `# failover bench: ${count} entr${count === 1 ? 'y' : 'ies'} on ${node}`,
    'dcs-type: etcd',
    `dcs-endpoints: [${JSON.stringify(etcdUrl)}]`,
    'interface: eth0',
    `netmask: ${PREFIX}`,
    `trigger-value: ${node}`,
  ];
  if (count === 1) return [...top, `ip: ${vips[0]}`, `trigger-key: ${entryKey(0)}`, ''].join('\n');
  return [
    ...top,
    'vips:',
    ...vips.flatMap((ip, i) => [`  - name: e${i}`, `    ip: ${ip}`, `    trigger-key: ${entryKey(i)}`]),
    '',
  ].join('\n');
}

/** One row per entry count, in the order given. */
export function entriesRows(bed: Bed, opt: RunOptions, counts: readonly number[]): RowSpec[] {
  const kv = bed.etcd.client();
  return counts.map((count): RowSpec => {
    let dir = '';
    let leases: string[] = [];
    const put = async (e: number, v: string): Promise<void> => {
      const lease = leases[e];
      await (lease ? kv.put(entryKey(e)).value(v).lease(lease) : kv.put(entryKey(e)).value(v));
    };
    return {
      id: 'vips',
      label: count === 1 ? '1 entry (no vips:)' : `${count} entries (vips:)`,
      section: 'vips',
      idle: false,
      polls: false,
      vips: vipAddresses(count),
      async setup() {
        dir = mkdtempSync(join(tmpdir(), 'vip-bench-entries-'));
        for (const n of ['n1', 'n2'] as const) writeFileSync(join(dir, `${n}.yml`), entriesConfig(n, bed.etcd.clientUrl, count));
        leases = opt.lease
          ? await Promise.all(Array.from({ length: count }, async () => String(await kv.lease(LEASE_TTL_S, { autoKeepAlive: false }).grant())))
          : [];
      },
      start: (st) => startOurs(bed, st, (n) => ['--config', join(dir, `${n}.yml`)]),
      setLeader: (n, e) => put(e, n),
      async teardown() {
        if (dir) rmSync(dir, { recursive: true, force: true });
      },
    };
  });
}
