// Reader of the bundles that `python -m gridlib export-web` writes (gridlib/web.py: pack).
// Layout: uint32 little-endian header length n, n bytes of JSON {meta, arrays}, then the
// arrays' bytes; every array starts at a multiple of 8 bytes, so typed views need no copy.

const TYPES = { f4: Float32Array, f8: Float64Array, u1: Uint8Array, i4: Int32Array };

// gridlib.web.unpack: (arrays, meta) of one bundle held in an ArrayBuffer.
export function unpack(buffer) {
  const n = new DataView(buffer).getUint32(0, true);
  const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
  const base = 4 + n;
  const arrays = {};
  const shapes = {};
  for (const [name, e] of Object.entries(head.arrays)) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    arrays[name] = new TYPES[e.dtype](buffer, base + e.offset, count);
    shapes[name] = e.shape;
  }
  return { meta: head.meta, arrays, shapes };
}

// Fetch and unpack one bundle; null where the file is absent (a model without saved weights).
export async function loadBundle(url, optional = false) {
  const res = await fetch(url);
  if (!res.ok) {
    if (optional && res.status === 404) return null;
    throw new Error(`${url}: HTTP ${res.status}`);
  }
  return unpack(await res.arrayBuffer());
}

// Float64 copy of a typed array (float32 weights are widened exactly).
export function f64(a) {
  return Float64Array.from(a);
}
