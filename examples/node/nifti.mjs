// Minimal NIfTI-1 reader and writer (single-file .nii / .nii.gz), no dependencies beyond Node itself.
//
// readNifti(path) -> { dims: [nx, ny, nz], data: Float32Array (x fastest, scl_slope/scl_inter applied),
//                      affine: 4x4 voxel -> RAS mm (sform if sform_code > 0, else qform, else pixdim),
//                      header: the parsed fields writeNifti needs to copy the geometry }
// writeNifti(path, { header, dims, data, intentCode })  float32, the source header's geometry.
//
// The same rules as nibabel (affine choice, scaling); NIfTI-2 and multi-file (.hdr/.img) are refused.
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';

const READERS = {
  2: ['getUint8', 1], 4: ['getInt16', 2], 8: ['getInt32', 4], 16: ['getFloat32', 4], 64: ['getFloat64', 8],
  256: ['getInt8', 1], 512: ['getUint16', 2], 768: ['getUint32', 4],
};

export function readNifti(path) {
  let buf = readFileSync(path);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let le = true;
  let sizeofHdr = view.getInt32(0, le);
  if (sizeofHdr !== 348) {
    le = false;
    sizeofHdr = view.getInt32(0, le);
  }
  if (sizeofHdr === 540 || view.getInt32(0, true) === 540) throw new Error(`${path}: NIfTI-2 is not supported by this reader`);
  if (sizeofHdr !== 348) throw new Error(`${path}: not a NIfTI-1 file (sizeof_hdr ${view.getInt32(0, true)})`);
  const magic = buf.toString('latin1', 344, 347);
  if (magic !== 'n+1') throw new Error(`${path}: expected a single-file NIfTI-1 (magic "n+1"), got "${magic}"`);
  const i16 = (o) => view.getInt16(o, le);
  const f32 = (o) => view.getFloat32(o, le);
  const dim = Array.from({ length: 8 }, (_, i) => i16(40 + 2 * i));
  const pixdim = Array.from({ length: 8 }, (_, i) => f32(76 + 4 * i));
  const header = {
    dim, pixdim, datatype: i16(70), voxOffset: f32(108), sclSlope: f32(112), sclInter: f32(116),
    xyztUnits: buf[123], qformCode: i16(252), sformCode: i16(254),
    quatern: [f32(256), f32(260), f32(264)], qoffset: [f32(268), f32(272), f32(276)],
    srow: [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => f32(280 + 16 * r + 4 * c))),
  };
  const dims = dim.slice(1, 1 + dim[0]);
  while (dims.length > 3 && dims[dims.length - 1] === 1) dims.pop();
  if (dims.length !== 3) throw new Error(`${path}: expected a 3-D volume, got dimensions ${dims.join('x')}`);
  const reader = READERS[header.datatype];
  if (!reader) throw new Error(`${path}: unsupported NIfTI datatype ${header.datatype}`);
  const [method, size] = reader;
  const n = dims[0] * dims[1] * dims[2];
  const data = new Float32Array(n);
  const scaled = Number.isFinite(header.sclSlope) && header.sclSlope !== 0; // as nibabel: slope 0 or NaN = no scaling
  const slope = scaled ? header.sclSlope : 1;
  const inter = scaled && Number.isFinite(header.sclInter) ? header.sclInter : 0;
  let offset = Math.trunc(header.voxOffset);
  if (offset + n * size > buf.length) throw new Error(`${path}: file is shorter than its header says`);
  for (let i = 0; i < n; i++, offset += size) data[i] = view[method](offset, le) * slope + inter;
  return { dims, data, affine: affineOf(header), header };
}

function affineOf(h) {
  if (h.sformCode > 0) return [...h.srow.map((r) => r.slice()), [0, 0, 0, 1]];
  const [dx, dy, dz] = [h.pixdim[1], h.pixdim[2], h.pixdim[3]].map((v) => (v > 0 ? v : 1));
  if (h.qformCode > 0) {
    const [b, c, d] = h.quatern;
    const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
    const qfac = h.pixdim[0] < 0 ? -1 : 1;
    const R = [
      [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
      [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
      [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ];
    const s = [dx, dy, dz * qfac];
    return [0, 1, 2].map((r) => [R[r][0] * s[0], R[r][1] * s[1], R[r][2] * s[2], h.qoffset[r]]).concat([[0, 0, 0, 1]]);
  }
  return [[dx, 0, 0, 0], [0, dy, 0, 0], [0, 0, dz, 0], [0, 0, 0, 1]];
}

// dims: [nx, ny, nz] (a volume) or [nx, ny, nz, 1, 3] (a displacement field, intentCode 1007);
// data: Float32Array in NIfTI order (x fastest, then y, z, t, vector component).
export function writeNifti(path, { header, dims, data, intentCode = 0 }) {
  const n = dims.reduce((p, v) => p * v, 1);
  if (data.length !== n) throw new Error(`writeNifti: ${data.length} values for dimensions ${dims.join('x')}`);
  const out = Buffer.alloc(352 + 4 * n);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setInt32(0, 348, true);
  const dim = [dims.length, ...dims, ...Array(7 - dims.length).fill(1)];
  dim.forEach((d, i) => v.setInt16(40 + 2 * i, d, true));
  v.setInt16(68, intentCode, true);
  v.setInt16(70, 16, true); // float32
  v.setInt16(72, 32, true);
  const pixdim = header.pixdim.slice();
  for (let i = 4; i < 8; i++) pixdim[i] = 1;
  pixdim.forEach((p, i) => v.setFloat32(76 + 4 * i, p, true));
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true);
  v.setFloat32(116, 0, true);
  out[123] = header.xyztUnits;
  v.setInt16(252, header.qformCode, true);
  v.setInt16(254, header.sformCode, true);
  header.quatern.forEach((q, i) => v.setFloat32(256 + 4 * i, q, true));
  header.qoffset.forEach((q, i) => v.setFloat32(268 + 4 * i, q, true));
  header.srow.forEach((row, r) => row.forEach((x, c) => v.setFloat32(280 + 16 * r + 4 * c, x, true)));
  out.write('n+1\0', 344, 'latin1');
  const le = new Uint8Array(new Float32Array([1]).buffer)[3] === 0x3f; // little-endian host
  if (le) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 352);
  else for (let i = 0; i < n; i++) v.setFloat32(352 + 4 * i, data[i], true);
  writeFileSync(path, path.endsWith('.gz') ? gzipSync(out, { level: 6 }) : out);
}
