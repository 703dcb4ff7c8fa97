// Packaging entry point (after `npm run build`):
//   node scripts/package.mjs [all|deb|rpm] [--arch amd64|arm64|all] [--out DIR] [--xz-level 0-9]
//        build/vip-manager_<v>-1_<arch>.deb, build/vip-manager-<v>-1.<arch>.rpm (default: all, all)
//   node scripts/package.mjs install --destdir DIR [--unitdir /lib/systemd/system] [--arch A]
//   node scripts/package.mjs sample-config     rewrite packaging/vip-manager.yml from the schema
// The layout is defined once, in packaging/lib/stage.mjs; the runtime pin in packaging/runtime.json.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ARCHES, archByName, hostArch } from '../packaging/lib/arch.mjs';

const repo = resolve(import.meta.dirname, '..');

async function renderSampleConfig() {
  const url = pathToFileURL(join(repo, 'dist/src/ops/sample-config.js')).href;
  try {
    return (await import(url)).renderSampleConfig();
  } catch (e) {
    throw new Error(`cannot load ${url} (${e.message}): run \`npm run build\` first`);
  }
}

async function packages(which, arches, out, xzLevel) {
  const sampleConfig = await renderSampleConfig();
  const work = mkdtempSync(join(tmpdir(), 'vip-manager-package-'));
  try {
    const built = [];
    const { buildDeb } = await import('../packaging/lib/deb.mjs');
    const { buildRpm } = await import('../packaging/lib/rpm.mjs');
    for (const arch of arches) {
      if (which === 'all' || which === 'deb') built.push(await buildDeb({ repo, work, out, sampleConfig, arch, xzLevel }));
      if (which === 'all' || which === 'rpm') built.push(await buildRpm({ repo, work, out, sampleConfig, arch, xzLevel }));
    }
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
      arch: { type: 'string', default: 'all' },
      out: { type: 'string', default: join(repo, 'build') },
      // 6 (xz's default) for packages we publish; the tests build with 1, which takes a fifth
      // of the time for the same contents (about 35 MB instead of 30 MB per package).
      'xz-level': { type: 'string', default: '6' },
    },
  });
  const command = positionals[0] ?? 'all';
  switch (command) {
    case 'all':
    case 'deb':
    case 'rpm': {
      const arches = values.arch === 'all' ? Object.keys(ARCHES) : values.arch.split(',').map((a) => archByName(a).key);
      const level = Number(values['xz-level']);
      if (!Number.isInteger(level) || level < 0 || level > 9) throw new Error(`--xz-level ${values['xz-level']}: expected 0 to 9`);
      for (const f of await packages(command, arches, resolve(values.out), level)) console.log(`built ${f}`);
      return;
    }
    case 'install': {
      if (values.destdir === undefined) throw new Error('install needs --destdir (use / for the running system)');
      const { install } = await import('../packaging/lib/install.mjs');
      const arch = values.arch === 'all' ? hostArch().key : archByName(values.arch).key;
      const r = await install({ repo, destdir: resolve(values.destdir), unitDir: values.unitdir, sampleConfig: await renderSampleConfig(), arch });
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
