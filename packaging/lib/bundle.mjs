// Bundles the compiled daemon (dist/src) and its JavaScript dependencies with esbuild into ES
// modules split at every dynamic import(): the entry (vip-manager.mjs) and chunk files beside it
// in one directory. Node reads and compiles a module file whole, so a run loads only the chunks
// it reaches: `--version` the entry and the build info, a daemon the configuration layer and the
// code of what is configured (main.ts and daemon/factories.ts import the rest lazily), never
// Consul's or Hetzner's or the etcd client's when they are not. The output is
// architecture-free; what it cannot hold is koffi's native module, which it loads from
// node_modules/@koromix/koffi-linux-<arch> in the directory above (koffi resolves it with a
// require() relative to the chunk that holds koffi, and Node's lookup walks up to it).
import { createHash } from 'node:crypto';
import { isBuiltin } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

/**
 * `import ... from 'node:http'` (any built-in) is bound through require() instead. Node fills the
 * ES module namespace of a built-in by reading every one of its exports, and some are getters
 * that load more: node:http's WebSocket, CloseEvent, MessageEvent load undici. Measured on the
 * pinned Node 24, to the end of a process: an empty module 104 ms, `import { createServer } from
 * 'node:http'` 180 ms, require('node:http') 115 ms (no difference for the other built-ins the
 * daemon imports). A CommonJS stand-in that require()s the built-in gives the importer the same
 * functions, each read when it is used (esbuild's __toESM copies getters, never values).
 *
 * The built-ins in LAZY_BUILTINS are not even loaded until a property of theirs is first read:
 * their stand-in is an object without own properties whose prototype reads through to the
 * built-in, loading it then (esbuild's __toESM builds the importer's namespace on that prototype,
 * so default, named and namespace imports all read through it). That holds for require() calls
 * in dependencies, too. Every daemon imports them, few use them: node:tls and node:https only
 * with an https:// endpoint or a Hetzner manager, node:child_process only with hooks (commander
 * requires it for subcommands the daemon has none of), node:crypto only to summarise an odd
 * leader value (dcs/leader-value.ts) and to read TLS certificates. Loading them costs each start,
 * measured on the pinned Node 24 in-process: tls 25 ms, https (with tls) 30, child_process 8,
 * crypto 16 (with the launcher's V8 flags, which keep Node's own code cache of its built-ins
 * from being used).
 */
export const LAZY_BUILTINS = new Set(['node:tls', 'node:https', 'node:child_process', 'node:crypto']);

function standIn(name) {
  return LAZY_BUILTINS.has(name) ? lazyStandIn(name) : `module.exports = require(${JSON.stringify(name)});\n`;
}

function builtinsThroughRequire(repo) {
  return {
    name: 'builtins-through-require',
    setup(build) {
      build.onResolve({ filter: /^(node:)?[a-z][a-z0-9_/]*$/ }, (args) => {
        // The stand-in's own require() is the real one.
        if (args.namespace === 'vip-builtin' || !isBuiltin(args.path)) return undefined;
        const name = args.path.startsWith('node:') ? args.path : `node:${args.path}`;
        const lazy = LAZY_BUILTINS.has(name);
        if (args.kind !== 'import-statement' && !(lazy && args.kind === 'require-call')) return undefined;
        // One stand-in per importing module, so that it lands in the importer's chunk: shared,
        // it would be a chunk file of its own, and each file costs a start about 0.5 ms
        // (measured: 40 small modules instead of one, 20 ms).
        const importer = createHash('sha256').update(relative(repo, args.importer)).digest('hex').slice(0, 12);
        return { path: `${name} for ${importer}`, namespace: 'vip-builtin' };
      });
      build.onLoad({ filter: /.*/, namespace: 'vip-builtin' }, (args) => ({ contents: standIn(args.path.replace(/ for .*$/, '')), loader: 'js' }));
    },
  };
}

/**
 * Packages whose code is bundled but evaluated only when first used, through the same kind of
 * stand-in as LAZY_BUILTINS: yaml, which only a configuration file (config/file.ts) or
 * --check-config's output (config/render.ts) needs, not a daemon configured by flags and
 * environment alone; @opentelemetry/api, which prom-client reads only for exemplars, which the
 * daemon does not enable. What the stand-in cannot do is list the module's keys (Object.keys,
 * spread, for-in see none): no importer does. Reading a property at load time (a module-level
 * `class extends` or destructuring) is correct, it only loads the module then.
 */
export const LAZY_PACKAGES = new Set(['yaml', '@opentelemetry/api']);

function lazyStandIn(target) {
  // __esModule is what esbuild's interop asks first; it must not load the module.
  return `let real;
const load = () => real ??= require(${JSON.stringify(target)});
module.exports = Object.create(new Proxy({}, {
  get: (_, key) => key === '__esModule' ? undefined : load()[key],
  has: (_, key) => key in load(),
}));
`;
}

function lazyPackages() {
  return {
    name: 'lazy-packages',
    setup(build) {
      build.onResolve({ filter: /^(yaml|@opentelemetry\/api)$/ }, (args) => {
        // The stand-in's own require() is the real package.
        if (args.namespace === 'vip-lazy-package' || !LAZY_PACKAGES.has(args.path)) return undefined;
        return { path: args.path, namespace: 'vip-lazy-package' };
      });
      build.onLoad({ filter: /.*/, namespace: 'vip-lazy-package' }, (args) => ({ contents: lazyStandIn(args.path), loader: 'js', resolveDir: build.initialOptions.absWorkingDir }));
    },
  };
}

/**
 * prom-client's index loads its Pushgateway (node:https, node:zlib) and AggregatorRegistry
 * (node:cluster, whose listeners it installs at load) for every user; the daemon uses neither
 * (it serves /metrics itself). Each is replaced by a class that says so when constructed. That
 * keeps node:zlib (7 ms in-process on the pinned Node 24) out of every start, and node:cluster
 * (9 ms) out of the start until the HTTP endpoint listens (node:net's listen() loads it).
 */
const PROM_CLIENT_UNUSED = { './lib/pushgateway': 'Pushgateway', './lib/cluster': 'AggregatorRegistry' };

function promClientUnused() {
  return {
    name: 'prom-client-unused',
    setup(build) {
      build.onResolve({ filter: /^\.\/lib\/(pushgateway|cluster)$/ }, (args) => {
        if (!/[\\/]node_modules[\\/]prom-client[\\/]index\.js$/.test(args.importer)) return undefined;
        return { path: args.path, namespace: 'vip-prom-client-unused' };
      });
      build.onLoad({ filter: /.*/, namespace: 'vip-prom-client-unused' }, (args) => {
        const name = PROM_CLIENT_UNUSED[args.path];
        return { contents: `module.exports = class ${name} { constructor() { throw new Error('prom-client\\'s ${name} is not in the vip-manager bundle'); } };\n`, loader: 'js' };
      });
    },
  };
}

/** The entry module: what bin/vip-manager.js does in a checkout, without its #! line. */
const ENTRY = "import { main } from './dist/src/main.js';\nmain(process.argv.slice(2)).then((code) => { process.exitCode = code; });\n";

/** Serves ENTRY as a module of its own, so the entry file gets a name (stdin's would be "stdin"). */
function entryModule(repo) {
  return {
    name: 'vip-manager-entry',
    setup(build) {
      build.onResolve({ filter: /^vip-manager:entry$/ }, () => ({ path: 'vip-manager-entry.js', namespace: 'vip-manager-entry' }));
      build.onLoad({ filter: /.*/, namespace: 'vip-manager-entry' }, () => ({ contents: ENTRY, resolveDir: repo, loader: 'js' }));
    },
  };
}

/**
 * CommonJS dependencies call require() for Node's built-in modules; an ES module has none. Every
 * chunk gets its own (a chunk is a module scope of its own), resolving relative to the chunk.
 */
const BANNER = "import { createRequire as __vipCreateRequire } from 'node:module'; const require = __vipCreateRequire(import.meta.url);";

/** The entry's file name in the output directory; the launcher runs it. */
export const ENTRY_FILE = 'vip-manager.mjs';

/**
 * Writes the entry (ENTRY_FILE) and its chunks into `outdir`, which must not hold anything
 * else. `buildInfo` (version, commit, date, runtime) is compiled in: src/version.ts prefers it
 * to dist/build-info.json. Returns the files written (names relative to `outdir`), the inputs
 * (for the licences) and esbuild's metafile.
 */
export async function bundle({ repo, outdir, buildInfo }) {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    absWorkingDir: repo,
    entryPoints: [{ in: 'vip-manager:entry', out: ENTRY_FILE.replace(/\.mjs$/, '') }],
    outdir,
    // A chunk is named after the module it starts from ("chunk" for shared ones) and a hash of
    // its content, which tells them apart. .mjs: Node takes them as ES modules without a
    // package.json.
    entryNames: '[name]',
    chunkNames: '[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    // Every dynamic import() becomes a chunk of its own, code shared between chunks goes into
    // shared chunks: nothing is loaded before a run reaches the import() that needs it.
    splitting: true,
    // The bundle must also run on the oldest Node the checkout supports (tests run it there).
    target: 'node20',
    banner: { js: BANNER },
    define: { VIP_MANAGER_BUILD_INFO: JSON.stringify(buildInfo) },
    // Not minified: a stack trace in an operator's journal should name real functions and
    // lines; minifying saved no start-up time (measured: 0.27-0.28 s either way).
    minify: false,
    legalComments: 'eof',
    logLevel: 'warning',
    plugins: [entryModule(repo), builtinsThroughRequire(repo), promClientUnused(), lazyPackages()],
    metafile: true,
  });
  if (result.errors.length > 0) throw new Error(`esbuild: ${result.errors.map((e) => e.text).join('; ')}`);
  const files = Object.keys(result.metafile.outputs).map((f) => relative(outdir, resolve(repo, f))).sort();
  if (!files.includes(ENTRY_FILE)) throw new Error(`esbuild wrote no ${ENTRY_FILE} into ${outdir}: ${files.join(', ')}`);
  for (const f of files) {
    if (f.includes('/') || !f.endsWith('.mjs')) throw new Error(`esbuild wrote ${f} outside the flat chunk layout the package expects`);
    await asciiOnly(esbuild, join(outdir, f));
    await checkBanner(esbuild, join(outdir, f));
  }
  return { files, inputs: Object.keys(result.metafile.inputs), metafile: result.metafile };
}

/**
 * Rewrites every character outside ASCII as a \u escape. esbuild already escapes them in strings,
 * template literals, regular expressions and names (its default charset); what it leaves are the
 * comments it keeps, and one such character in a file makes Node decode the whole file to a
 * two-byte string and V8 scan it as one. Measured on the run chunk (240 KB): 7-12 ms to decode
 * instead of 2; with every chunk ASCII a daemon opened its DCS connection 20 ms sooner (median
 * of 16 starts each, compile cache warm). In a comment the escape is only text.
 */
async function asciiOnly(esbuild, file) {
  const text = readFileSync(file, 'utf8');
  // Without the u flag the pattern sees UTF-16 units: a character beyond the BMP becomes the
  // escapes of its two surrogates, as a string literal would spell it.
  const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii === text) return;
  // Proof that only comments changed: without comments and whitespace, the code is the same. A
  // String.raw template would differ (its escapes are not read), and stop the build here.
  const code = async (t) => (await esbuild.transform(t, { loader: 'js', format: 'esm', target: 'esnext', minifyWhitespace: true, legalComments: 'none', logLevel: 'silent' })).code;
  if ((await code(ascii)) !== (await code(text))) throw new Error(`${file}: a character outside ASCII is not in a comment; escaping it would change the code`);
  writeFileSync(file, ascii);
}

/**
 * The banner is pasted in front of code esbuild renamed without knowing about it: should a chunk
 * ever declare a top-level `require` or `__vipCreateRequire` of its own, it would not even parse
 * (a redeclared const), and that would show only when a run first imports it. esbuild's parser
 * refuses such a module, so every chunk is parsed once more here, at build time.
 */
async function checkBanner(esbuild, file) {
  const text = readFileSync(file, 'utf8');
  if (!text.startsWith(BANNER)) throw new Error(`${file}: does not start with the createRequire banner`);
  try {
    await esbuild.transform(text, { loader: 'js', format: 'esm', target: 'esnext', logLevel: 'silent', sourcefile: file });
  } catch (e) {
    throw new Error(`${file} does not parse (does it declare require beside the banner's?): ${e.message}`);
  }
}
