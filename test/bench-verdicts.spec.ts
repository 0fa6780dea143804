import { describe, expect, it } from "vitest";
import { conversionVerdicts } from "../bench/conversion.js";

// The rows conversion's section makes, trimmed to what the thread-scaling verdicts read.
const row = (threads: number, wallS: number, convertingS: number, convertingCpuS: number) => ({
  model: "bitnet-b1.58-2B-4T-bf16",
  layout: "tq2_0",
  threads,
  cores: 2,
  wallS,
  cpuS: convertingCpuS + 1,
  userS: convertingCpuS,
  sysS: 1,
  cpuNsPerWeight: 2,
  peakRssMiB: 160,
  xFloor: 2,
  floorS: 1,
  load: 1,
  convertingS,
  validatingS: 1.1,
  convertingCpuS,
});

describe("bench: conversion thread-scaling verdicts", () => {
  it("bounds the whole command's scaling by the phase's CPU over the cores", () => {
    // 1 worker: 4.8 s in all; 2 workers: 3.6 s, of which 2.3 s converting on 4.4 CPU-s
    const verdicts = conversionVerdicts([row(2, 3.6, 2.3, 4.4), row(1, 4.8, 3.4, 4.2)]);
    expect(verdicts).toContain("thread scaling 1 -> 2 workers: 1.33x (target >= 1.7): NOT met");
    const bound = verdicts.find((v) => v.startsWith("conversion phase CPU"));
    // 1.24 cores busy with one worker; 4.4 / 2.3 = 1.91 with two; 4.8 / (1.3 + 2.2) = 1.37x at most
    expect(bound).toBe(
      "conversion phase CPU: 1 worker 4.20 CPU-s in 3.40 s = 1.24 cores busy; 2 workers 4.40 CPU-s in 2.30 s = 1.91 of 2 cores; with every core busy the whole command could scale at most 4.80 / (1.30 + 4.40 / 2) = 1.37x (information)",
    );
  });
});
