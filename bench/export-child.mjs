// One GGUF export in its own process, on the compiled library, reporting wall and CPU time and
// peak RSS, as convert-child.mjs does for conversions.
import { exportGguf, openB158File } from "../dist/index.js";

const [source, output, embeddings] = process.argv.slice(2);
const started = process.hrtime.bigint();
const file = await openB158File(source);
const summary = await exportGguf(file, { output, force: true, embeddings });
await file.close();
const usage = process.resourceUsage();
process.stdout.write(
  JSON.stringify({
    wallSeconds: Number(process.hrtime.bigint() - started) / 1e9,
    cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
    peakRssBytes: usage.maxRSS * 1024,
    outputBytes: summary.size,
  }) + "\n",
);
