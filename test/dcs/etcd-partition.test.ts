// Require-leader, proven: a 3-member etcd cluster in network namespaces; the source runs (as a
// child process) inside member m1's namespace and talks to m1 over the namespace's own
// loopback, so its connection stays perfectly healthy when m1's LAN cable is cut. Only etcd's
// require-leader handling (`hasleader` metadata: watch cancelled with "no leader", reads
// refused) can tell it that m1's view of the key is no longer trustworthy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { createLan, requireNetnsPrivileges, type Lan } from '../harness/netns.js';
import { startEtcdCluster, type EtcdCluster } from '../harness/etcd.js';
import { ChildSource } from './etcd-child-driver.js';
import { sleep } from './etcd-views.js';

const KEY = '/service/partition/leader';
/** etcd's default election timeout; the member needs it to notice it lost the leader. */
const ELECTION_TIMEOUT_MS = 1000;
/** etcd cancels require-leader streams after 3 leaderless election periods (v3rpc monitorLeader). */
const STREAM_CANCEL_MS = 3 * ELECTION_TIMEOUT_MS;
const DETECT_BOUND_MS = ELECTION_TIMEOUT_MS * 2 + STREAM_CANCEL_MS + 3000;

async function putWithRetry(run: () => Promise<string>, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await run();
      return;
    } catch (e) {
      if (performance.now() > deadline) throw e;
      await sleep(300);
    }
  }
}

describe('etcd leader source: require leader', () => {
  let lan: Lan | undefined;
  let cluster: EtcdCluster | undefined;
  let child: ChildSource | undefined;

  before(async () => {
    requireNetnsPrivileges();
    lan = createLan(3, ['m1', 'm2', 'm3']);
    cluster = await startEtcdCluster(lan.hosts);
  });
  after(async () => {
    child?.kill();
    await cluster?.dispose();
    lan?.dispose();
  });

  it('a member cut off from its peers is not trusted: unreachable within the bound, recovers when the cable returns', async (t) => {
    const [m1, m2, m3] = cluster!.members;
    assert.ok(m1 && m2 && m3);
    await m2.etcdctl(['put', KEY, 'node-a']);
    t.diagnostic(`leader before the cut: ${await cluster!.leaderName(m1)}`);

    child = new ChildSource({ endpoints: [`http://127.0.0.1:2379`], triggerKey: KEY, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000 }, m1.host.ns);
    await child.waitFor((l) => l.kind === 'value' && l.value === 'node-a', 10_000, 'value through m1');
    await sleep(500);

    const cutAt = performance.now();
    lan!.setCable(m1.host, false);
    const down = await child.waitFor((l) => l.kind === 'unreachable', DETECT_BOUND_MS, 'unreachable after the cut');
    const took = down.received - cutAt;
    t.diagnostic(`partitioned member noticed after ${Math.round(took)} ms: ${down.error}`);
    assert.ok(took < DETECT_BOUND_MS, `noticed within ${DETECT_BOUND_MS} ms (took ${Math.round(took)})`);
    assert.match(down.error ?? '', /no raft leader/);
    assert.equal(down.last, 'node-a');

    // The majority moves on; the cut-off member must not report anything meanwhile.
    await putWithRetry(() => m2.etcdctl(['put', KEY, 'node-b'], `${m2.clientUrl},${m3.clientUrl}`), 15_000);
    const idx = child.lines.length;
    await sleep(2000);
    const during = child.lines.slice(idx);
    assert.ok(during.every((l) => l.kind === 'unreachable'), `only unreachable views while partitioned: ${JSON.stringify(during.map((l) => l.kind))}`);
    assert.ok(during.length >= 2, 'still retrying while partitioned');
    assert.ok(during.every((l) => /no raft leader|did not answer in time/.test(l.error ?? '')), 'reads are refused, not served stale');

    const healAt = performance.now();
    lan!.setCable(m1.host, true);
    const up = await child.waitFor((l) => l.kind === 'value', 15_000, 'value after the cable returns', idx);
    t.diagnostic(`recovered ${Math.round(up.received - healAt)} ms after the cable came back`);
    assert.equal(up.value, 'node-b', 'the value written by the majority during the partition');
    await m3.etcdctl(['put', KEY, 'node-c']);
    await child.waitFor((l) => l.kind === 'value' && l.value === 'node-c', 5000, 'watch works again', idx);
    await child.close(3000);
    child = undefined;
  });

  it('with all members as endpoints: sticks to one, fails over when it dies', async (t) => {
    const members = cluster!.members;
    const [m1, m2] = members;
    assert.ok(m1 && m2);
    await m2.etcdctl(['put', KEY, 'node-d']);
    child = new ChildSource({ endpoints: members.map((m) => m.clientUrl), triggerKey: KEY, retryAfter: 250, retryNum: 3, leaseCheckInterval: 1000 }, m1.host.ns);
    const first = await child.waitFor((l) => l.kind === 'value' && l.value === 'node-d', 10_000, 'value from the cluster');
    assert.ok(child.lines.every((l) => l.kind === 'value'), 'no unreachable view while all members are up');
    const victim = members.find((m) => m.clientUrl === first.endpoint);
    assert.ok(victim, `the source names the member it uses (${first.endpoint})`);
    const survivor = members.find((m) => m !== victim)!;

    const idx = child.lines.length;
    const killedAt = performance.now();
    await victim.kill();
    const back = await child.waitFor((l) => l.kind === 'value', 10_000, 'value from another member', idx);
    t.diagnostic(`killed ${victim.name}: value again from ${back.endpoint} after ${Math.round(back.received - killedAt)} ms, ${child.lines.slice(idx).filter((l) => l.kind === 'unreachable').length} unreachable view(s)`);
    assert.notEqual(back.endpoint, victim.clientUrl, 'moved to another member');
    assert.equal(back.value, 'node-d');
    await putWithRetry(() => survivor.etcdctl(['put', KEY, 'node-e'], members.filter((m) => m !== victim).map((m) => m.clientUrl).join(',')), 10_000);
    await child.waitFor((l) => l.kind === 'value' && l.value === 'node-e', 5000, 'watch on the new member', idx);
  });
});
