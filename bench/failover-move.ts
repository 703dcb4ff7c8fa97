// One move of a VIP between two nodes, as the failover bench measures it: the record of what the
// bench did (key change sent, put returned), each node's presence timeline of that VIP as the
// observers stamped it, and the numbers of the move derived from them. No I/O.

export type Node = 'n1' | 'n2';
export const other = (n: Node): Node => (n === 'n1' ? 'n2' : 'n1');

/** A presence change of the VIP on one node (t: epoch ms). */
export interface Change { t: number; present: boolean }
/** A neighbour-table change on the client for the VIP. */
export interface NeighChange { t: number; lladdr: string; state: string }

export interface MoveRecord {
  /** The VIP whose key changed (one of the row's entries). */
  vip: string;
  from: Node;
  to: Node;
  /** Just before the key change was sent / the fake flipped. */
  t0: number;
  /** When the put (all puts, for the baseline) returned. */
  t1: number;
  /** The next move's t0, or the end of the row. */
  tEnd: number;
  /** Whether the VIP reached the new holder and left the old one before the bench gave up. */
  completed: boolean;
}

export interface MoveMetrics {
  present: number | null;
  gone: number | null;
  overlap: number;
  gap: number;
  neigh: number | null;
  put: number;
  /** VIP add/del events in the move's window beyond the one add and one del a move needs. */
  extra: number;
  /** Add/del events of the row's other VIPs in the move's window (a flip must not disturb them). */
  others: number;
}

/** Presence of one node over time: an initial state and the changes after it. */
export class Timeline {
  constructor(private readonly initial: boolean, private readonly changes: Change[]) {}

  at(t: number): boolean {
    let p = this.initial;
    for (const c of this.changes) {
      if (c.t > t) break;
      p = c.present;
    }
    return p;
  }

  firstAfter(t: number, present: boolean, before = Infinity): number | null {
    const c = this.changes.find((x) => x.t >= t && x.t < before && x.present === present);
    return c ? c.t : null;
  }

  times(from: number, to: number): number[] {
    return this.changes.filter((c) => c.t > from && c.t < to).map((c) => c.t);
  }
}

/** Measures, within [from, to], how long both nodes held the VIP and how long neither did. */
export function overlapAndGap(a: Timeline, b: Timeline, from: number, to: number): { overlap: number; gap: number } {
  const cuts = [from, ...a.times(from, to), ...b.times(from, to), to].sort((x, y) => x - y);
  let overlap = 0;
  let gap = 0;
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [s, e] = [cuts[i]!, cuts[i + 1]!];
    if (e <= s) continue;
    const mid = (s + e) / 2;
    const pa = a.at(mid);
    const pb = b.at(mid);
    if (pa && pb) overlap += e - s;
    if (!pa && !pb) gap += e - s;
  }
  return { overlap, gap };
}

/**
 * The five numbers of one move. Overlap and gap are measured from the key change until the
 * move settled (the later of "present on the new holder" and "gone from the old one"), so the
 * pause before the next move never counts as a gap when a move fails half-way: then they run
 * to the end of the move's window.
 */
export function moveMetrics(m: MoveRecord, tl: Record<Node, Timeline>, neigh: NeighChange[], newMac: string, others: ReadonlyArray<Record<Node, Timeline>> = []): MoveMetrics {
  const addT = tl[m.to].firstAfter(m.t0, true, m.tEnd);
  const delT = tl[m.from].firstAfter(m.t0, false, m.tEnd);
  const settled = addT !== null && delT !== null ? Math.max(addT, delT) : m.tEnd;
  const { overlap, gap } = overlapAndGap(tl.n1, tl.n2, m.t0, settled);
  const n = neigh.find((x) => x.t >= m.t0 && x.t < m.tEnd && x.lladdr === newMac);
  return {
    present: addT === null ? null : addT - m.t0,
    gone: delT === null ? null : delT - m.t0,
    overlap,
    gap,
    neigh: n ? n.t - m.t0 : null,
    put: m.t1 - m.t0,
    extra: Math.max(0, tl.n1.times(m.t0, m.tEnd).length + tl.n2.times(m.t0, m.tEnd).length - 2),
    others: others.reduce((sum, o) => sum + o.n1.times(m.t0, m.tEnd).length + o.n2.times(m.t0, m.tEnd).length, 0),
  };
}

