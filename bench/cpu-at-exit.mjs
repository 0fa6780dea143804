// Imported with --import by bench/startup.ts: the child reports its own CPU time as it exits.
process.on("exit", () => {
  const { user, system } = process.cpuUsage();
  process.stderr.write(`\nb158-bench-cpu-us ${user + system}\n`);
});
