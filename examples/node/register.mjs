#!/usr/bin/env node
// Register two NIfTI volumes with an end-to-end FNOReg graph (docs/DEPLOY.md) from Node.js.
//
//   npm ci            (or npm install; onnxruntime-node from npm, nothing else)
//   node register.mjs --model model.e2e.onnx --fixed fixed.nii.gz --moving moving.nii.gz --out out/ [--threads 2]
//
// Writes out/moved.nii.gz (the moving image on the fixed grid after registration) and out/warp.nii.gz
// (fixed -> moving displacement, 5-D (X,Y,Z,1,3), intent 1007, LPS mm: what ITK, ANTs, SimpleITK and
// Slicer read as a displacement field), and prints a JSON summary on stdout.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { readNifti, writeNifti } from './nifti.mjs';

const USAGE = 'usage: node register.mjs --model model.e2e.onnx --fixed fixed.nii.gz --moving moving.nii.gz --out DIR [--threads N]';

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(2);
}

function sameGrid(a, b) {
  return a.dims.every((n, i) => n === b.dims[i]) && a.affine.every((row, r) => row.every((x, c) => Math.abs(x - b.affine[r][c]) < 1e-4));
}

// The model was trained on volumes whose voxel axes i, j, k point to R, A, S (nibabel's "RAS+").
function checkRAS(affine) {
  for (let c = 0; c < 3; c++) {
    const column = [0, 1, 2].map((r) => affine[r][c]);
    const largest = column.reduce((best, x, r) => (Math.abs(x) > Math.abs(column[best]) ? r : best), 0);
    if (largest !== c || column[largest] <= 0) {
      return `voxel axis ${'ijk'[c]} points mostly along ${(column[largest] > 0 ? 'RAS' : 'LPI')[largest]}; reorient the images to RAS+ first (nibabel.as_closest_canonical, or flip/permute the voxel axes and the affine)`;
    }
  }
  return null;
}

// The sizes a graph accepts, from its card (<model>.json beside it): every axis min <= n <= max, n % multiple == 0.
function checkSize(modelPath, dims) {
  const cardPath = `${modelPath}.json`;
  if (!existsSync(cardPath)) return null;
  const card = JSON.parse(readFileSync(cardPath, 'utf8'));
  const m = card.size_multiple || 1;
  const ok = card.static_size
    ? card.static_size.every((n, i) => n === dims[i])
    : dims.every((n, i) => n >= card.min_size[i] && n <= card.max_size[i] && n % m === 0);
  return ok ? null : `size ${dims.join('x')} is not one the model takes (${card.static_size ? card.static_size.join('x') : `each axis a multiple of ${m}, ${card.min_size.join('x')} to ${card.max_size.join('x')}`}); resample both images to an accepted size first (docs/DEPLOY.md)`;
}

async function main() {
  let args;
  try {
    ({ values: args } = parseArgs({ options: {
      model: { type: 'string' }, fixed: { type: 'string' }, moving: { type: 'string' }, out: { type: 'string' },
      threads: { type: 'string', default: '0' }, help: { type: 'boolean', short: 'h' },
    } }));
  } catch (e) {
    fail(`${e.message}\n${USAGE}`);
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }
  for (const name of ['model', 'fixed', 'moving', 'out']) if (!args[name]) fail(`--${name} is required\n${USAGE}`);
  for (const name of ['model', 'fixed', 'moving']) if (!existsSync(args[name])) fail(`${args[name]} does not exist`);

  const fixed = readNifti(args.fixed);
  const moving = readNifti(args.moving);
  if (!sameGrid(fixed, moving)) fail('fixed and moving must lie on one grid (same dimensions and affine): resample the moving image onto the fixed grid first');
  const orientation = checkRAS(fixed.affine);
  if (orientation) fail(orientation);
  const sizeProblem = checkSize(args.model, fixed.dims);
  if (sizeProblem) fail(sizeProblem);

  const [nx, ny, nz] = fixed.dims;
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(args.model, {
    executionProviders: ['cpu'], intraOpNumThreads: Number(args.threads), graphOptimizationLevel: 'all',
  });
  const t1 = performance.now();
  // voxel-buffer order: a NIfTI data block (x fastest) is a row-major tensor of shape [1, 1, nz, ny, nx]
  const feeds = {
    fixed: new ort.Tensor('float32', fixed.data, [1, 1, nz, ny, nx]),
    moving: new ort.Tensor('float32', moving.data, [1, 1, nz, ny, nx]),
    fixed_affine: new ort.Tensor('float32', Float32Array.from(fixed.affine.flat()), [4, 4]),
  };
  const result = await session.run(feeds);
  const t2 = performance.now();

  mkdirSync(args.out, { recursive: true });
  const n = nx * ny * nz;
  const ddfMm = result.ddf_mm.data; // [1, 3, nz, ny, nx]: channel c = world axis R, A, S (mm)
  const warp = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    const sign = c < 2 ? -1 : 1; // RAS -> LPS, the convention of ITK displacement fields
    for (let i = 0; i < n; i++) warp[c * n + i] = sign * ddfMm[c * n + i];
  }
  writeNifti(join(args.out, 'warp.nii.gz'), { header: fixed.header, dims: [nx, ny, nz, 1, 3], data: warp, intentCode: 1007 });
  if (result.moved) writeNifti(join(args.out, 'moved.nii.gz'), { header: fixed.header, dims: [nx, ny, nz], data: result.moved.data });

  let maxVox = 0;
  const vox = result.ddf_vox.data;
  for (let i = 0; i < n; i++) maxVox = Math.max(maxVox, Math.hypot(vox[i], vox[n + i], vox[2 * n + i]));
  console.log(JSON.stringify({
    model: args.model, size: fixed.dims, outputs: session.outputNames,
    load_ms: Math.round(t1 - t0), run_ms: Math.round(t2 - t1), max_displacement_vox: maxVox,
    written: [join(args.out, 'warp.nii.gz')].concat(result.moved ? [join(args.out, 'moved.nii.gz')] : []),
  }));
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
