#!/usr/bin/env node
// Stands in for llama.cpp's `llama-cli` and `llama-completion` when a test runs a model card's
// commands: llama.cpp itself (v0.5.0, node-llama-cpp's CPU prebuilt; that package ships no
// command-line tools), loading the model at the path the command names, with the flags the card
// uses (-m, -p, -n, -no-cnv). Prints the completion; without -p (chat) it loads the model and ends,
// as llama-cli does when its stdin is closed.
import { existsSync } from "node:fs";
import { getLlama, LlamaCompletion, LlamaLogLevel } from "node-llama-cpp";

const args = process.argv.slice(2);
const value = (flag) => {
  const i = args.indexOf(flag);
  return i === -1 ? undefined : args[i + 1];
};
const known = new Set(["-m", "-p", "-n", "-no-cnv"]);
for (let i = 0; i < args.length; i++) {
  if (!known.has(args[i])) {
    console.error(`stand-in: unexpected argument ${args[i]}`);
    process.exit(2);
  }
  if (args[i] !== "-no-cnv") i++;
}
const model = value("-m");
if (model === undefined || !existsSync(model)) {
  console.error(`stand-in: no model file at ${model}`);
  process.exit(1);
}
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false });
const loaded = await llama.loadModel({ modelPath: model });
const prompt = value("-p");
if (prompt !== undefined) {
  const context = await loaded.createContext({ contextSize: 64, threads: 1 });
  const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
  // a few tokens prove the graph runs; the card's -n is for people
  const text = await completion.generateCompletion(prompt, { maxTokens: Math.min(8, Number(value("-n") ?? 8)) });
  process.stdout.write(`${prompt}${text}\n`);
  await context.dispose();
}
await loaded.dispose();
console.error(`stand-in: llama.cpp loaded ${model}`);
