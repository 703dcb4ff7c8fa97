// What a run of the packaged vip-manager loads (issue 13). The package's bundle is split at every
// lazy import() (packaging/lib/bundle.mjs), so `--version` must read only the entry and the build
// info, `--check-config` the configuration layer and no daemon, and a daemon only the code of what
// its configuration names: never another DCS's client, the Hetzner managers, --diagnose, hook
// running when no hook is set, or pino-pretty when it logs JSON.
//
// Which module files a run loads is recorded by a module.registerHooks() load hook (Node >=
// 22.15; the embedded runtime is newer) given with --import; the launcher passes no runtime flags
// through, so these runs start the embedded runtime with the launcher's own flags read from its
// exec line. What each chunk holds comes from the path comment esbuild writes before every module
// it bundles ("// node_modules/pino/pino.js", "// dist/src/dcs/consul/kv.js"). A daemon has
// loaded everything its start-up needs when it writes the compile cache (src/compile-cache.ts,
// after start-up), which the runtime reports with NODE_DEBUG_NATIVE=COMPILE_CACHE.
// The compile cache itself is checked through the launcher, as systemd runs it
// (CacheDirectory=): after one start killed with SIGKILL, the next start finds V8's code cache for
// every module it loads, the DCS client's chunk (loaded last) included.
// Daemons run in a network namespace of their own, never the leader (no DCS answers): root, as CI
// runs the suite.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Netns, requireNetnsPrivileges } from '../harness/netns.js';
import { builtPackage } from '../harness/packages.js';

const APP = 'usr/lib/vip-manager';
const ENTRY = `${APP}/app/vip-manager.mjs`;
/** A daemon's start-up, to its compile cache flush; measured at 0.2-0.7 s on a loaded 2-core machine. */
const START_TIMEOUT_MS = 30_000;
const LOAD_MARK = 'vip-test-load ';
const BUILTINS_MARK = 'vip-test-builtins ';
/**
 * Also reports the built-ins loaded so far (process.moduleLoadList) when the daemon writes its
 * compile cache, i.e. when its start-up is over (before the runtime's FLUSHED line, which ends
 * the wait): module.flushCompileCache is wrapped, and syncBuiltinESMExports() lets the daemon's
 * import('node:module') see the wrapper.
 */
const HOOK = `import module, { registerHooks, syncBuiltinESMExports } from 'node:module';
registerHooks({ load(url, context, nextLoad) {
  if (url.startsWith('file:')) process.stderr.write(${JSON.stringify(LOAD_MARK)} + url + '\\n');
  return nextLoad(url, context);
} });
const flush = module.flushCompileCache;
if (flush) {
  module.flushCompileCache = () => {
    const builtins = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ') && !m.startsWith('NativeModule internal/')).map((m) => m.slice(13));
    process.stderr.write(${JSON.stringify(BUILTINS_MARK)} + builtins.join(' ') + '\\n');
    flush();
  };
  syncBuiltinESMExports();
}
`;
/**
 * Patroni's REST API clients (dcs-type patroni, dcs-loss patroni). dcs/patroni/roles.js is not
 * among them: it reads Patroni's keys in etcd or Consul for role VIPs and comes with the DCS
 * session (daemon/factories.ts), whatever the DCS.
 */
const PATRONI_REST = ['dist/src/dcs/patroni/rest-source.js', 'dist/src/dcs/patroni/local-primary.js'];
const FLUSHED = /^\[compile cache\] module\.flushCompileCache\(\) finished/;

interface Run { files: string[]; modules: Set<string>; stderr: string[]; builtins: Set<string> | null }

describe('package: each run loads only the chunks it needs', () => {
  let work: string;
  let root: string;
  let runtimeFlags: string[];
  let hook: string;
  let ns: Netns;

  before(async () => {
    requireNetnsPrivileges();
    work = mkdtempSync(join(tmpdir(), 'vip-chunks-'));
    root = join(work, 'root');
    const deb = await builtPackage('deb', 'amd64');
    const x = spawnSync('dpkg-deb', ['-x', deb, root], { encoding: 'utf8' });
    assert.equal(x.status, 0, `dpkg-deb -x: ${x.stderr}`);
    const launcher = readFileSync(join(root, 'usr/bin/vip-manager'), 'utf8');
    const exec = /^exec "\$lib\/node" (.*) "\$lib\/app\/vip-manager\.mjs" "\$@"$/m.exec(launcher);
    assert.ok(exec, 'the launcher\'s exec line changed: update this test');
    runtimeFlags = exec[1]!.split(' ');
    hook = join(work, 'trace-loads.mjs');
    writeFileSync(hook, HOOK);
    ns = new Netns('chunks');
    // A LAN interface for the basic manager; nothing else is ever attached to it.
    ns.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1');
    ns.ip('link', 'set', 'eth0', 'up');
    ns.ip('link', 'set', 'eth1', 'up');
  });
  after(() => {
    ns?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** The modules a chunk holds, by esbuild's path comments ("dist/src/log.js", "node_modules/pino/pino.js"). */
  const modulesOf = (file: string): string[] =>
    [...readFileSync(file, 'utf8').matchAll(/^\/\/ ((?:dist|node_modules)\/\S+)$/gm)].map((m) => m[1]!);

  function loaded(stderr: string[]): Run {
    const files = stderr.filter((l) => l.startsWith(LOAD_MARK)).map((l) => fileURLToPath(l.slice(LOAD_MARK.length)));
    assert.ok(files.includes(join(root, ENTRY)), `the entry was not among the loaded files:\n${stderr.join('\n')}`);
    const modules = new Set<string>();
    for (const f of files) {
      if (!f.startsWith(join(root, `${APP}/app/`))) {
        // koffi's native module is the one file loaded from outside the bundle.
        assert.ok(f.startsWith(join(root, `${APP}/node_modules/@koromix/`)), `${f} loaded from outside the package's bundle`);
        continue;
      }
      for (const m of modulesOf(f)) modules.add(m);
    }
    const b = stderr.find((l) => l.startsWith(BUILTINS_MARK));
    return { files, modules, stderr, builtins: b === undefined ? null : new Set(b.slice(BUILTINS_MARK.length).split(' ')) };
  }

  /** The embedded runtime with the launcher's flags and the load hook, run to its end. */
  function oneShot(args: string[]): Run & { stdout: string } {
    const r = spawnSync(join(root, APP, 'node'), [...runtimeFlags, '--import', hook, join(root, ENTRY), ...args], { encoding: 'utf8', cwd: tmpdir(), env: { PATH: process.env.PATH } });
    assert.equal(r.status, 0, `vip-manager ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    return { ...loaded(r.stderr.split('\n')), stdout: r.stdout };
  }

  /** Starts a daemon in the namespace, waits until its start-up has flushed the compile cache. */
  async function startDaemon(cmd: string[], args: string[], env: Record<string, string>): Promise<{ child: ChildProcess; stderr: string[] }> {
    const child = ns.spawn(cmd[0]!, [...cmd.slice(1), '--ip', '198.51.100.10', '--netmask', '24', '--interface', 'eth0',
      '--trigger-key', '/service/chunks/leader', '--trigger-value', 'this-node', ...args], { env: { PATH: process.env.PATH, ...env } });
    const stderr: string[] = [];
    const lines = createInterface({ input: child.stderr! });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no compile cache flush within ${START_TIMEOUT_MS} ms:\n${stderr.join('\n')}`)), START_TIMEOUT_MS);
        lines.on('line', (l) => {
          stderr.push(l);
          if (FLUSHED.test(l)) { clearTimeout(timer); resolve(); }
        });
        child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`the daemon exited (${code ?? signal}) during start-up:\n${stderr.join('\n')}`)); });
      });
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    return { child, stderr };
  }

  async function kill(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async function daemonLoads(args: string[]): Promise<Run> {
    const cache = mkdtempSync(join(work, 'cache-'));
    const { child, stderr } = await startDaemon([join(root, APP, 'node'), ...runtimeFlags, '--import', hook, join(root, ENTRY)], args,
      { NODE_COMPILE_CACHE: cache, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' });
    await kill(child);
    return loaded(stderr);
  }

  const has = (run: Run, prefix: string) => [...run.modules].some((m) => m.startsWith(prefix));
  function assertLoaded(run: Run, prefixes: string[]): void {
    for (const p of prefixes) assert.ok(has(run, p), `${p} was not loaded; loaded: ${[...run.modules].join(' ')}`);
  }
  function assertNotLoaded(run: Run, prefixes: string[]): void {
    for (const p of prefixes) assert.ok(!has(run, p), `${p} was loaded: ${[...run.modules].filter((m) => m.startsWith(p)).join(' ')}`);
  }

  it('--version reads the entry and the build info only: no third-party code, no configuration layer', () => {
    const r = oneShot(['--version']);
    assert.match(r.stdout, /^version: \S+$/m);
    assert.deepEqual([...r.modules].sort(), ['dist/src/main.js', 'dist/src/version.js']);
    const all = readdirSync(join(root, APP, 'app')).length;
    assert.ok(r.files.length <= 4 && all >= 10, `${r.files.length} of ${all} files read`);
  });

  it('no chunk imports a module by name: built-ins are bound through require(), so node:http never loads undici', () => {
    // Node fills the namespace of an imported built-in by reading all its exports, and
    // node:http's WebSocket & co. are getters that load undici: 60-70 ms of every start
    // (packaging/lib/bundle.mjs). Line 1 is the createRequire banner, the one import allowed.
    const dir = join(root, APP, 'app');
    const named: string[] = [];
    let builtins = 0;
    for (const f of readdirSync(dir)) {
      const text = readFileSync(join(dir, f), 'utf8');
      const body = text.slice(text.indexOf('\n') + 1);
      for (const m of body.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']|^import\s*["']([^"']+)["']/gm)) {
        const spec = m[1] ?? m[2]!;
        if (!spec.startsWith('./')) named.push(`${f}: ${spec}`);
      }
      builtins += [...body.matchAll(/\b__require\("node:[a-z_/]+"\)/g)].length;
    }
    assert.deepEqual(named, []);
    assert.ok(builtins >= 5, `only ${builtins} require() calls of built-ins: is the bundle still built as this test expects?`);
  });

  it('every chunk is ASCII: one other character makes Node decode a whole file to two-byte text and V8 scan it so', () => {
    // packaging/lib/bundle.mjs escapes what esbuild leaves (characters in the comments it keeps).
    const dir = join(root, APP, 'app');
    const wide = readdirSync(dir).filter((f) => /[^\x00-\x7f]/.test(readFileSync(join(dir, f), 'utf8')));
    assert.deepEqual(wide, []);
  });

  it('--check-config loads the configuration layer, not the daemon, a DCS client, the logger or the metrics', () => {
    const r = oneShot(['--check-config', '--config', join(root, 'usr/share/vip-manager/vip-manager.yml')]);
    assert.match(r.stdout, /^ip: 198\.51\.100\.10\b/m);
    assertLoaded(r, ['dist/src/config/load.js', 'dist/src/config/render.js', 'node_modules/commander/', 'node_modules/yaml/']);
    assertNotLoaded(r, ['dist/src/daemon/', 'dist/src/dcs/', 'dist/src/vip/', 'dist/src/diagnose/', 'dist/src/log.js',
      'node_modules/pino', 'node_modules/prom-client/', 'node_modules/etcd3/', 'node_modules/@grpc/', 'node_modules/koffi/']);
  });

  it('an etcd daemon logging JSON loads the etcd client, and no Consul, Patroni, Hetzner, --diagnose, hook runner or pino-pretty code', async () => {
    const r = await daemonLoads(['--dcs-type', 'etcd', '--dcs-endpoints', 'http://127.0.0.1:2379', '--log-format', 'json']);
    assertLoaded(r, ['dist/src/daemon/run.js', 'dist/src/dcs/etcd/', 'dist/src/vip/basic.js', 'node_modules/pino/', 'node_modules/prom-client/']);
    assertNotLoaded(r, ['dist/src/dcs/consul/', ...PATRONI_REST, 'dist/src/vip/hetzner/', 'dist/src/diagnose/run.js',
      'dist/src/diagnose/dcs-probe.js', 'dist/src/diagnose/report.js', 'dist/src/hooks/runner.js', 'node_modules/pino-pretty/']);
  });

  it('an etcd daemon over http:// loads neither node:tls, node:https, node:zlib nor node:crypto; over https:// the lazy stand-in loads node:tls', async () => {
    // packaging/lib/bundle.mjs binds these built-ins through stand-ins that load them on first
    // use (tls and https alone cost about 30 ms of every start, crypto 16), and leaves prom-client's
    // Pushgateway (node:zlib) out. node:child_process is lazy too, but the HTTP endpoint's
    // listen() loads it anyway (node:net asks node:cluster, which requires it). The https://
    // daemon is the control: its TLS context is made at start through the very same stand-in.
    const plain = await daemonLoads(['--dcs-type', 'etcd', '--dcs-endpoints', 'http://127.0.0.1:2379', '--log-format', 'json']);
    assert.ok(plain.builtins, `the load hook reported no built-ins:\n${plain.stderr.join('\n')}`);
    assert.ok(plain.builtins.has('http') && plain.builtins.has('net'), `node:http and node:net, which the etcd client uses, were not reported: ${[...plain.builtins].join(' ')}`);
    for (const b of ['tls', 'https', 'zlib', 'crypto']) assert.ok(!plain.builtins.has(b), `node:${b} was loaded: ${[...plain.builtins].join(' ')}`);
    const secure = await daemonLoads(['--dcs-type', 'etcd', '--dcs-endpoints', 'https://127.0.0.1:2379', '--log-format', 'json']);
    assert.ok(secure.builtins?.has('tls'), `node:tls was not loaded for an https:// endpoint: ${[...secure.builtins ?? []].join(' ')}`);
  });

  it('a Consul daemon logging text loads pino-pretty and the Consul client, and no etcd client code', async () => {
    const r = await daemonLoads(['--dcs-type', 'consul', '--dcs-endpoints', 'http://127.0.0.1:8500']);
    assertLoaded(r, ['dist/src/dcs/consul/', 'node_modules/pino-pretty/']);
    assertNotLoaded(r, ['dist/src/dcs/etcd/', 'node_modules/etcd3/', 'node_modules/@grpc/', 'node_modules/protobufjs/',
      ...PATRONI_REST, 'dist/src/vip/hetzner/', 'dist/src/diagnose/run.js']);
  });

  it('with CacheDirectory=, a restart after SIGKILL finds V8\'s code cache for every module it loads, the DCS client\'s too', async () => {
    const cache = join(work, 'cache-directory');
    mkdirSync(cache, { mode: 0o700 });
    const env = { CACHE_DIRECTORY: cache, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' };
    const args = ['--dcs-type', 'etcd', '--dcs-endpoints', 'http://127.0.0.1:2379'];
    const verdicts = (stderr: string[]) => new Map(stderr.flatMap((l) => {
      const m = /^\[compile cache\] V8 code cache for ESM (file:\/\/\S+) was (.+?),/.exec(l);
      return m ? [[fileURLToPath(m[1]!), m[2]!] as const] : [];
    }));
    const first = await startDaemon([join(root, 'usr/bin/vip-manager')], args, env);
    await kill(first.child);
    const cold = verdicts(first.stderr);
    const second = await startDaemon([join(root, 'usr/bin/vip-manager')], args, env);
    await kill(second.child);
    const warm = verdicts(second.stderr);
    assert.ok(cold.has(join(root, ENTRY)), `the compile cache reported nothing on the first start:\n${first.stderr.join('\n')}`);
    assert.ok([...cold.values()].every((v) => v === 'not initialized'), `the first start found a cache already: ${[...cold].join(' ')}`);
    assert.deepEqual([...warm.keys()].sort(), [...cold.keys()].sort(), 'the second start loaded other modules than the first');
    const missed = [...warm].filter(([, v]) => v !== 'accepted');
    assert.deepEqual(missed, [], 'modules compiled again on the second start');
    // The etcd backend's chunks are imported last (daemon/factories.ts), after the configuration and the daemon.
    assert.ok([...warm.keys()].some((f) => modulesOf(f).some((m) => m.startsWith('dist/src/dcs/etcd/'))), 'no chunk with the etcd client among the cached modules');
  });
});
