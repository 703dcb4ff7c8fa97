// Packaging entry point (after `npm run build`):
//   node scripts/package.mjs [all|deb|rpm]     build/vip-manager_<v>_amd64.deb, build/vip-manager-<v>-1.x86_64.rpm
//   node scripts/package.mjs install --destdir DIR [--unitdir /lib/systemd/system]
//   node scripts/package.mjs sample-config     rewrite packaging/vip-manager.yml from the schema
// The layout is defined once, in packaging/lib/stage.mjs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const repo = resolve(import.meta.dirname, '..');

async function renderSampleConfig() {
  const url = pathToFileURL(join(repo, 'dist/src/ops/sample-config.js')).href;
  try {
    return (await import(url)).renderSampleConfig();
  } catch (e) {
    throw new Error(`cannot load ${url} (${e.message}): run \`npm run build\` first`);
  }
}

async function packages(which, out) {
  const sampleConfig = await renderSampleConfig();
  const work = mkdtempSync(join(tmpdir(), 'vip-manager-package-'));
  try {
    const built = [];
    if (which === 'all' || which === 'deb') built.push((await import('../packaging/lib/deb.mjs')).buildDeb({ repo, work, out, sampleConfig }));
    if (which === 'all' || which === 'rpm') built.push((await import('../packaging/lib/rpm.mjs')).buildRpm({ repo, work, out, sampleConfig }));
    return built;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      destdir: { type: 'string' },
      unitdir: { type: 'string' },
      out: { type: 'string', default: join(repo, 'build') },
    },
  });
  const command = positionals[0] ?? 'all';
  switch (command) {
    case 'all':
    case 'deb':
    case 'rpm':
      for (const f of await packages(command, resolve(values.out))) console.log(`built ${f}`);
      return;
    case 'install': {
      if (values.destdir === undefined) throw new Error('install needs --destdir (use / for the running system)');
      const { install } = await import('../packaging/lib/install.mjs');
      const r = install({ repo, destdir: resolve(values.destdir), unitDir: values.unitdir, sampleConfig: await renderSampleConfig() });
      console.log(`installed into ${resolve(values.destdir)}`);
      if (!r.configInstalled) console.log(`kept the existing ${r.config}; compare it with packaging/vip-manager.yml`);
      console.log('then: create the user (systemd-sysusers vip-manager.conf, or adduser --system --group --no-create-home --home /nonexistent vip-manager), chgrp vip-manager the config, systemctl daemon-reload');
      return;
    }
    case 'sample-config':
      writeFileSync(join(repo, 'packaging', 'vip-manager.yml'), await renderSampleConfig());
      console.log('wrote packaging/vip-manager.yml');
      return;
    default:
      throw new Error(`unknown command "${command}": expected all, deb, rpm, install or sample-config`);
  }
}

main().catch((e) => {
  console.error(`package: ${e.message}`);
  process.exitCode = 1;
});
