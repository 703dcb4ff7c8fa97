// Smoke subset of the Patroni end-to-end suite, run by `npm test` on every change (CI): a real
// Patroni 3.0 + PostgreSQL 15 cluster on three nodes, a real three-member etcd cluster, and our
// vip-manager on every node configured as an operator would (test/harness/patroni.ts). With a
// writer inserting through the VIP from the client namespace: a `patronictl switchover` and a
// crash of the primary; then the VIP removed by hand. About 40 s.
// The full suite (partitions, DCS-loss policies, restarts, link flaps, soak) is test/e2e.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createWritesTable, PatroniBed } from '../harness/patroni.js';
import { Scene } from './scenarios.js';

describe('Patroni + etcd + vip-manager (smoke)', () => {
  let bed: PatroniBed;
  let scene: Scene;

  before(async () => {
    bed = await PatroniBed.create({ placement: 'separate' });
    await createWritesTable(bed);
    scene = await Scene.watch(bed);
  });
  after(async () => {
    scene?.stop();
    await bed?.dispose();
  });

  it('the VIP sits on the primary only, and psql through it reaches the primary', async () => {
    const leader = await bed.waitForLeader();
    await bed.waitVipOn(leader);
    assert.equal(bed.psql('select pg_is_in_recovery()'), 'f');
    assert.equal(bed.psql("select split_part(current_setting('data_directory'), '/', -2)"), leader.name);
  });

  it('patronictl switchover: the VIP follows, psql reaches the new primary, no acknowledged write is lost, no overlap', (t) => scene.switchover(t));

  it('crash of the primary (SIGKILL of Patroni and PostgreSQL): the VIP ends on the new primary, no overlap', (t) => scene.crash(t));

  it('the VIP removed by hand: restored at once', (t) => scene.addressRemovedByHand(t));
});
