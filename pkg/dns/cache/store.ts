// A bounded map that evicts a random entry when full, as CoreDNS's cache does (DNS.md §4.5): O(1) per
// operation, no recency bookkeeping on the hit path.

interface Slot<V> {
  value: V
  index: number
}

export class RandomStore<V> {
  private readonly map = new Map<string, Slot<V>>()
  private readonly keys: string[] = []

  /** A capacity of 0 stores nothing. */
  constructor (readonly capacity: number, private readonly random: () => number = Math.random) {}

  get size (): number { return this.map.size }

  get (key: string): V | undefined {
    return this.map.get(key)?.value
  }

  /** Stores `value`; returns how many entries were evicted to make room (0 or 1). */
  set (key: string, value: V): number {
    const known = this.map.get(key)
    if (known !== undefined) { known.value = value; return 0 }
    if (this.capacity <= 0) return 0
    let evicted = 0
    if (this.map.size >= this.capacity) {
      this.delete(this.keys[Math.floor(this.random() * this.keys.length)] as string)
      evicted = 1
    }
    this.map.set(key, { value, index: this.keys.length })
    this.keys.push(key)
    return evicted
  }

  delete (key: string): boolean {
    const slot = this.map.get(key)
    if (slot === undefined) return false
    this.map.delete(key)
    // Swap the last key into the hole so the key list stays dense.
    const last = this.keys.pop() as string
    if (slot.index < this.keys.length) {
      this.keys[slot.index] = last
      const moved = this.map.get(last)
      if (moved !== undefined) moved.index = slot.index
    }
    return true
  }

  clear (): void {
    this.map.clear()
    this.keys.length = 0
  }
}
