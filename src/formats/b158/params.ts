import type { LayoutParams } from "../../pack/layouts.js";

/** Layout parameters as the header spells them (docs/FORMAT.md §1.6), and back. */
export function headerParams(params: LayoutParams): Record<string, number | string> {
  switch (params.layout) {
    case "i2_s":
      return { block_size: params.blockSize, variant: params.variant };
    case "tl1":
    case "tl2":
      return { BM: params.BM, BK: params.BK, bm: params.bm, tiling_source: params.tilingSource };
    case "tq1_0":
    case "tq2_0":
    case "q2_0":
      return { block_size: params.blockSize };
  }
}

/** The reader's inverse; the schema has already checked field presence and types. */
export function layoutParams(layout: string, params: Readonly<Record<string, number | string>>): LayoutParams | undefined {
  switch (layout) {
    case "i2_s":
      return { layout, blockSize: params.block_size as 128 | 64, variant: params.variant as "x86" | "arm" };
    case "tl1":
    case "tl2":
      return { layout, BM: params.BM as number, BK: params.BK as number, bm: params.bm as number, tilingSource: params.tiling_source as "preset" | "computed" | "kernel-config" };
    case "tq1_0":
    case "tq2_0":
      return { layout, blockSize: 256 };
    case "q2_0":
      return { layout, blockSize: 64 };
    default:
      return undefined;
  }
}
