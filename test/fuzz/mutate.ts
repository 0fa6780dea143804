import { Random } from "../../fixtures/lib/random.js";

/**
 * Seeded mutators for the fuzzer: byte-level damage (flips, boundary integers at any width,
 * insertions, deletions, truncation, copies of one region over another) and structure-aware
 * damage to decoded JSON / MessagePack values (a number made huge or negative, a type swapped,
 * a key dropped, an array emptied or grown). Every choice comes from one Random, so a case is
 * replayed exactly from its seed.
 */

/** Integers that sit on a boundary some reader checks: sizes, counts, lengths, offsets. */
const BOUNDARY = [0n, 1n, 2n, 3n, 4n, 7n, 8n, 31n, 32n, 63n, 64n, 127n, 128n, 255n, 256n, 4095n, 4096n, 65535n, 65536n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n];

export function pick<T>(random: Random, items: readonly T[]): T {
  return items[random.int(0, items.length - 1)]!;
}

function boundary(random: Random): bigint {
  const value = pick(random, BOUNDARY);
  return random.next() < 0.2 ? value + BigInt(random.int(-2, 2)) : value;
}

/** A position, biased towards `hot` bytes (a header) when given. */
function position(random: Random, length: number, hot?: number): number {
  if (length === 0) return 0;
  if (hot !== undefined && hot > 0 && random.next() < 0.8) return random.int(0, Math.min(hot, length) - 1);
  return random.int(0, length - 1);
}

/** One to `most` byte-level mutations of `input` (a new array); `hot` bytes at the start are hit most. */
export function mutateBytes(random: Random, input: Uint8Array, hot?: number, most = 4): Uint8Array {
  let bytes: Uint8Array = input.slice();
  const count = random.int(1, most);
  for (let n = 0; n < count; n++) {
    const at = position(random, bytes.length, hot);
    switch (random.int(0, 8)) {
      case 0: // flip one bit
        if (bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << random.int(0, 7));
        break;
      case 1: // a random byte
        if (bytes.length > 0) bytes[at] = random.int(0, 255);
        break;
      case 2: // a boundary integer, little-endian, 1/2/4/8 bytes wide
      case 3: {
        const width = pick(random, [1, 2, 4, 8]);
        const value = BigInt.asUintN(64, boundary(random));
        for (let i = 0; i < width && at + i < bytes.length; i++) bytes[at + i] = Number((value >> BigInt(8 * i)) & 0xffn);
        break;
      }
      case 4: {
        // insert a few bytes
        const extra = Uint8Array.from({ length: random.int(1, 16) }, () => random.int(0, 255));
        bytes = concat(bytes.subarray(0, at), extra, bytes.subarray(at));
        break;
      }
      case 5: // delete a run
        bytes = concat(bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + random.int(1, 64))));
        break;
      case 6: // truncate
        bytes = bytes.slice(0, at);
        break;
      case 7: {
        // copy a run over another (a duplicated or misplaced record)
        const from = position(random, bytes.length, hot);
        const length = random.int(1, 64);
        bytes.copyWithin(at, from, Math.min(bytes.length, from + length));
        break;
      }
      default: // a run of one value (zeroed or 0xff-filled region)
        bytes.fill(pick(random, [0, 0xff, 0x7f, 0x80]), at, Math.min(bytes.length, at + random.int(1, 32)));
    }
  }
  return bytes;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

type Node = unknown;

/** Every container (object or array) in a decoded value, with the keys it holds. */
function containers(value: Node, out: { holder: Record<string, unknown> | unknown[]; key: string | number }[] = [], depth = 0): typeof out {
  if (depth > 32 || value === null || typeof value !== "object" || value instanceof Uint8Array) return out;
  if (Array.isArray(value)) {
    // long arrays (tensor lists, token lists) get a sample of their items, not all
    const step = Math.max(1, Math.floor(value.length / 64));
    for (let i = 0; i < value.length; i += step) {
      out.push({ holder: value, key: i });
      containers(value[i], out, depth + 1);
    }
  } else {
    for (const key of Object.keys(value)) {
      out.push({ holder: value as Record<string, unknown>, key });
      containers((value as Record<string, unknown>)[key], out, depth + 1);
    }
  }
  return out;
}

/** A replacement value that breaks a type, a range or a size assumption. */
function hostileValue(random: Random, current: unknown): unknown {
  const numbers = [0, -1, 1, -0.5, 0.5, 3, 255, 256, 65536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53 + 2, 1e18, 1e300, -1e300, 4_000_000_000, Number.MAX_SAFE_INTEGER];
  switch (random.int(0, 9)) {
    case 0:
    case 1:
    case 2:
      return typeof current === "number" && random.next() < 0.5 ? current + pick(random, [-1, 1, 2, -2, 32, 1024]) : pick(random, numbers);
    case 3:
      return pick(random, ["", "x", "f32", "i2_s", "tl2", "tq1_0", "../x", "a".repeat(300), "model.layers.4000000000.self_attn.q_proj.weight", "\u0000"]);
    case 4:
      return pick(random, [null, true, false]);
    case 5:
      return Array.isArray(current) ? current.slice(0, random.int(0, current.length)) : [];
    case 6:
      return Array.isArray(current) && current.length > 0 ? [...current, ...current.slice(0, random.int(1, Math.min(4, current.length)))] : {};
    case 7:
      return Array.isArray(current) ? current.map((x) => (typeof x === "number" ? pick(random, numbers) : x)) : [pick(random, numbers), pick(random, numbers)];
    case 8: {
      // nest it deeper: a little, or past what any recursive walk of it survives
      let v: unknown = current;
      for (let i = random.next() < 0.1 ? 3000 : random.int(1, 100); i > 0; i--) v = [v];
      return v;
    }
    default:
      return undefined; // dropped
  }
}

/** One to `most` structure-aware mutations of a decoded JSON or MessagePack value, in place. */
export function mutateValue(random: Random, root: Node, most = 3): void {
  const count = random.int(1, most);
  for (let n = 0; n < count; n++) {
    const places = containers(root);
    if (places.length === 0) return;
    const { holder, key } = pick(random, places);
    const next = hostileValue(random, (holder as Record<string | number, unknown>)[key]);
    if (Array.isArray(holder)) {
      if (next === undefined) holder.splice(key as number, 1);
      else holder[key as number] = next;
    } else if (next === undefined) delete holder[key as string];
    else holder[key as string] = next;
  }
}
