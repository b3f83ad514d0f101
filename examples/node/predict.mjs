// Classify raw inputs in Node.js with a self-contained ticketpack file (`ticketpack export --self-contained`):
//   npm ci && node predict.mjs model.onnx "great battery life" "broke after a week"
//   node predict.mjs model.onnx --json inputs.json   (a list of texts, or of uint8 images as [H][W][C] arrays)
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';

const [model, ...args] = process.argv.slice(2);
const fail = (why) => { console.error(why); process.exit(2); };
if (!model || !args.length) fail('usage: node predict.mjs MODEL.onnx TEXT... | --json INPUTS.json');
const session = await ort.InferenceSession.create(model);
if (!session.outputNames.includes('label')) fail(`${model} is not self-contained: export it with --self-contained`);
const items = args[0] === '--json' ? JSON.parse(readFileSync(args[1], 'utf8')) : args;
const [input] = session.inputMetadata; // "raw": string (N) for texts, uint8 (N, H, W, C) for images
const dims = [items.length];
for (let x = items[0]; Array.isArray(x); x = x[0]) dims.push(x.length);
const typed = { uint8: Uint8Array, float32: Float32Array, float64: Float64Array }[input.type];
const data = input.type === 'string' ? items.map(String) : typed.from(items.flat(Infinity));
const { label, probabilities: p } = await session.run({ [input.name]: new ort.Tensor(input.type, data, dims) });
const k = p.dims[1];
items.forEach((item, i) => {
  const best = Math.max(...p.data.slice(i * k, (i + 1) * k));
  console.log(`${label.data[i]}\t${best.toFixed(3)}\t${typeof item === 'string' ? item : `image ${i}`}`);
});
