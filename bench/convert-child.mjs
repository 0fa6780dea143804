// One conversion in its own process, on the compiled library (real worker threads).
import { convertCheckpoint } from "../dist/index.js";
import { reportUsage } from "./child-report.mjs";

const [source, output, layout, threads, embeddings] = process.argv.slice(2);
const started = process.hrtime.bigint();
const summary = await convertCheckpoint(source, { layout, output, force: true, threads: Number(threads), ...(embeddings ? { embeddings } : {}) });
reportUsage(started, { outputBytes: summary.size, threads: summary.threads, directIoBytes: summary.directIoBytes });
