// What every bench child process prints: wall and CPU seconds (user + system, and each) and peak RSS (worker threads share
// the process, so they are included), plus the caller's own fields, as one JSON line.
export function reportUsage(started, fields) {
  const usage = process.resourceUsage();
  process.stdout.write(
    JSON.stringify({
      wallSeconds: Number(process.hrtime.bigint() - started) / 1e9,
      cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
      userSeconds: usage.userCPUTime / 1e6,
      systemSeconds: usage.systemCPUTime / 1e6,
      peakRssBytes: usage.maxRSS * 1024,
      ...fields,
    }) + "\n",
  );
}
