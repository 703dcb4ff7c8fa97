// A role VIP's leader source: Patroni's cluster keys in, "the member this VIP belongs on" out,
// as a LeaderView the reconciler treats exactly like a leader key's value (namesThisNode
// compares it with trigger-value, this node's member name). The choice is dcs/patroni/roles.ts,
// a pure function of one revision, so every node names the same member without a lock.
//
// Patroni rewrites its keys all the time (status every loop_wait, each member's entry every
// cycle); only a change of the designated member (or the first answer after an outage) becomes
// a view, so a quiet cluster does not wake the reconciler every two seconds. An outage passes
// through view by view, its `last` being the designation of the last set seen.
import type { Logger } from '../log.js';
import type { LeaderSource, LeaderUnreachable, LeaderValue } from '../reconcile/ports.js';
import type { KeySetSource, KeySetValue, KeySetView } from './key-set.js';
import { leaderValue } from './leader-value.js';
import { clusterKeys, designate, type Designation } from './patroni/roles.js';
import { clusterPrefix, type LeaderSpec, type RoleSourceFactory } from './session.js';

export class RoleSource implements LeaderSource {
  readonly kind: LeaderSource['kind'];
  /** A member chosen from the keys' contents is never held on a lease deadline. */
  readonly providesLeaseDeadline = false;
  private readonly prefix: string;
  private current: { view: LeaderValue; designation: Designation } | null = null;
  private outage = false;
  private started = false;

  constructor(private readonly keySet: KeySetSource, private readonly spec: LeaderSpec, private readonly log: Logger) {
    const prefix = clusterPrefix(spec.triggerKey);
    if (prefix === undefined) throw new Error(`role ${spec.role} needs a trigger-key ending in /leader (Patroni's <namespace>/<scope>/leader), not ${spec.triggerKey}`);
    this.prefix = prefix;
    // The session's key-set facade carries its backend's kind; a bare KeySetSource (tests) does not.
    this.kind = (keySet as Partial<Pick<LeaderSource, 'kind'>>).kind ?? 'etcd';
  }

  start(onView: (view: LeaderValue | LeaderUnreachable) => void): void {
    if (this.started) throw new Error('a role source was started twice');
    this.started = true;
    this.keySet.start((view: KeySetView) => {
      if (view.kind === 'value') {
        const next = this.choose(view);
        const previous = this.current;
        const changed = previous === null || previous.designation.member !== next.designation.member;
        this.current = next;
        if (changed) {
          this.log.info(
            { role: this.spec.role, prefix: this.prefix, member: next.view.value, previous: previous === null ? undefined : previous.view.value, revision: view.revision, reason: next.designation.reason },
            `role ${this.spec.role}: ${next.designation.member === null ? 'no member' : `member ${next.view.value}`} (${next.designation.reason})`,
          );
        }
        if (changed || this.outage) onView(next.view);
        this.outage = false;
        return;
      }
      this.outage = true;
      // `last` as of the last set seen, so the reconciler's outage policy works from the same
      // designation it last acted on.
      const last = view.last === null ? null : this.current?.view.revision === view.last.revision ? this.current.view : this.choose(view.last).view;
      onView({ kind: 'unreachable', since: view.since, error: view.error, failures: view.failures, last });
    });
  }

  close(): Promise<void> {
    return this.keySet.close();
  }

  private choose(set: KeySetValue): { view: LeaderValue; designation: Designation } {
    const designation = designate(clusterKeys(set.kvs, this.prefix), this.spec);
    const bytes = designation.member === null ? null : Buffer.from(designation.member, 'utf8');
    return { view: leaderValue(bytes, set.revision, set.at, null), designation };
  }
}

export const roleSource: RoleSourceFactory = (keySet: KeySetSource, spec: LeaderSpec, log: Logger) => new RoleSource(keySet, spec, log);
