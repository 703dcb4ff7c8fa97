// Whether a test process that left something behind (namespaces, a stock root, a build lock)
// is still there. Read from /proc: a zombie, killed but not yet reaped, counts as gone, and
// processes of other users count too (kill(pid, 0) would need permission to tell).
import { readFileSync } from 'node:fs';

export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
