// One conversion in its own process, on the compiled library (real worker threads).
import { convertCheckpoint } from "../dist/index.js";
import { reportUsage } from "./child-report.mjs";

const [source, output, layout, threads, embeddings] = process.argv.slice(2);
const started = process.hrtime.bigint();
// when each phase began (seconds from the start): the conversion phase scales with workers, the validation pass does not
const phases = {};
const onPhase = ({ phase }) => (phases[phase] = Number(process.hrtime.bigint() - started) / 1e9);
const summary = await convertCheckpoint(source, { layout, output, force: true, threads: Number(threads), onPhase, ...(embeddings ? { embeddings } : {}) });
const ended = Number(process.hrtime.bigint() - started) / 1e9;
const convertingS = (phases.validating ?? ended) - (phases.converting ?? 0);
const validatingS = phases.validating === undefined ? 0 : ended - phases.validating;
reportUsage(started, { outputBytes: summary.size, threads: summary.threads, directIoBytes: summary.directIoBytes, convertingS, validatingS });
