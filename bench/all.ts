// `npm run bench`: every benchmark that fits a few minutes, one after the other, each printing
// median / p90 / max beside its baseline: the kernel layer against spawning `ip`, failover
// against Debian's vip-manager 1.0.2, the etcd leader source (put → view, one lease query),
// and start-up of the package against the checkout. The Patroni benchmark (several real switchovers) is
// separate: `npm run bench:patroni`.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

let failed = false;
for (const name of ['kernel', 'etcd-source', 'failover', 'failover-partition', 'startup']) {
  const script = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  console.log(`\n=== bench:${name} ===`);
  const r = spawnSync(process.execPath, [script], { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`bench:${name} failed (exit ${r.status ?? r.signal})`);
    failed = true;
  }
}
process.exitCode = failed ? 1 : 0;
