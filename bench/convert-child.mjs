// One conversion in its own process, on the compiled library (real worker threads).
import { convertCheckpoint } from "../dist/index.js";
import { reportUsage } from "./child-report.mjs";

const [source, output, layout, threads, embeddings] = process.argv.slice(2);
const started = process.hrtime.bigint();
// when each phase began (seconds from the start): the conversion phase scales with workers, the validation pass does not
// and the process's CPU seconds by then (every thread): how many cores each phase kept busy
const phases = {};
const phaseCpu = {};
const cpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};
const onPhase = ({ phase }) => {
  phases[phase] = Number(process.hrtime.bigint() - started) / 1e9;
  phaseCpu[phase] = cpuSeconds();
};
const summary = await convertCheckpoint(source, { layout, output, force: true, threads: Number(threads), onPhase, ...(embeddings ? { embeddings } : {}) });
const ended = Number(process.hrtime.bigint() - started) / 1e9;
const convertingS = (phases.validating ?? ended) - (phases.converting ?? 0);
const validatingS = phases.validating === undefined ? 0 : ended - phases.validating;
const endedCpu = cpuSeconds();
const convertingCpuS = (phaseCpu.validating ?? endedCpu) - (phaseCpu.converting ?? 0);
reportUsage(started, { outputBytes: summary.size, threads: summary.threads, directIoBytes: summary.directIoBytes, convertingS, validatingS, convertingCpuS });
