// app.js: the page a person uses. Pick a photo and a background plate (or the webcam and a captured
// plate), see the alpha and a composite over a colour or a picture, download the PNGs.
// The engine (bgmv2.js) does the matting; this file only wires the page to it. Problems are shown in
// plain words in #message (never thrown into the console); document.body.dataset.state says where
// the page is: loading, ready, working, done, error (a message is shown), failed (no model).
import {api, events, MatteError, picture, sizeOf} from './bgmv2.js';

const $ = (id) => document.getElementById(id);
const chosen = {src: null, bgr: null, background: null};
let last = null; // the last matte: {pha, fgr, width, height}
let stream = null;
let plate = null;
let liveRunning = false;

function state(name) {
  document.body.dataset.state = name;
}

function show(text, kind = 'error') {
  const box = $('message');
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

function problem(error) {
  // every failure ends here: a sentence on the page, not an exception in the console
  const text = error instanceof MatteError || (error && error.name === 'MatteError') ? error.message
    : `Something went wrong: ${error && error.message ? error.message : error}`;
  show(text);
  state(api.info ? 'error' : 'failed');
}

function megabytes(bytes) {
  return (bytes / 1e6).toFixed(1);
}

events.addEventListener('progress', (event) => {
  const {stage, loaded, total} = event.detail;
  const bar = $('progress');
  if (stage === 'model') {
    bar.max = total || 1;
    bar.value = total ? loaded : 0;
    $('status').textContent = total ? `Loading the model: ${megabytes(loaded)} of ${megabytes(total)} MB`
      : `Loading the model: ${megabytes(loaded)} MB`;
  } else if (stage === 'compile') {
    bar.removeAttribute('value');
    $('status').textContent = 'Preparing the model...';
  }
});

function engineText(info) {
  const how = info.backend === 'webgpu' ? `WebGPU (${info.adapter})`
    : `WASM SIMD, ${info.threads} thread${info.threads === 1 ? '' : 's'}${info.isolated ? '' : ' (page not cross-origin isolated)'}`;
  return `onnxruntime-web ${info.ort}, ${how}, ${info.precision} model`;
}

api.ready.then((info) => {
  $('progress').max = 1;
  $('progress').value = 1;
  $('status').textContent = `Model ready (${megabytes(info.modelBytes)} MB, ${Math.round(info.loadMs)} ms).`;
  $('engine').textContent = engineText(info);
  $('matte').disabled = false;
  if (info.note) show(info.note, 'info');
  state('ready');
  if (chosen.src && chosen.bgr) run();
}, (error) => {
  $('progress').value = 0;
  $('status').textContent = 'The model could not be loaded.';
  problem(error);
});

// -- drawing --------------------------------------------------------------------------------------
function backgroundPixels(width, height) {
  const picked = document.querySelector('input[name="background"]:checked').value;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', {willReadFrequently: true});
  if (picked === 'picture' && chosen.background) {
    const [bw, bh] = sizeOf(chosen.background);
    const scale = Math.max(width / bw, height / bh); // cover the frame, centred
    const w = bw * scale;
    const h = bh * scale;
    context.drawImage(chosen.background, (width - w) / 2, (height - h) / 2, w, h);
  } else {
    context.fillStyle = $('colour').value;
    context.fillRect(0, 0, width, height);
  }
  return context.getImageData(0, 0, width, height).data;
}

function paint(canvas, width, height, fill) {
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d');
  const image = context.createImageData(width, height);
  fill(image.data);
  context.putImageData(image, 0, 0);
}

function byte(x) {
  return Math.max(0, Math.min(255, Math.round(x * 255)));
}

function draw() {
  if (!last) return;
  const {pha, fgr, width, height} = last;
  const plane = width * height;
  const under = backgroundPixels(width, height);
  paint($('composite'), width, height, (out) => {
    for (let p = 0, i = 0; p < plane; p++, i += 4) {
      const a = pha[p];
      out[i] = byte(a * fgr[p] + (1 - a) * under[i] / 255);
      out[i + 1] = byte(a * fgr[plane + p] + (1 - a) * under[i + 1] / 255);
      out[i + 2] = byte(a * fgr[2 * plane + p] + (1 - a) * under[i + 2] / 255);
      out[i + 3] = 255;
    }
  });
  paint($('alpha'), width, height, (out) => {
    for (let p = 0, i = 0; p < plane; p++, i += 4) {
      out[i] = out[i + 1] = out[i + 2] = byte(pha[p]);
      out[i + 3] = 255;
    }
  });
  $('results').hidden = false;
  if (!liveRunning) links();
}

const urls = {};

function link(id, canvas) {
  canvas.toBlob((blob) => {
    if (urls[id]) URL.revokeObjectURL(urls[id]);
    urls[id] = URL.createObjectURL(blob);
    $(id).href = urls[id];
  }, 'image/png');
}

function links() {
  const {pha, fgr, width, height} = last;
  const plane = width * height;
  const foreground = document.createElement('canvas');
  paint(foreground, width, height, (out) => {
    for (let p = 0, i = 0; p < plane; p++, i += 4) {
      out[i] = byte(fgr[p]);
      out[i + 1] = byte(fgr[plane + p]);
      out[i + 2] = byte(fgr[2 * plane + p]);
      out[i + 3] = byte(pha[p]);
    }
  });
  link('download-composite', $('composite'));
  link('download-alpha', $('alpha'));
  link('download-foreground', foreground);
}

// -- matting --------------------------------------------------------------------------------------
async function run() {
  if (!chosen.src || !chosen.bgr) {
    show(!chosen.src ? 'Choose a photo first.' : 'Choose the background plate (the same view without the subject).');
    state(api.info ? 'error' : 'failed');
    return;
  }
  if (!api.info) return; // runs when the model is ready
  show('');
  state('working');
  $('status').textContent = 'Matting...';
  try {
    const result = await api.matte(chosen.src, chosen.bgr);
    last = result;
    draw();
    $('timing').textContent = `${result.width}x${result.height}, ${Math.round(result.ms)} ms`;
    $('status').textContent = 'Done.';
    state('done');
  } catch (error) {
    $('status').textContent = 'Model ready.';
    problem(error);
  }
}

async function choose(role, file) {
  chosen[role] = file || null;
  last = null;
  $('results').hidden = true; // the results shown were made from the pictures chosen before
  if (chosen.src && chosen.bgr) await run();
}

$('src').addEventListener('change', (event) => choose('src', event.target.files[0]));
$('bgr').addEventListener('change', (event) => choose('bgr', event.target.files[0]));
$('matte').addEventListener('click', () => run());

$('sample').addEventListener('click', async () => {
  chosen.src = 'sample/src.jpg';
  chosen.bgr = 'sample/bgr.jpg';
  await run();
});

if (!new URLSearchParams(location.search).get('model')) { // an app folder: its settings say if the sample is there
  fetch('bgmv2-app.json').then((r) => (r.ok ? r.json() : null)).then((config) => {
    $('sample').hidden = !(config && config.sample);
  }, () => {});
}

for (const radio of document.querySelectorAll('input[name="background"]')) radio.addEventListener('change', draw);
$('colour').addEventListener('input', () => {
  document.querySelector('input[name="background"][value="colour"]').checked = true;
  draw();
});
$('background-picture').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  try {
    chosen.background = await picture(file, 'background picture');
    document.querySelector('input[name="background"][value="picture"]').checked = true;
    show('');
    draw();
  } catch (error) {
    problem(error);
  }
});

// -- the webcam -----------------------------------------------------------------------------------
function frame() {
  const video = $('video');
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  return canvas;
}

$('webcam').addEventListener('click', async () => {
  if (stream) return;
  try {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new MatteError('This browser gives pages no camera here (open the page from http://127.0.0.1 or https).');
    }
    stream = await navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}, height: {ideal: 480}}});
  } catch (error) {
    problem(error instanceof MatteError ? error : new MatteError(`No camera: ${error && error.message ? error.message : error}. Use pictures instead.`));
    return;
  }
  const video = $('video');
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  $('capture-plate').disabled = false;
  show('Step out of view and capture the background plate.', 'info');
});

$('capture-plate').addEventListener('click', () => {
  plate = frame();
  chosen.bgr = plate;
  $('capture-photo').disabled = false;
  $('live').disabled = false;
  show('Background plate captured. Step back in and capture a photo, or tick live.', 'info');
});

$('capture-photo').addEventListener('click', async () => {
  chosen.src = frame();
  await run();
});

$('live').addEventListener('change', async (event) => {
  liveRunning = event.target.checked;
  while (liveRunning && stream) {
    chosen.src = frame();
    await run();
    if (document.body.dataset.state === 'error') break;
  }
  liveRunning = false;
  $('live').checked = false;
  if (last) links();
});

window.addEventListener('unhandledrejection', (event) => {
  // nothing the page starts should end in the console: say it on the page instead
  event.preventDefault();
  problem(event.reason);
});
