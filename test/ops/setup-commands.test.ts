// Every external command the tests, the demo, the benchmarks and the build scripts run must come
// from a package scripts/setup.sh installs (or one a stock minbase Debian already has), so that
// `bash scripts/setup.sh && npm test` on a fresh machine never ends in "spawn ping ENOENT".
//
// How the commands are found: the sources are parsed with the TypeScript compiler (never
// matched with regular expressions over text) and three kinds of places are read:
//  - the command argument of every child_process call (spawn, spawnSync, exec, execFile…) and of
//    the harness's own namespace wrappers (`ns.spawn(cmd, …)`, `ns.exec(cmd, …)`): a string,
//    the first word of a template's head, or the first element of an array;
//  - the command after `netns exec <ns>` in an argument array (`ip netns exec NS psql …`);
//  - every string that is an absolute path into a system bin directory (`/usr/bin/patronictl`).
// Wrappers with other names (`run('rpm', …)`, `sh('umount', …)`) count when their first word is
// an installed command: on a machine where something was installed by hand, that is how the
// test learns that setup.sh does not install it.
// Each command is then resolved on PATH and traced to its Debian package with dpkg; the package
// must be in setup.sh's list, be a dependency (at any depth) of one that is, or be one that
// debootstrap --variant=minbase installs (Essential or Priority: required).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const ROOT = process.cwd();
const SCANNED = ['test', 'bench', 'demo', 'scripts', 'packaging'];
/** child_process's own functions and the namespace wrappers that take the command first. */
const SPAWNERS = new Set(['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync']);
/** Project wrappers that take a command first, but whose first argument is sometimes not one. */
const MAYBE_SPAWNERS = new Set(['run', 'sh', 'runAsync', 'runIn']);
const SYSTEM_BIN = /^\/(usr\/)?s?bin\/[^/]+$/;
/** The runtime setup.sh installs itself when the machine has none (not a Debian package). */
const SETUP_RUNTIME = new Set(['node', 'npm', 'npx']);
/** Shell words that look like commands in first position but are not programs. */
const NOT_COMMANDS = new Set(['-', '--', 'cd', 'set', 'exit', 'export', 'for', 'if', 'then']);

interface Use { command: string; where: string; direct: boolean }

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'dist' || name === 'build') return [];
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

function literalText(n: ts.Node): string | undefined {
  if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) return n.text;
  if (ts.isTemplateExpression(n)) return n.head.text;
  return undefined;
}

function firstWord(s: string): string | undefined {
  const w = s.trim().split(/\s+/)[0];
  return w && !w.startsWith('-') && !NOT_COMMANDS.has(w) && /^[A-Za-z0-9_./+-]+$/.test(w) ? w : undefined;
}

function calleeName(e: ts.Expression): string | undefined {
  if (ts.isIdentifier(e)) return e.text;
  if (ts.isPropertyAccessExpression(e)) return e.name.text;
  return undefined;
}

function scan(file: string): Use[] {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const uses: Use[] = [];
  const at = (n: ts.Node) => `${relative(ROOT, file)}:${src.getLineAndCharacterOfPosition(n.getStart(src)).line + 1}`;
  // An absolute path is a file the code looked for (a baseline binary, a file in a stock root)
  // more often than a program it needs: like a wrapper's word, it counts where it exists here.
  const add = (command: string | undefined, n: ts.Node, direct: boolean) => {
    if (command) uses.push({ command, where: at(n), direct: direct && !command.startsWith('/') });
  };
  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n) && n.arguments.length > 0) {
      const name = calleeName(n.expression);
      const first = n.arguments[0]!;
      const text = ts.isArrayLiteralExpression(first) && first.elements[0] ? literalText(first.elements[0]) : literalText(first);
      if (name && text !== undefined && (SPAWNERS.has(name) || MAYBE_SPAWNERS.has(name))) add(firstWord(text), first, SPAWNERS.has(name));
    }
    if (ts.isArrayLiteralExpression(n)) {
      const items = n.elements.map(literalText);
      for (let i = 0; i + 3 < items.length; i++) {
        if (items[i] === 'netns' && items[i + 1] === 'exec' && items[i + 3] !== undefined) add(firstWord(items[i + 3]!), n.elements[i + 3]!, true);
      }
    }
    const s = literalText(n);
    // A path may name a file inside a stock root or one our own package installs
    // (/usr/bin/vip-manager): it counts where it exists here.
    if (s !== undefined && SYSTEM_BIN.test(s) && !ts.isTemplateExpression(n)) add(s, n, false);
    ts.forEachChild(n, visit);
  };
  visit(src);
  return uses;
}

function resolve(command: string): string | undefined {
  const candidates = command.startsWith('/')
    ? [command]
    : [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean).map((d) => join(d, command));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch { /* next */ }
  }
  return undefined;
}

/** The forms under which dpkg may know a file across /usr-merge (/bin/x or /usr/bin/x). */
function pathForms(path: string): string[] {
  const real = realpathSync(path);
  const forms = new Set([path, real]);
  for (const p of [path, real]) forms.add(p.startsWith('/usr/') ? p.slice(4) : `/usr${p}`);
  return [...forms];
}

/** The package owning each path, asked of dpkg in one call (it is slow to start). */
function owners(paths: string[]): Map<string, string> {
  const forms = [...new Set(paths.flatMap(pathForms))];
  // Exit status 1 only means some form is unknown to dpkg; the known ones are still printed.
  const r = spawnSync('dpkg-query', ['-S', ...forms], { encoding: 'utf8', maxBuffer: 16 << 20 });
  const byFile = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    // `diversion by dash from: /bin/sh` and `diversion by dash to: …` name no owner.
    if (line.startsWith('diversion by ')) continue;
    const i = line.indexOf(': ');
    if (i > 0) byFile.set(line.slice(i + 2), line.slice(0, i).split(',')[0]!.trim());
  }
  const out = new Map<string, string>();
  for (const p of paths) {
    const f = pathForms(p).find((x) => byFile.has(x));
    if (f) out.set(p, byFile.get(f)!);
  }
  return out;
}

/** Every word inside `packages=(…)` and `packages+=(…)` in setup.sh, both release branches. */
function setupPackages(): Set<string> {
  const text = readFileSync(join(ROOT, 'scripts/setup.sh'), 'utf8');
  const out = new Set<string>();
  for (const m of text.matchAll(/packages\+?=\(([^)]*)\)/g)) {
    for (const w of m[1]!.split(/\s+/)) if (/^[a-z0-9][a-z0-9.+-]*$/.test(w)) out.add(w);
  }
  return out;
}

interface Installed { depends: string[]; baseline: boolean }

/** Installed packages with their (pre-)dependencies and whether minbase would have them. */
function installedPackages(): Map<string, Installed> {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Package}\t${Status}\t${Priority}\t${Essential}\t${Pre-Depends}, ${Depends}\n'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  const out = new Map<string, Installed>();
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [name, status, priority, essential, deps] = line.split('\t') as [string, string, string, string, string];
    if (!status.endsWith(' installed')) continue;
    const depends = deps.split(/[,|]/).map((d) => d.trim().split(/[\s:(]/)[0]!).filter(Boolean);
    out.set(name, { depends, baseline: essential === 'yes' || priority === 'required' });
  }
  return out;
}

/** Packages setup.sh brings in: its list and everything they depend on, at any depth. */
function closure(roots: Set<string>, installed: Map<string, Installed>): Set<string> {
  const seen = new Set<string>();
  const todo = [...roots];
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    for (const d of installed.get(p)?.depends ?? []) todo.push(d);
  }
  return seen;
}

test('every external command the tests, demo and benchmarks run is installed by scripts/setup.sh', () => {
  assert.ok(existsSync(join(ROOT, 'scripts/setup.sh')), 'run from the checkout root');
  // This file names commands in its own checks; it runs none of them.
  const files = SCANNED.flatMap((d) => walk(join(ROOT, d))).filter((f) => /\.(ts|mjs)$/.test(f) && !f.endsWith('setup-commands.test.ts'));
  const uses = files.flatMap(scan);
  const byCommand = new Map<string, Use[]>();
  for (const u of uses) byCommand.set(u.command, [...(byCommand.get(u.command) ?? []), u]);

  // The scanner must see what we know the suite runs; a scanner that finds nothing passes nothing.
  for (const known of ['ip', 'etcd', 'ping', 'setpriv', 'promtool', 'readelf', 'rpmbuild', 'ss', 'openssl', 'psql', '/usr/bin/patronictl', '/usr/sbin/debootstrap', '/usr/bin/time']) {
    assert.ok(byCommand.has(known), `the scan did not find \`${known}\`, which the tests are known to run: the scanner is broken`);
  }

  const wanted = setupPackages();
  const installed = installedPackages();
  const brought = closure(wanted, installed);
  const problems: string[] = [];
  const resolved: string[] = [];
  const paths = new Map([...byCommand.keys()].map((c) => [c, resolve(c)] as const));
  const pkgs = owners([...paths.values()].filter((p): p is string => p !== undefined));
  for (const [command, list] of [...byCommand].sort(([a], [b]) => a.localeCompare(b))) {
    const where = [...new Set(list.map((u) => u.where))].slice(0, 3).join(', ');
    const base = command.split('/').pop()!;
    const path = paths.get(command);
    if (!path) {
      // A wrapper's first argument may be a sub-command (`run(['netns', …])`): only a direct
      // child_process call proves the word is a program.
      if (list.some((u) => u.direct)) problems.push(`\`${command}\` (${where}) is not installed; scripts/setup.sh must install the package that provides it`);
      continue;
    }
    if (SETUP_RUNTIME.has(base) && !command.startsWith('/')) { resolved.push(`${command} (setup's Node.js runtime)`); continue; }
    const pkg = pkgs.get(path);
    if (!pkg) {
      if (list.some((u) => u.direct)) problems.push(`\`${command}\` (${where}) resolves to ${path}, which no Debian package provides; scripts/setup.sh must install it from a package`);
      continue;
    }
    if (wanted.has(pkg) || installed.get(pkg)?.baseline || brought.has(pkg)) {
      resolved.push(`${command} → ${pkg}`);
      continue;
    }
    problems.push(`\`${command}\` (${where}) comes from package ${pkg}, which scripts/setup.sh does not install (add it to packages=(…))`);
  }
  assert.deepEqual(problems, [], `${problems.length} command(s) the suite runs that a fresh machine would lack:\n${problems.join('\n')}`);
  assert.ok(resolved.length >= 20, `only ${resolved.length} commands resolved: ${resolved.join(', ')}`);
});
