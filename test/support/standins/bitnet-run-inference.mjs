#!/usr/bin/env node
// Stands in for `python run_inference.py` in a bitnet.cpp checkout when a test runs a model card's
// commands. bitnet.cpp is not available here, so this checks what can be checked without it: the
// command runs in a folder holding run_inference.py, uses bitnet.cpp's flags (-m, -p, -n), and the
// file at -m exists and is a GGUF whose type ids and architecture bitnet.cpp loads (b158's GGUF
// reader, the tables `b158 inspect` uses).
import { existsSync } from "node:fs";
import { inspectGguf } from "../../../dist/index.js";

const [script, ...args] = process.argv.slice(2);
if (script !== "run_inference.py" || !existsSync("run_inference.py")) {
  console.error(`stand-in: expected python run_inference.py in a bitnet.cpp checkout, got ${script} in ${process.cwd()}`);
  process.exit(2);
}
const value = (flag) => {
  const i = args.indexOf(flag);
  return i === -1 ? undefined : args[i + 1];
};
for (let i = 0; i < args.length; i += 2) {
  if (!["-m", "-p", "-n"].includes(args[i])) {
    console.error(`stand-in: unexpected argument ${args[i]}`);
    process.exit(2);
  }
}
const model = value("-m");
if (model === undefined || !existsSync(model)) {
  console.error(`stand-in: no model file at ${model}`);
  process.exit(1);
}
const report = await inspectGguf(model);
const loads = report.runtimes.filter((r) => r.id.startsWith("bitnet.cpp") && r.loads === true).map((r) => r.id);
if (loads.length === 0) {
  console.error(`stand-in: no bitnet.cpp release loads ${model}: ${report.loadableBy}`);
  process.exit(1);
}
console.log(`stand-in: ${model} loads in ${loads.join(", ")}`);
