// Run one ONNX file in onnxruntime-node (CPU) on a batch, for tests/test_node_runtime.py.
//
//   node tests/node/run_model.mjs REQUEST.json     (or the request on stdin)
//   REQUEST: {"model": path, "inputs": {name: {"type", "dims", "data"}}, "outputs": [names] (default: all),
//             "threads": 1}
//   type: an ONNX Runtime tensor type (float32, float64, int64, int32, int8, uint8, bool, string); data: the
//   elements flat, in row-major order (int64 as numbers or decimal strings).
//   → stdout: {"outputs": {name: {"type", "dims", "data"}}, "inputs": [...metadata], "versions": {...},
//              "seconds": {"load", "run"}}; floats as JSON numbers (float32 values are exact in a double),
//              non-finite ones as the strings "NaN", "Infinity", "-Infinity"; int64 as numbers when safe, else
//              strings; strings as strings.
//   A model that fails to load or run: {"error": message, "stage": "load" | "run"} on stdout, exit status 2.
//
// onnxruntime-node is taken from $TICKETPACK_NODE_MODULES/node_modules (default: examples/node/node_modules).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.TICKETPACK_NODE_MODULES || path.join(here, '..', '..', 'examples', 'node');
const ort = createRequire(path.join(path.resolve(modules), 'node_modules', 'noop.js'))('onnxruntime-node');

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int32: Int32Array, int16: Int16Array, int8: Int8Array,
  uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, bool: Uint8Array,
};

function toTensor(name, { type, dims, data }) {
  if (!Array.isArray(dims) || !Array.isArray(data)) throw new Error(`input ${name}: dims and data must be arrays`);
  const size = dims.reduce((a, b) => a * b, 1);
  if (size !== data.length) {
    throw new Error(`input ${name}: dims ${JSON.stringify(dims)} hold ${size} elements, data has ${data.length}`);
  }
  if (type === 'string') return new ort.Tensor('string', data.map(String), dims);
  if (type === 'int64') return new ort.Tensor('int64', BigInt64Array.from(data, (v) => BigInt(v)), dims);
  if (type === 'uint64') return new ort.Tensor('uint64', BigUint64Array.from(data, (v) => BigInt(v)), dims);
  const Array_ = ARRAYS[type];
  if (!Array_) throw new Error(`input ${name}: unsupported type ${type}`);
  return new ort.Tensor(type, Array_.from(data, Number), dims);
}

function number(v) {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : (v > 0 ? 'Infinity' : '-Infinity');
  return v;
}

function fromTensor(t) {
  const data = t.type === 'string' ? Array.from(t.data) : Array.from(t.data, number);
  return { type: t.type, dims: Array.from(t.dims, Number), data };
}

function fail(stage, err) {
  process.stdout.write(JSON.stringify({ error: String(err && err.message ? err.message : err), stage }) + '\n');
  process.exit(2);
}

const request = JSON.parse(readFileSync(process.argv[2] || 0, 'utf8'));
const opts = { executionProviders: ['cpu'], intraOpNumThreads: request.threads ?? 1, interOpNumThreads: 1 };
let session;
let t0 = performance.now();
try {
  session = await ort.InferenceSession.create(request.model, opts);
} catch (err) {
  fail('load', err);
}
const load = (performance.now() - t0) / 1000;
let result;
t0 = performance.now();
try {
  const feeds = Object.fromEntries(Object.entries(request.inputs).map(([n, v]) => [n, toTensor(n, v)]));
  result = await session.run(feeds, request.outputs ?? session.outputNames);
} catch (err) {
  fail('run', err);
}
const run = (performance.now() - t0) / 1000;
const outputs = Object.fromEntries(Object.entries(result).map(([n, t]) => [n, fromTensor(t)]));
process.stdout.write(JSON.stringify({
  outputs,
  inputs: session.inputMetadata,
  versions: { ...ort.env.versions, nodejs: process.versions.node },
  seconds: { load, run },
}) + '\n');
