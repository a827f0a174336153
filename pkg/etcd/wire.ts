// The few pieces of the protobuf wire format that etcd's Range and Authenticate messages need
// (https://protobuf.dev/programming-guides/encoding/): varints, length-delimited fields, skipping.

export function varintSize (n: number): number {
  let size = 1
  while (n >= 0x80) { n = Math.floor(n / 128); size++ }
  return size
}

export function putVarint (buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) { buf[pos++] = (n % 128) | 0x80; n = Math.floor(n / 128) }
  buf[pos++] = n
  return pos
}

/** Field `field` (wire type 2) holding `bytes`, written at `pos`; returns the position after it. */
export function putBytesField (buf: Buffer, pos: number, field: number, bytes: Buffer): number {
  pos = putVarint(buf, pos, field * 8 + 2)
  pos = putVarint(buf, pos, bytes.length)
  return pos + bytes.copy(buf, pos)
}

/** A cursor over one message; throws on anything truncated or of a wire type proto3 does not use. */
export class Reader {
  pos: number
  constructor (readonly buf: Buffer, start: number, readonly end: number) { this.pos = start }

  get done (): boolean { return this.pos >= this.end }

  /** An unsigned varint, exact up to 2^53 (revisions and counts; larger ones are only skipped). */
  varint (): number {
    let n = 0
    let scale = 1
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError('protobuf: truncated varint')
      const b = this.buf[this.pos++] as number
      n += (b & 0x7f) * scale
      if (b < 0x80) return n
      scale *= 128
    }
    throw new RangeError('protobuf: varint longer than 10 bytes')
  }

  /** A 64-bit varint as decimal text, exact (etcd3's `longs: String` form); int64 fields read as signed. */
  varintString (signed: boolean): string {
    const start = this.pos
    const n = this.varint()
    if (Number.isSafeInteger(n) && this.pos - start < 10) return String(n)
    let v = 0n
    for (let p = this.pos - 1; p >= start; p--) v = (v << 7n) | BigInt((this.buf[p] as number) & 0x7f)
    return (signed ? BigInt.asIntN(64, v) : BigInt.asUintN(64, v)).toString()
  }

  /** Where a length-delimited field's contents start; the cursor moves past them (so `pos` is their end). */
  bytes (): number {
    const len = this.varint()
    const start = this.pos
    if (start + len > this.end) throw new RangeError('protobuf: field runs past its message')
    this.pos = start + len
    return start
  }

  skip (wireType: number): void {
    if (wireType === 0) this.varint()
    else if (wireType === 2) this.bytes()
    else if (wireType === 1 || wireType === 5) {
      this.pos += wireType === 1 ? 8 : 4
      if (this.pos > this.end) throw new RangeError('protobuf: truncated fixed-width field')
    } else throw new RangeError(`protobuf: unexpected wire type ${wireType}`)
  }
}
