// Bytes copied by hand, for the hot path and for the name tables.

/**
 * Copy `src[start, end)` to `dst` at `at`. For the short copies of the hot path (a question, a
 * cached answer): Buffer#copy and TypedArray#set of a subarray allocate a view object for every
 * sub-range copy, which was several objects per query; a loop over ~100 bytes costs less.
 */
export function copyBytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, at: number): void {
  for (let i = start; i < end; i++) dst[at++] = src[i]!;
}
