// One conversion in its own process, on the compiled library (real worker threads), reporting
// wall time, CPU time and peak RSS (worker threads share the process, so they are included).
import { convertCheckpoint } from "../dist/index.js";

const [source, output, layout, threads] = process.argv.slice(2);
const started = process.hrtime.bigint();
const summary = await convertCheckpoint(source, { layout, output, force: true, threads: Number(threads) });
const usage = process.resourceUsage();
process.stdout.write(
  JSON.stringify({
    wallSeconds: Number(process.hrtime.bigint() - started) / 1e9,
    cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
    peakRssBytes: usage.maxRSS * 1024,
    outputBytes: summary.size,
    threads: summary.threads,
  }) + "\n",
);
