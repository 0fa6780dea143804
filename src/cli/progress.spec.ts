import { describe, expect, it } from "vitest";
import { formatClock, formatDuration, Progress, tensorLine, type ProgressMode } from "./progress.js";

/** A stream that records what was written, and a clock the test moves. */
function harness(mode: ProgressMode, columns = 80) {
  const writes: string[] = [];
  let now = 0;
  const progress = new Progress({ mode, stream: { write: (t: string) => writes.push(t), isTTY: mode === "tty", columns }, now: () => now });
  return { progress, writes, text: () => writes.join(""), tick: (ms: number) => (now += ms) };
}

describe("Progress", () => {
  it("lines mode (stderr not a terminal): a phase line, one [ i/N] line per step, a status line at most every 10 s", () => {
    const { progress, writes, tick } = harness("lines");
    progress.phase("converting 291 tensors to i2_s", { total: 2 * 1024 ** 3, unit: "bytes", steps: 291 });
    tick(2000);
    progress.update({ done: 1.6 * 1024 ** 2, step: 12, line: tensorLine("blk.0.attn_q.weight", [2560, 2560], "BF16", "i2_s", 12.5 * 1024 ** 2, 1.6 * 1024 ** 2) });
    progress.update({ done: 1024 ** 3 }); // inside a step: too soon for a status line
    tick(10_000);
    progress.update({ done: 1024 ** 3 });
    expect(writes).toEqual([
      "converting 291 tensors to i2_s: 2.00 GiB\n",
      "[ 12/291] blk.0.attn_q.weight [2560, 2560] bf16 -> i2_s  12.5 MiB -> 1.60 MiB\n",
      // 1 GiB in 12 s: 85.3 MiB/s, 1 GiB left: 12 s
      "converting 291 tensors to i2_s: 50%  1.00 GiB / 2.00 GiB  85.3 MiB/s  0:12  ETA 12 s\n",
    ]);
  });

  it("leaves out skipped bytes (cached or resumed downloads) from the rate, and prints steps without a count as they are", () => {
    const { progress, writes, tick } = harness("lines", 80);
    progress.phase("downloading org/model", { total: 100 * 1024 ** 2, unit: "bytes" });
    progress.update({ done: 50 * 1024 ** 2, skipped: 50 * 1024 ** 2, line: "model-00001-of-00002.safetensors  50.0 MiB  (already in the cache)" });
    tick(10_000);
    progress.update({ done: 60 * 1024 ** 2 });
    expect(writes.slice(1)).toEqual(["model-00001-of-00002.safetensors  50.0 MiB  (already in the cache)\n", "downloading org/model: 60%  60.0 MiB / 100 MiB  1.00 MiB/s  0:10  ETA 40 s\n"]);
  });

  it("tty mode: one status line redrawn in place (at most 10 a second), cleared for notes and at the end", () => {
    const { progress, text, tick, writes } = harness("tty", 120);
    progress.phase("validating 46 tensors", { total: 46, unit: "tensors" });
    tick(1000);
    progress.update({ done: 10, item: "model.layers.0.mlp.up_proj.weight" });
    progress.update({ done: 11 }); // within 100 ms: not drawn
    const drawn = writes.filter((w) => w.startsWith("\r") && w.trim() !== "");
    expect(drawn).toHaveLength(2);
    // the item's end stays visible when the line is too long
    expect(drawn[1]).toBe(`\r${"validating 46 tensors  [####----------------]  21%  10 / 46 tensors  10 tensors/s  0:01  ETA 4 s  …0.mlp.up_proj.weight".padEnd(119)}`);
    progress.note("resuming x at 1 MiB");
    progress.end();
    expect(text()).toContain(`\r${" ".repeat(119)}\rresuming x at 1 MiB\n`);
    expect(text().endsWith(`\r${" ".repeat(119)}\r`)).toBe(true);
  });

  it("a status line never exceeds the terminal width", () => {
    const { progress, writes } = harness("tty", 40);
    progress.phase("converting", { total: 10, unit: "bytes" });
    progress.update({ done: 5, item: "a.very.long.tensor.name.that.does.not.fit.weight" });
    for (const w of writes) expect(w.replace(/^\r/, "").length).toBeLessThanOrEqual(39);
  });

  it("off mode (--quiet) writes nothing", () => {
    const { progress, writes } = harness("off");
    progress.phase("converting", { total: 10, unit: "bytes" });
    progress.update({ done: 5, line: "x" });
    progress.note("n");
    progress.end();
    expect(writes).toEqual([]);
  });
});

describe("durations people read", () => {
  it.each([
    [0.2, "1 s"],
    [59, "59 s"],
    [200, "3 min 20 s"],
    [180, "3 min"],
    [3900, "1 h 05 min"],
    [2e5, "more than a day"],
    [Infinity, "more than a day"],
  ])("ETA %d s reads %s", (seconds, text) => expect(formatDuration(seconds)).toBe(text));

  it("elapsed time is a clock", () => {
    expect([formatClock(7), formatClock(754), formatClock(3723)]).toEqual(["0:07", "12:34", "1:02:03"]);
  });
});
