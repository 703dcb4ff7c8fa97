// Bundles the compiled daemon (dist/src) and its JavaScript dependencies into one ES module
// with esbuild. The bundle is architecture-free; what it cannot hold is koffi's native module,
// which it loads from node_modules/@koromix/koffi-linux-<arch> beside itself (koffi resolves it
// with a require() relative to the bundle's own location).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);

/**
 * What @grpc/proto-loader's fromJSON builds, cut to what a gRPC client uses. proto-loader also
 * loads protobufjs's descriptor.proto and turns every file, message and enum into descriptor
 * objects and encoded FileDescriptorProtos (for reflection and servers; a client never reads
 * them): about a sixth of the daemon's start-up before its first etcd request and 3-4 MB that
 * stay resident. Services only, with the same paths, stream flags, serializers (protobufjs
 * fromObject/encode, decode/toObject with etcd3's options) and originalName (lodash.camelcase,
 * as proto-loader: etcd3 calls the camel-cased aliases) as proto-loader's definitions.
 */
const CLIENT_DEFINITIONS = `
function __vipClientDefinitions(json, options) {
  const protobuf = require("protobufjs");
  const camelCase = require("lodash.camelcase");
  const root = protobuf.Root.fromJSON(json);
  root.resolveAll();
  const serializer = (cls) => (arg) => {
    if (Array.isArray(arg)) throw new Error("Failed to serialize message: expected object with " + cls.name + " structure, got array instead");
    return cls.encode(cls.fromObject(arg)).finish();
  };
  const deserializer = (cls) => (buf) => cls.toObject(cls.decode(buf), options);
  const def = {};
  const walk = (obj, parent) => {
    const name = parent ? parent + "." + obj.name : obj.name;
    if (obj instanceof protobuf.Service) {
      const service = {};
      for (const m of obj.methodsArray) {
        service[m.name] = {
          path: "/" + name + "/" + m.name, requestStream: !!m.requestStream, responseStream: !!m.responseStream,
          requestSerialize: serializer(m.resolvedRequestType), requestDeserialize: deserializer(m.resolvedRequestType, options),
          responseSerialize: serializer(m.resolvedResponseType), responseDeserialize: deserializer(m.resolvedResponseType, options),
          originalName: camelCase(m.name),
        };
      }
      def[name] = service;
    } else if (!(obj instanceof protobuf.Type) && !(obj instanceof protobuf.Enum) && obj.nested) {
      for (const k of Object.keys(obj.nested)) walk(obj.nested[k], name);
    }
  };
  walk(root, "");
  return def;
}
`;

/**
 * etcd3 parses its .proto files at load time from a path next to its own source, which a bundle
 * does not have. The plugin hands it the same definitions as protobufjs JSON, made at bundle
 * time with the very options etcd3 passes (keepCase applies at parse time; the rest are applied
 * by fromJSON as by loadSync), so nothing is read from disk and nothing is parsed at start.
 */
function etcd3Protos(repo) {
  const connectionPool = /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/;
  return {
    name: 'etcd3-protos',
    setup(build) {
      build.onLoad({ filter: connectionPool }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        const call = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`, \{/;
        const load = 'const proto_loader_1 = require("@grpc/proto-loader");';
        if (!call.test(source) || !source.includes(load)) throw new Error(`${args.path}: etcd3's proto loading changed; update packaging/lib/bundle.mjs`);
        const util = require(join(repo, 'node_modules/@grpc/proto-loader/build/src/util.js'));
        const root = util.loadProtosWithOptionsSync(join(repo, 'node_modules/etcd3/proto/rpc.proto'), { keepCase: true });
        const json = JSON.stringify(root.toJSON());
        return { contents: CLIENT_DEFINITIONS + source.replace(load, '').replace(call, `__vipClientDefinitions(${json}, {`), loader: 'js' };
      });
    },
  };
}

/**
 * Writes the bundle to `outfile`. `buildInfo` (version, commit, date, runtime) is compiled in:
 * src/version.ts prefers it to dist/build-info.json.
 */
export async function bundle({ repo, outfile, buildInfo }) {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    absWorkingDir: repo,
    stdin: {
      contents: "import { main } from './dist/src/main.js';\nmain(process.argv.slice(2)).then((code) => { process.exitCode = code; });\n",
      resolveDir: repo,
      sourcefile: 'vip-manager-entry.js',
      loader: 'js',
    },
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    // The bundle must also run on the oldest Node the checkout supports (tests run it there).
    target: 'node20',
    // CommonJS dependencies call require() for Node's built-in modules; an ES module has none.
    banner: { js: "import { createRequire as __vipCreateRequire } from 'node:module'; const require = __vipCreateRequire(import.meta.url);" },
    define: { VIP_MANAGER_BUILD_INFO: JSON.stringify(buildInfo) },
    // main.ts imports the daemon lazily; one file is what we want, so no code splitting.
    splitting: false,
    // Not minified: a stack trace in an operator's journal should name real functions and
    // lines; minifying saved no start-up time (measured: 0.27-0.28 s either way).
    minify: false,
    legalComments: 'eof',
    logLevel: 'warning',
    plugins: [etcd3Protos(repo)],
    metafile: true,
  });
  if (result.errors.length > 0) throw new Error(`esbuild: ${result.errors.map((e) => e.text).join('; ')}`);
  return { outfile, inputs: Object.keys(result.metafile.inputs) };
}
