// bgmv2.js: the page's engine. Loads a Background Matting V2 ONNX model into onnxruntime-web (WASM with
// SIMD, threads when the page is cross-origin isolated, or WebGPU) and mattes pictures.
// The app (app.js) uses it, and so does bgmv2's `browser` runtime (converters/browser_runtime.py),
// which opens this same page in headless Chromium and calls window.bgmv2.runBlobs (raw tensors in, the
// six outputs back, and the milliseconds of the model's run in the page).
//
// Script API (window.bgmv2):
//   ready                    Promise of the engine's info (backend, threads, precision, ...); rejects
//                            with a plain-words Error when the model cannot be loaded
//   matte(src, bgr)          src, bgr: URL, File/Blob or an image (canvas, ImageBitmap, video), same size;
//                            resolves to {pha, fgr, width, height} (Float32Array planes, pha 1xHxW,
//                            fgr 3xHxW, values in [0, 1]) plus `outputs` (every model output by name:
//                            {data: Float32Array, dims}); rejects with a plain-words MatteError
//   info                     the engine's info once ready (null before)
//   events                   EventTarget: 'progress' ({stage, loaded, total}), 'ready', 'failed'
// Query parameters: model=URL (else bgmv2-app.json's models), backend=auto|wasm|webgpu,
// threads=N (WASM; default all cores when cross-origin isolated, else 1), precision=auto|fp32|fp16.
import * as ort from './ort/ort.min.mjs';

export const OUTPUTS = ['pha', 'fgr', 'pha_sm', 'fgr_sm', 'err_sm', 'ref_sm'];
const MODEL_LIMIT = 2 ** 31 - 1; // onnxruntime-web reads one model file of at most 2 GB (protobuf, wasm32)

export class MatteError extends Error {
  constructor(message) {
    super(message);
    this.name = 'MatteError';
  }
}

export const events = new EventTarget();
const query = new URLSearchParams(location.search);

function say(stage, loaded = 0, total = 0) {
  events.dispatchEvent(new CustomEvent('progress', {detail: {stage, loaded, total}}));
}

function plain(error) {
  // onnxruntime's own reason, without its C++ source location and function signature (kept: the end)
  let text = String(error && error.message ? error.message : error).trim().split('\n')[0];
  const at = text.indexOf('ERROR_MESSAGE: ');
  if (at >= 0) text = text.slice(at + 'ERROR_MESSAGE: '.length);
  const located = text.match(/^\S+\.(?:cc|h|cpp):\d+ .*?\) (\S.*)$/);
  if (located) text = located[1];
  return text.length > 400 ? '...' + text.slice(-400) : text;
}

// -- choosing the model and the backend ---------------------------------------------------------------
async function appConfig() {
  if (query.get('model')) {
    return {models: [{file: query.get('model'), precision: null}], single: true};
  }
  let response;
  try {
    response = await fetch('bgmv2-app.json', {cache: 'no-cache'});
  } catch (error) {
    throw new MatteError(`The app's settings (bgmv2-app.json) could not be fetched: ${plain(error)}.`);
  }
  if (!response.ok) {
    throw new MatteError('No model: this page needs bgmv2-app.json beside it (made by `bgmv2 web OUT`) or ?model=URL.');
  }
  return response.json();
}

async function webgpuAdapter() {
  if (!navigator.gpu) return null;
  try {
    return await navigator.gpu.requestAdapter();
  } catch (error) {
    return null;
  }
}

function adapterName(adapter) {
  const info = adapter && adapter.info;
  if (!info) return adapter ? 'unknown adapter' : null;
  return [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unknown adapter';
}

function chooseModel(config, backend, adapter) {
  const models = config.models || [];
  if (config.single) return models[0];
  const asked = query.get('precision') || 'auto';
  const byPrecision = (p) => models.find((m) => m.precision === p);
  if (asked !== 'auto') {
    const found = byPrecision(asked);
    if (!found) throw new MatteError(`This app has no ${asked} model (it has ${models.map((m) => m.precision).join(', ')}).`);
    return found;
  }
  // fp16 where it pays: WebGPU with shader-f16; WASM computes fp16 slower than fp32.
  const f16 = backend === 'webgpu' && adapter && adapter.features && adapter.features.has('shader-f16');
  return (f16 && byPrecision('fp16')) || byPrecision('fp32') || models[0];
}

async function fetchModel(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new MatteError(`The model ${url} could not be fetched: ${plain(error)}.`);
  }
  if (!response.ok) throw new MatteError(`The model ${url} could not be fetched (HTTP ${response.status}).`);
  const total = Number(response.headers.get('content-length')) || 0;
  if (total > MODEL_LIMIT) {
    throw new MatteError(`The model is ${Math.round(total / 1e6)} MB: too large for onnxruntime-web (2 GB at most per model file); use a smaller backbone.`);
  }
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    say('model', loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

function tooLarge(text) {
  return /out of memory|memory access out of bounds|allocat|RangeError|Array buffer allocation|exceeds/i.test(text);
}

async function createSession(bytes, backend) {
  try {
    return await ort.InferenceSession.create(bytes, {
      executionProviders: [backend], graphOptimizationLevel: 'all', logSeverityLevel: 3});
  } catch (error) {
    const reason = plain(error);
    if (tooLarge(reason)) {
      throw new MatteError(`The model (${Math.round(bytes.byteLength / 1e6)} MB) is too large for the ${backend} backend in this browser: ${reason}`);
    }
    throw new MatteError(`This model cannot run in onnxruntime-web's ${backend} backend: ${reason}`);
  }
}

// -- the engine -----------------------------------------------------------------------------------
const engine = {session: null, info: null, queue: Promise.resolve()};

async function load() {
  say('settings');
  const config = await appConfig();
  const asked = query.get('backend') || 'auto';
  if (!['auto', 'wasm', 'webgpu'].includes(asked)) throw new MatteError(`Unknown backend ${asked}: use wasm, webgpu or auto.`);
  const adapter = asked === 'wasm' ? null : await webgpuAdapter();
  if (asked === 'webgpu' && !adapter) {
    throw new MatteError('This browser offers no WebGPU adapter (WebGPU is off or there is no usable GPU); use ?backend=wasm.');
  }
  const isolated = self.crossOriginIsolated === true;
  const cores = navigator.hardwareConcurrency || 1;
  const threads = isolated ? Math.max(1, Math.min(Number(query.get('threads')) || cores, cores * 4)) : 1;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
  ort.env.logLevel = 'error';
  // auto: WebGPU on a real GPU; a software adapter (SwiftShader, a fallback adapter) is far slower than WASM
  const software = adapter && (adapter.isFallbackAdapter || (adapter.info && adapter.info.isFallbackAdapter)
    || /swiftshader/i.test(adapterName(adapter) || ''));
  let backend = asked === 'auto' ? (adapter && !software ? 'webgpu' : 'wasm') : asked;
  let model = chooseModel(config, backend, adapter);
  const started = performance.now();
  let bytes = await fetchModel(model.file);
  say('compile', bytes.byteLength, bytes.byteLength);
  let session;
  let note = null;
  try {
    session = await createSession(bytes, backend);
  } catch (error) {
    if (asked !== 'auto' || backend === 'wasm') throw error;
    note = `WebGPU failed (${error.message}); using WASM.`;
    backend = 'wasm';
    const fp32 = chooseModel(config, backend, null);
    if (fp32.file !== model.file) bytes = await fetchModel(fp32.file);
    model = fp32;
    session = await createSession(bytes, backend);
  }
  const inputs = session.inputMetadata || [];
  const srcMeta = inputs.find((m) => m.name === 'src');
  const inputType = srcMeta && srcMeta.type ? srcMeta.type : (model.precision === 'fp16' ? 'float16' : 'float32');
  engine.session = session;
  engine.inputType = inputType;
  engine.info = {
    ort: (ort.env.versions && ort.env.versions.web) || 'unknown', backend, threads: backend === 'wasm' ? threads : null,
    simd: true, isolated, cores, adapter: backend === 'webgpu' ? adapterName(adapter) : null,
    model: model.file, precision: inputType === 'float16' ? 'fp16' : (model.precision || 'fp32'), inputType,
    modelBytes: bytes.byteLength, outputs: session.outputNames.slice(), inputs: session.inputNames.slice(),
    loadMs: performance.now() - started, note,
  };
  return engine.info;
}

function serial(task) {
  // one run at a time: onnxruntime-web sessions do not take concurrent runs
  const next = engine.queue.then(task, task);
  engine.queue = next.catch(() => {});
  return next;
}

// -- float16 <-> float32 (models written with `bgmv2 convert --precision fp16`) -------------------------
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function toHalf(values) {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    let exp = ((x >>> 23) & 0xff) - 127 + 15;
    let mant = x & 0x7fffff;
    if (exp >= 31) { out[i] = sign | 0x7c00; continue; }
    if (exp <= 0) {
      if (exp < -10) { out[i] = sign; continue; }
      mant |= 0x800000;
      const shift = 14 - exp;
      let half = mant >>> shift;
      const rest = mant & ((1 << shift) - 1);
      const midpoint = 1 << (shift - 1);
      if (rest > midpoint || (rest === midpoint && (half & 1))) half++;
      out[i] = sign | half;
      continue;
    }
    let half = sign | (exp << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++;
    out[i] = half;
  }
  return out;
}

function fromHalf(data) {
  if (!(data instanceof Uint16Array)) return Float32Array.from(data); // Float16Array where the browser has it
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const h = data[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    out[i] = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity)
      : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return out;
}

function asFloat32(tensor) {
  if (tensor.type === 'float32') return tensor.data;
  if (tensor.type === 'float16') return fromHalf(tensor.data);
  return Float32Array.from(tensor.data, Number);
}

async function runModel(src, bgr, dims) {
  const type = engine.inputType;
  const make = (data) => new ort.Tensor(type, type === 'float16' && data instanceof Float32Array ? toHalf(data) : data, dims);
  try {
    return await engine.session.run({src: make(src), bgr: make(bgr)});
  } catch (error) {
    const reason = plain(error);
    if (tooLarge(reason)) {
      throw new MatteError(`The pictures (${dims[3]}x${dims[2]}) are too large for the ${engine.info.backend} backend in this browser: ${reason}`);
    }
    throw new MatteError(`Matting failed in onnxruntime-web (${engine.info.backend}): ${reason}`);
  }
}

// -- pictures -------------------------------------------------------------------------------------
function nameOf(source) {
  if (typeof source === 'string') return decodeURIComponent(source.split(/[?#]/)[0].split('/').pop() || source);
  return source && source.name ? source.name : 'the picture';
}

export async function picture(source, role) {
  if (source instanceof ImageBitmap) return source;
  let blob = source;
  if (typeof source === 'string') {
    let response;
    try {
      response = await fetch(source);
    } catch (error) {
      throw new MatteError(`The ${role} ${nameOf(source)} could not be fetched: ${plain(error)}.`);
    }
    if (!response.ok) throw new MatteError(`The ${role} ${nameOf(source)} could not be fetched (HTTP ${response.status}).`);
    blob = await response.blob();
  }
  try {
    return await createImageBitmap(blob, {colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image'});
  } catch (error) {
    throw new MatteError(`The ${role} (${nameOf(source)}) is not a picture this browser can read: choose a JPEG, PNG or WebP file.`);
  }
}

export function sizeOf(image) {
  return [image.videoWidth || image.naturalWidth || image.width, image.videoHeight || image.naturalHeight || image.height];
}

export function pixels(image, width, height) {
  // float32 RGB planes (3xHxW) in [0, 1], as the model takes them
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', {willReadFrequently: true});
  context.drawImage(image, 0, 0, width, height);
  const rgba = context.getImageData(0, 0, width, height).data;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0, p = 0; p < plane; p++, i += 4) {
    out[p] = rgba[i] / 255;
    out[plane + p] = rgba[i + 1] / 255;
    out[2 * plane + p] = rgba[i + 2] / 255;
  }
  return out;
}

async function matte(src, bgr) {
  const info = await ready;
  const [a, b] = await Promise.all([picture(src, 'photo'), picture(bgr, 'background plate')]);
  const [width, height] = sizeOf(a);
  const [bw, bh] = sizeOf(b);
  if (width !== bw || height !== bh) {
    throw new MatteError(`The photo is ${width}x${height} but the background plate is ${bw}x${bh}: they must be the same size (take both with the same camera, from the same place).`);
  }
  if (width < 16 || height < 16) throw new MatteError(`The pictures are ${width}x${height}: too small to matte (16x16 at least).`);
  return serial(async () => {
    const started = performance.now();
    const results = await runModel(pixels(a, width, height), pixels(b, width, height), [1, 3, height, width]);
    const outputs = {};
    for (const name of info.outputs) {
      outputs[name] = {data: asFloat32(results[name]), dims: results[name].dims.slice()};
    }
    return {pha: outputs.pha.data, fgr: outputs.fgr.data, width, height, outputs, ms: performance.now() - started};
  });
}

// -- the browser runtime's entry: raw tensors through the local server ------------------------------
async function fetchBuffer(url) {
  const response = await fetch(url);
  if (!response.ok) throw new MatteError(`tensor ${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

async function runBlobs(request) {
  // request: {src, bgr: URLs of raw bytes in engine.inputType, dims, out: URL prefix for the outputs}
  await ready;
  const [a, b] = await Promise.all([fetchBuffer(request.src), fetchBuffer(request.bgr)]);
  const view = (buffer) => (engine.inputType === 'float16' ? new Uint16Array(buffer) : new Float32Array(buffer));
  return serial(async () => {
    const started = performance.now();
    const results = await runModel(view(a), view(b), request.dims);
    const ms = performance.now() - started;
    const described = [];
    for (const name of engine.session.outputNames) {
      const tensor = results[name];
      const data = tensor.data;
      // a Blob body: Chromium uploads it from the blob store in one go (an ArrayBuffer body was measured ~15x slower)
      const body = new Blob([new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
      const response = await fetch(request.out + name, {method: 'PUT', body});
      if (!response.ok) throw new MatteError(`could not return ${name} (HTTP ${response.status})`);
      described.push({name, dims: tensor.dims.slice(), type: tensor.type});
    }
    return {outputs: described, ms};
  });
}

export const ready = load().then((info) => {
  events.dispatchEvent(new CustomEvent('ready', {detail: info}));
  return info;
}, (error) => {
  const failure = error instanceof MatteError ? error : new MatteError(`The model could not be loaded: ${plain(error)}`);
  events.dispatchEvent(new CustomEvent('failed', {detail: failure}));
  throw failure;
});
ready.catch(() => {}); // reported through 'failed' and to whoever awaits `ready`, never as an unhandled rejection

export const api = {
  ready, matte, events, runBlobs, MatteError, OUTPUTS,
  get info() { return engine.info; },
};
window.bgmv2 = api;
