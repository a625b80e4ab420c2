/**
 * The JS-owned heap inside the WebAssembly memory: first-fit over an address-sorted free list, neighbours
 * merged on free, the memory grown when nothing fits. Kernels never allocate; everything they touch comes
 * from here. Blocks are 64-byte aligned (a cache line: threads writing neighbouring blocks never share one).
 */
import { MinibatchError, ValueError } from '../../errors.js';

const ALIGN = 64;
const PAGE = 65536;

export class Heap {
  /** Free blocks sorted by address; parallel arrays keep the search a tight loop. */
  private readonly freeStart: number[] = [];
  private readonly freeSize: number[] = [];
  /** Size of every live block by address, so `free` needs only the pointer. */
  private readonly live = new Map<number, number>();
  private inUse = 0;

  constructor(
    private readonly memory: WebAssembly.Memory,
    base: number,
  ) {
    const start = Math.ceil(base / ALIGN) * ALIGN;
    const end = memory.buffer.byteLength;
    if (end > start) this.insertFree(start, end - start);
  }

  /** Bytes handed out and not yet freed (rounded up to the alignment). */
  get bytesInUse(): number {
    return this.inUse;
  }

  alloc(bytes: number): number {
    if (!Number.isInteger(bytes) || bytes < 0) {
      throw new ValueError('wasm.alloc', `bytes must be a non-negative integer (got ${bytes})`);
    }
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let i = this.freeSize.findIndex((s) => s >= size);
    if (i < 0) i = this.grow(size);
    const ptr = this.freeStart[i]!;
    if (this.freeSize[i] === size) {
      this.freeStart.splice(i, 1);
      this.freeSize.splice(i, 1);
    } else {
      this.freeStart[i] = ptr + size;
      this.freeSize[i]! -= size;
    }
    this.live.set(ptr, size);
    this.inUse += size;
    return ptr;
  }

  free(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new ValueError('wasm.free', `${ptr} is not a live allocation`);
    this.live.delete(ptr);
    this.inUse -= size;
    this.insertFree(ptr, size);
  }

  // Grows the memory so a block of `size` fits at the end; returns that block's index in the free list.
  // Grows by at least a quarter of the current size so a run of allocations does not grow page by page.
  private grow(size: number): number {
    const end = this.memory.buffer.byteLength;
    const last = this.freeStart.length - 1;
    const tail = last >= 0 && this.freeStart[last]! + this.freeSize[last]! === end ? this.freeSize[last]! : 0;
    const pages = Math.max(Math.ceil((size - tail) / PAGE), Math.ceil(end / PAGE / 4));
    try {
      this.memory.grow(pages);
    } catch {
      try {
        this.memory.grow(Math.ceil((size - tail) / PAGE));
      } catch {
        throw new MinibatchError(
          'wasm.alloc',
          `out of memory (got a request for ${size} bytes, ${this.inUse} bytes in use of ${end})`,
        );
      }
    }
    const grown = this.memory.buffer.byteLength;
    this.insertFree(end, grown - end);
    return this.freeStart.length - 1;
  }

  private insertFree(start: number, size: number): void {
    let lo = 0;
    let hi = this.freeStart.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.freeStart[mid]! < start) lo = mid + 1;
      else hi = mid;
    }
    const prev = lo - 1;
    if (prev >= 0 && this.freeStart[prev]! + this.freeSize[prev]! === start) {
      this.freeSize[prev]! += size;
      if (lo < this.freeStart.length && start + size === this.freeStart[lo]) {
        this.freeSize[prev]! += this.freeSize[lo]!;
        this.freeStart.splice(lo, 1);
        this.freeSize.splice(lo, 1);
      }
    } else if (lo < this.freeStart.length && start + size === this.freeStart[lo]) {
      this.freeStart[lo] = start;
      this.freeSize[lo]! += size;
    } else {
      this.freeStart.splice(lo, 0, start);
      this.freeSize.splice(lo, 0, size);
    }
  }
}
